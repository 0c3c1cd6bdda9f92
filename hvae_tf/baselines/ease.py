"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"): a linear item-item model in closed form.

With X the users x movies training clicks and G = X^T X + l2 I, the weights are
    P = G^-1,  B = I - P / diag(P)  (column j divided by P_jj),  so diag(B) = 0,
and a user's scores are x_u B. The only dense arrays are movies x movies (never users x movies):
n_movies^2 floats each, two at once while fitting (Gram and the inverse, computed in place) and
three while tuning (plus the best weights so far). Above `FLOAT64_MAX_MOVIES` movies they are
float32 (ML-20M's ~20k movies: 1.6 GB each instead of 3.2 GB); the Gram matrix holds click counts,
exact in float32 below 2^24 users.
"""

from __future__ import annotations

import logging
import math
from typing import Iterable

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse as sp

from hvae_tf.metrics import ranking

log = logging.getLogger(__name__)

DEFAULT_L2_GRID = (100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)
# EDLAE's grid: its popularity penalty carries most of the regularisation, so its l2 runs lower.
DEFAULT_EDLAE_L2_GRID = (50.0, 100.0, 200.0, 500.0, 1000.0)
DEFAULT_DROPOUT_GRID = (0.25, 0.5, 0.67)
FLOAT64_MAX_MOVIES = 10_000


class EASE:
    """The closed-form item-item model; `l2` is the weight of its ridge penalty, `dropout` EDLAE's
    (0: EASE itself; see closed_form)."""

    name = "EASE"

    def __init__(self, l2: float = 500.0, dtype=None, dropout: float = 0.0):
        self.l2 = _checked_l2(l2)
        self.dtype = dtype
        self.dropout = float(dropout)
        self.weights: np.ndarray | None = None

    def fit(self, train: sp.spmatrix) -> "EASE":
        gram = gram_matrix(train, self.dtype)
        self.weights = closed_form(gram, self.l2, self.dropout)
        return self

    def scores(self, indices: np.ndarray) -> np.ndarray:
        """x_u B for each padded index row (-1 = padding): scores over all movies, float32."""
        if self.weights is None:
            raise RuntimeError("EASE.scores called before fit(train) or EASE.tuned(...)")
        clicks = clicks_from_padded(indices, self.weights.shape[0]).astype(self.weights.dtype)
        return np.asarray(clicks @ self.weights, dtype=np.float32)

    __call__ = scores

    @classmethod
    def tuned(
        cls,
        train: sp.spmatrix,
        validation_fold_in: sp.spmatrix,
        validation_held_out: sp.spmatrix,
        grid: Iterable[float] = DEFAULT_L2_GRID,
        metric: str = "ndcg@100",
        dtype=None,
        batch_size: int = 1000,
        dropouts: Iterable[float] = (0.0,),
    ) -> tuple["EASE", dict]:
        """The model whose l2 (and EDLAE dropout) maximises `metric` on the validation users (Eval
        2), and l2 -> metric (with several dropouts: (l2, dropout) -> metric).

        Only validation arrays are looked at, never test users. The Gram matrix is formed once and
        reused for every setting; on a tie the earlier grid point wins.
        """
        dropouts = [float(d) for d in dropouts]
        grid = [_checked_l2(l2) for l2 in grid]
        if not grid:
            raise ValueError("EASE.tuned needs at least one l2 value in grid")
        recall_ks, ndcg_ks = _metric_ks(metric)
        n_movies = train.shape[1]
        for name, matrix in (("validation_fold_in", validation_fold_in),
                             ("validation_held_out", validation_held_out)):
            if not sp.issparse(matrix) or matrix.shape != (validation_fold_in.shape[0], n_movies):
                raise ValueError(f"EASE.tuned: {name} must be a sparse validation users x {n_movies:,} "
                                 f"movies matrix over the train columns, got shape {getattr(matrix, 'shape', None)}")
        gram = gram_matrix(train, dtype)
        best, table, best_value = None, {}, -math.inf
        for l2, dropout in ((l2, d) for d in dropouts for l2 in grid):
            candidate = cls(l2, dtype, dropout)
            candidate.weights = closed_form(gram, l2, dropout)
            per_user = ranking.score_users(candidate.scores, validation_fold_in.tocsr(),
                                           validation_held_out.tocsr(), mask_inputs=True,
                                           recall_ks=recall_ks, ndcg_ks=ndcg_ks, batch_size=batch_size)
            value = ranking.summarize(per_user)[metric]
            if math.isnan(value):
                raise ValueError("EASE.tuned: no validation user has held-out clicks, so l2 cannot "
                                 "be chosen; make the split with more clicks per held-out user")
            table[l2 if len(dropouts) == 1 else (l2, dropout)] = value
            log.info("%s l2=%g dropout=%g validation %s=%.4f", cls.name, l2, dropout, metric, value)
            if best is None or value > best_value:
                best, best_value = candidate, value
        log.info("%s chose l2=%g dropout=%g (validation %s=%.4f)", cls.name, best.l2, best.dropout,
                 metric, best_value)
        return best, table


class EDLAE(EASE):
    """EASE with the emphasised-denoising penalty of Steck (2020): a linear autoencoder trained,
    in closed form, as if a `dropout` share of each user's clicks were dropped; a stronger
    item-item baseline than EASE on small catalogues."""

    name = "EDLAE"

    def __init__(self, l2: float = 200.0, dtype=None, dropout: float = 0.5):
        super().__init__(l2, dtype, dropout)
        if not 0.0 < self.dropout < 1.0:
            raise ValueError(f"EDLAE's dropout must be in (0, 1) (0 is EASE), got {dropout!r}")


def gram_matrix(train: sp.spmatrix, dtype=None) -> np.ndarray:
    """X^T X as a dense movies x movies array, float64 up to FLOAT64_MAX_MOVIES movies, else float32."""
    if not sp.issparse(train) or train.ndim != 2:
        raise ValueError(f"EASE needs the sparse users x movies train matrix, got {type(train).__name__}")
    if dtype is None:
        dtype = np.float64 if train.shape[1] <= FLOAT64_MAX_MOVIES else np.float32
    clicks = sp.csr_matrix(train, dtype=np.float64)
    return (clicks.T @ clicks).astype(dtype).toarray()


def closed_form(gram: np.ndarray, l2: float, dropout: float = 0.0) -> np.ndarray:
    """B = I - P / diag(P) with P = (gram + l2 I + dropout / (1 - dropout) diag(gram))^-1;
    `gram` is left unchanged. With `dropout` > 0 this is EDLAE (Steck 2020, "Autoencoders that
    don't overfit towards the identity"): the expected loss of a linear autoencoder whose input
    clicks are dropped at that rate, which penalises a popular movie's weights more.

    The penalised Gram matrix is symmetric positive definite, so P comes from its Cholesky factor
    (LAPACK potrf + potri: half the work of a general inverse, and in place, so only one array
    beside `gram`).
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"EDLAE's dropout must be in [0, 1), got {dropout!r}")
    penalised = gram.copy()
    penalised[np.diag_indices_from(penalised)] += _checked_l2(l2) + dropout / (1.0 - dropout) * np.diagonal(gram)
    penalised = penalised.T  # the same matrix, now in the Fortran order LAPACK overwrites in place
    potrf, potri = scipy.linalg.get_lapack_funcs(("potrf", "potri"), (penalised,))
    factor, info = potrf(penalised, lower=False, overwrite_a=True, clean=False)
    if info == 0:
        weights, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: Gram matrix + {l2:g} I is not positive definite "
                                    f"(LAPACK info {info}); check the train matrix for NaN or inf")
    _mirror_upper_triangle(weights)
    weights /= -np.diagonal(weights).copy()
    np.fill_diagonal(weights, 0.0)
    return weights


