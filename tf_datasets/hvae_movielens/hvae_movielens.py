"""hvae_movielens: MovieLens as one example per user and one per movie, for Hybrid-VAE training.

TFDS's own `movielens` builder yields one example per rating and no genome or OMDb data; the
VAEs consume whole user histories and per-movie side information, so this builder yields those.
The raw files are parsed by the readers beside it (files.py, ratings.py, movies.py), which the
package that trains on the dataset reuses for its direct reads, so both agree on what a file means.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from tf_datasets.hvae_movielens import releases
from tf_datasets.hvae_movielens.columns import OMDB_FIELDS
from tf_datasets.hvae_movielens.files import (
    ReadReport,
    locate_release,
    manual_omdb,
    source_fingerprint,
)
from tf_datasets.hvae_movielens.movies import read_movies
from tf_datasets.hvae_movielens.ratings import read_ratings
from tf_datasets.hvae_movielens.releases import download_failed_message

_DESCRIPTION = """\
MovieLens ratings grouped for collaborative filtering with variational autoencoders.

`<release>-users`: one example per user, with the user's ratings sorted by time (movie ids,
ratings, timestamps; -1 where the release has no timestamps). Repeated (user, movie) ratings keep
the latest. `<release>-movies`: one example per movie, with title, year, genres, IMDb id, the
tag-genome relevance vector (20m, 25m) and, when an `omdb.jsonl` lies in the manual dir, the
OMDb fields. The genome tag names are in `info.metadata["genome_tags"]`; what reading found in
`info.metadata["read_report"]`; the name, size and SHA-256 of every raw file the two configs read
in `info.metadata["source_fingerprint"]` (both configs of one build record the same).
"""

_CITATION = """\
@article{harper2015movielens,
  title={The MovieLens Datasets: History and Context},
  author={Harper, F. Maxwell and Konstan, Joseph A.},
  journal={ACM Transactions on Interactive Intelligent Systems},
  volume={5}, number={4}, pages={19:1--19:19}, year={2015}
}
"""

_TABLES = ("users", "movies")


def _manual_instructions() -> str:
    archives = "\n".join(f"  {r.name}: {r.url}" for r in releases.RELEASES.values())
    return f"""\
