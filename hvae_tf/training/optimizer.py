"""Adam through TensorFlow's fused kernel: the optimizer train.py uses.

keras' Adam updates a variable with about ten elementwise ops, each a full pass over it. The
[movies x 600] first and last layers make that a third of a Standard-VAE step on a CPU, and more
of an H-VAE approach-1 step, whose first layer is three times larger (`python
bench/bench_train_step.py --breakdown`). ResourceApplyAdam does the same update in one pass.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class FusedAdam(keras.optimizers.Adam):
    """keras' Adam, same formula (epsilon added after the bias-corrected step size), same slot
    variables and checkpoints; sparse gradients and AMSGrad take keras' own path."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
