"""Recall@R and NDCG@R over held-out clicks, batched so no users x movies array is ever whole.

Definitions (the Hybrid-VAE paper's, which are Liang et al. 2018's):
    Recall@R = hits in the top R / min(R, |I_u|)
    NDCG@R   = sum_{r<=R} 1[w(r) in I_u] / log2(r + 1), divided by the same sum for a perfect list
               of that user (min(R, |I_u|) hits at the top) -- per user, not a global maximum.
Ties in the scores are broken towards the lower movie index (tf.math.top_k's documented rule), so
results do not depend on the platform. Users without held-out clicks are excluded and counted.

Two paths from scores to top lists, with the same results on the same scores:
- `score_users(score_fn, ...)`: any scorer, a numpy one (the baselines) included; the scores come
  back to the host and `rank_top_k` masks and ranks them eagerly.
- `score_users(score_fn, ..., traceable=True)`: a TF-traceable scorer (a Keras model's `scores`);
  scoring, masking and ranking run in one tf.function (`compiled_top_k`) and only the batch x
  depth top list comes back. Scores computed inside a graph can differ from eager ones in the last
  bit (Grappler fuses a Dense layer's matmul and bias add), so a near-tie may order differently.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Callable, Iterable

import numpy as np
import scipy.sparse as sp
import tensorflow as tf


def rank_top_k(scores, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Indices of the k best movies per row; `exclude`d movies (the fold-in) are never ranked."""
    clicked = None
    if exclude is not None and exclude.nnz:
        coo = exclude.tocoo()
        clicked = (tf.constant(coo.row, tf.int64), tf.constant(coo.col, tf.int64))
    return top_k_indices(tf.convert_to_tensor(scores, tf.float32), k, clicked=clicked).numpy()


def _hits(top: np.ndarray, held_out: sp.csr_matrix) -> np.ndarray:
    """hits[u, r] = 1 when the r-th ranked movie of user u is held out (nonzero in `held_out`).

    A -1 in `top` (a served model that had fewer than k movies to offer) is never a hit. A lookup
    of (user, movie) keys in the batch's sorted held-out keys: no batch x movies array is built.
    """
    n_rows, n_cols = held_out.shape
    top = np.asarray(top)
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(held_out.indptr))
    keys = np.sort((rows * (n_cols + 1) + held_out.indices)[held_out.data != 0])
    queries = np.arange(n_rows, dtype=np.int64)[:, None] * (n_cols + 1) + np.where(top < 0, n_cols, top)
    if keys.size == 0:
        return np.zeros(queries.shape, dtype=bool)
    return keys[np.minimum(np.searchsorted(keys, queries), keys.size - 1)] == queries


def held_out_ranks(top: np.ndarray, held_out: sp.csr_matrix) -> np.ndarray:
    """Per entry of `held_out` (in its CSR order) the 0-based rank of that movie in the user's top
    list, -1 where it is not in the list: what a test over movies needs beside per-user metrics."""
    n_rows, n_cols = held_out.shape
    top = np.asarray(top)
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(held_out.indptr))
    keys = rows * (n_cols + 1) + held_out.indices
    order = np.argsort(keys, kind="stable")
    ranks = np.full(len(keys), -1, np.int32)
    if keys.size == 0:
        return ranks
    sorted_keys = keys[order]
    listed_rows, positions = np.nonzero(top >= 0)
    queries = listed_rows * (n_cols + 1) + top[listed_rows, positions]
    found = np.minimum(np.searchsorted(sorted_keys, queries), keys.size - 1)
    match = sorted_keys[found] == queries
    ranks[order[found[match]]] = positions[match]
    return ranks


def _recall(hits: np.ndarray, n_true: np.ndarray, k: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_true > 0, hits[:, :k].sum(axis=1) / np.minimum(k, n_true), np.nan)


def _ndcg(hits: np.ndarray, n_true: np.ndarray, k: int) -> np.ndarray:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hits = hits[:, :k]
    dcg = hits @ discounts[: hits.shape[1]]
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(n_true, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_true > 0, dcg / ideal, np.nan)


def recall_at_k(top: np.ndarray, held_out: sp.csr_matrix, k: int) -> np.ndarray:
    return _recall(_hits(np.asarray(top)[:, :k], held_out), np.diff(held_out.indptr), k)


def ndcg_at_k(top: np.ndarray, held_out: sp.csr_matrix, k: int) -> np.ndarray:
    return _ndcg(_hits(np.asarray(top)[:, :k], held_out), np.diff(held_out.indptr), k)


