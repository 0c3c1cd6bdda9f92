"""The Sampling layer: right moments, repeatable for a seed, differentiable in mu and logvar."""

import numpy as np
import tensorflow as tf

from hvae_tf.models.sampling import Sampling


def test_samples_have_the_requested_mean_and_spread_and_repeat_per_seed():
    mu = tf.fill((20_000, 2), 1.0)
    logvar = tf.fill((20_000, 2), float(np.log(4.0)))
    z = Sampling(seed=1)((mu, logvar)).numpy()
    np.testing.assert_allclose(z.mean(axis=0), 1.0, atol=0.05)
    np.testing.assert_allclose(z.std(axis=0), 2.0, rtol=0.03)
    np.testing.assert_array_equal(Sampling(seed=1)((mu, logvar)).numpy(), z)


def test_gradients_reach_mu_and_logvar():
    mu, logvar = tf.Variable([[0.5]]), tf.Variable([[0.0]])
    layer = Sampling(seed=2)
    with tf.GradientTape() as tape:
        z = layer((mu, logvar))
    eps = z.numpy() - 0.5
    d_mu, d_logvar = tape.gradient(z, [mu, logvar])
    assert float(d_mu[0, 0]) == 1.0
    np.testing.assert_allclose(float(d_logvar[0, 0]), 0.5 * eps[0, 0], rtol=1e-5)
