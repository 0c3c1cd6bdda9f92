"""Every reused result is keyed on what it was computed from: an evaluation on the weights, the split
and the options; a baseline on the split; a grid cell on its whole configuration. A run that has not
finished is not evaluated unless asked, and then says so."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from hvae_tf.config import TrainConfig
from hvae_tf.evaluation import grid, harness
from hvae_tf.evaluation.schemes import evaluate_scheme
from hvae_tf.metrics import ranking
from hvae_tf.training.restore import load_run, weights_file


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A writable copy of the session's finished run (evaluations write into the run folder)."""
    return shutil.copytree(tiny_run, tmp_path / "run")


def _direct(run_dir, scheme="Eval 2"):
    run = load_run(run_dir)
    return ranking.summarize(evaluate_scheme(run.model.scores, run.split.test, scheme))


def _refuse_scoring(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("scored again although the cached result has the same key")
    monkeypatch.setattr(harness, "evaluate_scheme", fail)


def test_a_cached_evaluation_is_reused_only_for_the_same_weights(run_copy, monkeypatch):
    first = harness.evaluate_run(run_copy)
    with monkeypatch.context() as patch:
        _refuse_scoring(patch)
        assert harness.evaluate_run(run_copy) == first

    # New weights in the same folder (a resumed or retrained run): the evaluation is redone.
    run = load_run(run_copy)
    for w in run.model.trainable_weights:
        w.assign(w.numpy() + np.random.default_rng(0).normal(0, 0.5, w.shape).astype(np.float32))
    run.model.save_weights(str(weights_file(run_copy)))
    second = harness.evaluate_run(run_copy)
    assert second["Eval 2"]["ndcg@100"] != first["Eval 2"]["ndcg@100"]
    assert second["Eval 2"]["ndcg@100"] == pytest.approx(_direct(run_copy)["ndcg@100"], abs=1e-6)


def test_other_options_are_not_answered_from_the_cache(run_copy):
    harness.evaluate_run(run_copy, recall_ks=(20, 50))
    other = harness.evaluate_run(run_copy, recall_ks=(10,))
    assert "recall@10" in other["Eval 2"] and "recall@20" not in other["Eval 2"]


def test_an_unfinished_run_is_refused_unless_asked_and_then_marked(run_copy):
    (run_copy / "metrics.json").unlink()  # as a run killed during training leaves its folder
    with pytest.raises(ValueError, match="not a finished run.*--unfinished"):
        harness.evaluate_run(run_copy)
    result = harness.evaluate_run(run_copy, allow_unfinished=True)
    summary = json.loads((harness.evaluation_folder(run_copy, "test", True) / harness.SUMMARY).read_text())
    assert summary["finished"] is False
    assert result["Eval 2"]["ndcg@100"] == pytest.approx(_direct_unfinished(run_copy), abs=1e-6)


def _direct_unfinished(run_dir):
    run = load_run(run_dir, allow_unfinished=True)
    return ranking.summarize(evaluate_scheme(run.model.scores, run.split.test, "Eval 2"))["ndcg@100"]


def test_a_grid_cell_made_with_other_settings_is_refused_not_reused(tmp_path):
    base = TrainConfig(dataset="generated", protocol="liang", epochs=2)
    cell = dataclasses.replace(base, fold=0, features="none", approach=1)
    folder = tmp_path / "runs" / cell.model_name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(dataclasses.replace(cell, epochs=5).to_json())
    (folder / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match=r"other settings \(epochs: 5 -> 2\).*--out"):
        grid.run_cell(base, tmp_path, 0, "none", 1)


def test_baselines_are_reused_only_for_the_same_split(generated_data_dir, tmp_path, monkeypatch):
    from conftest import small_run_argv

    from hvae_tf.config import parse_args

    base = parse_args(small_run_argv(generated_data_dir))
    folders = grid.baseline_folders(base, tmp_path, 0)
    first = json.loads((folders["EASE"] / harness.SUMMARY).read_text())
    with monkeypatch.context() as patch:
        patch.setattr(grid.EASE, "tuned", lambda *a, **k: pytest.fail("EASE tuned again"))
        grid.baseline_folders(base, tmp_path, 0)
    # A summary computed on another split (its key says so) is computed again.
    stale = {**first, "key": {**first["key"], "split": "another-split"}}
    (folders["EASE"] / harness.SUMMARY).write_text(json.dumps(stale))
    grid.baseline_folders(base, tmp_path, 0)
    assert json.loads((folders["EASE"] / harness.SUMMARY).read_text())["key"] == first["key"]


def test_a_run_whose_data_no_longer_gives_its_split_is_refused(run_copy):
    metrics = json.loads((run_copy / "metrics.json").read_text())
    (run_copy / "metrics.json").write_text(json.dumps({**metrics, "split_fingerprint": "0" * 16}))
    with pytest.raises(ValueError, match="trained on another split.*--retrain"):
        harness.evaluate_run(run_copy)
