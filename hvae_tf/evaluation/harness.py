"""Evaluate anything that ranks (a run, a baseline, a served model) the same way, and keep per-user
vectors on disk so any two results on the same fold can be tested for significance later.

Layout of an evaluation folder: one `<scheme>.npz` per scheme (per-user metrics + user ids, see
significance.save_per_user) and `summary.json` (means, users scored, users excluded, and the key).
A folder is reused only for the same key: what was scored (the weights' hash, or the baseline and
its settings), on which users (the split's fingerprint and test/validation) and with which options
(schemes, masking, ks, the segment metrics' version). Anything else is computed again.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Iterable

import numpy as np
import tensorflow as tf

from hvae_tf.config import HELD_OUT_SPLITS, SCHEMES, TrainConfig
from hvae_tf.data import prepare
from hvae_tf.data.protocols import HeldOutUsers, Split
from hvae_tf.evaluation import segments as segmenting
from hvae_tf.evaluation.schemes import evaluate_scheme, with_segments
from hvae_tf.evaluation.significance import save_per_user
from hvae_tf.io import file_digest, write_atomic
from hvae_tf.metrics import ranking
from hvae_tf.training.export import CONFIG_ASSET, load_served
from hvae_tf.training.restore import finished_metrics, load_run, weights_file

SUMMARY = "summary.json"


def scheme_file(folder: Path, scheme: str) -> Path:
    return Path(folder) / f"{scheme.lower().replace(' ', '')}.npz"


def scheme_files(folder: Path) -> dict[str, Path]:
    """Each scheme's per-user file of an evaluation folder."""
    return {scheme: scheme_file(folder, scheme) for scheme in SCHEMES}


def evaluation_key(scored: dict, *, split_fingerprint: str, split_name: str,
                   schemes: Iterable[str] = SCHEMES, masked: bool = True,
                   recall_ks=(20, 50), ndcg_ks=(100,)) -> dict:
    """Everything an evaluation's numbers depend on; `scored` names what ranked (weights, model)."""
    return {**scored, "split": split_fingerprint, "users": split_name, "schemes": list(schemes),
            "masked": bool(masked), "recall_ks": [int(k) for k in recall_ks],
            "ndcg_ks": [int(k) for k in ndcg_ks], "segments": segmenting.VERSION}


def cached(folder: str | Path, key: dict) -> dict | None:
    """The saved per-scheme means of `folder` when they were computed for `key`, else None."""
    summary = Path(folder) / SUMMARY
    if not summary.exists():
        return None
    saved = json.loads(summary.read_text())
    return saved["schemes"] if saved.get("key") == key else None


def evaluate_scorer(
    scorer, split: Split, split_name: str, folder: str | Path, key: dict, *,
    metadata: dict | None = None, new_movie_scorer=None,
) -> dict[str, dict[str, float]]:
    """Means per scheme (the schemes and options named by `key`, see evaluation_key) on the
    split's `split_name` users, segment metrics included; per-user vectors saved beside them. A
    folder computed for the same key is reused."""
    folder = Path(folder)
    reused = cached(folder, key)
    if reused is not None:
        return reused
    users = held_out_users(split, split_name)
    summaries = {}
    options = dict(masked=key["masked"], recall_ks=key["recall_ks"], ndcg_ks=key["ndcg_ks"],
                   segments=segmenting.for_split(split, users, split_name), new_movie_scorer=new_movie_scorer)
    for scheme in key["schemes"]:
        clicks = {}
        per_user = evaluate_scheme(scorer, users, scheme, click_ranks=clicks, **options)
        save_per_user(scheme_file(folder, scheme), per_user, users.user_ids,
                      metadata={**(metadata or {}), "scheme": scheme, "masked": key["masked"]},
                      clicks=clicks)
        summaries[scheme] = ranking.summarize(per_user)
    # Written last: a folder whose summary is missing or keyed otherwise is never read as done.
    write_atomic(folder / SUMMARY, json.dumps(
        {"schemes": summaries, "masked": key["masked"], "key": key, **(metadata or {})}, indent=2))
    return summaries


def check_split_name(name: str) -> None:
    if name not in HELD_OUT_SPLITS:
        raise ValueError(f"--split {name!r}: choose {' or '.join(HELD_OUT_SPLITS)}")


def held_out_users(split: Split, name: str) -> HeldOutUsers:
    check_split_name(name)
    return getattr(split, name)


