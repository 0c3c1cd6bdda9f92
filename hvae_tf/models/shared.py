"""The sharing hybrid (beyond the paper): what a movie's features say is shared by all movies.

In the H-VAE's approaches 1 and 2 a movie's encoder kernel row and decoder row are free weights of
that movie alone, so its features cannot tell the model anything about another movie, and a movie
nobody clicked has nothing to go on. Here each movie i gets a vector e_i = act(f_i P + p) from its
content f_i (a feature row or its Movie-VAE means) by weights shared by every movie, and
    encoder kernel row   K_i = k_i + e_i A
    decoder row          D_i = d_i + e_i B,   decoder bias   c_i + e_i . a
where k_i, d_i, c_i are the movie's own free part (L2 `free_l2`). A new movie (no training clicks)
has no free part: its features alone place it in the encoder's input and the decoder's output.
Trained jointly, the free parts can explain every click the shared part could have, which leaves
the shared part little to learn; `free_dropout` makes a random share of the movies new for each
step (DropoutNet's input dropout, Volkovs et al., NeurIPS 2017), so the shared part must place
them alone, as it will have to for a new movie. `shared_speed` moves the shared weights (P, p, A,
B, a) faster than the free parts: stored as V with W = speed * V, so each Adam step moves W by
about speed * lr. Meant for a shared part that keeps placing new movies better long after the
free parts are at their best; on ML-1M a speed of 3 did not place them better (default 1).

With VASP's shallow path, a movie without a free part (new, or training as new) has no item-item
evidence there: no training click leads to it, so its shallow logit is the path's bias, the same
for every such movie. `content_similarity` S (content kNN's: each movie's nearest neighbours by
the cosine of its content) gives it the evidence content kNN would, w log(1 + x_u S) + c with w
and c shared by every movie: the shallow path then places a new movie by the user's movies that
resemble it, and the VAE's part by what the shared weights learned. Movies with their free part
keep VASP's item-item evidence as it is.

Per step this costs E = act(F P + p) once per use (N x D x s), the encoder's (C E) A (batch x s x
hidden) beside its usual sparse product, and the decoder's (h B) E^T (batch x s x N) beside its
batch x hidden x N product: never a batch x N x s tensor. The content path's x_u S adds up the
neighbour rows of a batch's clicks: clicks x neighbours additions.
"""

from __future__ import annotations

import keras
import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from hvae_tf.config import check_setting
from hvae_tf.models.click_input import ClickDense, clicks_times
from hvae_tf.models.vae import StandardVAE, _seed


def _mask_or_none(mask):
    """The 0/1 free-part mask as a constant, or None when every movie has its free part."""
    mask = np.asarray(mask, np.float32)
    return None if mask.all() else tf.constant(mask)


class FreeDropout:
    """Which movies train as new ones in a step: each with probability `rate`, drawn from (seed,
    step), so that every part of the model agrees on them within the step, every replica draws the
    same movies, and a resumed run draws what the uninterrupted one would have."""

    def __init__(self, rate: float, seed: int | None, step: callable):
        self.rate, self.step = float(rate), step
        self.seed = int(np.random.default_rng().integers(2**31) if seed is None else seed)

    def keep(self, free_mask, n_movies: int, training: bool):
        """`free_mask` (None: every movie has its free part) with this step's dropped movies at 0
        in training; as it is otherwise."""
        if not training or self.rate == 0.0:
            return free_mask
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(self.step(), tf.int64)])
        keep = tf.cast(tf.random.stateless_uniform((n_movies,), seed=seed) >= self.rate, tf.float32)
        return keep if free_mask is None else keep * free_mask


NO_FREE_DROPOUT = FreeDropout(0.0, 0, step=lambda: 0)


def _constant(values):
    return lambda shape, dtype=None: tf.constant(values, dtype=dtype or tf.float32)


def _add_sparse_constant(layer: keras.layers.Layer, matrix: sp.spmatrix, name: str):
    """A fixed sparse matrix as two non-trainable weights (its row-major indices and its values),
    so that it is saved with the model and a SavedModel serves it."""
    coo = matrix.tocsr().tocoo()  # row-major, as a SparseTensor needs its indices
    indices = np.stack([coo.row, coo.col], axis=1).astype(np.int64)
    return (layer.add_weight(shape=indices.shape, dtype="int64", trainable=False,
                             initializer=_constant(indices), name=f"{name}_indices"),
            layer.add_weight(shape=coo.data.shape, trainable=False, name=f"{name}_values",
                             initializer=_constant(coo.data.astype(np.float32))))


