"""The training loop every VAE here shares: negative ELBO per example, mean over the global batch.

In the manner of TensorFlow Recommenders' `Model.compute_loss`, a subclass says only how to
compute its per-example losses; `train_step`, `test_step`, the loss trackers and `get_config`
are written once, for the Standard-VAE, the Hybrid-VAE and the Movie-VAE alike.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class VariationalAutoencoder(keras.Model):
    """Subclasses implement `compute_losses` and call `remember_settings(locals())` first thing
    in `__init__` (after `super().__init__`), so that `get_config` lists every constructor argument.

    loss = sum over the examples of (reconstruction + beta * KL) / examples in the global batch,
    plus `penalty()` once (not logged). Logged: loss, reconstruction_loss, kl_loss, kl_weight
    (the mean beta), each of shape [1]: Keras 3's fit under MultiWorkerMirroredStrategy reduces
    logs along axis 0.
    """

    anneals = True  # False: beta is always 1, and kl_weight is not logged

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.settings: dict = {}
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self.kl_weight_tracker = keras.metrics.Mean(name="kl_weight")

    def remember_settings(self, arguments: dict) -> None:
        """Keep the constructor's arguments (its `locals()`) for `get_config`."""
        self.settings = {k: v for k, v in arguments.items()
                         if k not in ("self", "kwargs", "__class__")}

    def compute_losses(self, inputs, training: bool):
        """(reconstruction loss [batch], KL term [batch], KL weight beta) for a batch of inputs."""
        raise NotImplementedError

    def penalty(self):
        """A term added to the training loss once per step (e.g. weight decay), or None."""
        return None

    def after_update(self) -> None:
        """Called after each optimizer update (e.g. to count annealing steps)."""

    @property
    def metrics(self):
        trackers = [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]
        return trackers + [self.kl_weight_tracker] if self.anneals else trackers

    def _update_trackers(self, reconstruction, kl, beta):
        self.loss_tracker.update_state(reconstruction + beta * kl)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        self.kl_weight_tracker.update_state(beta)
        return {m.name: tf.reshape(m.result(), [1]) for m in self.metrics}

    def update(self, inputs, variables, denoise: bool | None = None):
        """One optimizer update of `variables` on a batch; returns its (reconstruction, kl, beta)."""
        # Divide by the examples of the global batch: the optimizer sums gradients over replicas,
        # so the update is the mean over all examples, even when replicas get unequal shares.
        context = tf.distribute.get_replica_context()
        local = tf.cast(tf.shape(inputs)[0], tf.float32)
        global_examples = context.all_reduce(tf.distribute.ReduceOp.SUM, local)
        with tf.GradientTape() as tape:
            losses = self.compute_losses(inputs, training=True, **(
                {} if denoise is None else {"denoise": denoise}))
            reconstruction, kl, beta = losses
            loss = tf.reduce_sum(reconstruction + beta * kl) / tf.maximum(global_examples, 1.0)
            penalty = self.penalty()
            if penalty is not None:
                # Each replica adds its share: the summed gradient carries the penalty once.
                loss += penalty / context.num_replicas_in_sync
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return losses

    def train_step(self, data):
        inputs, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        losses = self.update(inputs, self.trainable_weights)
        self.after_update()
        return self._update_trackers(*losses)

    def test_step(self, data):
        inputs, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._update_trackers(*self.compute_losses(inputs, training=False))

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self.settings}
