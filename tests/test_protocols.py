"""The protocols on real ml-1m (counts derived here from the raw table) and on generated tables."""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from hvae_tf.data.protocols import Split, binarise, make_split
from hvae_tf.data.schema import MovieLensData


@pytest.fixture(scope="module")
def ml1m(shared_data) -> MovieLensData:
    """ml-1m through a stand-in reader (ratings.csv has no timestamp; movies.dat is '::' separated)."""
    ratings = pd.read_csv(shared_data / "ml-1m" / "ratings.csv").astype(
        {"userId": np.int64, "movieId": np.int64, "rating": np.float32})
    ratings["timestamp"] = np.int64(-1)
    movies = pd.read_csv(shared_data / "ml-1m" / "movies.dat", sep="::", engine="python",
                         encoding="iso-8859-1", names=["movieId", "title", "genres"])
    links = pd.read_csv(shared_data / "ml-1m" / "links.csv", dtype={"imdbId": str})
    with open(shared_data / "ml-1m" / "omdb.jsonl", encoding="utf-8") as f:
        omdb_ids = {json.loads(line)["imdbID"] for line in f if line.strip()}
    imdb = dict(zip(links["movieId"], "tt" + links["imdbId"]))
    movies["imdbId"] = movies["movieId"].map(imdb).fillna("")
    movies["has_omdb"] = movies["imdbId"].isin(omdb_ids)
    return MovieLensData("1m", ratings, movies, [])


@pytest.fixture(scope="module")
def liang_1m(ml1m) -> Split:
    return make_split(ml1m, "liang", heldout_users=0.1)


def _user_clicks(data: MovieLensData, user_id: int, movie_ids: np.ndarray) -> set:
    """A user's clicks straight from the ratings table, as column numbers of `movie_ids`."""
    r = data.ratings
    mine = r.loc[(r.userId == user_id) & (r.rating > 3.5), "movieId"]
    return {int(np.searchsorted(movie_ids, m)) for m in mine[mine.isin(movie_ids)]}


def _row(matrix: sp.csr_matrix, i: int) -> set:
    return set(matrix.indices[matrix.indptr[i]:matrix.indptr[i + 1]].tolist())


def test_liang_on_ml1m_keeps_every_user_with_five_clicks_once(ml1m, liang_1m):
    clicks = ml1m.ratings[ml1m.ratings.rating > 3.5].groupby("userId").size()
    eligible = set(clicks.index[clicks >= 5])
    parts = [set(liang_1m.train_user_ids), set(liang_1m.validation.user_ids), set(liang_1m.test.user_ids)]
    assert set.union(*parts) == eligible
    assert sum(map(len, parts)) == len(eligible)  # no user in two splits
    assert liang_1m.validation.n_users == liang_1m.test.n_users == round(0.1 * len(eligible))
    print("\n" + liang_1m.summary())


def test_liang_movie_index_is_what_training_users_clicked(ml1m, liang_1m):
    r = ml1m.ratings
    trained = r[(r.rating > 3.5) & r.userId.isin(liang_1m.train_user_ids)]
    np.testing.assert_array_equal(liang_1m.movie_ids, np.unique(trained.movieId))
    assert np.all(np.diff(liang_1m.train.tocsc().indptr) > 0)  # every column has a training click
    assert liang_1m.train.nnz == len(trained)
    assert liang_1m.train.shape == (len(liang_1m.train_user_ids), liang_1m.n_movies)


def test_fold_in_and_held_out_partition_each_users_restricted_clicks(ml1m, liang_1m):
    part = liang_1m.test
    lengths = np.diff(part.full.indptr)
    hidden = np.diff(part.held_out.indptr)
    assert part.fold_in.multiply(part.held_out).nnz == 0
    np.testing.assert_array_equal(hidden, np.where(lengths >= 5, np.floor(0.2 * lengths), 0))
    assert 0.18 < part.held_out.nnz / part.full.nnz <= 0.2
    for i in np.random.default_rng(0).choice(part.n_users, 25, replace=False):
        assert _row(part.full, i) == _user_clicks(ml1m, part.user_ids[i], liang_1m.movie_ids)
    # held out at random, not the user's first movies
    first = [sorted(_row(part.full, i))[:hidden[i]] == sorted(_row(part.held_out, i)) for i in range(50)]
    assert not all(first)


def test_same_seed_and_fold_repeat_and_folds_differ(ml1m, liang_1m):
    again = make_split(ml1m, "liang", heldout_users=0.1)
    assert (again.test.held_out != liang_1m.test.held_out).nnz == 0
    np.testing.assert_array_equal(again.validation.user_ids, liang_1m.validation.user_ids)
    other = make_split(ml1m, "liang", heldout_users=0.1, fold=1)
    overlap = np.intersect1d(other.test.user_ids, liang_1m.test.user_ids)
    assert len(overlap) < 0.3 * liang_1m.test.n_users  # ~10% expected by chance


