"""A hyperparameter search over train.py's settings, scored on validation users only.

Each trial is an ordinary train.py run (`train(cfg)`, in this process) in `<out>/trials/<key>/`,
where the key is a hash of the trial's parameters: a trial that a kill interrupted is asked again
with the same parameters, lands in the same folder, and resumes there through train.py's own
backup. Its objective is the run's best validation NDCG@100; test users are never scored.

Optuna does the searching: TPE proposes parameters, the median pruner stops runs whose validation
NDCG@100 trails the other trials' at the same epoch, and the study lives in `<out>/study.db`
(SQLite), so a killed search picks up where it was when the same command is run again.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import hashlib
import io
import json
import os
import shlex
import time
from pathlib import Path

import keras
import optuna
from optuna.trial import TrialState

from hvae_tf import recipes
from hvae_tf.config import TrainConfig, absolute_path, describe_differences, flag_of, parse_args
from hvae_tf.data import prepare
from hvae_tf.evaluation.search_space import Distribution, check_space, default_space, space_to_json
from hvae_tf.io import write_atomic
from hvae_tf.training.run import train

OBJECTIVE = "val_ndcg_100"  # RankingMetrics' name for validation NDCG@100
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)  # what --trials counts
PRUNED_MARK = "pruned.json"  # in a pruned trial's run folder: stopped by the pruner, not finished
LOCK = ".tune.lock"
# Settings that say how a run is carried out or where it writes, not what it learns.
NOT_IDENTITY = frozenset({"verbose", "strategy"})


class InvalidTrial(Exception):
    """Parameters that cannot train together (a check across two searched settings)."""


class ReportValidation(keras.callbacks.Callback):
    """Reports each epoch's validation NDCG@100 to the trial, and stops a run the pruner gives up on.

    Last in the callback list: the ranking callback has put `val_ndcg_100` into `logs`, and the
    checkpoint and backup of the epoch are written before a pruned run stops. A resumed run first
    reports the epochs it ran before the kill (kept in validation.json), so the pruner compares
    the same epochs as for an uninterrupted run.
    """

    def __init__(self, trial: optuna.Trial, history_path: Path):
        super().__init__()
        self.trial, self.history_path = trial, Path(history_path)
        self.reported: set[int] = set()

    def _report(self, epoch: int, value: float) -> None:
        if epoch not in self.reported:  # Optuna ignores, with a warning, a step reported twice
            self.trial.report(float(value), epoch)
            self.reported.add(epoch)

    def report_history(self) -> None:
        for entry in read_history(self.history_path):
            self._report(entry["epoch"], entry[OBJECTIVE])

    def _prune_if_asked(self, epoch: int, value: float) -> None:
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: validation NDCG@100 {value:.4f}")

    def on_train_begin(self, logs=None):
        self.report_history()
        if self.reported:
            last = max(read_history(self.history_path), key=lambda h: h["epoch"])
            self._prune_if_asked(last["epoch"], last[OBJECTIVE])

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(OBJECTIVE)
        if value is None:
            return
        self._report(epoch + 1, value)
        self._prune_if_asked(epoch + 1, value)


def read_history(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def trial_key(params: dict) -> str:
    """The folder name of a trial: the same parameters always give the same folder."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def study_identity(base: TrainConfig, space: dict[str, Distribution]) -> dict:
    """What makes two tuning commands the same study: the base settings that change what a run
    learns, other than the searched ones, and the space. Only settings away from their defaults
    count, so a setting added to TrainConfig later does not rename existing studies."""
    defaults = TrainConfig()
    settings = {f.name: getattr(base, f.name) for f in dataclasses.fields(TrainConfig)
                if f.metadata["parts"] & {"split", "features", "model", "fit"}
                and f.name not in NOT_IDENTITY and f.name not in space
                and getattr(base, f.name) != getattr(defaults, f.name)}
    return {"settings": settings, "space": space_to_json(space)}


def study_name(base: TrainConfig, space: dict[str, Distribution]) -> str:
    identity = json.dumps(study_identity(base, space), sort_keys=True, default=str)
    return "tune-" + hashlib.sha256(identity.encode()).hexdigest()[:12]


def _refuse_other_study(storage: str, name: str, base: TrainConfig, space, out: Path) -> None:
    """A --out holding the study of another base command or space is refused, naming what differs."""
    for other in optuna.get_all_study_names(storage):
        if other == name:
            continue
        attrs = optuna.load_study(study_name=other, storage=storage).user_attrs
        saved = TrainConfig.from_json(attrs["base_config"]) if "base_config" in attrs else None
        diff = {} if saved is None else {
            k: v for k, v in base.result_differences(saved).items()
            if k not in space and k not in attrs.get("space", {})}
        what = [describe_differences(diff)] if diff else []
        if attrs.get("space") != space_to_json(space):
            what.append(f"--space: {json.dumps(attrs.get('space'))} -> {json.dumps(space_to_json(space))}")
        raise ValueError(
            f"--out {out} holds the study {other} of another tuning command "
            f"({'; '.join(what) or 'other settings'}), not this one ({name}): pass another --out "
            "for this command, or run the one that made it to continue that study")