def score_users(
    score_fn: Callable[[np.ndarray], np.ndarray],
    inputs: sp.csr_matrix,
    held_out: sp.csr_matrix,
    *,
    mask_inputs: bool = True,
    recall_ks: Iterable[int] = (20, 50),
    ndcg_ks: Iterable[int] = (100,),
    batch_size: int = 1000,
    traceable: bool = False,
    column_groups: dict[str, np.ndarray] | None = None,
    ranks_out: list | None = None,
) -> dict[str, np.ndarray]:
    """Per-user metric vectors (NaN for users with nothing held out).

    `score_fn` maps a padded int64 index batch (-1 = padding) to scores over all movies.
    Eval 2 (Liang's protocol) passes the fold-in as `inputs` with `mask_inputs=True`; Eval 1 passes
    the whole history as both inputs and held_out, unmasked.

    `traceable=True` scores, masks and ranks each batch in one tf.function (`compiled_top_k`), for
    a `score_fn` TensorFlow can trace (a Keras model's `scores`, not a numpy scorer). The function
    is compiled once per (score_fn, depth, mask_inputs) and reused by later calls: pass a bound
    method (`model.scores`) or a long-lived function, not a new lambda each time, which would be
    traced again on every call.

    `column_groups` (name -> boolean mask over the movies) adds "<name>:<metric>" for each: the
    metric over the user's held-out clicks in the group alone, on the same ranking.

    `ranks_out`, a list, gets each held-out click's rank (see score_top_lists).
    """
    recall_ks, ndcg_ks = tuple(recall_ks), tuple(ndcg_ks)
    depth = max(recall_ks + ndcg_ks)

    if traceable:
        ranked = compiled_top_k(score_fn, depth, mask_inputs)

        def top_lists(batch_in):
            return ranked(tf.constant(padded_indices(batch_in))).numpy()
    else:
        def top_lists(batch_in):
            scores = score_fn(padded_indices(batch_in))
            return rank_top_k(scores, depth, exclude=batch_in if mask_inputs else None)

    return score_top_lists(top_lists, inputs, held_out, recall_ks=recall_ks, ndcg_ks=ndcg_ks,
                           batch_size=batch_size, column_groups=column_groups, ranks_out=ranks_out)


def score_top_lists(
    top_fn: Callable[[sp.csr_matrix], np.ndarray],
    inputs: sp.csr_matrix,
    held_out: sp.csr_matrix,
    *,
    recall_ks: Iterable[int] = (20, 50),
    ndcg_ks: Iterable[int] = (100,),
    batch_size: int = 1000,
    column_groups: dict[str, np.ndarray] | None = None,
    ranks_out: list | None = None,
) -> dict[str, np.ndarray]:
    """Per-user metrics from a ranker that returns top lists (column indices, -1 for none), and
    per group of `column_groups` the same over the held-out clicks in the group (see score_users).

    Used directly for a served model, whose answer is already the top-k list. With `ranks_out`
    (a list), one int32 array is appended to it: each entry of `held_out`, in CSR order, gets its
    0-based rank in the top list or -1 (`held_out_ranks`).
    """
    recall_ks, ndcg_ks = tuple(recall_ks), tuple(ndcg_ks)
    groups = {"": None, **{f"{name}:": np.asarray(mask, bool) for name, mask in (column_groups or {}).items()}}
    n = inputs.shape[0]
    batch_ranks = []
    out = {f"{g}{metric}@{k}": np.empty(n) for g in groups
           for metric, ks in (("recall", recall_ks), ("ndcg", ndcg_ks)) for k in ks}
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        batch_true = held_out[rows]
        top = np.asarray(top_fn(inputs[rows]))
        hits = _hits(top, batch_true)
        if ranks_out is not None:
            batch_ranks.append(held_out_ranks(top, batch_true))
        for prefix, mask in groups.items():
            if mask is None:
                group_hits, n_true = hits, np.diff(batch_true.indptr)
            else:
                group_hits = hits & (top >= 0) & mask[np.maximum(top, 0)]
                in_group = mask[batch_true.indices] & (batch_true.data != 0)
                entry_rows = np.repeat(np.arange(batch_true.shape[0]), np.diff(batch_true.indptr))
                n_true = np.bincount(entry_rows[in_group], minlength=batch_true.shape[0])
            for k in recall_ks:
                out[f"{prefix}recall@{k}"][rows] = _recall(group_hits, n_true, k)
            for k in ndcg_ks:
                out[f"{prefix}ndcg@{k}"][rows] = _ndcg(group_hits, n_true, k)
    if ranks_out is not None:
        ranks_out.append(np.concatenate(batch_ranks) if batch_ranks else np.zeros(0, np.int32))
    return out


