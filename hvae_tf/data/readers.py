"""Raw MovieLens files -> `MovieLensData`: the one parser behind the TFDS builder.

Every release in `releases.py` is read here, from its unzipped folder, a folder holding that
folder, or the zip itself, so the builder, the tests and any script agree on what a file means.
Ratings are parsed by pandas' C engine (ML-20M in seconds); only when a file is malformed do we
scan it line by line in Python, to name the line that is wrong.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import re
import zipfile
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import pandas as pd

from hvae_tf.data import releases
from hvae_tf.data.schema import MOVIE_COLUMNS, OMDB_FIELDS, RATING_COLUMNS, MovieLensData

log = logging.getLogger(__name__)

# TFDS's `movielens` builder renames these, so genre names agree across releases.
GENRE_ALIASES = {"Children's": "Children", "unknown": "Unknown"}
# "Toy Story (1995)", "Babylon 5 (1993-1998)", trailing blanks allowed.
_TITLE_YEAR = re.compile(r"\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")
_NO_GENOME = np.zeros(0, np.float32)


class MovieLensFormatError(ValueError):
    """A release file exists but its content is not what the release promises."""


@dataclasses.dataclass
class ReadReport:
    """What reading a release found: printed after a read and kept in the dataset's metadata."""

    source: str = ""
    ratings: int = 0
    users: int = 0
    rated_movies: int = 0
    duplicate_ratings_dropped: int = 0
    has_timestamps: bool = True
    movies: int = 0
    movies_with_imdb_id: int = 0
    genome_tags: int = 0
    genome_movies: int = 0
    omdb_file: str = ""
    omdb_records: int = 0
    omdb_not_found_records: int = 0  # "Response": "False"
    omdb_unmatched_records: int = 0  # imdbID of no catalogue movie
    omdb_lines_with_bad_bytes: int = 0  # not UTF-8; decoded with U+FFFD
    movies_with_omdb: int = 0

    def __str__(self) -> str:
        lines = [f"read {self.source}"]
        if self.ratings:
            lines.append(
                f"  ratings: {self.ratings:,} by {self.users:,} users on {self.rated_movies:,} movies"
                f" ({self.duplicate_ratings_dropped:,} duplicates dropped"
                f"{'' if self.has_timestamps else ', no timestamps: -1'})"
            )
        if self.movies:
            lines.append(f"  movies: {self.movies:,} ({self.movies_with_imdb_id:,} with an IMDb id)")
            lines.append(f"  genome: {self.genome_movies:,} movies x {self.genome_tags:,} tags")
            omdb = "none" if not self.omdb_file else (
                f"{self.movies_with_omdb:,} movies from {self.omdb_records:,} records in "
                f"{self.omdb_file} ({self.omdb_not_found_records:,} not found, "
                f"{self.omdb_unmatched_records:,} unmatched, "
                f"{self.omdb_lines_with_bad_bytes:,} lines with non-UTF-8 bytes)"
            )
            lines.append(f"  OMDb: {omdb}")
        return "\n".join(lines)


def _where_to_get(release: releases.Release) -> str:
    return (
        f"download {release.url} and unzip it (or pass the manual dir that holds the unzipped "
        f"{release.folder}/ folder or {release.archive})"
    )


