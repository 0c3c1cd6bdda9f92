"""The ratings reader on tiny hand-written releases: order, duplicates, malformed rows."""

import numpy as np
import pandas as pd
import pytest

from tf_datasets.hvae_movielens.columns import RATING_COLUMNS
from tf_datasets.hvae_movielens.dummy_data import write_tiny_20m
from tf_datasets.hvae_movielens.files import MovieLensFormatError, ReadReport
from tf_datasets.hvae_movielens.ratings import read_ratings


@pytest.fixture
def ml20m(tmp_path):
    return write_tiny_20m(tmp_path / "ml-20m")


def test_ratings_sorted_by_user_then_time_latest_duplicate_kept(ml20m):
    report = ReadReport()
    ratings = read_ratings("20m", ml20m, report)
    assert list(ratings.columns) == list(RATING_COLUMNS)
    assert [str(ratings[c].dtype) for c in RATING_COLUMNS] == ["int64", "int64", "float32", "int64"]
    # user 1 by time: 20 (1e9 + 100), 30 (+200), 10 (+300); user 2: 40 rated twice, the later 4.5
    # kept; user 3: 10 (+9), then 20 and 30 tied at +10, ordered by movieId.
    assert ratings[["userId", "movieId"]].values.tolist() == [
        [1, 20], [1, 30], [1, 10], [2, 10], [2, 40], [3, 10], [3, 20], [3, 30]]
    assert ratings.loc[(ratings.userId == 2) & (ratings.movieId == 40), "rating"].item() == 4.5
    assert report.duplicate_ratings_dropped == 1
    assert (report.ratings, report.users, report.rated_movies) == (8, 3, 4)


def test_duplicate_policy_matches_a_slow_reference_on_random_data(tmp_path):
    rng = np.random.default_rng(7)
    n = 3000
    # Sparse, huge ids take the sort path of the id coding; repeats of (user, movie) are common.
    frame = pd.DataFrame({
        "userId": rng.choice([3, 10**12, 77, 5 * 10**9], n),
        "movieId": rng.choice(np.arange(1, 40) * 1000, n),
        "rating": rng.integers(1, 11, n) / 2,
        "timestamp": 1_000_000_000 + rng.integers(0, 50, n),
    })
    folder = write_tiny_20m(tmp_path / "ml-20m", {
        "ratings.csv": frame.to_csv(index=False),
        "movies.csv": "movieId,title,genres\n" + "".join(
            f"{m},M{m} (2000),Drama\n" for m in range(1000, 40000, 1000)),
    })
    report = ReadReport()
    got = read_ratings("20m", folder, report)

    frame["line"] = np.arange(n)
    expected = (frame.sort_values(["timestamp", "line"])
                .groupby(["userId", "movieId"]).tail(1)
                .sort_values(["userId", "timestamp", "movieId"]))
    np.testing.assert_array_equal(got[list(RATING_COLUMNS)].to_numpy(),
                                  expected[list(RATING_COLUMNS)].to_numpy())
    assert report.duplicate_ratings_dropped == n - len(expected)


@pytest.mark.parametrize("bad_line, why", [
    ("2,10,abc,5", r"line 4: rating 'abc' is not a number"),
    ("2,10,4.0", r"line 4: expected 4 fields .* found 3"),
    ("2,10,4.0,5,6", r"line 4: expected 4 fields .* found 5"),
    ("2,x,4.0,5", r"line 4: movieId 'x' is not an integer"),
    ("2.5,10,4.0,5", r"line 4: userId '2.5' is not an integer"),
    ("2,10,nan,5", r"line 4: rating 'nan' is not a finite number"),
])
def test_malformed_rating_row_names_the_line(tmp_path, bad_line, why):
    text = "userId,movieId,rating,timestamp\n1,10,4.0,1\n\n" + bad_line + "\n3,20,1.0,2\n"
    folder = write_tiny_20m(tmp_path / "ml-20m", {"ratings.csv": text})
    with pytest.raises(MovieLensFormatError, match=r"ratings\.csv " + why):
        read_ratings("20m", folder)


def test_rating_outside_scale_names_the_line(tmp_path):
    text = "1::10::5::1\n1::20::6::2\n"
    (tmp_path / "ratings.dat").write_text(text)
    (tmp_path / "movies.dat").write_text("10::A (1990)::Drama\n20::B (1991)::Drama\n")
    with pytest.raises(MovieLensFormatError,
                       match=r"ratings\.dat line 2: rating 6\.0 is outside the 1m scale 1\.0\.\.5\.0"):
        read_ratings("1m", tmp_path)


@pytest.mark.parametrize("timestamp, shown", [(125, "1970-01-01"), (788_918_399, "1994-12-31"),
                                              (4_102_444_800, "2100-01-01")])
def test_timestamp_outside_1995_to_now_names_the_line(tmp_path, timestamp, shown):
    text = f"userId,movieId,rating,timestamp\n1,10,4.0,1000000000\n2,20,3.0,{timestamp}\n"
    folder = write_tiny_20m(tmp_path / "ml-20m", {"ratings.csv": text})
    with pytest.raises(MovieLensFormatError,
                       match=rf"ratings\.csv line 3: timestamp {timestamp} \({shown}\) is outside "
                             r"1995-01-01\.\.now"):
        read_ratings("20m", folder)


def test_first_valid_timestamp_and_no_timestamp_column_are_fine(tmp_path):
    text = "userId,movieId,rating,timestamp\n1,10,4.0,788918400\n"
    folder = write_tiny_20m(tmp_path / "ml-20m", {"ratings.csv": text})
    assert read_ratings("20m", folder).timestamp[0] == 788918400
    ml1m = tmp_path / "ml-1m"
    ml1m.mkdir()
    (ml1m / "ratings.csv").write_text("userId,movieId,rating\n1,10,4\n")  # a rebuilt ml-1m: no timestamps
    (ml1m / "movies.dat").write_text("10::A (1990)::Drama\n")
    assert read_ratings("1m", ml1m).timestamp.tolist() == [-1]
