"""One entry point for every feature set, chosen by the name users pass as `--features`."""

from __future__ import annotations

from hvae_tf.config import CONTENT_FEATURES
from hvae_tf.data.schema import MovieLensData
from hvae_tf.features.credits import credits_features
from hvae_tf.features.feature_matrix import FeatureMatrix
from hvae_tf.features.genome import genome_features
from hvae_tf.features.genre import genre_features
from hvae_tf.features.imdb import imdb_features

# Part of every cached feature matrix's key (hvae_tf/embeddings.py): raise it when any feature
# set's extraction changes, so a matrix made by the earlier code is never read as the new one's.
FEATURES_VERSION = "features/2"


def build_features(
    data: MovieLensData,
    movie_ids,
    name: str,
    *,
    genome_relevance: bool = False,
    liwc_dic=None,
    vad_lexicon=None,
    word_vectors=None,
    word_vector_dim: int = 300,
    seed: int = 0,
    progress: bool = True,
) -> FeatureMatrix:
    """The `name` feature set for `movie_ids` (row i = movie_ids[i]); options of other sets are ignored."""
    if name == "genre":
        return genre_features(data, movie_ids)
    if name == "genome":
        return genome_features(data, movie_ids, relevance=genome_relevance)
    if name == "imdb":
        return imdb_features(
            data, movie_ids, liwc_dic=liwc_dic, vad_lexicon=vad_lexicon, word_vectors=word_vectors,
            word_vector_dim=word_vector_dim, seed=seed, progress=progress,
        )
    if name == "credits":
        return credits_features(data, movie_ids)
    raise ValueError(
        f"unknown feature set {name!r} (--features): choose one of {', '.join(CONTENT_FEATURES)}; "
        "the random control is `random_embeddings`, it has no features"
    )
