"""The reparameterisation trick as a layer."""

from __future__ import annotations

import keras
from keras import ops


class Sampling(keras.layers.Layer):
    """Draws z = mu + exp(logvar / 2) * eps, eps ~ N(0, I).

    Writing the sample as a function of (mu, logvar) lets gradients reach the encoder; the seeded
    generator makes the noise sequence repeat for a given seed.
    """

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        mu, logvar = inputs
        eps = keras.random.normal(ops.shape(mu), dtype=mu.dtype, seed=self.seed_generator)
        return mu + ops.exp(0.5 * logvar) * eps

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
