"""Custom TFDS builders of hvae-tf; importing the package registers them with TFDS."""

from tf_datasets import hvae_movielens  # noqa: F401  (registers "hvae_movielens")
