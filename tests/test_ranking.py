"""Batched ranking metrics against a plain per-user loop that follows the definitions literally, and
the compiled path (scores, masking and top-k in one tf.function) against the eager one."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

from hvae_tf.metrics import ranking


def reference(scores, fold_in, held_out, k, mask):
    """Obviously-correct version: sort each user's list, ties to the lower index, count hits."""
    recalls, ndcgs = [], []
    for u in range(scores.shape[0]):
        truth = set(held_out[u].indices)
        if not truth:
            recalls.append(math.nan)
            ndcgs.append(math.nan)
            continue
        excluded = set(fold_in[u].indices) if mask else set()
        order = sorted(
            (m for m in range(scores.shape[1]) if m not in excluded),
            key=lambda m: (-scores[u, m], m),
        )[:k]
        hits = [m in truth for m in order]
        recalls.append(sum(hits) / min(k, len(truth)))
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(truth))))
        ndcgs.append(dcg / idcg)
    return np.array(recalls), np.array(ndcgs)


def random_case(rng, users=40, movies=60):
    # Scores on a coarse grid make ties common; some users get no or few held-out movies.
    scores = rng.integers(0, 5, size=(users, movies)).astype(np.float32)
    fold_in = sp.random(users, movies, density=0.15, random_state=rng, format="csr")
    held = sp.random(users, movies, density=0.08, random_state=rng, format="csr")
    held = (held - held.multiply(fold_in.astype(bool))).tocsr()
    held.eliminate_zeros()
    held.data[:] = 1
    fold_in.data[:] = 1
    held = held.tolil()
    held[0, :] = 0  # a user with nothing held out
    return scores, fold_in, held.tocsr()


@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize("k", [1, 5, 20, 100])
def test_batched_metrics_match_reference(k, mask):
    rng = np.random.default_rng(k + 7 * mask)
    scores, fold_in, held = random_case(rng)
    per_user = ranking.score_users(
        lambda idx: scores[np.asarray(rows_of(idx, fold_in))],
        fold_in, held, mask_inputs=mask, recall_ks=(k,), ndcg_ks=(k,), batch_size=7,
    )
    want_recall, want_ndcg = reference(scores, fold_in, held, k, mask)
    np.testing.assert_allclose(per_user[f"recall@{k}"], want_recall, equal_nan=True)
    np.testing.assert_allclose(per_user[f"ndcg@{k}"], want_ndcg, equal_nan=True)
    assert np.isnan(per_user[f"ndcg@{k}"][0])


def rows_of(padded, fold_in):
    """Recover which users a padded batch holds, so the fake model returns their score rows."""
    keys = {tuple(fold_in[u].indices): u for u in range(fold_in.shape[0])}
    return [keys[tuple(int(i) for i in row if i >= 0)] for row in padded]


def test_perfect_ranking_scores_one_and_summary_counts_excluded():
    held = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float32))
    scores = held.toarray() + 0.01
    top = ranking.rank_top_k(scores, 4)
    assert np.allclose(ranking.ndcg_at_k(top, held, 4)[[0, 2]], 1.0)
    assert np.allclose(ranking.recall_at_k(top, held, 1)[[0, 2]], 1.0)  # min(R, |I_u|) = 1
    summary = ranking.summarize({"ndcg@4": ranking.ndcg_at_k(top, held, 4)})
    assert summary == {"ndcg@4": 1.0, "users": 2, "users_excluded": 1}


def test_masked_movies_never_ranked():
    fold_in = sp.csr_matrix(np.array([[1, 0, 1, 0, 0]], dtype=np.float32))
    top = ranking.rank_top_k(np.array([[9.0, 1, 8, 2, 3]]), 3, exclude=fold_in)
    assert set(top[0]) == {1, 3, 4}


def test_padded_indices_round_trip():
    m = sp.csr_matrix(np.array([[0, 1, 1], [0, 0, 0], [1, 0, 0]], dtype=np.float32))
    padded = ranking.padded_indices(m)
    assert padded.tolist() == [[1, 2], [-1, -1], [0, -1]]


def test_hits_ignore_padding_and_explicit_zeros():
    held = sp.csr_matrix((np.array([1.0, 0.0, 1.0]), np.array([2, 0, 1]), np.array([0, 2, 2, 3])), shape=(3, 4))
    top = np.array([[2, 0, -1], [1, 2, 3], [-1, 1, 0]])
    assert ranking._hits(top, held).tolist() == [[True, False, False], [False, False, False], [False, True, False]]


# The compiled path (scores, masking and top-k in one tf.function) against the eager one.


