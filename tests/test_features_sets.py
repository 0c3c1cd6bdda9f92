"""The feature sets (genre, genome, imdb, credits), their dispatch by name and the random control.

Small catalogues are built by hand in the schema's layout; the real ml-1m movies, links and
OMDb plots are read from the shared data for the checks that need real text.
"""

import inspect
import json
import re

import numpy as np
import pandas as pd
import pytest

from hvae_tf.config import CONTENT_FEATURES
from hvae_tf.data.schema import MovieLensData
from hvae_tf.features import build_features, credits, random_embeddings
from hvae_tf.features.genome import genome_features
from hvae_tf.features.genre import genre_features
from tf_datasets.hvae_movielens.columns import MOVIE_COLUMNS, OMDB_FIELDS, RATING_COLUMNS


def movielens(rows: list[dict], genome_tags=(), release="test") -> MovieLensData:
    """A catalogue from dicts: movieId, and optionally genres, genome (relevances), omdb (record)."""
    records = []
    for row in rows:
        record = {
            "movieId": row["movieId"], "title": f"movie {row['movieId']}", "year": -1,
            "genres": tuple(row.get("genres", ())), "imdbId": f"tt{row['movieId']:07d}",
            "genome_relevance": np.asarray(row.get("genome", []), dtype=np.float32),
            "has_omdb": "omdb" in row,
        }
        for key, column in OMDB_FIELDS.items():
            record[column] = row.get("omdb", {}).get(key, "")
        records.append(record)
    movies = pd.DataFrame(records, columns=list(MOVIE_COLUMNS))
    return MovieLensData(release, pd.DataFrame(columns=list(RATING_COLUMNS)), movies, list(genome_tags))


def column(features, name):
    return features.values[:, features.columns.index(name)]


# ---------------------------------------------------------------------------- genre


def test_genre_is_multi_hot_over_the_whole_release():
    data = movielens([
        {"movieId": 1, "genres": ["Comedy", "Drama"]},
        {"movieId": 2, "genres": ["(no genres listed)"]},
        {"movieId": 3, "genres": ["Western"]},  # not selected, still a column
    ])
    features = genre_features(data, np.asarray([2, 1]))
    assert features.columns == ["genre=(no genres listed)", "genre=Comedy", "genre=Drama", "genre=Western"]
    np.testing.assert_array_equal(features.values, [[1, 0, 0, 0], [0, 1, 1, 0]])
    assert set(features.kinds) == {"binary"}
    assert features.summary["movies without genres"] == 1


@pytest.fixture(scope="module")
def ml1m(shared_data) -> MovieLensData:
    """ml-1m's catalogue with its OMDb records, read straight from the shared files."""
    folder = shared_data / "ml-1m"
    links = pd.read_csv(folder / "links.csv", dtype={"imdbId": str})
    imdb = dict(zip(links.movieId, "tt" + links.imdbId.str.zfill(7)))
    with open(folder / "omdb.jsonl", encoding="utf-8") as f:
        records = {r["imdbID"]: r for r in map(json.loads, f) if r.get("Response") == "True"}
    rows = []
    for line in (folder / "movies.dat").read_text(encoding="iso-8859-1").splitlines():
        movie_id, _, genres = line.split("::")
        row = {"movieId": int(movie_id), "genres": genres.split("|")}
        if imdb.get(int(movie_id)) in records:
            row["omdb"] = records[imdb[int(movie_id)]]
        rows.append(row)
    return movielens(rows, release="1m")


def test_real_ml1m_genres(ml1m):
    features = genre_features(ml1m, ml1m.movies.movieId.to_numpy())
    assert features.shape == (len(ml1m.movies), 18)  # the 18 genres the ml-1m README lists
    for i in range(0, len(ml1m.movies), 97):
        on = {c.removeprefix("genre=") for c, v in zip(features.columns, features.values[i]) if v}
        assert on == set(ml1m.movies.genres[i])


# ---------------------------------------------------------------------------- genome


