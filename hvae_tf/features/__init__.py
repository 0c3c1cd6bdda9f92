"""Movie feature sets (genre, genome, IMDb, credits) as described matrices aligned to the protocol's movies."""

from hvae_tf.features.build import build_features
from hvae_tf.features.control import random_embeddings
from hvae_tf.features.feature_matrix import FeatureMatrix

__all__ = ["FeatureMatrix", "build_features", "random_embeddings"]