def padded_indices(matrix: sp.csr_matrix) -> np.ndarray:
    """Rows of a click matrix as padded int64 movie indices (-1 = padding), the models' input form."""
    lengths = np.diff(matrix.indptr)
    width = max(int(lengths.max(initial=0)), 1)
    out = np.full((matrix.shape[0], width), -1, dtype=np.int64)
    positions = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], lengths)
    out[np.repeat(np.arange(matrix.shape[0]), lengths), positions] = matrix.indices
    return out


def only_columns(matrix: sp.csr_matrix, columns: np.ndarray) -> sp.csr_matrix:
    """`matrix` with its entries outside the boolean column mask removed, same shape."""
    kept = (matrix @ sp.diags(columns.astype(matrix.dtype))).tocsr()
    kept.eliminate_zeros()
    return kept


def summarize(per_user: dict[str, np.ndarray]) -> dict[str, float]:
    """Means over the users each metric scores (NaN: nothing to score), the users with held-out
    clicks and how many were excluded, and for each segment ("tail:...") the users it scores."""
    summary = {name: float(np.nanmean(values)) if (~np.isnan(values)).any() else float("nan")
               for name, values in per_user.items()}
    first = next(iter(per_user.values()))
    summary["users"] = int((~np.isnan(first)).sum())
    summary["users_excluded"] = int(np.isnan(first).sum())
    for name, values in per_user.items():
        segment = name.rpartition(":")[0]
        if segment and f"{segment}:users" not in summary:
            summary[f"{segment}:users"] = int((~np.isnan(values)).sum())
    return summary


# ----------------------------------------------------------------------------------------------
# The compiled path: scores, masking and top-k in one tf.function.

# Compiled functions per scorer owner (the model of a bound method, or the function itself), held
# weakly: an entry goes when its model does, and the function holds its scorer only weakly, so the
# cache never keeps a model alive (a grid trains many in one process).
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_top_k(score_fn: Callable, depth: int,
                   mask_inputs: bool = True) -> tf.types.experimental.PolymorphicFunction:
    """A tf.function: padded int64 fold-in indices [batch, len] (-1 = padding) -> int32 [batch,
    min(depth, n_movies)] column indices of the best movies, best first.

    It computes `score_fn(indices)` (which must be TF-traceable, e.g. a Keras model's `scores`),
    sets each user's input movies (read from the indices themselves) to -inf when `mask_inputs`,
    and ranks them as `rank_top_k` does: the same lists on the same scores, ties to the lower
    index. Only the top lists leave the function. Compiled once per (score_fn, depth, mask_inputs)
    and cached; a bound method is keyed on its object and function, so `model.scores` taken anew
    each epoch finds the same compiled function.
    """
    depth, mask_inputs = int(depth), bool(mask_inputs)
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    if inspect.ismethod(score_fn):
        owner, key, make_ref = score_fn.__self__, (score_fn.__func__, depth, mask_inputs), weakref.WeakMethod
    else:
        owner, key, make_ref = score_fn, (None, depth, mask_inputs), weakref.ref
    try:
        per_owner = _COMPILED.setdefault(owner, {})
        ref = make_ref(score_fn)
    except TypeError:  # neither weakly referenceable nor hashable: compiled for this call only
        return _compile(lambda: score_fn, depth, mask_inputs)
    if key not in per_owner:
        per_owner[key] = _compile(ref, depth, mask_inputs)
    return per_owner[key]


def _compile(score_fn_ref: Callable[[], Callable | None], depth: int, mask_inputs: bool):
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name="indices")])
    def ranked(indices):
        score_fn = score_fn_ref()
        if score_fn is None:
            raise ReferenceError("the scorer this ranking function was compiled for no longer exists")
        scores = tf.cast(score_fn(indices), tf.float32)
        return top_k_indices(scores, depth, clicked=clicked_positions(indices) if mask_inputs else None)

    return ranked


