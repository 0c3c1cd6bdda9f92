"""Build the `hvae_movielens` TFDS dataset if needed and read it back as `MovieLensData`.

Everything downstream starts here: the TFDS build is the one place raw files are parsed, and
what is built once (under `data_dir`, TFDS's ~/tensorflow_datasets by default) is reused.
Reading back goes through whole batches of examples (ragged), not one example at a time, because
per-example decoding costs Python work for each of ML-20M's 138k users.
"""

from __future__ import annotations

import logging
import socket
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_datasets as tfds

from hvae_tf.data.schema import MovieLensData
from tf_datasets.hvae_movielens import releases
from tf_datasets.hvae_movielens.columns import MOVIE_COLUMNS, OMDB_FIELDS
from tf_datasets.hvae_movielens.files import MovieLensFormatError, ReadReport, locate_release, release_files
from tf_datasets.hvae_movielens.hvae_movielens import HvaeMovielens
from tf_datasets.hvae_movielens.movies import movies_from_files
from tf_datasets.hvae_movielens.ratings import ratings_from_files, ratings_table
from tf_datasets.hvae_movielens.releases import download_failed_message

log = logging.getLogger(__name__)
_BATCH = 4096


def check_download_possible(release: str, data_dir=None) -> None:
    """Fail at once when the release's host cannot even be resolved.

    Offline, TFDS retries the download for minutes before it gives up. Skipped behind
    a proxy (the proxy resolves names), when the archive's download is already cached, and when
    TFDS's default manual dir (<data_dir>/downloads/manual) holds the release.
    """
    rel = releases.get_release(release)
    if urllib.request.getproxies():
        return
    downloads = Path(data_dir or tfds.core.constants.DATA_DIR).expanduser() / "downloads"
    if downloads.is_dir() and any(rel.folder in p.name for p in downloads.iterdir()):
        return
    try:
        locate_release(release, downloads / "manual")
        return
    except FileNotFoundError:
        pass
    try:
        socket.getaddrinfo(urllib.parse.urlparse(rel.url).hostname, 443)
    except OSError as e:
        raise RuntimeError(download_failed_message(release, e)) from e


def built_builder(release: str, table: str, data_dir=None, manual_dir=None) -> HvaeMovielens:
    """The builder of config "<release>-<table>", prepared (built) unless it already was.

    A dataset built before is reused as is: a different `manual_dir` does not rebuild it.
    """
    builder = HvaeMovielens(config=f"{release}-{table}", data_dir=data_dir)
    if not builder.is_prepared():
        if manual_dir is None:
            check_download_possible(release, data_dir)
        config = tfds.download.DownloadConfig(manual_dir=str(manual_dir)) if manual_dir else None
        builder.download_and_prepare(download_config=config)
    return builder


def _example_spec(builder: HvaeMovielens) -> dict:
    """tf.io parsing spec of the stored tf.Examples: scalars dense, variable-length ragged.

    tf.Example holds only int64, float and bytes lists (TFDS stores int32 and bool as int64).
    """
    spec = {}
    for name, info in builder.info.features.get_serialized_info().items():
        dtype = tf.as_dtype(info.dtype)
        dtype = tf.string if dtype == tf.string else tf.float32 if dtype.is_floating else tf.int64
        spec[name] = tf.io.RaggedFeature(dtype) if info.shape else tf.io.FixedLenFeature([], dtype)
    return spec


