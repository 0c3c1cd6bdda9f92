"""load_movielens: building the TFDS dataset from the real ml-1m / latest-small and reading it back."""

import shutil
import subprocess
import sys
import time
import urllib.error
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from conftest import set_dead_proxy

from hvae_tf.data import loading
from tf_datasets.hvae_movielens import HvaeMovielens
from tf_datasets.hvae_movielens.dummy_data import dummy_data_dir, write_tiny_20m
from tf_datasets.hvae_movielens.files import MovieLensFormatError, source_fingerprint
from tf_datasets.hvae_movielens.ratings import read_ratings


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="session")
def ml1m(shared_data, tfds_dir):
    """The real ml-1m, built once per session through the builder from its manual dir."""
    return loading.load_movielens("1m", data_dir=tfds_dir, manual_dir=shared_data / "ml-1m")


def test_1m_counts(ml1m):
    # Facts about the real files (ratings.csv there has no timestamps).
    ratings = ml1m.ratings
    assert len(ratings) == 1_000_209
    assert ratings.userId.nunique() == 6_040
    assert ratings.movieId.nunique() == 3_706
    assert int((ratings.rating > 3.5).sum()) == 575_281
    assert ml1m.movies.has_omdb.sum() > 3_800
    assert (ratings.timestamp == -1).all()
    assert not ml1m.has_genome and ml1m.genome_tags == []


def _assert_same_data(loaded, read):
    pd.testing.assert_frame_equal(loaded.ratings, read.ratings)
    pd.testing.assert_frame_equal(loaded.movies.drop(columns="genome_relevance"),
                                  read.movies.drop(columns="genome_relevance"))
    assert all(np.array_equal(a, b) for a, b in
               zip(loaded.movies.genome_relevance, read.movies.genome_relevance))
    assert loaded.genome_tags == read.genome_tags


def test_1m_round_trip_equals_the_raw_files(ml1m, shared_data):
    _assert_same_data(ml1m, loading.read_release("1m", shared_data / "ml-1m"))


def test_built_dataset_is_reused_without_the_raw_files(ml1m, tfds_dir):
    with mock.patch.object(HvaeMovielens, "download_and_prepare",
                           side_effect=AssertionError("rebuilt")):
        again = loading.load_movielens("1m", data_dir=tfds_dir)
    assert len(again.ratings) == len(ml1m.ratings)
    assert "1,000,209 ratings, 6,040 users" in loading.summary(again)


def test_1m_summary_reports_links_and_omdb_and_warns_of_nothing(ml1m, shared_data):
    text = loading.summary(ml1m)
    assert "IMDb ids: 3,849 of 3,883 movies" in text
    assert "OMDb: 3,847 movies matched from 3,847 records" in text
    assert "WARNING" not in text  # the published counts, and under 5% lost to links or OMDb
    assert ml1m.fingerprint == source_fingerprint(
        "1m", shared_data / "ml-1m", shared_data / "ml-1m" / "omdb.jsonl")["digest"]


def test_same_files_elsewhere_are_not_rebuilt(ml1m, tfds_dir, shared_data, tmp_path):
    """The fingerprint is of the files' content: the same release moved or copied reuses the
    dataset built from it."""
    copy = shutil.copytree(shared_data / "ml-1m", tmp_path / "ml-1m")
    with mock.patch.object(HvaeMovielens, "download_and_prepare",
                           side_effect=AssertionError("rebuilt")):
        again = loading.load_movielens("1m", data_dir=tfds_dir, manual_dir=copy)
    assert again.fingerprint == ml1m.fingerprint
    assert len(again.ratings) == len(ml1m.ratings)


def test_latest_small_users(shared_data, tfds_dir):
    # Only the users config: building latest-small's 9,742 movies costs 10 s and adds nothing
    # that ml-1m's movies do not already test.
    builder = loading.built_builder("latest-small", "users", tfds_dir,
                                    shared_data / "ml-latest-small")
    ratings = loading.ratings_from_builder(builder)
    assert len(ratings) == 100_836
    assert ratings.userId.nunique() == 610
    pd.testing.assert_frame_equal(
        ratings, read_ratings("latest-small", shared_data / "ml-latest-small"))


def test_genome_round_trip(tmp_path):
    """The dummy 20m release (with genome) survives the build: vectors and tag names."""
    dummy = dummy_data_dir() / "extracted"
    data = loading.load_movielens("20m", data_dir=tmp_path, manual_dir=dummy)
    _assert_same_data(data, loading.read_release("20m", dummy))
    assert data.has_genome and len(data.genome_tags) == 3


def test_two_processes_building_one_release_at_once_both_read_it(tmp_path):
    """The second waits for the first's build rather than deleting the files it is writing."""
    read = ("import sys; from hvae_tf.data import loading; "
            "print(len(loading.load_movielens('20m', data_dir=sys.argv[1], manual_dir=sys.argv[2]).ratings))")
    starts = [subprocess.Popen([sys.executable, "-c", read, str(tmp_path), str(dummy_data_dir() / "extracted")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    ends = [start.communicate(timeout=600) for start in starts]
    assert [start.returncode for start in starts] == [0, 0], [err[-2000:] for _, err in ends]
    counts = [out.splitlines()[-1] for out, _ in ends]  # after TFDS's own messages
    assert counts == [str(len(loading.read_release("20m", dummy_data_dir() / "extracted").ratings))] * 2


def test_wrong_manual_dir_fails_before_building(tmp_path):
    (tmp_path / "manual").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no MovieLens 1m release in .*ml-1m\.zip"):
        loading.load_movielens("1m", data_dir=tmp_path / "tfds", manual_dir=tmp_path / "manual")
    assert not (tmp_path / "tfds").exists()


def test_unknown_release():
    with pytest.raises(ValueError, match="unknown MovieLens release '10m'"):
        loading.load_movielens("10m")


def test_offline_without_manual_dir_fails_at_once_naming_the_offline_ways(tmp_path):
    no_network = urllib.error.URLError(OSError("Name or service not known"))
    with mock.patch("urllib.request.urlopen", side_effect=no_network), \
            mock.patch.object(HvaeMovielens, "download_and_prepare",
                              side_effect=AssertionError("TFDS would retry for minutes")), \
            pytest.raises(loading.DownloadUnavailable) as error:
        loading.load_movielens("latest-small", data_dir=tmp_path)
    message = str(error.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip" in message
    assert "--manual-dir" in message and "--dataset generated" in message


def test_an_unreachable_proxy_fails_within_seconds(tmp_path, monkeypatch):
    set_dead_proxy(monkeypatch)
    started = time.monotonic()
    with mock.patch.object(HvaeMovielens, "download_and_prepare",
                           side_effect=AssertionError("TFDS would wait on the proxy")), \
            pytest.raises(loading.DownloadUnavailable, match="--manual-dir"):
        loading.load_movielens("latest-small", data_dir=tmp_path)
    assert time.monotonic() - started < 10


def test_rating_of_unlisted_movie_is_an_error(tmp_path):
    folder = write_tiny_20m(tmp_path / "ml-20m", {"ratings.csv": "userId,movieId,rating,timestamp\n1,99,4,1000000000\n"})
    with pytest.raises(MovieLensFormatError, match="rates movie 99"):
        loading.read_release("20m", folder)
