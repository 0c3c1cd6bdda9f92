"""kill -9 a train.py run mid-training; the same command resumes it and ends as if never killed.

BackupAndRestore brings back the weights, optimizer and epoch; ReplayEpochRandomness the shuffle
order and the dropout/noise streams; so with deterministic ops the resumed run's metrics equal an
uninterrupted run's: measured equal to every printed digit; the test allows 1e-6.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import small_run_argv

from hvae_tf.config import parse_args
from hvae_tf.training import callbacks
from hvae_tf.training.callbacks import BestCheckpoint
from hvae_tf.training.run import train

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 3
TOLERANCE = 1e-6


def args(data_dir, run_dir, export_dir, recipe="mult-vae"):
    return small_run_argv(data_dir, run_dir, export_dir, "--features", "none", recipe=recipe,
                          batch_size=32, epochs=EPOCHS, anneal_steps=50, verbose=2, backup_every=0)


def backed_up_epoch(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "backup" / "training_metadata.json").read_text())["epoch"]
    except (FileNotFoundError, ValueError):  # not there yet, or caught mid-write
        return 0


def start_and_kill_after_first_backup(command, run_dir, log, timeout=240) -> dict:
    """Start train.py, SIGKILL it as soon as an epoch is backed up (so mid-way through the next)."""
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    deadline = time.monotonic() + timeout
    try:
        while backed_up_epoch(run_dir) < 1:
            assert process.poll() is None, f"train.py ended before the kill:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no epoch backed up in time"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    history = json.loads((run_dir / "validation.json").read_text())
    return {"backed_up_epoch": backed_up_epoch(run_dir), "validated_epochs": [h["epoch"] for h in history]}


# recvae: its composite prior's frozen encoder copy and its alternating updates must resume too.
@pytest.fixture(scope="module", params=["mult-vae", "recvae"])
def runs(tmp_path_factory, generated_data_dir, request):
    root, data, recipe = tmp_path_factory.mktemp("resume"), generated_data_dir, request.param

    killed_dir = root / "killed"
    command = [sys.executable, "train.py", *args(data, killed_dir, root / "saved", recipe)]
    at_kill = start_and_kill_after_first_backup(command, killed_dir, root / "killed.log")
    resumed = subprocess.run(command, check=False, capture_output=True, text=True, cwd=REPO, timeout=240,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    uninterrupted = train(parse_args(args(data, root / "uninterrupted", root / "saved", recipe)))
    return {
        "at_kill": at_kill,
        "resumed_output": resumed.stdout,
        "resumed": json.loads((killed_dir / "metrics.json").read_text()),
        "killed_dir": killed_dir,
        "uninterrupted": uninterrupted,
    }


@pytest.mark.slow
def test_killed_mid_training_before_finishing(runs):
    at_kill = runs["at_kill"]
    assert 1 <= at_kill["backed_up_epoch"] < EPOCHS
    assert len(at_kill["validated_epochs"]) < EPOCHS


@pytest.mark.slow
def test_same_command_resumes_from_the_backup_and_completes_every_epoch(runs):
    started = [int(n) for n in re.findall(rf"Epoch (\d+)/{EPOCHS}", runs["resumed_output"])]
    assert started and started[0] == runs["at_kill"]["backed_up_epoch"] + 1, runs["resumed_output"][-2000:]
    assert started[-1] == EPOCHS
    resumed = runs["resumed"]
    assert resumed["epochs"] == EPOCHS
    assert [h["epoch"] for h in resumed["history"]] == list(range(1, EPOCHS + 1))  # each once
    validation = json.loads((runs["killed_dir"] / "validation.json").read_text())
    assert validation == resumed["history"]
    assert not (runs["killed_dir"] / "backup").exists()


@pytest.mark.slow
def test_resumed_run_equals_an_uninterrupted_one(runs):
    resumed, uninterrupted = runs["resumed"], runs["uninterrupted"]
    for mine, theirs in zip(resumed["history"], uninterrupted["history"], strict=True):
        assert mine.keys() == theirs.keys()
        for key in mine:
            assert mine[key] == pytest.approx(theirs[key], abs=TOLERANCE), (mine["epoch"], key)
    assert resumed["best_epoch"] == uninterrupted["best_epoch"]
    for key, value in uninterrupted["validation"].items():
        assert resumed["validation"][key] == pytest.approx(value, abs=TOLERANCE), key


@pytest.mark.slow
def test_best_checkpoint_is_the_best_epoch_across_the_crash(runs):
    resumed = runs["resumed"]
    best = max(resumed["history"], key=lambda h: h["val_ndcg_100"])
    assert resumed["best_epoch"] == best["epoch"]
    # The weights reloaded from checkpoints/best.weights.h5 at the end score as that epoch did.
    for key, value in resumed["validation"].items():
        assert value == pytest.approx(best[key], abs=TOLERANCE), key


def tiny_model(value: float = 0.0):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    set_kernel(model, value)
    return model


def set_kernel(model, value: float) -> None:
    model.layers[0].kernel.assign(np.full((2, 1), value, np.float32))


def kernel_in(path: Path) -> float:
    model = tiny_model()
    model.load_weights(str(path))
    return float(model.layers[0].kernel.numpy()[0, 0])


def history_of(*values):
    """A ranking callback's record as a resumed run reads it from disk."""
    return types.SimpleNamespace(history=[{"epoch": e + 1, "val_ndcg_100": v} for e, v in enumerate(values)])


