"""The sharing hybrid computes its formulas, places new movies by their features alone, and the
likelihoods leave new movies out."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from hvae_tf.baselines import ContentKNN
from hvae_tf.models import build_model, shared
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
    s = model.shared_speed  # each shared weight is s times its stored variable
    e = np.tanh(s * (content() @ vectors.projection.numpy() + vectors.projection_bias.numpy()))
    x = dense_clicks(users)
    c = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    kernel = layer.kernel.numpy() * free[:, None] + e @ (s * layer.shared_kernel.numpy())
    h1 = np.tanh(c @ kernel + layer.bias.numpy())
    weights = model._click_weights(click_matrix(users, N_MOVIES), False)
    np.testing.assert_allclose(layer(weights, equal_in_rows=True), h1, rtol=1e-4, atol=1e-5)

    h = np.random.default_rng(1).normal(size=(12, HIDDEN)).astype(np.float32)
    logits = ((h @ decoder.kernel.numpy() + decoder.bias.numpy()) * free
              + s * (h @ decoder.shared_kernel.numpy() @ e.T + e @ decoder.shared_bias.numpy()))
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


def test_new_movies_rank_among_themselves_as_the_product_does_where_float32_ties_them():
    model = shared_model(likelihood="bernoulli", shallow="zeros")  # VASP's product of sigmoids
    users = padded_users(6)
    decoder, speed = model.decoder_output, model.shared_speed
    model.scores(users)  # built
    # New movies the VAE is sure of, more or less: logits 20, 28 and 24, the same for every user.
    vectors = model.first_layer.movie_vectors.vectors().numpy()[NEW]
    decoder.shared_kernel.assign(tf.zeros_like(decoder.shared_kernel))
    decoder.shared_bias.assign(np.linalg.lstsq(speed * vectors, [20.0, 28.0, 24.0], rcond=None)[0])
    clicks = click_matrix(users, N_MOVIES)
    vae = model.decode(model._encode_clicks(clicks, False)[0], False).numpy().astype(np.float64)
    shallow = model.shallow_path(clicks).numpy().astype(np.float64)
    exact = -np.logaddexp(0.0, -vae) - np.logaddexp(0.0, -shallow)  # log s(a) s(b), in float64
    assert (np.argsort(-exact[:, NEW], axis=1) == [1, 2, 0]).all()
    assert (np.ptp(model.scores(users).numpy()[:, NEW], axis=1) == 0).all()  # float32 ties them
    ranked = np.argsort(-model.new_movie_scores(users).numpy()[:, NEW], axis=1)
    np.testing.assert_array_equal(ranked, np.argsort(-exact[:, NEW], axis=1))


def _which_side(got, with_free, shared_only):
    """Per column (or row), True where `got` is the shared part alone, False where it has the free part."""
    alone = np.isclose(got, shared_only, rtol=1e-4, atol=1e-5).all(axis=0)
    assert (alone | np.isclose(got, with_free, rtol=1e-4, atol=1e-5).all(axis=0)).all()
    return alone


def _parts(model, h, weights):
    """The decoder's logits and the first layer's output with every free part, and with none."""
    decoder, layer = model.decoder_output, model.first_layer
    free = (decoder.kernel, decoder.bias, layer.kernel)
    saved = [w.numpy() for w in free]
    with_free = decoder(h).numpy(), layer(weights, equal_in_rows=True).numpy()
    for w in free:
        w.assign(tf.zeros_like(w))
    shared_only = decoder(h).numpy(), layer(weights, equal_in_rows=True).numpy()
    for w, value in zip(free, saved):
        w.assign(value)
    return with_free, shared_only


def test_free_dropout_trains_a_share_of_the_movies_as_new_ones_in_every_part_and_scores_with_all():
    model = shared_model(free_dropout=0.5, shallow="zeros")
    model.shallow_path.kernel.assign(np.random.default_rng(3).normal(size=(N_MOVIES, N_MOVIES)))
    h = tf.constant(np.random.default_rng(1).normal(size=(6, HIDDEN)).astype(np.float32))
    one_click = np.arange(N_MOVIES).reshape(-1, 1)  # a user per movie, clicking it alone
    clicks = click_matrix(one_click, N_MOVIES)
    weights = model._click_weights(clicks, False)
    (logits, first), (logits_alone, first_alone) = _parts(model, h, weights)
    shallow = model._shallow_logits(clicks).numpy()

    assert np.array_equal(model.decoder_output(h, training=False).numpy(), logits)  # scoring keeps every free part
    steps = []
    for step in range(3):
        model.anneal_step.assign(step)
        dropped = _which_side(model.decoder_output(h, training=True).numpy(), logits, logits_alone)
        assert dropped[NEW].all()  # a new movie never has a free part
        assert 0.25 < np.delete(dropped, NEW).mean() < 0.75  # about half of the others train as new ones
        # ... the same ones in the encoder's first layer and on the shallow path (its bias alone) ...
        in_first = _which_side(model.first_layer(weights, equal_in_rows=True, training=True).numpy().T,
                               first.T, first_alone.T)
        assert np.array_equal(in_first, dropped)
        bias = np.full_like(shallow, model.shallow_path.bias.numpy())
        on_shallow = _which_side(model._shallow_logits(clicks, training=True).numpy(), shallow, bias)
        assert np.array_equal(on_shallow[np.setdiff1d(np.arange(N_MOVIES), NEW)],
                              np.delete(dropped, NEW))  # (no shallow weights lead to a new movie here)
        steps.append(dropped)
    assert not np.array_equal(steps[0], steps[1])  # ... and others in the next step
    # The same seed and step draw the same movies.
    again = shared_model(free_dropout=0.5, shallow="zeros")
    again.set_weights(model.get_weights())
    again.anneal_step.assign(2)
    assert np.array_equal(_which_side(again.decoder_output(h, training=True).numpy(), logits, logits_alone),
                          steps[2])


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


def _shared_weights(model):
    """The shared weights as the model uses them: W = speed * V."""
    stored = (model.first_layer.movie_vectors.projection, model.first_layer.shared_kernel,
              model.decoder_output.shared_kernel)
    return [model.shared_speed * v.numpy() for v in stored]


def test_shared_speed_starts_where_speed_one_does_and_moves_the_shared_weights_that_much_faster():
    users = with_new_movies(padded_users(16))
    models = {speed: shared_model(shared_speed=speed, likelihood="bernoulli", weight_decay=0.1)
              for speed in (1.0, 4.0)}
    np.testing.assert_allclose(models[4.0].scores(users), models[1.0].scores(users), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(models[4.0].weight_penalty(), models[1.0].weight_penalty(), rtol=1e-5)
    moved = {}
    for speed, model in models.items():
        before = _shared_weights(model)
        with tf.GradientTape() as tape:
            reconstruction, kl, _ = model.compute_losses(users, training=False)
            loss = tf.reduce_mean(reconstruction + kl)
        variables = model.trainable_variables
        keras.optimizers.Adam(1e-3).apply_gradients(zip(tape.gradient(loss, variables), variables))
        moved[speed] = np.median(np.concatenate(
            [np.abs(a - b).ravel() for a, b in zip(_shared_weights(model), before)]))
    # Adam's first step moves each stored weight by about the learning rate, so W by speed times it.
    np.testing.assert_allclose(moved[1.0], 1e-3, rtol=0.05)
    np.testing.assert_allclose(moved[4.0], 4e-3, rtol=0.05)


def test_built_from_its_config_and_weights_it_scores_the_same(tmp_path):
    model = build_model(N_MOVIES, content(), approach="shared", shared_dim=SHARED_DIM, free_l2=0.01, shared_speed=3.0,
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
    assert again.new_movies == NEW and again.shared_speed == 3.0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n_movies=5 but content has"):
        SharedHybridVAE(content(), n_movies=5)
    with pytest.raises(ValueError, match="shared_dim must be a whole number >= 1"):
        SharedHybridVAE(content(), shared_dim=0)
    with pytest.raises(ValueError, match=r"free_dropout must be in \[0, 1\)"):
        SharedHybridVAE(content(), free_dropout=1.0)
    with pytest.raises(ValueError, match="shared_speed must be a finite number > 0"):
        SharedHybridVAE(content(), shared_speed=0.0)
    with pytest.raises(ValueError, match="new_movies must be column indices"):
        SharedHybridVAE(content(), new_movies=[N_MOVIES])
    bad = content()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        SharedHybridVAE(bad)
    keras.backend.clear_session()


def multi_hot(columns=400, per_movie=2):
    """Credits-like content: a few ones among hundreds of columns (under 1% nonzero)."""
    rng = np.random.default_rng(5)
    values = np.zeros((N_MOVIES, columns), np.float32)
    for row in values:
        row[rng.choice(columns, per_movie, replace=False)] = 1.0
    return values


def test_sparse_content_is_kept_sparse_and_trains_as_the_dense_product_does(tmp_path, monkeypatch):
    users = with_new_movies(padded_users(8))
    sparse = SharedHybridVAE(multi_hot(), shared_dim=SHARED_DIM, hidden_dim=HIDDEN, latent_dim=LATENT,
                             seed=0, new_movies=NEW)

    monkeypatch.setattr(shared.MovieVectors, "SPARSE_BELOW", -1.0)  # every content dense
    dense = SharedHybridVAE(multi_hot(), shared_dim=SHARED_DIM, hidden_dim=HIDDEN, latent_dim=LATENT,
                            seed=0, new_movies=NEW)
    monkeypatch.undo()
    assert sparse.first_layer.movie_vectors.sparse and not dense.first_layer.movie_vectors.sparse
    assert sparse.first_layer.movie_vectors.nonzeros == 2 * N_MOVIES
    np.testing.assert_allclose(sparse.scores(users), dense.scores(users), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(sparse.movie_embeddings.numpy(), multi_hot())

    def projection_gradient(model):
        with tf.GradientTape() as tape:
            reconstruction, kl, _ = model.compute_losses(users, training=False)
            loss = tf.reduce_mean(reconstruction + kl)
        return tape.gradient(loss, model.first_layer.movie_vectors.projection).numpy()

    np.testing.assert_allclose(projection_gradient(sparse), projection_gradient(dense), rtol=1e-4, atol=1e-6)

    sparse.save_weights(str(tmp_path / "w.weights.h5"))
    again = SharedHybridVAE.from_config(sparse.get_config())
    again.load_weights(str(tmp_path / "w.weights.h5"))
    np.testing.assert_array_equal(again.movie_embeddings.numpy(), multi_hot())
    np.testing.assert_allclose(again.scores(users), sparse.scores(users), rtol=1e-6, atol=1e-6)


def content_path_model(**kwargs):
    """A sharing hybrid on VASP's shallow path (random item-item weights) with the content path."""
    shallow = np.random.default_rng(6).normal(scale=0.3, size=(N_MOVIES, N_MOVIES)).astype(np.float32)
    shallow[:, NEW] = 0.0  # as the closed form leaves a column nobody clicked
    similarity = ContentKNN(8).fit(content()).similarity
    return shared_model(likelihood="bernoulli", shallow="ease", shallow_weights=shallow, shallow_bias=-2.0,
                        content_similarity=similarity, **kwargs), similarity


