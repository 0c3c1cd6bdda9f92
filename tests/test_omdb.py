"""The OMDb fetcher against a fake OMDb on 127.0.0.1: retries, misses, stops, and resuming."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import set_dead_proxy

from hvae_tf import omdb

KEY = "test-key"
IDS = [f"tt{n:07d}" for n in (114709, 113497, 113228, 114885, 113041)]


class FakeOmdb(ThreadingHTTPServer):
    """Answers like OMDb. `script[id]` lists answers to give first: (status, body) or "die"
    (close the server and drop the connection); `hold` names an id whose answer waits for `release`."""

    daemon_threads = True
    block_on_close = False

    def __init__(self):
        super().__init__(("127.0.0.1", 0), OmdbHandler)
        self.script, self.missing, self.requests = {}, set(), []
        self.limit_after = None
        self.hold, self.release = None, threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def stop(self):
        self.shutdown()
        self.server_close()


class OmdbHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.path).query))
        if query.get("apikey") != KEY:
            return self.answer(401, {"Response": "False", "Error": "Invalid API key!"})
        imdb_id = query["i"]
        server.requests.append(imdb_id)
        if imdb_id == server.hold:
            server.release.wait(30)
        if server.limit_after is not None and len(server.requests) > server.limit_after:
            return self.answer(401, {"Response": "False", "Error": "Request limit reached!"})
        if server.script.get(imdb_id):
            step = server.script[imdb_id].pop(0)
            if step == "die":
                killer = threading.Thread(target=server.stop)
                killer.start()
                killer.join()
                self.close_connection = True
                return
            return self.answer(*step)
        if imdb_id in server.missing:
            return self.answer(200, {"Response": "False", "Error": "Movie not found!"})
        self.answer(200, {"Title": f"Movie {imdb_id}", "Plot": "A plot.", "imdbID": imdb_id, "Response": "True"})

    def answer(self, status, body):
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture()
def server():
    fake = FakeOmdb()
    yield fake
    if fake.socket.fileno() != -1:
        fake.stop()


def fetch(server, out, ids=IDS, **options):
    options = {"rate": 1000, "retries": 2, "backoff": 0.001, "timeout": 30, "progress": False, **options}
    return omdb.fetch_all(ids, out, KEY, base_url=server.url, **options)


def records(out):
    return [json.loads(line) for line in Path(out).read_text().splitlines()]


def test_retries_server_errors_and_records_misses(server, tmp_path):
    server.script[IDS[1]] = [(500, b"oops"), (429, b"slow down"), (200, b"<html>not json")]
    server.missing.add(IDS[2])
    report = fetch(server, tmp_path / "omdb.jsonl", retries=3)
    written = records(tmp_path / "omdb.jsonl")
    assert [r["requestedImdbID"] for r in written] == IDS
    assert server.requests.count(IDS[1]) == 4
    assert written[2] == {"Response": "False", "Error": "Movie not found!", "requestedImdbID": IDS[2]}
    assert (report.fetched, report.misses, report.already_done) == (5, 1, 0)


def test_fetches_through_the_proxy_of_the_moment_not_of_the_first_request(server, tmp_path, monkeypatch):
    """A request made under a dead proxy (as the offline-download tests do) must not leave the
    process's later requests going to it."""
    import urllib.request

    with monkeypatch.context() as env:
        set_dead_proxy(env)
        with pytest.raises(OSError):
            urllib.request.urlopen(server.url, timeout=5)  # builds urllib's global opener now
    report = fetch(server, tmp_path / "omdb.jsonl")
    assert report.fetched == len(IDS)


def test_bad_key_and_daily_limit_stop_with_clear_messages(server, tmp_path):
    out = tmp_path / "omdb.jsonl"
    with pytest.raises(omdb.InvalidApiKey, match="check --api-key") as error:
        omdb.fetch_all(IDS, out, "wrong", base_url=server.url, rate=1000, progress=False)
    assert "wrong" not in str(error.value)  # keys stay out of logs
    server.limit_after = 2
    with pytest.raises(omdb.DailyLimitReached, match="run the same command again"):
        fetch(server, out)
    assert len(records(out)) == 2
    server.limit_after = None
    report = fetch(server, out)
    assert report.already_done == 2 and [r["requestedImdbID"] for r in records(out)] == IDS