def test_paper_protocol_uses_movies_with_omdb_information(ml1m):
    split = make_split(ml1m, "paper", heldout_users=500)
    expected = np.sort(ml1m.movies.loc[ml1m.movies.has_omdb, "movieId"].to_numpy())
    np.testing.assert_array_equal(split.movie_ids, expected)
    users = np.concatenate([split.train_user_ids, split.validation.user_ids, split.test.user_ids])
    assert len(users) + split.dropped_train_users == ml1m.ratings.userId.nunique()
    assert split.validation.n_users == split.test.n_users == 500


def _generated(n_users=40, n_movies=12, with_omdb=True, seed=0) -> MovieLensData:
    rng = np.random.default_rng(seed)
    rows = [(u, m, float(rng.integers(1, 6))) for u in range(1, n_users + 1)
            for m in rng.choice(np.arange(1, n_movies + 1), rng.integers(1, n_movies), replace=False)]
    ratings = pd.DataFrame(rows, columns=["userId", "movieId", "rating"])
    ratings.loc[ratings.userId == 1, "rating"] = 1.0  # user 1 never clicks
    ratings["timestamp"] = -1
    movies = pd.DataFrame({"movieId": np.arange(1, n_movies + 3),  # two movies nobody rated
                           "has_omdb": with_omdb & (np.arange(1, n_movies + 3) % 4 != 0)})
    return MovieLensData("generated", ratings, movies, [])


def test_paper_protocol_without_omdb_keeps_whole_catalogue_and_counts_silent_users():
    data = _generated(with_omdb=False)
    split = make_split(data, "paper", heldout_users=8)
    np.testing.assert_array_equal(split.movie_ids, data.movies.movieId)
    clicks_per_user = data.ratings.assign(click=data.ratings.rating > 3.5).groupby("userId").click.sum()
    silent = int((clicks_per_user == 0).sum())
    assert silent >= 1 and 1 not in split.train_user_ids
    held_out_silent = split.validation.n_without_clicks + split.test.n_without_clicks
    assert split.dropped_train_users + held_out_silent == silent
    with_omdb = make_split(_generated(with_omdb=True), "paper", heldout_users=8)
    assert set(with_omdb.movie_ids) == {m for m in data.movies.movieId if m % 4 != 0}


def test_binarise_keeps_ratings_above_threshold_once():
    ratings = pd.DataFrame({"userId": [2, 1, 1, 1], "movieId": [5, 3, 3, 4], "rating": [4.0, 3.5, 5.0, 4.0]})
    assert binarise(ratings).values.tolist() == [[1, 3], [1, 4], [2, 5]]
    assert binarise(ratings, threshold=3.0).shape == (4 - 1, 2)  # the duplicate (1, 3) counts once


def test_save_load_round_trip_is_atomic(tmp_path, liang_1m):
    path = liang_1m.save(tmp_path / "splits" / "liang0.npz")
    assert [p.name for p in path.parent.iterdir()] == ["liang0.npz"]  # no temporary left
    loaded = Split.load(path)
    assert loaded.summary() == liang_1m.summary() and loaded.settings == liang_1m.settings
    for a, b in [(loaded.train, liang_1m.train), (loaded.test.fold_in, liang_1m.test.fold_in),
                 (loaded.validation.held_out, liang_1m.validation.held_out)]:
        assert a.shape == b.shape and (a != b).nnz == 0 and a.dtype == np.float32
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz is not a split file"):
        Split.load(tmp_path / "other.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.npz"):
        Split.load(tmp_path / "broken.npz")


@pytest.fixture(scope="module")
def cold_1m(ml1m) -> Split:
    return make_split(ml1m, "liang", heldout_users=0.1, cold_movies=0.1)


