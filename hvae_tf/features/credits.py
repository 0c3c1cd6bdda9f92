"""Credits from the OMDb records: who directed, wrote and starred in each movie (beyond the paper).

The paper's IMDb set describes a movie by its plot, languages, certification and rating; none of
them says who made it, yet a new film by a director whose other films a user watched is the
classic case content can place. A person is a column only when credited on at least
`MIN_MOVIES` movies of the release (a person of one movie tells nothing about another). Where
that leaves more than `MAX_COLUMNS` people, the least-credited are dropped a whole count at a time
(everyone on 2 movies, then on 3, ...), never some of one count by name, so the dense matrix stays
within memory on ML-20M's 27k movies (8,192 float32 columns: 0.9 GB).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from hvae_tf.data.schema import MovieLensData
from hvae_tf.features.feature_matrix import FeatureMatrix, select_movies
from tf_datasets.hvae_movielens.releases import OMDB_HELP

ROLES = {"director": "omdb_director", "writer": "omdb_writer", "actor": "omdb_actors"}
MIN_MOVIES = 2
MAX_COLUMNS = 8192
ABSENT = {"", "N/A"}
_ROLE_NOTE = re.compile(r"\s*\([^)]*\)")  # "Stephen King (novel)": the person is Stephen King


def people(value: str) -> list[str]:
    """The names of one OMDb credit field, each once, in the order given."""
    if value.strip() in ABSENT:
        return []
    names = (_ROLE_NOTE.sub("", name).strip() for name in value.split(","))
    return list(dict.fromkeys(n for n in names if n and n not in ABSENT))


def credits_features(data: MovieLensData, movie_ids) -> FeatureMatrix:
    """Multi-hot over (role, person), chosen over the release's whole catalogue so the columns are
    fixed per release; a `credits_missing` column marks movies without an OMDb record."""
    if not data.has_omdb:
        raise ValueError(f"--features credits needs OMDb records for the {data.release} release "
                         f"and there are none: {OMDB_HELP}")

    catalogue = data.movies
    has_record = catalogue["has_omdb"].to_numpy(dtype=bool)
    fields = {role: catalogue[column].fillna("").astype(str).to_numpy() for role, column in ROLES.items()}
    credited = {movie: {(role, name) for role in ROLES for name in people(fields[role][i])}
                if has_record[i] else set() for i, movie in enumerate(catalogue["movieId"])}
    counts = Counter(credit for movie in credited.values() for credit in movie)
    least = MIN_MOVIES
    while sum(n >= least for n in counts.values()) > MAX_COLUMNS:
        least += 1
    kept = sorted(c for c, n in counts.items() if n >= least)
    column = {credit: j for j, credit in enumerate(kept)}

    movies = select_movies(data, movie_ids)
    values = np.zeros((len(movies), len(kept) + 1), dtype=np.float32)
    missing = ~movies["has_omdb"].to_numpy(dtype=bool)
    values[missing, -1] = 1.0
    for i, movie in enumerate(movies["movieId"]):
        values[i, [column[c] for c in credited[movie] if c in column]] = 1.0
    summary = {
        f"credits: people on at least {MIN_MOVIES} movies": sum(n >= MIN_MOVIES for n in counts.values()),
        "credits: people kept": len(kept),
        "credits: movies each kept person has at least": least,
        **{f"credits: {role} columns": sum(r == role for r, _ in kept) for role in ROLES},
        "credits: movies without an OMDb record": int(missing.sum()),
        "credits: movies with no kept person": int((values[~missing, :-1].sum(axis=1) == 0).sum()),
    }
    return FeatureMatrix(values, [f"{role}={name}" for role, name in kept] + ["credits_missing"],
                         ["binary"] * (len(kept) + 1), movies["movieId"], summary)