def test_server_dying_mid_run_then_resume_completes_without_duplicates(server, tmp_path):
    out = tmp_path / "omdb.jsonl"
    server.script[IDS[3]] = ["die"]
    with pytest.raises(omdb.FetchFailed, match=f"{IDS[3]} failed 3 times.*resume"):
        fetch(server, out)
    assert [r["requestedImdbID"] for r in records(out)] == IDS[:3]
    second = FakeOmdb()
    try:
        report = fetch(second, out)
    finally:
        second.stop()
    assert second.requests == IDS[3:]
    assert [r["requestedImdbID"] for r in records(out)] == IDS
    assert (report.already_done, report.fetched) == (3, 2)


def test_killed_process_and_torn_line_then_resume(server, tmp_path):
    links = tmp_path / "links.csv"
    links.write_text("movieId,imdbId,tmdbId\n" + "".join(f"{i},{x[2:]},0\n" for i, x in enumerate(IDS)))
    out = tmp_path / "omdb.jsonl"
    server.hold = IDS[2]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), omdb.API_KEY_ENV: KEY,
           omdb.BASE_URL_ENV: server.url}
    process = subprocess.Popen([sys.executable, "-m", "hvae_tf.omdb", "--links", str(links), "--out", str(out),
                                "--rate", "1000/s", "--no-progress"], env=env)
    try:
        deadline = time.monotonic() + 60
        while IDS[2] not in server.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert IDS[2] in server.requests, "the fetcher never reached the third movie"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        server.release.set()
    assert len(records(out)) == 2
    with open(out, "a") as f:  # a write torn by the kill
        f.write('{"Title": "Movie tt01')
    server.hold = None
    argv = ["--api-key", KEY, "--links", str(links), "--out", str(out), "--base-url", server.url,
            "--rate", "1000/s", "--no-progress"]
    assert omdb.main(argv) == 0
    assert [r["requestedImdbID"] for r in records(out)] == IDS


def test_rate_limiter_spaces_request_starts():
    now, slept = [0.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = omdb.RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.wait()
    assert slept == [0.25, 0.25]
    now[0] += 10  # idle time does not build up a burst
    limiter.wait()
    limiter.wait()
    assert slept[-1] == 0.25


@pytest.mark.parametrize("text, rate", [("10/s", 10.0), ("600/min", 10.0), ("3600/h", 1.0), ("2.5", 2.5)])
def test_parse_rate(text, rate):
    assert omdb.parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0/s", "fast", "10/day"])
def test_parse_rate_rejects_nonsense(text):
    with pytest.raises(ValueError, match="--rate"):
        omdb.parse_rate(text)


def test_links_are_read_as_imdb_ids(tmp_path, shared_data):
    ids = omdb.read_imdb_ids(shared_data / "ml-1m" / "links.csv")
    with open(shared_data / "ml-1m" / "links.csv") as f:
        first = f.read().splitlines()[1].split(",")[1]
    assert ids[0] == f"tt{first}" and all(len(i) >= 9 for i in ids) and len(set(ids)) == len(ids)
    bad = tmp_path / "links.csv"
    bad.write_text("movieId,imdbId\n1,0114709\n2,\n3,tt0113497\n4,x12\n")
    with pytest.raises(ValueError, match=r"links.csv, line 5: imdbId 'x12'"):
        omdb.read_imdb_ids(bad)
    bad.write_text("movieId,imdb\n1,0114709\n")
    with pytest.raises(ValueError, match="no imdbId column"):
        omdb.read_imdb_ids(bad)


def test_a_bad_line_before_the_last_is_an_error_not_silently_skipped(tmp_path):
    out = tmp_path / "omdb.jsonl"
    out.write_text('{"requestedImdbID": "tt0000001"}\nnot json\n{"imdbID": "tt0000002"}\n')
    with pytest.raises(ValueError, match="omdb.jsonl, line 2: not a JSON record"):
        omdb.completed_ids(out)
