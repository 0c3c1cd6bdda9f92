"""The in-memory form of one MovieLens release, shared by every stage after the TFDS builder.

Everything downstream (protocols, movie features, training, evaluation) reads a `MovieLensData`
and never the raw files, so the file formats are handled in one place: the readers beside the
builder in tf_datasets/hvae_movielens/, whose columns.py describes the two tables.
genome_tags: the tag names, position i = genome_relevance[i] (tagId i + 1); empty without genome.
fingerprint: the digest of the raw files the tables were read from ("" when unknown, e.g. tables
made in memory); every cache made from the data (splits, embeddings) is keyed on it.
report: what reading the files found (the builder's ReadReport fields), for the data summary.
"""

from __future__ import annotations

import dataclasses

import pandas as pd


@dataclasses.dataclass
class MovieLensData:
    """One release as tables: ratings, the movie catalogue and the genome tag names."""

    release: str
    ratings: pd.DataFrame
    movies: pd.DataFrame
    genome_tags: list[str]
    fingerprint: str = ""
    report: dict = dataclasses.field(default_factory=dict)

    @property
    def has_omdb(self) -> bool:
        return bool(self.movies["has_omdb"].any())

    @property
    def has_genome(self) -> bool:
        return bool(self.genome_tags)
