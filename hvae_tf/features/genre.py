"""Genre features: which of the release's genres each movie has (multi-hot)."""

from __future__ import annotations

import numpy as np

from hvae_tf.data.schema import MovieLensData
from hvae_tf.features.feature_matrix import FeatureMatrix, select_movies

NO_GENRES = "(no genres listed)"


def genre_features(data: MovieLensData, movie_ids) -> FeatureMatrix:
    """Multi-hot over every genre of the release's catalogue, so the width is fixed per release.

    "(no genres listed)" is a column like any other when the release uses it (ML-20M does), so
    such movies are not indistinguishable from missing data.
    """
    movies = select_movies(data, movie_ids)
    genres = sorted({g for movie_genres in data.movies["genres"] for g in movie_genres})
    column = {g: j for j, g in enumerate(genres)}
    values = np.zeros((len(movies), len(genres)), dtype=np.float32)
    for i, movie_genres in enumerate(movies["genres"]):
        values[i, [column[g] for g in movie_genres]] = 1.0
    has_any = values.any(axis=1)
    listed = has_any & ~(values[:, column[NO_GENRES]] > 0) if NO_GENRES in column else has_any
    summary = {
        "genres": len(genres),
        "movies with a genre": int(listed.sum()),
        "movies without genres": int((~listed).sum()),
    }
    return FeatureMatrix(
        values, [f"genre={g}" for g in genres], ["binary"] * len(genres), movies["movieId"], summary
    )
