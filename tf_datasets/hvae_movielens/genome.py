"""genome-scores.csv and genome-tags.csv -> one relevance vector per catalogue movie."""

from __future__ import annotations

import numpy as np

from tf_datasets.hvae_movielens import releases
from tf_datasets.hvae_movielens.files import (
    MovieLensFormatError,
    ReadReport,
    ReleaseFiles,
    csv_rows,
    dense_codes,
    header_columns,
    int_field,
    parse_numeric_table,
)

NO_GENOME = np.zeros(0, np.float32)


def genome_vectors(files: ReleaseFiles, movie_ids: np.ndarray, report: ReadReport):
    """(relevance vectors aligned with movie_ids, tag names) from genome-scores/-tags.csv."""
    tags_table, scores_table = releases.GENOME_TAGS, releases.GENOME_SCORES
    tags = {}
    for number, fields in csv_rows(files, tags_table):
        tag_id = int_field(files, tags_table.name, number, "tagId", fields[0])
        tags[tag_id] = ",".join(fields[1:])
    if sorted(tags) != list(range(1, len(tags) + 1)):
        raise MovieLensFormatError(
            f"{files.describe(tags_table.name)}: tagIds are not 1..{len(tags)} without gaps"
        )
    tag_names = [tags[i] for i in range(1, len(tags) + 1)]

    files.require(scores_table.name)
    columns = header_columns(files, scores_table)
    scores = parse_numeric_table(files, scores_table, columns)
    genome_movie = scores["movieId"].to_numpy()
    tag_index = scores["tagId"].to_numpy() - 1
    relevance = scores["relevance"].to_numpy()
    del scores
    if tag_index.size and (tag_index.min() < 0 or tag_index.max() >= len(tag_names)):
        raise MovieLensFormatError(
            f"{files.describe(scores_table.name)}: tagIds outside 1..{len(tag_names)} of "
            f"{tags_table.name}"
        )
    row, genome_ids = dense_codes(genome_movie)
    matrix = np.full((genome_ids.size, len(tag_names)), np.nan, np.float32)
    matrix[row, tag_index] = relevance
    incomplete = np.flatnonzero(np.isnan(matrix).any(axis=1))
    if incomplete.size or relevance.size != matrix.size:
        which = f"movie {genome_ids[incomplete[0]]}" if incomplete.size else "some movie"
        raise MovieLensFormatError(
            f"{files.describe(scores_table.name)}: {which} does not have exactly one finite "
            f"relevance for each of the {len(tag_names)} tags"
        )
    position = np.searchsorted(genome_ids, movie_ids)
    position = np.minimum(position, max(genome_ids.size - 1, 0))
    found = genome_ids.size > 0
    vectors = [
        matrix[p] if found and genome_ids[p] == m else NO_GENOME
        for m, p in zip(movie_ids.tolist(), position.tolist())
    ]
    report.genome_tags = len(tag_names)
    report.genome_movies = int(sum(v.size > 0 for v in vectors))
    return vectors, tag_names

