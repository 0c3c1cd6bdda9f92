"""The movie embedding space: do its clusters follow genres (Fig. 4), and how far did H-VAE
training move it (Fig. 5)?

Each picture comes with a number, because a scatter alone persuades too easily: adjusted mutual
information between k-means clusters and first genres (0 = chance, 1 = the same partition), and
for before/after both the mean displacement relative to the cloud's spread (did points move?) and
the Procrustes disparity (did the *shape* change, beyond a rotation, shift and scale?).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy.spatial import procrustes
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_mutual_info_score

from hvae_tf.analysis import figures

NO_GENRE = "(no genres listed)"


def first_genres(movie_genres: Sequence[Sequence[str]]) -> np.ndarray:
    """Each movie's first listed genre, as the paper colours Fig. 4 (MovieLens lists them A-Z)."""
    return np.array([genres[0] if len(genres) else NO_GENRE for genres in movie_genres], dtype=object)


@dataclasses.dataclass
class MovieClusters:
    labels: np.ndarray  # [n_movies] k-means cluster
    first_genres: np.ndarray  # [n_movies] str
    ami: float  # adjusted mutual information, clusters vs first genres

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max()) + 1


def _check_embeddings(name: str, embeddings) -> np.ndarray:
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[1] < 2:
        raise ValueError(f"{name} must be a [movies, dims >= 2] array, got shape {embeddings.shape}")
    if not np.isfinite(embeddings).all():
        raise ValueError(f"{name} contain NaN or inf: check the model that produced them")
    return embeddings


def movie_clusters(embeddings, movie_genres: Sequence[Sequence[str]], n_clusters: int = 18,
                   seed: int = 0) -> MovieClusters:
    """k-means of the movie embeddings and its agreement (AMI) with the movies' first genres."""
    embeddings = _check_embeddings("embeddings", embeddings)
    figures.check_rows("embeddings", len(embeddings), "movie_genres", len(movie_genres))
    if not 2 <= n_clusters <= len(embeddings):
        raise ValueError(f"n_clusters={n_clusters} must be between 2 and the {len(embeddings)} movies")
    labels = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(embeddings)
    genres = first_genres(movie_genres)
    return MovieClusters(labels=labels, first_genres=genres,
                         ami=float(adjusted_mutual_info_score(genres, labels)))


def neighbour_genre_agreement(embeddings, movie_genres: Sequence[Sequence[str]], k: int = 10) -> float:
    """Share of each movie's k nearest movies (itself excluded) that have its first genre, averaged.

    The check that a genre-only Movie-VAE separates genres: compare with random embeddings,
    whose agreement is about the genres' own frequencies.
    """
    from sklearn.neighbors import NearestNeighbors

    embeddings = _check_embeddings("embeddings", embeddings)
    figures.check_rows("embeddings", len(embeddings), "movie_genres", len(movie_genres))
    if not 1 <= k < len(embeddings):
        raise ValueError(f"k={k} must be between 1 and the {len(embeddings) - 1} other movies")
    genres = first_genres(movie_genres)
    _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(embeddings).kneighbors(embeddings)
    # Drop each movie itself; with exact duplicates it may not come first, so drop by identity.
    rows = np.arange(len(embeddings))[:, None]
    others = np.where(neighbours == rows, -1, neighbours)
    keep = np.argsort(others == -1, axis=1, kind="stable")[:, :k]
    others = np.take_along_axis(others, keep, axis=1)
    return float((genres[others] == genres[:, None]).mean())


def embedding_shift(before, after, seed: int = 0) -> dict[str, float]:
    """How far the embeddings moved during training, on the same movies in the same order.

    relative_displacement: mean |after - before| over the mean distance of `before` to its centre.
    procrustes_disparity: 0 when `after` is `before` rotated/shifted/scaled, ~1 for unrelated
    clouds; procrustes_disparity_shuffled is that reference, measured against shuffled rows.
    """
    before = _check_embeddings("before", before)
    after = _check_embeddings("after", after)
    if before.shape != after.shape:
        raise ValueError(f"before {before.shape} and after {after.shape} must have the same shape")
    displacement = np.linalg.norm(after - before, axis=1)
    spread = float(np.linalg.norm(before - before.mean(axis=0), axis=1).mean())
    shuffled = after[np.random.default_rng(seed).permutation(len(after))]
    return {
        "movies": float(len(before)),
        "mean_displacement": float(displacement.mean()),
        "median_displacement": float(np.median(displacement)),
        "spread": spread,
        "relative_displacement": float(displacement.mean() / spread) if spread > 0 else float("inf"),
        "procrustes_disparity": float(procrustes(before, after)[2]),
        "procrustes_disparity_shuffled": float(procrustes(before, shuffled)[2]),
    }


def _genre_palette(genres: np.ndarray) -> tuple[list[str], dict]:
    """Genres from most to least common, each with a colour; frequent genres get the clear ones."""
    order = [g for g, _ in Counter(genres).most_common()]
    return order, dict(zip(order, figures.category_colours(len(order))))


