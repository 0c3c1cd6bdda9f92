"""Finding and opening a release (folder, zip, parent folder) and reading all of it, per layout."""

import shutil
import types
import zipfile

import pandas as pd
import pytest

from tf_datasets.hvae_movielens.dummy_data import write_tiny_20m
from tf_datasets.hvae_movielens.files import MovieLensFormatError, ReadReport, locate_release
from tf_datasets.hvae_movielens.movies import read_movies
from tf_datasets.hvae_movielens.ratings import read_ratings


@pytest.fixture
def ml20m(tmp_path):
    return write_tiny_20m(tmp_path / "ml-20m")


def read_both(release, path, report=None):
    """Both tables of a release, as the builder's two configs read them."""
    report = report if report is not None else ReadReport()
    movies, genome_tags = read_movies(release, path, report=report)
    ratings = read_ratings(release, path, report)
    return types.SimpleNamespace(ratings=ratings, movies=movies, genome_tags=genome_tags,
                                 has_genome=bool(genome_tags))


def test_folder_zip_and_parent_folder_read_the_same(tmp_path, ml20m):
    archive = tmp_path / "ml-20m.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in ml20m.iterdir():
            z.write(f, f"ml-20m/{f.name}")
    zipped_only = tmp_path / "zipped"
    zipped_only.mkdir()
    shutil.copy(archive, zipped_only / "ml-20m.zip")
    direct = read_both("20m", ml20m)
    for path in (archive, tmp_path, zipped_only):
        other = read_both("20m", path)
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
    data = read_both("1m", tmp_path)
    assert data.movies.title.tolist() == ["Caf\u00e9 Story (1995)", "Plain (1996)"]
    assert data.movies.genres[0] == ("Animation", "Children")
    assert data.ratings.movieId.tolist() == [20, 10, 20]  # user 1 by time
    assert data.ratings.timestamp.tolist() == [978300000, 978300760, 5]
    assert not data.has_genome and (data.movies.imdbId == "").all()


def test_1m_ratings_csv_without_timestamps(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating\n1,20,4\n1,10,5\n")
    (tmp_path / "movies.dat").write_text("10::A (1990)::Drama\n20::B (1991)::Comedy\n")
    (tmp_path / "links.csv").write_text("movieId,imdbId,tmdbId\n10,0000042,\n")
    report = ReadReport()
    data = read_both("1m", tmp_path, report=report)
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
    data = read_both("100k", folder)
    assert data.movies.genres.tolist() == [("Children",), ("Unknown", "Action")]
    assert data.movies.title[1] == "Caf\u00e9 (1996)"
    assert (data.movies.imdbId == "").all()  # the IMDb URL is no id
    assert data.ratings.movieId.tolist() == [1, 2]


def test_missing_file_names_it_and_the_download(tmp_path):
    folder = write_tiny_20m(tmp_path / "ml-20m", {"movies.csv": None})
    with pytest.raises(FileNotFoundError) as error:
        read_both("20m", folder)
    assert "movies.csv is missing" in str(error.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-20m.zip" in str(error.value)


def test_no_release_in_folder_says_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected ml-1m/ .*ml-1m\.zip"):
        locate_release("1m", tmp_path)


def test_empty_file(tmp_path):
    folder = write_tiny_20m(tmp_path / "ml-20m", {"genome-scores.csv": ""})
    with pytest.raises(MovieLensFormatError, match=r"genome-scores\.csv is empty"):
        read_both("20m", folder)
    folder = write_tiny_20m(tmp_path / "other" / "ml-20m", {"ratings.csv": "userId,movieId,rating,timestamp\n"})
    with pytest.raises(MovieLensFormatError, match=r"ratings\.csv has no rating rows"):
        read_ratings("20m", folder)


def test_real_latest_small(shared_data):
    report = ReadReport()
    data = read_both("latest-small", shared_data / "ml-latest-small", report=report)
    assert len(data.ratings) == 100_836 and data.ratings.userId.nunique() == 610
    assert len(data.movies) == 9_742
    assert report.duplicate_ratings_dropped == 0
    assert data.ratings.groupby("userId").timestamp.apply(lambda t: t.is_monotonic_increasing).all()
