import math

import numpy as np
import pytest

from hvae_tf.analysis.movie_space import (
    NO_GENRE,
    embedding_shift,
    first_genres,
    movie_clusters,
    plot_before_after,
    plot_movie_clusters,
)

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]


def genre_blobs(seed=0, per_genre=40, scale=0.3):
    """3-d embeddings: one tight Gaussian blob per first genre, blobs far apart."""
    rng = np.random.default_rng(seed)
    first = np.repeat(np.arange(len(GENRES)), per_genre)
    centres = np.eye(3).repeat(2, axis=0) * np.array([5, -5] * 3)[:, None]  # +-5 on each axis
    embeddings = centres[first] + rng.normal(0, scale, (len(first), 3))
    genres = [(GENRES[g], "Thriller") for g in first]
    return embeddings, genres


def test_ami_high_for_genre_blobs_and_near_zero_for_random():
    blobs, genres = genre_blobs()
    assert movie_clusters(blobs, genres, n_clusters=6, seed=0).ami > 0.95
    random = np.random.default_rng(1).normal(size=blobs.shape)
    assert abs(movie_clusters(random, genres, n_clusters=6, seed=0).ami) < 0.05


def test_first_genre_and_missing_genres():
    assert list(first_genres([("Drama", "War"), ()])) == ["Drama", NO_GENRE]


def test_shift_of_gaussian_noise_matches_its_expected_length():
    rng = np.random.default_rng(0)
    before = rng.normal(0, 1, (4000, 3))
    s = 0.05
    shift = embedding_shift(before, before + rng.normal(0, s, before.shape))
    # The length of 3-d N(0, s^2 I) noise has mean s * 2 * sqrt(2 / pi) (chi distribution, 3 dof).
    assert shift["mean_displacement"] == pytest.approx(s * 2 * math.sqrt(2 / math.pi), rel=0.03)
    assert shift["relative_displacement"] == pytest.approx(shift["mean_displacement"] / shift["spread"])
    assert shift["procrustes_disparity"] < 0.01
    assert shift["procrustes_disparity_shuffled"] > 0.9


def test_rotation_moves_points_but_keeps_the_shape():
    blobs, _ = genre_blobs()
    c, s = math.cos(0.6), math.sin(0.6)
    rotated = blobs @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T * 2.0 + 3.0
    shift = embedding_shift(blobs, rotated)
    assert shift["relative_displacement"] > 0.5
    assert shift["procrustes_disparity"] < 1e-9
    same = embedding_shift(blobs, blobs)
    assert same["mean_displacement"] == 0.0 and same["procrustes_disparity"] < 1e-12


def test_shift_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        embedding_shift(np.zeros((5, 3)) + np.arange(5)[:, None], np.ones((4, 3)))


def test_pictures_are_written(tmp_path):
    blobs, genres = genre_blobs()
    result = movie_clusters(blobs, genres, n_clusters=6, seed=0)
    a = plot_movie_clusters(result, blobs, tmp_path / "movies.png", max_points=100)
    b = plot_before_after(blobs, blobs + 0.1, genres, tmp_path / "shift.png", max_arrows=20)
    for out in (a, b):
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movies.png", "shift.png"]
    with pytest.raises(ValueError, match="PNG"):
        plot_movie_clusters(result, blobs, tmp_path / "movies.jpg")


def test_neighbour_genre_agreement_high_for_genre_blobs_and_chance_for_random():
    rng = np.random.default_rng(3)
    genres = [("Comedy",), ("Drama",), ("Horror",)] * 100
    centres = {"Comedy": (0, 0, 0), "Drama": (5, 0, 0), "Horror": (0, 5, 0)}
    blobs = np.array([centres[g[0]] for g in genres]) + rng.normal(0, 0.5, (300, 3))
    from hvae_tf.analysis import neighbour_genre_agreement

    assert neighbour_genre_agreement(blobs, genres, k=10) > 0.95
    chance = neighbour_genre_agreement(rng.normal(size=(300, 3)), genres, k=10)
    assert 0.2 < chance < 0.5  # three equal genres: about one in three


def test_neighbour_genre_agreement_excludes_the_movie_itself():
    from hvae_tf.analysis import neighbour_genre_agreement

    # Two movies per genre at the same point: the only other neighbour at k=1 is the twin.
    points = np.repeat(np.eye(3), 2, axis=0)
    genres = [("A",), ("A",), ("B",), ("B",), ("C",), ("C",)]
    assert neighbour_genre_agreement(points, genres, k=1) == 1.0
