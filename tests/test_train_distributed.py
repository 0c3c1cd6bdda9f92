"""train.py under tf.distribute: MirroredStrategy on 2 logical CPUs, and two real worker processes.

Both need fresh processes: logical devices must be set before TensorFlow starts, and
MultiWorkerMirroredStrategy needs one process per worker (TF_CONFIG, ports on 127.0.0.1).
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import small_run_argv
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hvae_tf.config import parse_args

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300
TRAIN_LOSSES = ("loss", "reconstruction_loss", "kl_loss", "kl_weight")
# Same loss per epoch across strategies: only the order of float sums differs (all-reduce);
# measured: equal to all printed digits on 2 logical CPUs.
RTOL = 1e-5
pytestmark = pytest.mark.slow  # fresh TensorFlow processes, each training


def small_args(data_dir, run_dir, export_dir, *extra):
    return small_run_argv(data_dir, run_dir, export_dir, "--features", "none", *extra,
                          hidden_dim=16, latent_dim=4, anneal_steps=6)


def python_env(**extra):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def train_losses(run_dir: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(run_dir / "logs" / "train"))
    events.Reload()
    return {name: [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(f"epoch_{name}")]
            for name in TRAIN_LOSSES}


MIRRORED = r"""
import sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from hvae_tf.models.sampling import Sampling
from hvae_tf.training import run
from hvae_tf.config import parse_args

# Randomness is off: each replica draws its own latent noise (and dropout, off by flag), and under
# an explicit strategy Keras takes one extra pass of the dataset (its symbolic build), so a seeded
# shuffle gives other epoch orders. By design, not numerics: what must agree is the arithmetic.
Sampling.call = lambda self, inputs: inputs[0]
padded_batches = run.pipeline.padded_batches
run.pipeline.padded_batches = lambda *a, **k: padded_batches(*a, **{**k, "shuffle": False})
built = []
build_model = run.build_model
run.build_model = lambda *a, **k: built.append(build_model(*a, **k)) or built[-1]
args = sys.argv[1:]
for strategy in ("default", "mirrored"):
    run_dir = args[args.index("--run-dir") + 1] + "-" + strategy
    run.train(parse_args(args + ["--strategy", strategy, "--run-dir", run_dir]))
    print("REPLICAS", strategy, built[-1].distribute_strategy.num_replicas_in_sync)
"""


def test_mirrored_on_two_devices_matches_one_device(generated_data_dir, tmp_path):
    argv = small_args(generated_data_dir, tmp_path / "run", tmp_path / "saved", "--dropout", "0")
    done = subprocess.run([sys.executable, "-c", MIRRORED, *argv], check=False, capture_output=True,
                          text=True, env=python_env(), cwd=REPO, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "REPLICAS default 1" in done.stdout and "REPLICAS mirrored 2" in done.stdout, done.stdout
    one, two = train_losses(tmp_path / "run-default"), train_losses(tmp_path / "run-mirrored")
    for name in TRAIN_LOSSES:
        assert len(one[name]) == 2, name
        np.testing.assert_allclose(two[name], one[name], rtol=RTOL, err_msg=name)
    history = [json.loads((tmp_path / f"run-{s}" / "validation.json").read_text())
               for s in ("default", "mirrored")]
    for mine, theirs in zip(*history):
        for key in ("val_ndcg_100", "val_recall_20", "val_recall_50"):
            assert mine[key] == pytest.approx(theirs[key], abs=1e-5), key
    # Two model versions exported side by side, one per run.
    versions = sorted(p.name for p in next((tmp_path / "saved").iterdir()).iterdir())
    assert versions == ["1", "2"]


WORKER = r"""
import sys
import numpy as np
from hvae_tf.training import run
from hvae_tf.config import parse_args

built = []
build_model = run.build_model
run.build_model = lambda *a, **k: built.append(build_model(*a, **k)) or built[-1]
metrics = run.train(parse_args(sys.argv[2:]))
np.savez(sys.argv[1], *[np.asarray(v.numpy()) for v in built[-1].weights])
print("EPOCHS", metrics["epochs"])
"""


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_finish_with_identical_weights(generated_data_dir, tmp_path):
    cluster = [f"127.0.0.1:{port}" for port in free_ports(2)]
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved"
    workers = []
    for index in range(2):
        scratch = tmp_path / f"tmp-worker{index}"  # the worker's tempfile folder
        scratch.mkdir()
        tf_config = json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})
        argv = small_args(generated_data_dir, run_dir, export_dir, "--strategy", "multiworker", "--epochs", "1")
        workers.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / f"weights{index}.npz"), *argv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env=python_env(TF_CONFIG=tf_config, TMPDIR=str(scratch)),
        ))
    deadline = time.monotonic() + TIMEOUT_S
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=max(1, deadline - time.monotonic())))
    finally:
        for worker in workers:  # a worker whose peer died waits forever on the collectives
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0 and "EPOCHS 1" in out, err[-3000:]

    chief, other = (np.load(tmp_path / f"weights{i}.npz") for i in range(2))
    assert len(chief.files) == len(other.files) > 0
    for key in chief.files:
        np.testing.assert_array_equal(chief[key], other[key], err_msg=key)
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 1

    # Only the chief wrote the shared outputs; worker 1 cleaned its private folder.
    assert sorted(p.name for p in (export_dir / parse_args(argv).model_name).iterdir()) == ["1"]
    assert not any((tmp_path / "tmp-worker1").iterdir())