class _ReleaseFiles:
    """The files of one release, whether unzipped in a folder or still inside its zip."""

    def __init__(self, location: Path, release: releases.Release):
        self.location = location
        self.release = release
        self._zip = zipfile.ZipFile(location) if location.is_file() else None
        self._prefix = ""
        self._members = set(self._zip.namelist()) if self._zip is not None else set()
        if any(n.startswith(release.folder + "/") for n in self._members):
            self._prefix = release.folder + "/"

    @property
    def container(self) -> Path:
        """The folder beside the release, where side files such as omdb.jsonl may lie."""
        return self.location.parent

    def describe(self, name: str) -> str:
        if self._zip is not None:
            return f"{self.location}:{self._prefix}{name}"
        return str(self.location / name)

    def exists(self, name: str) -> bool:
        if self._zip is not None:
            return self._prefix + name in self._members
        return (self.location / name).is_file()

    def size(self, name: str) -> int:
        if self._zip is not None:
            return self._zip.getinfo(self._prefix + name).file_size
        return (self.location / name).stat().st_size

    def open(self, name: str) -> BinaryIO:
        if self._zip is not None:
            return self._zip.open(self._prefix + name)
        return open(self.location / name, "rb")

    def require(self, name: str) -> None:
        """Fail with a message naming the file and where to get it, if it is missing or empty."""
        if not self.exists(name):
            raise FileNotFoundError(
                f"{self.describe(name)} is missing: the MovieLens {self.release.name} release "
                f"({self.release.archive}) has it; {_where_to_get(self.release)}"
            )
        if self.size(name) == 0:
            raise MovieLensFormatError(
                f"{self.describe(name)} is empty (0 bytes): the copy is damaged; "
                f"{_where_to_get(self.release)}"
            )

    def read_text(self, name: str, encoding: str) -> str:
        """The whole file as text; a byte that is not `encoding` is reported with its line."""
        self.require(name)
        with self.open(name) as f:
            data = f.read()
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise MovieLensFormatError(
                f"{self.describe(name)} line {line}: bytes that are not {encoding} ({e.reason}); "
                f"the file is damaged, {_where_to_get(self.release)}"
            ) from None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _holds_release(folder: Path, release: releases.Release) -> bool:
    names = (release.ratings.name, release.movies.name, "ratings.csv")
    return any((folder / n).is_file() for n in names)


def locate_release(release: str, path) -> Path:
    """The unzipped release folder or the zip that `path` is, or holds (`ml-20m/`, `ml-20m.zip`).

    Raises FileNotFoundError saying what was looked for and where the release is published.
    """
    rel = releases.get_release(release)
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: {_where_to_get(rel)}")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise FileNotFoundError(
                f"{path} is neither a folder nor a zip archive: {_where_to_get(rel)}"
            )
        return path
    if _holds_release(path, rel):
        return path
    if (path / rel.folder).is_dir():
        return path / rel.folder
    if (path / rel.archive).is_file():
        return path / rel.archive
    raise FileNotFoundError(
        f"no MovieLens {rel.name} release in {path}: expected {rel.folder}/ (unzipped), "
        f"{rel.archive}, or the release files ({rel.ratings.name}, {rel.movies.name}) "
        f"directly; {_where_to_get(rel)}"
    )


@contextlib.contextmanager
def _release_files(release: str, path) -> Iterator[_ReleaseFiles]:
    rel = releases.get_release(release)
    files = _ReleaseFiles(locate_release(release, path), rel)
    try:
        yield files
    finally:
        files.close()


# ----------------------------------------------------------------------------- ratings


def _ratings_table(files: _ReleaseFiles) -> releases.TableFile:
    """The release's ratings file, or a `ratings.csv` with a header standing in for an old `.dat`."""
    table = files.release.ratings
    if not files.exists(table.name) and not table.header and files.exists("ratings.csv"):
        return releases.TableFile("ratings.csv", ",", "utf-8", True, RATING_COLUMNS)
    return table


def _header_columns(files: _ReleaseFiles, table: releases.TableFile) -> tuple[str, ...]:
    """The columns the file really has: its header line, checked against what we expect."""
    if not table.header:
        return table.columns
    with files.open(table.name) as f:
        first = f.readline().decode(table.encoding, errors="replace").strip().lstrip("\ufeff")
    found = tuple(c.strip().strip('"') for c in first.split(table.sep))
    expected = table.columns
    # A ratings file without timestamps (e.g. a rebuilt ml-1m) is accepted: they become -1.
    optional_last = table.columns == RATING_COLUMNS
    if found == expected or (optional_last and found == expected[:-1]):
        return found
    raise MovieLensFormatError(
        f"{files.describe(table.name)} line 1: header {','.join(found)!r}, expected "
        f"{','.join(expected)!r}; is this a MovieLens {files.release.name} file?"
    )


