"""Click matrices with the statistics of ML-20M after Liang et al.'s filter, drawn directly.

The benchmarks need batches shaped like the real ones (how many clicks a user has, how skewed
movie popularity is), not a model-learnable signal, so drawing the CSR with numpy in seconds
beats generating and parsing 20M ratings. numpy and scipy only: the memory benchmark's parent
process uses it without paying for (or counting) a TensorFlow import.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# ML-20M after Liang's filter (rating > 3.5, users with >= 5 clicks): 136,677 users,
# 20,108 movies, 10,000,054 clicks; the paper keeps the 26,621 movies with IMDb information.
LIANG_USERS = 136_677
LIANG_MOVIES = 20_108
LIANG_CLICKS = 10_000_054
PAPER_MOVIES = 26_621
MIN_CLICKS = 5
ACTIVITY_SIGMA = 1.2  # lognormal spread of clicks per user: median ~ a third of the mean
POPULARITY_OFFSET = 30  # p(movie of popularity rank r) ~ 1 / (r + 30): the top movie ~0.5% of clicks


def liang_like_clicks(
    n_users: int,
    n_movies: int,
    mean_clicks: float = LIANG_CLICKS / LIANG_USERS,
    seed: int = 0,
) -> sp.csr_matrix:
    """A binary float32 [n_users, n_movies] CSR: >= 5 distinct movies per user, long-tailed
    activity (capped at a third of the movies) and long-tailed movie popularity."""
    if n_users < 1 or n_movies < 3 * MIN_CLICKS or mean_clicks < MIN_CLICKS:
        raise ValueError(
            f"need n_users >= 1, n_movies >= {3 * MIN_CLICKS} and mean_clicks >= {MIN_CLICKS}; "
            f"got {n_users}, {n_movies}, {mean_clicks}"
        )
    rng = np.random.default_rng(seed)
    tail_mean = mean_clicks - MIN_CLICKS
    tail = rng.lognormal(np.log(tail_mean) - ACTIVITY_SIGMA**2 / 2, ACTIVITY_SIGMA, n_users)
    counts = np.minimum(MIN_CLICKS + np.round(tail).astype(np.int64), n_movies // 3)
    weights = 1.0 / (np.arange(n_movies) + POPULARITY_OFFSET)
    cdf = np.cumsum(weights) / weights.sum()
    movie_of_rank = rng.permutation(n_movies)  # popular movies spread over the index

    finished, kept = [], np.empty(0, np.int64)  # keys user * n_movies + movie, distinct
    short, factor = np.arange(n_users), 1.5
    for _ in range(20):  # each round tops up only the users still short of distinct movies
        deficit = counts[short] - np.bincount(kept // n_movies, minlength=n_users)[short]
        owner = np.repeat(short, np.ceil(deficit * factor).astype(np.int64) + 4)
        movie = movie_of_rank[np.minimum(np.searchsorted(cdf, rng.random(owner.size)), n_movies - 1)]
        keys = _keep_random(_distinct(np.concatenate([kept, owner * n_movies + movie])), counts, n_movies, rng)
        users = keys // n_movies
        full = np.bincount(users, minlength=n_users) >= counts
        finished.append(keys[full[users]])
        kept = keys[~full[users]]
        short, factor = np.unique(kept // n_movies), factor * 2
        if short.size == 0:
            break
    keys = np.sort(np.concatenate([*finished, kept]))
    rows, cols = np.divmod(keys, n_movies)
    return sp.csr_matrix(
        (np.ones(keys.size, np.float32), cols.astype(np.int32), _indptr(rows, n_users)),
        shape=(n_users, n_movies),
    )


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique's hash path is several times slower on 10M int64)."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])]


def check_sizes(parser, args, names: tuple[str, ...]) -> None:
    """The benchmarks' command-line check: each named size >= 1 and every --movies >= 15."""
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if min(np.atleast_1d(args.movies)) < 3 * MIN_CLICKS:
        parser.error(f"--movies must be at least {3 * MIN_CLICKS}")


def _keep_random(keys: np.ndarray, counts: np.ndarray, n_movies: int, rng) -> np.ndarray:
    """At most counts[u] of each user's keys, a random subset, returned sorted."""
    users = keys // n_movies
    order = np.argsort(users << 32 | rng.integers(0, 2**32, keys.size), kind="stable")  # random within user
    users_sorted = users[order]
    rank = np.arange(keys.size) - np.searchsorted(users_sorted, users_sorted, side="left")
    return np.sort(keys[order[rank < counts[users_sorted]]])


def _indptr(rows: np.ndarray, n_rows: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))]).astype(np.int64)


def fold_in_split(matrix: sp.csr_matrix, held_out: float = 0.2, seed: int = 0):
    """(fold_in, held_out) CSRs: each click held out with probability `held_out` (Eval 2's 80/20)."""
    matrix = sp.csr_matrix(matrix)
    hide = np.random.default_rng(seed).random(matrix.nnz) < held_out
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))

    def part(keep):
        return sp.csr_matrix(
            (matrix.data[keep], matrix.indices[keep], _indptr(rows[keep], matrix.shape[0])),
            shape=matrix.shape,
        )

    return part(~hide), part(hide)
