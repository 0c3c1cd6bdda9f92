"""RecVAE's and VASP's options of the VAEs: each computes what its paper says, and trains."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from hvae_tf.models import HybridVAE, StandardVAE
from hvae_tf.models.click_input import click_matrix
from hvae_tf.models.losses import product_log_likelihood
from hvae_tf.models.priors import MIXTURE_WEIGHTS, WIDE_LOGVAR, composite_prior_kl
from hvae_tf.models.shallow import ShallowPath
from tests.test_models_vae import HIDDEN, LATENT, N_MOVIES, dense_clicks, hybrid_embeddings, padded_users


def vae(**kwargs):
    return StandardVAE(**{"n_movies": N_MOVIES, "hidden_dim": HIDDEN, "latent_dim": LATENT, "seed": 0,
                          **kwargs})


def normal_density(z, mu, var):
    return np.prod(np.exp(-0.5 * (z - mu) ** 2 / var) / np.sqrt(2 * np.pi * var), axis=-1)


def test_product_likelihood_is_bernoulli_of_the_product_of_sigmoids():
    rng = np.random.default_rng(0)
    users = padded_users(12)
    a, b = rng.normal(0, 3, (12, N_MOVIES)), rng.normal(0, 3, (12, N_MOVIES))
    p = 1 / (1 + np.exp(-a)) / (1 + np.exp(-b))
    x = dense_clicks(users)
    expected = (x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1)
    got = product_log_likelihood(tf.constant(a, tf.float32), tf.constant(b, tf.float32),
                                 click_matrix(users, N_MOVIES))
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    huge = product_log_likelihood(tf.fill([2, N_MOVIES], 80.0), tf.fill([2, N_MOVIES], -80.0),
                                  click_matrix(users[:2], N_MOVIES))
    assert np.isfinite(huge.numpy()).all()


def test_composite_prior_kl_is_log_q_minus_the_mixture_density():
    rng = np.random.default_rng(1)
    z, mu, prior_mu = (rng.normal(size=(5, 3)) for _ in range(3))
    logvar, prior_logvar = rng.normal(0, 0.5, (5, 3)), rng.normal(0, 0.5, (5, 3))
    mixture = (MIXTURE_WEIGHTS[0] * normal_density(z, 0, 1)
               + MIXTURE_WEIGHTS[1] * normal_density(z, prior_mu, np.exp(prior_logvar))
               + MIXTURE_WEIGHTS[2] * normal_density(z, 0, np.exp(WIDE_LOGVAR)))
    expected = np.log(normal_density(z, mu, np.exp(logvar))) - np.log(mixture)
    got = composite_prior_kl(*(tf.constant(t, tf.float32) for t in (z, mu, logvar, prior_mu, prior_logvar)))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_shallow_path_never_lets_a_movie_predict_itself():
    rng = np.random.default_rng(2)
    weights = rng.normal(size=(N_MOVIES, N_MOVIES)).astype(np.float32)
    path = ShallowPath(N_MOVIES, weights)
    path.build()
    users = padded_users(10)
    x = dense_clicks(users)
    clicks = click_matrix(users, N_MOVIES)
    np.testing.assert_allclose(path(clicks), x @ (weights - np.diag(np.diag(weights))), rtol=1e-4, atol=1e-4)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(path(clicks) * rng.normal(size=x.shape).astype(np.float32))
    gradient = tf.convert_to_tensor(tape.gradient(out, path.kernel))
    assert np.allclose(np.diag(gradient.numpy()), 0.0) and np.abs(gradient.numpy()).sum() > 0
    with pytest.raises(ValueError, match="movies x movies"):
        ShallowPath(N_MOVIES, weights[:5])


def test_vasp_scores_are_the_log_of_the_product_of_both_sigmoids():
    rng = np.random.default_rng(3)
    start = rng.normal(size=(N_MOVIES, N_MOVIES)).astype(np.float32)
    model = vae(shallow="ease", shallow_weights=start, likelihood="bernoulli")
    users = padded_users(6)
    vae_logits = model.decode(model.encode(users)[0]).numpy()
    shallow = dense_clicks(users) @ (start - np.diag(np.diag(start)))
    expected = np.log(1 / (1 + np.exp(-vae_logits))) + np.log(1 / (1 + np.exp(-shallow)))
    np.testing.assert_allclose(model.scores(users), expected, rtol=1e-4, atol=1e-4)


def test_frozen_shallow_path_adds_its_logits_and_the_vae_trains_alone():
    from hvae_tf.models.losses import log_likelihood

    rng = np.random.default_rng(5)
    start = rng.normal(size=(N_MOVIES, N_MOVIES)).astype(np.float32)
    model = vae(shallow="frozen", shallow_weights=start, shallow_bias=-2.0, architecture="recvae",
                activation="swish", encoder_passes=2)
    assert not model.shallow_path.trainable_weights
    users = padded_users(16)
    shallow = dense_clicks(users) @ (start - np.diag(np.diag(start))) - 2.0
    vae_logits = model.decode(model.encode(users)[0])
    np.testing.assert_allclose(model.scores(users), vae_logits.numpy() + shallow, rtol=1e-4, atol=1e-4)
    reconstruction, _, _ = model.compute_losses(users, training=False)
    alone = -log_likelihood("multinomial", vae_logits, click_matrix(users, N_MOVIES))
    np.testing.assert_allclose(reconstruction, alone, rtol=1e-5)  # the path is not in the loss
    before = model.decode(model.encode(users)[0]).numpy()
    fit_one_epoch(model, users)
    np.testing.assert_array_equal(model.shallow_path.kernel.numpy(), start - np.diag(np.diag(start)))
    assert float(model.shallow_path.bias) == -2.0
    assert not np.allclose(model.decode(model.encode(users)[0]).numpy(), before)  # the VAE did train
    with pytest.raises(ValueError, match="--shallow-l2.*frozen"):
        vae(shallow="frozen", shallow_weights=start, shallow_l2=0.01)


def test_recvae_encoder_is_densely_connected_and_layer_normalised_with_a_linear_decoder():
    model = vae(architecture="recvae", activation="swish")
    assert model.decoder_hidden is None and model.decoder_output.kernel.shape == (LATENT, N_MOVIES)
    users = padded_users(6)
    x = dense_clicks(users)
    norms = [x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)]

    def layer_norm(h, layer):
        mean, var = h.mean(axis=1, keepdims=True), h.var(axis=1, keepdims=True)
        return (h - mean) / np.sqrt(var + layer.epsilon) * layer.gamma.numpy() + layer.beta.numpy()

    swish = lambda v: v / (1 + np.exp(-v))  # noqa: E731
    first, *blocks, output = model.encoder_layers
    h = layer_norm(swish(norms[0] @ first.kernel.numpy() + first.bias.numpy()), blocks[0])
    earlier = h
    for dense, norm in zip(blocks[1::2], blocks[2::2]):
        h = layer_norm(swish(h @ dense.kernel.numpy() + dense.bias.numpy() + earlier), norm)
        earlier = earlier + h
    mu = (h @ output.kernel.numpy() + output.bias.numpy())[:, :LATENT]
    np.testing.assert_allclose(model.encode(users)[0], mu, rtol=1e-4, atol=1e-5)
    assert len(blocks) == 9  # a norm after the first layer, then 4 x (dense, norm)


def test_per_user_kl_weight_is_gamma_times_the_users_clicks():
    users = padded_users(8)
    _, _, beta = vae(kl_gamma=0.03).compute_losses(users, training=False)
    np.testing.assert_allclose(beta, 0.03 * dense_clicks(users).sum(axis=1), rtol=1e-6)


def fit_one_epoch(model, users, batch=8):
    model.compile(keras.optimizers.Adam(1e-2))
    model.fit(tf.data.Dataset.from_tensor_slices(users).batch(batch), epochs=1, verbose=0, shuffle=False)


def test_composite_prior_copy_stays_frozen_until_refreshed():
    model = vae(architecture="recvae", activation="swish", prior="composite")
    users = padded_users(40)
    assert all(not w.trainable for layer in model.prior_layers for w in layer.weights)
    fit_one_epoch(model, users)
    live = [w.numpy() for layer in model.encoder_layers for w in layer.weights]
    frozen = [w.numpy() for layer in model.prior_layers for w in layer.weights]
    assert any(not np.allclose(a, b) for a, b in zip(live, frozen))  # trained: the copy is behind
    model.refresh_prior()
    for a, b in zip(live, (w.numpy() for layer in model.prior_layers for w in layer.weights)):
        np.testing.assert_array_equal(a, b)


def test_alternating_updates_make_the_encoder_passes_then_one_decoder_pass():
    users = padded_users(16)
    model = vae(encoder_passes=3, kl_gamma=0.01)
    encoder_ids = {id(w) for w in model.encoder_weights}
    assert encoder_ids.isdisjoint(id(w) for w in model.decoder_weights)
    assert len(model.encoder_weights) + len(model.decoder_weights) == len(model.trainable_weights)
    fit_one_epoch(model, users, batch=16)  # one batch: one train_step
    assert int(model.optimizer.iterations) == 3 + 1
    assert int(model.anneal_step) == 1  # one batch counted once


@pytest.mark.parametrize("approach", [1, 2])
def test_hybrid_takes_every_option(approach):
    model = HybridVAE(hybrid_embeddings(), approach=approach, hidden_dim=HIDDEN, latent_dim=LATENT,
                      seed=0, architecture="recvae", activation="swish", prior="composite",
                      kl_gamma=0.01, encoder_passes=2, shallow="zeros", likelihood="bernoulli")
    users = padded_users(16)
    before = model.scores(users).numpy()
    fit_one_epoch(model, users)
    after = model.scores(users).numpy()
    assert np.isfinite(after).all() and not np.allclose(before, after)
    restored = HybridVAE.from_config(model.get_config())
    restored(users)
    restored.set_weights(model.get_weights())
    np.testing.assert_allclose(restored.scores(users), after, rtol=1e-5, atol=1e-6)


def test_slowed_shallow_path_computes_the_same_and_moves_at_its_speed():
    rng = np.random.default_rng(4)
    weights = rng.normal(0, 0.1, (N_MOVIES, N_MOVIES)).astype(np.float32)
    users = padded_users(10)
    clicks = click_matrix(users, N_MOVIES)
    paths = {speed: ShallowPath(N_MOVIES, weights, bias=-2.0, speed=speed) for speed in (1.0, 0.1)}
    moved = {}
    for speed, path in paths.items():
        path.build()
        np.testing.assert_allclose(path(clicks), dense_clicks(users) @ (weights - np.diag(np.diag(weights))) - 2.0,
                                   rtol=1e-4, atol=1e-4)
        optimizer = keras.optimizers.Adam(1e-3)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(path(clicks))
        optimizer.apply_gradients(zip(tape.gradient(loss, [path.kernel]), [path.kernel]))
        moved[speed] = np.abs(speed * path.kernel.numpy() - (weights - np.diag(np.diag(weights)))).max()
    assert moved[0.1] == pytest.approx(0.1 * moved[1.0], rel=1e-3)  # Adam's first step: lr per weight
