"""A release's files, wherever they lie, and the table parsing every reader shares.

A release is read from its unzipped folder, a folder holding that folder, or the zip itself.
Large numeric tables are parsed by pandas' C engine (ML-20M in seconds); only when a file is
malformed is it scanned line by line in Python, to name the line that is wrong.

TFDS keys a prepared dataset by builder, config and version only, so the builder also records
`source_fingerprint` (name, size and SHA-256 of every file read): whoever reuses the dataset can
tell whether it was made from the files at hand.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import math
import zipfile
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import pandas as pd

from tf_datasets.hvae_movielens import releases
from tf_datasets.hvae_movielens.columns import RATING_COLUMNS


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
    links_file: str = ""  # the links.csv read ("" when the release has none)
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
            links = f" from {self.links_file}" if self.links_file else ", no links.csv"
            lines.append(f"  movies: {self.movies:,} ({self.movies_with_imdb_id:,} with an IMDb id{links})")
            lines.append(f"  genome: {self.genome_movies:,} movies x {self.genome_tags:,} tags")
            omdb = "none" if not self.omdb_file else (
                f"{self.movies_with_omdb:,} movies from {self.omdb_records:,} records in "
                f"{self.omdb_file} ({self.omdb_not_found_records:,} not found, "
                f"{self.omdb_unmatched_records:,} unmatched, "
                f"{self.omdb_lines_with_bad_bytes:,} lines with non-UTF-8 bytes)"
            )
            lines.append(f"  OMDb: {omdb}")
        return "\n".join(lines)


def where_to_get(release: releases.Release) -> str:
    return (
        f"download {release.url} and unzip it (or pass the manual dir that holds the unzipped "
        f"{release.folder}/ folder or {release.archive})"
    )


_CHUNK = 1 << 20  # bytes read at a time when hashing or scanning a whole file


class ReleaseFiles:
    """The files of one release, whether unzipped in a folder or still inside its zip."""

    def __init__(self, location: Path, release: releases.Release):
        self.location = location
        self.release = release
        self._complete: set[str] = set()  # names whose last byte was checked
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
                f"({self.release.archive}) has it; {where_to_get(self.release)}"
            )
        if self.size(name) == 0:
            raise MovieLensFormatError(
                f"{self.describe(name)} is empty (0 bytes): the copy is damaged; "
                f"{where_to_get(self.release)}"
            )
        self._require_final_newline(name)

    def _require_final_newline(self, name: str) -> None:
        """Every MovieLens file ends with a newline; one that does not was cut short (a broken
        download or copy), and the parsers would read its lines as a smaller release."""
        if name in self._complete:
            return
        size = self.size(name)
        with self.open(name) as f:
            f.seek(max(size - 256, 0))  # inside a zip this inflates the member up to there
            tail = f.read()
        if not tail.endswith(b"\n"):
            last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
            raise MovieLensFormatError(
                f"{self.describe(name)} line {self.count_newlines(name) + 1} ({last!r}) ends "
                f"without a newline: the file looks truncated; download it again "
                f"({self.release.url}) and unzip it"
            )
        self._complete.add(name)

    def count_newlines(self, name: str) -> int:
        with self.open(name) as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(_CHUNK), b""))

    def digest(self, name: str) -> dict:
        """Name, size and SHA-256 of one file (a zip member's content, not its compressed bytes)."""
        with self.open(name) as f:
            return _digest(name, f)

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
                f"the file is damaged, {where_to_get(self.release)}"
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
        raise FileNotFoundError(f"{path} does not exist: {where_to_get(rel)}")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise FileNotFoundError(
                f"{path} is neither a folder nor a zip archive: {where_to_get(rel)}"
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
        f"directly; {where_to_get(rel)}"
    )


@contextlib.contextmanager
def release_files(release: str, path) -> Iterator[ReleaseFiles]:
    rel = releases.get_release(release)
    files = ReleaseFiles(locate_release(release, path), rel)
    try:
        yield files
    finally:
        files.close()


def ratings_table(files: ReleaseFiles) -> releases.TableFile:
    """The release's ratings file, or a `ratings.csv` with a header standing in for an old `.dat`."""
    table = files.release.ratings
    if not files.exists(table.name) and not table.header and files.exists("ratings.csv"):
        return releases.TableFile("ratings.csv", ",", "utf-8", True, RATING_COLUMNS)
    return table


def manual_omdb(manual_dir) -> Path | None:
    """The omdb.jsonl lying directly in a manual dir: the one the builder gives the movies reader."""
    if manual_dir is None:
        return None
    path = Path(manual_dir).expanduser() / releases.OMDB_FILE
    return path if path.is_file() else None


def find_omdb(files: ReleaseFiles, given) -> Path | None:
    """`given`, else omdb.jsonl in the release folder, else beside it; None when there is none."""
    if given is not None:
        given = Path(given).expanduser()
        if not given.is_file():
            raise FileNotFoundError(f"OMDb file {given} does not exist: {releases.OMDB_HELP}")
        return given
    for folder in (files.location, files.container):
        if folder.is_dir() and (folder / releases.OMDB_FILE).is_file():
            return folder / releases.OMDB_FILE
    return None


# ---------------------------------------------------------------------------- fingerprint

FINGERPRINT_FORMAT = "hvae_movielens.sources/1"


def _digest(name: str, f: BinaryIO) -> dict:
    sha, size = hashlib.sha256(), 0
    for chunk in iter(lambda: f.read(_CHUNK), b""):
        sha.update(chunk)
        size += len(chunk)
    return {"name": name, "size": size, "sha256": sha.hexdigest()}


def source_names(files: ReleaseFiles) -> list[str]:
    """The release files that the users and movies readers open, those that exist."""
    release = files.release
    names = [ratings_table(files).name, release.movies.name]
    if release.movies.sep == "|":
        names.append("u.genre")  # names u.item's genre flags
    names.append(release.links.name if release.links else "links.csv")  # optional without links
    if release.has_genome:
        names += [releases.GENOME_TAGS.name, releases.GENOME_SCORES.name]
    return [name for name in names if files.exists(name)]


def source_fingerprint(release: str, path, omdb_path=None) -> dict:
    """What a build of `release` from `path` reads: every file's name, size and SHA-256.

    The same for both configs (each records all files both read), so a users and a movies
    dataset made from other files are told apart; the same for a folder and its zip. `digest`
    sums it up, `source` says where it was read (not part of the digest).
    """
    with release_files(release, path) as files:
        entries = [files.digest(name) for name in source_names(files)]
        omdb = find_omdb(files, omdb_path)
        location = str(files.location)
    if omdb is not None:
        with open(omdb, "rb") as f:
            entries.append(_digest(releases.OMDB_FILE, f))
    summed = json.dumps({"format": FINGERPRINT_FORMAT, "files": entries}, sort_keys=True)
    return {"format": FINGERPRINT_FORMAT, "digest": hashlib.sha256(summed.encode()).hexdigest(),
            "files": entries, "source": location}


def fingerprint_difference(before: dict, now: dict) -> str:
    """Which files differ between two fingerprints, in a few words ("ratings.csv: 10 -> 8 bytes")."""
    old = {e["name"]: e for e in before.get("files", [])}
    new = {e["name"]: e for e in now.get("files", [])}
    changes = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if a is None:
            changes.append(f"{name} was not there")
        elif b is None:
            changes.append(f"{name} is gone")
        elif a["size"] != b["size"]:
            changes.append(f"{name}: {a['size']:,} -> {b['size']:,} bytes")
        else:
            changes.append(f"{name}: same size, other content")
    return ", ".join(changes) or f"fingerprint format {before.get('format')!r}"

def header_columns(files: ReleaseFiles, table: releases.TableFile) -> tuple[str, ...]:
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


def data_lines(files: ReleaseFiles, table: releases.TableFile) -> Iterator[tuple[int, list[str]]]:
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
    for number, fields in data_lines(files, table):
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


def line_of_row(files: ReleaseFiles, table: releases.TableFile, row: int) -> int:
    for i, (number, _) in enumerate(data_lines(files, table)):
        if i == row:
            return number
    raise IndexError(row)


def parse_numeric_table(files: ReleaseFiles, table, columns) -> pd.DataFrame:
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



def bits(n: int) -> int:
    """Bits that hold the codes 0..n-1."""
    return max(int(n - 1).bit_length(), 1)


def dense_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order-preserving codes 0..k-1 of `values`, and the k distinct values, sorted.

    Linear time when the ids are compact (MovieLens ids are); a sort otherwise, where
    `np.unique(return_inverse=True)` would always sort all 20M rows of ML-20M.
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


def composite_key(parts: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """One int64 per row that sorts like the tuple of the parts' codes (each 0..n-1)."""
    if sum(bits(n) for _, n in parts) > 63:
        raise OverflowError("too many distinct values to pack into one int64 sort key")
    key = np.zeros(parts[0][0].size, np.int64)
    for codes, n in parts:
        key <<= bits(n)
        key |= codes
    return key



def csv_rows(files: ReleaseFiles, table: releases.TableFile) -> Iterator[tuple[int, list[str]]]:
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


def int_field(files, name: str, number: int, column: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise MovieLensFormatError(
            f"{files.describe(name)} line {number}: {column} {value!r} is not an integer"
        ) from None

