"""Synthetic MovieLens data in the exact ML-20M file layout, at any scale.

ML-20M itself cannot be fetched everywhere (and may not be redistributed), yet the whole pipeline
must be exercised on data of its size and shape. This module writes a folder that the
builder's readers parse as a real unzipped `ml-20m/`: ratings.csv, movies.csv, links.csv,
genome-scores.csv, genome-tags.csv, plus the omdb.jsonl that the OMDb fetcher would produce: the
files the builder reads, and no others.

The data carry signal a model can find: users' tastes, movies' genres, genome relevances and plot
words are all drawn from the same K latent topics (a topic-model world). A user rates a movie
with probability ~ popularity x topic affinity, and rates it higher when the affinity is high, so
the "> 3.5 is a click" binarisation keeps the signal. Popularity and user activity are long-tailed.

    python -m hvae_tf.synthetic.generate OUT_DIR [--users N --movies N --ratings N --seed S]
        [--genome-tags genome-tags.csv]

Same seed and sizes -> the same bytes. Every file is written under a temporary name and renamed
into place only when complete (hvae_tf.io).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import io
import itertools
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from hvae_tf.io import atomic_open

# Raised whenever the same seed and sizes would write other bytes, so caches of older data are not reused.
GENERATOR_VERSION = 2

# Facts about ML-20M that the default scale reproduces.
ML20M_USERS = 138_493
ML20M_MOVIES = 27_278
ML20M_RATINGS = 20_000_263
ML20M_MAX_MOVIE_ID = 131_262
ML20M_GENOME_MOVIES = 10_381
ML20M_OMDB_MOVIES = 26_621  # movies the paper keeps: those with IMDb (OMDb) information
ML20M_MAX_USER_SHARE = 9_254 / 26_744  # the heaviest user rated about a third of the rated movies
MIN_USER_RATINGS = 20  # ML-20M selected users with at least 20 ratings
N_GENOME_TAGS = 1_128
FIRST_TIMESTAMP = 789_652_009  # 1995-01-09, ML-20M's first rating
LAST_TIMESTAMP = 1_427_784_002  # 2015-03-31, its last

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
NO_GENRES = "(no genres listed)"
OMDB_GENRE = {"Children": "Family", "IMAX": None}  # MovieLens genre -> OMDb's name (None: none)

# The latent topics: (MovieLens genres, most typical first; plot/tag vocabulary). The words are
# English lemmas, nearly all in the Warriner VAD lexicon, so plot text features are not trivial.
TOPICS = {
    "action": (
        "Action Thriller Adventure Crime",
        ("fight chase explosion gun mission agent escape danger attack weapon combat revenge kill "
         "police bomb rescue enemy hostage spy speed crash assassin target threat survive car "
         "helicopter terrorist betrayal fugitive"),
    ),
    "comedy": (
        "Comedy",
        ("funny joke party laugh silly prank wedding friend crazy fun neighbor roommate vacation "
         "disaster awkward clumsy boss fool trick comic mess chaos bet cheerful goofy hilarious "
         "cousin pet"),
    ),
    "drama": (
        "Drama",
        ("family life struggle loss grief father mother death hope sister brother illness divorce "
         "memory secret truth forgive pain home dignity poverty courage addiction trauma mourn "
         "regret son daughter"),
    ),
    "romance": (
        "Romance Comedy Drama",
        ("love heart kiss marriage romance passion date beautiful bride lover affair desire couple "
         "flirt sweet charm embrace heartbreak jealous honeymoon proposal tender intimate "
         "attraction"),
    ),
    "horror": (
        "Horror Thriller Mystery",
        ("blood monster terror fear haunt ghost evil nightmare scream demon zombie vampire curse "
         "corpse cemetery possess killer creature darkness witch ritual torture slaughter victim "
         "sinister"),
    ),
    "scifi": (
        "Sci-Fi Action Adventure IMAX",
        ("space planet alien robot future science ship galaxy technology experiment invasion "
         "astronaut machine laboratory clone mutant universe orbit rocket virus android dimension "
         "signal satellite"),
    ),
    "family": (
        "Animation Children Fantasy Musical Adventure",
        ("magic toy princess dragon song dream kingdom adventure puppy fairy wizard castle "
         "treasure talk animal forest giant spell journey wish friendship island mouse bear"),
    ),
    "crime": (
        "Crime Thriller Mystery Drama Film-Noir",
        ("murder detective gangster money heist prison lawyer investigation thief robbery corrupt "
         "mob drug witness jury trial cop suspect evidence smuggler dealer blackmail scandal "
         "inspector"),
    ),
    "war": (
        "War Western Drama Adventure Action",
        ("war soldier army battle horse sheriff frontier hero honor cowboy outlaw ranch general "
         "captain regiment siege rifle cavalry duel bandit desert sergeant veteran fortress"),
    ),
    "documentary": (
        "Documentary Musical Drama",
        ("music history world people nature interview artist political culture concert band "
         "society environment ocean wildlife journalist protest economy singer tradition education "
         "research earth community"),
    ),
}
TOPIC_PREVALENCE = np.array([1.2, 1.6, 2.0, 1.0, 0.7, 0.7, 0.6, 0.9, 0.5, 0.4])
# Dirichlet concentrations (sum of alphas): small = a movie is about one topic, a user likes few.
MOVIE_TOPIC_SPREAD = 0.6
USER_TASTE_SPREAD = 1.0
FILLER = (
    "man woman young old city town find new must discover become life world day night story "
    "friend small group help return learn face begin work live dangerous mysterious strange "
    "lonely the a and of to his her their"
)

# OMDb-like metadata pools.
COUNTRIES = (  # country, its language, share
    ("USA", "English", 0.60), ("UK", "English", 0.10), ("France", "French", 0.06),
    ("Canada", "English", 0.03), ("Germany", "German", 0.03), ("Italy", "Italian", 0.03),
    ("Japan", "Japanese", 0.03), ("India", "Hindi", 0.02), ("Spain", "Spanish", 0.02),
    ("Mexico", "Spanish", 0.01), ("South Korea", "Korean", 0.015), ("Sweden", "Swedish", 0.015),
    ("Hong Kong", "Cantonese", 0.015), ("Russia", "Russian", 0.015), ("Brazil", "Portuguese", 0.01),
    ("Denmark", "Danish", 0.01),
)
CERTIFICATES = (
    "G", "PG", "PG-13", "R", "NC-17", "NOT RATED", "UNRATED", "APPROVED", "PASSED", "TV-MA", "N/A",
)
CERTIFICATE_BY_TOPIC = {  # primary topic -> weights over CERTIFICATES (the rest get DEFAULT)
    "family": (0.45, 0.45, 0.05, 0, 0, 0.02, 0, 0, 0, 0, 0.03),
    "horror": (0, 0.02, 0.15, 0.65, 0.02, 0.06, 0.06, 0, 0, 0.02, 0.02),
    "action": (0, 0.05, 0.40, 0.45, 0, 0.03, 0.02, 0, 0, 0.02, 0.03),
    "crime": (0, 0.03, 0.20, 0.65, 0.01, 0.04, 0.02, 0, 0, 0.02, 0.03),
    "documentary": (0.05, 0.15, 0.15, 0.15, 0, 0.25, 0.10, 0, 0, 0.05, 0.10),
}
DEFAULT_CERTIFICATE = (0.03, 0.20, 0.35, 0.30, 0, 0.04, 0.02, 0, 0, 0.02, 0.04)
OLD_CERTIFICATE = (0.05, 0.05, 0, 0, 0, 0.20, 0.05, 0.40, 0.15, 0, 0.10)  # before MPAA ratings (1968)
FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark",
    "Helen", "Paul", "Sandra", "Steven", "Donna", "Andrew", "Carol", "Kenneth", "Ruth", "Kevin",
    "Sharon", "Brian", "Michelle",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores",
)
WRITER_ROLES = ("", " (screenplay)", " (story)", " (novel)", " (characters)")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Streams of the seed: each part of the world draws from its own, so parts stay independent.
_CATALOGUE, _USERS, _GENOME, _OMDB, _CHUNK = range(5)
RATINGS_PER_CHUNK = 600_000  # users are generated and written in chunks of about this many ratings


@dataclasses.dataclass(frozen=True)
class GeneratedRelease:
    """What `generate` wrote: the folder and the counts of its main tables."""

    path: Path
    n_users: int
    n_movies: int
    n_ratings: int
    n_genome_movies: int
    n_omdb_movies: int
    seed: int


def generate(
    out_dir: str | os.PathLike,
    n_users: int = ML20M_USERS,
    n_movies: int = ML20M_MOVIES,
    n_ratings: int | None = None,
    seed: int = 0,
    genome_tags_path: str | os.PathLike | None = None,
) -> GeneratedRelease:
    """Write a synthetic release in ML-20M's layout to `out_dir` (created if missing).

    n_ratings=None keeps ML-20M's ratings per user (144.4), limited to what the catalogue allows.
    genome_tags_path: a genome-tags.csv whose real tag names are used (the genome then shows
    which tags go with which genres); None names the tags tag0001..tag1128.
    """
    n_ratings = _check_sizes(n_users, n_movies, n_ratings)
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"OUT_DIR {out} exists and is not a folder: give a new or existing folder")
    out.mkdir(parents=True, exist_ok=True)

    tag_names = _genome_tag_names(genome_tags_path)
    catalogue = _make_catalogue(_rng(seed, _CATALOGUE), n_movies)
    users = _make_users(_rng(seed, _USERS), n_users, n_movies, n_ratings, catalogue)

    _write_movies(out / "movies.csv", catalogue)
    _write_links(out / "links.csv", catalogue)
    _write_csv(out / "genome-tags.csv", ("tagId", "tag"), ((i + 1, t) for i, t in enumerate(tag_names)))
    n_genome = _write_genome_scores(out / "genome-scores.csv", _rng(seed, _GENOME), catalogue, tag_names)
    n_omdb = _write_omdb(out / "omdb.jsonl", _rng(seed, _OMDB), catalogue)
    _write_ratings(out / "ratings.csv", seed, catalogue, users)
    return GeneratedRelease(out, n_users, n_movies, n_ratings, n_genome, n_omdb, seed)


def max_user_ratings(n_movies: int) -> int:
    """The most ratings one user may have: ML-20M's heaviest user rated a third of the movies."""
    return max(MIN_USER_RATINGS, int(ML20M_MAX_USER_SHARE * n_movies))


