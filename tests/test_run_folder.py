"""The run folder: a finished run is reported, not retrained; --retrain starts over; one process at a
time, with a lock that dies with its holder; a failed start leaves nothing that refuses its fix."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, small_run_argv

from hvae_tf.config import parse_args
from hvae_tf.training.run import train
from hvae_tf.training.run_folder import LOCK, RunFolder


def _versions(export_dir):
    return sorted(p.name for p in export_dir.glob("*/*") if p.name.isdigit())


def test_a_finished_run_is_reported_and_retrain_starts_over(generated_data_dir, tmp_path, capsys):
    argv = small_run_argv(generated_data_dir, tmp_path / "run", tmp_path / "saved", "--features", "none")
    first = train(parse_args(argv))
    assert _versions(tmp_path / "saved") == ["1"]
    capsys.readouterr()

    again = train(parse_args(argv))
    out = capsys.readouterr().out
    assert "finished" in out and "--retrain" in out and first["export"] in out
    assert again == json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert _versions(tmp_path / "saved") == ["1"]  # no duplicate export

    (tmp_path / "run" / "validation.json").write_text("[]")  # anything of the old run must go
    retrained = train(parse_args([*argv, "--retrain"]))
    assert _versions(tmp_path / "saved") == ["1", "2"]
    assert [h["epoch"] for h in retrained["history"]] == [1, 2]
    # The same seed on the same data gives the same training.
    assert retrained["validation"] == first["validation"]


def test_a_second_process_on_the_folder_is_refused_naming_the_holder(generated_data_dir, tmp_path):
    argv = small_run_argv(generated_data_dir, tmp_path / "run", tmp_path / "saved", "--features", "none")
    cfg = parse_args(argv)
    with RunFolder(cfg).claimed():
        with pytest.raises(ValueError, match=rf"in use by train.py \(pid {os.getpid()}\)"):
            train(cfg)
    assert not (tmp_path / "run" / "config.json").exists()


def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]);"
        "from hvae_tf.config import parse_args; from hvae_tf.training.run_folder import RunFolder;"
        "cm = RunFolder(parse_args(['--run-dir', sys.argv[2]])).claimed(); cm.__enter__();"
        "print('locked', flush=True); time.sleep(60)"), str(REPO), str(folder)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        cfg = parse_args(["--run-dir", str(folder)])
        with pytest.raises(ValueError, match=rf"pid {holder.pid}"):
            with RunFolder(cfg).claimed():
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert (folder / LOCK).exists()  # the file stays; the lock died with its process
        deadline = time.monotonic() + 5
        with RunFolder(cfg).claimed():
            assert time.monotonic() < deadline
    finally:
        holder.kill()
        holder.wait()


def test_a_failed_start_leaves_nothing_that_refuses_the_corrected_command(
        generated_data_dir, tmp_path, capsys):
    """A wrong --manual-dir fails before training; the corrected command then runs in that folder."""
    run = tmp_path / "run"
    wrong = ["--dataset", "1m", "--manual-dir", str(tmp_path / "nowhere"), "--run-dir", str(run)]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        train(parse_args(wrong))
    assert not (run / "config.json").exists()
    train(parse_args(small_run_argv(generated_data_dir, run, tmp_path / "saved", "--features", "none")))
    assert (run / "metrics.json").exists()


def test_run_dir_that_is_a_file_is_refused_naming_the_flag(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(ValueError, match=r"--run-dir .*file is a file, not a folder"):
        train(parse_args(["--run-dir", str(not_a_folder)]))


def test_a_taken_export_version_is_refused_before_any_training(generated_data_dir, tmp_path):
    argv = small_run_argv(generated_data_dir, tmp_path / "run", tmp_path / "saved", "--features", "none",
                          "--export-version", "3")
    (tmp_path / "saved" / parse_args(argv).model_name / "3").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="--export-version 3"):
        train(parse_args(argv))
    assert not (tmp_path / "run" / "config.json").exists()  # refused before data and model


def test_a_run_kept_by_older_new_movie_metrics_is_refused_not_reused(tmp_path, capsys):
    """--select-new-within keeps an epoch by the validation users' new-movie metrics; a run kept by
    an earlier version of them (new movies ranked by tied scores) would answer for a model this code
    would not keep."""
    from hvae_tf.training.run import VALIDATION_METRICS_VERSION

    argv = ["--dataset", "generated", "--data-dir", str(tmp_path / "tfds"), "--cold-movies", "0.1",
            "--approach", "shared", "--features", "genre", "--run-dir", str(tmp_path / "run")]
    cfg = parse_args([*argv, "--select-new-within", "0.002"])
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text(cfg.to_json())
    done = {"epochs": 3, "best_epoch": 2, "validation": {"val_ndcg_100": 0.3}, "export": "x"}
    (folder / "metrics.json").write_text(json.dumps(done))
    with pytest.raises(ValueError, match=r"run kept its epoch by --select-new-within.*version 1.*--retrain"):
        train(cfg)
    (folder / "metrics.json").write_text(json.dumps({**done, "validation_metrics_version": VALIDATION_METRICS_VERSION}))
    assert train(cfg)["best_epoch"] == 2 and "finished" in capsys.readouterr().out
    # A run kept by overall NDCG@100 alone never read the new-movie metrics: reused as it is.
    overall = tmp_path / "overall"
    plain = parse_args([*argv[:-1], str(overall)])
    overall.mkdir()
    (overall / "config.json").write_text(plain.to_json())
    (overall / "metrics.json").write_text(json.dumps(done))
    assert train(plain)["epochs"] == 3


def test_a_run_whose_recipe_now_resolves_otherwise_is_refused_not_reused(generated_data_dir, tmp_path,
                                                                         monkeypatch, capsys):
    """config.json keeps --recipe as asked: a folder trained when `auto` meant another recipe would
    answer for the model the same command trains today."""
    from hvae_tf import recipes

    argv = small_run_argv(generated_data_dir, tmp_path / "run", None, "--features", "none", recipe="auto",
                          batch_size=32)
    first = train(parse_args(argv))
    assert first["recipe"] == recipes.AUTO_SMALL_CATALOGUE
    assert train(parse_args([*argv, "--epochs", "5"]))["epochs"] == first["epochs"]  # reused as it is
    assert "finished" in capsys.readouterr().out
    other = next(r for r in recipes.RECIPE_SETTINGS if r != recipes.AUTO_SMALL_CATALOGUE)
    monkeypatch.setattr(recipes, "AUTO_SMALL_CATALOGUE", other)
    with pytest.raises(ValueError, match=rf"trained with recipe '{first['recipe']}'.*now gives '{other}'.*--retrain"):
        train(parse_args(argv))
    monkeypatch.undo()
    given = recipes.RECIPE_SETTINGS[first["recipe"]]
    monkeypatch.setitem(recipes.RECIPE_SETTINGS, first["recipe"], {**given, "kl_gamma": 0.5})  # a constant changed
    with pytest.raises(ValueError, match=re.escape(f"kl_gamma: {given['kl_gamma']} -> 0.5") + ".*--retrain"):
        train(parse_args(argv))


def test_a_finished_grid_cell_under_a_relative_out_is_reused_by_the_next_grid(tmp_path, monkeypatch, capsys):
    """The grid names its run folders from --out as given ("results/x"); a second grid command
    (a resumed one) must find its finished cells, whatever spelling their saved config holds."""
    import dataclasses

    from hvae_tf.evaluation.grid import run_cell

    monkeypatch.chdir(tmp_path)
    base = parse_args(["--dataset", "generated", "--data-dir", str(tmp_path / "tfds"), "--features", "none"])
    cell = tmp_path / "results" / "x" / "runs"
    monkeypatch.setattr("hvae_tf.evaluation.grid.keras.backend.clear_session", lambda: None)
    for spelling in ("results/x/runs/{}", str(tmp_path / "results/x/runs/{}"), "/elsewhere/{}"):  # as saved
        name = dataclasses.replace(base, fold=0).model_name
        (cell / name).mkdir(parents=True, exist_ok=True)
        saved = dataclasses.replace(base, fold=0, run_dir=spelling.format(name))
        (cell / name / "config.json").write_text(saved.to_json())
        (cell / name / "metrics.json").write_text(json.dumps(
            {"epochs": 2, "best_epoch": 1, "validation": {"val_ndcg_100": 0.3}, "export": "x"}))
        assert run_cell(base, Path("results/x"), 0, "none", 1) == tmp_path / "results" / "x" / "runs" / name
        assert "holds this run, finished" in capsys.readouterr().out