def _scatter_genres(ax, points, genres, order, colours, size=5):
    for g in order:  # the most common first, so that rare genres stay visible on top
        mask = genres == g
        ax.scatter(points[mask, 0], points[mask, 1], s=size, alpha=0.6, color=colours[g],
                   linewidths=0)


def _genre_legend(fig, genres, order, colours):
    counts = Counter(genres)
    handles = [
        figures.plt.Line2D([], [], marker="o", linestyle="", color=colours[g], markersize=7,
                           label=f"{g} ({counts[g]:,})")
        for g in order
    ]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=min(5, len(handles)), title="first genre (movies)", frameon=False, fontsize=9)


def plot_movie_clusters(result: MovieClusters, embeddings, path, max_points: int | None = 10000,
                        seed: int = 0, title: str = "Movie embeddings"):
    """Two views of the same points: coloured by first genre, and by k-means cluster."""
    plt = figures.plt
    embeddings = _check_embeddings("embeddings", embeddings)
    figures.check_rows("embeddings", len(embeddings), "the clustering result", len(result.labels))
    rows = figures.sample_rows(len(embeddings), max_points, seed)
    points, xlabel, ylabel = figures.to_2d(embeddings[rows], reference=embeddings)
    genres, labels = result.first_genres[rows], result.labels[rows]
    order, colours = _genre_palette(result.first_genres)

    fig, (ax_genre, ax_cluster) = plt.subplots(1, 2, figsize=(14, 6.5), sharex=True, sharey=True)
    _scatter_genres(ax_genre, points, genres, order, colours)
    ax_genre.set_title("coloured by first genre")
    cluster_colours = figures.category_colours(result.n_clusters)
    for c in range(result.n_clusters):
        pts = points[labels == c]
        ax_cluster.scatter(pts[:, 0], pts[:, 1], s=5, alpha=0.6, color=cluster_colours[c], linewidths=0)
        if len(pts):
            cx, cy = np.median(pts, axis=0)
            ax_cluster.annotate(str(c), (cx, cy), ha="center", va="center", fontsize=8, weight="bold",
                                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.8})
    ax_cluster.set_title(f"coloured by k-means cluster ({result.n_clusters})")
    for ax in (ax_genre, ax_cluster):
        ax.set_xlabel(xlabel)
    ax_genre.set_ylabel(ylabel)
    _genre_legend(fig, result.first_genres, order, colours)
    shown = "" if len(rows) == len(embeddings) else f", {len(rows):,} shown"
    fig.suptitle(f"{title}: {len(embeddings):,} movies{shown}; clusters vs first genre: "
                 f"adjusted mutual information {result.ami:.3f}", fontsize=12)
    fig.tight_layout()
    return figures.save_figure(fig, path)


def plot_before_after(before, after, movie_genres: Sequence[Sequence[str]], path,
                      max_points: int | None = 5000, max_arrows: int = 300, seed: int = 0,
                      title: str = "Movie embeddings before and after H-VAE training"):
    """Before and after in one frame (the principal axes of `before`), and arrows for a sample."""
    plt = figures.plt
    shift = embedding_shift(before, after, seed=seed)
    before = _check_embeddings("before", before)
    after = _check_embeddings("after", after)
    figures.check_rows("before", len(before), "movie_genres", len(movie_genres))
    genres = first_genres(movie_genres)
    order, colours = _genre_palette(genres)
    rows = figures.sample_rows(len(before), max_points, seed)
    both, xlabel, ylabel = figures.to_2d(np.vstack([before[rows], after[rows]]), reference=before)
    start, end = both[: len(rows)], both[len(rows):]

    fig, axes = plt.subplots(1, 3, figsize=(18, 6.2), sharex=True, sharey=True)
    _scatter_genres(axes[0], start, genres[rows], order, colours)
    axes[0].set_title("before (initial Movie-VAE embeddings)")
    _scatter_genres(axes[1], end, genres[rows], order, colours)
    axes[1].set_title("after H-VAE training")
    arrows = rows[figures.sample_rows(len(rows), max_arrows, seed + 1)]
    pick = np.searchsorted(rows, arrows)
    for i in pick:
        g = genres[rows[i]]
        axes[2].annotate("", xy=end[i], xytext=start[i],
                         arrowprops={"arrowstyle": "->", "color": colours[g], "lw": 0.7, "alpha": 0.8})
    axes[2].scatter(start[pick, 0], start[pick, 1], s=4, color="grey", linewidths=0)
    axes[2].set_title(f"movement of {len(pick):,} movies (arrow: before \u2192 after)")
    for ax in axes:
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel(ylabel)
    _genre_legend(fig, genres, order, colours)
    fig.suptitle(
        f"{title}: mean displacement {shift['mean_displacement']:.3g} = "
        f"{shift['relative_displacement']:.1%} of the spread; Procrustes disparity "
        f"{shift['procrustes_disparity']:.3f} (shuffled rows: {shift['procrustes_disparity_shuffled']:.3f})",
        fontsize=12,
    )
    fig.tight_layout()
    return figures.save_figure(fig, path)
