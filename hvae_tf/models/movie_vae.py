"""The Movie-VAE (M-VAE): a small VAE over movie feature vectors whose latent mean is the movie's
embedding for the H-VAE (3-d in the paper).

Features mix kinds, so the reconstruction loss does too: binary columns (genres, genome tags,
one-hots) are Bernoulli (sigmoid cross-entropy on logits); continuous columns (IMDb rating, VAD,
word vectors) are standardised and Gaussian with unit variance (half the squared error).
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import scipy.sparse
import tensorflow as tf

from hvae_tf.models.base import VariationalAutoencoder
from hvae_tf.models.losses import gaussian_kl
from hvae_tf.models.sampling import Sampling


@keras.saving.register_keras_serializable(package="hvae_tf")
class MovieVAE(VariationalAutoencoder):
    """features -> hidden (tanh) -> (mu, logvar) -> hidden (tanh) -> features; the full ELBO (beta 1).

    `binary_mask[j]` says column j is binary. The standardisation of the continuous columns is
    part of the model (non-trainable weights set by `adapt`), so `embed` takes raw features.
    """

    anneals = False

    def __init__(
        self, binary_mask, hidden_dim: int = 128, latent_dim: int = 3, seed: int | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.remember_settings(locals())
        mask = np.asarray(binary_mask)
        if mask.ndim != 1 or mask.size < 1 or mask.dtype != bool:
            raise ValueError(
                f"binary_mask must be a 1-d boolean array, one entry per feature column; got "
                f"dtype {mask.dtype}, shape {mask.shape}"
            )
        self.binary_mask = mask
        self.n_features = mask.size
        self.hidden_dim = int(hidden_dim)
        self.latent_dim = int(latent_dim)
        self.seed = seed

        def dense(units, offset, **kw):
            init = keras.initializers.GlorotUniform(None if seed is None else seed + offset)
            return keras.layers.Dense(units, kernel_initializer=init, **kw)

        self.encoder_hidden = dense(self.hidden_dim, 0, activation="tanh", name="encoder_hidden")
        self.encoder_output = dense(2 * self.latent_dim, 1, name="encoder_output")
        self.decoder_hidden = dense(self.hidden_dim, 2, activation="tanh", name="decoder_hidden")
        self.decoder_output = dense(self.n_features, 3, name="decoder_output")
        self.sampling = Sampling(seed=None if seed is None else seed + 4, name="sampling")
        self.feature_mean = self.add_weight(
            shape=(self.n_features,), initializer="zeros", trainable=False, name="feature_mean"
        )
        self.feature_scale = self.add_weight(
            shape=(self.n_features,), initializer="ones", trainable=False, name="feature_scale"
        )

        self.encoder_hidden.build((None, self.n_features))
        self.encoder_output.build((None, self.hidden_dim))
        self.decoder_hidden.build((None, self.latent_dim))
        self.decoder_output.build((None, self.hidden_dim))
        self.sampling.build(None)
        self.built = True

    def adapt(self, values) -> None:
        """Set the standardisation of the continuous columns from `values` (binary ones stay as is)."""
        values = np.asarray(values, np.float64)
        continuous = ~self.binary_mask
        mean = np.where(continuous, values.mean(axis=0), 0.0)
        std = values.std(axis=0)
        scale = np.where(continuous & (std > 0), std, 1.0)  # a constant column stays 0 after centring
        self.feature_mean.assign(mean.astype(np.float32))
        self.feature_scale.assign(scale.astype(np.float32))

    def standardize(self, values) -> tf.Tensor:
        return (tf.cast(values, tf.float32) - self.feature_mean) / self.feature_scale

    def encode(self, values):
        """(mu, logvar) of raw feature rows."""
        stats = self.encoder_output(self.encoder_hidden(self.standardize(values)))
        return tf.split(stats, 2, axis=-1)

    def embed(self, values) -> tf.Tensor:
        """The movie embeddings: the latent means, [n, latent_dim]."""
        return self.encode(values)[0]

    def call(self, values, training: bool = False):
        """Decoder outputs in standardised feature space: logits (binary) or means (continuous)."""
        mu, logvar = self.encode(values)
        z = self.sampling((mu, logvar)) if training else mu
        return self.decoder_output(self.decoder_hidden(z))

    def compute_losses(self, values, training: bool):
        target = self.standardize(values)
        mu, logvar = self.encode(values)
        outputs = self.decoder_output(self.decoder_hidden(self.sampling((mu, logvar)) if training else mu))
        binary = tf.constant(self.binary_mask)
        bernoulli = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=outputs)
        gaussian = 0.5 * tf.square(target - outputs)
        reconstruction = tf.reduce_sum(tf.where(binary, bernoulli, gaussian), axis=-1)
        return reconstruction, gaussian_kl(mu, logvar), 1.0

    def get_config(self):
        return {**super().get_config(), "binary_mask": self.binary_mask.tolist()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(binary_mask=np.asarray(config.pop("binary_mask"), bool), **config)


def _check_features(values, binary_mask) -> tuple[np.ndarray, np.ndarray]:
    """Features as a finite float32 matrix and the mask as bool, or an error saying what is wrong."""
    if scipy.sparse.issparse(values):
        values = values.toarray()  # movies x features: small enough to hold dense
    values = np.asarray(values, dtype=np.float32)
    mask = np.asarray(binary_mask, dtype=bool)
    if values.ndim != 2 or values.shape[0] < 1:
        raise ValueError(f"movie features must be a [n_movies, n_features] matrix, got shape {values.shape}")
    if mask.shape != (values.shape[1],):
        raise ValueError(
            f"binary_mask has {mask.size} entries but the features have {values.shape[1]} columns"
        )
    bad = ~np.isfinite(values)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise ValueError(
            f"movie features have {bad.sum()} NaN/inf values (first at row {rows[0]}, column {cols[0]}): "
            "fill missing values (e.g. an unknown IMDb rating) before training the M-VAE"
        )
    outside = mask & ((values < 0) | (values > 1)).any(axis=0)
    if outside.any():
        raise ValueError(
            f"binary columns {np.flatnonzero(outside)[:10].tolist()} have values outside [0, 1]: "
            "mark them as continuous in binary_mask"
        )
    return values, mask


@contextlib.contextmanager
def _op_determinism():
    """TF's switch is global; turn it on for the M-VAE only and restore it afterwards, because the
    H-VAE's sparse matmul has no deterministic GPU kernel. (The public API has no `disable`.)"""
    from tensorflow.python.framework import config as tf_config

    was_enabled = tf_config.is_op_determinism_enabled()
    tf_config.enable_op_determinism()
    try:
        yield
    finally:
        if not was_enabled:
            tf_config.disable_op_determinism()


