"""User clusters in the user-VAE's latent space (the paper's Fig. 3), and what each cluster likes.

The paper shows only coloured blobs; a cluster means something when it says which genres and
movies its users click more than users overall do ("lift"), so the profile is part of the result.
k-means runs on every user; t-SNE, which is quadratic-ish and slow, on a seeded sample.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from hvae_tf.analysis import figures


@dataclasses.dataclass
class ClusterProfile:
    """One cluster: its size and the genres/movies it over-represents, as (name, lift, share).

    Genre share: the genre's fraction of the cluster's genre-weighted clicks. Movie share: the
    fraction of the cluster's users who clicked the movie. Lift: that share over the same share
    among all users (1 = as common as everywhere).
    """

    cluster: int
    size: int
    genres: list[tuple[str, float, float]]
    movies: list[tuple[str, float, float]]


@dataclasses.dataclass
class UserClusters:
    labels: np.ndarray  # [n_users] cluster of every user
    sample: np.ndarray  # [m] rows of the users drawn for the picture
    coords: np.ndarray  # [m, 2] t-SNE of the sampled users
    profiles: list[ClusterProfile]

    def describe(self, n_genres: int = 3, n_movies: int = 3) -> str:
        """One line per cluster, for logs and notes."""
        lines = []
        total = len(self.labels)
        for p in self.profiles:
            genres = ", ".join(f"{g} x{lift:.2f}" for g, lift, _ in p.genres[:n_genres])
            movies = "; ".join(f"{t} x{lift:.1f}" for t, lift, _ in p.movies[:n_movies])
            lines.append(
                f"cluster {p.cluster}: {p.size} users ({p.size / total:.0%}) | "
                f"genres {genres or '-'} | movies {movies or '-'}"
            )
        return "\n".join(lines)


def genre_matrix(movie_genres: Sequence[Sequence[str]]) -> tuple[sp.csr_matrix, list[str]]:
    """Sparse multi-hot [n_movies, n_genres] and the genre names (sorted)."""
    names = sorted({g for genres in movie_genres for g in genres})
    column = {g: j for j, g in enumerate(names)}
    rows = [i for i, genres in enumerate(movie_genres) for _ in genres]
    cols = [column[g] for genres in movie_genres for g in genres]
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(len(movie_genres), len(names))
    )
    return matrix, names


def _top_by_lift(names, cluster_share, overall_share, eligible, top):
    lift = np.divide(cluster_share, overall_share, out=np.zeros_like(cluster_share),
                     where=overall_share > 0)
    candidates = np.flatnonzero(eligible & (overall_share > 0))
    # Stable sort on -lift: equal lifts keep the catalogue order, so results are reproducible.
    best = candidates[np.argsort(-lift[candidates], kind="stable")][:top]
    return [(names[j], float(lift[j]), float(cluster_share[j])) for j in best]


def _profiles(labels, n_clusters, clicks, movie_titles, movie_genres, top, min_share):
    n_users = clicks.shape[0]
    members = sp.csr_matrix(
        (np.ones(n_users), (labels, np.arange(n_users))), shape=(n_clusters, n_users)
    )
    binary = clicks.copy()
    binary.data = (binary.data > 0).astype(np.float64)
    binary.eliminate_zeros()
    sizes = np.asarray(members.sum(axis=1)).ravel()
    # [k, n_movies]: a handful of rows, never users x movies.
    movie_users = np.asarray((members @ binary).todense())
    movie_overall = movie_users.sum(axis=0) / n_users
    genres, genre_names = genre_matrix(movie_genres)
    genre_clicks = np.asarray((members @ (binary @ genres)).todense())
    genre_overall = genre_clicks.sum(axis=0) / max(genre_clicks.sum(), 1.0)

    profiles = []
    for c in range(n_clusters):
        size = int(sizes[c])
        movie_share = movie_users[c] / max(size, 1)
        genre_share = genre_clicks[c] / max(genre_clicks[c].sum(), 1.0)
        profiles.append(ClusterProfile(
            cluster=c,
            size=size,
            genres=_top_by_lift(genre_names, genre_share, genre_overall,
                                genre_share > 0, top),
            # A movie counts only if enough of the cluster clicked it: lifts of rare movies are noise.
            movies=_top_by_lift(movie_titles, movie_share, movie_overall,
                                movie_share >= min_share, top),
        ))
    return profiles


def _check_inputs(latents, clicks, movie_titles, movie_genres, n_clusters):
    latents = np.asarray(latents, dtype=np.float64)
    if latents.ndim != 2:
        raise ValueError(f"latents must be a [users, dims] array, got shape {latents.shape}")
    if not np.isfinite(latents).all():
        raise ValueError("latents contain NaN or inf: check the model that produced them")
    if not sp.issparse(clicks):
        raise TypeError("clicks must be a scipy.sparse matrix [users, movies] (never densified)")
    clicks = sp.csr_matrix(clicks)
    figures.check_rows("latents", latents.shape[0], "clicks", clicks.shape[0])
    figures.check_rows("movie_titles", len(movie_titles), "the columns of clicks", clicks.shape[1])
    figures.check_rows("movie_genres", len(movie_genres), "the columns of clicks", clicks.shape[1])
    if not 2 <= n_clusters <= latents.shape[0]:
        raise ValueError(f"n_clusters={n_clusters} must be between 2 and the {latents.shape[0]} users")
    return latents, clicks


def user_clusters(
    latents: np.ndarray,
    clicks: sp.spmatrix,
    movie_titles: Sequence[str],
    movie_genres: Sequence[Sequence[str]],
    n_clusters: int = 10,
    seed: int = 0,
    max_points: int | None = 3000,
    top: int = 5,
    min_share: float = 0.05,
    perplexity: float = 30.0,
) -> UserClusters:
    """k-means of the user latents into `n_clusters`, a t-SNE map of up to `max_points` users, and
    each cluster's over-represented genres and movies (movies clicked by >= `min_share` of it)."""
    latents, clicks = _check_inputs(latents, clicks, movie_titles, movie_genres, n_clusters)
    labels = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(latents)
    sample = figures.sample_rows(len(latents), max_points, seed)
    points = latents[sample]
    if points.shape[1] > 50:  # the usual t-SNE preprocessing: faster, and drops noise directions
        points = PCA(n_components=50, random_state=seed).fit_transform(points)
    coords = TSNE(
        n_components=2, perplexity=min(perplexity, (len(points) - 1) / 3), init="pca",
        learning_rate="auto", random_state=seed,
    ).fit_transform(points)
    profiles = _profiles(labels, n_clusters, clicks, list(movie_titles), movie_genres, top, min_share)
    return UserClusters(labels=labels, sample=sample, coords=coords, profiles=profiles)


