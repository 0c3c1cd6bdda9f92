"""Shared fixtures: where the real data sets live (SHARED_DATA), and the small generated release,
run flags and finished run that the training and evaluation tests share."""

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HVAE_SHARED_DATA", REPO.parent / "shared" / "data"))

# One small generated release and split for every test that trains: built once per session.
DATA_FLAGS = ["--dataset", "generated", "--generated-users", "400", "--generated-movies", "150",
              "--generated-ratings", "20000", "--protocol", "liang", "--heldout-users", "0.1"]
# Model and training settings that keep a run to seconds (the paper's recipe unless a test asks
# for another); keyword arguments of small_run_argv replace them.
SMALL_RUN_FLAGS = {"recipe": "mult-vae", "hidden_dim": 32, "latent_dim": 8, "batch_size": 64, "movie_vae_epochs": 3,
                   "epochs": 2, "anneal_steps": 8, "verbose": 0}


def set_dead_proxy(env) -> None:
    """Point `env` (a monkeypatch) at a loopback proxy nobody answers: a machine without internet."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        env.setenv(variable, f"http://127.0.0.1:{port}")
    for variable in ("NO_PROXY", "no_proxy"):
        env.delenv(variable, raising=False)


def small_run_argv(data_dir, run_dir=None, export_dir=None, *extra, **settings):
    """train.py's argv for a small run on the generated release, e.g.
    small_run_argv(data, run, saved, "--features", "none", hidden_dim=16). A run or export folder
    given as None is left out (evaluate.py grid chooses its own)."""
    argv = [*DATA_FLAGS, "--data-dir", str(data_dir)]
    for name, value in {**SMALL_RUN_FLAGS, **settings}.items():
        argv += ["--" + name.replace("_", "-"), str(value)]
    for flag, folder in (("--run-dir", run_dir), ("--export-dir", export_dir)):
        if folder is not None:
            argv += [flag, str(folder)]
    return [*argv, *extra]


def train_small_run(data_dir, root, *extra, **settings) -> Path:
    """Train a small run in this process into `root`/run (models exported to `root`/saved)."""
    from hvae_tf.config import parse_args
    from hvae_tf.training.run import train

    root = Path(root)
    train(parse_args(small_run_argv(data_dir, root / "run", root / "saved", *extra, **settings)))
    return root / "run"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data sets not found at {SHARED_DATA} (set HVAE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def generated_data_dir(tmp_path_factory) -> Path:
    """The data folder holding the generated release and its fold-0 split, built here in-process so
    that subprocesses started later (workers, train.py, evaluate.py) only read it."""
    from hvae_tf.config import parse_args
    from hvae_tf.data import prepare

    folder = tmp_path_factory.getbasetemp() / "train-generated-data"
    prepare.prepare(parse_args(small_run_argv(folder)), verbose=False)
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, generated_data_dir) -> Path:
    """A finished H-VAE run folder (genre features, approach 1), trained once per session.

    Shared: a test that writes into a run folder (evaluate.py does) copies this one first.
    """
    return train_small_run(generated_data_dir, tmp_path_factory.mktemp("tiny-run"),
                           "--features", "genre", "--approach", "1")
