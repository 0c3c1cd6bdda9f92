"""Caches answer only for the data they were made from: a prepared TFDS dataset, a split and the
embeddings folder are each tied to the fingerprint of the raw files, so a subset, a fixed file or
another release in the same --data-dir is built again, never served from what was there.

Tiny releases are written here in ML-1M's and ML-20M's layouts; each test takes a few seconds.
"""

import dataclasses
import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from hvae_tf import embeddings
from hvae_tf.config import parse_args
from hvae_tf.data import loading, prepare
from hvae_tf.data.schema import MovieLensData
from tf_datasets.hvae_movielens import HvaeMovielens
from tf_datasets.hvae_movielens.dummy_data import write_tiny_20m
from tf_datasets.hvae_movielens.files import MovieLensFormatError, source_fingerprint
from tf_datasets.hvae_movielens.ratings import read_ratings


def write_1m(folder: Path, users, n_movies: int = 30, seed: int = 0) -> Path:
    """An ML-1M-layout release (ratings.dat, movies.dat): each user rates 12 random movies."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "movies.dat").write_text(
        "".join(f"{m}::Movie {m} (199{m % 10})::Drama\n" for m in range(1, n_movies + 1)))
    lines = []
    for user in range(1, max(users) + 1):
        movies = rng.choice(np.arange(1, n_movies + 1), 12, replace=False)
        ratings = rng.integers(1, 6, 12)
        if user in users:  # the same users rate the same movies in every subset
            lines += [f"{user}::{m}::{r}::{978300000 + i}\n" for i, (m, r) in enumerate(zip(movies, ratings))]
    (folder / "ratings.dat").write_text("".join(lines))
    return folder


def ratings_csv(users) -> str:
    """An ML-20M ratings.csv in which each user clicks the tiny release's movies 10, 20, 30."""
    return "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{m},4.5,{1000000000 + u}\n" for u in users for m in (10, 20, 30))


def config(data_dir, manual_dir, dataset="1m"):
    return parse_args(["--dataset", dataset, "--manual-dir", str(manual_dir), "--data-dir",
                       str(data_dir), "--protocol", "paper", "--heldout-users", "4"])


def split_users(split) -> set:
    return set(np.concatenate([split.train_user_ids, split.validation.user_ids,
                               split.test.user_ids]).tolist())


def prepared(data_dir, config_name) -> Path:
    return Path(data_dir) / "hvae_movielens" / config_name / str(HvaeMovielens.VERSION)


def no_build():
    return mock.patch.object(HvaeMovielens, "download_and_prepare",
                             side_effect=AssertionError("built again"))


# ---------------------------------------------------------------------------- a subset of users


@pytest.mark.parametrize("where", ["copy", "in place"])
def test_subset_of_users_rebuilds_dataset_split_and_embeddings_key(tmp_path, capsys, where):
    """Users removed from the release (in a copy, or the files rewritten in place) never come
    back from the TFDS dataset, the split cache or the embeddings cache of the full release."""
    everyone, removed = set(range(1, 41)), {3, 7, 11, 19, 23, 31}
    full = write_1m(tmp_path / "full" / "ml-1m", everyone)
    data_dir = tmp_path / "tfds"
    data, split = prepare.prepare(config(data_dir, full))
    assert split_users(split) == everyone
    full_key = prepare.split_key(config(data_dir, full), data)
    full_embeddings = embeddings.cache_dir(config(data_dir, full), data)
    capsys.readouterr()

    subset = full if where == "in place" else tmp_path / "subset" / "ml-1m"
    write_1m(subset, everyone - removed)
    cfg = config(data_dir, subset)
    data, split = prepare.prepare(cfg)
    out = capsys.readouterr().out
    assert not split_users(split) & removed
    assert split_users(split) == everyone - removed
    assert set(data.ratings.userId) == everyone - removed
    for name in ("1m-users", "1m-movies"):
        assert f"{prepared(data_dir, name)}: rebuilding: it was built from other files" in out
    assert "ratings.dat: " in out  # says which file changed
    assert prepare.split_key(cfg, data) != full_key
    assert embeddings.cache_dir(cfg, data) != full_embeddings
    assert len(list((data_dir / "hvae_splits").glob("*.npz"))) == 2

    # The same files again: nothing is rebuilt, the split is the cached one.
    with no_build():
        _, again = prepare.prepare(cfg)
    assert "rebuilding" not in capsys.readouterr().out
    np.testing.assert_array_equal(again.train_user_ids, split.train_user_ids)


