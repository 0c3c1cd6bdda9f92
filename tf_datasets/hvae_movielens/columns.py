"""The column names of what the builder stores: one ratings table and one movies table.

The readers produce these tables, the builder writes them as examples, and the loader turns the
examples back into them, so all three share these names.

ratings: one row per (user, movie) rating, sorted by userId then timestamp.
    userId int64, movieId int64, rating float32, timestamp int64 (-1 where the release has none).
movies: one row per catalogue movie, sorted by movieId.
    movieId int64, title str, year int32 (-1 unknown), genres tuple[str, ...],
    imdbId str ("tt0114709"; "" unknown),
    genome_relevance np.ndarray float32 of length len(genome_tags), or length 0 when the movie
        has no genome row (or the release has no genome),
    has_omdb bool, and the OMDb fields as raw strings ("" when absent, OMDb's "N/A" kept as is).
"""

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
