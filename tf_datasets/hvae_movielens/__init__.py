"""The `hvae_movielens` dataset: MovieLens per-user histories and per-movie side information."""

from tf_datasets.hvae_movielens.hvae_movielens import HvaeMovielens, HvaeMovielensConfig

__all__ = ["HvaeMovielens", "HvaeMovielensConfig"]
