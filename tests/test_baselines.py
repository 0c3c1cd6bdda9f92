"""Popularity, EASE, EDLAE and content kNN: closed forms against plain numpy, ranking on known
structure, tuning."""

import numpy as np
import pytest
import scipy.sparse as sp

from hvae_tf.baselines import EASE, EDLAE, ContentKNN, Popularity
from hvae_tf.baselines.ease import clicks_from_padded
from hvae_tf.metrics import ranking


def random_clicks(rng, users, movies, density):
    clicks = (rng.random((users, movies)) < density).astype(np.float32)
    clicks[np.arange(users), rng.integers(0, movies, users)] = 1  # nobody without a click
    return sp.csr_matrix(clicks)


def block_clicks(rng, users, block_size, block_weights, density=0.4, noise=0.01):
    """Each user belongs to one block of movies (blocks drawn with `block_weights`), plus rare noise."""
    n_blocks = len(block_weights)
    block = rng.choice(n_blocks, size=users, p=np.asarray(block_weights) / np.sum(block_weights))
    movie_block = np.repeat(np.arange(n_blocks), block_size)
    same = movie_block[None, :] == block[:, None]
    clicks = np.where(same, rng.random(same.shape) < density, rng.random(same.shape) < noise)
    return sp.csr_matrix(clicks.astype(np.float32)), block, movie_block


def split_rows(matrix, rng, fraction=0.2):
    """Hide `fraction` of each row's clicks: (fold_in, held_out)."""
    coo = matrix.tocoo()
    hidden = rng.random(coo.nnz) < fraction

    def rows(keep):
        return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=matrix.shape)

    return rows(~hidden), rows(hidden)


def direct_ease(dense_clicks, l2):
    """Steck's closed form written out: B = I - P diag(1/diag(P)), P = (X^T X + l2 I)^-1."""
    p = np.linalg.inv(dense_clicks.T @ dense_clicks + l2 * np.eye(dense_clicks.shape[1]))
    return np.eye(len(p)) - p @ np.diag(1.0 / np.diag(p))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_ease_equals_the_dense_closed_form(dtype, tol):
    rng = np.random.default_rng(0)
    train = random_clicks(rng, 40, 15, 0.3)
    want = direct_ease(train.toarray().astype(np.float64), 7.0)
    model = EASE(7.0, dtype=dtype).fit(train)
    assert model.weights.dtype == dtype
    np.testing.assert_allclose(model.weights, want, atol=tol)
    assert np.all(np.diagonal(model.weights) == 0)
    users = random_clicks(rng, 6, 15, 0.2)
    np.testing.assert_allclose(model.scores(ranking.padded_indices(users)), users.toarray() @ want,
                               atol=tol * 10)


def test_edlae_is_the_column_by_column_ridge_fit_with_its_popularity_penalty():
    """Each column j of EDLAE's B, with B_jj = 0, solves min ||X_j - X B_j||^2 + sum_i w_i B_ij^2,
    w_i = l2 + p / (1 - p) (X^T X)_ii: Steck's (2020) expected loss under input dropout p."""
    rng = np.random.default_rng(11)
    train = random_clicks(rng, 50, 12, 0.3)
    dense = train.toarray().astype(np.float64)
    l2, dropout = 3.0, 0.4
    weights = l2 + dropout / (1 - dropout) * np.diag(dense.T @ dense)
    model = EDLAE(l2, dropout=dropout).fit(train)
    for j in range(12):
        others = np.delete(np.arange(12), j)
        x = dense[:, others]
        column = np.linalg.solve(x.T @ x + np.diag(weights[others]), x.T @ dense[:, j])
        np.testing.assert_allclose(model.weights[others, j], column, atol=1e-10)
    assert np.all(np.diagonal(model.weights) == 0)
    assert not np.allclose(model.weights, EASE(l2).fit(train).weights, atol=1e-3)


def test_edlae_tuning_searches_l2_and_dropout_on_validation_users():
    rng = np.random.default_rng(12)
    weights = [3, 2, 1, 1]
    train, _, _ = block_clicks(rng, 300, 20, weights, noise=0.05)
    fold_in, held_out = split_rows(block_clicks(rng, 80, 20, weights, noise=0.05)[0], rng)
    model, table = EDLAE.tuned(train, fold_in, held_out, grid=(1.0, 100.0), dropouts=(0.2, 0.6))
    assert set(table) == {(1.0, 0.2), (100.0, 0.2), (1.0, 0.6), (100.0, 0.6)}
    assert table[(model.l2, model.dropout)] == max(table.values())
    np.testing.assert_allclose(model.weights, EDLAE(model.l2, dropout=model.dropout).fit(train).weights)
    with pytest.raises(ValueError, match=r"EDLAE's dropout must be in \(0, 1\)"):
        EDLAE(1.0, dropout=0.0)


