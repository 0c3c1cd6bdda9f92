"""Callbacks that add what Keras' own do not: validation ranking metrics and a NaN stop that says where.

The ranking callback runs before TensorBoard and ModelCheckpoint in the callback list and writes
into the shared `logs` dict, so that both see `val_ndcg_100` in the same epoch.
"""

from __future__ import annotations

import json
import math
import os
import time
import weakref
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from hvae_tf.io import write_atomic
from hvae_tf.metrics import ranking


class ScalarLogs(keras.callbacks.Callback):
    """Turn the models' shape-[1] logged values into plain floats for the callbacks after it.

    The train step returns [1]-shaped values because Keras 3's fit under
    MultiWorkerMirroredStrategy reduces logs along axis 0; TensorBoard's scalar summaries and
    ModelCheckpoint want scalars.
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
    """Validation NDCG@100 and Recall@20/50 on the fold-in/held-out split (Liang's Eval 2).

    With `new_movies` (column indices of movies without training clicks), also the same metrics
    over the held-out clicks on new movies ranked among the new movies alone ("val_new_..."):
    what a model learns about new movies moves on a schedule of its own, and the checkpoint rule
    can weigh it.
    """

    def __init__(self, fold_in, held_out, history_path=None, batch_size: int = 2000,
                 prefix: str = "val_", new_movies=None):
        super().__init__()
        self.fold_in, self.held_out = fold_in, held_out
        self.batch_size, self.prefix = batch_size, prefix
        self._new_mask = None
        if new_movies is not None and len(new_movies):
            mask = np.zeros(held_out.shape[1], bool)
            mask[np.asarray(new_movies)] = True
            self._new_mask = tf.constant(mask)
            self._held_out_new = ranking.only_columns(held_out, mask)
        # Kept on disk so that a resumed run still knows the epochs before the crash.
        self.history_path = Path(history_path) if history_path else None
        self.history: list[dict[str, float]] = (
            json.loads(self.history_path.read_text())
            if self.history_path and self.history_path.exists() else []
        )

    def best(self, key: str = "val_ndcg_100") -> dict | None:
        return max(self.history, key=lambda h: h[key], default=None)

    def compute(self) -> dict[str, float]:
        values = self._summary(self.model.scores, self.held_out, self.prefix)
        if self._new_mask is not None:
            values.update(self._summary(self._scores_among_new, self._held_out_new, f"{self.prefix}new_"))
        return values

    def _summary(self, score_fn, held_out, prefix: str) -> dict[str, float]:
        # Compiled once (scores, fold-in mask and top-k in one tf.function); later epochs reuse it.
        per_user = ranking.score_users(score_fn, self.fold_in, held_out, mask_inputs=True,
                                       batch_size=self.batch_size, traceable=True)
        return {f"{prefix}{name.replace('@', '_')}": value for name, value in ranking.summarize(per_user).items()
                if name not in ("users", "users_excluded")}

    def _scores_among_new(self, indices):
        return tf.where(self._new_mask, self.model.new_movie_scores(indices), -np.inf)

    def on_epoch_end(self, epoch, logs=None):
        values = self.compute()
        self.history = [h for h in self.history if h["epoch"] < epoch + 1]
        self.history.append({"epoch": epoch + 1, **values})
        if self.history_path:
            write_atomic(self.history_path, json.dumps(self.history, indent=1))
        if logs is not None:
            logs.update(values)


_FINITE_CHECKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def non_finite_weights(model) -> list[str]:
    """Names of the model's weights holding NaN or inf (none, for weights one may keep).

    One compiled call per check, answering a flag per weight: copying every weight to the host
    would cost more than the rest of an epoch's end on a small model. Traced once per model.
    """
    weights = [w for w in model.weights if w.dtype.startswith("float")]
    check = _FINITE_CHECKS.get(model)
    if check is None:
        check = _FINITE_CHECKS[model] = tf.function(
            lambda: tf.stack([tf.reduce_all(tf.math.is_finite(w)) for w in weights]))
    return [w.path for w, finite in zip(weights, check().numpy()) if not finite]


def require_finite_weights(model, what: str) -> None:
    """Refuse to `what` (checkpoint, export) weights that are not all finite."""
    bad = non_finite_weights(model)
    if bad:
        raise FloatingPointError(
            f"refusing to {what}: weights {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''} hold "
            "NaN or inf. Lower --lr (with a new --run-dir), or check the input data."
        )


class StopOnNaN(keras.callbacks.Callback):
    """TerminateOnNaN that also names the step and where the last good weights are.

    It checks each batch's loss and, at each epoch's end, the epoch's loss and the weights: an
    update can turn the weights NaN after the last loss of an epoch was computed (with one step per
    epoch, every loss it sees is finite). It raises (FloatingPointError) rather than setting
    `stop_training`: Keras still ends the epoch after a stop, so the ranking callback would record,
    ModelCheckpoint could keep, and BackupAndRestore would back up the NaN weights. Raising leaves
    the run folder as it was after the last good epoch; it must come before those callbacks.
    """

    def __init__(self, checkpoint: "BestCheckpoint"):
        super().__init__()
        self.checkpoint = checkpoint
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _stop(self, what: str, batch: int | None = None) -> None:
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        where = (  # train.py writes the held best weights as the error leaves fit
            f"the last good weights are in {self.checkpoint.path}" if self.checkpoint.has_best()
            else f"no checkpoint was written yet ({self.checkpoint.path} comes at the end of an epoch)"
        )
        raise FloatingPointError(
            f"{what} at optimizer step {step} (epoch {self._epoch + 1}"
            f"{'' if batch is None else f', batch {batch}'}); {where}. "
            "Lower --lr (with a new --run-dir), or check the input data."
        )

    @staticmethod
    def _loss(logs) -> float | None:
        loss = (logs or {}).get("loss")
        return None if loss is None else float(np.asarray(loss).reshape(-1)[0])

    def on_train_batch_end(self, batch, logs=None):
        value = self._loss(logs)
        if value is not None and not math.isfinite(value):
            self._stop(f"loss became {value}", batch)

    def on_epoch_end(self, epoch, logs=None):
        value = self._loss(logs)
        if value is not None and not math.isfinite(value):
            self._stop(f"the epoch's loss became {value}")
        bad = non_finite_weights(self.model)
        if bad:
            self._stop(f"weights {', '.join(bad[:3])} became NaN or inf by the end of the epoch")


class ReplayEpochRandomness(keras.callbacks.Callback):
    """Make epoch e's randomness the same whether or not the run was killed and resumed before it.

    BackupAndRestore restores the weights and the optimizer, not the random streams: the seed
    generators (dropout, latent noise) are not saved with the weights, and a tf.data shuffle draws
    a new order per pass from a seed stream that restarts with the process. So each seed generator
    is re-keyed from (its seed, epoch) at every epoch start, and a resumed run first draws, and
    drops, the passes an uninterrupted run made before its first epoch. `dataset` is the one whose
    `.repeat()` is fed to fit (one pass per epoch); the first epoch is known only here, after
    BackupAndRestore's on_train_begin.
    """

    EPOCH_STRIDE = 1_000_003  # a large prime: generators with nearby seeds get distinct keys per epoch

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset
        self._base_seeds = None

    def _seed_states(self):
        return [v for v in self.model.variables if v.name == "seed_generator_state"]

    def on_epoch_begin(self, epoch, logs=None):
        states = self._seed_states()
        if self._base_seeds is None:  # first epoch of this process: epoch > 0 after a resume
            self._base_seeds = [int(np.asarray(v.numpy())[0]) for v in states]
            for _ in range(epoch):
                iter(self.dataset)
        for state, base in zip(states, self._base_seeds):
            key = (base + epoch * self.EPOCH_STRIDE) % 2**31
            state.assign(np.array([key, 0], dtype=np.dtype(state.dtype)))


class CheckpointRule:
    """Which epoch's weights a run keeps, decided from the validation values of its epochs.

    By default the epoch with the best `monitor` (the first of equals). With `guard` and `within`:
    the best `monitor` among the epochs whose `guard` is within `within` of the best `guard` so
    far. Applied epoch by epoch: an epoch replaces the kept one when it is within and better by
    `monitor`, or when a new best `guard` has left the kept one behind (the new best is within),
    so the kept epoch is always one whose weights were held when it ended.
    """

    def __init__(self, monitor: str = "val_ndcg_100", guard: str | None = None, within: float = 0.0):
        self.monitor, self.guard, self.within = monitor, guard, float(within)

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.monitor,) if self.guard is None else (self.monitor, self.guard)

    def chosen(self, epochs: list[dict]) -> dict | None:
        """The kept epoch's values after `epochs` (in order), or None before the first."""
        kept, best_guard = None, -math.inf
        for row in epochs:
            if self.guard is not None:
                best_guard = max(best_guard, row[self.guard])
            if kept is None or not self._within(kept, best_guard) or (
                    self._within(row, best_guard) and row[self.monitor] > kept[self.monitor]):
                kept = row
        return kept

    def _within(self, row: dict, best_guard: float) -> bool:
        return self.guard is None or row[self.guard] >= best_guard - self.within


class BestCheckpoint(keras.callbacks.Callback):
    """The weights of the epoch `rule` keeps (by default the best validation NDCG@100), written
    beside `filepath` and renamed into place, so a kill mid-save keeps the last best. Non-finite
    weights are never kept (they would rank as "best" and then be exported).

    Writing a .weights.h5 costs a short epoch as much as several of its training steps, so a new
    best is held in memory and written by `flush`: at each backup (then the file holds the best
    of the epochs a resumed run restores, and a resumed run recomputes the later ones exactly),
    when training ends, and when it stops on an error. Weights larger than `hold_at_most` bytes
    are written at once instead of being copied.

    `history` is the ranking callback's record, kept on disk: after a resume, the rule starts from
    the restored epochs, so it keeps what an uninterrupted run would.
    """

    def __init__(self, filepath: str, history: RankingMetrics, rule: CheckpointRule | None = None,
                 hold_at_most: int = 2**30):
        super().__init__()
        self.path, self.history = Path(filepath), history
        self.rule = rule or CheckpointRule()
        self.hold_at_most = int(hold_at_most)
        self._epochs: list[dict] | None = None  # each epoch's values, restored ones first
        self._held: list[np.ndarray] | None = None  # the best weights not yet written
        self._held_are_current = False  # the model still holds them (no step since)

    def on_epoch_begin(self, epoch, logs=None):
        if self._epochs is None:  # epoch > 0 after a resume: epochs up to `epoch` were restored
            self._epochs = [h for h in self.history.history if h["epoch"] <= epoch]
        self._held_are_current = False

    def on_epoch_end(self, epoch, logs=None):
        missing = [key for key in self.rule.keys if (logs or {}).get(key) is None]
        if missing:
            raise KeyError(f"the best checkpoint needs {missing} in the epoch's logs, which has "
                           f"{sorted(logs or {})}: the ranking callback must come before it")
        self._epochs.append({"epoch": epoch + 1, **{key: float(logs[key]) for key in self.rule.keys}})
        if self.rule.chosen(self._epochs)["epoch"] != epoch + 1:
            return
        require_finite_weights(self.model, "checkpoint")
        size = sum(np.dtype(w.dtype).itemsize * math.prod(w.shape) for w in self.model.weights)
        if size > self.hold_at_most:
            self._held = None
            self._write()
        else:
            self._held, self._held_are_current = self.model.get_weights(), True

    def has_best(self) -> bool:
        """Whether there are good weights to keep (in memory or written)."""
        return self._held is not None or self.path.exists()

    def flush(self) -> None:
        """Write the held best weights, if any."""
        if self._held is None:
            return
        if self._held_are_current:
            self._write()
        else:
            current = self.model.get_weights()
            self.model.set_weights(self._held)
            try:
                self._write()
            finally:
                self.model.set_weights(current)
        self._held = None

    def on_train_end(self, logs=None):
        self.flush()

    def _write(self) -> None:
        save_weights_atomic(self.model, self.path)


def save_weights_atomic(model: keras.Model, path: Path) -> None:
    """Keras' save_weights, written beside `path` and renamed into place: a kill mid-write leaves
    the previous file whole."""
    partial = path.with_name(f".partial.{path.name}")  # keeps the .weights.h5 suffix Keras wants
    partial.unlink(missing_ok=True)  # a crash's leftover must never be renamed into place
    model.save_weights(str(partial), overwrite=True)
    os.replace(partial, path)


class SharedBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore for one process or many: every worker of a multi-worker job restores the
    chief's backup (a folder they can all read), and only the chief writes or deletes it.

    Keras' own callback writes and restores per process, so after a preemption the chief would
    resume at its last epoch while the other workers start from scratch, and the replicas diverge.
    `restore=False` (a retrain) ignores what a backup holds.

    A backup (weights and optimizer state) is written at the end of the first epoch that ends
    `every_seconds` or more after the last one (or the start): short epochs would otherwise spend
    much of their time writing it, and a kill loses at most that much work plus an epoch. Only at
    epoch ends: Keras restores whole epochs, and the epochs after a backup replay exactly.
    `before_backup` runs just before each backup is written (train.py writes the held best
    checkpoint there).

    Keras writes the weights and then the epoch over the previous backup's files, so a kill between
    or during those writes leaves an empty epoch file or weights one epoch ahead of it. Here each
    backup's weights go to a file of their own, and the epoch file, renamed into place last, names
    them: a kill at any point leaves the previous backup whole and consistent.
    """

    def __init__(self, backup_dir: str, *, writer: bool, restore: bool = True,
                 every_seconds: float = 0.0, before_backup: Callable[[], None] | None = None, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.writer, self.restore, self.every_seconds = writer, restore, float(every_seconds)
        self.before_backup = before_backup
        self._last_backup = time.monotonic()

    def on_train_begin(self, logs=None):
        self._last_backup = time.monotonic()
        if self.restore:
            self._load_model()

    def _load_model(self):
        metadata_path = Path(self._training_metadata_path)
        if not metadata_path.exists():  # nothing committed yet: weights a kill left are not a backup
            return
        try:
            metadata = json.loads(metadata_path.read_text())
            weights = metadata_path.with_name(metadata.get("weights", "latest.weights.h5"))
            epoch = int(metadata["epoch"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"training backup {metadata_path} is unreadable ({e!r}); delete "
                             f"{metadata_path.parent} to train this run from its first epoch") from e
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)  # its slots must exist to load
        self.model.load_weights(str(weights))
        self.model._initial_epoch = epoch

    def _save_model(self):
        if self.writer and time.monotonic() - self._last_backup >= self.every_seconds:
            if self.before_backup is not None:
                self.before_backup()
            self._write_backup()
            self._last_backup = time.monotonic()

    def _write_backup(self) -> None:
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        weights = folder / f"epoch-{self._current_epoch}.weights.h5"
        save_weights_atomic(self.model, weights)
        write_atomic(self._training_metadata_path, json.dumps(
            {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": weights.name}))
        for stale in folder.glob("*.weights.h5*"):  # older backups, and a kill's leftover
            if stale != weights:
                stale.unlink()

    def on_train_end(self, logs=None):
        if self.writer:
            super().on_train_end(logs)


class StopWhenNotImproving(keras.callbacks.Callback):
    """Ends training once the best validation epoch is `patience` epochs back (0: never).

    It reads the ranking callback's history, which is kept on disk, so a resumed run stops at the
    epoch an uninterrupted one would (Keras' EarlyStopping would restart its count after a resume).
    Must come after the ranking callback.
    """

    def __init__(self, ranking: RankingMetrics, patience: int, key: str = "val_ndcg_100"):
        super().__init__()
        self.ranking, self.patience, self.key = ranking, int(patience), key

    def on_epoch_end(self, epoch, logs=None):
        best = self.ranking.best(self.key)
        if self.patience > 0 and best is not None and epoch + 1 - best["epoch"] >= self.patience:
            self.model.stop_training = True


class RefreshPrior(keras.callbacks.Callback):
    """At each epoch end, the composite prior's copy of the encoder becomes the current encoder
    (RecVAE's "posterior from the previous epoch"); a no-op for other priors. Before the backup,
    so a resumed run restores the copy the next epoch needs."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.refresh_prior()
