"""Recall@R and NDCG@R over held-out clicks, batched so no users x movies array is ever whole.

Definitions (the Hybrid-VAE paper's, which are Liang et al. 2018's):
    Recall@R = hits in the top R / min(R, |I_u|)
    NDCG@R   = sum_{r<=R} 1[w(r) in I_u] / log2(r + 1), divided by the same sum for a perfect list
               of that user (min(R, |I_u|) hits at the top) -- per user, not a global maximum.
Ties in the scores are broken towards the lower movie index (tf.math.top_k's documented rule), so
results do not depend on the platform. Users without held-out clicks are excluded and counted.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import scipy.sparse as sp
import tensorflow as tf


def rank_top_k(scores, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Indices of the k best movies per row; `exclude`d movies (the fold-in) are never ranked."""
    scores = tf.convert_to_tensor(scores, tf.float32)
    if exclude is not None and exclude.nnz:
        coo = exclude.tocoo()
        positions = np.stack([coo.row, coo.col], axis=1).astype(np.int64)
        scores = tf.tensor_scatter_nd_update(
            scores, positions, tf.fill([len(positions)], tf.constant(-np.inf, tf.float32))
        )
    k = min(k, int(scores.shape[1]))
    return tf.math.top_k(scores, k=k, sorted=True).indices.numpy()


def _hits(top: np.ndarray, held_out: sp.csr_matrix) -> np.ndarray:
    """hits[u, r] = 1 when the r-th ranked movie of user u is held out (only this batch is dense).

    A -1 in `top` (a served model that had fewer than k movies to offer) is never a hit.
    """
    truth = np.zeros((held_out.shape[0], held_out.shape[1] + 1), dtype=bool)
    truth[:, :-1] = held_out.astype(bool).toarray()
    return np.take_along_axis(truth, np.where(top < 0, held_out.shape[1], top), axis=1)


def recall_at_k(top: np.ndarray, held_out: sp.csr_matrix, k: int) -> np.ndarray:
    n_true = np.diff(held_out.indptr)
    hits = _hits(top[:, :k], held_out).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_true > 0, hits / np.minimum(k, n_true), np.nan)


def ndcg_at_k(top: np.ndarray, held_out: sp.csr_matrix, k: int) -> np.ndarray:
    n_true = np.diff(held_out.indptr)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hits = _hits(top[:, :k], held_out)
    dcg = hits @ discounts[: hits.shape[1]]
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(n_true, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_true > 0, dcg / ideal, np.nan)


def score_users(
    score_fn: Callable[[np.ndarray], np.ndarray],
    inputs: sp.csr_matrix,
    held_out: sp.csr_matrix,
    *,
    mask_inputs: bool = True,
    recall_ks: Iterable[int] = (20, 50),
    ndcg_ks: Iterable[int] = (100,),
    batch_size: int = 1000,
) -> dict[str, np.ndarray]:
    """Per-user metric vectors (NaN for users with nothing held out).

    `score_fn` maps a padded int64 index batch (-1 = padding) to scores over all movies.
    Eval 2 (Liang's protocol) passes the fold-in as `inputs` with `mask_inputs=True`; Eval 1 passes
    the whole history as both inputs and held_out, unmasked.
    """
    recall_ks, ndcg_ks = tuple(recall_ks), tuple(ndcg_ks)
    depth = max(recall_ks + ndcg_ks)

    def top_lists(batch_in):
        scores = score_fn(padded_indices(batch_in))
        return rank_top_k(scores, depth, exclude=batch_in if mask_inputs else None)

    return score_top_lists(top_lists, inputs, held_out, recall_ks=recall_ks, ndcg_ks=ndcg_ks,
                           batch_size=batch_size)


def score_top_lists(
    top_fn: Callable[[sp.csr_matrix], np.ndarray],
    inputs: sp.csr_matrix,
    held_out: sp.csr_matrix,
    *,
    recall_ks: Iterable[int] = (20, 50),
    ndcg_ks: Iterable[int] = (100,),
    batch_size: int = 1000,
) -> dict[str, np.ndarray]:
    """Per-user metrics from a ranker that returns top lists (column indices, -1 for none).

    Used directly for a served model, whose answer is already the top-k list.
    """
    recall_ks, ndcg_ks = tuple(recall_ks), tuple(ndcg_ks)
    n = inputs.shape[0]
    out = {f"recall@{k}": np.empty(n) for k in recall_ks}
    out.update({f"ndcg@{k}": np.empty(n) for k in ndcg_ks})
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        top, batch_true = top_fn(inputs[rows]), held_out[rows]
        for k in recall_ks:
            out[f"recall@{k}"][rows] = recall_at_k(top, batch_true, k)
        for k in ndcg_ks:
            out[f"ndcg@{k}"][rows] = ndcg_at_k(top, batch_true, k)
    return out


def padded_indices(matrix: sp.csr_matrix) -> np.ndarray:
    """Rows of a click matrix as padded int64 movie indices (-1 = padding), the models' input form."""
    lengths = np.diff(matrix.indptr)
    width = max(int(lengths.max(initial=0)), 1)
    out = np.full((matrix.shape[0], width), -1, dtype=np.int64)
    positions = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], lengths)
    out[np.repeat(np.arange(matrix.shape[0]), lengths), positions] = matrix.indices
    return out


def summarize(per_user: dict[str, np.ndarray]) -> dict[str, float]:
    """Means over users with held-out clicks, plus how many were excluded."""
    first = next(iter(per_user.values()))
    valid = ~np.isnan(first)
    summary = {name: float(values[valid].mean()) if valid.any() else float("nan")
               for name, values in per_user.items()}
    summary["users"] = int(valid.sum())
    summary["users_excluded"] = int((~valid).sum())
    return summary
