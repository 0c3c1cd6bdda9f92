"""The generated release: ML-20M's file layout exactly, determinism, atomic files, and signal."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from hvae_tf.synthetic import generate as gen
from tf_datasets.hvae_movielens.columns import OMDB_FIELDS

N_USERS, N_MOVIES, SEED = 300, 1000, 7
# What the builder reads, and nothing else.
FILES = ("ratings.csv", "movies.csv", "links.csv", "genome-scores.csv", "genome-tags.csv", "omdb.jsonl")
HEADERS = {
    "ratings.csv": "userId,movieId,rating,timestamp",
    "movies.csv": "movieId,title,genres",
    "links.csv": "movieId,imdbId,tmdbId",
    "genome-scores.csv": "movieId,tagId,relevance",
    "genome-tags.csv": "tagId,tag",
}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    result = gen.generate(out, N_USERS, N_MOVIES, seed=SEED, genome_tags_path=None)
    return result


@pytest.fixture(scope="module")
def ratings(release):
    return pd.read_csv(release.path / "ratings.csv")


@pytest.fixture(scope="module")
def movies(release):
    return pd.read_csv(release.path / "movies.csv")


@pytest.fixture(scope="module")
def genome(release):
    return pd.read_csv(release.path / "genome-scores.csv")


def lines(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8").split("\n")


def test_writes_every_file_with_ml20m_headers_and_unix_newlines(release):
    names = sorted(p.name for p in release.path.iterdir())
    assert names == sorted(FILES)  # no temporary file left behind
    for name, header in HEADERS.items():
        raw = (release.path / name).read_bytes()
        assert raw.startswith(header.encode() + b"\n")
        assert b"\r" not in raw and raw.endswith(b"\n")


def test_ratings_rows_are_ml20m_formatted_sorted_and_consistent(release, ratings, movies):
    body = lines(release.path / "ratings.csv")[1:-1]
    assert all(re.fullmatch(r"\d+,\d+,[0-5]\.[05],\d+", line) for line in body)
    assert len(ratings) == release.n_ratings
    # ML-20M: "ordered first by userId, then, within user, by movieId"
    key = ratings.userId.to_numpy() * 10**7 + ratings.movieId.to_numpy()
    assert np.all(np.diff(key) > 0)  # sorted and no (user, movie) pair twice
    assert set(ratings.rating.unique()) <= set(np.arange(1, 11) / 2)
    per_user = ratings.groupby("userId").size()
    assert per_user.index.tolist() == list(range(1, N_USERS + 1))
    assert per_user.min() >= gen.MIN_USER_RATINGS
    assert per_user.max() <= gen.max_user_ratings(N_MOVIES)
    assert ratings.movieId.isin(movies.movieId).all()
    assert ratings.timestamp.between(gen.FIRST_TIMESTAMP, gen.LAST_TIMESTAMP).all()
    years = movies.set_index("movieId").title.str.extract(r"\((\d{4})\)$")[0].astype(float)
    rated_year = pd.to_datetime(ratings.timestamp, unit="s").dt.year.to_numpy()
    assert np.all(~(rated_year < years.loc[ratings.movieId].to_numpy()))  # not rated before release


def test_ratings_look_like_movielens(ratings):
    clicks = (ratings.rating > 3.5).mean()
    assert 0.4 < clicks < 0.65  # ML-20M: about half of the ratings are clicks
    assert (ratings.rating % 1 == 0.5).mean() > 0.1  # half stars are used
    per_movie = ratings.groupby("movieId").size()
    assert per_movie.max() > 10 * per_movie.median()  # long-tailed popularity
    per_user = ratings.groupby("userId").size()
    assert per_user.mean() > 1.2 * per_user.median()  # long-tailed activity


def test_movies_are_quoted_like_ml20m_with_valid_genres(release, movies):
    ids = movies.movieId.to_numpy()
    assert len(ids) == N_MOVIES and np.all(np.diff(ids) > 0)
    assert ids.max() > N_MOVIES  # ids have gaps, like MovieLens'
    raw = (release.path / "movies.csv").read_text()
    commas = movies[movies.title.str.contains(",")]
    assert len(commas) > 0
    for _, row in commas.head(5).iterrows():  # "American President, The (1995)" style, quoted
        assert f'{row.movieId},"{row.title}",' in raw
    allowed = set(gen.GENRES) | {gen.NO_GENRES}
    assert set(movies.genres.str.split("|").explode()) <= allowed
    assert movies.title.str.match(r"^.+ \(\d{4}\)$").mean() > 0.99


def test_links_have_zero_padded_imdb_ids(release, movies):
    body = lines(release.path / "links.csv")[1:-1]
    assert all(re.fullmatch(r"\d+,\d{7},\d*", line) for line in body)
    links = pd.read_csv(release.path / "links.csv", dtype={"imdbId": str})
    assert links.movieId.tolist() == movies.movieId.tolist()
    assert links.imdbId.is_unique


def test_genome_covers_ml20m_share_of_movies_with_all_tags(release, genome, movies):
    body = lines(release.path / "genome-scores.csv")[1:4]
    assert all(re.fullmatch(r"\d+,\d+,[01]\.\d{5}", line) for line in body)
    n_tags = gen.N_GENOME_TAGS
    assert len(genome) == release.n_genome_movies * n_tags
    assert release.n_genome_movies == round(N_MOVIES * gen.ML20M_GENOME_MOVIES / gen.ML20M_MOVIES)
    assert genome.tagId.to_numpy().reshape(-1, n_tags).tolist()[0] == list(range(1, n_tags + 1))
    assert np.all(np.diff(genome.movieId.to_numpy()) >= 0)
    assert genome.movieId.isin(movies.movieId).all()
    assert genome.relevance.between(0, 1).all()
    tags = pd.read_csv(release.path / "genome-tags.csv")
    assert tags.tagId.tolist() == list(range(1, n_tags + 1))
    assert tags.tag.tolist()[:2] == ["tag0001", "tag0002"]  # no real names given


def test_omdb_lines_are_omdb_answers_for_linked_movies(release):
    links = pd.read_csv(release.path / "links.csv", dtype={"imdbId": str})
    linked = set("tt" + links.imdbId)
    records = [json.loads(line) for line in lines(release.path / "omdb.jsonl")[:-1]]
    found = [r for r in records if r["Response"] == "True"]
    misses = [r for r in records if r["Response"] == "False"]
    assert len(found) == release.n_omdb_movies == round(N_MOVIES * gen.ML20M_OMDB_MOVIES / gen.ML20M_MOVIES)
    assert misses and all(r["Error"] == "Movie not found!" for r in misses)
    assert {r["imdbID"] for r in records} <= linked
    for record in found:
        assert set(OMDB_FIELDS) <= set(record)
        assert re.fullmatch(r"tt\d{7}", record["imdbID"])
        assert record["imdbRating"] == "N/A" or 1.0 <= float(record["imdbRating"]) <= 10.0
        assert record["Plot"].endswith(".")
    assert any(", " in r["Language"] for r in found)  # "English, French" style lists


def _mean_pair_cosine(users: np.ndarray, vectors: np.ndarray) -> float:
    """Mean cosine similarity of two different items of the same user (users with >= 2 items)."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    _, owner, counts = np.unique(users, return_inverse=True, return_counts=True)
    sums = sparse.csr_matrix((np.ones(owner.size), (owner, np.arange(owner.size)))) @ unit
    pair_sums = (sums**2).sum(1) - counts  # sum over ordered pairs i != j of cos(i, j)
    keep = counts > 1
    return float(np.mean(pair_sums[keep] / (counts[keep] * (counts[keep] - 1))))


