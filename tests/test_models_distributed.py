"""MirroredStrategy over 2 logical CPU devices trains like one device: the H-VAE, and the sharing
hybrid with sparse (credits-like) content, whose nonzeros are integer-indexed variables, and with
the content path on VASP's shallow path (sparse similarities; movies training as new drawn alike
on every replica), and RecVAE's alternating updates beside a frozen linear path.

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
import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json
import sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
import numpy as np
from hvae_tf.baselines import ContentKNN
from hvae_tf.models import HybridVAE, SharedHybridVAE, StandardVAE

N_MOVIES = 50
rng = np.random.default_rng(0)
users = np.full((43, 7), -1, np.int64)  # 43 users, batch 8: the last batch leaves one replica 1 user
for row in range(len(users)):
    k = rng.integers(0, 8)
    users[row, :k] = rng.choice(N_MOVIES, k, replace=False)
embeddings = rng.normal(size=(N_MOVIES, 3))
credits = np.zeros((N_MOVIES, 400), np.float32)  # 2 ones a row: kept as its nonzeros
credits[np.repeat(np.arange(N_MOVIES), 2), rng.integers(0, 400, 2 * N_MOVIES)] = 1.0
linear_start = np.random.default_rng(1).normal(0, 0.1, (N_MOVIES, N_MOVIES)).astype(np.float32)
MODELS = {
    "recvae-edlae": lambda: StandardVAE(N_MOVIES, hidden_dim=12, latent_dim=3, dropout=0.0, seed=4,
                                        architecture="recvae", activation="swish", prior="composite",
                                        kl_gamma=0.05, encoder_passes=2, shallow="frozen",
                                        shallow_weights=linear_start, shallow_bias=-1.0),
    "hvae2": lambda: HybridVAE(embeddings, approach=2, trainable_embeddings=True, hidden_dim=12,
                               latent_dim=3, dropout=0.0, anneal_steps=6, anneal_cap=0.5, seed=4),
    "shared-sparse": lambda: SharedHybridVAE(credits, shared_dim=4, new_movies=[3, 9], hidden_dim=12,
                                             latent_dim=3, dropout=0.0, anneal_steps=6, anneal_cap=0.5,
                                             seed=4),
    "shared-content-path": lambda: SharedHybridVAE(
        credits, shared_dim=4, new_movies=[3, 9], hidden_dim=12, latent_dim=3, dropout=0.0, anneal_steps=6,
        anneal_cap=0.5, seed=4, shallow="zeros", likelihood="bernoulli", free_dropout=0.5,
        content_similarity=ContentKNN(5).fit(credits).similarity),
}


class MeanOnly(keras.layers.Layer):
    def call(self, inputs):
        return inputs[0]


def run(strategy, make):
    with strategy.scope():
        model = make()
        model.sampling = MeanOnly()
        model.compile(keras.optimizers.Adam(1e-2))
    batches = tf.data.Dataset.from_tensor_slices(users).batch(8)
    history = model.fit(batches, epochs=2, verbose=0, shuffle=False)
    return {
        "replicas": strategy.num_replicas_in_sync,
        "sparse": bool(getattr(getattr(model.first_layer, "movie_vectors", None), "sparse", False)),
        "history": history.history,
        "anneal_step": int(model.anneal_step.numpy()),
        "weights": [w.numpy().tolist() for w in model.trainable_weights],
        "frozen_moved": (float(np.abs(model.shallow_path.kernel.numpy() - linear_start
                                      * (1 - np.eye(N_MOVIES))).max())
                         if getattr(getattr(model, "shallow_path", None), "frozen", False) else None),
    }


if sys.argv[1] == "one-after-another":  # as a grid or a tuner trains: models in turn, one process
    import functools

    from hvae_tf.training.strategy import make_strategy

    tf.distribute.MirroredStrategy = functools.partial(tf.distribute.MirroredStrategy, ["/cpu:0", "/cpu:1"])
    runs = []
    for name in ("hvae2", "shared-sparse", "hvae2"):
        keras.backend.clear_session()
        runs.append(run(make_strategy("mirrored"), MODELS[name])["replicas"])
    print("RESULT " + json.dumps(runs))
else:
    make = MODELS[sys.argv[1]]
    two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), make)
    one = run(tf.distribute.get_strategy(), make)
    print("RESULT " + json.dumps({"two": two, "one": one}))
"""


@pytest.mark.parametrize("model", ["hvae2", "shared-sparse", "shared-content-path", "recvae-edlae"])
def test_two_replicas_match_one_device(model):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, model], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    two, one = result["two"], result["one"]
    assert two["sparse"] == one["sparse"] == model.startswith("shared")
    assert (two["replicas"], one["replicas"]) == (2, 1)
    assert two["frozen_moved"] == one["frozen_moved"] == (0.0 if model == "recvae-edlae" else None)
    assert two["anneal_step"] == one["anneal_step"] == 12  # 6 batches x 2 epochs, counted once
    for name, values in one["history"].items():
        np.testing.assert_allclose(two["history"][name], values, rtol=1e-4, err_msg=name)
    # Three updates a batch (RecVAE's alternation) carry the all-reduce's summation order further: a
    # few weights then differ by ~3e-5, while a replica that makes another update (other users,
    # its own noise, no all-reduce) moves them by about the learning rate, 1e-2, a step.
    atol = 1e-4 if model == "recvae-edlae" else 1e-5
    for got, want in zip(two["weights"], one["weights"]):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=atol)


def test_models_trained_one_after_another_in_one_process_share_its_strategy():
    """A second MirroredStrategy in a process reuses the first one's collective keys, so a grid's
    second run failed in its first all-reduce ("Shape mismatch in the collective instance")."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, "one-after-another"], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    assert json.loads(lines[-1][len("RESULT "):]) == [2, 2, 2]
