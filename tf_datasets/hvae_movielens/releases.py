"""The MovieLens releases we know: where each is published and how its files are laid out.

The archives' sizes and SHA-256 are in checksums.tsv beside this file (the ones tensorflow-datasets
records for its own `movielens` builder), which TFDS checks every download against.
"""

from __future__ import annotations

import dataclasses

GROUPLENS = "https://files.grouplens.org/datasets/movielens/"
OMDB_FILE = "omdb.jsonl"
OMDB_HELP = (
    "fetch it with `python -m hvae_tf.omdb --api-key KEY --links links.csv --out omdb.jsonl` "
    "(free key at https://www.omdbapi.com/apikey.aspx) and put it in the manual dir"
)


@dataclasses.dataclass(frozen=True)
class TableFile:
    """One table of a release: file name, field separator, encoding and column names.

    `header` is True when the first line names the columns (the `.csv` releases); the `.dat`
    and `u.data` files of the old releases have none, so `columns` names them.
    """

    name: str
    sep: str
    encoding: str
    header: bool
    columns: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Release:
    """A MovieLens release: its archive and the files inside it."""

    name: str
    archive: str  # zip file name, also the folder name inside it without ".zip"
    ratings: TableFile
    movies: TableFile
    links: TableFile | None  # None: the release ships no links.csv (1m, 100k)
    has_genome: bool
    rating_scale: tuple[float, float]
    description: str
    # Rows of the published ratings and movies files. A different count is only warned about
    # (a user's subset must still train); it is how a file cut short or another release shows.
    n_ratings: int
    n_movies: int

    @property
    def url(self) -> str:
        return GROUPLENS + self.archive

    @property
    def folder(self) -> str:
        return self.archive[: -len(".zip")]


_CSV_RATINGS = TableFile("ratings.csv", ",", "utf-8", True, ("userId", "movieId", "rating", "timestamp"))
_CSV_MOVIES = TableFile("movies.csv", ",", "utf-8", True, ("movieId", "title", "genres"))
_CSV_LINKS = TableFile("links.csv", ",", "utf-8", True, ("movieId", "imdbId", "tmdbId"))
GENOME_SCORES = TableFile("genome-scores.csv", ",", "utf-8", True, ("movieId", "tagId", "relevance"))
GENOME_TAGS = TableFile("genome-tags.csv", ",", "utf-8", True, ("tagId", "tag"))
TAGS = TableFile("tags.csv", ",", "utf-8", True, ("userId", "movieId", "tag", "timestamp"))

RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release(
            name="20m",
            archive="ml-20m.zip",
            ratings=_CSV_RATINGS,
            movies=_CSV_MOVIES,
            links=_CSV_LINKS,
            has_genome=True,
            rating_scale=(0.5, 5.0),
            description="20,000,263 ratings, 138,493 users, 27,278 movies (the paper's release)",
            n_ratings=20_000_263,
            n_movies=27_278,
        ),
        Release(
            name="25m",
            archive="ml-25m.zip",
            ratings=_CSV_RATINGS,
            movies=_CSV_MOVIES,
            links=_CSV_LINKS,
            has_genome=True,
            rating_scale=(0.5, 5.0),
            description="25,000,095 ratings, 162,541 users, 62,423 movies",
            n_ratings=25_000_095,
            n_movies=62_423,
        ),
        Release(
            name="1m",
            archive="ml-1m.zip",
            ratings=TableFile("ratings.dat", "::", "iso-8859-1", False, ("userId", "movieId", "rating", "timestamp")),
            movies=TableFile("movies.dat", "::", "iso-8859-1", False, ("movieId", "title", "genres")),
            links=None,
            has_genome=False,
            rating_scale=(1.0, 5.0),
            description="1,000,209 ratings, 6,040 users, 3,706 rated movies",
            n_ratings=1_000_209,
            n_movies=3_883,
        ),
        Release(
            name="latest-small",
            archive="ml-latest-small.zip",
            ratings=_CSV_RATINGS,
            movies=_CSV_MOVIES,
            links=_CSV_LINKS,
            has_genome=False,
            rating_scale=(0.5, 5.0),
            description="100,836 ratings, 610 users, 9,742 movies (changes over time)",
            n_ratings=100_836,
            n_movies=9_742,
        ),
        Release(
            name="100k",
            archive="ml-100k.zip",
            ratings=TableFile("u.data", "\t", "iso-8859-1", False, ("userId", "movieId", "rating", "timestamp")),
            movies=TableFile("u.item", "|", "iso-8859-1", False, ("movieId", "title", "release_date", "video_release_date", "imdb_url") ),
            links=None,
            has_genome=False,
            rating_scale=(1.0, 5.0),
            description="100,000 ratings, 943 users, 1,682 movies",
            n_ratings=100_000,
            n_movies=1_682,
        ),
    )
}

DEFAULT_RELEASE = "20m"


def get_release(name: str) -> Release:
    """The release called `name`, or an error listing the ones we know."""
    try:
        return RELEASES[name]
    except KeyError:
        raise ValueError(
            f"unknown MovieLens release {name!r}: choose one of {', '.join(RELEASES)}"
        ) from None


def count_warnings(release: str, ratings: int, movies: int) -> list[str]:
    """How the rows read differ from the release's published counts (0: not read, not compared)."""
    rel = get_release(release)
    return [
        f"read {seen:,} {what} where MovieLens {release} has {known:,}: fine for a subset, "
        f"else the {what} file is cut short or from another release"
        for what, seen, known in (("ratings", ratings, rel.n_ratings), ("movies", movies, rel.n_movies))
        if seen and seen != known
    ]


def download_failed_message(release: str, cause: BaseException) -> str:
    """Why the release could not be had, and the two ways to get it."""
    rel = get_release(release)
    return (
        f"could not download MovieLens {release} from {rel.url} ({type(cause).__name__}: "
        f"{cause}). Either let the download happen with internet access, or pass a manual dir "
        f"that holds the unzipped {rel.folder}/ folder or {rel.archive} from that URL: "
        f"load_movielens({release!r}, manual_dir=...) or "
        f"tfds.download.DownloadConfig(manual_dir=...)."
    )
