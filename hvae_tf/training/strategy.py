"""Which tf.distribute strategy a run uses, and whether this process writes the shared outputs."""

from __future__ import annotations

import json
import os

import tensorflow as tf

# One strategy of a kind per process. A second MirroredStrategy made in the same process starts its
# collective keys where the first did, so the second run of a grid or a tuner (a new model, other
# gradient sizes) fails in its first all-reduce with "Shape mismatch in the collective instance"
# (seen over two logical CPU devices; no GPU here to try NCCL's all-reduce). TensorFlow also allows
# one MultiWorkerMirroredStrategy a process.
_MADE: dict[str, tf.distribute.Strategy] = {}


def make_strategy(name: str) -> tf.distribute.Strategy:
    """auto: MirroredStrategy over all GPUs when there are several, else the default strategy."""
    if name == "auto":
        name = "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multiworker" and "TF_CONFIG" not in os.environ:
        raise ValueError(
            "--strategy multiworker reads the cluster from the TF_CONFIG environment variable, "
            'which is not set: e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", '
            '"host2:12345"]}, "task": {"type": "worker", "index": 0}}\''
        )
    kinds = {"mirrored": tf.distribute.MirroredStrategy,
             "multiworker": tf.distribute.MultiWorkerMirroredStrategy}
    if name not in kinds:
        raise ValueError(f"unknown --strategy {name!r}: choose auto, default, mirrored or multiworker")
    if name not in _MADE:
        _MADE[name] = kinds[name]()
    return _MADE[name]


def is_chief() -> bool:
    """Worker 0 (or a single process) writes checkpoints, exports and summaries that others read."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    return task.get("type", "worker") in ("chief", "worker") and (
        task.get("type") == "chief" or int(task.get("index", 0)) == 0
        and "chief" not in config.get("cluster", {})
    )
