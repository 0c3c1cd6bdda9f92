"""The movies, genome and OMDb readers on tiny hand-written releases."""

import json

import numpy as np
import pytest

from tf_datasets.hvae_movielens.columns import MOVIE_COLUMNS
from tf_datasets.hvae_movielens.dummy_data import TINY_GENOME_SCORES, write_tiny_20m
from tf_datasets.hvae_movielens.files import MovieLensFormatError, ReadReport
from tf_datasets.hvae_movielens.movies import read_movies
from tf_datasets.hvae_movielens.omdb import read_omdb


@pytest.fixture
def ml20m(tmp_path):
    return write_tiny_20m(tmp_path / "ml-20m")


def test_movies_table(ml20m):
    movies, tags = read_movies("20m", ml20m)
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
    write_tiny_20m(tmp_path / "ml-20m")
    lines = [
        json.dumps({"imdbID": "tt0000010", "Plot": "Caf\u00e9 plot", "imdbRating": "7.1",
                    "Response": "True"}).encode(),
        json.dumps({"imdbID": "tt12345678", "Response": "False"}).encode(),
        b'{"imdbID": "tt9999999", "Plot": "bad \xff byte", "Response": "True"}',
    ]
    (tmp_path / "omdb.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    report = ReadReport()
    movies, _ = read_movies("20m", tmp_path, report=report)  # the folder holding ml-20m/
    assert movies.has_omdb.tolist() == [True, False, False, False]
    assert movies.omdb_plot[0] == "Caf\u00e9 plot" and movies.omdb_imdb_rating[0] == "7.1"
    assert movies.omdb_title[0] == ""  # absent key -> ""
    assert (report.omdb_records, report.omdb_not_found_records) == (3, 1)
    assert (report.omdb_unmatched_records, report.omdb_lines_with_bad_bytes) == (1, 1)
    records = read_omdb(tmp_path / "omdb.jsonl")
    assert records["tt9999999"]["omdb_plot"] == "bad \ufffd byte"


def test_malformed_omdb_line_names_file_and_line(tmp_path):
    path = tmp_path / "omdb.jsonl"
    path.write_text('{"imdbID": "tt0000010", "Response": "True"}\n\n{"imdbID": oops}\n')
    with pytest.raises(MovieLensFormatError, match=r"omdb\.jsonl line 3"):
        read_omdb(path)


def test_incomplete_genome_is_an_error(tmp_path):
    folder = write_tiny_20m(tmp_path / "ml-20m", {"genome-scores.csv": "movieId,tagId,relevance\n10,1,0.5\n"})
    with pytest.raises(MovieLensFormatError, match="movie 10 does not have exactly one"):
        read_movies("20m", folder)


def test_malformed_genome_row_names_the_line(tmp_path):
    scores = TINY_GENOME_SCORES.replace("20,2,0.5", "20,2,high")
    folder = write_tiny_20m(tmp_path / "ml-20m", {"genome-scores.csv": scores})
    with pytest.raises(MovieLensFormatError,
                       match=r"genome-scores\.csv line 4: relevance 'high' is not a number"):
        read_movies("20m", folder)
