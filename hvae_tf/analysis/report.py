"""The pictures and numbers of a finished run, in `<run>/plots/`: what `evaluate.py plots` writes.

Fig. 3: test users' latent means, k-means into 10 clusters, t-SNE; Fig. 4: genre-only Movie-VAE
embeddings, 18 clusters, by first genre; Fig. 5: movie embeddings before and after H-VAE training;
training curves; and the TensorBoard projector of the movie embeddings in the run's log folder.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from hvae_tf import analysis
from hvae_tf.config import TrainConfig
from hvae_tf.data import prepare
from hvae_tf.embeddings import movie_embeddings
from hvae_tf.features import random_embeddings
from hvae_tf.io import write_atomic
from hvae_tf.metrics.ranking import padded_indices
from hvae_tf.training.restore import load_run


def _catalogue(run):
    """Titles and genres in the run's movie-column order."""
    movies = run.data.movies.set_index("movieId").loc[run.split.movie_ids]
    return list(movies["title"]), [tuple(g) for g in movies["genres"]]


def trained_embeddings(run) -> np.ndarray | None:
    """The H-VAE's movie embeddings after training (equal to the start when frozen)."""
    variable = getattr(run.model, "movie_embeddings", None)
    return None if variable is None else np.array(variable)


def genre_embeddings(run) -> np.ndarray:
    """Fig. 4 is about a genre-only Movie-VAE: the run's own when it used genres, else one made now."""
    if run.config.features == "genre":
        return run.embeddings
    return movie_embeddings(dataclasses.replace(run.config, features="genre"), run.data, run.split)


def user_latents(run, users, batch_size: int = 2000) -> np.ndarray:
    """Latent means of the given users' whole histories."""
    means = [np.asarray(run.model.encode(padded_indices(users[i:i + batch_size]))[0])
             for i in range(0, users.shape[0], batch_size)]
    return np.concatenate(means)


def write_report(run_dir, seed: int = 0) -> dict:
    run = load_run(run_dir)
    out = Path(run_dir) / "plots"
    titles, genres = _catalogue(run)
    numbers: dict = {}

    test_clicks = run.split.test.full
    users = analysis.user_clusters(user_latents(run, test_clicks), test_clicks, titles, genres, seed=seed)
    analysis.plot_user_clusters(users, out / "user_clusters.png")
    numbers["user_clusters"] = users.describe()

    by_genre = genre_embeddings(run)
    movies = analysis.movie_clusters(by_genre, genres, n_clusters=18, seed=seed)
    analysis.plot_movie_clusters(movies, by_genre, out / "movie_clusters.png", seed=seed)
    numbers["genre_movie_vae_ami"] = movies.ami

    after = trained_embeddings(run)
    if after is not None:
        numbers["embedding_shift"] = analysis.embedding_shift(run.embeddings, after, seed=seed)
        numbers["embedding_shift"]["trainable"] = run.config.trainable_embeddings
        analysis.plot_before_after(run.embeddings, after, genres, out / "embeddings_before_after.png",
                                   seed=seed)
        analysis.write_projector(Path(run_dir) / "logs", after, titles, genres)
    else:
        analysis.write_projector(Path(run_dir) / "logs", by_genre, titles, genres)
    analysis.plot_training_curves(Path(run_dir) / "logs", out / "training_curves.png")
    write_atomic(out / "numbers.json", json.dumps(numbers, indent=2, default=str))
    return numbers


def nearest_movies(run_dir, query, k: int = 10) -> list[tuple[str, float]]:
    """Nearest titles in the run's movie space (the genre Movie-VAE's for a Standard-VAE run)."""
    run = load_run(run_dir)
    titles, _ = _catalogue(run)
    embeddings = trained_embeddings(run)
    if embeddings is None:
        embeddings = genre_embeddings(run)
    return analysis.nearest(embeddings, titles, query, k=k, movie_ids=run.split.movie_ids)


def genre_check(cfg: TrainConfig) -> str:
    """Build (or reuse) a fold's movie embeddings and say how well they group movies by genre:
    the share of each movie's 10 nearest movies with its first genre, against random embeddings."""
    if cfg.features == "none":
        raise ValueError("--features none has no movie embeddings: pick random, genre, genome or imdb")
    data, split = prepare.prepare(cfg)
    embeddings = movie_embeddings(cfg, data, split)
    genres = list(data.movies.set_index("movieId").loc[split.movie_ids, "genres"])
    control = random_embeddings(split.n_movies, embeddings.shape[1], seed=cfg.seed)
    return (f"{cfg.features} embeddings {embeddings.shape}: share of each movie's 10 nearest movies "
            f"with its first genre {analysis.neighbour_genre_agreement(embeddings, genres):.3f} "
            f"(random embeddings: {analysis.neighbour_genre_agreement(control, genres):.3f})")
