"""IMDb features from OMDb records: languages, certification, IMDb rating and the plot text.

Missing values are explicit rather than silent zeros: a continuous part that a movie lacks
(no rating, no plot, no word the lexicon knows) is filled with the mean over the movies that have
it, and a binary `..._missing` column says so. After the Movie-VAE standardises continuous
columns, a filled value is exactly 0, and the indicator carries the fact that it was missing.
OMDb writes "N/A" for an absent field; `""` means the movie has no OMDb record at all.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from hvae_tf.data.schema import MovieLensData
from hvae_tf.features import text
from hvae_tf.features.feature_matrix import FeatureMatrix, hstack, select_movies
from tf_datasets.hvae_movielens.releases import OMDB_HELP

ABSENT = {"", "N/A"}
NOT_RATED = {"not rated", "unrated", "not-rated"}
NO_LANGUAGE = "(no language)"  # OMDb's "None": silent films


def imdb_features(
    data: MovieLensData,
    movie_ids,
    *,
    liwc_dic=None,
    vad_lexicon=None,
    word_vectors=None,
    word_vector_dim: int = 300,
    seed: int = 0,
    progress: bool = True,
) -> FeatureMatrix:
    """The paper's IMDb set: language multi-hot, certification one-hot, IMDb rating, and plot
    features (LIWC or Empath categories, VAD norms when a lexicon is given, mean word vector).

    Columns that would be constant for every movie (no movie has a rating, say) are left out and
    the summary says so.
    """
    if not data.has_omdb:
        raise ValueError(f"--features imdb needs OMDb records for the {data.release} release and "
                         f"there are none: {OMDB_HELP}")
    movies = select_movies(data, movie_ids)
    ids = movies["movieId"].to_numpy()
    has_record = movies["has_omdb"].to_numpy(dtype=bool)

    def field(name: str) -> list[str]:
        return [str(v) if ok else "" for v, ok in zip(movies[name].fillna(""), has_record)]

    parts = [
        language_part(field("omdb_language"), ids),
        certification_part(field("omdb_rated"), ids),
        rating_part(field("omdb_imdb_rating"), ids),
        plot_part(field("omdb_plot"), ids, liwc_dic=liwc_dic, vad_lexicon=vad_lexicon,
                  word_vectors=word_vectors, word_vector_dim=word_vector_dim, seed=seed,
                  progress=progress),
    ]
    summary = {"movies": len(ids), "movies with an OMDb record": int(has_record.sum())}
    for part in parts:
        summary.update(part.summary)
    return hstack(parts, summary)


def language_part(languages: list[str], ids) -> FeatureMatrix:
    """Multi-hot: OMDb lists every language, "English, French"."""
    per_movie = []
    for value in languages:
        names = [] if value.strip() in ABSENT else [v.strip() for v in value.split(",") if v.strip()]
        per_movie.append([NO_LANGUAGE if n == "None" else n for n in names])
    return _one_hot(per_movie, ids, "language")


def certification_part(ratings: list[str], ids) -> FeatureMatrix:
    """One-hot over the certifications seen; "Not Rated" and "Unrated" (any case) are one value,
    a real answer ("released without a rating"); "N/A" is unknown and gets no column."""
    per_movie = []
    for value in ratings:
        value = value.strip()
        if value in ABSENT:
            per_movie.append([])
        else:
            per_movie.append(["Not Rated" if value.lower() in NOT_RATED else value])
    return _one_hot(per_movie, ids, "rated", label="certification")


def rating_part(values: list[str], ids) -> FeatureMatrix:
    """IMDb rating 0-10 as is (the paper), mean-filled with an `imdb_rating_missing` indicator."""
    rating = np.full(len(values), np.nan, dtype=np.float32)
    for i, value in enumerate(values):
        try:
            number = float(value)
        except ValueError:
            continue
        if 0.0 <= number <= 10.0:
            rating[i] = number
    known = ~np.isnan(rating)
    summary = {"imdb rating: movies with one": int(known.sum())}
    if not known.any():
        summary["imdb rating: columns"] = "left out (no movie has a rating)"
        return FeatureMatrix(np.zeros((len(ids), 0)), [], [], ids, summary)
    rating[~known] = rating[known].mean()
    return FeatureMatrix(
        np.stack([rating, ~known], axis=1), ["imdb_rating", "imdb_rating_missing"],
        ["continuous", "binary"], ids, summary,
    )


def plot_part(plots: list[str], ids, *, liwc_dic, vad_lexicon, word_vectors, word_vector_dim,
              seed, progress) -> FeatureMatrix:
    """Category proportions, VAD means and the mean word vector of each plot."""
    text.tokenise("")  # load the tokenizer (seconds) before the progress bar starts timing
    tokens, missing, undecodable = [], 0, 0
    for raw in tqdm(plots, desc="tokenising plots", unit="plot", disable=not progress):
        plot, had_bad_chars = text.clean_text(raw)
        undecodable += had_bad_chars
        if plot.strip() in ABSENT:
            missing += 1
            tokens.append([])
        else:
            tokens.append(text.tokenise(plot))
    counts, vocabulary = text.count_tokens(tokens)
    has_words = np.asarray([len(t) > 0 for t in tokens])
    summary = {
        "plot: movies with words": int(has_words.sum()),
        "plot: missing": missing,
        "plot: empty (no words)": int(len(tokens) - missing - has_words.sum()),
        "plot: undecodable characters removed": undecodable,
    }
    parts = [FeatureMatrix((~has_words)[:, None], ["plot_missing"], ["binary"], ids)]

    lexicon = text.read_liwc_dic(liwc_dic) if liwc_dic is not None else text.empath_lexicon()
    means, used = text.average_rows(counts, lexicon.term_matrix(vocabulary))
    parts.append(_continuous(means, used, [f"{lexicon.name}={c}" for c in lexicon.categories], ids))
    summary[f"{lexicon.name}: categories"] = len(lexicon.categories)
    summary[f"{lexicon.name}: multi-word entries skipped"] = lexicon.skipped_phrases

    if vad_lexicon is None:
        summary["vad: columns"] = "left out (no VAD lexicon given)"
    else:
        norms = text.read_vad_lexicon(vad_lexicon)
        known = np.asarray([i for i, w in enumerate(vocabulary) if w in norms], dtype=np.int64)
        rows = np.asarray([norms[vocabulary[i]] for i in known], dtype=np.float32).reshape(-1, 3)
        means, used = text.average_rows(counts, rows, known)
        parts.append(_continuous(means, used, [f"vad={k}" for k in text.VAD_COLUMNS], ids))
        summary["vad: movies with a known word"] = int((used > 0).sum())

    if word_vectors is not None:
        vectors = text.load_word_vectors(word_vectors, word_vector_dim)
        summary["word vectors"] = str(word_vectors)
    else:
        vectors = text.train_word_vectors([t for t in tokens if t], word_vector_dim, seed,
                                          progress=progress)
        summary["word vectors"] = f"word2vec trained on the plots ({word_vector_dim}-d, seed {seed})"
    known = np.asarray([] if vectors is None else
                       [i for i, w in enumerate(vocabulary) if w in vectors.key_to_index], dtype=np.int64)
    rows = (vectors[[vocabulary[i] for i in known]] if len(known)
            else np.zeros((0, word_vector_dim), dtype=np.float32))
    means, used = text.average_rows(counts, rows, known)
    parts.append(_continuous(means, used, [f"w2v_{j}" for j in range(word_vector_dim)], ids))
    summary["word vectors: movies with a known word"] = int((used > 0).sum())
    return hstack(parts, summary)


def _continuous(means: np.ndarray, used: np.ndarray, columns: list[str], ids) -> FeatureMatrix:
    """Rows without any usable token take the mean of the rows that have one."""
    have = used > 0
    if have.any():
        means[~have] = means[have].mean(axis=0)
    return FeatureMatrix(means, columns, ["continuous"] * len(columns), ids)


def _one_hot(per_movie: list[list[str]], ids, prefix: str, label: str | None = None) -> FeatureMatrix:
    values_seen = sorted({v for values in per_movie for v in values})
    column = {v: j for j, v in enumerate(values_seen)}
    matrix = np.zeros((len(per_movie), len(values_seen)), dtype=np.float32)
    for i, values in enumerate(per_movie):
        matrix[i, [column[v] for v in values]] = 1.0
    label = label or prefix
    summary = {f"{label}: movies with one": int(matrix.any(axis=1).sum()),
               f"{label}: values": len(values_seen)}
    return FeatureMatrix(matrix, [f"{prefix}={v}" for v in values_seen],
                         ["binary"] * len(values_seen), ids, summary)
