"""Nearest movies in embedding space (the paper's future work): a title or id in, k titles out.

People type "the matrix" or "star wars", not "Matrix, The (1999)": titles are compared after moving
MovieLens' trailing article to the front, with and without the year; titles that start with or
contain the query's words win, then difflib's ratio decides (and catches typos).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

import numpy as np

_YEAR = re.compile(r"\s*\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")
_ARTICLES = "the|a|an|les|la|le|l'|el|il|der|die|das"
_TRAILING_ARTICLE = re.compile(rf"^(.*), ({_ARTICLES})$", re.IGNORECASE)
_LEADING_ARTICLE = re.compile(rf"^(?:{_ARTICLES}) ")


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^\w']+", " ", text.lower()).split())


def normalise_title(title: str) -> tuple[str, str]:
    """('the matrix 1999', 'the matrix') for 'Matrix, The (1999)': lower case, article in front."""
    text = title.strip()
    year_match = _YEAR.search(text)
    year = year_match.group(1) if year_match else ""
    name = _YEAR.sub("", text).strip()
    article = _TRAILING_ARTICLE.match(name)
    if article:
        name = f"{article.group(2)} {article.group(1)}"
    name = _words(name)
    return (f"{name} {year}".strip(), name)


def _score(wanted: str, title: str, matcher: difflib.SequenceMatcher) -> tuple[int, float]:
    """(tier, similarity): 3 same title, 2 title starts with the query, 1 title contains the query's
    words, 0 neither; similarity (difflib ratio) ranks titles within a tier."""
    with_year, name = normalise_title(title)
    bare = _LEADING_ARTICLE.sub("", name)  # "matrix" is "the matrix"
    if wanted in (with_year, name, bare, _LEADING_ARTICLE.sub("", with_year)):
        return 3, 1.0
    if name.startswith(wanted + " ") or bare.startswith(wanted + " "):
        tier = 2
    else:
        tier = 1 if f" {wanted} " in f" {name} " else 0
    similarity = 0.0
    for form in (with_year, name):
        matcher.set_seq1(form)
        if matcher.real_quick_ratio() > similarity and matcher.quick_ratio() > similarity:
            similarity = max(similarity, matcher.ratio())
    return tier, similarity


def match_title(query: str, titles: Sequence[str], cutoff: float = 0.6) -> int:
    """Row of the title that best matches `query`; an error with suggestions when none is close.

    "star wars" must find "Star Wars: Episode IV - A New Hope (1977)" and not the more similar
    string "Star Maps (1997)": titles that start with or contain the query's words come first.
    """
    wanted = _words(query)
    if not wanted:
        raise ValueError("empty movie query: give a title such as 'Toy Story (1995)' or a movie id")
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(wanted)  # difflib caches the second sequence
    scores = [_score(wanted, title, matcher) for title in titles]
    # max() keeps the first of equal scores: ties go to the earlier catalogue row.
    best_row = max(range(len(titles)), key=scores.__getitem__, default=-1)
    if best_row < 0 or (scores[best_row][0] == 0 and scores[best_row][1] < cutoff):
        closest = sorted(range(len(titles)), key=lambda i: scores[i], reverse=True)[:3]
        best = scores[best_row][1] if best_row >= 0 else 0.0
        raise ValueError(
            f"no movie title matches {query!r} (best similarity {best:.2f} < {cutoff}); "
            f"closest: {', '.join(repr(titles[i]) for i in closest)}"
        )
    return best_row


def resolve_movie(query: str | int, titles: Sequence[str], movie_ids: Sequence[int] | None = None,
                  cutoff: float = 0.6) -> int:
    """Row for a movie id (an int, or a string of digits, looked up in `movie_ids`) or a title."""
    is_id = isinstance(query, (int, np.integer)) or (isinstance(query, str) and query.strip().isdigit())
    if is_id:
        if movie_ids is None:
            raise ValueError(f"movie id {query} given but no movie_ids to look it up in; pass movie_ids")
        rows = np.flatnonzero(np.asarray(movie_ids) == int(query))
        if len(rows) == 0:
            raise ValueError(f"movie id {query} is not among the {len(movie_ids)} movies of these embeddings")
        return int(rows[0])
    return match_title(query, titles, cutoff=cutoff)


def nearest(embeddings, titles: Sequence[str], query: str | int, k: int = 10,
            movie_ids: Sequence[int] | None = None, metric: str = "euclidean",
            cutoff: float = 0.6) -> list[tuple[str, float]]:
    """The k movies closest to `query` (itself excluded), nearest first, as (title, distance)."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or len(embeddings) != len(titles):
        raise ValueError(
            f"embeddings {embeddings.shape} must be [movies, dims] with one row per title ({len(titles)})"
        )
    if k < 1:
        raise ValueError(f"k={k}: ask for at least one neighbour")
    row = resolve_movie(query, titles, movie_ids, cutoff=cutoff)
    if metric == "euclidean":
        distance = np.linalg.norm(embeddings - embeddings[row], axis=1)
    elif metric == "cosine":
        norms = np.linalg.norm(embeddings, axis=1) * np.linalg.norm(embeddings[row])
        distance = 1.0 - (embeddings @ embeddings[row]) / np.where(norms > 0, norms, 1.0)
    else:
        raise ValueError(f"metric={metric!r}: choose 'euclidean' or 'cosine'")
    distance[row] = np.inf
    order = np.argsort(distance, kind="stable")[: min(k, len(titles) - 1)]
    return [(titles[i], float(distance[i])) for i in order]
