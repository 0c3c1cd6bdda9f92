"""Keras models: the Standard-VAE (Mult-VAE), the Hybrid-VAE (approaches 1 and 2), the sharing
hybrid and the Movie-VAE."""

from hvae_tf.models.annealing import LinearKLAnnealing
from hvae_tf.models.base import VariationalAutoencoder
from hvae_tf.models.build import build_model
from hvae_tf.models.click_input import (
    ClickDense,
    CollapsedEmbeddingDense,
    FlattenedEmbeddingDense,
    click_matrix,
    click_weights,
)
from hvae_tf.models.hybrid import HybridVAE
from hvae_tf.models.losses import bernoulli_log_likelihood, gaussian_kl, multinomial_log_likelihood
from hvae_tf.models.movie_vae import MovieVAE, train_movie_vae
from hvae_tf.models.sampling import Sampling
from hvae_tf.models.shared import SharedHybridVAE
from hvae_tf.models.vae import StandardVAE

__all__ = [
    "ClickDense",
    "CollapsedEmbeddingDense",
    "FlattenedEmbeddingDense",
    "HybridVAE",
    "LinearKLAnnealing",
    "MovieVAE",
    "Sampling",
    "SharedHybridVAE",
    "StandardVAE",
    "VariationalAutoencoder",
    "bernoulli_log_likelihood",
    "build_model",
    "click_matrix",
    "click_weights",
    "gaussian_kl",
    "multinomial_log_likelihood",
    "train_movie_vae",
]