def epochs(checkpoint, model, ndcgs, first=0):
    """Epochs `first`, `first` + 1, ... whose weights are the epoch index and score `ndcgs`."""
    for epoch, value in enumerate(ndcgs, start=first):
        checkpoint.on_epoch_begin(epoch)
        set_kernel(model, epoch)
        checkpoint.on_epoch_end(epoch, {"val_ndcg_100": value})


def test_best_weights_are_held_until_flushed_and_the_model_keeps_its_own(tmp_path):
    model, best = tiny_model(), tmp_path / "best.weights.h5"
    checkpoint = BestCheckpoint(str(best), history_of())
    checkpoint.set_model(model)
    epochs(checkpoint, model, [0.1, 0.3, 0.2])
    assert not best.exists() and checkpoint.has_best()  # nothing written between flushes
    checkpoint.flush()
    assert kernel_in(best) == 1.0  # epoch 1's weights, the best, not the current epoch 2's
    assert float(model.layers[0].kernel.numpy()[0, 0]) == 2.0  # training goes on from its own
    epochs(checkpoint, model, [0.25], first=3)  # not better than 0.3: nothing new to write
    set_kernel(model, 9)
    checkpoint.on_train_end()
    assert kernel_in(best) == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.weights.h5"]


def test_weights_too_large_to_hold_are_written_at_once(tmp_path):
    model, best = tiny_model(), tmp_path / "best.weights.h5"
    checkpoint = BestCheckpoint(str(best), history_of(), hold_at_most=4)  # the kernel is 8 bytes
    checkpoint.set_model(model)
    epochs(checkpoint, model, [0.1, 0.3])
    assert kernel_in(best) == 1.0


def test_a_resumed_run_replaces_the_best_only_with_an_epoch_better_than_the_restored_ones(tmp_path):
    """Killed after epoch 4 (best: epoch 3, 0.4, held in memory) with the backup at epoch 2: the
    file holds epoch 1 (0.3). The resumed run restores epoch 2 and replays epochs 3 and 4, which
    score as before; epoch 3 must become the best again, though the history on disk lists it."""
    model, best = tiny_model(), tmp_path / "best.weights.h5"
    before_kill = BestCheckpoint(str(best), history_of())
    before_kill.set_model(model)
    epochs(before_kill, model, [0.2, 0.3])
    before_kill.flush()  # the backup of epoch 2
    resumed = BestCheckpoint(str(best), history_of(0.2, 0.3, 0.4, 0.35))
    resumed.set_model(model)
    epochs(resumed, model, [0.4, 0.35], first=2)
    resumed.on_train_end()
    assert kernel_in(best) == 2.0
    restored_better = BestCheckpoint(str(best), history_of(0.2, 0.5, 0.4))  # epoch 2 stays best
    restored_better.set_model(model)
    epochs(restored_better, model, [0.4], first=2)
    restored_better.on_train_end()
    assert kernel_in(best) == 2.0


