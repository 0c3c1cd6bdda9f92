"""Most-clicked-first: the same list for every user, the floor any personalised model must clear."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class Popularity:
    """Scores each movie by its number of training clicks."""

    name = "Popularity"

    def __init__(self):
        self.counts: np.ndarray | None = None

    def fit(self, train: sp.spmatrix) -> "Popularity":
        if not sp.issparse(train) or train.ndim != 2:
            raise ValueError(f"Popularity.fit needs the sparse users x movies train matrix, got {type(train).__name__}")
        self.counts = np.asarray(train.sum(axis=0), dtype=np.float32).ravel()
        return self

    def scores(self, indices: np.ndarray) -> np.ndarray:
        """The click counts, one row per user of the batch (the users' own clicks do not matter)."""
        if self.counts is None:
            raise RuntimeError("Popularity.scores called before fit(train)")
        return np.tile(self.counts, (len(indices), 1))

    __call__ = scores
