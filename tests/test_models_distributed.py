"""MirroredStrategy over 2 logical CPU devices trains like one device.

Logical devices must be configured before TensorFlow initialises its devices, so the check runs
in a fresh process. Dropout and latent noise are off there: replicas draw their own noise, so
with them on the runs differ by design, not by a bug.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
import numpy as np
from hvae_tf.models import HybridVAE

N_MOVIES = 50
rng = np.random.default_rng(0)
users = np.full((43, 7), -1, np.int64)  # 43 users, batch 8: the last batch leaves one replica 1 user
for row in range(len(users)):
    k = rng.integers(0, 8)
    users[row, :k] = rng.choice(N_MOVIES, k, replace=False)
embeddings = rng.normal(size=(N_MOVIES, 3))


class MeanOnly(keras.layers.Layer):
    def call(self, inputs):
        return inputs[0]


def run(strategy):
    with strategy.scope():
        model = HybridVAE(embeddings, approach=2, trainable_embeddings=True, hidden_dim=12,
                          latent_dim=3, dropout=0.0, anneal_steps=6, anneal_cap=0.5, seed=4)
        model.sampling = MeanOnly()
        model.compile(keras.optimizers.Adam(1e-2))
    batches = tf.data.Dataset.from_tensor_slices(users).batch(8)
    history = model.fit(batches, epochs=2, verbose=0, shuffle=False)
    return {
        "replicas": strategy.num_replicas_in_sync,
        "history": history.history,
        "anneal_step": int(model.anneal_step.numpy()),
        "weights": [w.numpy().tolist() for w in model.trainable_weights],
    }


two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
one = run(tf.distribute.get_strategy())
print("RESULT " + json.dumps({"two": two, "one": one}))
"""


def test_two_replicas_match_one_device():
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    two, one = result["two"], result["one"]
    assert (two["replicas"], one["replicas"]) == (2, 1)
    assert two["anneal_step"] == one["anneal_step"] == 12  # 6 batches x 2 epochs, counted once
    for name, values in one["history"].items():
        np.testing.assert_allclose(two["history"][name], values, rtol=1e-4, err_msg=name)
    for got, want in zip(two["weights"], one["weights"]):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)
