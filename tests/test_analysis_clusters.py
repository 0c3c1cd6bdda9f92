import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

from hvae_tf.analysis.clusters import plot_user_clusters, user_clusters

GENRES = ("Comedy", "Drama", "Horror")


def planted_users(seed=0, users_per_group=40, movies_per_genre=10):
    """Three user groups far apart in latent space; group g mostly clicks genre g's movies."""
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(3), users_per_group)
    latents = rng.normal(0, 10, (3, 16))[group] + rng.normal(0, 0.5, (len(group), 16))
    movie_genre = np.repeat(np.arange(3), movies_per_genre)
    p = np.where(movie_genre[None, :] == group[:, None], 0.6, 0.05)
    clicks = sp.csr_matrix((rng.random(p.shape) < p).astype(np.float32))
    titles = [f"{GENRES[g]} movie {i}" for i, g in enumerate(movie_genre)]
    genres = [(GENRES[g],) for g in movie_genre]
    return latents, clicks, titles, genres, group


def test_recovers_planted_groups_and_what_they_like():
    latents, clicks, titles, genres, group = planted_users()
    result = user_clusters(latents, clicks, titles, genres, n_clusters=3, seed=0, max_points=30)
    assert adjusted_rand_score(group, result.labels) == 1.0
    for profile in result.profiles:
        planted = GENRES[np.bincount(group[result.labels == profile.cluster]).argmax()]
        assert profile.size == 40
        assert profile.genres[0][0] == planted and profile.genres[0][1] > 1.5
        assert all(title.startswith(planted) for title, _, _ in profile.movies)
    assert "cluster 0:" in result.describe()


def test_lift_matches_hand_computation():
    # Users 0,1 near the origin click A (Comedy); user 2 clicks A and B (Drama); user 3 clicks B.
    latents = np.array([[0.0, 0.0], [0.0, 0.1], [10.0, 10.0], [10.0, 10.1]])
    clicks = sp.csr_matrix(np.array([[1, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float32))
    result = user_clusters(latents, clicks, ["A", "B"], [("Comedy",), ("Drama",)],
                           n_clusters=2, seed=0, min_share=0.5)
    first = result.profiles[result.labels[0]]
    assert first.size == 2
    # A: clicked by 2/2 of the cluster, 3/4 of all users -> lift 4/3; B is never clicked there.
    assert first.movies == [("A", pytest.approx(4 / 3), 1.0)]
    # Comedy: 2/2 of the cluster's clicks, 3/5 of all clicks -> lift 5/3.
    assert first.genres == [("Comedy", pytest.approx(5 / 3), 1.0)]
    other = result.profiles[result.labels[3]]
    # B: 2/2 of that cluster vs 2/4 overall -> 2; A: 1/2 vs 3/4 -> 2/3.
    assert [(t, round(lift, 6)) for t, lift, _ in other.movies] == [("B", 2.0), ("A", round(2 / 3, 6))]


def test_sample_is_seeded_and_bounded(tmp_path):
    latents, clicks, titles, genres, _ = planted_users()
    a = user_clusters(latents, clicks, titles, genres, n_clusters=3, seed=3, max_points=50)
    b = user_clusters(latents, clicks, titles, genres, n_clusters=3, seed=3, max_points=50)
    assert a.coords.shape == (50, 2) and len(np.unique(a.sample)) == 50
    np.testing.assert_array_equal(a.sample, b.sample)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.coords, b.coords)

    out = plot_user_clusters(a, tmp_path / "users.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["users.png"]  # no temporary file left


def test_bad_inputs_are_named():
    latents, clicks, titles, genres, _ = planted_users()
    with pytest.raises(ValueError, match="latents has 119 rows but clicks has 120"):
        user_clusters(latents[:-1], clicks, titles, genres)
    with pytest.raises(TypeError, match="scipy.sparse"):
        user_clusters(latents, clicks.toarray(), titles, genres)
    with pytest.raises(ValueError, match="movie_titles"):
        user_clusters(latents, clicks, titles[:-1], genres)
    with pytest.raises(ValueError, match="NaN"):
        user_clusters(np.full_like(latents, np.nan), clicks, titles, genres)
