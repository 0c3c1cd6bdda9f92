"""The Hybrid-VAE: the Standard-VAE whose encoder sees each clicked movie's embedding.

The encoder input is x'_u = <e_1..e_N> (e_i = movie i's embedding if u clicked it, else 0), fed to
the first layer by approach 1 (flatten) or 2 (collapse each e_i to one value); click_input.py
computes both as one sparse matmul. The decoder still reconstructs the click row x_u.
The `random` control is this model given random embeddings.
"""

from __future__ import annotations

import keras
import numpy as np

from hvae_tf.models.click_input import ClickDense, CollapsedEmbeddingDense, FlattenedEmbeddingDense
from hvae_tf.models.vae import StandardVAE

APPROACHES = {1: FlattenedEmbeddingDense, 2: CollapsedEmbeddingDense}


@keras.saving.register_keras_serializable(package="hvae_tf")
class HybridVAE(StandardVAE):
    """H-VAE over `movie_embeddings` [n_movies, d] (the M-VAE's latent means), frozen unless
    `trainable_embeddings`. Other arguments are the Standard-VAE's; n_movies comes from the
    embeddings.
    """

    def __init__(self, movie_embeddings, approach: int = 1, trainable_embeddings: bool = False, **kwargs):
        embeddings = np.asarray(movie_embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] < 1 or embeddings.shape[1] < 1:
            raise ValueError(
                f"movie_embeddings must be a [n_movies, d] matrix, got shape {embeddings.shape}"
            )
        if not np.isfinite(embeddings).all():
            bad = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
            raise ValueError(
                f"movie_embeddings has non-finite values in rows {bad[:10].tolist()}"
                f"{' ...' if len(bad) > 10 else ''}: re-create the embeddings (M-VAE) for these movies"
            )
        if approach not in APPROACHES:
            raise ValueError(f"approach must be 1 (flatten) or 2 (collapse), got {approach!r}")
        n_movies = kwargs.pop("n_movies", embeddings.shape[0])
        if n_movies != embeddings.shape[0]:
            raise ValueError(
                f"n_movies={n_movies} but movie_embeddings has {embeddings.shape[0]} rows: "
                "the embeddings must be aligned to the protocol's movie index"
            )
        # Read by _make_first_layer, which StandardVAE.__init__ calls.
        self._init_embeddings = embeddings
        self.approach = approach
        self.trainable_embeddings = bool(trainable_embeddings)
        super().__init__(n_movies=n_movies, **kwargs)
        del self._init_embeddings

    def _make_first_layer(self, seed: int | None, activation: str, name: str) -> ClickDense:
        return APPROACHES[self.approach](
            self._init_embeddings,
            self.hidden_dim,
            trainable_embeddings=self.trainable_embeddings,
            activation=activation,
            click_input=self.click_input,
            seed=seed,
            name=name,
        )

    @property
    def movie_embeddings(self):
        """The embedding variable [n_movies, d] (changes in training only if trainable)."""
        return self.first_layer.movie_embeddings

    def get_config(self):
        return {
            **super().get_config(),
            "approach": self.approach,
            "trainable_embeddings": self.trainable_embeddings,
            "embedding_dim": int(self.movie_embeddings.shape[1]),
        }

    @classmethod
    def from_config(cls, config):
        """The embeddings are a weight: start from zeros of the saved shape; loading fills them."""
        config = dict(config)
        shape = (config.pop("n_movies"), config.pop("embedding_dim"))
        return cls(movie_embeddings=np.zeros(shape, np.float32), **config)