Without internet access, put the release in the manual dir (or point the manual dir at it):
the unzipped folder (e.g. `ml-20m/`), the zip itself, or the release's files directly. Pass it
with `tfds.download.DownloadConfig(manual_dir=...)` or `load_movielens(..., manual_dir=...)`.
An optional `{releases.OMDB_FILE}` there adds OMDb data to the movies ({releases.OMDB_HELP}).
Archives:
{archives}
"""


class HvaeMovielensConfig(tfds.core.BuilderConfig):
    """One release (see releases.py) and one table: per-user or per-movie examples."""

    def __init__(self, *, release: str, table: str, **kwargs):
        if table not in _TABLES:
            raise ValueError(f"table must be one of {_TABLES}, not {table!r}")
        rel = releases.get_release(release)
        super().__init__(
            name=f"{release}-{table}",
            description=f"{'One example per user' if table == 'users' else 'One example per movie'}"
            f" of MovieLens {release}: {rel.description}.",
            **kwargs,
        )
        self.release = release
        self.table = table

    @property
    def url(self) -> str:
        return releases.get_release(self.release).url


def _configs() -> list[HvaeMovielensConfig]:
    names = [releases.DEFAULT_RELEASE] + [r for r in releases.RELEASES if r != releases.DEFAULT_RELEASE]
    return [HvaeMovielensConfig(release=r, table=t) for r in names for t in _TABLES]


class HvaeMovielens(tfds.core.GeneratorBasedBuilder):
    """MovieLens per-user rating histories and per-movie side information."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Per-user and per-movie examples; genome and OMDb fields."}
    BUILDER_CONFIGS = _configs()
    MANUAL_DOWNLOAD_INSTRUCTIONS = _manual_instructions()

    def _info(self) -> tfds.core.DatasetInfo:
        if self.builder_config.table == "users":
            # Variable-length Tensors, not Sequence: Sequence encodes element by element in
            # Python, for every rating of ML-20M, where a Tensor takes the array whole.
            features = {
                "user_id": np.int64,
                "movie_ids": tfds.features.Tensor(shape=(None,), dtype=np.int64),
                "ratings": tfds.features.Tensor(shape=(None,), dtype=np.float32),
                "timestamps": tfds.features.Tensor(shape=(None,), dtype=np.int64),
            }
        else:
            features = {
                "movie_id": np.int64,
                "title": tfds.features.Text(),
                "year": np.int32,
                "genres": tfds.features.Sequence(tfds.features.Text()),
                "imdb_id": tfds.features.Text(),
                "genome_relevance": tfds.features.Tensor(shape=(None,), dtype=np.float32),
                "has_omdb": np.bool_,
                **{column: tfds.features.Text() for column in OMDB_FIELDS.values()},
            }
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict(features),
            homepage="https://grouplens.org/datasets/movielens/",
            citation=_CITATION,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        release_path, omdb_path = self._find_release(dl_manager)
        return {"train": self._generate_examples(release_path, omdb_path)}

    def _find_release(self, dl_manager) -> tuple[Path, Path | None]:
        """The manual dir if it holds the release (nothing is downloaded then), else the download."""
        release = self.builder_config.release
        omdb = None
        try:
            manual_dir = Path(dl_manager.manual_dir)  # raises when missing or empty
        except AssertionError:
            manual_dir = None
        if manual_dir is not None:
            omdb = manual_omdb(manual_dir)
            try:
                return locate_release(release, manual_dir), omdb
            except FileNotFoundError as e:
                logging.warning("manual dir without the release (%s); downloading instead", e)
        try:
            extracted = dl_manager.download_and_extract(self.builder_config.url)
        except Exception as e:  # no network, proxy, checksum: all need the same two remedies
            raise ConnectionError(download_failed_message(release, e)) from e
        return locate_release(release, Path(extracted)), omdb

    def _generate_examples(self, release_path: Path, omdb_path: Path | None):
        config = self.builder_config
        report = ReadReport()
        # Before reading: files changed during the build then differ from it next time.
        self.info.metadata["source_fingerprint"] = source_fingerprint(
            config.release, release_path, omdb_path)
        if config.table == "users":
            ratings = read_ratings(config.release, release_path, report)
            self.info.metadata["read_report"] = dataclasses.asdict(report)
            yield from _user_examples(ratings)
        else:
            movies, genome_tags = read_movies(config.release, release_path, omdb_path, report)
            self.info.metadata["read_report"] = dataclasses.asdict(report)
            self.info.metadata["genome_tags"] = list(genome_tags)
            yield from _movie_examples(movies)


def _user_examples(ratings):
    """(userId, example) per user, from slices of the user-sorted columns (no groupby)."""
    user = ratings["userId"].to_numpy()
    movie = ratings["movieId"].to_numpy()
    rating = ratings["rating"].to_numpy()
    timestamp = ratings["timestamp"].to_numpy()
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    ends = np.r_[starts[1:], user.size]
    for start, end in zip(starts.tolist(), ends.tolist()):
        user_id = int(user[start])
        yield user_id, {
            "user_id": user_id,
            "movie_ids": movie[start:end],
            "ratings": rating[start:end],
            "timestamps": timestamp[start:end],
        }


def _movie_examples(movies):
    omdb_columns = list(OMDB_FIELDS.values())
    columns = ["movieId", "title", "year", "genres", "imdbId", "genome_relevance", "has_omdb"]
    for row in movies[columns + omdb_columns].itertuples(index=False, name=None):
        movie_id, title, year, genres, imdb_id, genome, has_omdb = row[:7]
        yield int(movie_id), {
            "movie_id": int(movie_id),
            "title": title,
            "year": int(year),
            "genres": list(genres),
            "imdb_id": imdb_id,
            "genome_relevance": genome,
            "has_omdb": bool(has_omdb),
            **dict(zip(omdb_columns, row[7:])),
        }
