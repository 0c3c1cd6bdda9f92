"""Fetch OMDb records (plot, language, certification, IMDb rating) for the movies of a links.csv.

    python -m hvae_tf.omdb --api-key KEY --links links.csv --out omdb.jsonl [--rate 10/s]

The output is JSON lines, one OMDb answer per line plus "requestedImdbID" (the id we asked for:
OMDb may answer a merged title under another imdbID, and misses carry no id at all). Misses
("Response": "False", e.g. "Movie not found!") are recorded too, so they are not asked again.

The free key allows 1,000 requests a day and ML-20M has 27k movies, so a run must survive being
stopped: every record is appended whole (one write, flush, fsync), a torn last line left by a
crash is dropped on the next run, and ids already in the output are skipped. Appending is the
file's contract, so it is not rewritten through a temporary file.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

DEFAULT_BASE_URL = "http://www.omdbapi.com/"
BASE_URL_ENV = "OMDB_BASE_URL"
API_KEY_ENV = "OMDB_API_KEY"
KEY_PAGE = "https://www.omdbapi.com/apikey.aspx"
REQUESTED = "requestedImdbID"
RESUME_HINT = "run the same command again to resume (ids already in the output are skipped)"


class OmdbError(RuntimeError):
    """A stop the user must act on; the message says how. `exit_code` is the command's status."""

    exit_code = 1


class InvalidApiKey(OmdbError):
    pass


class DailyLimitReached(OmdbError):
    exit_code = 3


class FetchFailed(OmdbError):
    pass


@dataclasses.dataclass
class FetchReport:
    requested: int
    already_done: int
    fetched: int = 0
    misses: int = 0
    torn_line_dropped: bool = False


# ---------------------------------------------------------------------------- inputs


def read_imdb_ids(links_path: str | os.PathLike) -> list[str]:
    """IMDb ids ("tt0114709") of a MovieLens links.csv, in file order, each once; blanks skipped."""
    path = Path(links_path)
    if not path.is_file():
        raise FileNotFoundError(f"links file {path} not found (MovieLens' links.csv)")
    ids: dict[str, None] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if "imdbId" not in (reader.fieldnames or []):
            raise ValueError(f"{path}, line 1: no imdbId column (found {reader.fieldnames}); "
                             "expected MovieLens' links.csv header movieId,imdbId,tmdbId")
        for line_no, row in enumerate(reader, 2):
            value = (row["imdbId"] or "").strip()
            if not value:
                continue
            digits = value[2:] if value.startswith("tt") else value
            if not digits.isdigit():
                raise ValueError(f"{path}, line {line_no}: imdbId {value!r} is not a number")
            ids.setdefault(f"tt{int(digits):07d}", None)
    return list(ids)


def parse_rate(text: str) -> float:
    """Requests per second from "10/s", "600/min", "2/m" or a bare number (per second)."""
    number, _, unit = str(text).strip().partition("/")
    seconds = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}.get(unit.strip())
    try:
        rate = float(number) / seconds
    except (TypeError, ValueError):
        rate = -1.0
    if not rate > 0:
        raise ValueError(f"--rate {text!r}: use a positive number of requests per s, min or h, e.g. 10/s")
    return rate


def completed_ids(out_path: str | os.PathLike) -> tuple[set[str], bool]:
    """Ids already answered in the output, and whether a torn last line was cut off first.

    Only the last line can be torn (each record is one write); a bad line before it means the
    file was edited or is not ours, and is an error naming the line.
    """
    path = Path(out_path)
    if not path.exists():
        return set(), False
    data = path.read_bytes()
    torn = bool(data) and not data.endswith(b"\n")
    if torn:
        keep = data.rfind(b"\n") + 1
        os.truncate(path, keep)
        data = data[:keep]
    done = set()
    for line_no, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise ValueError(f"{path}, line {line_no}: not a JSON record; fix or delete the line, "
                             f"then {RESUME_HINT}") from None
        imdb_id = record.get(REQUESTED) or record.get("imdbID")
        if imdb_id:
            done.add(imdb_id)
    return done, torn


# ---------------------------------------------------------------------------- requests


class RateLimiter:
    """At most `rate` request starts per second, evenly spaced."""

    def __init__(self, rate: float, clock=time.monotonic, sleep=time.sleep):
        self.interval, self.clock, self.sleep = 1.0 / rate, clock, sleep
        self.next_start = 0.0

    def wait(self) -> None:
        now = self.clock()
        if now < self.next_start:
            self.sleep(self.next_start - now)
        self.next_start = max(now, self.next_start) + self.interval


def request_url(base_url: str, imdb_id: str, api_key: str) -> str:
    query = urllib.parse.urlencode({"i": imdb_id, "plot": "full", "apikey": api_key})
    return f"{base_url}{'&' if '?' in base_url else '?'}{query}"