@contextlib.contextmanager
def _claimed(out: Path):
    """One search per --out at a time: so a trial left RUNNING in the study is one a kill left."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"--out {out} is in use by another evaluate.py tune; wait for it to "
                             "finish, or pass another --out") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        yield


def open_study(base: TrainConfig, out: Path, space: dict[str, Distribution],
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """The study of this command in `<out>/study.db`: created, or loaded to continue it."""
    out.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(out / 'study.db').absolute()}"
    name = study_name(base, space)
    _refuse_other_study(storage, name, base, space, out)
    study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                direction="maximize", pruner=pruner)
    # Seeded from --seed and the trials already stored: the same command proposes the same
    # trials, and a restarted search does not propose again the ones its first run did.
    study.sampler = optuna.samplers.TPESampler(seed=base.seed + len(study.trials))
    if "base_config" not in study.user_attrs:
        study.set_user_attr("base_config", base.to_json())
        study.set_user_attr("space", space_to_json(space))
    return study


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Trials a kill (left RUNNING) or Ctrl-C interrupted are marked failed and asked again with
    the same parameters, so that their run folder resumes; returns the trials asked again."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    again = []
    for t in trials:
        interrupted = t.state == TrialState.RUNNING or (
            t.state == TrialState.FAIL and t.user_attrs.get("interrupted"))
        # Enqueued before it is marked failed: a kill in between leaves it RUNNING, to be retried.
        if interrupted and t.number not in retried and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            again.append(t.number)
        if t.state == TrialState.RUNNING:
            study.tell(t.number, state=TrialState.FAIL)
    return again


def counted(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def make_objective(base: TrainConfig, out: Path, space: dict[str, Distribution], n_trials: int):
    def objective(trial: optuna.Trial) -> float:
        params = {name: space[name].suggest(trial, name) for name in sorted(space)}
        folder = out / "trials" / trial_key(params)
        trial.set_user_attr("folder", folder.name)
        cfg = dataclasses.replace(base, **params, run_dir=str(folder),
                                  export_dir=str(folder / "saved_models"))
        problems = cfg.problems()
        if problems:
            raise InvalidTrial(f"trial {trial.number} ({params}): {problems[0]}")
        print(f"[tune {counted(trial.study) + 1}/{n_trials}] trial {trial.number}: "
              f"{json.dumps(params)} in {folder}", flush=True)
        reporter = ReportValidation(trial, folder / "validation.json")
        (folder / PRUNED_MARK).unlink(missing_ok=True)  # trained again now: no longer pruned
        keras.backend.clear_session()
        try:
            metrics = train(cfg, extra_callbacks=(reporter,))
        except optuna.TrialPruned:
            history = read_history(folder / "validation.json")
            _record(trial, history, max(history, key=lambda h: h[OBJECTIVE]))
            write_atomic(folder / PRUNED_MARK, json.dumps(
                {"trial": trial.number, "epochs": len(history),
                 "note": "stopped by the pruner: not a finished run"}, indent=2))
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)  # asked again when the search is restarted
            raise
        reporter.report_history()  # a run finished before (a retried trial) reported nothing
        _record(trial, metrics["history"], {"epoch": metrics["best_epoch"], **metrics["validation"]})
        return float(metrics["validation"][OBJECTIVE])

    return objective


def _record(trial: optuna.Trial, history: list[dict], best: dict) -> None:
    """The trial's validation numbers, for the tables (validation users only)."""
    trial.set_user_attr("epochs", len(history))
    trial.set_user_attr("best_epoch", int(best["epoch"]))
    for key, value in best.items():
        if key.startswith("val_"):
            trial.set_user_attr(key, float(value))


def train_command(cfg: TrainConfig, searched=()) -> str:
    """The train.py command of `cfg`: every setting away from train.py's defaults, and the searched
    ones always (a recipe would otherwise fill a searched setting equal to the plain default)."""
    defaults = parse_args([])
    words = ["python", "train.py"]
    for f in dataclasses.fields(TrainConfig):
        value, meta = getattr(cfg, f.name), f.metadata
        if value is None or (value == getattr(defaults, f.name) and f.name not in searched):
            continue
        flag = meta["flag"] or flag_of(f.name)
        if meta["action"] == "store_true":
            words += [flag] if value else []
        elif meta["action"] == "store_false":
            words += [] if value else [flag]
        elif meta["path"]:  # relative to where the command runs when that reads back the same
            relative = os.path.relpath(value)
            words += [flag, relative if absolute_path(relative) == value else value]
        else:
            words += [flag, repr(value) if isinstance(value, float) else str(value)]
    return shlex.join(words)


