"""The projector files are checked the way users see them: through a real TensorBoard server."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

from hvae_tf.analysis.projector import TENSOR_NAME, metadata_tsv, write_projector

TITLES = ["Toy Story (1995)", "Heat (1995)", "Se7en\t(1995)", "Casino (1995)", "Fargo (1996)"]
GENRES = [("Adventure", "Animation"), ("Action", "Crime"), ("Mystery",), ("Crime", "Drama"), ()]


def test_metadata_has_header_and_one_clean_row_per_movie():
    lines = metadata_tsv(TITLES, GENRES).splitlines()
    assert lines[0] == "title\tgenres"
    assert lines[1] == "Toy Story (1995)\tAdventure|Animation"
    assert lines[3] == "Se7en (1995)\tMystery"  # a tab inside a title would add a column
    assert len(lines) == len(TITLES) + 1 and all(line.count("\t") == 1 for line in lines)


def test_refuses_mismatched_metadata(tmp_path):
    with pytest.raises(ValueError, match="5 embeddings, 4 titles"):
        write_projector(tmp_path, np.zeros((5, 3)), TITLES[:4], GENRES)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, path: str, **params) -> bytes:
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_tensorboard_serves_the_embeddings(tmp_path):
    run = tmp_path / "run"
    rng = np.random.default_rng(0)
    write_projector(run / "logs", rng.normal(size=(3, 2)), TITLES[:3], GENRES[:3])
    embeddings = rng.normal(size=(len(TITLES), 3)).astype(np.float32)
    folder = write_projector(run / "logs", embeddings, TITLES, GENRES)  # replaces the first one
    assert sorted(p.name for p in (run / "logs").iterdir()) == ["movie_embeddings"]

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(run), "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, runs = time.monotonic() + 120, []
        while time.monotonic() < deadline and not runs:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                runs = json.loads(_get(base, "/data/plugin/projector/runs"))
            except (urllib.error.URLError, ConnectionError):
                pass
            if not runs:
                time.sleep(0.5)
        name = f"logs/{folder.name}"
        assert runs == [name]

        info = json.loads(_get(base, "/data/plugin/projector/info", run=name))
        (embedding,) = [e for e in info["embeddings"] if e["tensorName"] == TENSOR_NAME]
        assert embedding["tensorShape"] == [len(TITLES), 3]

        tensor = _get(base, "/data/plugin/projector/tensor", run=name, name=TENSOR_NAME)
        np.testing.assert_array_equal(np.frombuffer(tensor, np.float32).reshape(-1, 3), embeddings)

        metadata = _get(base, "/data/plugin/projector/metadata", run=name, name=TENSOR_NAME)
        assert metadata.decode().splitlines()[1:] == metadata_tsv(TITLES, GENRES).splitlines()[1:]
    finally:
        server.terminate()
        server.wait(timeout=20)