def test_content_path_gives_movies_without_a_free_part_content_knns_evidence_and_leaves_the_others():
    model, similarity = content_path_model()
    plain = shared_model(likelihood="bernoulli", shallow="ease", shallow_weights=model.shallow_path.kernel.numpy(),
                         shallow_bias=-2.0)
    users = padded_users(12)
    clicks = click_matrix(users, N_MOVIES)
    shallow, without = model._shallow_logits(clicks).numpy(), plain._shallow_logits(clicks).numpy()
    knn = dense_clicks(users) @ similarity.toarray()  # content kNN's score
    np.testing.assert_allclose(shallow[:, NEW], np.log1p(knn[:, NEW]) - 2.0, rtol=1e-5, atol=1e-5)
    old = np.setdiff1d(np.arange(N_MOVIES), NEW)
    np.testing.assert_allclose(shallow[:, old], without[:, old], rtol=1e-6, atol=1e-6)
    assert np.ptp(without[:, NEW]) == 0.0 and (np.ptp(shallow[:, NEW], axis=1) > 0.0).mean() > 0.5  # ... untied
    # New movies' shallow logits now differ, so the scores rank them (no second pass).
    assert plain.ranks_new_movies_apart and not model.ranks_new_movies_apart
    np.testing.assert_array_equal(model.new_movie_scores(users), model.scores(users))