def summed_rows_scorer(movies, seed=0):
    """A TF-traceable scorer whose scores are small whole numbers (exact in float32 in any order of
    summation, so eager and graph give the same bits): many ties, and an empty row scores all 0."""
    table = tf.constant(np.random.default_rng(seed).integers(0, 3, size=(movies, movies)), tf.float32)

    def scores(indices):
        indices = tf.convert_to_tensor(indices, tf.int64)
        rows = tf.gather(table, tf.maximum(indices, 0)) * tf.cast(indices >= 0, tf.float32)[:, :, None]
        return tf.math.floormod(tf.reduce_sum(rows, axis=1), 4.0)

    return scores


def case_with_edge_users(rng, users=40, movies=60):
    """random_case plus a user with no fold-in (all padding; ties everywhere) but held-out clicks."""
    _, fold_in, held = random_case(rng, users, movies)
    fold_in, held = fold_in.tolil(), held.tolil()
    fold_in[1, :] = 0
    held[1, :3] = 1
    fold_in, held = fold_in.tocsr(), held.tocsr()
    fold_in.eliminate_zeros()
    return fold_in, held


@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize("k", [1, 5, 20, 100])
def test_compiled_path_matches_eager_path_and_reference(k, mask):
    rng = np.random.default_rng(100 + k + 7 * mask)
    fold_in, held = case_with_edge_users(rng)
    scorer = summed_rows_scorer(fold_in.shape[1], seed=k)
    assert np.diff(held.indptr)[0] == 0 and np.diff(fold_in.indptr)[1] == 0
    assert (0 < np.diff(held.indptr)).sum() > 5 and (np.diff(held.indptr) < min(k, 5)).any()

    padded = ranking.padded_indices(fold_in)
    compiled = ranking.compiled_top_k(scorer, k, mask_inputs=mask)(tf.constant(padded)).numpy()
    eager = ranking.rank_top_k(scorer(padded), k, exclude=fold_in if mask else None)
    np.testing.assert_array_equal(compiled, eager)

    kwargs = dict(mask_inputs=mask, recall_ks=(k,), ndcg_ks=(k,), batch_size=7)
    per_user = ranking.score_users(scorer, fold_in, held, traceable=True, **kwargs)
    want = ranking.score_users(scorer, fold_in, held, **kwargs)
    want_recall, want_ndcg = reference(scorer(padded).numpy(), fold_in, held, k, mask)
    for name in want:
        np.testing.assert_array_equal(per_user[name], want[name])
    np.testing.assert_allclose(per_user[f"recall@{k}"], want_recall, equal_nan=True)
    np.testing.assert_allclose(per_user[f"ndcg@{k}"], want_ndcg, equal_nan=True)
    assert np.isnan(per_user[f"ndcg@{k}"][0]) and not np.isnan(per_user[f"ndcg@{k}"][1])


def small_model(kind, movies, seed=0):
    from hvae_tf.models import HybridVAE, StandardVAE

    common = {"hidden_dim": 16, "latent_dim": 4, "seed": seed}
    if kind == "standard":
        return StandardVAE(n_movies=movies, **common)
    embeddings = np.random.default_rng(seed).normal(size=(movies, 3)).astype(np.float32)
    return HybridVAE(movie_embeddings=embeddings, approach=1, **common)


@pytest.mark.parametrize("kind", ["standard", "hvae1"])
def test_compiled_path_on_a_keras_model(kind):
    """Identical metrics to the eager path given the same scores (here the graph's own: a graph's
    fused matmul + bias can differ from eager Keras in the last bit), and the same up to round-off
    given the model's eager scores."""
    rng = np.random.default_rng(5)
    fold_in, held = case_with_edge_users(rng, users=50, movies=70)
    model = small_model(kind, 70)
    kwargs = dict(mask_inputs=True, recall_ks=(5, 20), ndcg_ks=(100,), batch_size=16)
    per_user = ranking.score_users(model.scores, fold_in, held, traceable=True, **kwargs)
    graph_scores = tf.function(model.scores, input_signature=[tf.TensorSpec([None, None], tf.int64)])
    same_scores = ranking.score_users(lambda idx: graph_scores(tf.constant(idx)), fold_in, held, **kwargs)
    eager = ranking.score_users(model.scores, fold_in, held, **kwargs)
    for name in per_user:
        np.testing.assert_array_equal(per_user[name], same_scores[name])
        assert (~np.isclose(per_user[name], eager[name], equal_nan=True)).sum() <= 2  # a near-tie or two