def train_movie_vae(
    values,
    binary_mask,
    latent_dim: int = 3,
    hidden_dim: int = 128,
    epochs: int = 50,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
    verbose: int | str = "auto",
) -> tuple[MovieVAE, np.ndarray]:
    """Train an M-VAE on a [n_movies, n_features] matrix; returns the model and the embeddings
    (latent means, [n_movies, latent_dim] float32). The same seed gives the same embeddings."""
    values, mask = _check_features(values, binary_mask)
    if int(epochs) != epochs or epochs < 1 or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(
            f"epochs and batch_size must be positive whole numbers, got {epochs!r}, {batch_size!r}"
        )
    with _op_determinism():
        model = MovieVAE(mask, hidden_dim=hidden_dim, latent_dim=latent_dim, seed=seed)
        model.adapt(values)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=False)
        data = (
            tf.data.Dataset.from_tensor_slices(values)
            .shuffle(len(values), seed=seed, reshuffle_each_iteration=True)
            .batch(int(batch_size))
        )
        model.fit(data, epochs=int(epochs), verbose=verbose, shuffle=False)  # shuffled by `data`
        embeddings = np.concatenate(
            [model.embed(values[i : i + 4096]).numpy() for i in range(0, len(values), 4096)]
        )
    return model, embeddings
