"""evaluate.py tune: a search over train.py's settings on tiny generated data, in this process.

Each trial trains 2 epochs of a small model; the tests check what the search writes, that the best
command trains the best parameters, that a search resumes after a kill without running more than
its budget, that pruned runs are marked and never look finished, and that a bad --space is refused.
"""

import csv
import importlib.util
import json
import shlex
from pathlib import Path

import optuna
import pytest
from conftest import REPO, small_run_argv
from optuna.trial import TrialState

from hvae_tf.config import parse_args
from hvae_tf.evaluation import search_space, tuning

# Small and fast: a bool and a categorical exercise the best command's rendering of both.
SPACE = {"lr": ["log", 1e-4, 3e-3], "dropout": ["float", 0.2, 0.7],
         "hidden_dim": ["cat", [16, 32]], "normalize_input": ["cat", [True, False]]}


def load_evaluate():
    spec = importlib.util.spec_from_file_location("evaluate_script", REPO / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tune_argv(data_dir, out, trials, space=SPACE, *extra):
    return ["tune", *small_run_argv(data_dir, None, None, "--features", "none"),
            "--out", str(out), "--trials", str(trials), "--space", json.dumps(space),
            "--no-pruning", *extra]


def base_config(data_dir):
    return parse_args(small_run_argv(data_dir, None, None, "--features", "none"))


def load_study(out):
    names = optuna.get_all_study_names(f"sqlite:///{out / 'study.db'}")
    assert len(names) == 1, names
    return optuna.load_study(study_name=names[0], storage=f"sqlite:///{out / 'study.db'}")


def run_folders(out) -> list[Path]:
    return sorted(p for p in (out / "trials").iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def watched(generated_data_dir):
    """Every scoring call of the module's searches, and the split they trained on: to show that
    the tuner scores validation users and never test users."""
    from hvae_tf.data import prepare
    from hvae_tf.metrics import ranking

    splits, scored = [], []
    real_prepare, real_score = prepare.prepare, ranking.score_users

    def watched_prepare(cfg, *args, **kwargs):
        data, split = real_prepare(cfg, *args, **kwargs)
        splits.append(split)
        return data, split

    def watched_score(scores, fold_in, held_out, *args, **kwargs):
        scored.append((fold_in, held_out))
        return real_score(scores, fold_in, held_out, *args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(prepare, "prepare", watched_prepare)
    patch.setattr(ranking, "score_users", watched_score)
    yield splits, scored
    patch.undo()


@pytest.fixture(scope="module")
def two_trials(tmp_path_factory, generated_data_dir, watched):
    """A 2-trial search, run through evaluate.py as a user would."""
    out = tmp_path_factory.mktemp("tune") / "study"
    assert load_evaluate().main(tune_argv(generated_data_dir, out, 2)) == 0
    return out


def test_two_trials_then_three_runs_one_more_and_writes_the_best(two_trials, generated_data_dir,
                                                                    capsys):
    out = two_trials
    assert len(run_folders(out)) == 2
    assert load_evaluate().main(tune_argv(generated_data_dir, out, 3)) == 0
    study = load_study(out)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE] * 3  # exactly one more trial, not three
    assert len(run_folders(out)) == 3  # and it is a new one: a restart does not repeat trials
    for t in study.trials:  # each trial trained in its own folder, to the end
        folder = out / "trials" / t.user_attrs["folder"]
        assert folder.name == tuning.trial_key(t.params)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert t.value == pytest.approx(metrics["validation"]["val_ndcg_100"])
        assert t.user_attrs["epochs"] == 2 and sorted(t.intermediate_values) == [1, 2]
        # The study holds validation numbers only.
        assert all(k in ("folder", "epochs", "best_epoch") or k.startswith("val_") for k in t.user_attrs)

    best = json.loads((out / "best.json").read_text())
    top = max(study.trials, key=lambda t: t.value)
    assert best["trial"] == top.number and best["value"] == pytest.approx(top.value)
    assert best["params"] == top.params

    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [int(r["trial"]) for r in rows] == [0, 1, 2]
    assert {r["state"] for r in rows} == {"COMPLETE"}
    for row, t in zip(rows, study.trials):
        assert float(row["val_ndcg_100"]) == pytest.approx(t.value)
        assert float(row["lr"]) == t.params["lr"] and int(row["epochs"]) == 2
    md = (out / "trials.md").read_text()
    assert md.count("| COMPLETE |") == 3 and "validation users only" in md

    command = (out / "best_command.txt").read_text().strip()
    assert command in capsys.readouterr().out  # printed at the end
    words = shlex.split(command)
    assert words[:2] == ["python", "train.py"]
    cfg = parse_args(words[2:])
    for name, value in top.params.items():
        assert getattr(cfg, name) == value, name
    base = base_config(generated_data_dir)
    for name in ("dataset", "generated_users", "heldout_users", "protocol", "epochs", "batch_size",
                 "latent_dim", "data_dir", "features", "seed"):
        assert getattr(cfg, name) == getattr(base, name), name
    assert cfg.run_dir == str(out / "best")


def test_a_killed_trial_is_failed_and_asked_again_with_its_parameters(two_trials, generated_data_dir):
    out = two_trials
    study = load_study(out)
    done = len(study.trials)
    space = search_space.parse_space(json.dumps(SPACE), base_config(generated_data_dir))
    # A trial a kill left behind: asked, given its parameters, never finished.
    killed = study.ask()
    params = {name: space[name].suggest(killed, name) for name in space}
    assert load_study(out).trials[killed.number].state == TrialState.RUNNING

    assert load_evaluate().main(tune_argv(generated_data_dir, out, done + 1)) == 0
    trials = load_study(out).trials
    assert trials[killed.number].state == TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == params
    assert retry[0].user_attrs["folder"] == tuning.trial_key(params)
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == done + 1

    # Run again with the budget met: nothing more trains, nothing is asked again.
    assert load_evaluate().main(tune_argv(generated_data_dir, out, done + 1)) == 0
    assert len(load_study(out).trials) == len(trials)


def test_the_search_scores_validation_users_only(two_trials, watched):
    splits, scored = watched
    assert splits and scored
    validation = {id(s.validation.fold_in) for s in splits}
    test = {id(s.test.fold_in) for s in splits} | {id(s.test.full) for s in splits}
    assert all(id(fold_in) in validation for fold_in, _ in scored)
    assert not any(id(fold_in) in test for fold_in, _ in scored)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_a_pruned_trial_is_marked_and_never_looks_finished(tmp_path, generated_data_dir):
    from hvae_tf.evaluation import harness

    base = base_config(generated_data_dir)
    space = search_space.parse_space(json.dumps(SPACE), base)
    out = tmp_path / "pruned"
    study = tuning.run_study(base, out, space, n_trials=1, pruner=AlwaysPrune())
    (trial,) = study.trials
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [1]  # pruned after its first epoch, not run to 2
    folder = out / "trials" / trial.user_attrs["folder"]
    assert not (folder / "metrics.json").exists()
    assert harness.finished_metrics(folder) is None
    assert not (folder / "saved_models").exists()  # nothing exported
    assert json.loads((folder / tuning.PRUNED_MARK).read_text())["epochs"] == 1
    assert trial.user_attrs["epochs"] == 1
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["state"] for r in rows] == ["PRUNED"]
    assert not (out / "best.json").exists() and not (out / "best_command.txt").exists()


def test_another_base_command_is_refused_on_the_same_out(two_trials, generated_data_dir, capsys):
    argv = tune_argv(generated_data_dir, two_trials, 1, SPACE, "--latent-dim", "4")
    assert load_evaluate().main(argv) == 2
    error = capsys.readouterr().err
    assert "another tuning command" in error and "latent_dim: 8 -> 4" in error and "--out" in error


@pytest.mark.parametrize("space, words", [
    ({"no_such_setting": ["float", 0, 1]}, ["no_such_setting", "not a train.py setting"]),
    ({"dropout": ["float", 0.2, 1.5]}, ["dropout", "[0, 1)", "1.5"]),
    ({"hidden_dim": ["cat", [300, 0]]}, ["hidden_dim", ">= 1"]),
    ({"batch_size": ["log", 10, 100]}, ["batch_size", "whole numbers"]),
    ({"lr": ["log", 0, 1e-3]}, ["lr", "low > 0"]),
    ({"fold": ["cat", [0, 1]]}, ["fold", "not searchable"]),
])
def test_a_bad_space_is_refused_naming_the_flag_and_the_field(space, words, tmp_path,
                                                               generated_data_dir, capsys):
    with pytest.raises(SystemExit) as stop:
        load_evaluate().main(tune_argv(generated_data_dir, tmp_path / "out", 1, space))
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "--space" in error and all(w in error for w in words), error
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_the_default_space_holds_only_fields_train_py_has():
    from hvae_tf.config import TrainConfig

    for recipe in (None, "mult-vae", "recvae", "vasp"):
        space = search_space.default_space(recipe)
        assert {"lr", "dropout", "hidden_dim", "latent_dim"} <= set(space)
        assert set(space) <= set(TrainConfig.__dataclass_fields__)
        search_space.check_space(space, TrainConfig())
    assert {"kl_gamma", "encoder_passes"} <= set(search_space.default_space("recvae"))
    assert not {"anneal_cap", "anneal_steps"} & set(search_space.default_space("recvae"))
    assert {"shallow_l2", "shallow_speed"} <= set(search_space.default_space("vasp"))
    assert "kl_gamma" not in search_space.default_space("mult-vae")


@pytest.mark.slow
def test_a_search_killed_mid_trial_resumes_that_trial_in_its_folder(tmp_path, generated_data_dir):
    """A real kill -9 of evaluate.py tune while a trial trains; the same command then finishes it in
    the same run folder (train.py's backup) and runs no more than the budget."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed"
    epochs = 40  # the kill comes after 5: enough left that the trial is still training then
    argv = [sys.executable, str(REPO / "evaluate.py"),
            *tune_argv(generated_data_dir, out, 2, {"lr": ["log", 1e-4, 3e-3]}),
            "--epochs", str(epochs), "--backup-every", "0"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    search = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and search.poll() is None:
            histories = list((out / "trials").glob("*/validation.json")) if (out / "trials").exists() else []
            if histories and len(json.loads(histories[0].read_text())) >= 5:
                break
            time.sleep(0.2)
        assert search.poll() is None, "the search ended before it could be killed"
        os.kill(search.pid, signal.SIGKILL)
    finally:
        if search.poll() is None:
            os.kill(search.pid, signal.SIGKILL)
        search.wait()
    (killed_folder,) = run_folders(out)
    assert not (killed_folder / "metrics.json").exists()
    before = len(json.loads((killed_folder / "validation.json").read_text()))

    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "was interrupted: asked again" in done.stdout
    trials = load_study(out).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    retry = trials[1]
    assert retry.user_attrs["retry_of"] == 0 and retry.params == trials[0].params
    assert retry.user_attrs["folder"] == killed_folder.name
    assert len(run_folders(out)) == 2
    metrics = json.loads((killed_folder / "metrics.json").read_text())
    assert metrics["epochs"] == epochs and [h["epoch"] for h in metrics["history"]] == list(range(1, epochs + 1))
    # Every epoch reported to the pruner once: those before the kill from validation.json.
    assert sorted(retry.intermediate_values) == list(range(1, epochs + 1))
    assert before >= 5