def test_compiled_function_is_traced_once_cached_and_does_not_keep_the_model():
    import gc
    import weakref

    def epochs():
        rng = np.random.default_rng(6)
        fold_in, held = case_with_edge_users(rng, users=30, movies=40)
        model = small_model("standard", 40)
        for _ in range(3):  # as RankingMetrics does every epoch, taking model.scores anew
            ranking.score_users(model.scores, fold_in, held, traceable=True, batch_size=8)
        fn = ranking.compiled_top_k(model.scores, 100, mask_inputs=True)
        assert fn.experimental_get_tracing_count() == 1
        assert ranking.compiled_top_k(model.scores, 50, mask_inputs=True) is not fn
        assert ranking.compiled_top_k(model.scores, 100, mask_inputs=False) is not fn
        return weakref.ref(model)

    # (Checked once the frame that held the model has returned: tracing snapshots the locals of the
    # frames that call it, which keeps them until those frames end.)
    alive = epochs()
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("scores_kind", ["continuous", "tied", "masked"])
def test_two_level_top_k_gives_tf_top_k_lists(scores_kind):
    """Large enough for the two levels; ties (within and across groups) and -inf rows (fewer finite
    scores than k) included."""
    k = 7
    n_movies = ranking.TOP_K_GROUP * ranking.TWO_LEVEL_FROM_GROUPS_PER_K * k + 13  # a short last group
    rng = np.random.default_rng(5)
    if scores_kind == "tied":
        scores = rng.integers(0, 4, size=(40, n_movies)).astype(np.float32)
    else:
        scores = rng.normal(size=(40, n_movies)).astype(np.float32)
        # A tie between groups chosen out of column order: the later group has the larger maximum.
        group = ranking.TOP_K_GROUP
        scores[0, 5], scores[0, 3 * group + 1], scores[0, 3 * group + 2] = 10.0, 20.0, 10.0
    if scores_kind == "masked":
        scores[rng.random(scores.shape) < 0.3] = -np.inf
        scores[3, 4:] = -np.inf  # four finite scores, fewer than k
    expected = tf.math.top_k(scores, k, sorted=True).indices.numpy()
    np.testing.assert_array_equal(ranking.top_k_indices(tf.constant(scores), k).numpy(), expected)
    compiled = tf.function(lambda s: ranking.top_k_indices(s, k))
    np.testing.assert_array_equal(compiled(tf.constant(scores)).numpy(), expected)


@pytest.mark.parametrize("scores_kind", ["continuous", "tied"])
def test_two_level_top_k_leaves_out_clicked_movies_as_a_masked_copy_would(scores_kind):
    """The clicked movies travel as bits per group: whole groups clicked (the best ones among them),
    clicks in the short last group, a row with fewer unclicked movies than k, a row with none
    clicked, and a movie given twice."""
    k, group = 7, ranking.TOP_K_GROUP
    n_movies = group * ranking.TWO_LEVEL_FROM_GROUPS_PER_K * k + 13
    rng = np.random.default_rng(11)
    if scores_kind == "tied":
        scores = rng.integers(0, 4, size=(30, n_movies)).astype(np.float32)
    else:
        scores = rng.normal(size=(30, n_movies)).astype(np.float32)
    clicked = rng.random(scores.shape) < 0.3
    clicked[0, np.argmax(scores[0, :-13]) // group * group + np.arange(group)] = True  # the best full group
    clicked[1, : 3 * group] = True
    clicked[2, -13:] = True
    clicked[3, 4:] = True
    clicked[4] = False
    clicked[5, np.argsort(-scores[5], kind="stable")[: 3 * k]] = True
    expected = tf.math.top_k(np.where(clicked, -np.inf, scores), k, sorted=True).indices.numpy()

    rows, movies = np.nonzero(clicked)
    repeated = (tf.constant(np.r_[rows, rows[:5]]), tf.constant(np.r_[movies, movies[:5]]))
    np.testing.assert_array_equal(ranking.top_k_indices(tf.constant(scores), k, clicked=repeated).numpy(), expected)
    none = (tf.zeros([0], tf.int64), tf.zeros([0], tf.int64))
    np.testing.assert_array_equal(ranking.top_k_indices(tf.constant(scores), k, clicked=none).numpy(),
                                  tf.math.top_k(scores, k, sorted=True).indices.numpy())
    fold_in = sp.csr_matrix(clicked.astype(np.float32))
    np.testing.assert_array_equal(ranking.rank_top_k(scores, k, exclude=fold_in), expected)

    def scorer(indices):  # every row's scores, whatever the fold-in: the test gives all rows at once
        return tf.constant(scores)

    padded = tf.constant(ranking.padded_indices(fold_in))
    np.testing.assert_array_equal(ranking.compiled_top_k(scorer, k)(padded).numpy(), expected)
