"""RecVAE's composite prior (Shenbin et al. 2020), and the KL term against it.

p(z) = 3/20 N(0, I) + 3/4 q_old(z | x) + 1/10 N(0, e^10 I), where q_old is the posterior of the
encoder as it was one epoch earlier: pulling the posterior towards its own recent past keeps the
encoder from forgetting while the decoder changes, and the wide component keeps outliers finite.
The KL has no closed form under a mixture, so it is estimated at the sampled z, as RecVAE does.
"""

from __future__ import annotations

import math

import tensorflow as tf

MIXTURE_WEIGHTS = (3 / 20, 3 / 4, 1 / 10)  # standard, previous posterior, wide
WIDE_LOGVAR = 10.0


def gaussian_log_density(z, mu, logvar) -> tf.Tensor:
    """log N(z; mu, exp(logvar)), summed over the last axis."""
    return -0.5 * tf.reduce_sum(math.log(2 * math.pi) + logvar + tf.square(z - mu) * tf.exp(-logvar), axis=-1)


def composite_log_prior(z, prior_mu, prior_logvar) -> tf.Tensor:
    zeros = tf.zeros_like(z)
    parts = tf.stack([
        gaussian_log_density(z, zeros, zeros),
        gaussian_log_density(z, prior_mu, prior_logvar),
        gaussian_log_density(z, zeros, zeros + WIDE_LOGVAR),
    ], axis=-1)
    return tf.reduce_logsumexp(parts + tf.math.log(tf.constant(MIXTURE_WEIGHTS, z.dtype)), axis=-1)


def composite_prior_kl(z, mu, logvar, prior_mu, prior_logvar) -> tf.Tensor:
    """log q(z | x) - log p(z) per user: a one-sample estimate of KL(q || composite prior)."""
    return gaussian_log_density(z, mu, logvar) - composite_log_prior(z, prior_mu, prior_logvar)
