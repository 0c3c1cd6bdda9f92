"""Evaluation protocols: which users train, which are held out, and which of their clicks are hidden.

Two protocols share one shape (`Split`), so the models and the evaluation never ask which one made it:

"liang"  Liang et al.'s strong generalisation (dawenl/vae_cf, the Mult-VAE paper): keep users with
         at least `min_user_clicks` clicks; the movie index is what the training users clicked, so
         every column has a training click; held-out users keep only clicks on those movies.
"paper"  The Hybrid-VAE paper: every user that rated something; the movies are the catalogue, cut
         to movies with IMDb (OMDb) information when the release carries it.

New movies (`cold_movies`, either protocol): a seeded share of the movies that have features and
training clicks loses every click of the training users and of the held-out users' fold-in; they
stay in the movie index, and held-out clicks on them are targets like any other (a movie added
after the training data was collected, with its IMDb record but no clicks). The held-out clicks
are those of the same fold without new movies, so Eval 2 scores the same targets either way.

In both, held-out users' clicks are split at random into fold-in (the model's input) and held-out
(the target) in Eval 2; `HeldOutUsers.full` is Eval 1's input and target. A held-out user with fewer
than `min_user_clicks` clicks is never split: all clicks stay fold-in and the user is counted, since
Eval 2 has nothing to score for them. Training users without any click are left out of `train` and
counted: with nothing clicked they carry no signal, only a pull towards "recommend nothing".

Each fold draws its users with a generator seeded from (seed, fold), so folds are independent,
reproducible, and the paper's "3-fold CV" is folds 0, 1 and 2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hvae_tf.config import PROTOCOLS
from hvae_tf.data.schema import MovieLensData
from hvae_tf.io import save_npz_atomic

FULL_RELEASE_USERS = 100_000  # from this many users on, hold out 10,000 (the papers' count) ...
FULL_RELEASE_HELDOUT = 10_000
SMALL_RELEASE_FRACTION = 0.1  # ... below it, this fraction of the users
_FORMAT = "hvae_tf.split/1"
# Raised whenever make_split gives another split for the same arguments and data, so that a split
# cached by older code is never read as this code's (2: new movies).
PROTOCOL_VERSION = 2


def binarise(ratings: pd.DataFrame, threshold: float = 3.5) -> pd.DataFrame:
    """The clicks: (userId, movieId) of ratings above `threshold`, once each, sorted."""
    clicked = ratings.loc[ratings["rating"].to_numpy() > threshold, ["userId", "movieId"]]
    clicked = clicked.drop_duplicates().astype(np.int64)
    return clicked.sort_values(["userId", "movieId"], kind="stable").reset_index(drop=True)


def binary_csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """The float32 CSR with a 1 at each (row, col), repeats counted once: the form of every split matrix."""
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


@dataclasses.dataclass
class HeldOutUsers:
    """Validation or test users: row i is user `user_ids[i]`, columns as `Split.movie_ids`."""

    user_ids: np.ndarray
    fold_in: sp.csr_matrix
    held_out: sp.csr_matrix

    @property
    def full(self) -> sp.csr_matrix:
        """Every click of each user: Eval 1's input and target."""
        return (self.fold_in + self.held_out).tocsr()

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_without_held_out(self) -> int:
        """Users Eval 2 cannot score (too few clicks to split)."""
        return int((np.diff(self.held_out.indptr) == 0).sum())

    @property
    def n_without_clicks(self) -> int:
        """Users Eval 1 cannot score."""
        return int((np.diff(self.full.indptr) == 0).sum())


