"""The bad-input table: the rows no other test file covers (README "Bad input" lists them all).

Each test is named after its row. Rows already tested elsewhere (readers, protocols, features,
train flags, run folder) are not repeated here.
"""

import dataclasses
import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import set_dead_proxy

from hvae_tf.config import TrainConfig, parse_args
from hvae_tf.data import loading
from hvae_tf.data.protocols import make_split
from hvae_tf.data.schema import MovieLensData
from tf_datasets.hvae_movielens.dummy_data import dummy_data_dir
from tf_datasets.hvae_movielens.files import MovieLensFormatError
from tf_datasets.hvae_movielens.ratings import read_ratings

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- manual dir


def test_empty_file_in_manual_dir_fails_the_build_and_leaves_nothing_behind(tmp_path):
    dummy = dummy_data_dir() / "extracted"
    manual = tmp_path / "manual"
    shutil.copytree(dummy, manual)
    ratings = next(manual.rglob("ratings.csv"))
    good = ratings.read_bytes()
    ratings.write_bytes(b"")
    with pytest.raises(MovieLensFormatError, match=r"ratings\.csv is empty \(0 bytes\).*ml-20m\.zip"):
        loading.load_movielens("20m", data_dir=tmp_path / "tfds", manual_dir=manual)
    # Once the file is fixed the same command builds: no half-built dataset is found and reused.
    ratings.write_bytes(good)
    data = loading.load_movielens("20m", data_dir=tmp_path / "tfds", manual_dir=manual)
    assert len(data.ratings) == len(read_ratings("20m", manual))


# ---------------------------------------------------------------------------- protocols


def test_held_out_user_with_fewer_than_5_clicks_stays_fold_in_and_is_counted():
    # User u has u - 1 clicks (ratings of 5) and one non-click, so counts 0..11 all occur.
    rows = [(u, m, 5.0) for u in range(1, 13) for m in range(1, u)]
    rows += [(u, 20, 1.0) for u in range(1, 13)]
    ratings = pd.DataFrame(rows, columns=["userId", "movieId", "rating"]).assign(timestamp=-1)
    movies = pd.DataFrame({"movieId": np.arange(1, 21), "has_omdb": False})
    split = make_split(MovieLensData("tiny", ratings, movies, []), "paper", heldout_users=5)
    few = 0
    for part in (split.validation, split.test):
        for i, user in enumerate(part.user_ids):
            n = int(user) - 1
            full = part.full[i].indices
            assert len(full) == n
            if n < 5:  # never split: Eval 1 still has the whole history, Eval 2 has nothing to score
                assert part.held_out[i].nnz == 0 and sorted(part.fold_in[i].indices) == sorted(full)
                few += 1
            else:
                assert part.held_out[i].nnz == math.floor(0.2 * n)
    assert few > 0
    assert split.validation.n_without_held_out + split.test.n_without_held_out == few
    assert split.summary().splitlines()[0].startswith("protocol=paper")
    assert "no held-out" in split.summary()


# ---------------------------------------------------------------------------- train.py flags


