import numpy as np
import pytest

from hvae_tf.analysis.neighbours import (
    match_title,
    nearest,
    normalise_title,
    resolve_movie,
)

TITLES = [
    "Toy Story (1995)",
    "Toy Story 2 (1999)",
    "Matrix, The (1999)",
    "Matrix Reloaded, The (2003)",
    "Godfather, The (1972)",
    "Amelie (Fabuleux destin d'Am\u00e9lie Poulain, Le) (2001)",
]
IDS = [1, 3114, 2571, 6365, 858, 4973]
# Distractors that are closer as strings than the wanted titles.
MORE_TITLES = TITLES + [
    "Star Maps (1997)",
    "Star Wars: Episode VI - Return of the Jedi (1983)",
    "Star Wars: Episode IV - A New Hope (1977)",
    "Godfather: Part II, The (1974)",
]


def test_normalise_moves_article_and_splits_year():
    assert normalise_title("Matrix, The (1999)") == ("the matrix 1999", "the matrix")
    assert normalise_title("Toy Story (1995)") == ("toy story 1995", "toy story")


@pytest.mark.parametrize("query, expected", [
    ("Toy Story (1995)", "Toy Story (1995)"),
    ("toy story", "Toy Story (1995)"),
    ("Toy Stroy", "Toy Story (1995)"),
    ("the matrix", "Matrix, The (1999)"),
    ("matrix", "Matrix, The (1999)"),
    ("godfather 1972", "Godfather, The (1972)"),
    ("toy story 2", "Toy Story 2 (1999)"),
    ("godfather", "Godfather, The (1972)"),
    ("star wars", "Star Wars: Episode IV - A New Hope (1977)"),
    ("star wars return of the jedi", "Star Wars: Episode VI - Return of the Jedi (1983)"),
    ("amelie", "Amelie (Fabuleux destin d'Am\u00e9lie Poulain, Le) (2001)"),
])
def test_fuzzy_title_match(query, expected):
    assert MORE_TITLES[match_title(query, MORE_TITLES)] == expected


def test_ids_and_unknown_queries():
    assert resolve_movie(2571, TITLES, IDS) == 2
    assert resolve_movie("858", TITLES, IDS) == 4
    with pytest.raises(ValueError, match="movie id 99 is not among the 6 movies"):
        resolve_movie(99, TITLES, IDS)
    with pytest.raises(ValueError, match="pass movie_ids"):
        resolve_movie(1, TITLES)
    with pytest.raises(ValueError, match="no movie title matches 'zzzz qqq'.*closest"):
        match_title("zzzz qqq", TITLES)


def test_nearest_orders_by_distance_and_skips_the_query():
    points = np.array([[0.0, 0], [1, 0], [3, 0], [6, 0], [10, 0], [15, 0]])
    got = nearest(points, TITLES, "matrix", k=3)  # row 2, at x = 3
    assert got == [("Toy Story 2 (1999)", 2.0), ("Toy Story (1995)", 3.0),
                   ("Matrix Reloaded, The (2003)", 3.0)]
    assert len(nearest(points, TITLES, 1, k=50, movie_ids=IDS)) == len(TITLES) - 1
    # Cosine ignores length: [0,1] and [0,5] are the same direction.
    directions = np.array([[0.0, 1], [0, 5], [1, 0], [1, 1], [-1, 0], [0, -1]])
    assert nearest(directions, TITLES, "toy story", k=1, metric="cosine") == [("Toy Story 2 (1999)", 0.0)]


def test_nearest_rejects_bad_arguments():
    points = np.zeros((len(TITLES), 3))
    with pytest.raises(ValueError, match="one row per title"):
        nearest(points[:-1], TITLES, "toy story")
    with pytest.raises(ValueError, match="metric"):
        nearest(points, TITLES, "toy story", metric="manhattan")
