"""Per-user log-likelihoods of a sparse click row, and the Gaussian KL term.

The click matrix is a tf.SparseTensor of 1.0 values; both likelihoods are written so that only the
decoder's logits are dense (batch x movies), never the clicks:
- multinomial: sum_i x_i log softmax(f)_i = the log-softmax gathered at the clicked movies;
- Bernoulli: sum_i x_i log s(f_i) + (1 - x_i) log(1 - s(f_i)) = sum_clicked f_i - sum_i softplus(f_i),
  because log s(f) = f - softplus(f) and log(1 - s(f)) = -softplus(f).
Each takes `counted`, a [movies] 0/1 mask of the movies the likelihood covers (None: all): a movie
left out is neither in the softmax's normaliser nor a Bernoulli "not clicked".
"""

from __future__ import annotations

import tensorflow as tf

from hvae_tf.config import LIKELIHOODS


def _sum_at_clicks(values: tf.Tensor, clicks: tf.SparseTensor) -> tf.Tensor:
    """sum over each user's clicked movies of values[user, movie] * click value, shape [batch]."""
    picked = tf.gather_nd(values, clicks.indices) * clicks.values
    return tf.math.unsorted_segment_sum(picked, clicks.indices[:, 0], num_segments=tf.shape(values)[0])


# A left-out movie's logit in the softmax: exp() of it is 0 in float32, and no gradient reaches it.
_LEFT_OUT = -1e9


def multinomial_log_likelihood(logits: tf.Tensor, clicks: tf.SparseTensor, counted=None) -> tf.Tensor:
    """Mult-VAE's log-likelihood: sum_i x_ui log softmax(logits_u)_i, per user."""
    if counted is not None:
        logits = tf.where(counted > 0, logits, tf.constant(_LEFT_OUT, logits.dtype))
    return _sum_at_clicks(tf.nn.log_softmax(logits, axis=-1), clicks)


def _sum_over_counted(values: tf.Tensor, counted) -> tf.Tensor:
    return tf.reduce_sum(values if counted is None else values * counted, axis=-1)


def bernoulli_log_likelihood(logits: tf.Tensor, clicks: tf.SparseTensor, counted=None) -> tf.Tensor:
    """The paper's equation 6 with sigmoid outputs, per user; stable for large |logits|."""
    return _sum_at_clicks(logits, clicks) - _sum_over_counted(tf.nn.softplus(logits), counted)


def log_likelihood(name: str, logits: tf.Tensor, clicks: tf.SparseTensor, counted=None) -> tf.Tensor:
    if name == "multinomial":
        return multinomial_log_likelihood(logits, clicks, counted)
    if name == "bernoulli":
        return bernoulli_log_likelihood(logits, clicks, counted)
    raise ValueError(f"unknown likelihood {name!r}: choose one of {', '.join(LIKELIHOODS)}")


def gaussian_kl(mu: tf.Tensor, logvar: tf.Tensor) -> tf.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row: 0.5 * sum(exp(logvar) + mu^2 - 1 - logvar)."""
    return 0.5 * tf.reduce_sum(tf.exp(logvar) + tf.square(mu) - 1.0 - logvar, axis=-1)


def product_log_likelihood(logits_a: tf.Tensor, logits_b: tf.Tensor, clicks: tf.SparseTensor,
                           counted=None) -> tf.Tensor:
    """Bernoulli log-likelihood of p = s(a) s(b), VASP's product of two paths' sigmoids, per user.

    log p = -softplus(-a) - softplus(-b) and 1 - p = (e^-a + e^-b + e^-(a+b)) / ((1 + e^-a)(1 + e^-b)),
    so log(1 - p) = logsumexp(-a, -b, -a-b) + log p: both without forming p, stable for any logits.
    sum_i x_i log p_i + (1 - x_i) log(1 - p_i) = sum_clicked (log p - log(1 - p)) + sum_i log(1 - p).
    """
    log_p = -tf.nn.softplus(-logits_a) - tf.nn.softplus(-logits_b)
    log_not_p = tf.reduce_logsumexp(tf.stack([-logits_a, -logits_b, -logits_a - logits_b]), axis=0) + log_p
    return _sum_at_clicks(log_p - log_not_p, clicks) + _sum_over_counted(log_not_p, counted)
