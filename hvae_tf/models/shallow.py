"""VASP's shallow path (Vancura & Kordik 2021): a linear item-item layer, "neural EASE".

b_u = x_u W with W [n_movies, n_movies] and a zero diagonal, so that a movie never predicts
itself (EASE's constraint, which stops the path from learning the identity). The diagonal is kept
at zero by starting it at zero and zeroing its gradient (then Adam never moves it): masking W, or
subtracting x_u * diag(W), would make the gradient of the diagonal a second dense n_movies^2
matrix every step. W is n_movies^2 floats, three times over with Adam's two slots, plus its
gradient: bench/README.md gives the memory at ML-20M's catalogue sizes.

A start from EASE is only kept if training does not wash it out: Adam moves every weight by about
the learning rate each step, while EASE's weights are of order 1e-2, so a few dozen steps would
replace them with noise. `speed` slows the path: W = speed * V with V the variable, so each step
moves W by about speed * lr (Adam's step does not depend on the gradient's scale).

`frozen` keeps the start as it is: W is not trained (no gradient, no optimizer slots), for a
path whose logits are added to a VAE that trains alone.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from hvae_tf.models.click_input import clicks_times


@tf.custom_gradient
def _without_diagonal_gradient(kernel):
    """The kernel as is; its (dense) gradient with the diagonal set to zero."""
    return tf.identity(kernel), lambda upstream: tf.linalg.set_diag(upstream, tf.zeros_like(upstream[0]))


class ShallowPath(keras.layers.Layer):
    """x_u W (zero diagonal) + b over the raw click row; started from `initial` W and `bias`
    (e.g. EASE's weights, calibrated as logits) or zeros."""

    def __init__(self, n_movies: int, initial=None, bias: float = 0.0, speed: float = 1.0,
                 frozen: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.n_movies, self.frozen = int(n_movies), bool(frozen)
        self.speed, self._initial_bias = float(speed), float(bias)
        if initial is not None:
            initial = np.asarray(initial, dtype=np.float32)
            if initial.shape != (self.n_movies, self.n_movies):
                raise ValueError(f"the shallow path's initial weights must be [{self.n_movies}, "
                                 f"{self.n_movies}] (movies x movies), got {initial.shape}")
            if not np.isfinite(initial).all():
                raise ValueError("the shallow path's initial weights have non-finite values")
            initial = initial.copy()
            np.fill_diagonal(initial, 0.0)
        self._initial = initial

    def build(self, input_shape=None):
        initial = self._initial
        init = "zeros" if initial is None else keras.initializers.Constant(initial / self.speed)
        self.kernel = self.add_weight(shape=(self.n_movies, self.n_movies), initializer=init, name="kernel",
                                      trainable=not self.frozen)
        self.bias = self.add_weight(shape=(), initializer=keras.initializers.Constant(self._initial_bias),
                                    name="bias", trainable=not self.frozen)
        self._initial = None  # the weight holds it now
        self.built = True

    def squared_norm(self) -> tf.Tensor:
        """||W||^2, for the path's L2 penalty."""
        return self.speed ** 2 * tf.reduce_sum(tf.square(self.kernel))

    def call(self, clicks: tf.SparseTensor) -> tf.Tensor:
        kernel = tf.convert_to_tensor(self.kernel)
        if not self.frozen:
            kernel = _without_diagonal_gradient(kernel)
        # Always the dense product: its gradient is one n_movies^2 matrix that the fused Adam
        # update consumes in place. Gathering a kernel row per click would give a gradient row
        # per click (ML-20M: ~35,000 a batch, 2.8 GB) that Adam's sparse update densifies again.
        return self.speed * clicks_times(clicks, kernel, "dense") + self.bias
