"""ratings.csv / ratings.dat / u.data -> the ratings table, duplicates resolved, time-sorted."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from tf_datasets.hvae_movielens.files import (
    MovieLensFormatError,
    ReadReport,
    ReleaseFiles,
    bits,
    composite_key,
    dense_codes,
    header_columns,
    line_of_row,
    parse_numeric_table,
    ratings_table,
    release_files,
    where_to_get,
)


def _check_rating_values(files, table, rating: np.ndarray) -> None:
    low, high = files.release.rating_scale
    bad = np.flatnonzero(~((rating >= low) & (rating <= high)))  # NaN is bad too
    if bad.size:
        number = line_of_row(files, table, int(bad[0]))
        raise MovieLensFormatError(
            f"{files.describe(table.name)} line {number}: rating {rating[bad[0]]} is outside the "
            f"{files.release.name} scale {low}..{high} ({bad.size:,} such rows)"
        )


# MovieLens' ratings start in 1995 (ML-20M's first: 1995-01-09). A time before that, or in the
# future, is a damaged row, e.g. the last line of a file cut inside its timestamp.
FIRST_TIMESTAMP = 788_918_400  # 1995-01-01 00:00 UTC


def _check_timestamps(files, table, timestamp: np.ndarray) -> None:
    now = int(time.time())
    bad = np.flatnonzero((timestamp < FIRST_TIMESTAMP) | (timestamp > now))
    if bad.size:
        number = line_of_row(files, table, int(bad[0]))
        when = time.strftime("%Y-%m-%d", time.gmtime(max(int(timestamp[bad[0]]), 0)))
        raise MovieLensFormatError(
            f"{files.describe(table.name)} line {number}: timestamp {timestamp[bad[0]]} ({when}) "
            f"is outside 1995-01-01..now, where MovieLens ratings lie ({bad.size:,} such rows); "
            f"the file is damaged, {where_to_get(files.release)}"
        )


def _latest_of_duplicates(pair: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """Mask keeping, of each repeated `pair`, the row with the latest timestamp (then the last).

    MovieLens files list each user's ratings by movieId, so the usual check is one linear pass;
    only the few repeated rows get sorted by time.
    """
    keep = np.ones(pair.size, bool)
    by_pair = None if np.all(pair[1:] >= pair[:-1]) else np.argsort(pair, kind="stable")
    ordered = pair if by_pair is None else pair[by_pair]
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return keep
    involved = np.zeros(pair.size, bool)
    involved[1:] |= same
    involved[:-1] |= same
    rows = np.flatnonzero(involved) if by_pair is None else by_pair[involved]
    rows = rows[np.lexsort((rows, timestamp[rows], pair[rows]))]
    last = np.append(pair[rows][1:] != pair[rows][:-1], True)
    keep[rows[~last]] = False
    return keep


def ratings_from_files(files: ReleaseFiles, report: ReadReport) -> pd.DataFrame:
    table = ratings_table(files)
    files.require(table.name)
    columns = header_columns(files, table)
    frame = parse_numeric_table(files, table, columns)
    if frame.empty:
        raise MovieLensFormatError(
            f"{files.describe(table.name)} has no rating rows; {where_to_get(files.release)}"
        )
    user = frame["userId"].to_numpy()
    movie = frame["movieId"].to_numpy()
    rating = frame["rating"].to_numpy()
    _check_rating_values(files, table, rating)
    if "timestamp" in frame:
        timestamp = frame["timestamp"].to_numpy()
        _check_timestamps(files, table, timestamp)
    else:
        timestamp = np.full(len(frame), -1, np.int64)
    del frame

    user_code, user_ids = dense_codes(user)
    movie_code, movie_ids = dense_codes(movie)
    n_users, n_movies = user_ids.size, movie_ids.size
    pair = composite_key([(user_code, n_users), (movie_code, n_movies)])
    keep = _latest_of_duplicates(pair, timestamp)
    del pair
    dropped = int(keep.size - np.count_nonzero(keep))
    if dropped:
        user, movie, rating, timestamp = user[keep], movie[keep], rating[keep], timestamp[keep]
        user_code, movie_code = user_code[keep], movie_code[keep]
    del keep

    # Sorted by user, then time, then movieId: one stable argsort of a packed key, where numpy's
    # lexsort would make three passes of indirect sorting over 20M rows.
    time_span = int(timestamp.max() - timestamp.min()) + 1
    if bits(n_users) + bits(time_span) + bits(n_movies) <= 63:
        time_code, n_times = timestamp - timestamp.min(), time_span
    else:
        time_code, times = dense_codes(timestamp)
        n_times = times.size
    order = np.argsort(
        composite_key([(user_code, n_users), (time_code, n_times), (movie_code, n_movies)]),
        kind="stable",
    )
    del user_code, movie_code, time_code
    ratings = pd.DataFrame(
        {"userId": user[order], "movieId": movie[order], "rating": rating[order],
         "timestamp": timestamp[order]},
        copy=False,
    )
    report.ratings = len(ratings)
    report.users = n_users
    report.rated_movies = n_movies
    report.duplicate_ratings_dropped = dropped
    report.has_timestamps = "timestamp" in columns
    return ratings


def read_ratings(release: str, path, report: ReadReport | None = None) -> pd.DataFrame:
    """The ratings table of schema.py: sorted by userId, then timestamp (then movieId).

    Duplicate (userId, movieId) rows: the one with the latest timestamp is kept (on equal
    timestamps, the last in the file); how many were dropped goes into `report`.
    """
    report = report if report is not None else ReadReport()
    with release_files(release, path) as files:
        report.source = str(files.location)
        return ratings_from_files(files, report)

