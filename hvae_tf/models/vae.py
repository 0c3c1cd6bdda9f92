"""The Standard-VAE: Mult-VAE's [N-600-200-600-N] tanh VAE over a user's click row.

Input batches are padded int64 movie-index lists (see click_input.py); the sparse click matrix is
built inside the model so that `fit` works under tf.distribute strategies.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from hvae_tf.config import check_setting
from hvae_tf.models.annealing import LinearKLAnnealing
from hvae_tf.models.base import VariationalAutoencoder
from hvae_tf.models.click_input import ClickDense, click_matrix, click_weights
from hvae_tf.models.losses import gaussian_kl, log_likelihood
from hvae_tf.models.sampling import Sampling


def _seed(seed: int | None, offset: int) -> int | None:
    """A distinct seed per part, so parts of one model don't draw the same numbers."""
    return None if seed is None else seed + offset


@keras.saving.register_keras_serializable(package="hvae_tf")
class StandardVAE(VariationalAutoencoder):
    """Mult-VAE with a choice of likelihood.

    loss = -log p(x_u | z_u) + beta * KL(q(z_u | x_u) || N(0, I)), averaged over the users of the
    batch, beta annealed linearly to `anneal_cap` over `anneal_steps` updates. The update counter
    is a model variable, so it is saved with the weights and shared by all replicas.
    Training minimises loss + weight_decay * sum ||W||^2 over the kernels (Mult-VAE's L2 penalty,
    its `lam`; biases and movie embeddings are not penalised); the logged losses leave it out.
    Training samples z; inference (`scores`, `predict`, `evaluate`) uses the mean.
    """

    def __init__(
        self,
        n_movies: int,
        hidden_dim: int = 600,
        activation: str = "tanh",
        latent_dim: int = 200,
        likelihood: str = "multinomial",
        dropout: float = 0.5,
        normalize_input: bool = True,
        anneal_steps: int = 200_000,
        anneal_cap: float = 0.2,
        weight_decay: float = 0.0,
        click_input: str = "gathered",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.remember_settings(locals())
        if int(n_movies) != n_movies or n_movies < 1:
            raise ValueError(f"n_movies must be a positive whole number, got {n_movies!r}")
        for name in ("hidden_dim", "activation", "latent_dim", "likelihood", "dropout", "weight_decay"):
            check_setting(name, locals()[name])
        self.n_movies = int(n_movies)
        self.hidden_dim = int(hidden_dim)
        self.latent_dim = int(latent_dim)
        self.likelihood = likelihood
        self.dropout = float(dropout)
        self.normalize_input = bool(normalize_input)
        self.annealing = LinearKLAnnealing(int(anneal_steps), float(anneal_cap))
        self.weight_decay = float(weight_decay)
        self.click_input = click_input  # read by _make_first_layer
        self.seed = seed

        self.first_layer = self._make_first_layer(_seed(seed, 0), activation)
        dense = lambda units, offset, **kw: keras.layers.Dense(  # noqa: E731
            units, kernel_initializer=keras.initializers.GlorotUniform(_seed(seed, offset)), **kw
        )
        self.encoder_output = dense(2 * self.latent_dim, 10, name="encoder_output")  # mu, logvar
        self.decoder_hidden = dense(self.hidden_dim, 11, activation=activation, name="decoder_hidden")
        self.decoder_output = dense(self.n_movies, 12, name="decoder_output")  # logits
        self.sampling = Sampling(seed=_seed(seed, 13), name="sampling")
        self.dropout_seed = keras.random.SeedGenerator(_seed(seed, 14))
        self.anneal_step = self.add_weight(
            shape=(),
            dtype="int64",
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",  # every replica counts the same update once
            name="anneal_step",
        )

        # Built here, with known shapes, so that constructing the model inside strategy.scope()
        # places every variable and Keras never traces `call` symbolically (the sparse ops fail there).
        self.first_layer.build()
        self.encoder_output.build((None, self.hidden_dim))
        self.decoder_hidden.build((None, self.latent_dim))
        self.decoder_output.build((None, self.hidden_dim))
        self.sampling.build(None)
        self.built = True

    def _make_first_layer(self, seed: int | None, activation: str) -> ClickDense:
        """The encoder's first layer over the clicks; the Hybrid-VAE's sees movie embeddings too."""
        return ClickDense(self.n_movies, self.hidden_dim, activation=activation, seed=seed,
                          click_input=self.click_input, name="encoder_hidden")

    @property
    def jit_compile(self):
        """Always False: XLA has no kernels for the sparse ops (Keras' "auto" picks XLA on one GPU)."""
        return False

    @jit_compile.setter
    def jit_compile(self, value):
        if value is True:
            raise ValueError("jit_compile=True is not supported: XLA lacks the sparse ops this model uses")

    def _encode_clicks(self, clicks: tf.SparseTensor, training: bool):
        weights = click_weights(
            clicks,
            normalize=self.normalize_input,
            dropout=self.dropout,
            seed_generator=self.dropout_seed,
            training=training,
        )
        mu, logvar = tf.split(self.encoder_output(self.first_layer(weights)), 2, axis=-1)
        return mu, logvar

    def encode(self, indices, training: bool = False):
        """(mu, logvar) of q(z | x) for a batch of padded movie-index lists, each [batch, latent_dim]."""
        return self._encode_clicks(click_matrix(indices, self.n_movies), training)

    def decode(self, z) -> tf.Tensor:
        """Logits over all movies, [batch, n_movies]."""
        return self.decoder_output(self.decoder_hidden(z))

    def call(self, indices, training: bool = False):
        mu, logvar = self.encode(indices, training=training)
        return self.decode(self.sampling((mu, logvar)) if training else mu)

    def scores(self, indices) -> tf.Tensor:
        """Ranking scores (logits from the latent mean, no dropout), [batch, n_movies]."""
        return self(indices, training=False)

    def compute_losses(self, indices, training: bool):
        """Reconstruction loss, KL term and beta; the first two per user, shape [batch]."""
        clicks = click_matrix(indices, self.n_movies)
        mu, logvar = self._encode_clicks(clicks, training)
        logits = self.decode(self.sampling((mu, logvar)) if training else mu)
        reconstruction = -log_likelihood(self.likelihood, logits, clicks)
        return reconstruction, gaussian_kl(mu, logvar), self.annealing(self.anneal_step)

    def weight_penalty(self) -> tf.Tensor:
        """sum ||W||^2 over the kernels: every weight named *kernel (first layer's included)."""
        layers = (self.first_layer, self.encoder_output, self.decoder_hidden, self.decoder_output)
        kernels = [w for layer in layers for w in layer.trainable_weights if w.name.endswith("kernel")]
        return tf.add_n([tf.reduce_sum(tf.square(w)) for w in kernels])

    def penalty(self):
        return self.weight_decay * self.weight_penalty() if self.weight_decay > 0.0 else None

    def after_update(self) -> None:
        self.anneal_step.assign_add(1)
