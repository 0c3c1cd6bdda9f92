"""The in-memory form of one MovieLens release, shared by every stage after the TFDS builder.

Everything downstream (protocols, movie features, training, evaluation) reads a `MovieLensData`
and never the raw files, so the file formats are handled in one place.

ratings: one row per (user, movie) rating, sorted by userId then timestamp.
    userId int64, movieId int64, rating float32, timestamp int64 (-1 where the release has none).
movies: one row per catalogue movie, sorted by movieId.
    movieId int64, title str, year int32 (-1 unknown), genres tuple[str, ...],
    imdbId str ("tt0114709"; "" unknown),
    genome_relevance np.ndarray float32 of length len(genome_tags), or length 0 when the movie
        has no genome row (or the release has no genome),
    has_omdb bool, and the OMDb fields as raw strings ("" when absent, OMDb's "N/A" kept as is):
        omdb_title, omdb_year, omdb_rated, omdb_released, omdb_runtime, omdb_genre,
        omdb_director, omdb_writer, omdb_actors, omdb_plot, omdb_language, omdb_country,
        omdb_imdb_rating, omdb_imdb_votes.
genome_tags: the tag names, position i = genome_relevance[i] (tagId i + 1); empty without genome.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

RATING_COLUMNS = ("userId", "movieId", "rating", "timestamp")
OMDB_FIELDS = {
    # OMDb JSON key -> our column
    "Title": "omdb_title",
    "Year": "omdb_year",
    "Rated": "omdb_rated",
    "Released": "omdb_released",
    "Runtime": "omdb_runtime",
    "Genre": "omdb_genre",
    "Director": "omdb_director",
    "Writer": "omdb_writer",
    "Actors": "omdb_actors",
    "Plot": "omdb_plot",
    "Language": "omdb_language",
    "Country": "omdb_country",
    "imdbRating": "omdb_imdb_rating",
    "imdbVotes": "omdb_imdb_votes",
}
MOVIE_COLUMNS = (
    "movieId", "title", "year", "genres", "imdbId", "genome_relevance", "has_omdb",
    *OMDB_FIELDS.values(),
)


@dataclasses.dataclass
class MovieLensData:
    """One release as tables: ratings, the movie catalogue and the genome tag names."""

    release: str
    ratings: pd.DataFrame
    movies: pd.DataFrame
    genome_tags: list[str]

    @property
    def has_omdb(self) -> bool:
        return bool(self.movies["has_omdb"].any())

    @property
    def has_genome(self) -> bool:
        return bool(self.genome_tags)
