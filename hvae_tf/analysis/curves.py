"""Training curves as one PNG, read from the run's TensorBoard event files, for those who don't open
TensorBoard.

Keras' TensorBoard callback writes `train/` and `validation/` subfolders with tags such as
`epoch_loss`, `epoch_kl_weight` and (from our ranking callback) `epoch_ndcg_100`. TF2 writes
scalars as tensor summaries, so they appear under `Tags()['tensors']`, not `['scalars']`. A
resumed run has several event files that repeat epochs; the last value written for a step wins.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from hvae_tf.analysis import figures

Series = dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]  # folder -> tag -> (steps, values)


def _has_events(folder: Path) -> bool:
    return any(f.name.startswith("events.out.tfevents") for f in folder.iterdir() if f.is_file())


def _read_folder(folder: Path, prefix: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0, "scalars": 0})  # 0: keep all
    acc.Reload()
    tags = acc.Tags()
    series = {}
    for tag in tags["tensors"]:
        if not tag.startswith(prefix):
            continue
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue  # e.g. Keras' "keras" text summary of the model config
        by_step = {e.step: float(tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)}
        series[tag] = by_step
    for tag in tags["scalars"]:  # TF1-style summaries, in case a run was written that way
        if tag.startswith(prefix) and tag not in series:
            series[tag] = {e.step: float(e.value) for e in acc.Scalars(tag)}
    return {
        tag: (np.array(sorted(by_step)), np.array([by_step[s] for s in sorted(by_step)]))
        for tag, by_step in series.items() if by_step
    }


def read_scalars(log_dir, prefix: str = "epoch_") -> Series:
    """Scalars whose tag starts with `prefix`, per folder holding event files (`train`,
    `validation`, or "." for `log_dir` itself)."""
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        raise FileNotFoundError(f"{log_dir}: no such log folder (the run's TensorBoard logs, e.g. RUN/logs)")
    folders = [log_dir] + sorted(p for p in log_dir.iterdir() if p.is_dir())
    out: Series = {}
    for folder in folders:
        if not _has_events(folder):
            continue
        series = _read_folder(folder, prefix)
        if series:
            out["." if folder == log_dir else folder.name] = series
    if not out:
        raise ValueError(
            f"{log_dir}: no event files with '{prefix}*' scalars in it or its subfolders; "
            "pass the folder given to keras.callbacks.TensorBoard(log_dir=...)"
        )
    return out


# Panels in reading order: what is optimised, what shapes it, then what is measured.
PANEL_ORDER = ("loss", "reconstruction_loss", "kl_loss", "kl_weight", "learning_rate",
               "ndcg_100", "recall_20", "recall_50")


def _label(name: str) -> str:
    """'ndcg_100' -> 'NDCG@100', 'kl_loss' -> 'kl loss'."""
    ranked = re.fullmatch(r"(ndcg|recall)_(\d+)", name)
    if ranked:
        return f"{'NDCG' if ranked.group(1) == 'ndcg' else 'Recall'}@{ranked.group(2)}"
    return name.replace("_", " ")


def plot_training_curves(log_dir, path, prefix: str = "epoch_", title: str | None = None,
                         ncols: int = 3):
    """One panel per quantity (loss, KL, NDCG@100, ...), a line per folder (train, validation)."""
    plt = figures.plt
    series = read_scalars(log_dir, prefix)
    names = {tag[len(prefix):] for tags in series.values() for tag in tags}
    quantities = [n for n in PANEL_ORDER if n in names] + sorted(names - set(PANEL_ORDER))
    ncols = min(ncols, len(quantities))
    nrows = math.ceil(len(quantities) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    styles = {"train": ("-", "C0"), "validation": ("--", "C1")}
    for ax, name in zip(axes.ravel(), quantities):
        for i, (folder, tags) in enumerate(series.items()):
            if prefix + name in tags:
                steps, values = tags[prefix + name]
                line, colour = styles.get(folder, ("-.", f"C{2 + i}"))
                # Keras counts epochs from 0; people count them from 1.
                ax.plot(steps + 1, values, line, color=colour, marker="o", markersize=3, label=folder)
        ax.set_title(_label(name))
        ax.set_xlabel("epoch")
        ax.set_ylabel(_label(name))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    for ax in axes.ravel()[len(quantities):]:
        ax.axis("off")
    fig.suptitle(title or f"Training curves: {os.path.abspath(log_dir)}", fontsize=12)
    fig.tight_layout()
    return figures.save_figure(fig, path)
