"""Content item-kNN: a movie scores by how much its features resemble those of the user's movies.

score(u, j) = sum over the user's clicked movies i of cos(f_i, f_j), kept for the `neighbours`
most similar movies of each i. It needs no click on j, so it ranks new movies as well as old ones:
the floor a hybrid's new-movie numbers must clear. Similarities are kept sparse (neighbours per
movie), so memory grows as movies x neighbours, never movies x movies.
"""

from __future__ import annotations

import logging
import math
from typing import Iterable

import numpy as np
import scipy.sparse as sp

from hvae_tf.baselines.ease import _metric_ks, clicks_from_padded
from hvae_tf.metrics import ranking

log = logging.getLogger(__name__)

DEFAULT_NEIGHBOURS_GRID = (10, 50, 200, 1000)
_BLOCK = 2048  # movies whose similarity rows are computed at once


class ContentKNN:
    """Item-kNN over movie feature vectors (cosine), `neighbours` kept per movie."""

    name = "Content kNN"

    def __init__(self, neighbours: int = 200):
        if isinstance(neighbours, bool) or int(neighbours) != neighbours or neighbours < 1:
            raise ValueError(f"ContentKNN needs neighbours >= 1 (a whole number), got {neighbours!r}")
        self.neighbours = int(neighbours)
        self.similarity: sp.csr_matrix | None = None

    def fit(self, features: np.ndarray) -> "ContentKNN":
        """`features` [n_movies, D], row i the movie of column i; a movie without any feature
        (an all-zero row) resembles no other."""
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or not np.isfinite(features).all():
            raise ValueError(f"ContentKNN.fit needs a finite [n_movies, D] feature matrix, got shape "
                             f"{features.shape}")
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        unit = np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)
        n = len(unit)
        k = min(self.neighbours, n - 1)
        rows, cols, values = [], [], []
        for start in range(0, n if k >= 1 else 0, _BLOCK):  # one movie alone has no neighbour
            stop = min(start + _BLOCK, n)
            block = unit[start:stop] @ unit.T
            block[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not its own neighbour
            top = np.argpartition(-block, k - 1, axis=1)[:, :k]
            picked = np.take_along_axis(block, top, axis=1)
            keep = picked > 0  # dissimilar movies add nothing
            rows.append(np.repeat(np.arange(start, stop), k)[keep.ravel()])
            cols.append(top[keep])
            values.append(picked[keep])
        empty = np.zeros(0)
        self.similarity = sp.csr_matrix(
            (np.concatenate(values or [empty]).astype(np.float32),
             (np.concatenate(rows or [empty]).astype(np.int64), np.concatenate(cols or [empty]).astype(np.int64))),
            shape=(n, n))
        return self

    def scores(self, indices: np.ndarray) -> np.ndarray:
        """The summed similarities to each padded index row's movies (-1 = padding), float32."""
        if self.similarity is None:
            raise RuntimeError("ContentKNN.scores called before fit(features) or ContentKNN.tuned(...)")
        clicks = clicks_from_padded(indices, self.similarity.shape[0])
        return np.asarray((clicks @ self.similarity).toarray(), dtype=np.float32)

    __call__ = scores

    @classmethod
    def tuned(cls, features: np.ndarray, validation_fold_in: sp.spmatrix,
              validation_held_out: sp.spmatrix, grid: Iterable[int] = DEFAULT_NEIGHBOURS_GRID,
              metric: str = "ndcg@100") -> tuple["ContentKNN", dict[int, float]]:
        """The model whose neighbour count maximises `metric` on the validation users (Eval 2),
        and neighbours -> metric; test users are never looked at. Ties go to the earlier count."""
        recall_ks, ndcg_ks = _metric_ks(metric)
        best, table = None, {}
        for neighbours in grid:
            candidate = cls(neighbours).fit(features)
            value = ranking.summarize(ranking.score_users(
                candidate.scores, validation_fold_in.tocsr(), validation_held_out.tocsr(),
                recall_ks=recall_ks, ndcg_ks=ndcg_ks))[metric]
            if math.isnan(value):
                raise ValueError("ContentKNN.tuned: no validation user has held-out clicks, so the "
                                 "neighbour count cannot be chosen")
            table[int(neighbours)] = value
            log.info("Content kNN neighbours=%d validation %s=%.4f", neighbours, metric, value)
            if best is None or value > table[best.neighbours]:
                best = candidate
        if best is None:
            raise ValueError("ContentKNN.tuned needs at least one neighbour count in grid")
        return best, table
