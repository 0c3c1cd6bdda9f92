"""Build the `hvae_movielens` TFDS dataset if needed and read it back as `MovieLensData`.

Everything downstream starts here: the TFDS build is the one place raw files are parsed, and
what is built once (under `data_dir`, TFDS's ~/tensorflow_datasets by default) is reused, but
only for the files it was built from: TFDS keys a prepared dataset by config and version alone,
so each build records the source files' fingerprint, and a manual dir whose files differ gets
the dataset built again. The users and movies configs of a release are kept only as a pair
built from the same files.
Reading back goes through whole batches of examples (ragged), not one example at a time, because
per-example decoding costs Python work for each of ML-20M's 138k users.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import shutil
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
from tf_datasets.hvae_movielens.files import (
    MovieLensFormatError,
    ReadReport,
    fingerprint_difference,
    locate_release,
    manual_omdb,
    ratings_table,
    release_files,
    source_fingerprint,
)
from tf_datasets.hvae_movielens.hvae_movielens import HvaeMovielens
from tf_datasets.hvae_movielens.movies import movies_from_files
from tf_datasets.hvae_movielens.ratings import ratings_from_files

log = logging.getLogger(__name__)


class _FirstBuildNotice(logging.Filter):
    """TFDS warns that a dataset folder "has no dataset_info.json" when asked about a dataset it
    has not built yet: every first build starts that way, so it is not shown."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "has no dataset_info.json" not in record.getMessage()


logging.getLogger("absl").addFilter(_FirstBuildNotice())
_BATCH = 4096
TABLES = ("users", "movies")
# The ReadReport fields the users config fills; the movies config fills the others.
_USER_REPORT_FIELDS = ("ratings", "users", "rated_movies", "duplicate_ratings_dropped", "has_timestamps")
# A share of movies without a link or OMDb record (or of OMDb records without a movie) above
# this is warned about: the paper protocol silently shrinks its catalogue by such movies.
LOSS_WARNING_SHARE = 0.05


class DownloadUnavailable(ConnectionError):
    """The release cannot be downloaded from here; the message says the offline ways instead."""


def offline_message(release: str, cause: BaseException) -> str:
    rel = releases.get_release(release)
    return (
        f"MovieLens {release} cannot be downloaded from {rel.url} ({type(cause).__name__}: {cause}). "
        f"Without internet: download {rel.archive} where there is, then pass the folder holding it "
        f"(or the unzipped {rel.folder}/) as --manual-dir, e.g. `python train.py --dataset {release} "
        "--manual-dir /data/" + rel.folder + " ...`; or try everything on generated data in the same "
        "layout: `python train.py --dataset generated --generated-users 20000 --generated-movies "
        "4000 --generated-ratings 1500000 --features genome --approach 1`"
    )


def check_download_possible(release: str, data_dir=None, timeout: float = 5.0) -> None:
    """Fail within seconds when the release's archive cannot be reached (through the proxy, if
    one is set), naming the offline ways to run.

    Offline, TFDS retries the download for minutes before it gives up, and an unreachable proxy
    keeps it waiting longer. Skipped when the archive's download is already cached, and when
    TFDS's default manual dir (<data_dir>/downloads/manual) holds the release.
    """
    rel = releases.get_release(release)
    downloads = Path(data_dir or tfds.core.constants.DATA_DIR).expanduser() / "downloads"
    if downloads.is_dir() and any(rel.folder in p.name for p in downloads.iterdir()):
        return
    try:
        locate_release(release, downloads / "manual")
        return
    except FileNotFoundError:
        pass
    try:  # the environment's proxy now, as TFDS's download would take it (urlopen keeps the first)
        urllib.request.build_opener().open(urllib.request.Request(rel.url, method="HEAD"),
                                           timeout=timeout).close()
    except (OSError, ValueError) as e:  # URLError, timeouts, refused connections, a bad proxy URL
        raise DownloadUnavailable(offline_message(release, e)) from e


def _builder(release: str, table: str, data_dir) -> HvaeMovielens:
    return HvaeMovielens(config=f"{release}-{table}", data_dir=data_dir)


def recorded_fingerprint(builder: HvaeMovielens) -> dict | None:
    """The source fingerprint a prepared config records; None when an older version built it."""
    return (builder.info.metadata or {}).get("source_fingerprint")


def _folder(builder: HvaeMovielens) -> Path:
    return Path(str(builder.data_dir))


def _remove(builder: HvaeMovielens, what: str, data_dir) -> HvaeMovielens:
    """Delete a prepared config's folder, saying so in one line; the config's unprepared builder."""
    folder = _folder(builder)
    if folder.name != str(builder.version) or folder.parent.name != builder.builder_config.name:
        raise RuntimeError(f"refusing to delete {folder}: not a prepared {builder.name} config folder")
    shutil.rmtree(folder)
    print(f"{folder}: {what}", flush=True)
    return _builder(builder.builder_config.release, builder.builder_config.table, data_dir)


