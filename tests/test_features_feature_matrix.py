"""FeatureMatrix: its description stays with the values through save/load and stacking."""

import json

import numpy as np
import pandas as pd
import pytest

from hvae_tf.data.schema import MovieLensData
from hvae_tf.features.feature_matrix import FeatureMatrix, hstack, select_movies


def matrix(seed=0, ids=(10, 20, 30)):
    values = np.random.default_rng(seed).random((len(ids), 3))
    return FeatureMatrix(values, ["genre=A", "genre=B", "imdb_rating"], ["binary", "binary", "continuous"],
                         np.asarray(ids), {"movies with a genre": 2, "note": "text"})


def test_save_load_round_trip_keeps_everything(tmp_path):
    original = matrix()
    npz, meta = original.save(tmp_path / "out" / "genre")
    assert (npz.name, meta.name) == ("genre.npz", "genre.json")
    assert sorted(p.name for p in npz.parent.iterdir()) == ["genre.json", "genre.npz"]  # no temp files
    loaded = FeatureMatrix.load(tmp_path / "out" / "genre.npz")
    np.testing.assert_array_equal(loaded.values, original.values.astype(np.float32))
    np.testing.assert_array_equal(loaded.movie_ids, original.movie_ids)
    assert (loaded.columns, loaded.kinds, loaded.summary) == (original.columns, original.kinds, original.summary)
    assert loaded.fingerprint() == original.fingerprint()


def test_files_from_different_saves_are_refused(tmp_path):
    matrix(seed=0).save(tmp_path / "a")
    matrix(seed=1).save(tmp_path / "b")
    (tmp_path / "a.json").write_text((tmp_path / "b.json").read_text())
    with pytest.raises(ValueError, match="do not belong together"):
        FeatureMatrix.load(tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="c.npz"):
        FeatureMatrix.load(tmp_path / "c")


def test_fingerprint_follows_values_columns_and_ids():
    base = matrix()
    assert base.fingerprint() == matrix().fingerprint()
    changed = matrix()
    changed.values[0, 0] += 1e-3
    renamed = FeatureMatrix(base.values, ["genre=A", "genre=C", "imdb_rating"], base.kinds, base.movie_ids)
    reordered = matrix(ids=(10, 30, 20))
    prints = {m.fingerprint() for m in (base, changed, renamed, reordered)}
    assert len(prints) == 4


def test_shapes_and_kinds_are_checked():
    with pytest.raises(ValueError, match="3 columns but 2 column names"):
        FeatureMatrix(np.zeros((2, 3)), ["a", "b"], ["binary"] * 2, [1, 2])
    with pytest.raises(ValueError, match="one row to each of 3 movies"):
        FeatureMatrix(np.zeros((2, 1)), ["a"], ["binary"], [1, 2, 3])
    with pytest.raises(ValueError, match="unknown column kind"):
        FeatureMatrix(np.zeros((2, 1)), ["a"], ["gaussian"], [1, 2])
    empty = FeatureMatrix(np.zeros(0), [], [], [1, 2])
    assert empty.shape == (2, 0)


def test_hstack_joins_columns_of_the_same_movies_only():
    a, b = matrix(0), matrix(1)
    both = hstack([a, b])
    assert both.shape == (3, 6) and both.columns == a.columns + b.columns
    np.testing.assert_array_equal(both.values[:, 3:], b.values)
    with pytest.raises(ValueError, match="different movies"):
        hstack([a, matrix(ids=(10, 20, 31))])


def test_summary_text_prints_every_count():
    lines = matrix().summary_text().splitlines()
    assert lines[0] == "3 movies x 3 columns"
    assert any("movies with a genre" in line and line.rstrip().endswith("2") for line in lines)
    json.dumps(matrix().summary)  # saved as JSON


def test_select_movies_keeps_the_protocol_order_and_names_strangers():
    movies = pd.DataFrame({"movieId": [1, 2, 3], "title": ["x", "y", "z"]})
    data = MovieLensData("test", pd.DataFrame(), movies, [])
    assert select_movies(data, np.asarray([3, 1])).title.tolist() == ["z", "x"]
    with pytest.raises(ValueError, match=r"1 movie id\(s\) are not in the test catalogue, e.g. \[7\]"):
        select_movies(data, np.asarray([1, 7]))
    with pytest.raises(ValueError, match="repeat"):
        select_movies(data, np.asarray([1, 1]))
    with pytest.raises(ValueError, match="integer"):
        select_movies(data, np.asarray([1.0, 2.0]))
