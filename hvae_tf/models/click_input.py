"""From padded movie-index batches to the encoder's first hidden layer, without a dense click input.

A batch is int64 [batch, max_len] of movie column indices, -1 = padding (a row may be all -1).
The model turns it into a tf.SparseTensor inside `call`: Keras 3 `fit` cannot feed SparseTensor
batches under MirroredStrategy, but it can feed padded dense ones.

Every first layer here is one sparse matmul, h_u = act(sum_i c_ui K_i + b), over the clicked
movies i only, where c_ui is user u's (normalised, dropped-out) click weight and K_i a row of a
[N, units] "movie kernel":
- standard input (Mult-VAE): K = the kernel itself;
- H-VAE approach 1 (flatten the N x d embedding input to N*d, then Dense): the flattened layer is
  sum_i sum_k c_ui e_ik W[(i, k), :], so K_i = sum_k e_ik W[i, k, :];
- H-VAE approach 2 (a shared Dense(1) collapses each movie's input c_ui e_i to c_ui (e_i . w),
  then Dense): K_i = (e_i . w) W[i, :].
K is formed each step in O(N * d * units); the batch x N x d input (or its flattened batch x N*d
form) is never built. Forming K beats scaling the sparse values per click (approach 2) or
expanding them to N*d columns (approach 1): at ML-20M's batch size and density a batch holds more
clicks than there are movies, and the sparse matmul's gradient for its values gathers a kernel row
per click. `python bench/bench_train_step.py --breakdown` measures both against the naive forms.

Normalisation and dropout act on the click weights c_ui, as Mult-VAE does on x_u: c_ui = x_ui /
||x_u||_2 (1 / sqrt(#clicks)), then inverted dropout on the clicks. For the H-VAE the embedding
input is therefore c_ui e_i: a dropped click removes the movie's whole embedding.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def click_matrix(indices, n_movies: int) -> tf.SparseTensor:
    """The [batch, n_movies] click matrix (values 1.0) of padded movie-index lists; -1 is padding.

    Entries keep the list order inside a row (not tf.sparse's canonical order, which nothing
    here needs). Each movie is expected at most once per list.
    """
    indices = tf.cast(indices, tf.int64)
    positions = tf.where(indices >= 0)  # [clicks, 2]: (row, slot)
    movies = tf.gather_nd(indices, positions)
    check = tf.debugging.assert_less(
        movies,
        tf.constant(n_movies, tf.int64),
        message=f"a movie index in the input batch is >= n_movies ({n_movies}): the batches and "
        "the model must use the same movie index (use -1, not another value, for padding)",
    )
    with tf.control_dependencies([check]):
        sparse_indices = tf.stack([positions[:, 0], movies], axis=1)
    dense_shape = tf.stack([tf.shape(indices, out_type=tf.int64)[0], tf.constant(n_movies, tf.int64)])
    return tf.SparseTensor(sparse_indices, tf.ones_like(movies, tf.float32), dense_shape)


def click_weights(
    clicks: tf.SparseTensor,
    *,
    normalize: bool,
    dropout: float,
    seed_generator: keras.random.SeedGenerator | None,
    training: bool,
) -> tf.SparseTensor:
    """The encoder's input weights: L2-normalised per user, then inverted dropout in training.

    Mult-VAE normalises before dropping out, so the kept clicks of a user weigh
    1 / ((1 - rate) sqrt(#clicks)) each; dropped ones stay as explicit zeros.
    """
    values = clicks.values
    if normalize:
        rows = clicks.indices[:, 0]
        squares = tf.math.unsorted_segment_sum(tf.square(values), rows, num_segments=clicks.dense_shape[0])
        values = values * tf.gather(tf.math.rsqrt(tf.maximum(squares, 1e-12)), rows)
    if training and dropout > 0.0:
        keep = keras.random.uniform(tf.shape(values), seed=seed_generator) >= dropout
        values = tf.where(keep, values / (1.0 - dropout), tf.zeros_like(values))
    return tf.SparseTensor(clicks.indices, values, clicks.dense_shape)


class ClickDense(keras.layers.Layer):
    """Mult-VAE's first encoder layer on a sparse click-weight matrix: act(x W + b)."""

    def __init__(self, n_movies: int, units: int, activation="tanh", seed: int | None = None,
                 click_input: str = "gathered", **kwargs):
        super().__init__(**kwargs)
        if click_input not in CLICK_PRODUCTS:
            raise ValueError(f"click_input must be one of {', '.join(CLICK_PRODUCTS)}, got {click_input!r} "
                             "(build_model resolves 'auto' from the training data)")
        self.click_input = click_input
        self.n_movies = int(n_movies)
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.seed = seed

    def build(self, input_shape=None):
        self.kernel = self.add_weight(
            shape=self._kernel_shape(),
            initializer=keras.initializers.GlorotUniform(seed=self.seed),
            name="kernel",
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def _kernel_shape(self) -> tuple[int, ...]:
        return (self.n_movies, self.units)

    def movie_kernel(self, training: bool = False) -> tf.Tensor:
        """K [n_movies, units]: row i is what one unit of movie i's click weight adds to the layer.
        `training`: K may be formed by XLA, which the exported serving graph must not need."""
        return self.kernel

    def call(self, weights: tf.SparseTensor, equal_in_rows: bool = False, training: bool = False) -> tf.Tensor:
        """`equal_in_rows`: a user's non-zero click weights are all equal (binary clicks stay so
        when normalised, dropped out or masked), which lets the gathered product sum kernel rows
        without weighting each one."""
        product = clicks_times(weights, self.movie_kernel(bool(training)), self.click_input, equal_in_rows)
        return self.activation(product + self.bias)


# The two ways of multiplying a batch's clicks, both faster on a CPU than
# tf.sparse.sparse_dense_matmul (`python bench/bench_train_step.py --breakdown` times them).
CLICK_PRODUCTS = ("dense", "gathered")
# From this share of the movies clicked per user on, the dense matmul is taken. Where the two cross
# depends on the matmul's speed: near 20% on a 2-core AVX2 CPU, lower where matmuls are several
# times faster (AMX); ML-20M's users click 0.4% of the movies, ml-1m's 2.7%, ML-100k's 3.5%
# (`python bench/bench_train_step.py --movies 3502 --breakdown` sweeps the density).
DENSE_FROM_DENSITY = 0.05


def clicks_times(weights: tf.SparseTensor, kernel: tf.Tensor, how: str = "gathered",
                 equal_in_rows: bool = False) -> tf.Tensor:
    """weights [batch, n] @ kernel [n, units].

    "gathered" sums one kernel row per click per user (the rows of click_matrix come in order),
    so its cost follows the clicks and its gradient reaches only the clicked rows; "dense"
    scatters the batch into [batch, n] and multiplies, which wins once users click many of the
    movies. Fixed per model rather than chosen per batch, so that a batch split over replicas is
    computed the same way as the whole batch.
    """
    if how == "dense":
        return tf.matmul(tf.scatter_nd(weights.indices, weights.values, weights.dense_shape), kernel)
    users = tf.cast(weights.dense_shape[0], tf.int32)
    if equal_in_rows:
        # Unweighted sums of kernel rows over the non-zero clicks, then a scale per user: no
        # [clicks, units] array either way, and a dropped click costs nothing.
        kept = tf.not_equal(weights.values, 0.0)
        indices, values = tf.boolean_mask(weights.indices, kept), tf.boolean_mask(weights.values, kept)
        scale = tf.maximum(tf.math.unsorted_segment_max(values, indices[:, 0], users), 0.0)  # none: 0
        return _row_sums(tf.convert_to_tensor(kernel), indices[:, 1], indices[:, 0], users) * scale[:, None]
    rows = weights.indices[:, 0]
    summed = tf.math.segment_sum(tf.gather(kernel, weights.indices[:, 1]) * weights.values[:, None], rows)
    # Users after the last one with a click have no segment: their rows are zero.
    return tf.pad(summed, [[0, users - tf.shape(summed)[0]], [0, 0]])


def _row_sums(kernel: tf.Tensor, movies: tf.Tensor, users: tf.Tensor, n_users) -> tf.Tensor:
    """out[u] = sum of kernel[movies[j]] over the clicks j of user u (`users` sorted).

    Forward and backward are each one fused gather-and-sum (the backward sums upstream rows per
    movie, the clicks sorted by movie), where TensorFlow's own gradient would gather an upstream
    row per click and scatter them back; the gradient is one dense [n, units] matrix, which the
    fused Adam update takes as is."""

    @tf.custom_gradient
    def summed(kernel):
        def gradient(upstream):
            order = tf.argsort(tf.cast(movies, tf.int32), stable=True)
            return tf.sparse.segment_sum(upstream, tf.gather(users, order), tf.gather(movies, order),
                                         num_segments=tf.shape(kernel, out_type=movies.dtype)[0])

        return tf.sparse.segment_sum(kernel, movies, users, num_segments=n_users), gradient

    return summed(kernel)


class _EmbeddingClickDense(ClickDense):
    """A first layer whose input is each clicked movie's embedding instead of a 1 (the H-VAE)."""

    def __init__(self, movie_embeddings, units: int, trainable_embeddings: bool = False, **kwargs):
        embeddings = np.asarray(movie_embeddings, dtype=np.float32)
        super().__init__(n_movies=embeddings.shape[0], units=units, **kwargs)
        self._initial_embeddings = embeddings
        self.embedding_dim = embeddings.shape[1]
        self.trainable_embeddings = bool(trainable_embeddings)

    def build(self, input_shape=None):
        initial = self._initial_embeddings
        self.movie_embeddings = self.add_weight(
            shape=initial.shape,
            initializer=lambda shape, dtype=None: tf.constant(initial, dtype=dtype or tf.float32),
            trainable=self.trainable_embeddings,
            name="movie_embeddings",
        )
        super().build(input_shape)


class FlattenedEmbeddingDense(_EmbeddingClickDense):
    """H-VAE approach 1: Dense over the flattened N*d input, as K_i = sum_k e_ik W[i, k, :].

    The kernel is stored as the flattened layer's [N*d, units] matrix (row i*d + k), so its
    initialisation and meaning are those of the naive Dense.
    """

    def _kernel_shape(self) -> tuple[int, ...]:
        return (self.n_movies * self.embedding_dim, self.units)

    def movie_kernel(self, training: bool = False) -> tf.Tensor:
        per_dim = tf.reshape(self.kernel, (self.n_movies, self.embedding_dim, self.units))
        if training:
            return _compiled_weighted_sum(per_dim, tf.convert_to_tensor(self.movie_embeddings))
        return _weighted_sum(per_dim, self.movie_embeddings)


def _weighted_sum(per_dim: tf.Tensor, embeddings: tf.Tensor) -> tf.Tensor:
    """K_i = sum_k e_ik W[i, k, :]: a broadcast product and sum, not tf.einsum("nk,nku->nu"),
    which lowers to N tiny batched matmuls, slower fwd+bwd on CPU."""
    return tf.reduce_sum(per_dim * embeddings[:, :, None], axis=1)


_xla_weighted_sum = tf.function(_weighted_sum, jit_compile=True)


@tf.function(jit_compile=True)
def _xla_kernel_gradient(upstream, embeddings):
    return upstream[:, None, :] * embeddings[:, :, None]


@tf.function(jit_compile=True)
def _xla_embeddings_gradient(upstream, per_dim):
    return tf.reduce_sum(upstream[:, None, :] * per_dim, axis=2)


@tf.custom_gradient
def _compiled_weighted_sum(per_dim, embeddings):
    """_weighted_sum, forward and backward each one XLA loop over the [N, d, units] kernel: TensorFlow
    alone writes the [N, d, units] product before summing it, and its gradient takes two such
    passes (`python bench/bench_train_step.py --breakdown` times both). The two gradients are
    separate calls, so that frozen embeddings cost nothing."""

    def gradient(upstream):  # IndexedSlices from a gathered product: the kernel's gradient is dense anyway
        upstream = tf.convert_to_tensor(upstream)
        return _xla_kernel_gradient(upstream, embeddings), _xla_embeddings_gradient(upstream, per_dim)

    return _xla_weighted_sum(per_dim, embeddings), gradient


class CollapsedEmbeddingDense(_EmbeddingClickDense):
    """H-VAE approach 2: a shared Dense(1) maps each movie's d-vector to one value, then Dense.

    The collapse has no bias: on the naive N x d input it would add b to every unclicked movie
    too, i.e. the constant b * sum_i W_i, which this layer's own bias already covers.
    """

    def build(self, input_shape=None):
        super().build(input_shape)
        self.collapse_kernel = self.add_weight(
            shape=(self.embedding_dim, 1),
            initializer=keras.initializers.GlorotUniform(seed=None if self.seed is None else self.seed + 1),
            name="collapse_kernel",
        )

    def movie_kernel(self, training: bool = False) -> tf.Tensor:
        return tf.matmul(self.movie_embeddings, self.collapse_kernel) * self.kernel
