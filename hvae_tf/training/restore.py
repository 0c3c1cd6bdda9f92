"""A finished run folder back in memory: its config, data, fold, embeddings and best weights."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from hvae_tf.config import TrainConfig
from hvae_tf.data import prepare
from hvae_tf.data.protocols import Split
from hvae_tf.data.schema import MovieLensData
from hvae_tf.embeddings import movie_embeddings
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


def load_run(path: str | Path, verbose: bool = False) -> Run:
    path = Path(path)
    config_file, weights = path / "config.json", path / "checkpoints" / "best.weights.h5"
    for needed in (config_file, weights):
        if not needed.exists():
            raise FileNotFoundError(
                f"{needed} is missing: {path} is not a finished run folder of train.py "
                "(run train.py with --run-dir pointing there first)"
            )
    cfg = TrainConfig.from_json(config_file.read_text())
    data, split = prepare.prepare(cfg, verbose=verbose)
    embeddings = movie_embeddings(cfg, data, split)
    model = build_model(split.n_movies, embeddings, **cfg.part("model"))
    model(padded_indices(split.train[:2]))
    model.load_weights(str(weights))
    return Run(path, cfg, data, split, embeddings, model)
