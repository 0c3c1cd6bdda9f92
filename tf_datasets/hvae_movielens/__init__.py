"""The `hvae_movielens` dataset: MovieLens per-user histories and per-movie side information.

The release table (releases.py), the column names (columns.py) and the file readers (files.py,
ratings.py, movies.py, genome.py, omdb.py) import neither TensorFlow nor TFDS; the builder
(hvae_movielens.py) is imported on first use of `HvaeMovielens` or `HvaeMovielensConfig`.
"""

import importlib

__all__ = ["HvaeMovielens", "HvaeMovielensConfig"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module(f"{__name__}.hvae_movielens"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