def test_genome_marks_the_top_tags_and_counts_movies_without_rows():
    rng = np.random.default_rng(0)
    tags = [f"tag{j}" for j in range(30)]
    scores = rng.random((3, 30))
    scores[2, :] = 0.5  # all tied: the lowest tag ids win
    data = movielens([{"movieId": i + 1, "genome": s} for i, s in enumerate(scores)]
                     + [{"movieId": 9}], genome_tags=tags)
    features = genome_features(data, np.asarray([1, 2, 3, 9]), top_k=20)
    assert features.shape == (4, 30) and features.columns[0] == "genome=tag0"
    for i in range(2):
        chosen = features.values[i].astype(bool)
        assert chosen.sum() == 20 and scores[i, chosen].min() > scores[i, ~chosen].max()
    np.testing.assert_array_equal(np.flatnonzero(features.values[2]), np.arange(20))
    assert not features.values[3].any()
    assert features.summary["movies without genome rows (zeros)"] == 1
    kept = build_features(data, np.asarray([1, 9]), "genome", genome_relevance=True)
    np.testing.assert_allclose(kept.values, [scores[0], np.zeros(30)], rtol=1e-6)
    assert set(kept.kinds) == {"continuous"}


def test_genome_needs_a_genome_of_the_right_width():
    with pytest.raises(ValueError, match="has no tag genome"):
        build_features(movielens([{"movieId": 1}]), np.asarray([1]), "genome")
    data = movielens([{"movieId": 1, "genome": [0.1, 0.2]}], genome_tags=["a", "b", "c"])
    with pytest.raises(ValueError, match="movie 1 has 2 genome relevance values but .* 3 genome tags"):
        genome_features(data, np.asarray([1]))


# ---------------------------------------------------------------------------- imdb

LIWC = "%\n1\tposemo\n2\tnegemo\n%\nhapp*\t1\nsad\t2\nlove\t1\n"
VAD = "Word,V.Mean.Sum,A.Mean.Sum,D.Mean.Sum\nlove,8,6,5\nsad,2,3,4\nwar,1,7,2\n"
VECTORS = "3 2\nlove 1 0\nsad 0 1\nwar 1 1\n"


def omdb(language="N/A", rated="N/A", rating="N/A", plot="N/A"):
    return {"Language": language, "Rated": rated, "imdbRating": rating, "Plot": plot, "Response": "True"}


@pytest.fixture()
def small_imdb(tmp_path):
    (tmp_path / "mini.dic").write_text(LIWC)
    (tmp_path / "vad.csv").write_text(VAD)
    (tmp_path / "vectors.txt").write_text(VECTORS)
    data = movielens([
        {"movieId": 1, "omdb": omdb("English, French", "PG-13", "6.0", "Happy friends happen to be sad.")},
        {"movieId": 2, "omdb": omdb("French", "UNRATED", "8.0", "A sad war. Love.")},
        {"movieId": 3, "omdb": omdb(rated="Not Rated")},
        {"movieId": 4},  # no OMDb record
        {"movieId": 5, "omdb": omdb(language="None", plot=" ... ")},
        {"movieId": 6, "omdb": omdb(rated="R", plot="caf\ufffd love")},
    ])
    return build_features(data, np.arange(1, 7), "imdb", liwc_dic=tmp_path / "mini.dic",
                          vad_lexicon=tmp_path / "vad.csv", word_vectors=tmp_path / "vectors.txt",
                          word_vector_dim=2, progress=False)


