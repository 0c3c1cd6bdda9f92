"""FusedAdam, the optimizer train.py uses, must train exactly as keras' Adam would."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from hvae_tf.training.optimizer import FusedAdam


def _train(optimizer, start, gradients):
    variables = [keras.Variable(w) for w in start]
    for step in gradients:
        optimizer.apply_gradients(zip(step, variables))
    return [v.numpy() for v in variables]


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "indexed-slices"])
def test_fused_adam_follows_keras_adam_step_after_step(sparse):
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(30, 7)).astype(np.float32), rng.normal(size=(7,)).astype(np.float32)]

    def gradient(shape):
        values = rng.normal(size=shape).astype(np.float32)
        if sparse and len(shape) == 2:  # rows 3 and 11 only, as an embedding lookup's gradient
            return tf.IndexedSlices(tf.constant(values[[3, 11]]), tf.constant([3, 11]), tf.constant(shape))
        return tf.constant(values)

    gradients = [[gradient(w.shape) for w in start] for _ in range(5)]
    keras_adam = _train(keras.optimizers.Adam(0.05), start, gradients)
    fused = _train(FusedAdam(0.05), start, gradients)
    for ours, theirs in zip(fused, keras_adam):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)  # float32 op order; a step is 0.05
    assert not np.allclose(fused[0], start[0])


def test_fused_adam_keeps_keras_adams_slots_so_checkpoints_are_interchangeable():
    variables = [keras.Variable(np.ones((4, 3), np.float32))]
    ours, theirs = FusedAdam(1e-3), keras.optimizers.Adam(1e-3)
    for optimizer in (ours, theirs):
        optimizer.build(variables)
    def slots(optimizer):  # path below the optimizer's own (instance-numbered) name, and shape
        return [(v.path.split("/", 1)[1], tuple(v.shape)) for v in optimizer.variables]

    assert slots(ours) == slots(theirs)
    assert len(slots(ours)) == 4  # iterations, learning rate, momentum, velocity
