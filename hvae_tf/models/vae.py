"""The Standard-VAE: Mult-VAE's [N-600-200-600-N] tanh VAE over a user's click row.

Input batches are padded int64 movie-index lists (see click_input.py); the sparse click matrix is
built inside the model so that `fit` works under tf.distribute strategies.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from hvae_tf.models.annealing import LinearKLAnnealing
from hvae_tf.models.click_input import ClickDense, click_matrix, click_weights
from hvae_tf.models.losses import LIKELIHOODS, gaussian_kl, log_likelihood
from hvae_tf.models.sampling import Sampling


def _seed(seed: int | None, offset: int) -> int | None:
    """A distinct seed per part, so parts of one model don't draw the same numbers."""
    return None if seed is None else seed + offset


@keras.saving.register_keras_serializable(package="hvae_tf")
class StandardVAE(keras.Model):
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
        latent_dim: int = 200,
        likelihood: str = "multinomial",
        dropout: float = 0.5,
        normalize_input: bool = True,
        anneal_steps: int = 200_000,
        anneal_cap: float = 0.2,
        weight_decay: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("n_movies", n_movies), ("hidden_dim", hidden_dim), ("latent_dim", latent_dim)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive whole number, got {value!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}: choose one of {', '.join(LIKELIHOODS)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout is the rate of clicks dropped, in [0, 1), got {dropout!r}")
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay is an L2 penalty weight, >= 0, got {weight_decay!r}")
        self.n_movies = int(n_movies)
        self.hidden_dim = int(hidden_dim)
        self.latent_dim = int(latent_dim)
        self.likelihood = likelihood
        self.dropout = float(dropout)
        self.normalize_input = bool(normalize_input)
        self.annealing = LinearKLAnnealing(int(anneal_steps), float(anneal_cap))
        self.weight_decay = float(weight_decay)
        self.seed = seed

        self.first_layer = self._make_first_layer(_seed(seed, 0))
        dense = lambda units, offset, **kw: keras.layers.Dense(  # noqa: E731
            units, kernel_initializer=keras.initializers.GlorotUniform(_seed(seed, offset)), **kw
        )
        self.encoder_output = dense(2 * self.latent_dim, 10, name="encoder_output")  # mu, logvar
        self.decoder_hidden = dense(self.hidden_dim, 11, activation="tanh", name="decoder_hidden")
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
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self.kl_weight_tracker = keras.metrics.Mean(name="kl_weight")  # the epoch's mean beta

        # Built here, with known shapes, so that constructing the model inside strategy.scope()
        # places every variable and Keras never traces `call` symbolically (the sparse ops fail there).
        self.first_layer.build()
        self.encoder_output.build((None, self.hidden_dim))
        self.decoder_hidden.build((None, self.latent_dim))
        self.decoder_output.build((None, self.hidden_dim))
        self.sampling.build(None)
        self.built = True

    def _make_first_layer(self, seed: int | None) -> ClickDense:
        return ClickDense(self.n_movies, self.hidden_dim, activation="tanh", seed=seed, name="encoder_hidden")

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker, self.kl_weight_tracker]

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

    def _per_user_losses(self, indices, training: bool):
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

    def _update_trackers(self, reconstruction, kl, beta):
        self.loss_tracker.update_state(reconstruction + beta * kl)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        self.kl_weight_tracker.update_state(beta)
        # Shape [1], not scalars: Keras 3 fit under MultiWorkerMirroredStrategy reduces logs along axis 0.
        return {m.name: tf.reshape(m.result(), [1]) for m in self.metrics}

    def train_step(self, data):
        indices, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        # Divide by the users of the global batch: the optimizer sums gradients over replicas,
        # so the update is the mean over all users, even when replicas get unequal shares.
        local_users = tf.cast(tf.shape(indices)[0], tf.float32)
        global_users = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, local_users)
        with tf.GradientTape() as tape:
            reconstruction, kl, beta = self._per_user_losses(indices, training=True)
            loss = tf.reduce_sum(reconstruction + beta * kl) / tf.maximum(global_users, 1.0)
            if self.weight_decay > 0.0:
                # Each replica adds its share: the summed gradient carries the penalty once.
                replicas = tf.distribute.get_replica_context().num_replicas_in_sync
                loss += self.weight_decay * self.weight_penalty() / replicas
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        self.anneal_step.assign_add(1)
        return self._update_trackers(reconstruction, kl, beta)

    def test_step(self, data):
        indices, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._update_trackers(*self._per_user_losses(indices, training=False))

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "n_movies": self.n_movies,
            "hidden_dim": self.hidden_dim,
            "latent_dim": self.latent_dim,
            "likelihood": self.likelihood,
            "dropout": self.dropout,
            "normalize_input": self.normalize_input,
            "anneal_steps": self.annealing.anneal_steps,
            "anneal_cap": self.annealing.cap,
            "weight_decay": self.weight_decay,
            "seed": self.seed,
        }
