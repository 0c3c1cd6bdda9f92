"""The MovieLens releases we know: where each is published and how its files are laid out.

Download facts (URL, size, SHA-256) are the ones tensorflow-datasets records for its own
`movielens` builder, so a download through our builder is verified against the same hashes.
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
    size: int
    sha256: str
    ratings: TableFile
    movies: TableFile
    links: TableFile | None  # None: the release ships no links.csv (1m, 100k)
    has_genome: bool
    rating_scale: tuple[float, float]
    description: str

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
            size=198702078,
            sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
            ratings=_CSV_RATINGS,
            movies=_CSV_MOVIES,
            links=_CSV_LINKS,
            has_genome=True,
            rating_scale=(0.5, 5.0),
            description="20,000,263 ratings, 138,493 users, 27,278 movies (the paper's release)",
        ),
        Release(
            name="25m",
            archive="ml-25m.zip",
            size=261978986,
            sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
            ratings=_CSV_RATINGS,
            movies=_CSV_MOVIES,
            links=_CSV_LINKS,
            has_genome=True,
            rating_scale=(0.5, 5.0),
            description="25,000,095 ratings, 162,541 users, 62,423 movies",
        ),
        Release(
            name="1m",
            archive="ml-1m.zip",
            size=5917549,
            sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            ratings=TableFile("ratings.dat", "::", "iso-8859-1", False, ("userId", "movieId", "rating", "timestamp")),
            movies=TableFile("movies.dat", "::", "iso-8859-1", False, ("movieId", "title", "genres")),
            links=None,
            has_genome=False,
            rating_scale=(1.0, 5.0),
            description="1,000,209 ratings, 6,040 users, 3,706 rated movies",
        ),
        Release(
            name="latest-small",
            archive="ml-latest-small.zip",
            size=978202,
            sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            ratings=_CSV_RATINGS,
            movies=_CSV_MOVIES,
            links=_CSV_LINKS,
            has_genome=False,
            rating_scale=(0.5, 5.0),
            description="100,836 ratings, 610 users, 9,742 movies (changes over time)",
        ),
        Release(
            name="100k",
            archive="ml-100k.zip",
            size=4924029,
            sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            ratings=TableFile("u.data", "\t", "iso-8859-1", False, ("userId", "movieId", "rating", "timestamp")),
            movies=TableFile("u.item", "|", "iso-8859-1", False, ("movieId", "title", "release_date", "video_release_date", "imdb_url") ),
            links=None,
            has_genome=False,
            rating_scale=(1.0, 5.0),
            description="100,000 ratings, 943 users, 1,682 movies",
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