@pytest.mark.parametrize("free_dropout", [0.0, 0.5])
def test_content_path_learns_only_from_movies_training_as_new(free_dropout):
    """New movies are out of the reconstruction: without free dropout no counted movie reaches
    the content path, with it those training as new do."""
    model, _ = content_path_model(free_dropout=free_dropout)
    users = padded_users(16)
    users[np.isin(users, NEW)] = -1  # nobody clicked a new movie in training
    with tf.GradientTape() as tape:
        reconstruction, kl, _ = model.compute_losses(users, training=True)
        loss = tf.reduce_mean(reconstruction + kl)
    grads = tape.gradient(loss, [model.content_path.weight, model.content_path.bias])
    moved = [g is not None and float(tf.abs(g)) > 0.0 for g in grads]
    assert moved == [free_dropout > 0.0] * 2


def test_content_path_is_rebuilt_from_its_config_and_weights(tmp_path):
    model, _ = content_path_model()
    model.content_path.weight.assign(0.7)
    users = padded_users(8)
    model.save_weights(str(tmp_path / "w.weights.h5"))
    again = SharedHybridVAE.from_config(model.get_config())
    again.load_weights(str(tmp_path / "w.weights.h5"))
    np.testing.assert_allclose(again.scores(users), model.scores(users), rtol=1e-6, atol=1e-6)
    assert float(again.content_path.weight) == pytest.approx(0.7)


def test_content_path_needs_the_shallow_path():
    with pytest.raises(ValueError, match="shallow path, which is off"):
        shared_model(content_similarity=ContentKNN(4).fit(content()).similarity)
    with pytest.raises(ValueError, match=r"content_similarity must be \[60, 60\]"):
        shared_model(shallow="zeros", content_similarity=ContentKNN(4).fit(content()[:-1]).similarity)
    keras.backend.clear_session()