def logit_start(train: sp.spmatrix, l2: float, users: int = 1000, seed: int = 0,
                dropout: float = 0.0) -> tuple[np.ndarray, float]:
    """EASE's weights as click logits: (a B, c) with a, c from a logistic fit of each (user, movie)
    click on its EASE score a x_u B_i + c, over a sample of training users.

    EASE's scores are regression outputs near [0, 1]; a sigmoid of them would barely separate
    movies. Scaled and shifted by the fitted a and c, s(a x_u B + c) is EASE's own click
    probability, so a path started there ranks as EASE does from the first step.
    """
    weights = closed_form(gram_matrix(train), l2, dropout)
    rng = np.random.default_rng(seed)
    sample = sp.csr_matrix(train)[np.sort(rng.choice(train.shape[0], min(users, train.shape[0]), replace=False))]
    scores = np.asarray(sample @ weights, dtype=np.float64).ravel()
    clicked = np.asarray(sample.toarray(), dtype=np.float64).ravel()  # a sample of users: small
    rate = float(np.clip(clicked.mean(), 1e-6, 1 - 1e-6))

    def loss(theta):  # mean Bernoulli negative log-likelihood of the clicks, and its gradient
        logits = theta[0] * scores + theta[1]
        residual = 1.0 / (1.0 + np.exp(-logits)) - clicked
        value = np.mean(np.logaddexp(0.0, logits) - clicked * logits)
        return value, np.array([np.mean(residual * scores), np.mean(residual)])

    theta = scipy.optimize.minimize(loss, [1.0, math.log(rate / (1 - rate))], jac=True,
                                    method="L-BFGS-B").x  # convex in (a, c)
    weights *= theta[0]
    return weights.astype(np.float32), float(theta[1])


def _mirror_upper_triangle(matrix: np.ndarray, block: int = 2048) -> None:
    """Copy the upper triangle onto the lower one in place, a block of rows at a time."""
    for start in range(0, matrix.shape[0], block):
        stop = min(start + block, matrix.shape[0])
        matrix[start:stop, :start] = matrix[:start, start:stop].T
        square = matrix[start:stop, start:stop]
        square[...] = np.triu(square) + np.triu(square, 1).T


def clicks_from_padded(indices: np.ndarray, n_movies: int) -> sp.csr_matrix:
    """The binary click rows behind a padded int64 index batch (-1 = padding)."""
    indices = np.asarray(indices)
    if indices.ndim != 2 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"expected a 2-D integer batch of movie indices (-1 = padding), got "
                         f"{indices.dtype} with shape {indices.shape}")
    rows, positions = np.nonzero(indices >= 0)
    movies = indices[rows, positions]
    if movies.size and movies.max() >= n_movies:
        raise ValueError(f"movie index {int(movies.max())} is outside the model's {n_movies:,} movies: "
                         "score users with the split the model was fitted on")
    clicks = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, movies)),
                           shape=(indices.shape[0], n_movies))
    clicks.sum_duplicates()
    clicks.data[:] = 1.0
    return clicks


def _checked_l2(l2) -> float:
    l2 = float(l2)
    if not (math.isfinite(l2) and l2 > 0):
        raise ValueError(f"EASE's l2 weight must be a positive number, got {l2!r}")
    return l2


def _metric_ks(metric: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The (recall_ks, ndcg_ks) score_users must compute for `metric`: "recall@20" -> ((20,), ())."""
    name, _, k = metric.partition("@")
    if name not in ("recall", "ndcg") or not k.isdigit() or int(k) < 1:
        raise ValueError(f"unknown metric {metric!r}: use recall@K or ndcg@K, e.g. ndcg@100")
    return ((int(k),), ()) if name == "recall" else ((), (int(k),))
