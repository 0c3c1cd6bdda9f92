"""A movie feature matrix that carries its own description: what every column means and how to model it.

Row i describes movie_ids[i] (the protocol's column order), so a matrix can be joined to the
click matrix without a look-up. `kinds` tells the Movie-VAE which columns are binary (Bernoulli
likelihood) and which are continuous (standardised, Gaussian). `summary` keeps the counts a user
needs to trust the matrix (movies without a plot, without genome rows, ...).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from hvae_tf.data.schema import MovieLensData
from hvae_tf.io import save_npz_atomic, write_atomic

KINDS = ("binary", "continuous")


@dataclasses.dataclass(eq=False)  # arrays have no single truth value; compare fingerprints
class FeatureMatrix:
    """values[i] = the features of movie_ids[i]; columns[j] and kinds[j] describe column j."""

    values: np.ndarray
    columns: list[str]
    kinds: list[str]
    movie_ids: np.ndarray
    summary: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.values = np.ascontiguousarray(self.values, dtype=np.float32)
        self.movie_ids = np.asarray(self.movie_ids, dtype=np.int64)
        self.columns = list(self.columns)
        self.kinds = list(self.kinds)
        if self.values.size == 0:
            self.values = self.values.reshape(len(self.movie_ids), len(self.columns))
        if self.values.ndim != 2 or self.values.shape[0] != len(self.movie_ids):
            raise ValueError(
                f"feature values of shape {self.values.shape} do not give one row to each of "
                f"{len(self.movie_ids)} movies"
            )
        d = self.values.shape[1]
        if not (d == len(self.columns) == len(self.kinds)):
            raise ValueError(
                f"feature matrix has {d} columns but {len(self.columns)} column names "
                f"and {len(self.kinds)} kinds"
            )
        bad = sorted(set(self.kinds) - set(KINDS))
        if bad:
            raise ValueError(f"unknown column kind(s) {bad}: use one of {KINDS}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape

    def fingerprint(self) -> str:
        """A stable hash of everything that defines the matrix (not the summary), for caching."""
        digest = hashlib.sha256()
        digest.update(np.asarray(self.values.shape, dtype="<i8").tobytes())
        digest.update(self.values.astype("<f4", copy=False).tobytes())
        digest.update(self.movie_ids.astype("<i8", copy=False).tobytes())
        digest.update(json.dumps([self.columns, self.kinds]).encode("utf-8"))
        return digest.hexdigest()[:16]

    def standardized(self) -> np.ndarray:
        """The values with each continuous column centred and scaled to unit variance (a constant
        one to 0) and binary ones as they are: columns on one scale for a model's input."""
        values = self.values.astype(np.float64)
        continuous = np.array([kind == "continuous" for kind in self.kinds], bool)
        std = values.std(axis=0)
        centred = np.where(continuous, values - values.mean(axis=0), values)
        return (centred / np.where(continuous & (std > 0), std, 1.0)).astype(np.float32)

    def summary_text(self) -> str:
        """The summary as aligned lines, for printing after a build."""
        lines = [f"{len(self.movie_ids):,} movies x {self.values.shape[1]:,} columns"]
        width = max((len(k) for k in self.summary), default=0)
        for key, value in self.summary.items():
            shown = f"{value:,}" if isinstance(value, (int, np.integer)) else str(value)
            lines.append(f"  {key:<{width}}  {shown}")
        return "\n".join(lines)

    def save(self, path: str | os.PathLike) -> tuple[Path, Path]:
        """Write `<path>.npz` (values, ids) and `<path>.json` (description), each atomically."""
        npz_path, json_path = _paths(path)
        npz_path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "columns": self.columns,
            "kinds": self.kinds,
            "summary": _jsonable(self.summary),
            "fingerprint": self.fingerprint(),
        }
        save_npz_atomic(npz_path, values=self.values, movie_ids=self.movie_ids)
        write_atomic(json_path, json.dumps(meta, indent=1))
        return npz_path, json_path

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureMatrix:
        """Read what `save` wrote; a .npz and .json from different saves are refused."""
        npz_path, json_path = _paths(path)
        for p in (npz_path, json_path):
            if not p.is_file():
                raise FileNotFoundError(f"feature matrix file {p} not found (written by FeatureMatrix.save)")
        with np.load(npz_path) as arrays:
            values, movie_ids = arrays["values"], arrays["movie_ids"]
        meta = json.loads(json_path.read_text(encoding="utf-8"))
        matrix = cls(values, meta["columns"], meta["kinds"], movie_ids, meta.get("summary", {}))
        if matrix.fingerprint() != meta.get("fingerprint"):
            raise ValueError(
                f"{npz_path} and {json_path} do not belong together (fingerprints differ): "
                "rebuild the features"
            )
        return matrix


def hstack(parts: list[FeatureMatrix], summary: dict | None = None) -> FeatureMatrix:
    """Columns of several matrices over the same movies, side by side."""
    if not parts:
        raise ValueError("hstack needs at least one feature matrix")
    ids = parts[0].movie_ids
    for part in parts[1:]:
        if not np.array_equal(part.movie_ids, ids):
            raise ValueError("feature matrices to stack describe different movies")
    return FeatureMatrix(
        np.concatenate([p.values for p in parts], axis=1),
        [c for p in parts for c in p.columns],
        [k for p in parts for k in p.kinds],
        ids,
        summary if summary is not None else {k: v for p in parts for k, v in p.summary.items()},
    )


def select_movies(data: MovieLensData, movie_ids) -> pd.DataFrame:
    """The catalogue rows of `movie_ids`, in that order; ids missing from the catalogue are an error."""
    ids = np.asarray(movie_ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"movie_ids must be a 1-d integer array, got dtype {ids.dtype} and shape {ids.shape}")
    ids = ids.astype(np.int64)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"movie_ids repeat movies, e.g. {unique[counts > 1][:5].tolist()}")
    catalogue = data.movies.set_index("movieId", drop=False)
    missing = ids[~np.isin(ids, catalogue.index.to_numpy())]
    if len(missing):
        raise ValueError(
            f"{len(missing)} movie id(s) are not in the {data.release} catalogue, e.g. "
            f"{missing[:5].tolist()}: movie_ids must come from the same release as the data"
        )
    return catalogue.loc[ids].reset_index(drop=True)


def _paths(path) -> tuple[Path, Path]:
    base = Path(path)
    if base.suffix in (".npz", ".json"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")


def _jsonable(summary: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in summary.items()}