def plot_user_clusters(result: UserClusters, path, title: str = "User latents: k-means clusters (t-SNE)",
                       n_genres: int = 3, n_movies: int = 3):
    """Scatter coloured by cluster beside a panel that says what each cluster likes."""
    plt = figures.plt
    k = len(result.profiles)
    colours = figures.category_colours(k)
    fig, (ax, text_ax) = plt.subplots(
        1, 2, figsize=(15, max(7.0, 0.75 * k + 1.5)), gridspec_kw={"width_ratios": [1.0, 1.15]}
    )
    sampled_labels = result.labels[result.sample]
    for c in range(k):
        pts = result.coords[sampled_labels == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.6, color=colours[c], linewidths=0)
        if len(pts):
            cx, cy = np.median(pts, axis=0)
            ax.annotate(str(c), (cx, cy), ha="center", va="center", fontsize=11, weight="bold",
                        color="black", bbox={"boxstyle": "circle,pad=0.2", "fc": colours[c], "alpha": 0.9})
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_title(f"{len(result.sample):,} of {len(result.labels):,} users, {k} clusters")

    text_ax.axis("off")
    text_ax.set_title("what each cluster clicks more than users overall (lift)", loc="left")
    total = len(result.labels)
    step = 1.0 / k
    for i, p in enumerate(result.profiles):
        y = 1.0 - i * step
        text_ax.text(0.0, y, f"{p.cluster}", transform=text_ax.transAxes, va="top", fontsize=10,
                     weight="bold", bbox={"boxstyle": "circle,pad=0.2", "fc": colours[p.cluster]})
        genres = ", ".join(f"{g} \u00d7{lift:.2f}" for g, lift, _ in p.genres[:n_genres]) or "-"
        movies = "; ".join(
            f"{figures.shorten(t, 34)} \u00d7{lift:.1f}" for t, lift, _ in p.movies[:n_movies]
        ) or "-"
        text_ax.text(0.05, y, f"{p.size:,} users ({p.size / total:.0%})  |  {genres}\n{movies}",
                     transform=text_ax.transAxes, va="top", fontsize=8.5)
    fig.suptitle(title, fontsize=13)
    return figures.save_figure(fig, path)
