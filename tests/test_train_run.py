"""train.py end to end on small generated data: run folder, TensorBoard scalars, flag checks.

Runs are in-process (hvae_tf.training.run.train), one per model kind, sharing one generated
release; each is a few seconds once TensorFlow is loaded.
"""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import small_run_argv
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hvae_tf.config import TrainConfig, parse_args
from hvae_tf.training.run import train

REPO = Path(__file__).resolve().parents[1]
BATCH, EPOCHS, ANNEAL_STEPS, ANNEAL_CAP = 64, 2, 8, 0.2
MODEL_KINDS = {
    "standard": ["--features", "none"],
    "genome-approach1": ["--features", "genome", "--approach", "1"],
    "genome-approach2": ["--features", "genome", "--approach", "2"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, generated_data_dir):
    """One finished run per model kind: {kind: (argv, metrics)}."""
    root = tmp_path_factory.mktemp("train-run")
    done = {}
    for kind, flags in MODEL_KINDS.items():
        argv = small_run_argv(generated_data_dir, root / "runs" / kind, root / "saved", *flags,
                              batch_size=BATCH, epochs=EPOCHS, anneal_steps=ANNEAL_STEPS,
                              anneal_cap=ANNEAL_CAP)
        done[kind] = (argv, train(parse_args(argv)))
    return done


def run_dir(argv) -> Path:
    return Path(argv[argv.index("--run-dir") + 1])


def event_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """TF2 summaries are tensors: {tag: [(step, value), ...]} from a TensorBoard log folder."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return {
        tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]
        for tag in events.Tags()["tensors"]
    }


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_run_folder_holds_config_best_checkpoint_and_metrics(runs, kind):
    argv, metrics = runs[kind]
    folder = run_dir(argv)
    assert TrainConfig.from_json((folder / "config.json").read_text()) == parse_args(argv)
    assert (folder / "checkpoints" / "best.weights.h5").stat().st_size > 0
    assert not (folder / "backup").exists()  # BackupAndRestore cleans up after a finished run
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["epochs"] == EPOCHS
    history = saved["history"]
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
    best = max(history, key=lambda h: h["val_ndcg_100"])
    assert saved["best_epoch"] == best["epoch"]
    # The best checkpoint is what was reloaded and scored at the end.
    for name, value in saved["validation"].items():
        assert value == pytest.approx(best[name], abs=1e-6), name
    assert json.loads((folder / "validation.json").read_text()) == history
    assert Path(metrics["export"]).parent.name == parse_args(argv).model_name


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_tensorboard_holds_validation_ranking_and_train_losses_per_epoch(runs, kind):
    argv, metrics = runs[kind]
    logs = run_dir(argv) / "logs"
    validation, training = event_scalars(logs / "validation"), event_scalars(logs / "train")
    epochs = list(range(EPOCHS))
    for name in ("ndcg_100", "recall_20", "recall_50"):
        steps, values = zip(*validation[f"epoch_{name}"])
        assert list(steps) == epochs, name
        expected = [h[f"val_{name}"] for h in metrics["history"]]
        np.testing.assert_allclose(values, expected, rtol=1e-6, err_msg=name)
    for name in ("loss", "reconstruction_loss", "kl_loss", "kl_weight", "learning_rate"):
        steps, values = zip(*training[f"epoch_{name}"])
        assert list(steps) == epochs and np.isfinite(values).all(), name
    assert [v for _, v in training["epoch_learning_rate"]] == pytest.approx([1e-3] * EPOCHS)
    # The epoch's mean KL weight follows the documented schedule min(cap, step / anneal_steps).
    steps_per_epoch = math.ceil(_train_users(argv) / BATCH)
    expected_beta = [
        np.mean([min(ANNEAL_CAP, t / ANNEAL_STEPS)
                 for t in range(e * steps_per_epoch, (e + 1) * steps_per_epoch)])
        for e in epochs
    ]
    np.testing.assert_allclose([v for _, v in training["epoch_kl_weight"]], expected_beta, rtol=1e-5)


def _train_users(argv) -> int:
    from hvae_tf.data import prepare

    _, split = prepare.prepare(parse_args(argv), verbose=False)
    return split.train.shape[0]


def test_run_dir_of_another_configuration_is_refused_naming_the_flags(runs, capsys):
    argv, _ = runs["standard"]
    before = (run_dir(argv) / "config.json").read_text()
    other = [*argv, "--hidden-dim", "16", "--lr", "0.01"]
    spec = importlib.util.spec_from_file_location("train_script", REPO / "train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(other) == 2
    message = capsys.readouterr().err
    assert "hidden_dim: 32 -> 16" in message and "lr: 0.001 -> 0.01" in message, message
    assert str(run_dir(argv)) in message
    assert (run_dir(argv) / "config.json").read_text() == before  # nothing overwritten


@pytest.mark.parametrize("flags, named", [
    (["--approach", "3"], "--approach"),
    (["--features", "imbd"], "--features"),
])
def test_bad_choices_exit_2_naming_the_flag(flags, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(flags)
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err