def fetch_record(imdb_id: str, api_key: str, *, base_url: str = DEFAULT_BASE_URL,
                 limiter: RateLimiter | None = None, retries: int = 5, backoff: float = 1.0,
                 timeout: float = 30.0) -> dict:
    """OMDb's answer for one id (a hit or a miss), retried with exponential backoff on network
    errors, HTTP 5xx and 429. A bad key or the daily limit raises: retrying cannot help."""
    url = request_url(base_url, imdb_id, api_key)
    for attempt in range(retries + 1):
        if limiter is not None:
            limiter.wait()
        wait = backoff * 2 ** attempt
        try:
            # build_opener reads the environment's proxy each time; urlopen keeps its first call's.
            with urllib.request.build_opener().open(url, timeout=timeout) as response:
                body = response.read()
            try:
                return _check_answer(json.loads(body), imdb_id)
            except ValueError:
                problem = f"an answer that is not JSON ({body[:80]!r})"
        except urllib.error.HTTPError as error:
            body = error.read()
            if error.code != 429 and error.code < 500:
                return _check_answer(_json_or_none(body), imdb_id, http_status=error.code)
            problem = f"HTTP {error.code}"
            retry_after = (error.headers or {}).get("Retry-After", "")
            if retry_after.isdigit():
                wait = max(wait, float(retry_after))
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            problem = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
        if attempt == retries:
            raise FetchFailed(f"OMDb request for {imdb_id} failed {retries + 1} times (last: {problem}); "
                              f"the output keeps everything fetched so far: {RESUME_HINT}")
        time.sleep(wait)
    raise AssertionError("unreachable")


def _json_or_none(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        return None


def _check_answer(answer, imdb_id: str, http_status: int = 200) -> dict:
    if not isinstance(answer, dict) or "Response" not in answer:
        raise FetchFailed(f"OMDb answered {imdb_id} with HTTP {http_status} and no OMDb record "
                          f"({str(answer)[:120]!r}); check --base-url")
    error = str(answer.get("Error", ""))
    if answer["Response"] != "True":
        if "limit" in error.lower():
            raise DailyLimitReached(f"OMDb says {error!r}: the key's daily quota is used up; "
                                    f"{RESUME_HINT} tomorrow (or with a key of a higher tier)")
        if "api key" in error.lower():
            raise InvalidApiKey(f"OMDb rejected the API key ({error!r}): check --api-key or "
                                f"${API_KEY_ENV}; a free key is at {KEY_PAGE}")
    return {**answer, REQUESTED: imdb_id}


# ---------------------------------------------------------------------------- the run


def fetch_all(imdb_ids: list[str], out_path: str | os.PathLike, api_key: str, *,
              base_url: str = DEFAULT_BASE_URL, rate: float = 10.0, retries: int = 5,
              backoff: float = 1.0, timeout: float = 30.0, progress: bool = True) -> FetchReport:
    """Append a record for every id not yet in `out_path`; stops (raising OmdbError) when OMDb
    cannot be reached, the key is bad or the day's quota is spent -- nothing written is lost."""
    from tqdm.auto import tqdm

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done, torn = completed_ids(out_path)
    todo = [i for i in imdb_ids if i not in done]
    report = FetchReport(len(imdb_ids), len(imdb_ids) - len(todo), torn_line_dropped=torn)
    limiter = RateLimiter(rate)
    with open(out_path, "a", encoding="utf-8") as out, tqdm(
        total=len(imdb_ids), initial=report.already_done, unit="movie", desc="OMDb",
        disable=not progress,
    ) as bar:
        for imdb_id in todo:
            record = fetch_record(imdb_id, api_key, base_url=base_url, limiter=limiter,
                                  retries=retries, backoff=backoff, timeout=timeout)
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
            report.fetched += 1
            report.misses += record.get("Response") != "True"
            bar.update(1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hvae_tf.omdb", description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                        help=f"OMDb API key (default ${API_KEY_ENV}); free at {KEY_PAGE}")
    parser.add_argument("--links", required=True, help="MovieLens links.csv (movieId,imdbId,tmdbId)")
    parser.add_argument("--out", required=True, help="JSON lines output, appended to and resumed")
    parser.add_argument("--rate", default="10/s", help="request rate, e.g. 10/s or 900/h (default 10/s)")
    parser.add_argument("--retries", type=int, default=5, help="retries per movie on network errors, 5xx, 429")
    parser.add_argument("--backoff", type=float, default=1.0, help="first retry wait in seconds, doubled each retry")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one answer")
    parser.add_argument("--base-url", default=os.environ.get(BASE_URL_ENV, DEFAULT_BASE_URL),
                        help=f"OMDb endpoint (default ${BASE_URL_ENV} or {DEFAULT_BASE_URL})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error(f"--api-key is required (or set ${API_KEY_ENV}); a free key is at {KEY_PAGE}")
    if args.retries < 0 or args.backoff < 0 or args.timeout <= 0:
        parser.error("--retries and --backoff must be >= 0 and --timeout > 0")
    try:
        rate = parse_rate(args.rate)
        ids = read_imdb_ids(args.links)
        report = fetch_all(ids, args.out, args.api_key, base_url=args.base_url, rate=rate,
                           retries=args.retries, backoff=args.backoff, timeout=args.timeout,
                           progress=not args.no_progress)
    except OmdbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: {RESUME_HINT}", file=sys.stderr)
        return 130
    if report.torn_line_dropped:
        print(f"note: dropped a torn last line of {args.out} (an earlier run was cut off)")
    print(f"{report.fetched} records written to {args.out} ({report.misses} misses); "
          f"{report.already_done} of {report.requested} were already there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
