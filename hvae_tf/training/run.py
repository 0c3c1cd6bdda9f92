"""One training run, start to end: data, embeddings, model.fit under a strategy, outputs.

The run folder holds everything needed to trust and reuse the run: config.json (refused if another
configuration already lives there), TensorBoard logs, the best checkpoint by validation NDCG@100,
the BackupAndRestore state that lets a killed run resume, and metrics.json.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from hvae_tf import recipes
from hvae_tf.baselines.ease import logit_start
from hvae_tf.config import TrainConfig, describe_differences
from hvae_tf.data import pipeline, prepare
from hvae_tf.embeddings import content_similarity, movie_embeddings
from hvae_tf.models import build_model
from hvae_tf.training import callbacks as hvae_callbacks
from hvae_tf.training.export import check_export_target, export_for_serving
from hvae_tf.training.optimizer import FusedAdam
from hvae_tf.training.run_folder import RunFolder
from hvae_tf.training.strategy import is_chief, make_strategy


def layer_sizes(cfg: TrainConfig, n_movies: int) -> str:
    """e.g. [3502-600-200-600-3502]; RecVAE's five encoder layers as 600x5; "+ shallow path"."""
    if cfg.architecture == "recvae":
        sizes = f"[{n_movies}-{cfg.hidden_dim}x5-{cfg.latent_dim}-{n_movies}]"
    else:
        sizes = f"[{n_movies}-{cfg.hidden_dim}-{cfg.latent_dim}-{cfg.hidden_dim}-{n_movies}]"
    if cfg.shallow == "none":
        return sizes
    return sizes + f" + {n_movies}x{n_movies} {'frozen ' if cfg.shallow == 'frozen' else ''}shallow path"


def describe(cfg: TrainConfig, split, embeddings, model) -> str:
    if embeddings is None:
        feats = "none (Standard-VAE)"
    elif cfg.approach == "shared":
        feats = (f"{cfg.features} -> {embeddings.shape[1]} columns ({cfg.shared_input}) -> "
                 f"{cfg.shared_dim}-d shared movie vectors, sharing hybrid"
                 + (f", content kNN path over {cfg.content_neighbours} neighbours" if cfg.content_neighbours else ""))
    else:
        feats = (f"{cfg.features} -> {embeddings.shape[1]}-d movie embeddings, approach {cfg.approach}"
                 + (", trainable" if cfg.trainable_embeddings else ", frozen"))
    return (
        f"data {cfg.dataset}/{cfg.protocol} fold {cfg.fold}: {split.train.shape[0]:,} train users, "
        f"{split.n_movies:,} movies, {split.train.nnz:,} clicks | features {feats} | model "
        f"{layer_sizes(cfg, split.n_movies)} {cfg.likelihood}, {model.count_params():,} parameters"
    )


# Written into metrics.json: raise it when the validation metrics an epoch is kept by change, so a
# finished run whose epoch was kept by the earlier ones is not reused as if kept by these. 2: new
# movies ranked among themselves by `new_movie_scores`, untied (`--select-new-within` reads them).
VALIDATION_METRICS_VERSION = 2


def check_still_current(cfg: TrainConfig, done: dict) -> None:
    """Refuse a finished run that this code would not train the same from its configuration."""
    check_selection_current(cfg, done)
    check_recipe_current(cfg, done)


def check_recipe_current(cfg: TrainConfig, done: dict) -> None:
    """Refuse a finished run whose recipe resolved to other settings than it does now: config.json
    keeps the recipe as asked, so a folder made when `auto` (or a recipe) meant something else
    would otherwise answer for the model the same command trains today."""
    if "settings" not in done:  # from before recipes: nothing recorded to compare
        return
    _, split = prepare.prepare(cfg, verbose=False)
    now = recipes.resolve(cfg, split.train.shape[0], split.n_movies)
    # The annealing length is fitted to --epochs, which a finished run may be asked with anew.
    changed = {name: (done["settings"].get(name), getattr(now.config, name)) for name in recipes.RECIPE_FIELDS
               if name != "anneal_steps" and done["settings"].get(name) != getattr(now.config, name)}
    if now.recipe != done.get("recipe") or changed:
        raise ValueError(
            f"{cfg.run_path} was trained with recipe {done.get('recipe')!r}, and --recipe {cfg.recipe} "
            f"now gives {now.recipe!r}" + (f" ({describe_differences(changed)})" if changed else "")
            + ": pass --retrain to train it again, or delete the folder")