def test_ease_ranks_the_users_own_block_first():
    rng = np.random.default_rng(1)
    train, _, movie_block = block_clicks(rng, 200, 6, [1, 1], noise=0.0)
    model = EASE(5.0).fit(train)
    users, user_block, _ = block_clicks(rng, 20, 6, [1, 1], density=0.3, noise=0.0)
    fold_in = users[np.diff(users.indptr) > 0]
    user_block = user_block[np.diff(users.indptr) > 0]
    top = ranking.rank_top_k(model.scores(ranking.padded_indices(fold_in)), 12, exclude=fold_in)
    for row, block in enumerate(user_block):
        unclicked_in_block = 6 - fold_in[row].nnz
        assert np.all(movie_block[top[row, :unclicked_in_block]] == block)


def test_ease_beats_popularity_on_block_structure():
    rng = np.random.default_rng(2)
    weights = [8, 4, 2, 1, 1, 1, 1, 1]  # unequal blocks, so popularity has something to go on
    train, _, _ = block_clicks(rng, 600, 30, weights)
    test, _, _ = block_clicks(rng, 150, 30, weights)
    fold_in, held_out = split_rows(test, rng)
    ndcg = {}
    for model in (Popularity().fit(train), EASE(50.0).fit(train)):
        per_user = ranking.score_users(model.scores, fold_in, held_out, recall_ks=(), ndcg_ks=(100,))
        ndcg[model.name] = ranking.summarize(per_user)["ndcg@100"]
    assert ndcg["EASE"] > ndcg["Popularity"] + 0.1


def test_tuning_picks_the_best_validation_l2_and_only_reads_validation():
    rng = np.random.default_rng(3)
    weights = [3, 2, 1, 1]
    train, _, _ = block_clicks(rng, 300, 20, weights, noise=0.05)
    fold_in, held_out = split_rows(block_clicks(rng, 80, 20, weights, noise=0.05)[0], rng)
    grid = (0.5, 20.0, 300.0, 1e5)
    model, table = EASE.tuned(train, fold_in, held_out, grid=grid)
    direct = {}
    for l2 in grid:  # each grid point fitted on its own, scored on the same validation arrays
        per_user = ranking.score_users(EASE(l2).fit(train).scores, fold_in, held_out,
                                       recall_ks=(), ndcg_ks=(100,))
        direct[l2] = ranking.summarize(per_user)["ndcg@100"]
    assert table == pytest.approx(direct, abs=1e-9)
    assert model.l2 == max(grid, key=direct.get)
    assert len(set(np.round(list(direct.values()), 6))) > 1  # the choice was not a tie
    np.testing.assert_allclose(model.weights, EASE(model.l2).fit(train).weights)


def test_popularity_scores_training_click_counts_for_everyone():
    rng = np.random.default_rng(4)
    train = random_clicks(rng, 30, 9, 0.4)
    users = ranking.padded_indices(random_clicks(rng, 4, 9, 0.3))
    scores = Popularity().fit(train).scores(users)
    assert scores.shape == (4, 9)
    for row in scores:
        np.testing.assert_array_equal(row, train.toarray().sum(axis=0))


def test_clicks_from_padded_inverts_padded_indices():
    rng = np.random.default_rng(5)
    clicks = random_clicks(rng, 7, 11, 0.3)
    back = clicks_from_padded(ranking.padded_indices(clicks), 11)
    assert (back != clicks).nnz == 0


def test_bad_input_gets_clear_errors():
    rng = np.random.default_rng(6)
    train = random_clicks(rng, 20, 8, 0.4)
    with pytest.raises(ValueError, match="positive"):
        EASE(0.0)
    with pytest.raises(RuntimeError, match="before fit"):
        EASE().scores(np.zeros((1, 1), np.int64))
    with pytest.raises(ValueError, match="outside the model's 8 movies"):
        EASE(1.0).fit(train).scores(np.array([[3, 9]]))
    wrong_width = random_clicks(rng, 5, 9, 0.4)
    with pytest.raises(ValueError, match="validation_fold_in"):
        EASE.tuned(train, wrong_width, wrong_width)
    with pytest.raises(ValueError, match="unknown metric"):
        EASE.tuned(train, train, train, metric="mrr")
    with pytest.raises(ValueError, match="sparse"):
        EASE().fit(train.toarray())