def _check_sizes(n_users: int, n_movies: int, n_ratings: int | None) -> int:
    if n_users < 1:
        raise ValueError(f"--users must be >= 1, got {n_users}")
    if n_movies < MIN_USER_RATINGS:
        raise ValueError(
            f"--movies must be >= {MIN_USER_RATINGS} (every user rates >= {MIN_USER_RATINGS} "
            f"distinct movies, as in ML-20M), got {n_movies}"
        )
    cap = max_user_ratings(n_movies)
    if n_ratings is None:
        per_user = min(ML20M_RATINGS / ML20M_USERS, MIN_USER_RATINGS + (cap - MIN_USER_RATINGS) / 4)
        return round(n_users * per_user)
    low, high = n_users * MIN_USER_RATINGS, n_users * cap
    if not low <= n_ratings <= high:
        raise ValueError(
            f"--ratings {n_ratings} is impossible for --users {n_users} --movies {n_movies}: each user "
            f"rates {MIN_USER_RATINGS}..{cap} movies, so give a value in [{low}, {high}]"
        )
    return n_ratings


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


# ---------------------------------------------------------------------------------------------
# The latent world: movies and users.


@dataclasses.dataclass
class _Catalogue:
    movie_ids: np.ndarray  # int64, sorted, non-contiguous like MovieLens
    years: np.ndarray  # int64; titles of `no_year` movies do not show it
    no_year: np.ndarray  # bool
    article: np.ndarray  # int8: 0 plain title, 1 "..., The", 2 with double quotes
    genres: list[str]  # '|'-joined, as in movies.csv
    topics: np.ndarray  # float64 [n_movies, K], each row a topic mixture
    fame: np.ndarray  # float64 [n_movies]: the ratings such a movie would have in ML-20M
    popularity: np.ndarray  # float64 [n_movies]: fame as shares, summing to 1
    quality: np.ndarray  # float64 [n_movies], standard normal-ish: how well a movie is rated
    imdb_ids: np.ndarray  # int64, unique
    tmdb_ids: np.ndarray  # int64, 0 = missing (empty field, as in ML-20M)
    # Walker alias tables of popularity x topic, flattened [K+1, n_movies] (last row: popularity
    # alone), so that drawing a movie costs O(1) whatever the catalogue size.
    alias_chance: np.ndarray
    alias_other: np.ndarray

    @property
    def topic_cdfs(self) -> np.ndarray:
        return np.cumsum(self.topics, axis=1)

    @property
    def release_times(self) -> np.ndarray:
        """Unix time of 1 January of each movie's year: nobody rates a movie before it exists."""
        january = (np.maximum(self.years, 1970) - 1970).astype("datetime64[Y]")
        return january.astype("datetime64[s]").astype(np.int64)


