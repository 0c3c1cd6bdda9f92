"""Batched ranking metrics against a plain per-user loop that follows the definitions literally."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

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