def test_imdb_categorical_parts(small_imdb):
    f = small_imdb
    assert [c for c in f.columns if c.startswith(("language=", "rated="))] == [
        "language=(no language)", "language=English", "language=French",
        "rated=Not Rated", "rated=PG-13", "rated=R"]
    np.testing.assert_array_equal(column(f, "language=French"), [1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(column(f, "language=(no language)"), [0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(column(f, "rated=Not Rated"), [0, 1, 1, 0, 0, 0])  # UNRATED too
    assert f.summary["certification: movies with one"] == 4
    np.testing.assert_allclose(column(f, "imdb_rating"), [6, 8, 7, 7, 7, 7])  # mean of the known
    np.testing.assert_array_equal(column(f, "imdb_rating_missing"), [0, 0, 1, 1, 1, 1])
    assert f.kinds[f.columns.index("imdb_rating")] == "continuous"


def test_imdb_plot_parts_average_over_tokens_and_fill_the_missing(small_imdb):
    f = small_imdb
    assert (f.summary["plot: missing"], f.summary["plot: empty (no words)"],
            f.summary["plot: undecodable characters removed"]) == (2, 1, 1)
    np.testing.assert_array_equal(column(f, "plot_missing"), [0, 0, 1, 1, 1, 0])
    posemo = [2 / 6, 1 / 4, 1 / 2]  # happy, happen (happ*) of 6 tokens; love of 4; love of "caf love"
    np.testing.assert_allclose(column(f, "liwc=posemo"), posemo[:2] + [np.mean(posemo)] * 3 + posemo[2:],
                               rtol=1e-6)
    vad = np.asarray([[2, 3, 4], [11 / 3, 16 / 3, 11 / 3], [8, 6, 5]])  # summed, then divided
    np.testing.assert_allclose(f.values[[0, 1, 5]][:, [f.columns.index(f"vad={k}") for k in
                                                       ("valence", "arousal", "dominance")]], vad, rtol=1e-6)
    vectors = f.values[:, [f.columns.index("w2v_0"), f.columns.index("w2v_1")]]
    np.testing.assert_allclose(vectors[[0, 1, 5]], [[0, 1], [2 / 3, 2 / 3], [1, 0]], rtol=1e-6)
    np.testing.assert_allclose(vectors[2], vectors[[0, 1, 5]].mean(axis=0), rtol=1e-6)
    assert not np.isnan(f.values).any()


def test_imdb_without_omdb_says_how_to_get_it():
    with pytest.raises(ValueError, match=r"needs OMDb records.*python -m hvae_tf.omdb.*manual dir"):
        build_features(movielens([{"movieId": 1}]), np.asarray([1]), "imdb")


def test_imdb_defaults_are_deterministic_and_skip_what_is_absent():
    plots = ["A boy and his dog go to war.", "The dog and the cat fall in love.", "War is hell."] * 3
    data = movielens([{"movieId": i + 1, "omdb": omdb(plot=p)} for i, p in enumerate(plots)])
    ids = np.arange(1, len(plots) + 1)
    a = build_features(data, ids, "imdb", word_vector_dim=8, seed=1, progress=False)
    b = build_features(data, ids, "imdb", word_vector_dim=8, seed=1, progress=False)
    assert a.fingerprint() == b.fingerprint()
    assert any(c.startswith("empath=") for c in a.columns)
    assert not any(c.startswith(("vad=", "imdb_rating", "language=")) for c in a.columns)
    assert "left out" in a.summary["vad: columns"] and "left out" in a.summary["imdb rating: columns"]
    assert sum(c.startswith("w2v_") for c in a.columns) == 8


def test_real_ml1m_imdb(ml1m, shared_data):
    ids = ml1m.movies.movieId.to_numpy()[:300]
    features = build_features(ml1m, ids, "imdb", word_vector_dim=8, progress=False,
                              vad_lexicon=shared_data / "lexicons" / "Ratings_Warriner_et_al.csv")
    movies = ml1m.movies.iloc[:300]
    has_plot = movies.has_omdb & ~movies.omdb_plot.isin(["", "N/A"])
    assert features.summary["movies with an OMDb record"] == movies.has_omdb.sum()
    assert features.summary["plot: movies with words"] == has_plot.sum()
    np.testing.assert_array_equal(column(features, "plot_missing"), ~has_plot.to_numpy())
    rated = {c for c in features.columns if c.startswith("rated=")}
    expected = {"Not Rated" if r.upper() in ("UNRATED", "NOT RATED") else r
                for r in movies.omdb_rated if r not in ("", "N/A")}
    assert rated == {f"rated={r}" for r in expected}
    assert re.fullmatch(r"\d+", str(features.summary["vad: movies with a known word"]))
    assert not np.isnan(features.values).any() and features.values.dtype == np.float32


# ---------------------------------------------------------------------------- credits


def test_credits_mark_the_people_of_two_movies_or_more_by_role():
    data = movielens([
        {"movieId": 1, "omdb": {"Director": "Ann Lee", "Writer": "Bo Kay (novel), Bo Kay (screenplay)",
                                "Actors": "Cy Dee, Di Eve"}},
        {"movieId": 2, "omdb": {"Director": "Ann Lee", "Writer": "Bo Kay", "Actors": "Ann Lee, Cy Dee"}},
        {"movieId": 3, "omdb": {"Director": "N/A", "Writer": "N/A", "Actors": "Di Eve"}},
        {"movieId": 4},  # no OMDb record
    ])
    features = build_features(data, np.asarray([3, 1, 2, 4]), "credits")
    # Ann Lee acted once: her actor column would say nothing about another movie
    assert features.columns == ["actor=Cy Dee", "actor=Di Eve", "director=Ann Lee", "writer=Bo Kay",
                                "credits_missing"]
    np.testing.assert_array_equal(features.values, [[0, 1, 0, 0, 0], [1, 1, 1, 1, 0],
                                                    [1, 0, 1, 1, 0], [0, 0, 0, 0, 1]])
    assert set(features.kinds) == {"binary"}
    assert features.summary["credits: movies with no kept person"] == 0


def test_credits_drop_the_least_credited_a_whole_count_at_a_time(monkeypatch):
    directors = ["Ann", "Ann", "Ann", "Bo", "Bo", "Cy", "Cy", "Di", "Di"]
    data = movielens([{"movieId": i + 1, "omdb": {"Director": d}} for i, d in enumerate(directors)])
    ids = np.arange(1, len(directors) + 1)
    monkeypatch.setattr(credits, "MAX_COLUMNS", 3)  # Bo, Cy and Di tie on 2: none is kept by name
    assert build_features(data, ids, "credits").columns == ["director=Ann", "credits_missing"]
    monkeypatch.setattr(credits, "MAX_COLUMNS", 4)
    assert len(build_features(data, ids, "credits").columns) == 5


def test_credits_without_omdb_say_how_to_get_it():
    with pytest.raises(ValueError, match=r"--features credits needs OMDb records.*python -m hvae_tf.omdb"):
        build_features(movielens([{"movieId": 1}]), np.asarray([1]), "credits")


def test_the_grid_runs_credits_where_there_is_omdb_and_only_when_asked(ml1m):
    from hvae_tf.evaluation.grid import grid_cells, run_grid

    without_omdb = movielens([{"movieId": 1, "genres": ["Drama"]}])
    assert grid_cells(without_omdb, ["genre", "credits"], ["shared"]) == [("none", 1), ("genre", "shared")]
    assert ("credits", "shared") in grid_cells(ml1m, ["credits"], ["shared"])
    paper_grid = inspect.signature(run_grid).parameters["feature_sets"].default
    assert "credits" not in paper_grid and "imdb" in paper_grid  # the paper's Table 2 by default


def test_real_ml1m_credits(ml1m):
    features = build_features(ml1m, ml1m.movies.movieId.to_numpy(), "credits")
    movies = ml1m.movies.set_index("movieId")
    hitchcock = column(features, "director=Alfred Hitchcock") > 0
    credited = movies.omdb_director.str.contains(r"(?:^|, )Alfred Hitchcock(?:,|$)")  # co-directed too
    np.testing.assert_array_equal(hitchcock, credited.to_numpy())
    assert hitchcock.sum() > 10
    np.testing.assert_array_equal(column(features, "credits_missing"), ~movies.has_omdb.to_numpy())
    assert all(features.values[:, :-1].sum(axis=0) >= credits.MIN_MOVIES)


# ---------------------------------------------------------------------------- dispatch, control


def test_unknown_feature_set_lists_the_choices():
    with pytest.raises(ValueError, match="unknown feature set 'genres'.*genre, genome, imdb, credits"):
        build_features(movielens([{"movieId": 1}]), np.asarray([1]), "genres")
    assert CONTENT_FEATURES == ("genre", "genome", "imdb", "credits")


def test_random_embeddings_depend_on_the_seed_only():
    a = random_embeddings(50, 3, seed=7)
    assert a.shape == (50, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, random_embeddings(50, 3, seed=7))
    assert not np.allclose(a, random_embeddings(50, 3, seed=8))
    with pytest.raises(ValueError, match="dim > 0"):
        random_embeddings(5, 0, seed=0)