@pytest.mark.parametrize("flags, named", [
    (["--features", "none", "--trainable-embeddings"], "--trainable-embeddings"),
    (["--dataset", "1m", "--generated-users", "50"], "--generated-users"),
    (["--dataset", "1m", "--generated-movies", "50"], "--generated-movies"),
    (["--embedding-dim", "0"], "--embedding-dim"),
    (["--movie-vae-epochs", "0"], "--movie-vae-epochs"),
    (["--shared-dim", "16"], "--shared-dim only applies with --approach shared"),
    (["--approach", "2", "--free-l2", "0.1"], "--free-l2 only applies with --approach shared"),
    (["--free-dropout", "0.5"], "--free-dropout only applies with --approach shared"),
    (["--approach", "shared", "--free-dropout", "1"], "--free-dropout must be in [0, 1)"),
    (["--content-neighbours", "200"], "--content-neighbours only applies with --approach shared"),
    (["--approach", "shared", "--content-neighbours", "-1"], "--content-neighbours must be a whole number >= 0"),
    (["--shared-input", "embeddings"], "--shared-input only applies"),
    (["--select-new-within", "0.002"], "--select-new-within only applies with --approach shared"),
    (["--validation-new-movies", "0.5"], "--validation-new-movies sets aside some of the new movies: it needs --cold-movies"),
    (["--cold-movies", "0.1", "--validation-new-movies", "1"], "--validation-new-movies must be"),
    (["--approach", "shared", "--select-new-within", "0.002"], "--select-new-within weighs the ranking of new movies: it needs --cold-movies"),
    (["--approach", "shared", "--cold-movies", "0.1", "--select-new-within", "-1"],
     "--select-new-within must be a finite number >= 0"),
    (["--cold-movies", "1"], "--cold-movies must be in [0, 1)"),
    (["--approach", "shared", "--shared-dim", "0"], "--shared-dim must be a whole number >= 1"),
    (["--approach", "shared", "--trainable-embeddings"], "--trainable-embeddings applies to approaches 1 and 2"),
])
def test_conflicting_flags_exit_2_naming_the_flag(flags, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(flags)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert f"error: {named}" in message, message


def test_relative_paths_are_saved_absolute_so_another_working_directory_finds_them(tmp_path, monkeypatch):
    """A run's config.json is read later, e.g. by evaluate.py started elsewhere."""
    monkeypatch.chdir(tmp_path)
    cfg = parse_args(["--manual-dir", "ml-1m", "--data-dir", "../tfds", "--run-dir", "runs/a",
                      "--vad-lexicon", "lexicons/vad.csv"])
    assert cfg.manual_dir == str(tmp_path / "ml-1m") and cfg.run_dir == str(tmp_path / "runs/a")
    assert cfg.data_dir == str(tmp_path.parent / "tfds") and cfg.vad_lexicon == str(tmp_path / "lexicons/vad.csv")
    assert cfg.export_dir == str(tmp_path / "saved_models")


def test_one_folder_has_one_spelling_in_a_saved_config(tmp_path, monkeypatch):
    """A grid started in another checkout names the data as `../data`: the saved config must match."""
    (tmp_path / "main").mkdir()
    (tmp_path / "grid").mkdir()
    monkeypatch.chdir(tmp_path / "main")
    here = parse_args(["--manual-dir", "../data"])
    monkeypatch.chdir(tmp_path / "grid")
    there = parse_args(["--manual-dir", "../grid/./../data"])
    assert here.manual_dir == there.manual_dir == str(tmp_path / "data")
    assert not here.differences(there)
    saved_before = here.to_json().replace(str(tmp_path / "data"), str(tmp_path / "main" / ".." / "data"))
    assert TrainConfig.from_json(saved_before) == here


def test_the_sharing_hybrids_settings_tell_apart_only_sharing_hybrid_runs():
    """A Standard-VAE run is the same experiment whatever --shared-speed says, so a grid reuses it."""
    plain = TrainConfig(features="none")
    assert not plain.result_differences(dataclasses.replace(plain, shared_speed=3.0, shared_dim=8))
    shared = TrainConfig(features="genre", approach="shared")
    assert set(shared.result_differences(dataclasses.replace(shared, shared_speed=3.0))) == {"shared_speed"}


# ---------------------------------------------------------------------------- serving signature

N_MOVIES, K = 20, 5
MOVIE_IDS = np.arange(100, 100 + N_MOVIES, dtype=np.int64) * 10  # 1000, 1010, ..., 1190


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(serving function, in-process model) for a tiny StandardVAE with random, non-zero weights."""
    import tensorflow as tf

    from hvae_tf.models import StandardVAE
    from hvae_tf.training.export import SIGNATURE_INPUT, export_for_serving

    model = StandardVAE(n_movies=N_MOVIES, hidden_dim=8, latent_dim=4, seed=1)
    rng = np.random.default_rng(0)
    for weight in model.weights:  # biases too: an untrained model scores every movie 0
        if str(weight.dtype).startswith("float"):
            weight.assign(rng.normal(size=weight.shape).astype(np.float32))
    path = export_for_serving(model, MOVIE_IDS, tmp_path_factory.mktemp("serving"), "tiny", k=K)
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]

    def serve(batch):
        batch = np.asarray(batch, dtype=np.int64)  # [users, ids]; [[]] is one user with none
        out = signature(**{SIGNATURE_INPUT: tf.constant(batch)})
        return out["movie_ids"].numpy(), out["scores"].numpy()

    return serve, model


def _expected_top(model, columns):
    """The model's own top-K movie ids for one history (columns), seen movies left out."""
    padded = np.asarray([list(columns) or [-1]], dtype=np.int64)
    scores = model.scores(padded).numpy()[0]
    scores[list(columns)] = -np.inf
    return MOVIE_IDS[np.argsort(-scores, kind="stable")[:K]]


def test_serving_empty_list_gets_the_no_history_ranking(served):
    serve, model = served
    expected = _expected_top(model, [])
    for empty in ([[]], [[-1, -1, -1]]):
        ids, scores = serve(empty)
        assert ids.shape == (1, K) and np.isfinite(scores).all()
        np.testing.assert_array_equal(ids[0], expected)
    ids, scores = serve(np.zeros((0, 3)))  # no users at all: an empty answer, not an error
    assert ids.shape == scores.shape == (0, K)


def test_serving_ignores_unknown_ids(served):
    serve, model = served
    ids, scores = serve([[7, 1030, 99_999, -5]])  # only 1030 (column 3) is in the catalogue
    np.testing.assert_array_equal(ids[0], _expected_top(model, [3]))
    np.testing.assert_array_equal((ids, scores), serve([[1030]]))


def test_serving_counts_duplicates_once(served):
    serve, model = served
    ids, scores = serve([[1030, 1030, 1050, 1030]])
    np.testing.assert_array_equal(ids[0], _expected_top(model, [3, 5]))
    np.testing.assert_allclose(scores, serve([[1030, 1050]])[1], rtol=1e-6)
    assert not {1030, 1050} & set(ids[0].tolist())


def test_serving_list_longer_than_the_catalogue(served):
    serve, _ = served
    everything = np.concatenate([MOVIE_IDS, MOVIE_IDS[::-1], [1, 2, 3]])  # 43 ids > 20 movies
    ids, scores = serve([everything])
    # Nothing left to recommend: every slot is -1 with score 0, no error, no repeated movie.
    np.testing.assert_array_equal(ids, np.full((1, K), -1))
    np.testing.assert_array_equal(scores, np.zeros((1, K)))
    all_but_two = np.tile(MOVIE_IDS[2:], 3)  # 54 ids, 18 distinct
    ids, scores = serve([all_but_two])
    assert sorted(ids[0, :2].tolist()) == MOVIE_IDS[:2].tolist()
    np.testing.assert_array_equal(ids[0, 2:], -1)
    assert scores[0, 0] >= scores[0, 1]


# ---------------------------------------------------------------------------- NaN guard


def _train_script():
    spec = importlib.util.spec_from_file_location("train_script", REPO / "train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory):
    """One generated release and split for both NaN runs (the run folders differ)."""
    return tmp_path_factory.mktemp("nan-data")


@pytest.mark.parametrize("poisoned_epoch", [1, 2])
def test_nan_loss_stops_naming_the_step_and_the_last_good_checkpoint(
        tiny_data_dir, tmp_path, monkeypatch, capsys, poisoned_epoch):
    import tensorflow as tf

    from hvae_tf.data import prepare
    from hvae_tf.metrics import ranking
    from hvae_tf.models import StandardVAE

    run = tmp_path / "run"
    argv = [
        "--dataset", "generated", "--generated-users", "300", "--generated-movies", "120",
        "--generated-ratings", "12000", "--data-dir", str(tiny_data_dir), "--hidden-dim", "16",
        "--latent-dim", "4", "--batch-size", "64", "--epochs", "3", "--features", "none",
        "--recipe", "mult-vae", "--protocol", "liang", "--heldout-users", "0.1", "--run-dir", str(run),
        "--export-dir", str(tmp_path / "saved"), "--verbose", "0",
    ]
    _, split = prepare.prepare(parse_args(argv), verbose=False)
    steps_per_epoch = math.ceil(split.train.shape[0] / 64)
    # The second batch of the poisoned epoch, as a 1-based count of optimizer updates.
    poisoned_update = (poisoned_epoch - 1) * steps_per_epoch + 2

    # The loss turns NaN from that update on, as a diverging run's would.
    per_user_losses = StandardVAE.compute_losses

    def diverging(self, indices, training):
        reconstruction, kl, beta = per_user_losses(self, indices, training)
        if training:
            poisoned = self.anneal_step >= poisoned_update - 1  # anneal_step counts updates done
            # A factor, not tf.where: the gradients turn NaN too, and so would the weights.
            reconstruction = reconstruction * tf.where(poisoned, np.float32(np.nan), np.float32(1.0))
        return reconstruction, kl, beta

    monkeypatch.setattr(StandardVAE, "compute_losses", diverging)
    assert _train_script().main(argv) == 2
    message = capsys.readouterr().err
    best = run / "checkpoints" / "best.weights.h5"
    assert f"loss became nan at optimizer step {poisoned_update} (epoch {poisoned_epoch}, batch 1)" in message, message
    assert str(best) in message and "--lr" in message
    assert not (run / "metrics.json").exists() and not (tmp_path / "saved").exists()
    if poisoned_epoch == 1:
        assert "no checkpoint was written yet" in message and not best.exists()
        assert not (run / "validation.json").exists()
        return

    # Nothing from the NaN epoch was recorded; the best checkpoint is epoch 1's and scores as it did.
    assert "the last good weights are in" in message
    history = json.loads((run / "validation.json").read_text())
    assert [h["epoch"] for h in history] == [1], history
    model = StandardVAE(n_movies=split.n_movies, hidden_dim=16, latent_dim=4)
    model.load_weights(str(best))
    assert all(np.isfinite(w.numpy()).all() for w in model.weights)
    scores = ranking.summarize(ranking.score_users(
        lambda idx: model.scores(idx).numpy(), split.validation.fold_in, split.validation.held_out))
    assert scores["ndcg@100"] == pytest.approx(history[0]["val_ndcg_100"], abs=1e-6)


def test_weights_that_turn_nan_in_a_one_step_epoch_are_never_kept(tiny_data_dir, tmp_path, capsys):
    """One update per epoch: the only loss an epoch sees is computed before its update, so it is
    finite; an overflowing learning rate still turns the weights inf/NaN. The epoch-end check stops
    the run before the ranking, the checkpoint or the export can keep them."""
    run = tmp_path / "run"
    argv = [
        "--dataset", "generated", "--generated-users", "300", "--generated-movies", "120",
        "--generated-ratings", "12000", "--data-dir", str(tiny_data_dir), "--hidden-dim", "16",
        "--latent-dim", "4", "--batch-size", "1000", "--epochs", "2", "--features", "none",
        "--recipe", "mult-vae", "--protocol", "liang", "--heldout-users", "0.1", "--lr", "1e39",
        "--run-dir", str(run),
        "--export-dir", str(tmp_path / "saved"), "--verbose", "0",
    ]
    assert _train_script().main(argv) == 2
    message = capsys.readouterr().err
    assert "became NaN or inf by the end of the epoch" in message and "(epoch 1)" in message, message
    assert not (run / "checkpoints" / "best.weights.h5").exists()
    assert not (run / "validation.json").exists() and not (tmp_path / "saved").exists()


@pytest.mark.parametrize("flag", ["--lr", "--dropout", "--anneal-cap", "--weight-decay",
                                  "--threshold", "--heldout-users"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_flag_values_are_refused_naming_the_flag(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args([flag, value])
    assert exit_info.value.code == 2
    assert f"error: {flag} must be" in capsys.readouterr().err


def test_first_run_offline_names_the_flags_and_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    """The README's first command on a machine without internet (here: a proxy nobody answers)."""
    set_dead_proxy(monkeypatch)
    run = tmp_path / "run"
    argv = ["--features", "genome", "--approach", "1", "--data-dir", str(tmp_path / "tfds"),
            "--run-dir", str(run), "--export-dir", str(tmp_path / "saved")]
    assert _train_script().main(argv) == 2
    message = capsys.readouterr().err
    assert message.startswith("train.py: error: MovieLens 20m cannot be downloaded"), message
    assert "--manual-dir" in message and "--dataset generated" in message and "Traceback" not in message
    assert not (run / "config.json").exists() and not (tmp_path / "saved").exists()
