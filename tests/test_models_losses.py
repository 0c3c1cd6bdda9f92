"""Log-likelihoods on sparse clicks and the Gaussian KL, against their dense textbook forms."""

import numpy as np
import pytest
import tensorflow as tf

from hvae_tf.models.losses import (
    bernoulli_log_likelihood,
    gaussian_kl,
    log_likelihood,
    multinomial_log_likelihood,
)


def tiny_case():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 6)) * 3
    x = np.zeros((3, 6))
    x[0, [1, 4]] = 1.0
    x[2, [0, 2, 5]] = 1.0  # user 1 has no clicks
    return logits, x, tf.sparse.from_dense(tf.constant(x, tf.float32))


def test_multinomial_is_the_clicked_log_softmax_sum():
    logits, x, clicks = tiny_case()
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    got = multinomial_log_likelihood(tf.constant(logits, tf.float32), clicks).numpy()
    np.testing.assert_allclose(got, (x * log_softmax).sum(axis=1), rtol=1e-5)
    assert got[1] == 0.0


def test_bernoulli_is_equation_6():
    logits, x, clicks = tiny_case()
    s = 1 / (1 + np.exp(-logits))
    expected = (x * np.log(s) + (1 - x) * np.log(1 - s)).sum(axis=1)
    got = bernoulli_log_likelihood(tf.constant(logits, tf.float32), clicks).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bernoulli_stays_finite_where_the_sigmoid_saturates():
    clicks = tf.sparse.from_dense(tf.constant([[1.0, 0.0]]))
    got = bernoulli_log_likelihood(tf.constant([[200.0, -200.0]]), clicks).numpy()
    np.testing.assert_allclose(got, [0.0], atol=1e-6)  # both predictions are right


def test_unknown_likelihood_is_named():
    logits, _, clicks = tiny_case()
    with pytest.raises(ValueError, match="poisson"):
        log_likelihood("poisson", tf.constant(logits, tf.float32), clicks)


def test_gaussian_kl_matches_the_closed_form():
    mu = np.array([[0.0, 0.0], [1.0, -2.0]])
    logvar = np.array([[0.0, 0.0], [np.log(4.0), np.log(0.25)]])
    # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2 - 1) / 2 per dimension
    s = np.exp(logvar / 2)
    expected = (np.log(1 / s) + (s**2 + mu**2 - 1) / 2).sum(axis=1)
    got = gaussian_kl(tf.constant(mu, tf.float32), tf.constant(logvar, tf.float32)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[0] == 0.0
