"""What every analysis picture shares: the Agg backend, atomic PNG output, colours, 2-D views.

The pictures are written on machines without a display (training servers, CI), and a reader
that opens a PNG while it is being written must never see half an image.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display on training machines

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA


def save_figure(fig, path: str | os.PathLike, dpi: int = 130) -> Path:
    """Save as PNG beside the target and rename into place; `bbox_inches="tight"` keeps
    legends placed outside the axes inside the image."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: pictures are written as PNG; give a path ending in .png")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would survive the rename and hide the picture from other users.
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp.png"
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def category_colours(n: int) -> list:
    """Up to 20 colours that stay distinguishable; beyond, a smooth map.

    tab20 comes in dark/light pairs of one hue: the ten dark ones go first, so that the first
    (most common) categories never share a hue.
    """
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in [*range(0, 20, 2), *range(1, 20, 2)][:n]]
    return [plt.get_cmap("gist_ncar")(i / n) for i in range(n)]


def to_2d(points: np.ndarray, reference: np.ndarray | None = None) -> tuple[np.ndarray, str, str]:
    """Points in 2-D for a scatter, with the axis labels to print.

    2-d input is shown as is; wider input is projected on the first two principal components of
    `reference` (default: the points), so that two sets can be compared in one frame.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.shape[1] == 2:
        return points, "dimension 1", "dimension 2"
    pca = PCA(n_components=2, svd_solver="full").fit(points if reference is None else reference)
    share = pca.explained_variance_ratio_
    return (
        pca.transform(points),
        f"principal component 1 ({share[0]:.0%} of variance)",
        f"principal component 2 ({share[1]:.0%} of variance)",
    )


def sample_rows(n: int, max_points: int | None, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded sample without replacement (all rows when n is small)."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def check_rows(name: str, array_rows: int, other: str, other_rows: int) -> None:
    if array_rows != other_rows:
        raise ValueError(
            f"{name} has {array_rows} rows but {other} has {other_rows}: "
            "they must describe the same items in the same order"
        )


def shorten(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"