def evaluation_folder(base: Path, split_name: str, masked: bool) -> Path:
    return Path(base) / "eval" / (split_name + ("" if masked else "-unmasked"))


def evaluate_run(path, split_name: str = "test", masked: bool = True, allow_unfinished: bool = False,
                 recall_ks=(20, 50), ndcg_ks=(100,)):
    """Eval 1 and Eval 2 of a train.py run folder, on its own fold's users. A run that has not
    finished is refused unless `allow_unfinished`, and its result is then marked unfinished."""
    path = Path(path)
    folder = evaluation_folder(path, split_name, masked)
    check_split_name(split_name)  # a wrong name fails before any work
    options = dict(split_name=split_name, masked=masked, recall_ks=recall_ks, ndcg_ks=ndcg_ks)
    metrics = finished_metrics(path)
    weights = {"weights": file_digest(weights_file(path))} if weights_file(path).exists() else {}
    if metrics and metrics.get("split_fingerprint") and weights:
        # A finished run's key needs no data: reuse without loading the release.
        reused = cached(folder, evaluation_key(weights, split_fingerprint=metrics["split_fingerprint"],
                                               **options))
        if reused is not None:
            return reused
    run = load_run(path, allow_unfinished=allow_unfinished)
    key = evaluation_key(weights, split_fingerprint=run.split.fingerprint(), **options)
    return evaluate_scorer(run.model.scores, run.split, split_name, folder, key,
                           metadata={"model": run.config.model_name, "fold": run.config.fold,
                                     "finished": run.finished},
                           new_movie_scorer=run.model.new_movie_scores)


def evaluate_saved_model(path, split_name: str = "test", recall_ks=(20, 50), ndcg_ks=(100,)):
    """Eval 2 of an exported SavedModel through its serving signature, as TF Serving would answer.

    The served model never returns the movies it was given, so only the masked Eval 2 applies;
    its segment metrics come from its top list, and the ranking among new movies from its list
    of new movies.
    """
    path = Path(path)
    asset = path / "assets.extra" / CONFIG_ASSET
    if not asset.exists():
        raise FileNotFoundError(
            f"{asset} is missing: {path} is not a SavedModel written by train.py "
            "(give the version folder, e.g. saved_models/<name>/1)")
    cfg = TrainConfig.from_json(asset.read_text())
    depth = max((*recall_ks, *ndcg_ks))
    if cfg.export_k < depth:
        raise ValueError(f"{path} returns {cfg.export_k} movies, fewer than the k={depth} asked for: "
                         f"export with --export-k {depth} or ask for smaller k")
    serve = load_served(path).signatures["serving_default"]  # an incomplete export fails here
    _, split = prepare.prepare(cfg, verbose=False)
    if len(split.validation_new_movies):
        raise ValueError(f"{path} was trained with --validation-new-movies: its shelf of new movies "
                         "also ranks the validation users' own new movies, which the test's "
                         "new-movie metrics leave out; evaluate its run folder instead "
                         "(python evaluate.py RUN_DIR)")
    users = held_out_users(split, split_name)
    order = np.argsort(split.movie_ids)

    def top_lists(fold_in, answer="movie_ids"):
        columns = ranking.padded_indices(fold_in)
        ids = np.where(columns >= 0, split.movie_ids[np.maximum(columns, 0)], -1)
        served = serve(movie_ids=tf.constant(ids, tf.int64))[answer].numpy()[:, :depth]
        found = np.searchsorted(split.movie_ids[order], served)
        return np.where(served >= 0, order[np.minimum(found, len(order) - 1)], -1)

    segments = segmenting.for_split(split, users, split_name)
    options = dict(recall_ks=recall_ks, ndcg_ks=ndcg_ks)
    served_shelf = functools.partial(  # the served shelf of new movies
        ranking.score_top_lists, lambda fold_in: top_lists(fold_in, "new_movie_ids"), **options)
    clicks = {}
    per_user = with_segments(functools.partial(ranking.score_top_lists, top_lists, **options),
                             served_shelf if "new" in segments.movie_groups else None,
                             users, segments, depth, clicks)
    folder = evaluation_folder(path.parent / f".eval-{path.name}", split_name, True)
    save_per_user(scheme_file(folder, "Eval 2"), per_user, users.user_ids,
                  metadata={"model": cfg.model_name, "fold": cfg.fold, "scheme": "Eval 2"}, clicks=clicks)
    return {"Eval 2": ranking.summarize(per_user)}
