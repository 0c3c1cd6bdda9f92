"""omdb.jsonl (one OMDb API answer a line) -> the OMDb fields of each IMDb id."""

from __future__ import annotations

import json
from pathlib import Path

from tf_datasets.hvae_movielens import releases
from tf_datasets.hvae_movielens.columns import OMDB_FIELDS
from tf_datasets.hvae_movielens.files import MovieLensFormatError, ReadReport


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