def test_new_movies_lose_training_and_fold_in_clicks_but_keep_held_out_ones(ml1m, liang_1m, cold_1m):
    new = cold_1m.new_movies
    np.testing.assert_array_equal(cold_1m.movie_ids, liang_1m.movie_ids)  # kept in the index
    had_clicks = np.diff(liang_1m.train.tocsc().indptr) > 0
    described = ml1m.movies.set_index("movieId").loc[liang_1m.movie_ids, "has_omdb"].to_numpy(bool)
    assert len(new) == round(0.1 * (had_clicks & described).sum())
    assert had_clicks[new].all() and described[new].all()
    assert cold_1m.train[:, new].nnz == 0
    # Everything else of the fold is the fold without new movies: users, other clicks, targets.
    keep = np.setdiff1d(np.arange(cold_1m.n_movies), new)
    assert (cold_1m.train[:, keep] != liang_1m.train[:, keep]).nnz == 0
    for cold, plain in ((cold_1m.validation, liang_1m.validation), (cold_1m.test, liang_1m.test)):
        np.testing.assert_array_equal(cold.user_ids, plain.user_ids)
        assert cold.fold_in[:, new].nnz == 0
        assert (cold.fold_in[:, keep] != plain.fold_in[:, keep]).nnz == 0
        assert (cold.held_out != plain.held_out).nnz == 0
    assert cold_1m.test.held_out[:, new].nnz > 0
    assert "new movies (no training clicks)=" in cold_1m.summary()


def test_new_movies_repeat_per_fold_and_differ_between_folds(ml1m, cold_1m, liang_1m, tmp_path):
    again = make_split(ml1m, "liang", heldout_users=0.1, cold_movies=0.1)
    np.testing.assert_array_equal(again.new_movies, cold_1m.new_movies)
    other = make_split(ml1m, "liang", fold=1, heldout_users=0.1, cold_movies=0.1)
    assert not np.array_equal(other.new_movies, cold_1m.new_movies)
    assert cold_1m.fingerprint() != liang_1m.fingerprint()
    loaded = Split.load(cold_1m.save(tmp_path / "cold.npz"))
    np.testing.assert_array_equal(loaded.new_movies, cold_1m.new_movies)
    assert loaded.fingerprint() == cold_1m.fingerprint()


def test_validation_new_movies_are_a_seeded_part_of_the_new_ones_the_test_never_counts(ml1m, cold_1m, tmp_path):
    split = make_split(ml1m, "liang", heldout_users=0.1, cold_movies=0.1, validation_new_movies=0.5)
    # The same fold with the same new movies: only which of them each side counts differs.
    np.testing.assert_array_equal(split.new_movies, cold_1m.new_movies)
    assert (split.train != cold_1m.train).nnz == 0
    own = split.validation_new_movies
    assert len(own) == round(0.5 * len(split.new_movies)) and np.isin(own, split.new_movies).all()
    np.testing.assert_array_equal(split.new_movies_of("validation"), own)
    test_new = split.new_movies_of("test")
    assert not np.isin(test_new, own).any()
    np.testing.assert_array_equal(np.union1d(test_new, own), split.new_movies)
    np.testing.assert_array_equal(cold_1m.new_movies_of("validation"), cold_1m.new_movies)
    np.testing.assert_array_equal(cold_1m.new_movies_of("test"), cold_1m.new_movies)
    assert split.fingerprint() != cold_1m.fingerprint()
    again = make_split(ml1m, "liang", heldout_users=0.1, cold_movies=0.1, validation_new_movies=0.5)
    np.testing.assert_array_equal(again.validation_new_movies, own)
    other = make_split(ml1m, "liang", fold=1, heldout_users=0.1, cold_movies=0.1, validation_new_movies=0.5)
    assert not np.array_equal(other.validation_new_movies, own)
    loaded = Split.load(split.save(tmp_path / "own.npz"))
    np.testing.assert_array_equal(loaded.validation_new_movies, own)
    assert loaded.fingerprint() == split.fingerprint()
    assert "of them for validation only=" in split.summary()


def test_new_movies_without_omdb_are_drawn_from_movies_with_genres():
    data = _generated(with_omdb=False)
    data.movies["genres"] = [["Drama"] if m % 3 else ["(no genres listed)"] for m in data.movies.movieId]
    split = make_split(data, "liang", heldout_users=0.1, cold_movies=0.5)
    chosen = split.movie_ids[split.new_movies]
    assert len(chosen) >= 2 and all(chosen % 3 != 0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(cold_movies=1.0), r"cold_movies \(--cold-movies\) must be a share in \[0, 1\)"),
    (dict(cold_movies=1e-6), "is no movie: give a larger share"),
    (dict(validation_new_movies=0.5), r"validation_new_movies \(--validation-new-movies\) must be a share"),
    (dict(cold_movies=0.5, validation_new_movies=1e-6), "leaves none: choose a share between"),
    (dict(protocol="strong"), "choose one of paper, liang"),
    (dict(threshold=5.0), "threshold 5.0 leaves no clicks"),
    (dict(heldout_users=20), "cannot hold out 20 validation and 20 test users out of"),
    (dict(heldout_users=0.5), r"fraction must be in \(0, 0.5\)"),
    (dict(fold=-1), "fold must be a non-negative integer"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_split(_generated(), **{"protocol": "liang", **kwargs})