def check_selection_current(cfg: TrainConfig, done: dict) -> None:
    """Refuse a finished run whose kept epoch may not be the one this code would keep."""
    version = done.get("validation_metrics_version", 1)
    if cfg.select_new_within is not None and version != VALIDATION_METRICS_VERSION:
        raise ValueError(
            f"{cfg.run_path} kept its epoch by --select-new-within on validation metrics of version "
            f"{version}, before new movies were ranked among themselves untied (now version "
            f"{VALIDATION_METRICS_VERSION}); its epoch may not be the one this code keeps: pass "
            "--retrain to train it again, or delete the folder")


def train(cfg: TrainConfig, extra_callbacks=()) -> dict:
    """Train as configured; returns the metrics also written to metrics.json. `extra_callbacks`
    run after train.py's own (a tuner's pruning reads the epoch's validation metrics there).

    Only the chief (worker 0, or a single process) owns the run folder; other workers of a
    multi-worker job write their share of the checkpoints to a folder of their own.
    """
    if not is_chief():
        done = RunFolder(cfg).finished()  # the chief reports it and returns: so must this worker
        if done is not None and not cfg.retrain:
            check_still_current(cfg, done)  # as the chief does
            return done
        run = Path(tempfile.mkdtemp(prefix="hvae-worker-"))
        try:
            return _fit(cfg, run, folder=None, extra_callbacks=extra_callbacks)
        finally:
            shutil.rmtree(run, ignore_errors=True)
    folder = RunFolder(cfg)
    with folder.claimed():
        folder.check_configuration()
        done = folder.finished()
        if done is not None and not cfg.retrain:
            check_still_current(cfg, done)
            print(f"{folder.path} holds this run, finished: {done['epochs']} epochs, best validation "
                  f"NDCG@100 {done['validation']['val_ndcg_100']:.4f} (epoch {done['best_epoch']}), "
                  f"SavedModel {done.get('export', '(none)')}. Pass --retrain to train it again "
                  "from scratch.")
            return done
        # Before hours of training, and before a retrain removes anything.
        check_export_target(cfg.export_dir, cfg.model_name, cfg.export_version)
        if cfg.retrain:
            folder.start_over()
        return _fit(cfg, folder.path, folder, extra_callbacks)


def best_weights(run: Path) -> Path:
    return run / "checkpoints" / "best.weights.h5"


def checkpoint_rule(cfg: TrainConfig) -> hvae_callbacks.CheckpointRule:
    if cfg.select_new_within is None:
        return hvae_callbacks.CheckpointRule("val_ndcg_100")
    return hvae_callbacks.CheckpointRule("val_new_ndcg_100", guard="val_ndcg_100",
                                         within=cfg.select_new_within)


def fit_callbacks(cfg: TrainConfig, run: Path, split, train_ds, chief: bool):
    """The ranking callback and every callback of a train.py fit, in the order they must run."""
    best = best_weights(run)
    best.parent.mkdir(parents=True, exist_ok=True)
    ranking = hvae_callbacks.RankingMetrics(
        split.validation.fold_in, split.validation.held_out, history_path=run / "validation.json",
        new_movies=split.new_movies_of("validation"),
    )
    checkpoint = hvae_callbacks.BestCheckpoint(str(best), ranking, checkpoint_rule(cfg))
    return ranking, [
        hvae_callbacks.ScalarLogs(),  # first: the others read its plain floats
        hvae_callbacks.StopOnNaN(checkpoint),  # raises FloatingPointError naming the step
        ranking,  # before TensorBoard and the checkpoint: they read its values from `logs`
        hvae_callbacks.StopWhenNotImproving(ranking, cfg.patience),
        hvae_callbacks.RefreshPrior(),  # before the backup, which must hold the refreshed copy
        keras.callbacks.TensorBoard(log_dir=str(run / "logs"), update_freq="epoch"),
        checkpoint,
        # In the chief's run folder for every worker.
        hvae_callbacks.SharedBackupAndRestore(
            str(cfg.run_path / "backup"), writer=chief, restore=chief or not cfg.retrain,
            every_seconds=cfg.backup_every, before_backup=checkpoint.flush),
        hvae_callbacks.ReplayEpochRandomness(train_ds),  # a resumed run replays the same epochs
    ]


