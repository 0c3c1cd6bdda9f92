"""movies.csv / movies.dat / u.item (+ links, genome, OMDb) -> the movies table."""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np
import pandas as pd

from tf_datasets.hvae_movielens import releases
from tf_datasets.hvae_movielens.columns import MOVIE_COLUMNS, OMDB_FIELDS
from tf_datasets.hvae_movielens.files import (
    MovieLensFormatError,
    ReadReport,
    ReleaseFiles,
    csv_rows,
    find_omdb,
    int_field,
    release_files,
    where_to_get,
)
from tf_datasets.hvae_movielens.genome import NO_GENOME, genome_vectors
from tf_datasets.hvae_movielens.omdb import read_omdb

GENRE_ALIASES = {"Children's": "Children", "unknown": "Unknown"}
# "Toy Story (1995)", "Babylon 5 (1993-1998)", trailing blanks allowed.
_TITLE_YEAR = re.compile(r"\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")


def _year_of(title: str) -> int:
    match = _TITLE_YEAR.search(title)
    return int(match.group(1)) if match else -1


def _genres_of(names) -> tuple[str, ...]:
    return tuple(GENRE_ALIASES.get(g, g) for g in names if g)


def _movie_rows(files: ReleaseFiles) -> Iterator[tuple[int, int, str, tuple[str, ...]]]:
    """(line, movieId, title, genres) from movies.csv, movies.dat or u.item."""
    table = files.release.movies
    if table.header:
        for number, fields in csv_rows(files, table):
            if len(fields) != 3:
                raise MovieLensFormatError(
                    f"{files.describe(table.name)} line {number}: expected 3 fields "
                    f"(movieId,title,genres), found {len(fields)}"
                )
            movie_id = int_field(files, table.name, number, "movieId", fields[0])
            yield number, movie_id, fields[1], _genres_of(fields[2].split("|"))
        return
    genre_names = _genre_names_100k(files) if table.sep == "|" else None
    text = files.read_text(table.name, table.encoding)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(table.sep)
        wanted = 3 if genre_names is None else len(table.columns) + len(genre_names)
        if len(fields) != wanted:
            raise MovieLensFormatError(
                f"{files.describe(table.name)} line {number}: expected {wanted} fields "
                f"separated by {table.sep!r}, found {len(fields)}"
            )
        movie_id = int_field(files, table.name, number, "movieId", fields[0])
        if genre_names is None:
            genres = _genres_of(fields[2].split("|"))
        else:
            flags = fields[len(table.columns):]
            genres = _genres_of(g for g, flag in zip(genre_names, flags) if flag.strip() == "1")
        yield number, movie_id, fields[1], genres


def _genre_names_100k(files: ReleaseFiles) -> list[str]:
    """u.genre: "name|index" lines naming u.item's genre flags in order."""
    by_index = {}
    for number, line in enumerate(files.read_text("u.genre", "iso-8859-1").splitlines(), 1):
        if line.strip():
            name, _, index = line.partition("|")
            by_index[int_field(files, "u.genre", number, "index", index.strip())] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise MovieLensFormatError(f"{files.describe('u.genre')}: indexes are not 0..{len(by_index) - 1}")
    return [by_index[i] for i in range(len(by_index))]


def _imdb_ids(files: ReleaseFiles) -> dict[int, str]:
    """links.csv: movieId -> "tt0114709". Required where the release ships it, else optional."""
    table = files.release.links or releases.TableFile(
        "links.csv", ",", "utf-8", True, ("movieId", "imdbId", "tmdbId")
    )
    if files.release.links is None and not files.exists(table.name):
        return {}
    ids = {}
    for number, fields in csv_rows(files, table):
        movie_id = int_field(files, table.name, number, "movieId", fields[0])
        imdb = fields[1].strip() if len(fields) > 1 else ""
        if imdb and not imdb.isdigit():
            raise MovieLensFormatError(
                f"{files.describe(table.name)} line {number}: imdbId {imdb!r} is not a number"
            )
        ids[movie_id] = f"tt{imdb.zfill(7)}" if imdb else ""
    return ids



def movies_from_files(files: ReleaseFiles, omdb_path, report: ReadReport):
    table = files.release.movies
    files.require(table.name)
    rows = {}
    for number, movie_id, title, genres in _movie_rows(files):
        if movie_id in rows:
            raise MovieLensFormatError(
                f"{files.describe(table.name)} line {number}: movieId {movie_id} listed twice"
            )
        rows[movie_id] = (title, genres)
    if not rows:
        raise MovieLensFormatError(
            f"{files.describe(table.name)} lists no movies; {where_to_get(files.release)}"
        )
    movie_ids = np.array(sorted(rows), np.int64)
    titles = [rows[m][0] for m in movie_ids.tolist()]
    imdb = _imdb_ids(files)
    imdb_ids = [imdb.get(m, "") for m in movie_ids.tolist()]
    links = files.release.links.name if files.release.links else "links.csv"
    report.links_file = files.describe(links) if files.exists(links) else ""
    if files.release.has_genome:
        genome, genome_tags = genome_vectors(files, movie_ids, report)
    else:
        genome, genome_tags = [NO_GENOME] * len(movie_ids), []

    omdb_file = find_omdb(files, omdb_path)
    omdb = read_omdb(omdb_file, report) if omdb_file is not None else {}
    matched = [omdb.get(i) if i else None for i in imdb_ids]
    report.omdb_unmatched_records = len(set(omdb) - set(imdb_ids))

    movies = pd.DataFrame({
        "movieId": movie_ids,
        "title": titles,
        "year": np.array([_year_of(t) for t in titles], np.int32),
        "genres": pd.Series([rows[m][1] for m in movie_ids.tolist()], dtype=object),
        "imdbId": imdb_ids,
        "genome_relevance": pd.Series(genome, dtype=object),
        "has_omdb": np.array([m is not None for m in matched], bool),
        **{
            column: [m[column] if m is not None else "" for m in matched]
            for column in OMDB_FIELDS.values()
        },
    })[list(MOVIE_COLUMNS)]
    report.movies = len(movies)
    report.movies_with_imdb_id = int(sum(bool(i) for i in imdb_ids))
    report.movies_with_omdb = int(movies["has_omdb"].sum())
    return movies, genome_tags


def read_movies(
    release: str, path, omdb_path=None, report: ReadReport | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """The movies table of schema.py (sorted by movieId) and the genome tag names.

    OMDb records come from `omdb_path`, else from omdb.jsonl in the release folder or beside it.
    """
    report = report if report is not None else ReadReport()
    with release_files(release, path) as files:
        report.source = str(files.location)
        return movies_from_files(files, omdb_path, report)

