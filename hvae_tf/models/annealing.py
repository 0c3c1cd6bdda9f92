"""Linear KL annealing (Mult-VAE): the KL weight grows from 0 to a cap over a number of updates.

Starting with a small KL weight lets the decoder learn to reconstruct before the prior pulls the
latents together; Liang et al. found a cap of 0.2 ranks better than the full ELBO's 1.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from hvae_tf.config import check_setting


@dataclasses.dataclass(frozen=True)
class LinearKLAnnealing:
    """beta(step) = min(cap, step / anneal_steps); anneal_steps = 0 means beta = cap from the start."""

    anneal_steps: int = 200_000
    cap: float = 0.2

    def __post_init__(self):
        check_setting("anneal_steps", self.anneal_steps)
        check_setting("anneal_cap", self.cap)

    def __call__(self, step) -> tf.Tensor:
        """The KL weight after `step` updates, as a float32 scalar tensor (step may be a tensor)."""
        cap = tf.constant(self.cap, tf.float32)
        if self.anneal_steps == 0:
            return cap
        ramp = tf.cast(step, tf.float32) / float(self.anneal_steps)
        return tf.minimum(cap, ramp)