def test_split_key_needs_the_data_fingerprint(tmp_path):
    cfg = config(tmp_path, tmp_path)
    data = MovieLensData("1m", None, None, [])
    with pytest.raises(ValueError, match="without a source fingerprint cannot key a cache"):
        prepare.split_key(cfg, data)
    keys = {prepare.split_key(cfg, MovieLensData("1m", None, None, [], fingerprint=f))
            for f in ("a", "b")}
    assert len(keys) == 2


def test_split_key_changes_with_the_protocols_code_and_new_movies(tmp_path, monkeypatch):
    """A split cached by older protocol code, or for another share of new movies, is never reused."""
    from hvae_tf.data import protocols

    data = MovieLensData("1m", None, None, [], fingerprint="a")
    cfg = config(tmp_path, tmp_path)
    key = prepare.split_key(cfg, data)
    assert prepare.split_key(dataclasses.replace(cfg, cold_movies=0.1), data) != key
    monkeypatch.setattr(protocols, "PROTOCOL_VERSION", protocols.PROTOCOL_VERSION + 1)
    assert prepare.split_key(cfg, data) != key


def test_feature_matrix_made_by_other_feature_code_is_built_again(tmp_path, monkeypatch):
    from hvae_tf.features import build

    cfg = dataclasses.replace(config(tmp_path / "tfds", write_1m(tmp_path / "ml-1m", range(1, 13))),
                              features="genre")
    data, split = prepare.prepare(cfg, verbose=False)
    calls = []
    real = embeddings.build_features
    monkeypatch.setattr(embeddings, "build_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = embeddings.feature_matrix(cfg, data, split)
    assert embeddings.feature_matrix(cfg, data, split).fingerprint() == first.fingerprint()
    assert len(calls) == 1  # the second answer came from the cache
    monkeypatch.setattr(build, "FEATURES_VERSION", build.FEATURES_VERSION + "-next")
    embeddings.feature_matrix(cfg, data, split)
    assert len(calls) == 2


# ---------------------------------------------------------------------------- another release


def write_latest_small_like(folder: Path) -> Path:
    """latest-small's files: ML-20M's names but no genome, so a 20m movies build fails."""
    write_tiny_20m(folder)
    (folder / "genome-tags.csv").unlink()
    (folder / "genome-scores.csv").unlink()
    return folder


def test_failed_build_leaves_neither_config_and_the_right_folder_builds_both(tmp_path, capsys):
    """--dataset forgotten (20m) with latest-small files: the users config builds, the movies
    config fails; neither may be left for a later run with the real 20m folder to pair with."""
    data_dir = tmp_path / "tfds"
    small = write_latest_small_like(tmp_path / "ml-latest-small")
    with pytest.raises(FileNotFoundError, match=r"genome-tags\.csv is missing"):
        prepare.prepare(config(data_dir, small, "20m"))
    out = capsys.readouterr().out
    assert f"{prepared(data_dir, '20m-users')}: removed: building 20m-movies failed" in out
    assert not prepared(data_dir, "20m-users").exists()
    assert not prepared(data_dir, "20m-movies").exists()

    real = write_tiny_20m(tmp_path / "real" / "ml-20m", {"ratings.csv": ratings_csv(range(10, 40))})
    data, split = prepare.prepare(config(data_dir, real, "20m"))
    assert data.fingerprint == source_fingerprint("20m", real)["digest"]
    assert set(data.ratings.userId) == set(read_ratings("20m", real).userId) == split_users(split)
    out = capsys.readouterr().out
    assert "WARNING: read 90 ratings where MovieLens 20m has 20,000,263" in out


def build_one(data_dir, table, manual_dir, release="20m"):
    """One config alone, as an older version or a crash between the two builds leaves it."""
    return loading.built_builder(release, table, data_dir, manual_dir)


def test_pair_from_different_files_is_never_read_together(tmp_path, capsys):
    data_dir = tmp_path / "tfds"
    small = write_latest_small_like(tmp_path / "ml-latest-small")
    real = write_tiny_20m(tmp_path / "real" / "ml-20m")
    build_one(data_dir, "users", small)
    build_one(data_dir, "movies", real)
    capsys.readouterr()
    with no_build(), pytest.raises(ValueError) as error:
        loading.load_movielens("20m", data_dir=data_dir)
    message = str(error.value)
    for name in ("20m-users", "20m-movies"):
        assert str(prepared(data_dir, name)) in message
    assert "not built from the same files" in message and "genome-tags.csv" in message
    assert "--manual-dir" in message and "delete both folders" in message

    data = loading.load_movielens("20m", data_dir=data_dir, manual_dir=real)
    out = capsys.readouterr().out
    assert f"{prepared(data_dir, '20m-users')}: rebuilding: it was built from other files" in out
    assert f"{prepared(data_dir, '20m-movies')}: " not in out  # already from these files
    assert data.ratings.equals(read_ratings("20m", real))


def test_dataset_of_an_older_version_is_rebuilt_or_refused(tmp_path, capsys):
    """A prepared config without a fingerprint cannot be checked: rebuilt from a manual dir,
    refused without one."""
    data_dir = tmp_path / "tfds"
    real = write_tiny_20m(tmp_path / "ml-20m")
    loading.load_movielens("20m", data_dir=data_dir, manual_dir=real)
    info = prepared(data_dir, "20m-users") / "metadata.json"
    metadata = json.loads(info.read_text())
    del metadata["source_fingerprint"]
    info.write_text(json.dumps(metadata))
    with no_build(), pytest.raises(ValueError, match=r"20m-users/1\.0\.0 records no source fingerprint"):
        loading.load_movielens("20m", data_dir=data_dir)
    capsys.readouterr()
    loading.load_movielens("20m", data_dir=data_dir, manual_dir=real)
    assert "20m-users/1.0.0: rebuilding: it records no source fingerprint" in capsys.readouterr().out


def test_lone_config_without_manual_dir_is_built_again_with_its_partner(tmp_path, capsys):
    """Without a manual dir the pair comes from one download; TFDS's own manual folder stands in
    for it here (<data_dir>/downloads/manual), so nothing is fetched."""
    data_dir = tmp_path / "tfds"
    download = write_tiny_20m(data_dir / "downloads" / "manual" / "ml-20m")
    other = write_tiny_20m(tmp_path / "other" / "ml-20m", {"links.csv": "movieId,imdbId,tmdbId\n"})
    build_one(data_dir, "users", other)
    data = loading.load_movielens("20m", data_dir=data_dir)
    assert "20m-users/1.0.0: rebuilding: 20m-movies is not built" in capsys.readouterr().out
    assert data.fingerprint == source_fingerprint("20m", download)["digest"]


# ---------------------------------------------------------------------------- truncated files


def test_truncated_ratings_is_an_error_and_the_complete_copy_is_built(tmp_path, capsys):
    data_dir = tmp_path / "tfds"
    text = ratings_csv(range(1, 31))
    complete = write_tiny_20m(tmp_path / "complete" / "ml-20m", {"ratings.csv": text})
    # Cut inside the last line's timestamp, as a broken download ends.
    cut_in_field = write_tiny_20m(tmp_path / "cut" / "ml-20m", {"ratings.csv": text[:-5]})
    with pytest.raises(MovieLensFormatError,
                       match=r"cut/ml-20m/ratings\.csv line 91 \('30,30,4\.5,100000'\) ends without a "
                             r"newline: the file looks truncated; download it again"):
        prepare.prepare(config(data_dir, cut_in_field, "20m"))
    assert not prepared(data_dir, "20m-users").exists()

    # Cut at a line end the file reads fine (a smaller release); the complete copy replaces it.
    half = text[: text.index("\n16,") + 1]
    at_line_end = write_tiny_20m(tmp_path / "lines" / "ml-20m", {"ratings.csv": half})
    data, _ = prepare.prepare(config(data_dir, at_line_end, "20m"))
    assert set(data.ratings.userId) == set(range(1, 16))
    capsys.readouterr()
    data, split = prepare.prepare(config(data_dir, complete, "20m"))
    out = capsys.readouterr().out
    assert f"{prepared(data_dir, '20m-users')}: rebuilding: it was built from other files" in out
    sizes = [(folder / "ratings.csv").stat().st_size for folder in (at_line_end, complete)]
    assert f"ratings.csv: {sizes[0]:,} -> {sizes[1]:,} bytes" in out
    assert set(data.ratings.userId) == split_users(split) == set(range(1, 31))


# ---------------------------------------------------------------------------- quiet losses


def test_missing_links_and_unmatched_omdb_records_are_warned_about(tmp_path, capsys):
    movies = "movieId,title,genres\n" + "".join(f"{m},Movie {m} (2000),Drama\n" for m in range(1, 41))
    links = "movieId,imdbId,tmdbId\n" + "".join(f"{m},{m:07d},\n" for m in range(1, 21))  # half
    ratings = "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{m},4.0,{1000000000 + m}\n" for u in range(1, 31) for m in range(1, 41, 3))
    folder = write_tiny_20m(tmp_path / "ml-20m", {
        "movies.csv": movies, "links.csv": links, "ratings.csv": ratings,
        "genome-scores.csv": "movieId,tagId,relevance\n1,1,0.5\n1,2,0.5\n"})
    omdb = [{"imdbID": f"tt{m:07d}", "Plot": "p", "Response": "True"} for m in range(1, 21)]
    omdb += [{"imdbID": f"tt{m:07d}", "Plot": "p", "Response": "True"} for m in range(900, 905)]
    (tmp_path / "ml-20m" / "omdb.jsonl").write_text("".join(json.dumps(r) + "\n" for r in omdb))
    cfg = config(tmp_path / "tfds", folder, "20m")
    data, split = prepare.prepare(cfg)
    out = capsys.readouterr().out
    assert f"WARNING: 20 of 40 (50.0%) movies have no IMDb id in {folder / 'links.csv'}" in out
    assert "movies without OMDb data are dropped by --protocol paper" in out
    assert "WARNING: 20 of 40 (50.0%) movies have no OMDb record" in out
    assert "(its catalogue keeps 20)" in out and split.n_movies == 20
    assert "WARNING: 5 of 25 (20.0%) OMDb records in" in out and "match no movie's IMDb id" in out
    assert "IMDb ids: 20 of 40 movies" in out and "OMDb: 20 movies matched from 25 records" in out


def test_complete_catalogue_has_no_warning(tmp_path):
    folder = write_tiny_20m(tmp_path / "ml-20m", {
        "links.csv": "movieId,imdbId,tmdbId\n10,0000010,\n20,0000020,\n30,0000030,\n40,0000040,\n"})
    text = loading.summary(loading.read_release("20m", folder), check_counts=False)
    assert "IMDb ids: 4 of 4 movies" in text and "WARNING" not in text
    assert "WARNING: read 9 ratings where" in loading.summary(loading.read_release("20m", folder))