def _manual_fingerprint(release: str, manual_dir) -> dict:
    """The fingerprint of what a build from `manual_dir` reads (the omdb.jsonl the builder uses)."""
    return source_fingerprint(release, manual_dir, manual_omdb(manual_dir))


def _stale(builder: HvaeMovielens, expected: dict, manual_dir) -> str | None:
    """Why a prepared config does not stand for the files in `manual_dir` (None: it does)."""
    recorded = recorded_fingerprint(builder)
    if recorded is None:
        return (f"records no source fingerprint (an older version built it), so it cannot be "
                f"checked against {manual_dir}")
    if recorded.get("digest") != expected["digest"]:
        return (f"was built from other files ({recorded.get('source')}) than those in {manual_dir}: "
                f"{fingerprint_difference(recorded, expected)}")
    return None


def built_builder(release: str, table: str, data_dir=None, manual_dir=None,
                  expected: dict | None = None) -> HvaeMovielens:
    """The builder of config "<release>-<table>", prepared (built) unless it already was.

    With `manual_dir`, a prepared dataset is kept only if it was built from the same files
    (`expected`: their fingerprint, computed when not given); else its folder is deleted and the
    config built again. Without, a prepared dataset is used as it is. One config only: use
    `built_pair` for both, which keeps them consistent.
    """
    builder = _builder(release, table, data_dir)
    if builder.is_prepared() and manual_dir is not None:
        expected = expected or _manual_fingerprint(release, manual_dir)
        why = _stale(builder, expected, manual_dir)
        if why:
            builder = _remove(builder, f"rebuilding: it {why}", data_dir)
    if not builder.is_prepared():
        if manual_dir is None:
            check_download_possible(release, data_dir)
        config = tfds.download.DownloadConfig(manual_dir=str(manual_dir)) if manual_dir else None
        builder.download_and_prepare(download_config=config)
    return builder


@contextlib.contextmanager
def _one_build_at_a_time(release: str, data_dir):
    """Hold the release's build lock: TFDS builds into fixed folders, so two processes building at
    once (two train.py started together on a new machine) delete each other's files; the second
    waits here, then finds the release built. The lock dies with its holder."""
    root = _folder(_builder(release, TABLES[0], data_dir)).parents[1]
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{release}.build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def built_pair(release: str, data_dir=None, manual_dir=None) -> tuple[HvaeMovielens, HvaeMovielens]:
    """The users and movies builders of `release`, prepared from the same files, by one process
    at a time (`_one_build_at_a_time`)."""
    with _one_build_at_a_time(release, data_dir):
        return _built_pair(release, data_dir, manual_dir)


def _built_pair(release: str, data_dir=None, manual_dir=None) -> tuple[HvaeMovielens, HvaeMovielens]:
    """The users and movies builders of `release`, prepared from the same files.

    Built as one unit: when either build fails, neither config is left prepared; without a
    manual dir, a config prepared without its partner is built again with it. A pair whose
    fingerprints differ is an error, never read.
    """
    expected = _manual_fingerprint(release, manual_dir) if manual_dir is not None else None
    if manual_dir is None:
        builders = {table: _builder(release, table, data_dir) for table in TABLES}
        missing = [table for table, b in builders.items() if not b.is_prepared()]
        if missing:
            check_download_possible(release, data_dir)
            for builder in builders.values():
                if builder.is_prepared():
                    _remove(builder, f"rebuilding: {release}-{missing[0]} is not built, and the "
                            "two configs are built together from one download", data_dir)
    built = {}
    table = TABLES[0]
    try:
        for table in TABLES:
            built[table] = built_builder(release, table, data_dir, manual_dir, expected)
    except BaseException:
        for other in TABLES:
            builder = _builder(release, other, data_dir)
            if builder.is_prepared():
                _remove(builder, f"removed: building {release}-{table} failed, and the users and "
                        "movies configs are kept only together", data_dir)
        raise
    users, movies = built["users"], built["movies"]
    check_same_source(users, movies)
    return users, movies


def check_same_source(users: HvaeMovielens, movies: HvaeMovielens) -> None:
    """Refuse a users and a movies dataset that were not built from the same files."""
    a, b = recorded_fingerprint(users), recorded_fingerprint(movies)
    if a is not None and b is not None and a.get("digest") == b.get("digest"):
        return
    if a is None or b is None:
        old = _folder(users if a is None else movies)
        why = f"{old} records no source fingerprint (an older version built it)"
    else:
        why = (f"users from {a.get('source')}, movies from {b.get('source')}: "
               f"{fingerprint_difference(a, b)}")
    raise ValueError(
        f"{_folder(users)} and {_folder(movies)} were not built from the same files ({why}), so "
        f"they are not read together: pass the release's folder as --manual-dir (manual_dir=) "
        f"to rebuild them from it, or delete both folders to download and build again"
    )