def test_the_backup_writes_the_held_best_first(tmp_path):
    model = tiny_model()
    model.compile(optimizer="adam", loss="mse")
    checkpoint = BestCheckpoint(str(tmp_path / "best.weights.h5"), history_of())
    checkpoint.set_model(model)
    backup = callbacks.SharedBackupAndRestore(str(tmp_path / "backup"), writer=True, every_seconds=0,
                                              before_backup=checkpoint.flush)
    backup.set_model(model)
    backup.on_train_begin()
    epochs(checkpoint, model, [0.1])
    backup.on_epoch_end(0)
    assert kernel_in(tmp_path / "best.weights.h5") == 0.0


def test_best_checkpoint_survives_a_kill_while_it_is_written(tmp_path, monkeypatch):
    model, best = tiny_model(), tmp_path / "best.weights.h5"
    checkpoint = BestCheckpoint(str(best), history_of())
    checkpoint.set_model(model)
    epochs(checkpoint, model, [0.1])
    checkpoint.flush()
    good = best.read_bytes()

    def killed_mid_write(filepath, overwrite=True):
        Path(filepath).write_bytes(b"half an HDF5 file")
        raise KeyboardInterrupt

    epochs(checkpoint, model, [0.3], first=1)
    monkeypatch.setattr(model, "save_weights", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.flush()
    assert best.read_bytes() == good
    monkeypatch.undo()
    epochs(checkpoint, model, [0.2], first=2)  # not better than 0.3: nothing new is held...
    assert best.read_bytes() == good  # ...and the crash's leftover is not renamed into place
    checkpoint.flush()
    assert kernel_in(best) == 1.0  # epoch 1's weights were still held, and still come first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.weights.h5"]


def test_non_finite_weights_are_never_held(tmp_path):
    model, best = tiny_model(), tmp_path / "best.weights.h5"
    checkpoint = BestCheckpoint(str(best), history_of())
    checkpoint.set_model(model)
    checkpoint.on_epoch_begin(0)
    set_kernel(model, np.nan)
    with pytest.raises(FloatingPointError, match="refusing to checkpoint"):
        checkpoint.on_epoch_end(0, {"val_ndcg_100": 0.1})
    assert not checkpoint.has_best()


def test_backups_are_written_at_epoch_ends_once_the_interval_has_passed(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    clock = [1000.0]
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: clock[0])
    backup = callbacks.SharedBackupAndRestore(str(tmp_path / "backup"), writer=True, every_seconds=60)
    backup.set_model(model)
    backup.on_train_begin()
    written = []
    for epoch, seconds in enumerate([20, 20, 30, 10, 70]):  # time each epoch takes
        clock[0] += seconds
        backup.on_epoch_end(epoch)
        metadata = tmp_path / "backup" / "training_metadata.json"
        written.append(json.loads(metadata.read_text())["epoch"] if metadata.exists() else None)
    # 20+20+30 = 70 s >= 60 at the end of epoch 3; then 10 s (not yet), then 80 s.
    assert written == [None, None, 3, 3, 5]


@pytest.mark.parametrize("killed_in", ["weights", "epoch file"])
def test_a_kill_while_a_backup_is_written_resumes_from_the_whole_backup_before_it(
        tmp_path, monkeypatch, killed_in):
    """Keras' own backup writes its weights, then its epoch file, over the last ones: a kill there
    leaves an empty epoch file (the resume fails) or weights an epoch ahead of it (one epoch is
    trained twice)."""
    folder = tmp_path / "backup"

    def backup_of(model):
        backup = callbacks.SharedBackupAndRestore(str(folder), writer=True, every_seconds=0)
        backup.set_model(model)
        backup.on_train_begin()
        return backup

    model = tiny_model(1.0)
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)  # as after a training step: its slots are saved
    backup = backup_of(model)
    backup.on_epoch_end(0)
    set_kernel(model, 2.0)

    def killed_mid_write(path, *args, **kwargs):
        Path(path).with_name(f".{Path(path).name}.half").write_bytes(b"")
        raise KeyboardInterrupt

    if killed_in == "weights":
        monkeypatch.setattr(model, "save_weights", killed_mid_write)
    else:
        monkeypatch.setattr(callbacks, "write_atomic", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        backup.on_epoch_end(1)
    monkeypatch.undo()

    resumed = tiny_model(0.0)
    resumed.compile(optimizer="adam", loss="mse")
    backup_of(resumed)
    assert float(resumed.layers[0].kernel.numpy()[0, 0]) == 1.0
    assert resumed._initial_epoch == 1

    backup.on_epoch_end(1)  # the next backup replaces the old one and a kill's leftovers
    assert kernel_in(folder / json.loads((folder / "training_metadata.json").read_text())["weights"]) == 2.0
    assert sorted(p.name for p in folder.glob("*.weights.h5*")) == ["epoch-2.weights.h5"]


def test_an_unreadable_backup_names_its_file_and_the_way_out(tmp_path):
    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / "training_metadata.json").write_text("")
    model = tiny_model()
    backup = callbacks.SharedBackupAndRestore(str(folder), writer=True)
    backup.set_model(model)
    with pytest.raises(ValueError, match=r"training_metadata\.json is unreadable.*delete .*backup"):
        backup.on_train_begin()