# Popularity by rank quantile: log10 of the ratings a movie of that rank would get in ML-20M
# (roughly its curve: median movie ~18 ratings, top ~67k, many with a handful or none;
# the top end is set higher because a user rates a movie at most once).
POPULARITY_CURVE = (
    (0.0, 0.5), (0.25, 0.75), (0.5, 1.4), (0.75, 2.45), (0.9, 3.3), (0.99, 4.5), (1.0, 5.7),
)


def _make_catalogue(rng: np.random.Generator, n_movies: int) -> _Catalogue:
    id_space = max(n_movies, round(n_movies * ML20M_MAX_MOVIE_ID / ML20M_MOVIES))
    movie_ids = np.sort(rng.choice(id_space, n_movies, replace=False)) + 1
    years = np.clip(2015 - np.floor(rng.exponential(16.0, n_movies)), 1891, 2015).astype(np.int64)
    no_year = rng.random(n_movies) < 0.0008
    article = np.where(rng.random(n_movies) < 0.08, 1, 0) + np.where(rng.random(n_movies) < 0.005, 2, 0)
    article = np.minimum(article, 2).astype(np.int8)

    topics = rng.dirichlet(MOVIE_TOPIC_SPREAD * TOPIC_PREVALENCE / TOPIC_PREVALENCE.sum(), n_movies)
    quantile = (rng.permutation(n_movies) + 0.5) / n_movies
    fame = 10.0 ** np.interp(quantile, *zip(*POPULARITY_CURVE))
    popularity = fame / fame.sum()
    log_pop = np.log(popularity)
    quality = 0.8 * rng.standard_normal(n_movies) + 0.35 * (log_pop - log_pop.mean()) / log_pop.std()

    imdb_ids = rng.choice(max(5_000_000, 2 * n_movies), n_movies, replace=False) + 1
    tmdb_ids = rng.choice(max(450_000, 2 * n_movies), n_movies, replace=False) + 1
    tmdb_ids[rng.random(n_movies) < 0.009] = 0

    # A topic's draws favour movies mostly about it (topics**3): otherwise blockbusters, which
    # are a little of everything, would drown the taste signal.
    tables = [_alias_table(w) for w in np.vstack([popularity * topics.T**3, popularity])]
    return _Catalogue(
        movie_ids=movie_ids.astype(np.int64),
        years=years,
        no_year=no_year,
        article=article,
        genres=_draw_genres(rng, topics),
        topics=topics,
        fame=fame,
        popularity=popularity,
        quality=quality,
        imdb_ids=imdb_ids.astype(np.int64),
        tmdb_ids=tmdb_ids.astype(np.int64),
        alias_chance=np.concatenate([chance for chance, _ in tables]),
        alias_other=np.concatenate([other for _, other in tables]),
    )


