"""Raw MovieLens readers on tiny hand-written releases (and the real latest-small)."""

import json
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from hvae_tf.data import readers
from hvae_tf.data.schema import MOVIE_COLUMNS, RATING_COLUMNS

RATINGS_20M = """userId,movieId,rating,timestamp
1,10,4.0,300
1,20,3.5,100
1,30,5.0,200
2,10,0.5,50
2,40,2.0,60
2,40,4.5,70
3,20,4.0,10
3,30,1.0,10
3,10,3.0,9
"""
MOVIES_20M = """movieId,title,genres
10,Invented Picture (1995),Adventure|Children
20,"Second Invention, The (2001)",Comedy
30,No Year Here,(no genres listed)
40,Series (2007-),Drama
"""
LINKS_20M = "movieId,imdbId,tmdbId\n10,0000010,1\n20,12345678,\n30,,3\n"
GENOME_TAGS = "tagId,tag\n1,first\n2,\"second, with comma\"\n"
GENOME_SCORES = "movieId,tagId,relevance\n10,1,0.25\n10,2,0.75\n20,2,0.5\n20,1,1.0\n"


def write_20m(folder, overrides=None):
    """A tiny ml-20m/ folder; `overrides` maps a file name to its text (None: no such file)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "ratings.csv": RATINGS_20M, "movies.csv": MOVIES_20M, "links.csv": LINKS_20M,
        "genome-tags.csv": GENOME_TAGS, "genome-scores.csv": GENOME_SCORES,
    }
    files.update(overrides or {})
    for name, text in files.items():
        if text is not None:
            (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


@pytest.fixture
def ml20m(tmp_path):
    return write_20m(tmp_path / "ml-20m")


def test_ratings_sorted_by_user_then_time_latest_duplicate_kept(ml20m):
    report = readers.ReadReport()
    ratings = readers.read_ratings("20m", ml20m, report)
    assert list(ratings.columns) == list(RATING_COLUMNS)
    assert [str(ratings[c].dtype) for c in RATING_COLUMNS] == ["int64", "int64", "float32", "int64"]
    # user 1 by time: 20 (100), 30 (200), 10 (300); user 2: 40 rated twice, the later 4.5 kept;
    # user 3: 10 (time 9), then 20 and 30 tied at time 10, ordered by movieId.
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
        "timestamp": rng.integers(0, 50, n),
    })
    folder = write_20m(tmp_path / "ml-20m", {
        "ratings.csv": frame.to_csv(index=False),
        "movies.csv": "movieId,title,genres\n" + "".join(
            f"{m},M{m} (2000),Drama\n" for m in range(1000, 40000, 1000)),
    })
    report = readers.ReadReport()
    got = readers.read_ratings("20m", folder, report)

    frame["line"] = np.arange(n)
    expected = (frame.sort_values(["timestamp", "line"])
                .groupby(["userId", "movieId"]).tail(1)
                .sort_values(["userId", "timestamp", "movieId"]))
    np.testing.assert_array_equal(got[list(RATING_COLUMNS)].to_numpy(),
                                  expected[list(RATING_COLUMNS)].to_numpy())
    assert report.duplicate_ratings_dropped == n - len(expected)


def test_movies_table(ml20m):
    movies, tags = readers.read_movies("20m", ml20m)
    assert list(movies.columns) == list(MOVIE_COLUMNS)
    assert movies.movieId.tolist() == [10, 20, 30, 40]
    assert movies.year.tolist() == [1995, 2001, -1, 2007]
    assert movies.genres.tolist() == [("Adventure", "Children"), ("Comedy",),
                                      ("(no genres listed)",), ("Drama",)]
    assert movies.imdbId.tolist() == ["tt0000010", "tt12345678", "", ""]
    assert tags == ["first", "second, with comma"]
    np.testing.assert_array_equal(movies.genome_relevance[0], np.float32([0.25, 0.75]))
    np.testing.assert_array_equal(movies.genome_relevance[1], np.float32([1.0, 0.5]))
    assert [v.size for v in movies.genome_relevance] == [2, 2, 0, 0]
    assert not movies.has_omdb.any() and (movies.omdb_plot == "").all()


def test_omdb_matching_missing_records_and_bad_bytes(tmp_path):
    write_20m(tmp_path / "ml-20m")
    lines = [
        json.dumps({"imdbID": "tt0000010", "Plot": "Caf\u00e9 plot", "imdbRating": "7.1",
                    "Response": "True"}).encode(),
        json.dumps({"imdbID": "tt12345678", "Response": "False"}).encode(),
        b'{"imdbID": "tt9999999", "Plot": "bad \xff byte", "Response": "True"}',
    ]
    (tmp_path / "omdb.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    report = readers.ReadReport()
    movies, _ = readers.read_movies("20m", tmp_path, report=report)  # the folder holding ml-20m/
    assert movies.has_omdb.tolist() == [True, False, False, False]
    assert movies.omdb_plot[0] == "Caf\u00e9 plot" and movies.omdb_imdb_rating[0] == "7.1"
    assert movies.omdb_title[0] == ""  # absent key -> ""
    assert (report.omdb_records, report.omdb_not_found_records) == (3, 1)
    assert (report.omdb_unmatched_records, report.omdb_lines_with_bad_bytes) == (1, 1)
    records = readers.read_omdb(tmp_path / "omdb.jsonl")
    assert records["tt9999999"]["omdb_plot"] == "bad \ufffd byte"


def test_malformed_omdb_line_names_file_and_line(tmp_path):
    path = tmp_path / "omdb.jsonl"
    path.write_text('{"imdbID": "tt0000010", "Response": "True"}\n\n{"imdbID": oops}\n')
    with pytest.raises(readers.MovieLensFormatError, match=r"omdb\.jsonl line 3"):
        readers.read_omdb(path)


def test_folder_zip_and_parent_folder_read_the_same(tmp_path, ml20m):
    archive = tmp_path / "ml-20m.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in ml20m.iterdir():
            z.write(f, f"ml-20m/{f.name}")
    zipped_only = tmp_path / "zipped"
    zipped_only.mkdir()
    shutil.copy(archive, zipped_only / "ml-20m.zip")
    direct = readers.read_release("20m", ml20m)
    for path in (archive, tmp_path, zipped_only):
        other = readers.read_release("20m", path)
        pd.testing.assert_frame_equal(other.ratings, direct.ratings)
        pd.testing.assert_frame_equal(other.movies.drop(columns="genome_relevance"),
                                      direct.movies.drop(columns="genome_relevance"))
        assert other.genome_tags == direct.genome_tags


def test_1m_dat_files_latin1_and_childrens(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_bytes(b"1::10::5::978300760\n1::20::3::978300000\n2::20::1::5\n")
    (folder / "movies.dat").write_bytes(
        b"10::Caf\xe9 Story (1995)::Animation|Children's\n20::Plain (1996)::Drama\n")
    data = readers.read_release("1m", tmp_path)
    assert data.movies.title.tolist() == ["Caf\u00e9 Story (1995)", "Plain (1996)"]
    assert data.movies.genres[0] == ("Animation", "Children")
    assert data.ratings.movieId.tolist() == [20, 10, 20]  # user 1 by time
    assert data.ratings.timestamp.tolist() == [978300000, 978300760, 5]
    assert not data.has_genome and (data.movies.imdbId == "").all()


def test_1m_ratings_csv_without_timestamps(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating\n1,20,4\n1,10,5\n")
    (tmp_path / "movies.dat").write_text("10::A (1990)::Drama\n20::B (1991)::Comedy\n")
    (tmp_path / "links.csv").write_text("movieId,imdbId,tmdbId\n10,0000042,\n")
    report = readers.ReadReport()
    data = readers.read_release("1m", tmp_path, report=report)
    assert data.ratings.timestamp.tolist() == [-1, -1]
    assert data.ratings.movieId.tolist() == [10, 20]
    assert data.movies.imdbId.tolist() == ["tt0000042", ""]
    assert not report.has_timestamps


def test_100k_files(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("1\t2\t3\t881250949\n1\t1\t4\t881250000\n")
    (folder / "u.genre").write_text("unknown|0\nAction|1\nChildren's|2\n\n")
    (folder / "u.item").write_bytes(
        b"1|Toy Tale (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy|0|0|1\n"
        b"2|Caf\xe9 (1996)|01-Jan-1996||http://x|1|1|0\n")
    data = readers.read_release("100k", folder)
    assert data.movies.genres.tolist() == [("Children",), ("Unknown", "Action")]
    assert data.movies.title[1] == "Caf\u00e9 (1996)"
    assert (data.movies.imdbId == "").all()  # the IMDb URL is no id
    assert data.ratings.movieId.tolist() == [1, 2]


def test_missing_file_names_it_and_the_download(tmp_path):
    folder = write_20m(tmp_path / "ml-20m", {"movies.csv": None})
    with pytest.raises(FileNotFoundError) as error:
        readers.read_release("20m", folder)
    assert "movies.csv is missing" in str(error.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-20m.zip" in str(error.value)


def test_no_release_in_folder_says_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected ml-1m/ .*ml-1m\.zip"):
        readers.locate_release("1m", tmp_path)


def test_empty_file(tmp_path):
    folder = write_20m(tmp_path / "ml-20m", {"genome-scores.csv": ""})
    with pytest.raises(readers.MovieLensFormatError, match=r"genome-scores\.csv is empty"):
        readers.read_release("20m", folder)
    folder = write_20m(tmp_path / "other" / "ml-20m", {"ratings.csv": "userId,movieId,rating,timestamp\n"})
    with pytest.raises(readers.MovieLensFormatError, match=r"ratings\.csv has no rating rows"):
        readers.read_ratings("20m", folder)


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
    folder = write_20m(tmp_path / "ml-20m", {"ratings.csv": text})
    with pytest.raises(readers.MovieLensFormatError, match=r"ratings\.csv " + why):
        readers.read_ratings("20m", folder)


def test_rating_outside_scale_names_the_line(tmp_path):
    text = "1::10::5::1\n1::20::6::2\n"
    (tmp_path / "ratings.dat").write_text(text)
    (tmp_path / "movies.dat").write_text("10::A (1990)::Drama\n20::B (1991)::Drama\n")
    with pytest.raises(readers.MovieLensFormatError,
                       match=r"ratings\.dat line 2: rating 6\.0 is outside the 1m scale 1\.0\.\.5\.0"):
        readers.read_ratings("1m", tmp_path)


def test_rating_of_unlisted_movie_is_an_error(tmp_path):
    folder = write_20m(tmp_path / "ml-20m", {"ratings.csv": "userId,movieId,rating,timestamp\n1,99,4,1\n"})
    with pytest.raises(readers.MovieLensFormatError, match="rates movie 99"):
        readers.read_release("20m", folder)


def test_incomplete_genome_is_an_error(tmp_path):
    folder = write_20m(tmp_path / "ml-20m", {"genome-scores.csv": "movieId,tagId,relevance\n10,1,0.5\n"})
    with pytest.raises(readers.MovieLensFormatError, match="movie 10 does not have exactly one"):
        readers.read_movies("20m", folder)


def test_real_latest_small(shared_data):
    report = readers.ReadReport()
    data = readers.read_release("latest-small", shared_data / "ml-latest-small", report=report)
    assert len(data.ratings) == 100_836 and data.ratings.userId.nunique() == 610
    assert len(data.movies) == 9_742
    assert report.duplicate_ratings_dropped == 0
    assert data.ratings.groupby("userId").timestamp.apply(lambda t: t.is_monotonic_increasing).all()


def test_malformed_genome_row_names_the_line(tmp_path):
    scores = GENOME_SCORES.replace("20,2,0.5", "20,2,high")
    folder = write_20m(tmp_path / "ml-20m", {"genome-scores.csv": scores})
    with pytest.raises(readers.MovieLensFormatError,
                       match=r"genome-scores\.csv line 4: relevance 'high' is not a number"):
        readers.read_movies("20m", folder)
