"""Pictures and numbers about trained models: user clusters, the movie embedding space, nearest
movies, the TensorBoard projector and training curves. Arrays in, PNG files and numbers out."""

from hvae_tf.analysis.clusters import UserClusters, plot_user_clusters, user_clusters  # noqa: F401
from hvae_tf.analysis.curves import plot_training_curves, read_scalars  # noqa: F401
from hvae_tf.analysis.movie_space import (  # noqa: F401
    MovieClusters,
    embedding_shift,
    movie_clusters,
    neighbour_genre_agreement,
    plot_before_after,
    plot_movie_clusters,
)
from hvae_tf.analysis.neighbours import nearest, resolve_movie  # noqa: F401
from hvae_tf.analysis.projector import write_projector  # noqa: F401