def _batches(builder: HvaeMovielens):
    """Batches of the train split as dicts of dense (scalars) and ragged (sequences) tensors.

    The stored records are parsed a whole batch at a time (`tf.io.parse_example`) in C++, where
    TFDS's per-example decoding plus `ragged_batch` pays Python overhead per example.
    """
    files = [str(p) for p in builder.info.splits["train"].filepaths]
    if builder.info.file_format != tfds.core.FileFormat.TFRECORD:
        return builder.as_dataset(split="train", shuffle_files=False).ragged_batch(_BATCH)
    spec = _example_spec(builder)

    def parse(records):
        return tf.io.parse_example(records, spec)

    return (
        tf.data.TFRecordDataset(files)
        .batch(_BATCH)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def _segment_gather(lengths: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Index that concatenates variable-length segments in `order` instead of stored order."""
    starts = np.cumsum(lengths) - lengths
    new_lengths = lengths[order]
    new_starts = np.cumsum(new_lengths) - new_lengths
    return np.repeat(starts[order] - new_starts, new_lengths) + np.arange(new_lengths.sum())


def ratings_from_builder(builder: HvaeMovielens) -> pd.DataFrame:
    """The schema.py ratings table from a built "<release>-users" dataset.

    TFDS stores users shuffled; each user's ratings are already in time order, so putting the
    users back in id order gives the table's (userId, timestamp) order.
    """
    users, lengths, movies, ratings, times = [], [], [], [], []
    for batch in _batches(builder):
        users.append(batch["user_id"].numpy())
        lengths.append(batch["movie_ids"].row_lengths().numpy())
        movies.append(batch["movie_ids"].flat_values.numpy())
        ratings.append(batch["ratings"].flat_values.numpy())
        times.append(batch["timestamps"].flat_values.numpy())
    if not users:
        raise ValueError(f"{builder.data_dir} holds no users: delete it and build again")
    user_ids, lengths = np.concatenate(users), np.concatenate(lengths)
    order = np.argsort(user_ids, kind="stable")
    index = _segment_gather(lengths, order)
    return pd.DataFrame({
        "userId": np.repeat(user_ids[order], lengths[order]).astype(np.int64),
        "movieId": np.concatenate(movies)[index].astype(np.int64),
        "rating": np.concatenate(ratings)[index].astype(np.float32),
        "timestamp": np.concatenate(times)[index].astype(np.int64),
    })


def _texts(ragged_or_dense) -> list:
    return [b.decode("utf-8") for b in ragged_or_dense.numpy().tolist()]


def movies_from_builder(builder: HvaeMovielens) -> pd.DataFrame:
    """The schema.py movies table from a built "<release>-movies" dataset."""
    text_columns = {"title": "title", "imdb_id": "imdbId", **{c: c for c in OMDB_FIELDS.values()}}
    columns = {name: [] for name in ("movieId", "year", "genres", "genome_relevance", "has_omdb",
                                     *text_columns.values())}
    for batch in _batches(builder):
        columns["movieId"].append(batch["movie_id"].numpy())
        columns["year"].append(batch["year"].numpy())
        columns["has_omdb"].append(batch["has_omdb"].numpy())
        for feature, column in text_columns.items():
            columns[column].extend(_texts(batch[feature]))
        genres = batch["genres"]
        columns["genres"].extend(
            tuple(g.decode("utf-8") for g in row) for row in genres.to_list()
        )
        genome = batch["genome_relevance"]
        flat = genome.flat_values.numpy().astype(np.float32)
        bounds = np.cumsum(genome.row_lengths().numpy())
        columns["genome_relevance"].extend(np.split(flat, bounds[:-1]))
    movies = pd.DataFrame({
        "movieId": np.concatenate(columns["movieId"]).astype(np.int64),
        "year": np.concatenate(columns["year"]).astype(np.int32),
        "has_omdb": np.concatenate(columns["has_omdb"]).astype(bool),
        "genres": pd.Series(columns["genres"], dtype=object),
        "genome_relevance": pd.Series(columns["genome_relevance"], dtype=object),
        **{c: columns[c] for c in text_columns.values()},
    })
    return movies.sort_values("movieId", kind="stable").reset_index(drop=True)[list(MOVIE_COLUMNS)]


def load_movielens(release: str, data_dir=None, manual_dir=None) -> MovieLensData:
    """MovieLens `release` as `MovieLensData`, building the TFDS dataset first if needed.

    `manual_dir`: where the raw release lies (unzipped folder, zip, or a folder holding either,
    plus an optional omdb.jsonl); without it the zip is downloaded and checked against
    checksums.tsv. `data_dir`: the TFDS data folder (default ~/tensorflow_datasets).
    """
    releases.get_release(release)
    if manual_dir is not None:
        locate_release(release, manual_dir)  # a wrong folder fails here, not mid-build
    users = built_builder(release, "users", data_dir, manual_dir)
    movies_builder = built_builder(release, "movies", data_dir, manual_dir)
    data = MovieLensData(
        release=release,
        ratings=ratings_from_builder(users),
        movies=movies_from_builder(movies_builder),
        genome_tags=list(movies_builder.info.metadata.get("genome_tags", [])),
    )
    log.info("%s", summary(data))
    return data


def read_release(release: str, path, omdb_path=None, report: ReadReport | None = None) -> MovieLensData:
    """One release straight from its files, without building the TFDS dataset.

    The same readers as the builder, so this equals `load_movielens`; used to check the build and
    where a quick look needs no TFDS folder. Unlike the builder's separate users and movies
    configs, it also checks that every rated movie is in the catalogue.
    """
    report = report if report is not None else ReadReport()
    with release_files(release, path) as files:
        report.source = str(files.location)
        movies, genome_tags = movies_from_files(files, omdb_path, report)
        ratings = ratings_from_files(files, report)
        unknown = ~np.isin(ratings["movieId"].to_numpy(), movies["movieId"].to_numpy())
        if unknown.any():
            first = int(np.flatnonzero(unknown)[0])
            raise MovieLensFormatError(
                f"{files.describe(ratings_table(files).name)}: user "
                f"{ratings['userId'].iat[first]} rates movie {ratings['movieId'].iat[first]}, "
                f"which {files.describe(files.release.movies.name)} does not list "
                f"({int(unknown.sum()):,} such ratings)"
            )
    log.info("%s", report)
    return MovieLensData(release=release, ratings=ratings, movies=movies, genome_tags=genome_tags)


def summary(data: MovieLensData) -> str:
    """One line saying what was loaded: ratings, users, movies, and the side information."""
    ratings = data.ratings
    return (
        f"MovieLens {data.release}: {len(ratings):,} ratings, {ratings['userId'].nunique():,} "
        f"users, {len(data.movies):,} movies ({ratings['movieId'].nunique():,} rated), "
        f"genome {len(data.genome_tags):,} tags, OMDb for {int(data.movies['has_omdb'].sum()):,} movies"
    )
