"""Is A better than B on new (or rare) movies, or only on the users who happened to click them?

A paired test over users treats each user as independent evidence. For a segment of a few hundred
movies it is not: every user's list orders the same new movies, so one lucky ordering of a popular
new movie lifts many users at once, and a per-user test counts that luck once per user. Resampling
the movies as well as the users (a two-way, "pigeonhole" bootstrap: Owen 2007, *The pigeonhole
bootstrap*, Annals of Applied Statistics) lets the spread of the difference show both sources.

It needs each held-out click's rank, not only per-user means, so an evaluation keeps them
(`ClickRanks`) beside its per-user vectors for the movie segments.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

# The segments whose claims rest on few movies, and so get their clicks' ranks kept: tail movies
# (the least-clicked half) and the new movies, ranked among all movies and among new movies only.
SEGMENTS = ("tail", "new", "new-vs-new")
REPLICATES = 2000
SEED = 0
_CHUNK_CELLS = 4_000_000  # users (or movies) x replicates per chunk: 32 MB of float64 an array


@dataclasses.dataclass(frozen=True)
class ClickRanks:
    """The held-out clicks of one segment: user row, movie column, and the movie's 0-based rank
    in that user's list (-1: not within the list's first `depth` places)."""

    rows: np.ndarray
    movies: np.ndarray
    ranks: np.ndarray
    depth: int

    @classmethod
    def of(cls, held_out: sp.csr_matrix, ranks: np.ndarray, depth: int,
           columns: np.ndarray | None = None) -> "ClickRanks":
        """From a held-out matrix and its per-entry ranks (CSR order); only the clicks on the
        boolean `columns` when given."""
        rows = np.repeat(np.arange(held_out.shape[0], dtype=np.int32), np.diff(held_out.indptr))
        keep = held_out.data != 0
        if columns is not None:
            keep &= np.asarray(columns, bool)[held_out.indices]
        return cls(rows[keep], held_out.indices[keep].astype(np.int32),
                   np.asarray(ranks, np.int32)[keep], int(depth))

    @classmethod
    def per_segment(cls, held_out: sp.csr_matrix, ranks: np.ndarray, depth: int,
                    groups: dict[str, np.ndarray]) -> dict[str, "ClickRanks"]:
        """Those of `groups` (name -> boolean movie mask) that are in SEGMENTS."""
        return {name: cls.of(held_out, ranks, depth, mask) for name, mask in groups.items() if name in SEGMENTS}

    def same_clicks(self, other: "ClickRanks") -> bool:
        return np.array_equal(self.rows, other.rows) and np.array_equal(self.movies, other.movies)


@dataclasses.dataclass(frozen=True)
class BootstrapTest:
    """A - B on a segment metric: the observed mean difference over users, its 95% interval and
    two-sided p from resampling users and movies together."""

    mean_difference: float
    low: float
    high: float
    p: float
    users: int
    movies: int


def two_way_bootstrap(a: ClickRanks, b: ClickRanks, metric: str, replicates: int = REPLICATES,
                      seed: int = SEED) -> BootstrapTest:
    """Resample users and movies with Poisson(1) weights, the same draws for A and B.

    Under unit weights the statistic is the evaluation's own per-user mean (Recall@k: hits in the
    top k / min(k, clicks); NDCG@k against the user's ideal list), so the observed difference is
    the one the per-user tests report. A movie drawn twice counts its clicks twice.
    """
    if not a.same_clicks(b):
        raise ValueError("the two evaluations hold different held-out clicks: evaluate both on the "
                         "same split, fold and users")
    name, k = _parse(metric, min(a.depth, b.depth))
    user_index, rows = np.unique(a.rows, return_inverse=True)
    movie_index, movies = np.unique(a.movies, return_inverse=True)
    n_users, n_movies = len(user_index), len(movie_index)
    if n_users < 2 or n_movies < 2:
        raise ValueError(f"{metric}: a two-way bootstrap needs clicks of at least 2 users on at least "
                         f"2 movies, got {n_users} users and {n_movies} movies")

    def by_user_and_movie(values):  # users x movies, one entry per click
        return sp.csr_matrix((values, (rows, movies)), shape=(n_users, n_movies))

    clicked = by_user_and_movie(np.ones(len(rows)))
    gains = [by_user_and_movie(_gains(c.ranks, name, k)) for c in (a, b)]
    discounts = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])

    def difference(user_weights, movie_weights):  # [users, R], [movies, R] -> A - B per replicate
        counts = np.minimum(clicked @ movie_weights, k)
        scored = counts > 0
        norm = np.where(scored, counts if name == "recall" else discounts[counts.astype(int)], 1.0)
        weight = user_weights * scored
        a_mean, b_mean = (((g @ movie_weights) / norm * weight).sum(0) / weight.sum(0) for g in gains)
        return a_mean - b_mean

    with np.errstate(invalid="ignore", divide="ignore"):  # a draw that left no user with a click
        observed = float(difference(np.ones((n_users, 1)), np.ones((n_movies, 1)))[0])
        rng = np.random.default_rng(seed)
        chunk = max(1, _CHUNK_CELLS // max(n_users, n_movies))
        draws = []
        for start in range(0, replicates, chunk):
            n = min(chunk, replicates - start)
            draws.append(difference(rng.poisson(1.0, (n_users, n)).astype(np.float64),
                                    rng.poisson(1.0, (n_movies, n)).astype(np.float64)))
    draws = np.concatenate(draws)
    draws = draws[~np.isnan(draws)]
    below, above = (draws <= 0).sum(), (draws >= 0).sum()
    p = min(1.0, 2 * (min(below, above) + 1) / (len(draws) + 1))
    low, high = np.quantile(draws, [0.025, 0.975])
    return BootstrapTest(observed, float(low), float(high), float(p), n_users, n_movies)


def _parse(metric: str, depth: int) -> tuple[str, int]:
    name, _, k = metric.rpartition(":")[2].partition("@")
    if name not in ("recall", "ndcg") or not k.isdigit():
        raise ValueError(f"a two-way bootstrap tests recall@k or ndcg@k, got {metric!r}")
    if int(k) > depth:
        raise ValueError(f"{metric}: the clicks were ranked only {depth} deep; evaluate with k <= {depth}")
    return name, int(k)


def _gains(ranks: np.ndarray, name: str, k: int) -> np.ndarray:
    """A click's share of its user's DCG (NDCG) or hit count (Recall) at cut-off k."""
    within = (ranks >= 0) & (ranks < k)
    if name == "recall":
        return within.astype(np.float64)
    return np.where(within, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
