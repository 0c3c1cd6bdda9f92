"""The Standard-VAE or the Hybrid-VAE, from the model's own settings (`TrainConfig.part("model")`)."""

from __future__ import annotations

from hvae_tf.models.hybrid import HybridVAE
from hvae_tf.models.vae import StandardVAE


def build_model(n_movies: int, movie_embeddings=None, *, approach: int = 1,
                trainable_embeddings: bool = False, **settings) -> StandardVAE:
    """Without movie embeddings the Standard-VAE (the H-VAE's own settings are then unused);
    with them the Hybrid-VAE. `settings` are StandardVAE's constructor arguments."""
    if movie_embeddings is None:
        return StandardVAE(n_movies=n_movies, **settings)
    return HybridVAE(movie_embeddings, approach=approach, trainable_embeddings=trainable_embeddings,
                     n_movies=n_movies, **settings)
