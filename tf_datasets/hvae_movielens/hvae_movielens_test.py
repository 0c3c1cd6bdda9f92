"""hvae_movielens builder: TFDS's standard builder checks on dummy data, plus our own behaviour.

The dummy data (dummy_data.py, written to a temporary folder): extracted/ stands for what
download_and_extract gives (ml-20m/, ml-1m/ folders of invented movies); omdb.jsonl is what a
manual dir may add.
"""

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tf_datasets.hvae_movielens import hvae_movielens
from tf_datasets.hvae_movielens.dummy_data import dummy_data_dir
from tf_datasets.hvae_movielens.files import source_fingerprint
from tf_datasets.hvae_movielens.releases import RELEASES

DUMMY = dummy_data_dir()


class _DummyData:
    """Shared settings; each config gets its own test class because SPLITS is one per class."""

    DATASET_CLASS = hvae_movielens.HvaeMovielens
    EXAMPLE_DIR = str(DUMMY)
    DL_EXTRACT_RESULT = "extracted"


# extracted/ml-20m: 5 users, 6 movies; ml-1m: 4 users, 4 movies.
class Movielens20mUsersTest(_DummyData, tfds.testing.DatasetBuilderTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = ["20m-users"]
    SPLITS = {"train": 5}


class Movielens20mMoviesTest(_DummyData, tfds.testing.DatasetBuilderTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = ["20m-movies"]
    SPLITS = {"train": 6}


class Movielens1mUsersTest(_DummyData, tfds.testing.DatasetBuilderTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = ["1m-users"]
    SPLITS = {"train": 4}


def test_configs_cover_every_release_and_default_is_20m_users():
    names = [c.name for c in hvae_movielens.HvaeMovielens.BUILDER_CONFIGS]
    assert names[0] == "20m-users"
    assert sorted(names) == sorted(f"{r}-{t}" for r in RELEASES for t in ("users", "movies"))


def _manual_build(config: str, data_dir: Path) -> hvae_movielens.HvaeMovielens:
    builder = hvae_movielens.HvaeMovielens(config=config, data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY / "extracted"))
    )
    return builder


def test_manual_dir_is_used_without_downloading(tmp_path):
    with mock.patch.object(
        tfds.download.DownloadManager, "download_and_extract", side_effect=AssertionError("download")
    ):
        builder = _manual_build("20m-users", tmp_path)
    users = {int(ex["user_id"]): ex for ex in tfds.as_numpy(builder.as_dataset(split="train"))}
    # ratings.csv: user 2 rated movie 40 twice (2.0 then 4.5): the later one is kept.
    np.testing.assert_array_equal(users[2]["movie_ids"], [10, 40])
    np.testing.assert_array_equal(users[2]["ratings"], [0.5, 4.5])
    # user 3: movie 60 first (earlier time), then 20 and 50 at the same time, by movieId.
    np.testing.assert_array_equal(users[3]["movie_ids"], [60, 20, 50])
    assert all(np.all(np.diff(ex["timestamps"]) >= 0) for ex in users.values())
    assert builder.info.metadata["read_report"]["duplicate_ratings_dropped"] == 1


def test_movies_carry_genome_and_manual_omdb(tmp_path):
    builder = hvae_movielens.HvaeMovielens(config="20m-movies", data_dir=tmp_path)
    # The release in the manual dir's extracted/ folder is not found directly: the download
    # (mocked) provides it, while omdb.jsonl comes from the manual dir.
    with mock.patch.object(
        tfds.download.DownloadManager, "download_and_extract", return_value=DUMMY / "extracted"
    ):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY))
        )
    movies = {int(ex["movie_id"]): ex for ex in tfds.as_numpy(builder.as_dataset(split="train"))}
    assert builder.info.metadata["genome_tags"] == ["made-up tag", "tag, with a comma", "last tag"]
    np.testing.assert_allclose(movies[10]["genome_relevance"], [0.125, 0.5, 0.875])
    assert movies[40]["genome_relevance"].shape == (0,)
    assert [g.decode() for g in movies[40]["genres"]] == ["(no genres listed)"]
    assert movies[40]["year"] == -1 and movies[10]["year"] == 1995
    assert movies[10]["has_omdb"] and movies[10]["omdb_imdb_rating"] == b"8.3"
    assert not movies[40]["has_omdb"]  # its record says "Response": "False"
    assert movies[50]["imdb_id"] == b"tt12345678" and movies[60]["imdb_id"] == b""


def test_both_configs_record_the_source_fingerprint_of_every_file_read(tmp_path):
    manual = DUMMY / "extracted"
    built = [_manual_build(config, tmp_path) for config in ("20m-users", "20m-movies")]
    expected = source_fingerprint("20m", manual)
    for builder in built:
        # Read back from metadata.json by a fresh builder, as a later run sees it.
        again = hvae_movielens.HvaeMovielens(config=builder.builder_config.name, data_dir=tmp_path)
        assert again.info.metadata["source_fingerprint"]["digest"] == expected["digest"]
    names = [entry["name"] for entry in expected["files"]]
    assert names == ["ratings.csv", "movies.csv", "links.csv", "genome-tags.csv", "genome-scores.csv"]
    assert all(len(entry["sha256"]) == 64 and entry["size"] > 0 for entry in expected["files"])


def test_no_internet_and_no_manual_dir_names_both_ways(tmp_path):
    builder = hvae_movielens.HvaeMovielens(config="1m-users", data_dir=tmp_path)
    with mock.patch.object(
        tfds.download.DownloadManager, "download_and_extract",
        side_effect=ConnectionError("network is unreachable"),
    ), pytest.raises(ConnectionError) as error:
        builder.download_and_prepare()
    message = str(error.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in message
    assert "internet" in message and "manual dir" in message and "ml-1m/" in message


def test_interrupted_build_leaves_nothing_loadable_and_next_build_succeeds(tmp_path):
    builder = hvae_movielens.HvaeMovielens(config="20m-users", data_dir=tmp_path)
    generate = builder._generate_examples

    def dies_half_way(*args, **kwargs):
        for i, example in enumerate(generate(*args, **kwargs)):
            if i == 2:
                raise KeyboardInterrupt("killed half-way")
            yield example

    with mock.patch.object(builder, "_generate_examples", dies_half_way), \
            pytest.raises(KeyboardInterrupt):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY / "extracted"))
        )
    assert not builder.is_prepared()
    assert not hvae_movielens.HvaeMovielens(config="20m-users", data_dir=tmp_path).is_prepared()
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and "tfrecord" in p.name]
    assert leftovers == []
    with pytest.raises(AssertionError, match="could not find data"):
        tfds.load("hvae_movielens/20m-users", data_dir=tmp_path, download=False, split="train")

    rebuilt = _manual_build("20m-users", tmp_path)
    assert rebuilt.info.splits["train"].num_examples == 5
    assert len(list(rebuilt.as_dataset(split="train"))) == 5


if __name__ == "__main__":
    tfds.testing.test_main()
