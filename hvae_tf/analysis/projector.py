"""Movie embeddings in TensorBoard's projector, with titles and genres to hover and search.

Keras 3's `TensorBoard(embeddings_freq=...)` writes nothing the projector can read. What works: a `tf.train.Checkpoint` of the embedding variable, a metadata.tsv and
a projector config, in a folder that also holds an event file, so that TensorBoard lists it as a
run. The folder is built beside its target and renamed into place.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

METADATA_FILE = "metadata.tsv"
CHECKPOINT_PREFIX = "embedding"
# The name tf.train.Checkpoint gives the variable attached as `embedding=`.
TENSOR_NAME = "embedding/.ATTRIBUTES/VARIABLE_VALUE"


def _tsv_field(text: str) -> str:
    # A tab or newline inside a title would shift every column after it.
    return " ".join(str(text).split())


def metadata_tsv(titles: Sequence[str], movie_genres: Sequence[Sequence[str]]) -> str:
    """Header row then one row per movie: the projector needs the header when there are 2+ columns."""
    lines = ["title\tgenres"]
    lines += [f"{_tsv_field(t)}\t{_tsv_field('|'.join(g))}" for t, g in zip(titles, movie_genres)]
    return "\n".join(lines) + "\n"


def write_projector(log_dir, embeddings, titles: Sequence[str],
                    movie_genres: Sequence[Sequence[str]], name: str = "movie_embeddings") -> Path:
    """Write `log_dir/name/` for the projector; `tensorboard --logdir log_dir` (or a folder above)
    shows it as run `name`. Returns that folder; an older one of the same name is replaced."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be [movies, dims], got shape {embeddings.shape}")
    if not (len(embeddings) == len(titles) == len(movie_genres)):
        raise ValueError(
            f"{len(embeddings)} embeddings, {len(titles)} titles and {len(movie_genres)} genre "
            "lists: they must describe the same movies in the same order"
        )
    if not np.isfinite(embeddings).all():
        raise ValueError("embeddings contain NaN or inf: check the model that produced them")
    if not name or os.sep in name or name.startswith("."):
        raise ValueError(f"name={name!r} must be a plain folder name")

    import tensorflow as tf  # only here (and after the checks): importing it takes seconds
    from tensorboard.plugins import projector

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    target = log_dir / name
    # Not mkdtemp: its 0700 mode would survive the rename and hide the run from other users.
    tmp = log_dir / f".{name}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.mkdir()
    try:
        (tmp / METADATA_FILE).write_text(metadata_tsv(titles, movie_genres), encoding="utf-8")
        # save() (not write()) also writes the `checkpoint` index the projector looks for, with a
        # path relative to the folder, so the folder can be renamed and moved.
        tf.train.Checkpoint(embedding=tf.Variable(embeddings)).save(str(tmp / CHECKPOINT_PREFIX))
        config = projector.ProjectorConfig()
        info = config.embeddings.add()
        info.tensor_name = TENSOR_NAME
        info.metadata_path = METADATA_FILE
        projector.visualize_embeddings(str(tmp), config)
        # The event file makes the folder a run; the text says what the run holds.
        writer = tf.summary.create_file_writer(str(tmp))
        with writer.as_default():
            tf.summary.text(
                "about", f"{len(embeddings):,} movies x {embeddings.shape[1]} dims; "
                "open the PROJECTOR tab (metadata: title, genres)", step=0,
            )
        writer.close()
        old = log_dir / f".{name}.{uuid.uuid4().hex[:12]}.old"
        if target.exists():
            os.replace(target, old)  # a directory cannot be renamed over a non-empty one
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