def _alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method: draw i, keep it with chance[i], else take other[i]."""
    n = len(weights)
    if not weights.sum() > 0:  # a topic no movie is about (tiny catalogues): any movie will do
        weights = np.ones(n)
    chance = (weights * (n / weights.sum())).tolist()
    other = list(range(n))
    small = [i for i, c in enumerate(chance) if c < 1.0]
    large = [i for i, c in enumerate(chance) if c >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        other[s] = g
        chance[g] -= 1.0 - chance[s]
        (small if chance[g] < 1.0 else large).append(g)
    for i in small + large:  # left over only by rounding: certain
        chance[i] = 1.0
    return np.array(chance), np.array(other, dtype=np.int64)


def _draw_genres(rng: np.random.Generator, topics: np.ndarray) -> list[str]:
    """Each topic has typical genres; a movie shows each genre with its topic-weighted chance."""
    topic_genre = np.zeros((len(TOPICS), len(GENRES)))
    for k, (genres, _) in enumerate(TOPICS.values()):
        for j, genre in enumerate(genres.split()):
            topic_genre[k, GENRES.index(genre)] = 1.0 / (1.0 + 0.8 * j)
    chance = np.clip(0.9 * topics @ topic_genre + 0.01, 0, 1)
    shown = rng.random(chance.shape) < chance
    shown[np.arange(len(topics)), np.argmax(chance, axis=1)] = True
    unlisted = rng.random(len(topics)) < 246 / ML20M_MOVIES  # ML-20M's "(no genres listed)" share
    names = np.array(GENRES, dtype=object)
    return [NO_GENRES if none else "|".join(names[row]) for row, none in zip(shown, unlisted)]


@dataclasses.dataclass
class _Users:
    counts: np.ndarray  # int64 ratings per user
    taste_cdfs: np.ndarray  # float64 [n_users, K+1]: cumulative taste over topics + "just popular"
    tastes: np.ndarray  # float64 [n_users, K]: taste over topics, rows sum to 1
    bias: np.ndarray  # float64: how generous a rater is
    half_stars: np.ndarray  # bool: uses half stars
    first_time: np.ndarray  # int64
    last_time: np.ndarray  # int64


def _make_users(rng, n_users: int, n_movies: int, n_ratings: int, catalogue: _Catalogue) -> _Users:
    counts = _activity(rng, n_users, n_ratings, max_user_ratings(n_movies))
    tastes = rng.dirichlet(USER_TASTE_SPREAD * TOPIC_PREVALENCE / TOPIC_PREVALENCE.sum(), n_users)
    just_popular = rng.beta(1.2, 6.0, n_users)  # share of a user's picks driven by popularity alone
    choices = np.hstack([tastes * (1 - just_popular[:, None]), just_popular[:, None]])
    taste_cdfs = np.cumsum(choices, axis=1)

    first_time = rng.integers(FIRST_TIMESTAMP, LAST_TIMESTAMP - 86_400, n_users)
    span = np.exp(rng.normal(np.log(3 * 86_400), 3.0, n_users))
    last_time = np.minimum(first_time + np.maximum(span, 600), LAST_TIMESTAMP).astype(np.int64)

    return _Users(
        counts=counts,
        taste_cdfs=taste_cdfs,
        tastes=tastes,
        bias=0.4 * rng.standard_normal(n_users),
        half_stars=rng.random(n_users) < 0.5,
        first_time=first_time,
        last_time=last_time,
    )


def _activity(rng, n_users: int, n_ratings: int, cap: int) -> np.ndarray:
    """Ratings per user: 20 + a lognormal tail (ML-20M: median 68, mean 144), summing to n_ratings."""
    extra = np.exp(rng.normal(np.log(48.0), 1.38, n_users))
    room = cap - MIN_USER_RATINGS
    wanted = n_ratings - MIN_USER_RATINGS * n_users
    scaled = np.zeros(n_users)
    for _ in range(100):  # scale the tail to the wanted total; users at the cap stay there
        free = scaled < room
        left = wanted - scaled.sum()
        if left <= 0.5 or not free.any():
            break
        scaled[free] += extra[free] * left / extra[free].sum()
        scaled = np.minimum(scaled, room)
    counts = np.floor(scaled).astype(np.int64)
    while (short := wanted - counts.sum()) > 0:  # the rounding remainder, largest fractions first
        below = np.flatnonzero(counts < room)
        counts[below[np.argsort(counts[below] - scaled[below], kind="stable")[:short]]] += 1
    return counts + MIN_USER_RATINGS


# ---------------------------------------------------------------------------------------------
# Ratings, streamed user chunk by user chunk.

AFFINITY_WEIGHT = 0.8  # stars per standard deviation of user-movie topic affinity
MEAN_SCORE = 3.45  # with the constants below: ML-20M's star shares, mean 3.5, ~51% above 3.5
DISLIKE_CHANCE, DISLIKE_DROP = 0.07, 2.0
SCORE_NOISE = 0.7


_POSITION_BITS = 28  # a chunk's draws number far below 2**28, its keys far below 2**(63 - 28)


def _pick_movies(rng, catalogue: _Catalogue, taste_cdfs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Distinct movies per user: the first `counts[u]` distinct ones of i.i.d. taste-driven draws.

    Keeping the first distinct draws is exact sampling without replacement (successive sampling),
    and a draw is a topic choice plus an alias-table look-up, so 20M ratings cost seconds and no
    dense user x movie matrix. Returns sorted keys user_in_chunk * n_movies + movie_index.
    """
    n_movies = len(catalogue.movie_ids)
    kept = np.empty(0, np.int64)
    deficit = counts.copy()
    for attempt in range(8):
        users = np.flatnonzero(deficit)
        if users.size == 0:
            break
        wanted = np.ceil(deficit[users] * 1.3 * 2**attempt).astype(np.int64) + 4
        owner = np.repeat(users, wanted)
        topic = _draw_categories(rng, taste_cdfs, owner)
        movie = rng.integers(0, n_movies, owner.size)
        cell = topic * n_movies + movie
        keep = rng.random(owner.size) < np.take(catalogue.alias_chance, cell)
        movie = np.where(keep, movie, np.take(catalogue.alias_other, cell))
        pool = np.concatenate([kept, owner * n_movies + movie])
        if pool.size >= 2**_POSITION_BITS:
            raise ValueError("too many ratings per user for one chunk: lower RATINGS_PER_CHUNK")
        # Sort (key, position) codes: the first code of each key is its earliest draw.
        codes = np.sort(pool << _POSITION_BITS | np.arange(pool.size))
        first = np.ones(codes.size, bool)
        first[1:] = (codes[1:] >> _POSITION_BITS) != (codes[:-1] >> _POSITION_BITS)
        positions = np.sort(codes[first] & (2**_POSITION_BITS - 1))
        keys = pool[positions[positions >= kept.size]]  # new distinct movies, in draw order, by user
        own = keys // n_movies
        rank = np.arange(keys.size) - np.searchsorted(own, own)
        keys = keys[rank < deficit[own]]
        kept = np.concatenate([kept, keys])
        deficit -= np.bincount(keys // n_movies, minlength=len(counts))
    for user in np.flatnonzero(deficit):  # tastes too narrow for the count: fill by popularity
        free = np.setdiff1d(np.arange(n_movies), kept[kept // n_movies == user] % n_movies)
        p = catalogue.popularity[free] / catalogue.popularity[free].sum()
        picked = rng.choice(free, deficit[user], replace=False, p=p)
        kept = np.concatenate([kept, user * n_movies + picked])
    return np.sort(kept)


def _stars(rng, catalogue: _Catalogue, users: _Users, user: np.ndarray, movie: np.ndarray) -> np.ndarray:
    """Stars from rater generosity + movie quality + topic affinity + noise, rounded as the user does."""
    affinity = np.einsum("ij,ij->i", users.tastes[user], catalogue.topics[movie])
    # Standardised among the rated pairs, so the star shares do not drift with the scale.
    affinity = (affinity - affinity.mean()) / max(affinity.std(), 1e-9)
    score = (
        MEAN_SCORE + users.bias[user] + 0.45 * catalogue.quality[movie]
        + AFFINITY_WEIGHT * affinity + SCORE_NOISE * rng.standard_normal(user.size)
        - DISLIKE_DROP * (rng.random(user.size) < DISLIKE_CHANCE)  # ML's heavy low tail
    )
    score = np.where(score > 4.0, 4.0 + 0.6 * (score - 4.0), score)  # few give five stars freely
    half = users.half_stars[user]
    stars = np.where(half, np.round(score * 2) / 2, np.round(score))
    return np.clip(stars, np.where(half, 0.5, 1.0), 5.0)


def _chunks(counts: np.ndarray) -> list[tuple[int, int]]:
    """User ranges of about RATINGS_PER_CHUNK ratings (at least one user): bounded memory."""
    ends = np.cumsum(counts)
    bounds = [0]
    while bounds[-1] < len(counts):
        done = ends[bounds[-1] - 1] if bounds[-1] else 0
        stop = int(np.searchsorted(ends, done + RATINGS_PER_CHUNK, side="right"))
        bounds.append(max(bounds[-1] + 1, stop))
    return list(itertools.pairwise(bounds))


def _write_ratings(path: Path, seed: int, catalogue: _Catalogue, users: _Users) -> None:
    n_movies = len(catalogue.movie_ids)
    with atomic_open(path) as ratings_file:
        ratings_file.write(b"userId,movieId,rating,timestamp\n")
        for index, (start, stop) in enumerate(_chunks(users.counts)):
            rng = _rng(seed, _CHUNK, index)
            keys = _pick_movies(rng, catalogue, users.taste_cdfs[start:stop], users.counts[start:stop])
            user, movie = keys // n_movies + start, keys % n_movies
            stars = _stars(rng, catalogue, users, user, movie)
            first, last = users.first_time[user], users.last_time[user]
            times = first + np.floor(rng.random(user.size) * (last - first + 1)).astype(np.int64)
            times = np.clip(np.maximum(times, catalogue.release_times[movie]), None, LAST_TIMESTAMP)
            ratings_file.write(_csv_bytes([
                _digits(user + 1), _digits(catalogue.movie_ids[movie]),
                _STAR_TEXT[np.round(stars * 2).astype(np.int64)], _digits(times),
            ]))


def _draw_categories(rng, cdfs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each entry of `rows`, a category drawn from that row of the cumulative weights `cdfs`.

    One binary search over the rows laid end to end (row r spans [r, r + 1]) instead of a
    [len(rows), n_categories] comparison.
    """
    n_rows, width = cdfs.shape
    stacked = (cdfs / cdfs[:, -1:] + np.arange(n_rows)[:, None]).ravel()
    picks = np.searchsorted(stacked, rows + rng.random(rows.size), side="right") - rows * width
    return np.minimum(picks, width - 1)


@functools.cache
def _vocabulary() -> tuple[np.ndarray, np.ndarray]:
    """All words, and per topic the indices of its words (padded by repeating, equal lengths)."""
    per_topic = [v.split() for _, v in TOPICS.values()]
    words = sorted({w for ws in per_topic for w in ws} | set(FILLER.split()))
    index = {w: i for i, w in enumerate(words)}
    width = max(len(ws) for ws in per_topic)
    table = np.array([[index[ws[i % len(ws)]] for i in range(width)] for ws in per_topic])
    return np.array(words), table


# ---------------------------------------------------------------------------------------------
# The movie-side files.


def _names(catalogue: _Catalogue) -> list[str]:
    """Titles without the year, in OMDb's form ("The ..." where MovieLens writes "..., The")."""
    forms = ("Synthetic Movie {}", "The Synthetic Movie {}", '"Synthetic" Movie {}')
    return [forms[a].format(i) for i, a in zip(catalogue.movie_ids.tolist(), catalogue.article.tolist())]


def _titles(catalogue: _Catalogue) -> list[str]:
    """MovieLens titles: "Synthetic Movie 11, The (1995)", a few without a year, as in ML-20M."""
    titles = []
    years, no_years = catalogue.years.tolist(), catalogue.no_year.tolist()
    for name, year, no_year in zip(_names(catalogue), years, no_years):
        name = name[len("The "):] + ", The" if name.startswith("The ") else name
        titles.append(name if no_year else f"{name} ({year})")
    return titles


def _write_movies(path: Path, catalogue: _Catalogue) -> None:
    rows = zip(catalogue.movie_ids.tolist(), _titles(catalogue), catalogue.genres)
    _write_csv(path, ("movieId", "title", "genres"), rows)


def _write_links(path: Path, catalogue: _Catalogue) -> None:
    tmdb = ["" if t == 0 else t for t in catalogue.tmdb_ids.tolist()]
    imdb = [f"{i:07d}" for i in catalogue.imdb_ids.tolist()]
    _write_csv(path, ("movieId", "imdbId", "tmdbId"), zip(catalogue.movie_ids.tolist(), imdb, tmdb))


def _genome_tag_names(path) -> list[str]:
    """The given file's tag names (read where the user keeps it, never copied), else tag0001..."""
    if path is None:
        return [f"tag{i:04d}" for i in range(1, N_GENOME_TAGS + 1)]
    if not Path(path).is_file():
        raise ValueError(f"--genome-tags {path} does not exist: give a genome-tags.csv or leave it out")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if rows[:1] != [["tagId", "tag"]] or len(rows) < 2:
        raise ValueError(f"{path}: expected a genome-tags.csv with header 'tagId,tag' and tag rows")
    return [row[1] for row in rows[1:]]


def _tag_loadings(rng, tag_names: list[str]) -> np.ndarray:
    """[K, n_tags] topic loadings: each tag is about a topic or two, and a tag named like a
    topic's word or genre (with the real tag names) is fully about that topic."""
    strength = rng.uniform(0.3, 1.0, len(tag_names))
    loadings = strength * rng.dirichlet(np.full(len(TOPICS), 0.1), len(tag_names)).T
    for k, (genres, vocab) in enumerate(TOPICS.values()):
        keys = set(vocab.split()) | {g.lower() for g in genres.split()}
        for t, name in enumerate(tag_names):
            if keys & set(re.findall(r"[a-z]+(?:-[a-z]+)?", name.lower())):
                loadings[k, t] = 1.0
    return loadings


def _write_genome_scores(path: Path, rng, catalogue: _Catalogue, tag_names: list[str]) -> int:
    """Relevance = sigmoid(topic loadings + tag bias + noise), for ML-20M's share of the movies:
    the popular ones, as the genome covers movies with enough ratings and tags."""
    n_movies = len(catalogue.movie_ids)
    n_genome = max(1, round(n_movies * ML20M_GENOME_MOVIES / ML20M_MOVIES))
    priority = np.log(catalogue.popularity) + 0.5 * rng.standard_normal(n_movies)
    chosen = np.sort(np.argsort(-priority, kind="stable")[:n_genome])
    loadings = _tag_loadings(rng, tag_names)
    bias = rng.normal(-3.2, 0.8, len(tag_names))
    tag_ids = _digits(np.arange(1, len(tag_names) + 1))
    with atomic_open(path) as f:
        f.write(b"movieId,tagId,relevance\n")
        for start in range(0, n_genome, 1000):
            movies = chosen[start : start + 1000]
            noise = rng.normal(0, 0.7, (movies.size, len(tag_names)))
            logits = 6.0 * catalogue.topics[movies] @ loadings + bias + noise
            relevance = np.round(1e5 / (1 + np.exp(-logits))).astype(np.int64).ravel()
            f.write(_csv_bytes([
                np.repeat(_digits(catalogue.movie_ids[movies]), len(tag_names), axis=0),
                np.tile(tag_ids, (movies.size, 1)),
                _fixed_point(relevance),
            ]))
    return n_genome


def _write_omdb(path: Path, rng, catalogue: _Catalogue) -> int:
    """One OMDb answer per line, as the fetcher stores them; ML-20M's share of movies is found.

    A miss is stored as OMDb answers it plus the imdbID asked for, so that it can be matched
    (and a resumed fetch can skip it); the other misses were never fetched and have no line.
    """
    n = len(catalogue.movie_ids)
    n_found = round(n * ML20M_OMDB_MOVIES / ML20M_MOVIES)
    obscurity = -np.log(catalogue.popularity) + rng.standard_normal(n)
    found = np.zeros(n, bool)
    found[np.argsort(obscurity, kind="stable")[:n_found]] = True
    answered_miss = rng.random(n) < 0.5

    topic_names = list(TOPICS)
    primary = np.argmax(catalogue.topics, axis=1)
    by_topic = np.array([CERTIFICATE_BY_TOPIC.get(t, DEFAULT_CERTIFICATE) for t in topic_names])
    old = (catalogue.years < 1968)[:, None]
    certificate_p = np.where(old, np.array(OLD_CERTIFICATE), by_topic[primary])
    certificate = _draw_categories(rng, np.cumsum(certificate_p, axis=1), np.arange(n))
    country_p = np.array([c[2] for c in COUNTRIES])
    country = _draw_categories(rng, np.cumsum(country_p)[None, :], np.zeros(n, np.int64))
    second_language = np.where(rng.random(n) < 0.15, rng.integers(0, len(COUNTRIES), n), -1)
    day, month = rng.integers(1, 29, n), rng.integers(0, 12, n)
    runtime = np.clip(rng.normal(104, 20, n), 3, 300).astype(int)
    votes = np.maximum(5, 20 * catalogue.fame * np.exp(rng.normal(0, 0.6, n))).astype(np.int64)
    stars = np.clip(6.4 + 1.1 * catalogue.quality + rng.normal(0, 0.4, n), 1.0, 9.8)
    missing_share = {
        "Released": 0.04, "Runtime": 0.02, "Language": 0.01, "imdbRating": 0.02, "imdbVotes": 0.01,
    }
    missing = {field: rng.random(n) < share for field, share in missing_share.items()}
    directors = _people(rng, 1 + (rng.random(n) < 0.08))
    writers = _people(rng, rng.integers(1, 4, n), WRITER_ROLES)
    actors = _people(rng, np.full(n, 4))
    plots = _plots(rng, catalogue.topics)
    names = _names(catalogue)

    with atomic_open(path) as f:
        for m in range(n):
            imdb = f"tt{catalogue.imdb_ids[m]:07d}"
            if not found[m]:
                if answered_miss[m]:
                    miss = {"Response": "False", "Error": "Movie not found!", "imdbID": imdb}
                    f.write(json.dumps(miss).encode() + b"\n")
                continue
            languages = [COUNTRIES[country[m]][1]]
            if second_language[m] >= 0 and COUNTRIES[second_language[m]][1] not in languages:
                languages.append(COUNTRIES[second_language[m]][1])
            genres = [OMDB_GENRE.get(g, g) for g in catalogue.genres[m].split("|") if g != NO_GENRES]
            year = int(catalogue.years[m])
            record = {
                "Title": names[m],
                "Year": str(year),
                "Rated": CERTIFICATES[certificate[m]],
                "Released": f"{day[m]:02d} {MONTHS[month[m]]} {year}",
                "Runtime": f"{runtime[m]} min",
                "Genre": ", ".join(g for g in genres if g) or "N/A",
                "Director": directors[m],
                "Writer": writers[m],
                "Actors": actors[m],
                "Plot": plots[m],
                "Language": ", ".join(languages),
                "Country": COUNTRIES[country[m]][0],
                "imdbRating": f"{stars[m]:.1f}",
                "imdbVotes": f"{votes[m]:,}",
                "imdbID": imdb,
                "Type": "movie",
                "Response": "True",
            }
            for field, absent in missing.items():
                if absent[m]:
                    record[field] = "N/A"  # OMDb's word for a field it lacks
            f.write(json.dumps(record).encode() + b"\n")
    return n_found


def _people(rng, counts: np.ndarray, roles: tuple[str, ...] = ("",)) -> list[str]:
    """Per movie, `counts[m]` made-up names (with a writing credit drawn from `roles`)."""
    total = int(counts.sum())
    first = np.array(FIRST_NAMES)[rng.integers(0, len(FIRST_NAMES), total)]
    last = np.array(LAST_NAMES)[rng.integers(0, len(LAST_NAMES), total)]
    role = np.array(roles)[rng.integers(0, len(roles), total)]
    people = [f"{a} {b}{c}" for a, b, c in zip(first.tolist(), last.tolist(), role.tolist())]
    ends = np.cumsum(counts).tolist()
    return [", ".join(people[e - c : e]) for e, c in zip(ends, counts.tolist())]


def _plots(rng, topics: np.ndarray) -> list[str]:
    """Per movie, sentences of words from its topics with filler words between them."""
    words, topic_words = _vocabulary()
    filler = np.searchsorted(words, FILLER.split())
    n_words = 12 + rng.poisson(40, len(topics))
    owner = np.repeat(np.arange(len(topics)), n_words)
    topic = _draw_categories(rng, np.cumsum(topics, axis=1), owner)
    picks = topic_words[topic, rng.integers(0, topic_words.shape[1], owner.size)]
    is_filler = rng.random(owner.size) < 0.4
    picks = np.where(is_filler, filler[rng.integers(0, filler.size, owner.size)], picks)
    tokens = words[picks].astype(object)
    ends = np.cumsum(n_words)
    full_stop = (rng.random(owner.size) < 0.15) & ~is_filler
    full_stop[ends - 1] = True
    opens = np.roll(full_stop, 1)  # a sentence opens after a full stop (and at each plot's start)
    tokens[opens] = [t.capitalize() for t in tokens[opens]]
    tokens[full_stop] = tokens[full_stop] + "."
    tokens = tokens.tolist()
    return [" ".join(tokens[e - c : e]) for e, c in zip(ends.tolist(), n_words.tolist())]


def _csv_text(rows) -> bytes:
    """UTF-8 CSV that quotes only the fields that need it (commas, quotes), like ML-20M."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _write_csv(path: Path, header: tuple[str, ...], rows) -> None:
    with atomic_open(path) as f:
        f.write(_csv_text([header, *rows]))


_PAD = 0  # byte that marks "no character" in a fixed-width row; removed before writing
_STAR_TEXT = np.frombuffer(b"".join(f"{s / 2:.1f}".encode() for s in range(11)), np.uint8).reshape(11, 3)


def _digits(values: np.ndarray, width: int = 0, keep_zeros: bool = False) -> np.ndarray:
    """Non-negative ints as an [n, width] ASCII matrix, leading zeros marked as padding."""
    values = np.asarray(values, np.int64)
    width = width or max(1, len(str(int(values.max(initial=0)))))
    out = np.empty((values.size, width), np.uint8)
    rest = values.copy()
    for j in range(width - 1, -1, -1):
        out[:, j] = rest % 10 + 48
        rest //= 10
    if not keep_zeros:
        leading = np.ones(values.size, bool)
        for j in range(width - 1):
            leading &= out[:, j] == 48
            out[leading, j] = _PAD
    return out


def _fixed_point(hundred_thousandths: np.ndarray) -> np.ndarray:
    """Ints in [0, 100000] as '0.02500'-style text: five decimals, as genome-scores.csv."""
    whole = _digits(hundred_thousandths // 100_000, 1)
    dot = np.full((hundred_thousandths.size, 1), ord("."), np.uint8)
    return np.hstack([whole, dot, _digits(hundred_thousandths % 100_000, 5, keep_zeros=True)])


def _csv_bytes(columns: list[np.ndarray]) -> bytes:
    """Rows of '<col>,<col>,...\\n' from per-column character matrices, without a Python loop."""
    n = len(columns[0])
    parts = []
    for i, column in enumerate(columns):
        parts.append(column)
        parts.append(np.full((n, 1), ord("\n") if i == len(columns) - 1 else ord(","), np.uint8))
    flat = np.hstack(parts).ravel()
    return flat[flat != _PAD].tobytes()


# ---------------------------------------------------------------------------------------------
# Command line.


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hvae_tf.synthetic.generate",
        description="Write synthetic MovieLens data in the ML-20M file layout (default: its scale).",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write (created if missing)")
    parser.add_argument("--users", type=int, default=ML20M_USERS, help="default: %(default)s")
    parser.add_argument("--movies", type=int, default=ML20M_MOVIES, help="default: %(default)s")
    parser.add_argument(
        "--ratings", type=int, default=None,
        help=f"default: ML-20M's {ML20M_RATINGS / ML20M_USERS:.1f} per user ({ML20M_RATINGS} in all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same bytes")
    parser.add_argument(
        "--genome-tags",
        help="a genome-tags.csv (e.g. the real release's) whose tag names the genome uses "
             "(default: tag0001..tag1128)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        result = generate(
            args.out_dir, args.users, args.movies, args.ratings, args.seed, args.genome_tags
        )
    except ValueError as error:
        parser.error(str(error))
    print(
        f"wrote {result.path}: {result.n_ratings:,} ratings by {result.n_users:,} users on "
        f"{result.n_movies:,} movies, genome for {result.n_genome_movies:,} "
        f"movies, OMDb for {result.n_omdb_movies:,} (seed {result.seed}, "
        f"{time.perf_counter() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
