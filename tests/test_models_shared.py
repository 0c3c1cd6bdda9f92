"""The sharing hybrid computes its formulas, places new movies by their features alone, and the
likelihoods leave new movies out."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from hvae_tf.models import build_model
from hvae_tf.models.click_input import click_matrix
from hvae_tf.models.losses import bernoulli_log_likelihood, multinomial_log_likelihood
from hvae_tf.models.shared import SharedHybridVAE
from tests.test_models_vae import HIDDEN, LATENT, N_MOVIES, dense_clicks, padded_users

NEW = [3, 10, 41]
SHARED_DIM, CONTENT_DIM = 5, 7


def content():
    return np.random.default_rng(4).normal(size=(N_MOVIES, CONTENT_DIM)).astype(np.float32)


def shared_model(**kwargs):
    settings = dict(shared_dim=SHARED_DIM, hidden_dim=HIDDEN, latent_dim=LATENT, seed=0, new_movies=NEW)
    return SharedHybridVAE(content(), **{**settings, **kwargs})


def with_new_movies(batch):
    """The users, each with a new movie in its history (padding slots used where free)."""
    batch = batch.copy()
    for row, movies in enumerate(batch):
        missing = [m for m in NEW if m not in movies]
        if (movies < 0).any() and missing:
            batch[row, np.argmax(movies < 0)] = missing[row % len(missing)]
    return batch


def test_movie_rows_are_free_part_plus_shared_part_of_the_features():
    model = shared_model()
    users = with_new_movies(padded_users(12))
    layer, decoder = model.first_layer, model.decoder_output
    vectors = layer.movie_vectors
    free = np.ones(N_MOVIES)
    free[NEW] = 0.0
    e = np.tanh(content() @ vectors.projection.numpy() + vectors.projection_bias.numpy())
    x = dense_clicks(users)
    c = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    kernel = layer.kernel.numpy() * free[:, None] + e @ layer.shared_kernel.numpy()
    h1 = np.tanh(c @ kernel + layer.bias.numpy())
    weights = model._click_weights(click_matrix(users, N_MOVIES), False)
    np.testing.assert_allclose(layer(weights, equal_in_rows=True), h1, rtol=1e-4, atol=1e-5)

    h = np.random.default_rng(1).normal(size=(12, HIDDEN)).astype(np.float32)
    logits = ((h @ decoder.kernel.numpy() + decoder.bias.numpy()) * free
              + h @ decoder.shared_kernel.numpy() @ e.T + e @ decoder.shared_bias.numpy())
    np.testing.assert_allclose(decoder(h), logits, rtol=1e-4, atol=1e-4)


def test_new_movies_are_placed_by_their_features_alone():
    model = shared_model()
    users = with_new_movies(padded_users(12))
    before = model.scores(users).numpy()
    for weight, axis in ((model.first_layer.kernel, 0), (model.decoder_output.kernel, 1)):
        values = weight.numpy()
        np.put_along_axis(values, np.array(NEW).reshape((-1, 1) if axis == 0 else (1, -1)), 9.0, axis=axis)
        weight.assign(values)
    bias = model.decoder_output.bias.numpy()
    bias[NEW] = -9.0
    model.decoder_output.bias.assign(bias)
    np.testing.assert_allclose(model.scores(users), before, rtol=1e-5, atol=1e-5)
    # ... and their features do move them.
    vectors = model.first_layer.movie_vectors.content
    moved = vectors.numpy()
    moved[NEW] += 3.0
    vectors.assign(moved)
    changed = np.abs(model.scores(users).numpy() - before)
    assert changed[:, NEW].min() > 1e-4


def test_training_never_moves_a_new_movies_free_part():
    model = shared_model(likelihood="bernoulli")
    users = with_new_movies(padded_users(16))  # even a new movie in the input moves only shared weights
    with tf.GradientTape() as tape:
        reconstruction, kl, _ = model.compute_losses(users, training=True)
        loss = tf.reduce_mean(reconstruction + kl)
    grads = dict(zip(("enc", "dec", "bias", "shared"), map(tf.convert_to_tensor, tape.gradient(
        loss, [model.first_layer.kernel, model.decoder_output.kernel, model.decoder_output.bias,
               model.decoder_output.shared_kernel]))))
    assert np.abs(grads["enc"].numpy()[NEW]).max() == 0.0
    assert np.abs(grads["dec"].numpy()[:, NEW]).max() == 0.0 and np.abs(grads["bias"].numpy()[NEW]).max() == 0.0
    assert np.abs(grads["shared"].numpy()).max() > 0.0


@pytest.mark.parametrize("likelihood", ["multinomial", "bernoulli"])
def test_likelihoods_leave_uncounted_movies_out(likelihood):
    rng = np.random.default_rng(2)
    users = padded_users(10)
    users[np.isin(users, NEW)] = -1  # nobody clicked a new movie
    logits = rng.normal(0, 2, (10, N_MOVIES)).astype(np.float32)
    counted = np.ones(N_MOVIES, np.float32)
    counted[NEW] = 0.0
    x, keep = dense_clicks(users), counted > 0
    if likelihood == "multinomial":
        kept = logits[:, keep]
        log_softmax = kept - np.log(np.exp(kept).sum(axis=1, keepdims=True))
        expected = (x[:, keep] * log_softmax).sum(axis=1)
        got = multinomial_log_likelihood(tf.constant(logits), click_matrix(users, N_MOVIES), tf.constant(counted))
    else:
        a = logits[:, keep]
        expected = (x[:, keep] * a - np.log1p(np.exp(a))).sum(axis=1)
        got = bernoulli_log_likelihood(tf.constant(logits), click_matrix(users, N_MOVIES), tf.constant(counted))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_built_from_its_config_and_weights_it_scores_the_same(tmp_path):
    model = build_model(N_MOVIES, content(), approach="shared", shared_dim=SHARED_DIM, free_l2=0.01,
                        new_movies=NEW, hidden_dim=HIDDEN, latent_dim=LATENT, seed=0, likelihood="multinomial",
                        architecture="recvae", activation="swish", prior="standard", kl_gamma=0.0,
                        encoder_passes=0, shallow="none", shallow_l2=0.0, shallow_speed=1.0,
                        anneal_steps=10, anneal_cap=0.2)
    assert isinstance(model, SharedHybridVAE) and model.penalty() is not None
    users = with_new_movies(padded_users(8))
    model.save_weights(str(tmp_path / "w.weights.h5"))
    again = SharedHybridVAE.from_config(model.get_config())
    again.load_weights(str(tmp_path / "w.weights.h5"))
    np.testing.assert_allclose(again.scores(users), model.scores(users), rtol=1e-6, atol=1e-6)
    assert again.new_movies == NEW


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n_movies=5 but content has"):
        SharedHybridVAE(content(), n_movies=5)
    with pytest.raises(ValueError, match="shared_dim must be a whole number >= 1"):
        SharedHybridVAE(content(), shared_dim=0)
    with pytest.raises(ValueError, match="new_movies must be column indices"):
        SharedHybridVAE(content(), new_movies=[N_MOVIES])
    bad = content()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        SharedHybridVAE(bad)
    keras.backend.clear_session()
