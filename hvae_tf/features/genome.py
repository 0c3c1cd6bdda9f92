"""Tag-genome features: the tags that describe a movie best (the paper's 20 of 1,128)."""

from __future__ import annotations

import numpy as np

from hvae_tf.data.schema import MovieLensData
from hvae_tf.features.feature_matrix import FeatureMatrix, select_movies

TOP_TAGS = 20


def genome_features(
    data: MovieLensData, movie_ids, *, relevance: bool = False, top_k: int = TOP_TAGS
) -> FeatureMatrix:
    """Binary: 1 on each movie's `top_k` most relevant tags (the paper). `relevance=True` keeps
    all relevance scores instead (continuous), for users who want the full tag profile.

    Ties in relevance go to the lower tag id, so the result does not depend on sort internals.
    Movies without genome rows (most movies outside ML-20M's best rated) get zeros and are counted.
    """
    if not data.has_genome:
        raise ValueError(
            f"the {data.release} release has no tag genome (genome-scores.csv, genome-tags.csv): "
            "genome features need ML-20M or ML-25M; use --features genre or imdb for this release"
        )
    movies = select_movies(data, movie_ids)
    n_tags = len(data.genome_tags)
    values = np.zeros((len(movies), n_tags), dtype=np.float32)
    without = 0
    for i, (movie_id, scores) in enumerate(zip(movies["movieId"], movies["genome_relevance"])):
        scores = np.asarray(scores, dtype=np.float32)
        if scores.size == 0:
            without += 1
            continue
        if scores.shape != (n_tags,):
            raise ValueError(
                f"movie {movie_id} has {scores.size} genome relevance values but the release has "
                f"{n_tags} genome tags: genome-scores.csv and genome-tags.csv do not match"
            )
        if relevance:
            values[i] = scores
        else:
            values[i, np.argsort(-scores, kind="stable")[:top_k]] = 1.0
    summary = {
        "genome tags": n_tags,
        "movies with genome rows": len(movies) - without,
        "movies without genome rows (zeros)": without,
    }
    kind = "continuous" if relevance else "binary"
    return FeatureMatrix(
        values, [f"genome={t}" for t in data.genome_tags], [kind] * n_tags, movies["movieId"], summary
    )