def _example_spec(builder: HvaeMovielens) -> dict:
    """tf.io parsing spec of the stored tf.Examples: scalars dense, variable-length ragged.

    tf.Example holds only int64, float and bytes lists (TFDS stores int32 and bool as int64).
    """
    spec = {}
    for name, info in builder.info.features.get_serialized_info().items():
        dtype = tf.as_dtype(info.tf_dtype)
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
    plus an optional omdb.jsonl); a dataset prepared from other files is built again from it.
    Without it the zip is downloaded and checked against checksums.tsv, and a prepared dataset is
    used as it is. `data_dir`: the TFDS data folder (default ~/tensorflow_datasets).
    """
    releases.get_release(release)
    if manual_dir is not None:
        locate_release(release, manual_dir)  # a wrong folder fails here, not mid-build
    users, movies_builder = built_pair(release, data_dir, manual_dir)
    user_report = users.info.metadata.get("read_report", {})
    report = {**movies_builder.info.metadata.get("read_report", {}),
              **{k: user_report[k] for k in _USER_REPORT_FIELDS if k in user_report}}
    data = MovieLensData(
        release=release,
        ratings=ratings_from_builder(users),
        movies=movies_from_builder(movies_builder),
        genome_tags=list(movies_builder.info.metadata.get("genome_tags", [])),
        fingerprint=recorded_fingerprint(users)["digest"],
        report=report,
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
    return MovieLensData(release=release, ratings=ratings, movies=movies, genome_tags=genome_tags,
                         fingerprint=source_fingerprint(release, path, omdb_path)["digest"],
                         report=dataclasses.asdict(report))


def _share(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,} ({part / whole:.1%})"


def data_warnings(data: MovieLensData, check_counts: bool = True) -> list[str]:
    """What reading lost that changes the experiment: row counts unlike the release's published
    ones (`check_counts`; off for generated data), movies without an IMDb id or OMDb record, and
    OMDb records matching no movie."""
    report, movies = data.report, data.movies
    found = []
    if check_counts and data.release in releases.RELEASES:
        rows = int(report.get("ratings", len(data.ratings))) + int(report.get("duplicate_ratings_dropped", 0))
        found += releases.count_warnings(data.release, rows, len(movies))
    n = len(movies)
    if not n:
        return found
    paper = "movies without OMDb data are dropped by --protocol paper"
    no_link = int((movies["imdbId"] == "").sum())
    if report.get("links_file") and no_link > LOSS_WARNING_SHARE * n:
        found.append(f"{_share(no_link, n)} movies have no IMDb id in {report['links_file']}, so no "
                     f"OMDb record can match them" + (f": {paper}" if data.has_omdb else ""))
    if report.get("omdb_file"):
        matched = int(movies["has_omdb"].sum())
        if not matched:
            found.append(f"no movie matches a record of {report['omdb_file']}: --protocol paper "
                         "keeps every movie and --features imdb has no data; is it the OMDb file "
                         "of this release's links.csv?")
        elif n - matched > LOSS_WARNING_SHARE * n:
            found.append(f"{_share(n - matched, n)} movies have no OMDb record in "
                         f"{report['omdb_file']}: {paper} (its catalogue keeps {matched:,})")
        records = int(report.get("omdb_records", 0)) - int(report.get("omdb_not_found_records", 0))
        unmatched = int(report.get("omdb_unmatched_records", 0))
        if records and unmatched > LOSS_WARNING_SHARE * records:
            found.append(f"{_share(unmatched, records)} OMDb records in {report['omdb_file']} match "
                         "no movie's IMDb id: were they fetched for another release's links.csv?")
    return found


def summary(data: MovieLensData, check_counts: bool = True) -> str:
    """What was loaded (ratings, users, movies, side information), where from, what reading lost,
    and a WARNING line for each loss that changes the experiment (see `data_warnings`)."""
    ratings, movies, report = data.ratings, data.movies, data.report
    lines = [
        f"MovieLens {data.release}: {len(ratings):,} ratings, {ratings['userId'].nunique():,} "
        f"users, {len(movies):,} movies ({ratings['movieId'].nunique():,} rated), "
        f"genome {len(data.genome_tags):,} tags, OMDb for {int(movies['has_omdb'].sum()):,} movies"
    ]
    if data.fingerprint:
        lines.append(f"  read from {report.get('source', '?')} (source fingerprint {data.fingerprint[:12]})")
    if report.get("links_file"):
        with_id = int((movies["imdbId"] != "").sum())
        lines.append(f"  IMDb ids: {with_id:,} of {len(movies):,} movies, from {report['links_file']}")
    if report.get("omdb_file"):
        lines.append(
            f"  OMDb: {int(movies['has_omdb'].sum()):,} movies matched from "
            f"{report.get('omdb_records', 0):,} records in {report['omdb_file']} "
            f"({report.get('omdb_not_found_records', 0):,} not found, "
            f"{report.get('omdb_unmatched_records', 0):,} matching no movie)"
        )
    lines += [f"WARNING: {w}" for w in data_warnings(data, check_counts)]
    return "\n".join(lines)