def _data_lines(files: _ReleaseFiles, table: releases.TableFile) -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, fields) for each data row, skipping the header and blank lines.

    Only used to explain a failure, so a plain Python loop is fine here.
    """
    with files.open(table.name) as raw:
        text = io.TextIOWrapper(raw, encoding=table.encoding, errors="replace", newline="")
        for number, line in enumerate(text, start=1):
            if number == 1 and table.header:
                continue
            line = line.rstrip("\r\n")
            if line.strip():
                yield number, line.split(table.sep)


# The numeric columns of the big tables, parsed by pandas as these dtypes.
_NUMERIC_DTYPES = {
    "userId": np.int64, "movieId": np.int64, "rating": np.float32, "timestamp": np.int64,
    "tagId": np.int64, "relevance": np.float32,
}


def _first_malformed_line(files, table, columns) -> tuple[int, str] | None:
    parsers = {c: float if _NUMERIC_DTYPES[c] is np.float32 else int for c in columns}
    for number, fields in _data_lines(files, table):
        if len(fields) != len(columns):
            return number, (
                f"expected {len(columns)} fields ({','.join(columns)}), found {len(fields)}"
            )
        for name, value in zip(columns, fields):
            try:
                parsed = parsers[name](value)
            except ValueError:
                kind = "a number" if parsers[name] is float else "an integer"
                return number, f"{name} {value!r} is not {kind}"
            if isinstance(parsed, float) and not math.isfinite(parsed):
                return number, f"{name} {value!r} is not a finite number"
    return None


def _line_of_row(files: _ReleaseFiles, table: releases.TableFile, row: int) -> int:
    for i, (number, _) in enumerate(_data_lines(files, table)):
        if i == row:
            return number
    raise IndexError(row)


def _parse_numeric_table(files: _ReleaseFiles, table, columns) -> pd.DataFrame:
    """A large all-numeric file (ratings, genome scores) parsed fast; a bad row named by line."""
    with files.open(table.name) as f:
        source: BinaryIO = f
        sep = table.sep
        if len(sep) > 1:  # "::" would push pandas onto its slow Python engine
            source = io.BytesIO(f.read().replace(sep.encode(), b"\t"))
            sep = "\t"
        try:
            return pd.read_csv(
                source, sep=sep, header=None, names=list(columns), skiprows=int(table.header),
                dtype={c: _NUMERIC_DTYPES[c] for c in columns}, na_filter=False, engine="c",
                encoding=table.encoding,
            )
        except (ValueError, pd.errors.ParserError) as e:
            error = e
    bad = _first_malformed_line(files, table, columns)
    if bad is None:
        raise MovieLensFormatError(f"{files.describe(table.name)}: {error}") from error
    number, why = bad
    raise MovieLensFormatError(f"{files.describe(table.name)} line {number}: {why}") from None


def _check_rating_values(files, table, rating: np.ndarray) -> None:
    low, high = files.release.rating_scale
    bad = np.flatnonzero(~((rating >= low) & (rating <= high)))  # NaN is bad too
    if bad.size:
        number = _line_of_row(files, table, int(bad[0]))
        raise MovieLensFormatError(
            f"{files.describe(table.name)} line {number}: rating {rating[bad[0]]} is outside the "
            f"{files.release.name} scale {low}..{high} ({bad.size:,} such rows)"
        )


def _bits(n: int) -> int:
    """Bits that hold the codes 0..n-1."""
    return max(int(n - 1).bit_length(), 1)


def _dense_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order-preserving codes 0..k-1 of `values`, and the k distinct values, sorted.

    Linear time when the ids are compact (MovieLens ids are); a sort otherwise. `np.unique`
    with `return_inverse` takes 20 s on 20M rows here.
    """
    low = int(values.min())
    span = int(values.max()) - low + 1
    if span <= 4 * values.size + 1_000_000:
        present = np.zeros(span, bool)
        present[values - low] = True
        return (np.cumsum(present) - 1)[values - low], np.flatnonzero(present) + low
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new = np.empty(values.size, bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    codes = np.empty(values.size, np.int64)
    codes[order] = np.cumsum(new) - 1
    return codes, ordered[new]


def _composite_key(parts: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """One int64 per row that sorts like the tuple of the parts' codes (each 0..n-1)."""
    if sum(_bits(n) for _, n in parts) > 63:
        raise OverflowError("too many distinct values to pack into one int64 sort key")
    key = np.zeros(parts[0][0].size, np.int64)
    for codes, n in parts:
        key <<= _bits(n)
        key |= codes
    return key


def _latest_of_duplicates(pair: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """Mask keeping, of each repeated `pair`, the row with the latest timestamp (then the last).

    MovieLens files list each user's ratings by movieId, so the usual check is one linear pass;
    only the few repeated rows get sorted by time.
    """
    keep = np.ones(pair.size, bool)
    by_pair = None if np.all(pair[1:] >= pair[:-1]) else np.argsort(pair, kind="stable")
    ordered = pair if by_pair is None else pair[by_pair]
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return keep
    involved = np.zeros(pair.size, bool)
    involved[1:] |= same
    involved[:-1] |= same
    rows = np.flatnonzero(involved) if by_pair is None else by_pair[involved]
    rows = rows[np.lexsort((rows, timestamp[rows], pair[rows]))]
    last = np.append(pair[rows][1:] != pair[rows][:-1], True)
    keep[rows[~last]] = False
    return keep


def _ratings_from_files(files: _ReleaseFiles, report: ReadReport) -> pd.DataFrame:
    table = _ratings_table(files)
    files.require(table.name)
    columns = _header_columns(files, table)
    frame = _parse_numeric_table(files, table, columns)
    if frame.empty:
        raise MovieLensFormatError(
            f"{files.describe(table.name)} has no rating rows; {_where_to_get(files.release)}"
        )
    user = frame["userId"].to_numpy()
    movie = frame["movieId"].to_numpy()
    rating = frame["rating"].to_numpy()
    _check_rating_values(files, table, rating)
    if "timestamp" in frame:
        timestamp = frame["timestamp"].to_numpy()
    else:
        timestamp = np.full(len(frame), -1, np.int64)
    del frame

    user_code, user_ids = _dense_codes(user)
    movie_code, movie_ids = _dense_codes(movie)
    n_users, n_movies = user_ids.size, movie_ids.size
    pair = _composite_key([(user_code, n_users), (movie_code, n_movies)])
    keep = _latest_of_duplicates(pair, timestamp)
    del pair
    dropped = int(keep.size - np.count_nonzero(keep))
    if dropped:
        user, movie, rating, timestamp = user[keep], movie[keep], rating[keep], timestamp[keep]
        user_code, movie_code = user_code[keep], movie_code[keep]
    del keep

    # Sorted by user, then time, then movieId: one stable argsort of a packed key (numpy's
    # lexsort takes over a minute on 20M rows).
    time_span = int(timestamp.max() - timestamp.min()) + 1
    if _bits(n_users) + _bits(time_span) + _bits(n_movies) <= 63:
        time_code, n_times = timestamp - timestamp.min(), time_span
    else:
        time_code, times = _dense_codes(timestamp)
        n_times = times.size
    order = np.argsort(
        _composite_key([(user_code, n_users), (time_code, n_times), (movie_code, n_movies)]),
        kind="stable",
    )
    del user_code, movie_code, time_code
    ratings = pd.DataFrame(
        {"userId": user[order], "movieId": movie[order], "rating": rating[order],
         "timestamp": timestamp[order]},
        copy=False,
    )
    report.ratings = len(ratings)
    report.users = n_users
    report.rated_movies = n_movies
    report.duplicate_ratings_dropped = dropped
    report.has_timestamps = "timestamp" in columns
    return ratings


def read_ratings(release: str, path, report: ReadReport | None = None) -> pd.DataFrame:
    """The ratings table of schema.py: sorted by userId, then timestamp (then movieId).

    Duplicate (userId, movieId) rows: the one with the latest timestamp is kept (on equal
    timestamps, the last in the file); how many were dropped goes into `report`.
    """
    report = report if report is not None else ReadReport()
    with _release_files(release, path) as files:
        report.source = str(files.location)
        return _ratings_from_files(files, report)


# ----------------------------------------------------------------------------- movies


def _year_of(title: str) -> int:
    match = _TITLE_YEAR.search(title)
    return int(match.group(1)) if match else -1


def _genres_of(names) -> tuple[str, ...]:
    return tuple(GENRE_ALIASES.get(g, g) for g in names if g)


def _csv_rows(files: _ReleaseFiles, table: releases.TableFile) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a small headed .csv, header checked; quotes handled by `csv`."""
    text = files.read_text(table.name, table.encoding)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    needed = table.columns[:2] if table.name == "links.csv" else table.columns
    if header is None or tuple(h.strip().lstrip("\ufeff") for h in header[: len(needed)]) != needed:
        raise MovieLensFormatError(
            f"{files.describe(table.name)} line 1: header {header!r}, expected "
            f"{','.join(table.columns)!r}"
        )
    for fields in reader:
        if fields:
            yield reader.line_num, fields


def _int_field(files, name: str, number: int, column: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise MovieLensFormatError(
            f"{files.describe(name)} line {number}: {column} {value!r} is not an integer"
        ) from None


def _movie_rows(files: _ReleaseFiles) -> Iterator[tuple[int, int, str, tuple[str, ...]]]:
    """(line, movieId, title, genres) from movies.csv, movies.dat or u.item."""
    table = files.release.movies
    if table.header:
        for number, fields in _csv_rows(files, table):
            if len(fields) != 3:
                raise MovieLensFormatError(
                    f"{files.describe(table.name)} line {number}: expected 3 fields "
                    f"(movieId,title,genres), found {len(fields)}"
                )
            movie_id = _int_field(files, table.name, number, "movieId", fields[0])
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
        movie_id = _int_field(files, table.name, number, "movieId", fields[0])
        if genre_names is None:
            genres = _genres_of(fields[2].split("|"))
        else:
            flags = fields[len(table.columns):]
            genres = _genres_of(g for g, flag in zip(genre_names, flags) if flag.strip() == "1")
        yield number, movie_id, fields[1], genres


def _genre_names_100k(files: _ReleaseFiles) -> list[str]:
    """u.genre: "name|index" lines naming u.item's genre flags in order."""
    by_index = {}
    for number, line in enumerate(files.read_text("u.genre", "iso-8859-1").splitlines(), 1):
        if line.strip():
            name, _, index = line.partition("|")
            by_index[_int_field(files, "u.genre", number, "index", index.strip())] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise MovieLensFormatError(f"{files.describe('u.genre')}: indexes are not 0..{len(by_index) - 1}")
    return [by_index[i] for i in range(len(by_index))]


def _imdb_ids(files: _ReleaseFiles) -> dict[int, str]:
    """links.csv: movieId -> "tt0114709". Required where the release ships it, else optional."""
    table = files.release.links or releases.TableFile(
        "links.csv", ",", "utf-8", True, ("movieId", "imdbId", "tmdbId")
    )
    if files.release.links is None and not files.exists(table.name):
        return {}
    ids = {}
    for number, fields in _csv_rows(files, table):
        movie_id = _int_field(files, table.name, number, "movieId", fields[0])
        imdb = fields[1].strip() if len(fields) > 1 else ""
        if imdb and not imdb.isdigit():
            raise MovieLensFormatError(
                f"{files.describe(table.name)} line {number}: imdbId {imdb!r} is not a number"
            )
        ids[movie_id] = f"tt{imdb.zfill(7)}" if imdb else ""
    return ids


def _genome(files: _ReleaseFiles, movie_ids: np.ndarray, report: ReadReport):
    """(relevance vectors aligned with movie_ids, tag names) from genome-scores/-tags.csv."""
    tags_table, scores_table = releases.GENOME_TAGS, releases.GENOME_SCORES
    tags = {}
    for number, fields in _csv_rows(files, tags_table):
        tag_id = _int_field(files, tags_table.name, number, "tagId", fields[0])
        tags[tag_id] = ",".join(fields[1:])
    if sorted(tags) != list(range(1, len(tags) + 1)):
        raise MovieLensFormatError(
            f"{files.describe(tags_table.name)}: tagIds are not 1..{len(tags)} without gaps"
        )
    tag_names = [tags[i] for i in range(1, len(tags) + 1)]

    files.require(scores_table.name)
    columns = _header_columns(files, scores_table)
    scores = _parse_numeric_table(files, scores_table, columns)
    genome_movie = scores["movieId"].to_numpy()
    tag_index = scores["tagId"].to_numpy() - 1
    relevance = scores["relevance"].to_numpy()
    del scores
    if tag_index.size and (tag_index.min() < 0 or tag_index.max() >= len(tag_names)):
        raise MovieLensFormatError(
            f"{files.describe(scores_table.name)}: tagIds outside 1..{len(tag_names)} of "
            f"{tags_table.name}"
        )
    row, genome_ids = _dense_codes(genome_movie)
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
        matrix[p] if found and genome_ids[p] == m else _NO_GENOME
        for m, p in zip(movie_ids.tolist(), position.tolist())
    ]
    report.genome_tags = len(tag_names)
    report.genome_movies = int(sum(v.size > 0 for v in vectors))
    return vectors, tag_names


def _find_omdb(files: _ReleaseFiles, given) -> Path | None:
    if given is not None:
        given = Path(given).expanduser()
        if not given.is_file():
            raise FileNotFoundError(f"OMDb file {given} does not exist: {releases.OMDB_HELP}")
        return given
    for folder in (files.location, files.container):
        if folder.is_dir() and (folder / releases.OMDB_FILE).is_file():
            return folder / releases.OMDB_FILE
    return None


def read_omdb(path, report: ReadReport | None = None) -> dict[str, dict[str, str]]:
    """imdbID -> {omdb column: raw string} from an OMDb JSON-lines file.

    Records with "Response": "False" (OMDb found nothing) are counted and left out. Bytes that
    are not UTF-8 are replaced (U+FFFD) and the lines counted; a line that is not JSON is an error.
    """
    report = report if report is not None else ReadReport()
    path = Path(path)
    records = {}
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = raw.decode("utf-8", errors="replace")
                report.omdb_lines_with_bad_bytes += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise MovieLensFormatError(
                    f"{path} line {number}: not a JSON object ({e.msg}); each line must be one "
                    f"OMDb response; {releases.OMDB_HELP}"
                ) from None
            if not isinstance(record, dict):
                raise MovieLensFormatError(f"{path} line {number}: not a JSON object")
            report.omdb_records += 1
            if str(record.get("Response", "True")).lower() == "false" or not record.get("imdbID"):
                report.omdb_not_found_records += 1
                continue
            records[str(record["imdbID"])] = {
                column: "" if record.get(key) is None else str(record[key])
                for key, column in OMDB_FIELDS.items()
            }
    report.omdb_file = str(path)
    return records


def _movies_from_files(files: _ReleaseFiles, omdb_path, report: ReadReport):
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
            f"{files.describe(table.name)} lists no movies; {_where_to_get(files.release)}"
        )
    movie_ids = np.array(sorted(rows), np.int64)
    titles = [rows[m][0] for m in movie_ids.tolist()]
    imdb = _imdb_ids(files)
    imdb_ids = [imdb.get(m, "") for m in movie_ids.tolist()]
    if files.release.has_genome:
        genome, genome_tags = _genome(files, movie_ids, report)
    else:
        genome, genome_tags = [_NO_GENOME] * len(movie_ids), []

    omdb_file = _find_omdb(files, omdb_path)
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
    with _release_files(release, path) as files:
        report.source = str(files.location)
        return _movies_from_files(files, omdb_path, report)


def read_release(release: str, path, omdb_path=None, report: ReadReport | None = None) -> MovieLensData:
    """One MovieLens release as `MovieLensData`; see `read_ratings` for the duplicate policy.

    `path`: the unzipped release folder, a folder holding it (or its zip), or the zip itself.
    A summary of what was read is logged and, if given, filled into `report`.
    """
    report = report if report is not None else ReadReport()
    with _release_files(release, path) as files:
        report.source = str(files.location)
        movies, genome_tags = _movies_from_files(files, omdb_path, report)
        ratings = _ratings_from_files(files, report)
        unknown = ~np.isin(ratings["movieId"].to_numpy(), movies["movieId"].to_numpy())
        if unknown.any():
            first = int(np.flatnonzero(unknown)[0])
            raise MovieLensFormatError(
                f"{files.describe(_ratings_table(files).name)}: user "
                f"{ratings['userId'].iat[first]} rates movie {ratings['movieId'].iat[first]}, "
                f"which {files.describe(files.release.movies.name)} does not list "
                f"({int(unknown.sum()):,} such ratings)"
            )
    log.info("%s", report)
    return MovieLensData(release=release, ratings=ratings, movies=movies, genome_tags=genome_tags)