def test_clicked_movies_share_genres_and_genome_tags_far_more_than_chance(ratings, movies, genome):
    clicks = ratings[ratings.rating > 3.5]
    shuffled = np.random.default_rng(0).permutation(clicks.movieId.to_numpy())  # same popularity
    genres = movies.set_index("movieId").genres.str.get_dummies()
    real = _mean_pair_cosine(clicks.userId.to_numpy(), genres.loc[clicks.movieId].to_numpy(float))
    chance = _mean_pair_cosine(clicks.userId.to_numpy(), genres.loc[shuffled].to_numpy(float))
    assert real > 1.3 * chance

    relevance = genome.relevance.to_numpy().reshape(-1, gen.N_GENOME_TAGS)  # rows: movies in order
    top = np.argpartition(-relevance, 20, axis=1)[:, :20]  # the paper's feature: each movie's top 20
    flags = np.zeros_like(relevance)
    np.put_along_axis(flags, top, 1.0, axis=1)
    top20 = pd.DataFrame(flags, index=genome.movieId.to_numpy()[:: gen.N_GENOME_TAGS])
    on_genome = clicks.movieId.isin(top20.index).to_numpy()
    shuffled = shuffled[np.isin(shuffled, top20.index)]
    users = clicks.userId.to_numpy()[on_genome]
    real = _mean_pair_cosine(users, top20.loc[clicks.movieId[on_genome]].to_numpy())
    chance = _mean_pair_cosine(users[: len(shuffled)], top20.loc[shuffled[: len(users)]].to_numpy())
    assert real > 1.5 * chance


def test_ratings_above_3_5_are_the_taste_aligned_ones(ratings, movies):
    """Binarising at 3.5 keeps the signal: a user's clicks resemble each other more than the
    movies the same user rated low resemble those clicks."""
    genres = movies.set_index("movieId").genres.str.get_dummies().astype(float)
    unit = genres.div(np.linalg.norm(genres, axis=1), axis=0)
    vectors = unit.loc[ratings.movieId].to_numpy()
    clicked = (ratings.rating > 3.5).to_numpy()
    users = ratings.userId.to_numpy()
    profile = np.zeros((users.max() + 1, vectors.shape[1]))
    np.add.at(profile, users[clicked], vectors[clicked])
    n_clicks = np.bincount(users[clicked], minlength=users.max() + 1)
    others = profile[users] - np.where(clicked[:, None], vectors, 0)  # leave the movie itself out
    n_others = n_clicks[users] - clicked
    ok = n_others > 0
    score = np.einsum("ij,ij->i", vectors, others)[ok] / n_others[ok]
    assert score[clicked[ok]].mean() > 1.3 * score[~clicked[ok]].mean()


