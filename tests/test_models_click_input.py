"""The first layers: sparse click input from padded batches, and equality with the naive dense
formulation of the H-VAE input (outputs and gradients)."""

import math

import keras
import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

from hvae_tf.models.click_input import (
    DENSE_FROM_DENSITY,
    ClickDense,
    CollapsedEmbeddingDense,
    FlattenedEmbeddingDense,
    click_matrix,
    click_weights,
    clicks_times,
)

N_MOVIES, EMBEDDING_DIM, UNITS = 40, 3, 7


def padded_batch(rng, n_users, max_len, n_movies=N_MOVIES):
    batch = np.full((n_users, max_len), -1, np.int64)
    for row in range(n_users):
        k = rng.integers(0, max_len + 1)
        batch[row, :k] = rng.choice(n_movies, k, replace=False)
    batch[1] = -1  # a user with no clicks
    return batch


def dense_clicks(batch, n_movies=N_MOVIES):
    x = np.zeros((len(batch), n_movies), np.float32)
    for row, movies in enumerate(batch):
        x[row, movies[movies >= 0]] = 1.0
    return x


def test_click_matrix_holds_the_listed_movies_and_skips_padding():
    batch = padded_batch(np.random.default_rng(0), 6, 5)
    clicks = click_matrix(batch, N_MOVIES)
    assert clicks.dense_shape.numpy().tolist() == [6, N_MOVIES]
    np.testing.assert_array_equal(tf.sparse.to_dense(tf.sparse.reorder(clicks)).numpy(), dense_clicks(batch))


def test_click_matrix_rejects_an_index_outside_the_catalogue():
    with pytest.raises(tf.errors.InvalidArgumentError, match="n_movies"):
        click_matrix(np.array([[3, N_MOVIES]]), N_MOVIES)


def test_click_weights_are_l2_normalised_then_inverted_dropout():
    batch = padded_batch(np.random.default_rng(1), 8, 10)
    clicks = click_matrix(batch, N_MOVIES)
    x = dense_clicks(batch)
    norms = np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    kwargs = dict(normalize=True, dropout=0.5, seed_generator=keras.random.SeedGenerator(3))
    at_inference = tf.sparse.to_dense(tf.sparse.reorder(click_weights(clicks, training=False, **kwargs)))
    np.testing.assert_allclose(at_inference.numpy(), x / norms, rtol=1e-6)
    in_training = click_weights(clicks, training=True, **kwargs)
    in_training = tf.sparse.to_dense(tf.sparse.reorder(in_training)).numpy()
    kept = in_training != 0
    assert 0 < kept.sum() < x.sum()  # some clicks dropped, some kept
    np.testing.assert_allclose(in_training[kept], (2 * x / norms)[kept], rtol=1e-6)
    assert not (kept & (x == 0)).any()


def naive_first_layer(layer, weights_dense):
    """The paper's formulation: the batch x N x d input x'_u = <c_ui e_i>, then the Dense layers."""
    if isinstance(layer, FlattenedEmbeddingDense):
        x_prime = weights_dense[:, :, None] * layer.movie_embeddings[None, :, :]  # [batch, N, d]
        flat = tf.reshape(x_prime, (-1, layer.n_movies * layer.embedding_dim))
        return tf.tanh(flat @ layer.kernel + layer.bias)
    if isinstance(layer, CollapsedEmbeddingDense):
        x_prime = weights_dense[:, :, None] * layer.movie_embeddings[None, :, :]
        collapsed = tf.squeeze(x_prime @ layer.collapse_kernel, -1)  # Dense(1) per movie: [batch, N]
        return tf.tanh(collapsed @ layer.kernel + layer.bias)
    return tf.tanh(weights_dense @ layer.kernel + layer.bias)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("equal_in_rows", [False, True])
@pytest.mark.parametrize("kind", ["standard", "approach 1", "approach 2"])
def test_sparse_first_layer_equals_naive_dense_formulation(kind, equal_in_rows, training):
    """Dropped-out clicks (explicit zeros) included; equal_in_rows: the unweighted row sums and
    their own gradient; training: approach 1's K formed by XLA, with its own gradient."""
    rng = np.random.default_rng(2)
    embeddings = rng.normal(size=(N_MOVIES, EMBEDDING_DIM)).astype(np.float32)
    if kind == "standard":
        layer = ClickDense(N_MOVIES, UNITS, seed=0)
    elif kind == "approach 1":
        layer = FlattenedEmbeddingDense(embeddings, UNITS, trainable_embeddings=True, seed=0)
    else:
        layer = CollapsedEmbeddingDense(embeddings, UNITS, trainable_embeddings=True, seed=0)
    layer.build()
    layer.bias.assign(rng.normal(size=UNITS).astype(np.float32))  # a zero bias would hide mistakes
    clicks = click_matrix(padded_batch(rng, 9, 12), N_MOVIES)
    weights = click_weights(
        clicks, normalize=True, dropout=0.3, seed_generator=keras.random.SeedGenerator(0), training=True
    )
    weights_dense = tf.sparse.to_dense(tf.sparse.reorder(weights))
    upstream = tf.constant(rng.normal(size=(9, UNITS)), tf.float32)

    def outputs_and_gradients(forward):
        with tf.GradientTape() as tape:
            out = forward()
            objective = tf.reduce_sum(out * upstream)
        return out, tape.gradient(objective, layer.trainable_weights)

    efficient, efficient_grads = outputs_and_gradients(lambda: layer(weights, equal_in_rows=equal_in_rows,
                                                                                   training=training))
    naive, naive_grads = outputs_and_gradients(lambda: naive_first_layer(layer, weights_dense))
    # kernel and bias, + the embeddings (approach 1), + the collapse kernel (approach 2)
    expected_weights = {"standard": 2, "approach 1": 3, "approach 2": 4}[kind]
    assert len(efficient_grads) == expected_weights
    np.testing.assert_allclose(efficient.numpy(), naive.numpy(), rtol=1e-5, atol=1e-6)
    for variable, got, want in zip(layer.trainable_weights, efficient_grads, naive_grads):
        np.testing.assert_allclose(
            tf.convert_to_tensor(got).numpy(), tf.convert_to_tensor(want).numpy(), rtol=1e-4, atol=1e-6,
            err_msg=variable.path,
        )