def rows(*values):
    """(overall, new-movie) validation NDCG@100 per epoch."""
    return [{"epoch": e + 1, "val_ndcg_100": v, "val_new_ndcg_100": n} for e, (v, n) in enumerate(values)]


GUARDED = [(0.400, 0.10), (0.399, 0.20), (0.395, 0.30), (0.3985, 0.25), (0.402, 0.05), (0.401, 0.15)]


def test_the_default_rule_keeps_the_first_of_the_best_epochs():
    rule = callbacks.CheckpointRule()
    assert rule.chosen([]) is None
    assert rule.chosen(rows((0.3, 0), (0.5, 0), (0.5, 0), (0.4, 0)))["epoch"] == 2


def test_the_new_movie_rule_keeps_the_best_new_movie_epoch_near_the_best_overall_one():
    rule = callbacks.CheckpointRule("val_new_ndcg_100", guard="val_ndcg_100", within=0.002)
    kept = [rule.chosen(rows(*GUARDED[:n]))["epoch"] for n in range(1, len(GUARDED) + 1)]
    # 2 is within 0.002 of 0.400 and better on new movies; 3 is not within; 4 is, and better than 2;
    # 5 is a new best overall that leaves 4 behind (0.3985 < 0.402 - 0.002), so 5; then 6.
    assert kept == [1, 2, 2, 4, 5, 6]
    wide = callbacks.CheckpointRule("val_new_ndcg_100", guard="val_ndcg_100", within=1.0)
    assert wide.chosen(rows(*GUARDED))["epoch"] == 3  # everything is within: the best on new movies


def test_best_checkpoint_keeps_what_its_rule_chooses_across_a_resume(tmp_path):
    rule = callbacks.CheckpointRule("val_new_ndcg_100", guard="val_ndcg_100", within=0.002)
    best = tmp_path / "best.weights.h5"

    def run(checkpoint, model, values, first):
        for epoch, (overall, new) in enumerate(values, start=first):
            checkpoint.on_epoch_begin(epoch)
            set_kernel(model, epoch + 1)
            checkpoint.on_epoch_end(epoch, {"val_ndcg_100": overall, "val_new_ndcg_100": new})

    model = tiny_model()
    checkpoint = BestCheckpoint(str(best), types.SimpleNamespace(history=[]), rule)
    checkpoint.set_model(model)
    run(checkpoint, model, GUARDED[:4], first=0)
    checkpoint.flush()
    assert kernel_in(best) == 4.0
    resumed = BestCheckpoint(str(best), types.SimpleNamespace(history=rows(*GUARDED[:4])), rule)
    resumed.set_model(model)
    run(resumed, model, GUARDED[4:5], first=4)
    resumed.on_train_end()
    assert kernel_in(best) == 5.0  # the restored epoch 4 was left behind by epoch 5's overall best
    with pytest.raises(KeyError, match="val_new_ndcg_100"):
        missing = BestCheckpoint(str(best), types.SimpleNamespace(history=[]), rule)
        missing.set_model(model)
        missing.on_epoch_begin(0)
        missing.on_epoch_end(0, {"val_ndcg_100": 0.4})
