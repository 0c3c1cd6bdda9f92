"""A finished run folder back in memory: its config, data, fold, embeddings and best weights."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from hvae_tf import recipes
from hvae_tf.config import TrainConfig
from hvae_tf.data import prepare
from hvae_tf.data.protocols import Split
from hvae_tf.data.schema import MovieLensData
from hvae_tf.embeddings import content_similarity, movie_embeddings
from hvae_tf.metrics.ranking import padded_indices
from hvae_tf.models import build_model


@dataclasses.dataclass
class Run:
    path: Path
    config: TrainConfig
    data: MovieLensData
    split: Split
    embeddings: np.ndarray | None
    model: object  # a StandardVAE or HybridVAE with the best weights loaded
    finished: bool  # False only when loaded with allow_unfinished


def weights_file(path: str | Path) -> Path:
    return Path(path) / "checkpoints" / "best.weights.h5"


def finished_metrics(path: str | Path) -> dict | None:
    """metrics.json of a finished run (train.py writes it last), or None."""
    metrics = Path(path) / "metrics.json"
    return json.loads(metrics.read_text()) if metrics.exists() else None


def load_run(path: str | Path, verbose: bool = False, allow_unfinished: bool = False) -> Run:
    """A finished run (or, with allow_unfinished, one still training or stopped) in memory, after
    checking that its data still gives the split it was trained on."""
    path = Path(path)
    config_file, weights = path / "config.json", weights_file(path)
    for needed in (config_file, weights):
        if not needed.exists():
            raise FileNotFoundError(
                f"{needed} is missing: {path} is not a run folder of train.py with a checkpoint "
                "(run train.py with --run-dir pointing there first)"
            )
    metrics = finished_metrics(path)
    if metrics is None and not allow_unfinished:
        raise ValueError(
            f"{path} is not a finished run (train.py writes metrics.json last, and it is missing): "
            "finish it by running its train.py command again, or pass --unfinished to score its "
            "best checkpoint so far"
        )
    cfg = TrainConfig.from_json(config_file.read_text())
    data, split = prepare.prepare(cfg, verbose=verbose)
    trained_on = (metrics or {}).get("split_fingerprint")
    if trained_on is not None and trained_on != split.fingerprint():
        raise ValueError(
            f"{path} was trained on another split than its configuration gives now (split "
            f"{trained_on}, now {split.fingerprint()}): the data under --manual-dir/--data-dir "
            "changed since; retrain it (train.py ... --retrain) or restore the data"
        )
    cfg = recipes.resolve(cfg, split.train.shape[0], split.n_movies).config
    embeddings = movie_embeddings(cfg, data, split)
    model = build_model(split.n_movies, embeddings, train_clicks=split.train,  # loading fills the weights
                        new_movies=split.new_movies, **content_similarity(cfg, embeddings), **cfg.part("model"))
    model(padded_indices(split.train[:2]))
    try:
        model.load_weights(str(weights))
    except ValueError as error:  # Keras names the layers whose variables do not fit
        raise ValueError(
            f"{weights} does not fit the model its configuration builds now (a run trained by an "
            f"earlier version of this package whose layers have changed since?): retrain it "
            f"(train.py ... --retrain). Keras said: {error}") from error
    return Run(path, cfg, data, split, embeddings, model, finished=metrics is not None)
