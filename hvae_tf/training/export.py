"""A SavedModel that TF Serving can load: raw MovieLens ids in, top-k recommended ids out.

Serving clients know MovieLens movie ids, not our column indices, and send variable-length
histories; TF Serving's REST API takes rectangular tensors, so the input is a batch of padded id
lists (-1 = padding). Unknown ids are ignored, duplicates count once, and the movies a user gave are
never recommended back. The archive needs only TensorFlow to load (no hvae_tf import).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

SIGNATURE_INPUT = "movie_ids"
CONFIG_ASSET = "hvae_config.json"


class RecommenderModule(tf.Module):
    """Wraps a trained user model with the id mapping and the top-k step."""

    def __init__(self, model, movie_ids: np.ndarray, k: int = 100):
        super().__init__()
        self.model = model
        self.k = int(min(k, len(movie_ids)))
        movie_ids = np.asarray(movie_ids, dtype=np.int64)
        self.movie_ids = tf.constant(movie_ids)
        self.id_to_column = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                movie_ids, np.arange(len(movie_ids), dtype=np.int64)
            ),
            default_value=-1,
        )

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name=SIGNATURE_INPUT)])
    def recommend(self, movie_ids):
        columns = self.id_to_column.lookup(movie_ids)
        columns = _drop_repeats(columns)
        scores = self.model.scores(columns)
        seen = _seen_mask(columns, tf.shape(scores)[1])
        scores = tf.where(seen, tf.constant(-np.inf, scores.dtype), scores)
        top = tf.math.top_k(scores, k=self.k, sorted=True)
        found = tf.math.is_finite(top.values)
        ids = tf.where(found, tf.gather(self.movie_ids, top.indices), tf.constant(-1, tf.int64))
        return {"movie_ids": ids, "scores": tf.where(found, top.values, tf.zeros_like(top.values))}


def _drop_repeats(columns):
    """Sort each row and blank out repeated columns, so a duplicated id counts once."""
    columns = tf.sort(columns, axis=1, direction="DESCENDING")
    repeat = tf.concat(
        [tf.zeros_like(columns[:, :1], tf.bool), tf.equal(columns[:, 1:], columns[:, :-1])], axis=1
    )
    return tf.where(repeat, tf.constant(-1, tf.int64), columns)


def _seen_mask(columns, n_movies):
    """[batch, n_movies] boolean: the movies in each user's input (built sparse, not batch x len x N)."""
    valid = tf.where(columns >= 0)
    positions = tf.stack([valid[:, 0], tf.gather_nd(columns, valid)], axis=1)
    batch = tf.shape(columns, out_type=tf.int64)[0]
    return tf.scatter_nd(
        positions, tf.ones([tf.shape(positions)[0]], tf.bool), tf.stack([batch, tf.cast(n_movies, tf.int64)])
    )


def next_version(model_dir: Path) -> int:
    """TF Serving serves the highest integer folder; a new export takes the next one."""
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def export_for_serving(
    model, movie_ids: np.ndarray, export_dir: str | os.PathLike, name: str, *,
    k: int = 100, version: int | None = None, config_json: str | None = None,
) -> Path:
    """Write `<export_dir>/<name>/<version>/` atomically: a temp folder beside it, then a rename.

    TF Serving only picks up integer-named folders, so the half-written temp folder is never served,
    and a crash leaves the previous version in place.
    """
    model_dir = Path(export_dir) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(model_dir) if version is None else int(version)
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} already exists: choose another --export-version or remove it")
    module = RecommenderModule(model, movie_ids, k=k)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir))
    try:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.recommend})
        if config_json is not None:  # lets evaluate.py find the split the model was trained on
            (tmp / "assets.extra").mkdir(exist_ok=True)
            (tmp / "assets.extra" / CONFIG_ASSET).write_text(config_json)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