def fit(model, cfg: TrainConfig, split, train_ds, callbacks) -> None:
    try:
        model.fit(
            # One iterator for the whole fit, reshuffled each pass: epoch e's order is set by the
            # number of passes drawn before it, which ReplayEpochRandomness replays after a resume.
            train_ds.repeat(),
            steps_per_epoch=math.ceil(split.train.shape[0] / cfg.batch_size),
            epochs=cfg.epochs,
            verbose=cfg.verbose,
            shuffle=False,  # the pipeline shuffles, seeded
            callbacks=callbacks,
        )
    except BaseException:
        # A stop on NaN or Ctrl-C still leaves the best epoch so far on disk.
        for callback in callbacks:
            if isinstance(callback, hvae_callbacks.BestCheckpoint):
                callback.flush()
        raise


def shallow_start(cfg: TrainConfig, train) -> dict:
    """build_model's start for the shallow path: the closed form (EASE, or EDLAE with a dropout)
    on the training users, as click logits; nothing when the path starts from zeros or is off."""
    if cfg.shallow not in ("ease", "frozen"):
        return {}
    weights, bias = logit_start(train, cfg.shallow_init_l2, seed=cfg.seed, dropout=cfg.shallow_init_dropout)
    return {"shallow_weights": weights, "shallow_bias": bias}


def _fit(cfg: TrainConfig, run: Path, folder: RunFolder | None, extra_callbacks=()) -> dict:
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(cfg.strategy)
    chief = folder is not None

    data, split = prepare.prepare(cfg, verbose=chief)
    name = cfg.model_name  # as asked: the recipe's choices do not rename the run
    resolved = recipes.resolve(cfg, split.train.shape[0], split.n_movies)
    cfg = resolved.config
    if chief:
        print("settings: " + "; ".join(resolved.choices))
    embeddings = movie_embeddings(cfg, data, split)
    train_ds = pipeline.padded_batches(split.train, cfg.batch_size, seed=cfg.seed)
    shallow = {**shallow_start(cfg, split.train), **content_similarity(cfg, embeddings)}

    with strategy.scope():
        model = build_model(split.n_movies, embeddings, train_clicks=split.train, **shallow,
                            new_movies=split.new_movies,
                            **cfg.part("model"))
        model.compile(optimizer=FusedAdam(cfg.lr), jit_compile=False)
        # Called once inside the scope, before fit: Keras 3's fit under a strategy fails on a model
        # it has to build itself (the sparse input is made inside the model).
        model(next(iter(train_ds)))
    if chief:
        print(describe(cfg, split, embeddings, model))
        folder.write_config()  # only now: a start that failed before this leaves nothing to refuse

    ranking, callbacks = fit_callbacks(cfg, run, split, train_ds, chief)
    fit(model, cfg, split, train_ds, [*callbacks, *extra_callbacks])
    best = best_weights(run)
    model.load_weights(str(best))
    final = ranking.compute()
    metrics = {
        "model_name": name,
        "recipe": resolved.recipe,
        "settings": {field: getattr(cfg, field) for field in recipes.RECIPE_FIELDS},
        "epochs": len(ranking.history),  # history.history holds only this process's epochs
        "best_epoch": checkpoint_rule(cfg).chosen(ranking.history)["epoch"],
        "validation": final,
        "history": ranking.history,
        "split_fingerprint": split.fingerprint(),  # evaluate.py checks the data still gives it
        "validation_metrics_version": VALIDATION_METRICS_VERSION,
    }
    if chief:
        hvae_callbacks.require_finite_weights(model, "export")
        exported = export_for_serving(
            model, split.movie_ids, cfg.export_dir, name,
            k=cfg.export_k, version=cfg.export_version, config_json=cfg.to_json(),
        )
        metrics["export"] = str(exported)
        folder.write_metrics(metrics)  # last: it marks the run as finished
        print(f"validation {final} | SavedModel {exported} | run folder {run}")
    return metrics
