"""The "random" control: embeddings that carry no information about the movies."""

from __future__ import annotations

import numpy as np


def random_embeddings(n_movies: int, dim: int, seed: int) -> np.ndarray:
    """Standard-normal embeddings [n_movies, dim], the same for the same seed.

    An H-VAE fed these must not beat the Standard-VAE (the paper's control); they replace the
    Movie-VAE's embeddings with the same shape.
    """
    if n_movies < 0 or dim <= 0:
        raise ValueError(f"random embeddings need n_movies >= 0 and dim > 0, got {n_movies} and {dim}")
    return np.random.default_rng(seed).standard_normal((n_movies, dim)).astype(np.float32)
