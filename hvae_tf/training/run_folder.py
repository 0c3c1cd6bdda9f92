"""A run folder holds one configuration, is used by one train.py at a time, and says when it is done.

Its config.json is written only once the run has its data and model, so a start that fails (no
internet, a wrong --manual-dir) leaves nothing that refuses the corrected command. metrics.json is
written last, so it marks a finished run: running the same command again reports it instead of
retraining and exporting a duplicate, unless --retrain is given. The lock is an OS lock
(`fcntl.flock`) that dies with its process, so a kill -9 never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil

from hvae_tf.config import TrainConfig, describe_differences
from hvae_tf.io import write_atomic

LOCK = ".lock"
# What a training writes; --retrain removes it (config.json stays: it is the same configuration).
OUTPUTS = ("metrics.json", "validation.json", "checkpoints", "backup", "logs")


class RunFolder:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.path = cfg.run_path

    @contextlib.contextmanager
    def claimed(self):
        """Hold the folder's lock for the block; another process holding it is refused by name."""
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"--run-dir {self.path} is a file, not a folder: pass a folder path")
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "another process"
                raise ValueError(
                    f"--run-dir {self.path} is in use by train.py ({holder}); wait for it to "
                    "finish, or pass another --run-dir"
                ) from None
            lock.seek(0)
            lock.truncate()
            lock.write(f"pid {os.getpid()}")
            lock.flush()
            yield self

    def check_configuration(self) -> None:
        """A folder holding another configuration is refused, naming the flags that differ."""
        saved = self.path / "config.json"
        if not saved.exists():
            return
        diff = self.cfg.differences(TrainConfig.from_json(saved.read_text()))
        if diff:
            raise ValueError(
                f"--run-dir {self.path} holds a run with another configuration "
                f"({describe_differences(diff)}); "
                "pass another --run-dir, or delete that folder to start over"
            )

    def finished(self) -> dict | None:
        """The finished run's metrics, or None while it has not finished."""
        metrics = self.path / "metrics.json"
        return json.loads(metrics.read_text()) if metrics.exists() else None

    def start_over(self) -> None:
        """Remove what an earlier training wrote, so a retrained run mixes nothing of it."""
        for name in OUTPUTS:
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def write_config(self) -> None:
        write_atomic(self.path / "config.json", self.cfg.to_json())

    def write_metrics(self, metrics: dict) -> None:
        write_atomic(self.path / "metrics.json", json.dumps(metrics, indent=2))