def clicked_positions(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The (row, movie) pairs of padded int64 `indices` (-1 = padding), as two int64 vectors."""
    indices = tf.cast(indices, tf.int64)
    positions = tf.where(indices >= 0)
    return positions[:, 0], tf.gather_nd(indices, positions)


# Movies per group of the two-level top-k (at most 64: a group's clicked movies are the bits of one
# int64), and from how many groups per wanted movie it is taken.
TOP_K_GROUP = 32
TWO_LEVEL_FROM_GROUPS_PER_K = 4


def top_k_indices(scores: tf.Tensor, k: int, clicked: tuple[tf.Tensor, tf.Tensor] | None = None) -> tf.Tensor:
    """Column indices [batch, min(k, n_movies)] (int32) of each row's best scores, best first, ties
    to the lower index, leaving out the `clicked` (rows, movies) int64 pairs: exactly tf.math.top_k's
    lists on the scores with those entries at -inf.

    On large catalogues in two levels, because tf.math.top_k on a CPU costs several times a pass over
    the scores: the k best groups of TOP_K_GROUP movies by their maximum (ties to the lower group),
    then top_k over those groups' movies in column order (columns past the last movie at -inf).
    Exact: a movie of a left-out group g that made the list would score t, the k-th chosen group's
    maximum, and every chosen group with maximum t lies before g and holds a movie scoring t, which
    outranks it; there are at least as many of those as the list has places for scores of t.
    There the clicked movies are bits of one integer per group, applied where the scores are read,
    so no masked copy of the [batch, n_movies] scores is written.
    """
    n_movies = scores.shape[1]
    k = tf.minimum(k, tf.shape(scores)[1]) if n_movies is None else min(k, int(n_movies))
    n_groups = None if n_movies is None else -(-int(n_movies) // TOP_K_GROUP)
    if n_groups is None or n_groups < TWO_LEVEL_FROM_GROUPS_PER_K * k:
        if clicked is not None:
            scores = _masked(scores, *clicked)
        return tf.math.top_k(scores, k, sorted=True).indices
    bits = _clicked_bits(tf.shape(scores)[0], int(n_movies), n_groups, clicked)
    chosen = tf.sort(tf.math.top_k(_group_maxima(scores, bits), k).indices, axis=1)
    best = tf.math.top_k(_group_members(scores, bits, chosen), k, sorted=True)
    columns = tf.reshape(chosen[:, :, None] * TOP_K_GROUP + tf.range(TOP_K_GROUP)[None, None, :],
                         (-1, k * TOP_K_GROUP))
    return tf.gather(columns, best.indices, batch_dims=1)


def _masked(scores: tf.Tensor, rows: tf.Tensor, movies: tf.Tensor) -> tf.Tensor:
    updates = tf.fill(tf.shape(movies), tf.constant(-np.inf, scores.dtype))
    return tf.tensor_scatter_nd_update(scores, tf.stack([rows, movies], axis=1), updates)


def _clicked_bits(n_rows, n_movies: int, n_groups: int, clicked) -> tf.Tensor:
    """int64 [rows, groups]: bit j of a group's entry is set when its j-th movie is clicked."""
    if clicked is None:
        return tf.zeros(tf.stack([n_rows, n_groups]), tf.int64)
    keys = tf.sort(clicked[0] * n_movies + clicked[1])
    first = keys != tf.concat([[-1], keys], axis=0)[:-1]  # a movie given twice would add its bit twice
    rows, movies = keys // n_movies, keys % n_movies
    bits = tf.where(first, tf.bitwise.left_shift(tf.ones_like(movies), movies % TOP_K_GROUP), 0)
    n_cells = tf.cast(n_rows, tf.int64) * n_groups
    flat = tf.math.unsorted_segment_sum(bits, rows * n_groups + movies // TOP_K_GROUP, n_cells)
    return tf.reshape(flat, tf.stack([n_rows, n_groups]))


def _grouped(scores: tf.Tensor, clicked_bits: tf.Tensor) -> tf.Tensor:
    """[batch, groups, TOP_K_GROUP] scores, clicked movies and the last group's padding at -inf."""
    n_groups = clicked_bits.shape[1]
    padded = tf.pad(scores, [[0, 0], [0, n_groups * TOP_K_GROUP - scores.shape[1]]],
                    constant_values=float("-inf"))
    grouped = tf.reshape(padded, (-1, n_groups, TOP_K_GROUP))
    member_bits = tf.bitwise.right_shift(clicked_bits[:, :, None], tf.range(TOP_K_GROUP, dtype=tf.int64))
    return tf.where(tf.bitwise.bitwise_and(member_bits, 1) != 0, tf.constant(-np.inf, scores.dtype), grouped)


# Both under XLA, which fuses the padding, the mask and the reduction or gather into one pass over
# the scores, where plain TF ops would first write a padded, masked copy of them.
@tf.function(jit_compile=True)
def _group_maxima(scores: tf.Tensor, clicked_bits: tf.Tensor) -> tf.Tensor:
    return tf.reduce_max(_grouped(scores, clicked_bits), axis=2)


@tf.function(jit_compile=True)
def _group_members(scores: tf.Tensor, clicked_bits: tf.Tensor, chosen: tf.Tensor) -> tf.Tensor:
    """[batch, k * TOP_K_GROUP]: the `chosen` groups' scores in column order."""
    members = tf.gather(_grouped(scores, clicked_bits), chosen, batch_dims=1)
    return tf.reshape(members, (tf.shape(chosen)[0], -1))
