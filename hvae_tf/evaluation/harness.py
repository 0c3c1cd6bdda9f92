"""Evaluate anything that ranks (a run, a baseline, a served model) the same way, and keep per-user
vectors on disk so any two results on the same fold can be tested for significance later.

Layout of an evaluation folder: one `<scheme>.npz` per scheme (per-user metrics + user ids, see
significance.save_per_user) and `summary.json` (means, users scored, users excluded). A folder
that already has its summary is reused, never recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import tensorflow as tf

from hvae_tf.config import SCHEMES, TrainConfig
from hvae_tf.data import prepare
from hvae_tf.data.protocols import HeldOutUsers, Split
from hvae_tf.evaluation.schemes import evaluate_scheme
from hvae_tf.evaluation.significance import save_per_user
from hvae_tf.io import write_atomic
from hvae_tf.metrics import ranking
from hvae_tf.training.export import CONFIG_ASSET
from hvae_tf.training.restore import load_run

SUMMARY = "summary.json"


def scheme_file(folder: Path, scheme: str) -> Path:
    return Path(folder) / f"{scheme.lower().replace(' ', '')}.npz"


def evaluate_scorer(
    scorer, users: HeldOutUsers, folder: str | Path, *, schemes: Iterable[str] = SCHEMES,
    masked: bool = True, recall_ks=(20, 50), ndcg_ks=(100,), metadata: dict | None = None,
) -> dict[str, dict[str, float]]:
    """Means per scheme; per-user vectors saved beside them. Reuses a finished folder."""
    folder = Path(folder)
    if (folder / SUMMARY).exists():
        return json.loads((folder / SUMMARY).read_text())["schemes"]
    summaries = {}
    for scheme in schemes:
        per_user = evaluate_scheme(scorer, users, scheme, masked=masked,
                                   recall_ks=recall_ks, ndcg_ks=ndcg_ks)
        save_per_user(scheme_file(folder, scheme), per_user, users.user_ids,
                      metadata={**(metadata or {}), "scheme": scheme, "masked": masked})
        summaries[scheme] = ranking.summarize(per_user)
    write_atomic(folder / SUMMARY, json.dumps(
        {"schemes": summaries, "masked": masked, **(metadata or {})}, indent=2))
    return summaries


def held_out_users(split: Split, name: str) -> HeldOutUsers:
    if name not in ("test", "validation"):
        raise ValueError(f"--split {name!r}: choose test or validation")
    return getattr(split, name)


def evaluation_folder(base: Path, split_name: str, masked: bool) -> Path:
    return Path(base) / "eval" / (split_name + ("" if masked else "-unmasked"))


def evaluate_run(path, split_name: str = "test", masked: bool = True, **options):
    """Eval 1 and Eval 2 of a finished train.py run folder, on its own fold's users."""
    folder = evaluation_folder(Path(path), split_name, masked)
    if (folder / SUMMARY).exists():
        return json.loads((folder / SUMMARY).read_text())["schemes"]
    run = load_run(path)
    return evaluate_scorer(run.model.scores, held_out_users(run.split, split_name), folder,
                           masked=masked, metadata={"model": run.config.model_name,
                                                    "fold": run.config.fold}, **options)


def evaluate_saved_model(path, split_name: str = "test", recall_ks=(20, 50), ndcg_ks=(100,)):
    """Eval 2 of an exported SavedModel through its serving signature, as TF Serving would answer.

    The served model never returns the movies it was given, so only the masked Eval 2 applies.
    """
    path = Path(path)
    asset = path / "assets.extra" / CONFIG_ASSET
    if not asset.exists():
        raise FileNotFoundError(
            f"{asset} is missing: {path} is not a SavedModel written by train.py "
            "(give the version folder, e.g. saved_models/<name>/1)")
    cfg = TrainConfig.from_json(asset.read_text())
    _, split = prepare.prepare(cfg, verbose=False)
    users = held_out_users(split, split_name)
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    depth = max((*recall_ks, *ndcg_ks))
    if cfg.export_k < depth:
        raise ValueError(f"{path} returns {cfg.export_k} movies, fewer than the k={depth} asked for: "
                         f"export with --export-k {depth} or ask for smaller k")
    order = np.argsort(split.movie_ids)

    def top_lists(fold_in):
        columns = ranking.padded_indices(fold_in)
        ids = np.where(columns >= 0, split.movie_ids[np.maximum(columns, 0)], -1)
        served = serve(movie_ids=tf.constant(ids, tf.int64))["movie_ids"].numpy()[:, :depth]
        found = np.searchsorted(split.movie_ids[order], served)
        return np.where(served >= 0, order[np.minimum(found, len(order) - 1)], -1)

    per_user = ranking.score_top_lists(top_lists, users.fold_in, users.held_out,
                                       recall_ks=recall_ks, ndcg_ks=ndcg_ks)
    folder = evaluation_folder(path.parent / f".eval-{path.name}", split_name, True)
    save_per_user(scheme_file(folder, "Eval 2"), per_user, users.user_ids,
                  metadata={"model": cfg.model_name, "fold": cfg.fold, "scheme": "Eval 2"})
    return {"Eval 2": ranking.summarize(per_user)}
