"""Linear KL annealing (Mult-VAE): the KL weight grows from 0 to a cap over a number of updates.

Starting with a small KL weight lets the decoder learn to reconstruct before the prior pulls the
latents together; Liang et al. found a cap of 0.2 ranks better than the full ELBO's 1.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class LinearKLAnnealing:
    """beta(step) = min(cap, step / anneal_steps); anneal_steps = 0 means beta = cap from the start."""

    anneal_steps: int = 200_000
    cap: float = 0.2

    def __post_init__(self):
        if int(self.anneal_steps) != self.anneal_steps or self.anneal_steps < 0:
            raise ValueError(
                f"anneal_steps must be a whole number >= 0, got {self.anneal_steps!r} "
                "(pass e.g. --anneal-steps 200000; 0 uses the cap from the first step)"
            )
        if not 0.0 <= self.cap:
            raise ValueError(f"anneal cap must be >= 0, got {self.cap!r} (Mult-VAE uses 0.2)")

    def __call__(self, step) -> tf.Tensor:
        """The KL weight after `step` updates, as a float32 scalar tensor (step may be a tensor)."""
        cap = tf.constant(self.cap, tf.float32)
        if self.anneal_steps == 0:
            return cap
        ramp = tf.cast(step, tf.float32) / float(self.anneal_steps)
        return tf.minimum(cap, ramp)
