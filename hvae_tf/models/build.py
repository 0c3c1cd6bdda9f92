"""The Standard-VAE or the Hybrid-VAE, from the model's own settings (`TrainConfig.part("model")`)."""

from __future__ import annotations

import scipy.sparse as sp

from hvae_tf.models.click_input import DENSE_FROM_DENSITY
from hvae_tf.models.hybrid import HybridVAE
from hvae_tf.models.shared import SharedHybridVAE
from hvae_tf.models.vae import StandardVAE


def click_density(clicks: sp.spmatrix) -> float:
    """The share of the movies a user clicks, on average: what decides the first layer's product."""
    return clicks.nnz / max(clicks.shape[0] * clicks.shape[1], 1)


def build_model(n_movies: int, movie_embeddings=None, *, approach: int | str = 1,
                trainable_embeddings: bool = False, click_input: str = "auto",
                train_clicks: sp.spmatrix | None = None, shallow_weights=None,
                shallow_bias: float = 0.0, shared_input: str = "features", shared_dim: int = 32,
                free_l2: float = 0.0, free_dropout: float = 0.0, shared_speed: float = 1.0,
                content_similarity=None, **settings) -> StandardVAE:
    """Without movie embeddings the Standard-VAE (the hybrids' own settings are then unused);
    with them the Hybrid-VAE, or for approach "shared" the sharing hybrid, its content being
    `movie_embeddings` (`shared_input` says which content the caller chose). `settings` are
    StandardVAE's constructor arguments, every recipe setting resolved (hvae_tf.recipes);
    click_input "auto" becomes "dense" or "gathered" by the density of `train_clicks` (gathered
    without them). `shallow_weights` and `shallow_bias` start the shallow path;
    `content_similarity` gives the sharing hybrid's shallow path its content evidence."""
    unresolved = sorted(k for k, v in settings.items() if v is None)
    if unresolved:
        raise ValueError(f"model settings {unresolved} are unset: resolve the configuration's "
                         "recipe first (hvae_tf.recipes.resolve)")
    settings.update(shallow_weights=shallow_weights, shallow_bias=shallow_bias)
    if click_input == "auto":
        dense = train_clicks is not None and click_density(train_clicks) >= DENSE_FROM_DENSITY
        click_input = "dense" if dense else "gathered"
    settings["click_input"] = click_input
    if movie_embeddings is None:
        return StandardVAE(n_movies=n_movies, **settings)
    if approach == "shared":
        return SharedHybridVAE(movie_embeddings, shared_dim=shared_dim, free_l2=free_l2,
                               free_dropout=free_dropout, shared_speed=shared_speed,
                               content_similarity=content_similarity, n_movies=n_movies, **settings)
    return HybridVAE(movie_embeddings, approach=approach, trainable_embeddings=trainable_embeddings,
                     n_movies=n_movies, **settings)