def _sparse_placeholder(shape: tuple[int, int], nonzeros: int) -> sp.csr_matrix:
    """A sparse matrix of `shape` with `nonzeros` stored ones: what from_config builds a saved
    sparse constant as, before loading fills it."""
    rows, cols = np.divmod(np.arange(nonzeros), shape[1])
    return sp.csr_matrix((np.ones(nonzeros, np.float32), (rows, cols)), shape=shape)


def _glorot_over(speed: float, seed: int | None):
    """Glorot-uniform divided by `speed`: the start of V with W = speed * V at Glorot's scale."""
    glorot = keras.initializers.GlorotUniform(seed)
    return lambda shape, dtype=None: glorot(shape, dtype) / speed


class MovieVectors(keras.layers.Layer):
    """e = act(F P + p) [n_movies, dim]: every movie's vector from its content, by shared weights.

    Content with at most `SPARSE_BELOW` of its entries nonzero (multi-hot credits: a few people
    among thousands) is kept as its nonzeros and multiplied sparsely: at 20k movies x 8k columns
    the dense F P would cost more than the rest of a step, twice (encoder and decoder)."""

    SPARSE_BELOW = 0.01

    def __init__(self, content, dim: int, activation="tanh", seed: int | None = None,
                 speed: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not sp.issparse(content):
            content = np.asarray(content, np.float32)
            if np.count_nonzero(content) <= self.SPARSE_BELOW * content.size:
                content = sp.csr_matrix(content)
        self._initial_content = content
        self.sparse, self.content_shape = sp.issparse(content), tuple(int(n) for n in content.shape)
        self.dim, self.speed = int(dim), float(speed)
        self.activation = keras.activations.get(activation)
        self.seed = seed

    @property
    def nonzeros(self) -> int | None:
        """The content's stored entries when it is kept sparse, else None."""
        return int(self.content_values.shape[0]) if self.sparse else None

    def build(self, input_shape=None):
        initial = self._initial_content
        if self.sparse:
            self.content_indices, self.content_values = _add_sparse_constant(self, initial, "content")
        else:
            self.content = self.add_weight(shape=initial.shape, initializer=_constant(initial),
                                           trainable=False, name="content")
        self.projection = self.add_weight(
            shape=(self.content_shape[1], self.dim), initializer=_glorot_over(self.speed, self.seed),
            name="projection_kernel")
        self.projection_bias = self.add_weight(shape=(self.dim,), initializer="zeros",
                                               name="projection_bias")

    def content_matrix(self):
        """F: a SparseTensor when kept sparse, else the dense weight."""
        if not self.sparse:
            return self.content
        return tf.SparseTensor(tf.convert_to_tensor(self.content_indices),
                               tf.convert_to_tensor(self.content_values), self.content_shape)

    def vectors(self) -> tf.Tensor:
        """Computed on each use, so the gradient reaches the shared weights (not a Keras call:
        the layer has no input)."""
        content = self.content_matrix()
        product = (tf.sparse.sparse_dense_matmul(content, self.projection) if self.sparse
                   else tf.matmul(content, self.projection))
        return self.activation(self.speed * (product + self.projection_bias))


class SharedClickDense(ClickDense):
    """The first layer: act(sum_i c_ui (k_i + e_i A) + b), k_i zero for new movies."""

    def __init__(self, content, shared_dim: int, free_mask, free_dropout: FreeDropout = NO_FREE_DROPOUT,
                 speed: float = 1.0, **kwargs):
        super().__init__(n_movies=len(free_mask), **kwargs)
        self.free_mask = _mask_or_none(free_mask)
        self.free_dropout, self.speed = free_dropout, float(speed)
        self.movie_vectors = MovieVectors(content, shared_dim, activation=self.activation,
                                          seed=_seed(self.seed, 100), speed=speed, name="movie_vectors")
        self.shared_dim = int(shared_dim)

    def build(self, input_shape=None):
        super().build(input_shape)
        self.movie_vectors.build()
        self.shared_kernel = self.add_weight(
            shape=(self.shared_dim, self.units), initializer=_glorot_over(self.speed, _seed(self.seed, 101)),
            name="shared_kernel")

    def call(self, weights: tf.SparseTensor, equal_in_rows: bool = False, training: bool = False) -> tf.Tensor:
        free_weights, mask = weights, self.free_dropout.keep(self.free_mask, self.n_movies, training)
        if mask is not None:  # a new movie's click reaches only the shared part
            free_weights = tf.SparseTensor(weights.indices, weights.values * tf.gather(mask, weights.indices[:, 1]),
                                           weights.dense_shape)
        free = clicks_times(free_weights, self.kernel, self.click_input, equal_in_rows)
        content = clicks_times(weights, self.movie_vectors.vectors(), "gathered", equal_in_rows)  # [batch, shared_dim]
        return self.activation(free + self.speed * tf.matmul(content, self.shared_kernel) + self.bias)


class SharedDecoderOutput(keras.layers.Layer):
    """Logits h (d_i + e_i B) + c_i + e_i . a, with d_i, c_i zero for new movies."""

    def __init__(self, movie_vectors: callable, free_mask, shared_dim: int, seed: int | None = None,
                 free_dropout: FreeDropout = NO_FREE_DROPOUT, speed: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self._movie_vectors = movie_vectors  # a function, so the encoder's layer is not tracked twice
        self.free_mask = _mask_or_none(free_mask)
        self.n_movies, self.shared_dim, self.seed = len(free_mask), int(shared_dim), seed
        self.free_dropout, self.speed = free_dropout, float(speed)

    def build(self, input_shape):
        units = input_shape[-1]
        self.kernel = self.add_weight(shape=(units, self.n_movies),
                                      initializer=keras.initializers.GlorotUniform(self.seed), name="kernel")
        self.bias = self.add_weight(shape=(self.n_movies,), initializer="zeros", name="bias")
        self.shared_kernel = self.add_weight(
            shape=(units, self.shared_dim), initializer=_glorot_over(self.speed, _seed(self.seed, 1)),
            name="shared_kernel")
        self.shared_bias = self.add_weight(shape=(self.shared_dim,), initializer="zeros",
                                           name="shared_bias")

    def call(self, h, training: bool = False):
        vectors = self._movie_vectors()  # [n_movies, shared_dim]
        free = tf.matmul(h, self.kernel) + self.bias
        mask = self.free_dropout.keep(self.free_mask, self.n_movies, training)
        if mask is not None:
            free *= mask
        shared = tf.matmul(tf.matmul(h, self.shared_kernel), vectors, transpose_b=True)
        return free + self.speed * shared + self.speed * tf.linalg.matvec(vectors, self.shared_bias)


class ContentPath(keras.layers.Layer):
    """The shallow logit of a movie without a free part: w log(1 + x_u S) + c (module docstring).

    x_u S is content kNN's score; the log keeps a heavy user's sum of hundreds of similarities on
    the scale of a light user's. w starts at 1 and c at the shallow path's bias, so before any
    training the path ranks such movies for a user as content kNN does."""

    def __init__(self, similarity: sp.spmatrix, bias: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        similarity = sp.csr_matrix(similarity, dtype=np.float32)
        if similarity.shape[0] != similarity.shape[1] or not np.isfinite(similarity.data).all():
            raise ValueError(f"content_similarity must be a finite [n_movies, n_movies] matrix, got "
                             f"shape {similarity.shape}")
        self._initial_similarity, self._initial_bias = similarity, float(bias)
        self.n_movies, self.nonzeros = similarity.shape[0], similarity.nnz

    def build(self, input_shape=None):
        self.similarity_indices, self.similarity_values = _add_sparse_constant(
            self, self._initial_similarity, "similarity")
        # Where each movie's neighbours start in them: fixed, so kept rather than counted each step.
        splits = self._initial_similarity.indptr.astype(np.int64)
        self.similarity_row_splits = self.add_weight(shape=splits.shape, dtype="int64", trainable=False,
                                                     initializer=_constant(splits), name="similarity_row_splits")
        self.weight = self.add_weight(shape=(), initializer="ones", name="weight")
        self.bias = self.add_weight(shape=(), initializer=keras.initializers.Constant(self._initial_bias),
                                    name="bias")
        self._initial_similarity = None  # the weights hold it now
        self.built = True

    def call(self, clicks: tf.SparseTensor) -> tf.Tensor:
        # x_u S as a sum over the user's clicks of their movies' neighbour rows: clicks x
        # neighbours additions. A sparse-times-dense product would cost (N x neighbours) x batch
        # over the mostly zero click rows (at 20,108 movies, 200 neighbours: 2e9 a batch of 500).
        entries = tf.convert_to_tensor(self.similarity_indices)  # row-major (movie, neighbour)
        splits, movies = tf.convert_to_tensor(self.similarity_row_splits), clicks.indices[:, 1]
        positions = tf.ragged.range(tf.gather(splits, movies), tf.gather(splits, movies + 1))  # [clicks, (neighbours)]
        click = positions.value_rowids()
        users = tf.gather(clicks.indices[:, 0], click)
        columns = tf.gather(entries[:, 1], positions.flat_values)
        weights = tf.gather(clicks.values, click) * tf.gather(tf.convert_to_tensor(self.similarity_values),
                                                              positions.flat_values)
        knn = tf.scatter_nd(tf.stack([users, columns], axis=1), weights, clicks.dense_shape)
        return self.weight * tf.math.log1p(knn) + self.bias


@keras.saving.register_keras_serializable(package="hvae_tf")
class SharedHybridVAE(StandardVAE):
    """The Standard-VAE with sharing movie rows (module docstring) over `content` [n_movies, D]:
    a feature matrix (standardised) or Movie-VAE means, or random vectors for the control.
    `shared_dim`: the size of the movie vectors e_i; `free_l2`: the L2 weight on the free parts
    (the decoder's free bias included, so that the shared bias e_i . a carries the common level a
    new movie's score starts from); `free_dropout`: the share of the movies that train as new
    ones in each step; `shared_speed`: how much faster than the learning rate the shared weights
    move; `content_similarity` [n_movies, n_movies], sparse: the shallow path's content evidence
    for movies without a free part (needs the shallow path)."""

    places_new_movies = True

    def __init__(self, content, shared_dim: int = 32, free_l2: float = 0.0, free_dropout: float = 0.0,
                 shared_speed: float = 1.0, content_similarity=None, **kwargs):
        content = content.tocsr().astype(np.float32) if sp.issparse(content) else np.asarray(content, np.float32)
        entries = content.data if sp.issparse(content) else content
        if content.ndim != 2 or content.shape[1] < 1 or not np.isfinite(entries).all():
            raise ValueError(f"content must be a finite [n_movies, D] matrix, got shape {content.shape}")
        n_movies = kwargs.pop("n_movies", content.shape[0])
        if n_movies != content.shape[0]:
            raise ValueError(f"n_movies={n_movies} but content has {content.shape[0]} rows: align the "
                             "features to the protocol's movie index")
        check_setting("shared_dim", shared_dim)
        check_setting("free_l2", free_l2)
        check_setting("free_dropout", free_dropout)
        check_setting("shared_speed", shared_speed)
        self._init_content = content  # read by the hooks StandardVAE.__init__ calls
        self.shared_dim, self.free_l2, self.shared_speed = int(shared_dim), float(free_l2), float(shared_speed)
        # Read by the layers only in a step, once anneal_step (the update count) exists.
        self.dropped_movies = FreeDropout(free_dropout, _seed(kwargs.get("seed"), 102),
                                          step=lambda: self.anneal_step)
        if content_similarity is not None and kwargs.get("shallow", "none") in ("none", "frozen"):
            raise ValueError("content_similarity feeds VASP's trained shallow path, which is off or frozen: "
                             "use a recipe with it (--recipe vasp or vasp-edlae) or --shallow ease")
        super().__init__(n_movies=n_movies, **kwargs)
        del self._init_content
        self.content_path = None
        if content_similarity is not None:
            if content_similarity.shape != (n_movies, n_movies):
                raise ValueError(f"content_similarity must be [{n_movies}, {n_movies}] (movies x movies), "
                                 f"got {content_similarity.shape}")
            self.content_path = ContentPath(content_similarity, bias=kwargs.get("shallow_bias", 0.0),
                                            name="content_path")
            self.content_path.build()

    def _free_mask(self) -> np.ndarray:
        mask = np.ones(self.n_movies, np.float32)
        mask[list(self.new_movies)] = 0.0
        return mask

    def _make_first_layer(self, seed, activation, name) -> ClickDense:
        return SharedClickDense(self._init_content, self.shared_dim, self._free_mask(),
                                free_dropout=self.dropped_movies, speed=self.shared_speed,
                                units=self.hidden_dim, activation=activation, seed=seed,
                                click_input=self.click_input, name=name)

    def _make_decoder_output(self, seed):
        return SharedDecoderOutput(lambda: self.first_layer.movie_vectors.vectors(), self._free_mask(),
                                   self.shared_dim, seed=seed, free_dropout=self.dropped_movies,
                                   speed=self.shared_speed, name="decoder_output")

    def _shallow_logits(self, clicks: tf.SparseTensor, training: bool = False) -> tf.Tensor:
        """A movie training as new gets what a new one gets from the shallow path: its bias alone
        (nobody's clicks lead to a movie without training clicks), or the content path's evidence."""
        logits = super()._shallow_logits(clicks, training)
        if self.content_path is None:
            keep = self.dropped_movies.keep(None, self.n_movies, training)
            return logits if keep is None else keep * logits + (1.0 - keep) * self.shallow_path.bias
        keep = self.dropped_movies.keep(self.first_layer.free_mask, self.n_movies, training)
        return logits if keep is None else keep * logits + (1.0 - keep) * self.content_path(clicks)

    @property
    def ranks_new_movies_apart(self) -> bool:
        """With the content path new movies' shallow logits differ, so `scores` ranks them."""
        return super().ranks_new_movies_apart and self.content_path is None

    def weight_penalty(self) -> tf.Tensor:
        """As on every kernel, on the shared ones' W = speed * V, not on the stored V."""
        penalty = super().weight_penalty()
        if self.shared_speed == 1.0:
            return penalty
        shared = [self.first_layer.movie_vectors.projection, self.first_layer.shared_kernel,
                  self.decoder_output.shared_kernel]
        return penalty + (self.shared_speed ** 2 - 1.0) * tf.add_n([tf.reduce_sum(tf.square(v)) for v in shared])

    def penalty(self):
        terms = [super().penalty()]
        if self.free_l2 > 0.0:
            free = [self.first_layer.kernel, self.decoder_output.kernel, self.decoder_output.bias]
            terms.append(self.free_l2 * tf.add_n([tf.reduce_sum(tf.square(w)) for w in free]))
        terms = [t for t in terms if t is not None]
        return tf.add_n(terms) if terms else None

    @property
    def movie_embeddings(self):
        """The content the movie vectors are computed from [n_movies, D], dense."""
        content = self.first_layer.movie_vectors.content_matrix()
        return tf.sparse.to_dense(content) if isinstance(content, tf.SparseTensor) else content

    def get_config(self):
        vectors = self.first_layer.movie_vectors
        return {**super().get_config(), "shared_dim": self.shared_dim, "free_l2": self.free_l2,
                "free_dropout": self.dropped_movies.rate, "shared_speed": self.shared_speed,
                "content_dim": vectors.content_shape[1], "content_nonzeros": vectors.nonzeros,
                "similarity_nonzeros": None if self.content_path is None else self.content_path.nonzeros}

    @classmethod
    def from_config(cls, config):
        """The content is a weight: start from a placeholder of the saved shape (and, kept sparse,
        of as many stored entries); loading fills it."""
        config = dict(config)
        shape = (config.pop("n_movies"), config.pop("content_dim"))
        nonzeros, similarity = config.pop("content_nonzeros", None), config.pop("similarity_nonzeros", None)
        if similarity is not None:
            config["content_similarity"] = _sparse_placeholder((shape[0], shape[0]), similarity)
        # ones, not zeros: all-zero content would be kept sparse
        content = np.ones(shape, np.float32) if nonzeros is None else _sparse_placeholder(shape, nonzeros)
        return cls(content=content, **config)
