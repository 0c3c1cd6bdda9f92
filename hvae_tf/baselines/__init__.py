"""Non-neural recommenders scored by the same harness as the VAEs, to show where the VAEs stand.

Each baseline is fitted on `Split.train` and offers `scores(indices)`: a padded int64 movie-index
batch (-1 = padding) -> scores over all movies, the interface `metrics.ranking.score_users` calls.
"""

from hvae_tf.baselines.content_knn import DEFAULT_NEIGHBOURS_GRID, ContentKNN  # noqa: F401
from hvae_tf.baselines.ease import DEFAULT_DROPOUT_GRID, DEFAULT_EDLAE_L2_GRID, DEFAULT_L2_GRID, EASE, EDLAE  # noqa: F401
from hvae_tf.baselines.popularity import Popularity  # noqa: F401