def test_plot_words_follow_genres(release, movies):
    """Plots of Horror movies use the horror topic's words far more than other plots do."""
    horror_words = set(gen.TOPICS["horror"][1].split())
    links = pd.read_csv(release.path / "links.csv", dtype={"imdbId": str})
    by_imdb = dict(zip("tt" + links.imdbId, movies.genres.str.contains("Horror")))
    share = {True: [], False: []}
    for line in lines(release.path / "omdb.jsonl")[:-1]:
        record = json.loads(line)
        if record["Response"] == "True":
            words = re.findall(r"[a-z]+", record["Plot"].lower())
            share[by_imdb[record["imdbID"]]].append(np.mean([w in horror_words for w in words]))
    assert np.mean(share[True]) > 3 * np.mean(share[False])


def test_real_genome_tag_names_are_used_and_carry_meaning(shared_data, tmp_path):
    path = shared_data / "genome" / "genome-tags.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    gen.generate(tmp_path, 60, 300, seed=1, genome_tags_path=path)
    written = pd.read_csv(tmp_path / "genome-tags.csv")
    assert written.equals(pd.read_csv(path))
    horror_tag = int(written.tagId[written.tag == "horror"].iloc[0])
    genome = pd.read_csv(tmp_path / "genome-scores.csv")
    relevance = genome[genome.tagId == horror_tag].set_index("movieId").relevance
    movies = pd.read_csv(tmp_path / "movies.csv").set_index("movieId")
    is_horror = movies.genres.loc[relevance.index].str.contains("Horror")
    assert relevance[is_horror].mean() > relevance[~is_horror].mean() + 0.2


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        gen.generate(tmp_path / name, 40, 60, seed=seed, genome_tags_path=None)
    for file in FILES:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    assert (tmp_path / "a" / "ratings.csv").read_bytes() != (tmp_path / "c" / "ratings.csv").read_bytes()


def test_a_failure_midway_leaves_no_partial_file(tmp_path, monkeypatch):
    calls = []
    real_stars = gen._stars

    def stars_then_fail(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        return real_stars(*args)

    monkeypatch.setattr(gen, "RATINGS_PER_CHUNK", 500)  # several chunks: fail after writing one
    monkeypatch.setattr(gen, "_stars", stars_then_fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        gen.generate(tmp_path, 50, 100, seed=0, genome_tags_path=None)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert "ratings.csv" not in left
    assert not [name for name in left if name.endswith(".tmp")]


def test_activity_has_ml20m_total_minimum_and_cap():
    cap = gen.max_user_ratings(gen.ML20M_MOVIES)
    counts = gen._activity(np.random.default_rng(0), gen.ML20M_USERS, gen.ML20M_RATINGS, cap)
    assert counts.sum() == gen.ML20M_RATINGS
    assert counts.min() == gen.MIN_USER_RATINGS and counts.max() <= cap
    assert counts.mean() > 1.5 * np.median(counts)
    assert gen._check_sizes(gen.ML20M_USERS, gen.ML20M_MOVIES, None) == gen.ML20M_RATINGS


@pytest.mark.parametrize("values", [[0, 1, 9, 10, 99, 100, 123456789], list(range(0, 2_000_000, 7919))])
def test_fast_csv_formatting_matches_python_formatting(values):
    values = np.array(values, np.int64)
    relevance = values % 100_001
    text = gen._csv_bytes([gen._digits(values), gen._fixed_point(relevance)]).decode()
    assert text == "".join(f"{v},{r / 1e5:.5f}\n" for v, r in zip(values.tolist(), relevance.tolist()))


def test_command_line_writes_release_and_rejects_impossible_sizes(tmp_path, capsys):
    assert gen.main([str(tmp_path / "out"), "--users", "30", "--movies", "50", "--seed", "2"]) == 0
    assert "ratings by 30 users on 50 movies" in capsys.readouterr().out
    with open(tmp_path / "out" / "ratings.csv", newline="") as f:
        assert len({row[0] for row in csv.reader(f)}) == 31  # header + 30 users
    for flags, flag in ((["--ratings", "100"], "--ratings"), (["--movies", "5"], "--movies")):
        with pytest.raises(SystemExit):
            gen.main([str(tmp_path / "bad"), "--users", "30", *flags])
        assert flag in capsys.readouterr().err


def test_bad_inputs_name_the_problem(tmp_path):
    bad_tags = tmp_path / "tags.csv"
    bad_tags.write_text("id,name\n1,x\n")
    with pytest.raises(ValueError, match="tags.csv.*tagId,tag"):
        gen.generate(tmp_path / "out", 30, 50, genome_tags_path=bad_tags)
    with pytest.raises(ValueError, match="--genome-tags .*missing.csv does not exist"):
        gen.generate(tmp_path / "out", 30, 50, genome_tags_path=tmp_path / "missing.csv")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(ValueError, match="not a folder"):
        gen.generate(not_a_folder, 30, 50, genome_tags_path=None)