def _cell(value, short: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if short else repr(value)
    return str(value)


def trial_rows(study: optuna.Study, space) -> tuple[list[str], list[list]]:
    header = ["trial", "state", *sorted(space), "val_ndcg_100", "best_epoch", "epochs", "folder",
              "retry_of"]
    rows = []
    for t in study.get_trials(deepcopy=False):
        value = t.value if t.state == TrialState.COMPLETE else t.user_attrs.get(OBJECTIVE)
        rows.append([t.number, t.state.name, *(t.params.get(name) for name in sorted(space)),
                     value, t.user_attrs.get("best_epoch"), t.user_attrs.get("epochs"),
                     t.user_attrs.get("folder"), t.user_attrs.get("retry_of")])
    return header, rows


def write_outputs(study: optuna.Study, base: TrainConfig, out: Path, space) -> str | None:
    """trials.md, trials.csv, and once a trial has completed, best.json and best_command.txt;
    returns the best command."""
    header, rows = trial_rows(study, space)
    text = io.StringIO()
    csv.writer(text).writerows([header, *([_cell(v, False) for v in row] for row in rows)])
    write_atomic(out / "trials.csv", text.getvalue())
    lines = [f"# {study.study_name}: validation NDCG@100 per trial", "",
             "Scored on validation users only. PRUNED: stopped by the pruner (best epoch so far); "
             "FAIL: stopped by an error or a kill (a killed trial is asked again on restart: retry_of).",
             "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v, True) for v in row) + " |" for row in rows]
    write_atomic(out / "trials.md", "\n".join(lines) + "\n")
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    best = study.best_trial
    command = train_command(dataclasses.replace(base, **best.params, run_dir=str(out / "best")),
                            searched=tuple(best.params))
    write_atomic(out / "best.json", json.dumps({
        "trial": best.number, "value": best.value, "params": best.params,
        "best_epoch": best.user_attrs.get("best_epoch"), "epochs": best.user_attrs.get("epochs"),
        "folder": str(out / "trials" / best.user_attrs.get("folder", "")), "study": study.study_name,
    }, indent=2))
    write_atomic(out / "best_command.txt", command + "\n")
    return command


def median_pruner(startup_trials: int, warmup_epochs: int) -> optuna.pruners.BasePruner:
    """Stops a trial whose validation NDCG@100 is below the median of earlier trials' at the same
    epoch, once `startup_trials` trials have finished and after `warmup_epochs` epochs."""
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs)


def resolve_space(base: TrainConfig, space: dict[str, Distribution] | None) -> dict[str, Distribution]:
    """The given space, or the default one for the recipe the base command trains."""
    if space is not None:
        return space
    recipe = base.recipe
    if recipe == "auto":  # chosen by the catalogue's size
        _, split = prepare.prepare(base, verbose=False)
        recipe = recipes.recipe_for(recipe, split.n_movies)[0]
    space = default_space(recipe)
    try:
        check_space(space, base)
    except ValueError as error:
        raise ValueError(f"the default space does not fit this command ({error}): pass --space") from None
    return space


def run_study(base: TrainConfig, out: str | Path, space: dict[str, Distribution] | None = None, *,
              n_trials: int = 30, timeout: float | None = None,
              pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Run trials until `n_trials` have completed or been pruned (earlier runs of the same
    command included), or `timeout` seconds have passed; write the tables and the best command."""
    out = Path(out).absolute()
    space = resolve_space(base, space)
    deadline = None if timeout is None else time.monotonic() + timeout
    with _claimed(out):
        study = open_study(base, out, space, pruner or median_pruner(5, 10))
        for number in recover_interrupted(study):
            print(f"trial {number} was interrupted: asked again with its parameters, to resume its run")
        print(f"study {study.study_name} in {out / 'study.db'}: {counted(study)}/{n_trials} trials "
              f"done; space {json.dumps(space_to_json(space))}", flush=True)
        objective = make_objective(base, out, space, n_trials)
        failed = 0
        write_outputs(study, base, out, space)
        while counted(study) < n_trials:
            if deadline is not None and time.monotonic() >= deadline:
                print(f"--timeout {timeout:g}s reached: {counted(study)}/{n_trials} trials done; "
                      "run the same command again to continue")
                break
            if failed >= n_trials:
                print(f"stopping: {failed} trials failed in this run (see the errors above)")
                break
            before = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
            study.optimize(objective, n_trials=1, catch=(FloatingPointError, InvalidTrial),
                           gc_after_trial=True)
            failed += len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))) - before
            write_outputs(study, base, out, space)  # after each trial: a kill keeps the tables
        command = write_outputs(study, base, out, space)
    if command is None:
        print("no trial has completed yet: no best configuration")
    else:
        best = study.best_trial
        print(f"best: trial {best.number}, validation NDCG@100 {best.value:.4f}, {best.params}\n"
              f"train it: {command}")
    return study