def test_ease_beats_popularity_on_real_ml1m(shared_data):
    """Liang's protocol on real ml-1m, fold 0, l2 = 500 (a usual L2 weight for EASE on ml-1m)."""
    from hvae_tf.data.loading import read_release
    from hvae_tf.data.protocols import make_split

    split = make_split(read_release("1m", shared_data / "ml-1m"), "liang", 0, heldout_users=0.1)
    ndcg = {}
    for model in (Popularity().fit(split.train), EASE(500.0).fit(split.train)):
        per_user = ranking.score_users(model.scores, split.test.fold_in, split.test.held_out,
                                       recall_ks=(), ndcg_ks=(100,))
        ndcg[model.name] = ranking.summarize(per_user)["ndcg@100"]
    assert ndcg["EASE"] > 1.5 * ndcg["Popularity"]


def test_ease_logit_start_is_eases_weights_scaled_to_fitted_click_logits():
    import scipy.optimize

    from hvae_tf.baselines.ease import logit_start

    rng = np.random.default_rng(0)
    train = sp.csr_matrix((rng.random((300, 40)) < 0.15).astype(np.float32))
    weights, bias = logit_start(train, 50.0, users=300)
    ease = EASE(50.0).fit(train).weights
    scale = weights[ease != 0] / ease[ease != 0]
    assert np.allclose(scale, scale[0], rtol=1e-4) and scale[0] > 0 and np.all(np.diag(weights) == 0)
    scores, clicked = (train @ ease).ravel(), train.toarray().ravel()

    def nll(theta):
        logits = theta[0] * scores + theta[1]
        return np.mean(np.logaddexp(0, logits) - clicked * logits)

    best = scipy.optimize.minimize(nll, [1.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-6}).x
    assert scale[0] == pytest.approx(best[0], rel=1e-2) and bias == pytest.approx(best[1], rel=1e-2)


def test_content_knn_sums_cosine_similarities_of_the_nearest_movies():
    rng = np.random.default_rng(7)
    features = rng.normal(size=(30, 4))
    features[5] = 0.0  # a movie without features resembles none
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -np.inf)
    k = 6
    kept = np.zeros_like(cosine)
    for i in range(30):
        nearest = np.argsort(-cosine[i], kind="stable")[:k]
        kept[i, nearest] = np.maximum(cosine[i, nearest], 0.0)
    batch = np.array([[0, 3, 7, -1], [5, -1, -1, -1], [-1, -1, -1, -1], [12, 12, 29, 2]])
    clicks = np.zeros((4, 30))
    for row, movies in enumerate(batch):
        clicks[row, movies[movies >= 0]] = 1.0
    model = ContentKNN(neighbours=k).fit(features)
    np.testing.assert_allclose(model.scores(batch), clicks @ kept, rtol=1e-5, atol=1e-6)
    assert np.all(model.scores(batch)[1] == 0) and model.similarity.shape == (30, 30)
    assert model.similarity.nnz <= 30 * k


def test_content_knn_ranks_a_movie_nobody_clicked_by_its_features():
    # Two groups of movies; the last of group A has no clicks at all.
    features = np.repeat(np.eye(2), 10, axis=0) + np.random.default_rng(1).normal(0, 0.05, (20, 2))
    validation = sp.csr_matrix(np.eye(20, dtype=np.float32)[[0, 1, 2, 10, 11, 12]])
    held_out = sp.csr_matrix(np.eye(20, dtype=np.float32)[[9, 9, 9, 19, 19, 19]])
    model, table = ContentKNN.tuned(features, validation, held_out, grid=(3, 19))
    assert set(table) == {3, 19} and model.neighbours in table
    scores = model.scores(np.array([[0, 1, 2], [10, 11, 12]]))
    assert scores[0, 9] > scores[1, 9] and scores[1, 19] > scores[0, 19]
    with pytest.raises(ValueError, match="neighbours >= 1"):
        ContentKNN(0)


def test_a_runs_shallow_start_is_the_closed_form_its_recipe_names():
    from hvae_tf import recipes
    from hvae_tf.config import TrainConfig
    from hvae_tf.training.run import shallow_start

    rng = np.random.default_rng(13)
    train = sp.csr_matrix((rng.random((300, 40)) < 0.15).astype(np.float32))
    for recipe, closed in (("vasp", EASE(500.0)), ("vasp-edlae", EDLAE(300.0, dropout=0.5)),
                           ("recvae-edlae", EDLAE(300.0, dropout=0.5))):
        cfg = recipes.resolve(TrainConfig(recipe=recipe, features="none"), 300, 40).config
        weights = shallow_start(cfg, train)["shallow_weights"]
        target = closed.fit(train).weights
        scale = weights[target != 0] / target[target != 0]
        assert np.allclose(scale, scale[0], rtol=1e-4) and scale[0] > 0, recipe
    assert shallow_start(recipes.resolve(TrainConfig(recipe="recvae"), 300, 40).config, train) == {}