@dataclasses.dataclass
class Split:
    """One protocol's fold: binary click matrices (scipy CSR, float32) over a fixed movie index."""

    protocol: str
    fold: int
    seed: int
    movie_ids: np.ndarray  # column j is MovieLens movieId movie_ids[j]
    train: sp.csr_matrix
    train_user_ids: np.ndarray
    validation: HeldOutUsers
    test: HeldOutUsers
    dropped_train_users: int = 0  # training users with no click, left out of `train`
    settings: dict = dataclasses.field(default_factory=dict)  # the make_split arguments
    # Columns of the new movies (`cold_movies`): no training clicks, only held-out targets.
    new_movies: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    # Those of them only the validation users' new-movie metrics count (`validation_new_movies`).
    validation_new_movies: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def n_movies(self) -> int:
        return len(self.movie_ids)

    def new_movies_of(self, split_name: str) -> np.ndarray:
        """The new movies whose held-out clicks `split_name`'s new-movie metrics count: all of them,
        unless some are set aside for validation (then those for "validation", the rest for "test")."""
        if split_name not in ("validation", "test"):
            raise ValueError(f"split_name must be 'validation' or 'test', got {split_name!r}")
        if not len(self.validation_new_movies):
            return self.new_movies
        if split_name == "validation":
            return self.validation_new_movies
        return np.setdiff1d(self.new_movies, self.validation_new_movies)

    def summary(self) -> str:
        """A table of users, movies and clicks per split, for logs and the README."""
        header = ("split", "users", "movies", "clicks", "fold-in", "held-out", "no held-out")
        rows = [("train", len(self.train_user_ids), _n_columns_used(self.train), self.train.nnz,
                 "-", "-", "-")]
        for name, part in (("validation", self.validation), ("test", self.test)):
            rows.append((name, part.n_users, _n_columns_used(part.full), part.full.nnz,
                         part.fold_in.nnz, part.held_out.nnz, part.n_without_held_out))
        cells = [header] + [tuple(f"{v:,}" if isinstance(v, int) else v for v in r) for r in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        lines = [f"protocol={self.protocol} fold={self.fold} seed={self.seed} "
                 f"movies in index={self.n_movies:,} training users without clicks dropped="
                 f"{self.dropped_train_users:,}"
                 + (f" new movies (no training clicks)={len(self.new_movies):,}" if len(self.new_movies) else "")
                 + (f", of them for validation only={len(self.validation_new_movies):,}"
                    if len(self.validation_new_movies) else "")]
        for r in cells:  # names left-aligned, numbers right-aligned
            lines.append("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]))
        return "\n".join(lines)

    def fingerprint(self) -> str:
        """A hash of the users, movies and clicks of every part: the identity of this fold, so an
        evaluation or a baseline computed on one split is never reused for another."""
        digest = hashlib.sha256()
        parts = [self.movie_ids, self.train_user_ids, self.train.indptr, self.train.indices]
        for part in (self.validation, self.test):
            parts += [part.user_ids, part.fold_in.indptr, part.fold_in.indices,
                      part.held_out.indptr, part.held_out.indices]
        if len(self.new_movies):  # absent otherwise, so splits without new movies keep their identity
            parts.append(self.new_movies)
        if len(self.validation_new_movies):  # likewise
            parts += [np.array([-1]), self.validation_new_movies]
        for array in parts:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()[:16]

    def save(self, path: str | os.PathLike) -> Path:
        """Write one .npz (metadata as JSON inside it), atomically: a reader never sees half a file."""
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"split file {path} must end in .npz (np.savez's format)")
        metadata = dict(format=_FORMAT, protocol=self.protocol, fold=self.fold, seed=self.seed,
                        n_movies=self.n_movies, dropped_train_users=self.dropped_train_users,
                        settings=self.settings)
        arrays = {"metadata": np.array(json.dumps(metadata)), "movie_ids": self.movie_ids,
                  "train_user_ids": self.train_user_ids, "new_movies": self.new_movies,
                  "validation_new_movies": self.validation_new_movies,
                  **_csr_arrays("train", self.train)}
        for name, part in (("validation", self.validation), ("test", self.test)):
            arrays[f"{name}_user_ids"] = part.user_ids
            arrays.update(_csr_arrays(f"{name}_fold_in", part.fold_in))
            arrays.update(_csr_arrays(f"{name}_held_out", part.held_out))
        return save_npz_atomic(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Split":
        path = Path(path)
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise ValueError(f"cannot read split file {path}: {err}; write it with Split.save") from err
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError(f"{path} is not a split file (not an .npz archive); write it with Split.save")
        with loaded:
            arrays = {k: loaded[k] for k in loaded.files}
        if "metadata" not in arrays:
            raise ValueError(f"{path} is not a split file (no metadata); write it with Split.save")
        metadata = json.loads(str(arrays["metadata"]))
        if metadata.get("format") != _FORMAT:
            raise ValueError(f"{path} has format {metadata.get('format')!r}, expected {_FORMAT!r}; "
                             "make the split again with make_split and save it")
        n_movies = metadata["n_movies"]

        def held_out_users(name):
            return HeldOutUsers(arrays[f"{name}_user_ids"],
                                _csr_from_arrays(arrays, f"{name}_fold_in", n_movies),
                                _csr_from_arrays(arrays, f"{name}_held_out", n_movies))

        return cls(protocol=metadata["protocol"], fold=metadata["fold"], seed=metadata["seed"],
                   movie_ids=arrays["movie_ids"], train=_csr_from_arrays(arrays, "train", n_movies),
                   train_user_ids=arrays["train_user_ids"], validation=held_out_users("validation"),
                   test=held_out_users("test"), dropped_train_users=metadata["dropped_train_users"],
                   settings=metadata["settings"],
                   new_movies=arrays.get("new_movies", np.zeros(0, np.int64)),
                   validation_new_movies=arrays.get("validation_new_movies", np.zeros(0, np.int64)))


def make_split(
    data: MovieLensData,
    protocol: str = "liang",
    fold: int = 0,
    seed: int = 98765,
    heldout_users: int | float | None = None,
    threshold: float = 3.5,
    min_user_clicks: int = 5,
    holdout_fraction: float = 0.2,
    cold_movies: float = 0.0,
    validation_new_movies: float = 0.0,
) -> Split:
    """Split `data` under `protocol` ("liang" or "paper"); see the module docstring.

    heldout_users: validation users, and as many test users: a count, a fraction in (0, 0.5) of
        the users, or None for 10,000 on full releases (>= 100,000 users) and 10% below that.
    holdout_fraction: the share of each held-out user's clicks hidden in Eval 2 (rounded down).
    cold_movies: the share of the movies with features and training clicks made new movies.
    validation_new_movies: the share of those new movies only validation's new-movie metrics count.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or fold < 0:
        raise ValueError(f"fold must be a non-negative integer (the paper uses 0, 1, 2), got {fold!r}")
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}")
    if min_user_clicks < 1:
        raise ValueError(f"min_user_clicks must be at least 1, got {min_user_clicks!r}")
    if not 0.0 <= cold_movies < 1.0:
        raise ValueError(f"cold_movies (--cold-movies) must be a share in [0, 1), got {cold_movies!r}")
    if not 0.0 <= validation_new_movies < 1.0 or (validation_new_movies and not cold_movies):
        raise ValueError("validation_new_movies (--validation-new-movies) must be a share in [0, 1) "
                         f"of the new movies of cold_movies > 0, got {validation_new_movies!r}")

    clicks = binarise(data.ratings, threshold)
    if clicks.empty:
        ratings = data.ratings["rating"]
        span = f"ratings run from {ratings.min()} to {ratings.max()}" if len(ratings) else "no ratings"
        raise ValueError(f"threshold {threshold} leaves no clicks in release {data.release!r} ({span}): "
                         "a click is a rating above the threshold, so choose a lower one")
    users = _protocol_users(data, clicks, protocol, min_user_clicks, threshold)
    n_heldout = _n_heldout(heldout_users, len(users))
    rng = np.random.default_rng([seed, fold])
    shuffled = users[rng.permutation(len(users))]
    n_train = len(users) - 2 * n_heldout
    train_users = np.sort(shuffled[:n_train])
    movie_ids = _movie_index(data, clicks, protocol, train_users)

    train = _click_matrix(clicks, train_users, movie_ids)
    # Drawn from its own generator, so that the users and held-out clicks of a fold are those of
    # the same fold without new movies.
    new = _new_movies(data, movie_ids, train, cold_movies, np.random.default_rng([seed, fold, 1]))
    validation_new = _validation_new_movies(new, validation_new_movies,
                                            np.random.default_rng([seed, fold, 2]))
    train = _drop_columns(train, new)
    has_clicks = np.diff(train.indptr) > 0
    held_out = []
    for users_ in (shuffled[n_train:n_train + n_heldout], shuffled[n_train + n_heldout:]):
        users_ = np.sort(users_)
        fold_in, hidden = _hide_clicks(_click_matrix(clicks, users_, movie_ids), rng,
                                       holdout_fraction, min_user_clicks)
        held_out.append(HeldOutUsers(users_, _drop_columns(fold_in, new), hidden))
    settings = dict(release=data.release, threshold=float(threshold), heldout_users=n_heldout,
                    min_user_clicks=int(min_user_clicks), holdout_fraction=float(holdout_fraction))
    if cold_movies:
        settings["cold_movies"] = float(cold_movies)
    if validation_new_movies:
        settings["validation_new_movies"] = float(validation_new_movies)
    return Split(protocol=protocol, fold=int(fold), seed=int(seed), movie_ids=movie_ids,
                 train=train[has_clicks], train_user_ids=train_users[has_clicks],
                 validation=held_out[0], test=held_out[1],
                 dropped_train_users=int((~has_clicks).sum()), settings=settings, new_movies=new,
                 validation_new_movies=validation_new)


def _new_movies(data, movie_ids, train, share: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted columns of round(share x candidates) new movies; candidates have training clicks and
    features (an OMDb record when the release has them, else a listed genre), so that a hybrid has
    something to go on and the choice is the same for every feature set."""
    if not share:
        return np.zeros(0, np.int64)
    catalogue = data.movies.set_index("movieId").loc[movie_ids]
    if data.has_omdb:
        described = catalogue["has_omdb"].to_numpy(bool)
    else:
        described = np.array([any(g != "(no genres listed)" for g in genres)
                              for genres in catalogue["genres"]], bool)
    candidates = np.flatnonzero(described & (np.diff(train.tocsc().indptr) > 0))
    n = round(share * len(candidates))
    if n < 1:
        raise ValueError(f"--cold-movies {share} of {len(candidates)} movies with features and "
                         "training clicks is no movie: give a larger share")
    return np.sort(rng.choice(candidates, size=n, replace=False)).astype(np.int64)


def _validation_new_movies(new: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted columns of round(share x new movies) of `new`, leaving at least one for the test."""
    if not share:
        return np.zeros(0, np.int64)
    n = round(share * len(new))
    if not 1 <= n < len(new):
        raise ValueError(f"--validation-new-movies {share} of {len(new)} new movies leaves "
                         f"{'none' if n < 1 else 'none for the test users'}: choose a share "
                         f"between {1 / len(new):.3g} and {(len(new) - 1) / len(new):.3g}")
    return np.sort(rng.choice(new, size=n, replace=False)).astype(np.int64)


def _drop_columns(matrix: sp.csr_matrix, columns: np.ndarray) -> sp.csr_matrix:
    """`matrix` without its entries in `columns` (sorted), same shape."""
    if not len(columns):
        return matrix
    return _mask_csr(matrix, ~_isin_sorted(matrix.indices.astype(np.int64), columns))


def _protocol_users(data, clicks, protocol, min_user_clicks, threshold) -> np.ndarray:
    """The sorted userIds the protocol splits: clicking users ("liang") or every rater ("paper")."""
    if protocol == "paper":
        return np.unique(data.ratings["userId"].to_numpy(np.int64))
    per_user = clicks.groupby("userId", sort=True).size()
    users = per_user.index[per_user.to_numpy() >= min_user_clicks].to_numpy(np.int64)
    if len(users) == 0:
        raise ValueError(f"no user has {min_user_clicks} clicks (ratings > {threshold}) in "
                         f"release {data.release!r}: lower min_user_clicks or the threshold")
    return users


def _movie_index(data, clicks, protocol, train_users) -> np.ndarray:
    """Sorted movieIds, one per column: trained-on movies ("liang") or the catalogue ("paper")."""
    if protocol == "liang":
        clicked_in_train = _isin_sorted(clicks["userId"].to_numpy(), train_users)
        return np.unique(clicks["movieId"].to_numpy()[clicked_in_train])
    catalogue = data.movies
    if data.has_omdb:
        catalogue = catalogue[catalogue["has_omdb"].to_numpy(bool)]
    movie_ids = np.unique(catalogue["movieId"].to_numpy(np.int64))
    if len(movie_ids) == 0:
        raise ValueError(f"release {data.release!r} has an empty movie catalogue: check its movies file")
    return movie_ids


def _n_heldout(heldout_users: int | float | None, n_users: int) -> int:
    """Validation (= test) users for the requested size; at least one user must be left to train."""
    if heldout_users is None:
        n = FULL_RELEASE_HELDOUT if n_users >= FULL_RELEASE_USERS else round(SMALL_RELEASE_FRACTION * n_users)
    elif isinstance(heldout_users, bool):
        raise ValueError(f"heldout_users must be a count or a fraction, got {heldout_users!r}")
    elif isinstance(heldout_users, (float, np.floating)):
        if not 0.0 < heldout_users < 0.5:
            raise ValueError(f"heldout_users as a fraction must be in (0, 0.5), got {heldout_users!r}: "
                             "validation and test each take that share of the users")
        n = round(heldout_users * n_users)
    elif isinstance(heldout_users, (int, np.integer)):
        n = int(heldout_users)
    else:
        raise ValueError(f"heldout_users must be an int count, a float fraction or None, "
                         f"got {heldout_users!r}")
    if n < 1 or 2 * n >= n_users:
        raise ValueError(f"cannot hold out {n} validation and {n} test users out of {n_users} users "
                         "(at least one of each, and one left to train): change heldout_users")
    return int(n)


def _isin_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """np.isin for a sorted, unique `sorted_set`, in O(n log m) and without a hash table."""
    position = np.searchsorted(sorted_set, values).clip(max=max(len(sorted_set) - 1, 0))
    return (sorted_set[position] == values) if len(sorted_set) else np.zeros(len(values), bool)


def _click_matrix(clicks: pd.DataFrame, user_ids: np.ndarray, movie_ids: np.ndarray):
    """Binary CSR of `user_ids` (sorted) x `movie_ids` (sorted); clicks on other movies are dropped."""
    users = clicks["userId"].to_numpy()
    movies = clicks["movieId"].to_numpy()
    keep = _isin_sorted(users, user_ids) & _isin_sorted(movies, movie_ids)
    return binary_csr(np.searchsorted(user_ids, users[keep]), np.searchsorted(movie_ids, movies[keep]),
                      (len(user_ids), len(movie_ids)))


def _hide_clicks(full: sp.csr_matrix, rng: np.random.Generator, fraction: float, min_clicks: int):
    """Split each row's clicks at random: floor(fraction * n) held out, the rest fold-in.

    Vectorised: a random key per click, sort by (row, key), and a click is held out when its rank
    inside its row is below the row's held-out count. Rows under `min_clicks` stay whole.
    """
    lengths = np.diff(full.indptr)
    rows = np.repeat(np.arange(full.shape[0]), lengths)
    order = np.lexsort((rng.random(full.nnz), rows))
    rank = np.empty(full.nnz, np.int64)
    rank[order] = np.arange(full.nnz) - full.indptr[rows[order]]
    n_hidden = np.where(lengths >= min_clicks, np.floor(fraction * lengths).astype(np.int64), 0)
    hidden = rank < n_hidden[rows]
    return _mask_csr(full, ~hidden), _mask_csr(full, hidden)


def _mask_csr(matrix: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """The entries of `matrix` where `keep` (per stored entry) is true, same shape."""
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    kept_per_row = kept_before[matrix.indptr[1:]] - kept_before[matrix.indptr[:-1]]
    indptr = np.concatenate([[0], np.cumsum(kept_per_row)]).astype(matrix.indptr.dtype)
    return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)


def _csr_arrays(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A binary CSR as its row pointers and column indices (the values are all 1)."""
    return {f"{prefix}_indptr": matrix.indptr, f"{prefix}_indices": matrix.indices}


def _csr_from_arrays(arrays: dict, prefix: str, n_movies: int) -> sp.csr_matrix:
    indptr, indices = arrays[f"{prefix}_indptr"], arrays[f"{prefix}_indices"]
    return sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr),
                         shape=(len(indptr) - 1, n_movies))


def _n_columns_used(matrix: sp.csr_matrix) -> int:
    """Movies with at least one click in `matrix`."""
    return len(np.unique(matrix.indices))