def test_frozen_embeddings_are_not_trainable():
    layer = FlattenedEmbeddingDense(np.ones((N_MOVIES, EMBEDDING_DIM)), UNITS)
    layer.build()
    assert [w.name for w in layer.trainable_weights] == ["kernel", "bias"]
    np.testing.assert_array_equal(layer.movie_embeddings.numpy(), np.ones((N_MOVIES, EMBEDDING_DIM)))


@pytest.mark.parametrize("how", ["dense", "gathered"])
def test_both_ways_of_multiplying_the_clicks_equal_a_sparse_matmul(how):
    """Users without clicks in the middle and at the end of the batch get zero rows either way."""
    n_movies, units = 200, 7
    rng = np.random.default_rng(3)
    lists = [sorted(rng.choice(n_movies, 12, replace=False)) for _ in range(6)]
    lists[2] = lists[5] = []
    width = max(len(row) for row in lists)
    indices = tf.constant([row + [-1] * (width - len(row)) for row in lists], tf.int64)
    clicks = click_matrix(indices, n_movies)
    weights = tf.SparseTensor(clicks.indices, tf.constant(rng.random(clicks.values.shape[0]), tf.float32),
                              clicks.dense_shape)
    kernel = tf.Variable(rng.normal(size=(n_movies, units)).astype(np.float32))
    results = []
    for product in (lambda w, k: clicks_times(w, k, how), tf.sparse.sparse_dense_matmul):
        with tf.GradientTape() as tape:
            out = product(weights, kernel)
            loss = tf.reduce_sum(tf.sin(out))
        results.append((out.numpy(), tf.convert_to_tensor(tape.gradient(loss, kernel)).numpy()))
    (out, grad), (expected_out, expected_grad) = results
    np.testing.assert_allclose(out, expected_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)
    assert not out[2].any() and not out[5].any()


@pytest.mark.parametrize("kind", ["standard", "approach 1", "approach 2"])
def test_inference_shortcut_for_equal_weights_in_a_row_computes_the_same(kind):
    """At inference a user's click weights are equal (1 / sqrt(clicks)): the gathered product's
    unweighted row sum, scaled once per user, must equal the weighted one, users without clicks
    included (in the middle and at the end)."""
    rng = np.random.default_rng(4)
    embeddings = rng.normal(size=(N_MOVIES, EMBEDDING_DIM)).astype(np.float32)
    layer = {"standard": lambda: ClickDense(N_MOVIES, UNITS, seed=0),
             "approach 1": lambda: FlattenedEmbeddingDense(embeddings, UNITS, seed=0),
             "approach 2": lambda: CollapsedEmbeddingDense(embeddings, UNITS, seed=0)}[kind]()
    layer.build()
    layer.bias.assign(rng.normal(size=UNITS).astype(np.float32))
    batch = padded_batch(rng, 9, 12)
    batch[4] = batch[8] = -1
    weights = click_weights(click_matrix(batch, N_MOVIES), normalize=True, dropout=0.5,
                            seed_generator=None, training=False)
    np.testing.assert_allclose(layer(weights, equal_in_rows=True), layer(weights), rtol=1e-5, atol=1e-6)


def test_auto_click_input_follows_the_training_clicks_density():
    from hvae_tf.models import build_model

    def clicks(per_user, n_movies=1000):
        rows = np.repeat(np.arange(50), per_user)
        cols = np.concatenate([np.arange(per_user)] * 50)
        return sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(50, n_movies))

    small = dict(hidden_dim=4, latent_dim=2)
    at = math.ceil(DENSE_FROM_DENSITY * 1000)  # clicks per user at the threshold, of 1,000 movies
    assert build_model(1000, train_clicks=clicks(at), **small).first_layer.click_input == "dense"
    assert build_model(1000, train_clicks=clicks(at - 1), **small).first_layer.click_input == "gathered"
    assert build_model(1000, click_input="dense", train_clicks=clicks(at - 1), **small).click_input == "dense"
    assert build_model(1000, **small).click_input == "gathered"
    with pytest.raises(ValueError, match="click_input"):
        ClickDense(10, 3, click_input="auto")
