"""Callbacks that add what Keras' own do not: validation ranking metrics and a NaN stop that says where.

The ranking callback runs before TensorBoard and ModelCheckpoint in the callback list and writes
into the shared `logs` dict, so that both see `val_ndcg_100` in the same epoch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np

from hvae_tf.io import write_atomic
from hvae_tf.metrics import ranking


class ScalarLogs(keras.callbacks.Callback):
    """Turn the models' shape-[1] logged values into plain floats for the callbacks after it.

    The train step returns [1]-shaped values because MultiWorkerMirroredStrategy needs them
    (DESIGN.md section 3); TensorBoard's scalar summaries and ModelCheckpoint want scalars.
    """

    @staticmethod
    def _squeeze(logs):
        for key, value in (logs or {}).items():
            array = np.asarray(value)
            if array.shape == (1,):
                logs[key] = float(array[0])

    def on_train_batch_end(self, batch, logs=None):
        self._squeeze(logs)

    def on_test_batch_end(self, batch, logs=None):
        self._squeeze(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._squeeze(logs)


class RankingMetrics(keras.callbacks.Callback):
    """Validation NDCG@100 and Recall@20/50 on the fold-in/held-out split (Liang's Eval 2)."""

    def __init__(self, fold_in, held_out, history_path=None, batch_size: int = 2000,
                 prefix: str = "val_"):
        super().__init__()
        self.fold_in, self.held_out = fold_in, held_out
        self.batch_size, self.prefix = batch_size, prefix
        # Kept on disk so that a resumed run still knows the epochs before the crash.
        self.history_path = Path(history_path) if history_path else None
        self.history: list[dict[str, float]] = (
            json.loads(self.history_path.read_text())
            if self.history_path and self.history_path.exists() else []
        )

    def best(self, key: str = "val_ndcg_100") -> dict | None:
        return max(self.history, key=lambda h: h[key], default=None)

    def compute(self) -> dict[str, float]:
        per_user = ranking.score_users(
            lambda idx: self.model.scores(idx),
            self.fold_in, self.held_out, mask_inputs=True, batch_size=self.batch_size,
        )
        summary = ranking.summarize(per_user)
        return {f"{self.prefix}{name.replace('@', '_')}": value for name, value in summary.items()
                if name not in ("users", "users_excluded")}

    def on_epoch_end(self, epoch, logs=None):
        values = self.compute()
        self.history = [h for h in self.history if h["epoch"] < epoch + 1]
        self.history.append({"epoch": epoch + 1, **values})
        if self.history_path:
            write_atomic(self.history_path, json.dumps(self.history, indent=1))
        if logs is not None:
            logs.update(values)


class StopOnNaN(keras.callbacks.Callback):
    """TerminateOnNaN that also names the step and where the last good weights are."""

    def __init__(self, last_good: str):
        super().__init__()
        self.last_good = last_good
        self.message: str | None = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(np.asarray(loss).reshape(-1)[0])):
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            self.message = (
                f"loss became {float(np.asarray(loss).reshape(-1)[0])} at optimizer step {step} "
                f"(batch {batch} of this epoch); the last good weights are in {self.last_good}. "
                "Lower --lr, or check the input data."
            )
            self.model.stop_training = True
