"""The export's guards and extras: a bad target refused before training, temp folders of killed
exports cleaned up, umask modes, no optimizer state, TF Serving's warm-up file, the 2-d input rule,
and a clear error on an incomplete SavedModel.

Reuses the tiny model of test_train_export.py, here compiled and trained one step so that Adam's
slots exist.
"""

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
from test_train_export import MOVIE_IDS, NAME, REQUESTS, K, expected_top_k, tiny_model

from hvae_tf.training import export
from hvae_tf.training.optimizer import FusedAdam

INPUT_RULE = re.escape("movie_ids must be a 2-d [batch, ids] int64 tensor (padded with -1)")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model, version folder, loaded SavedModel) for the tiny model after one Adam step."""
    model = tiny_model()
    model.compile(optimizer=FusedAdam(1e-2), jit_compile=False)
    batch = tf.constant([[0, 1, 2, -1], [3, 4, 5, 6]], tf.int64)
    model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0, shuffle=False)
    path = export.export_for_serving(model, MOVIE_IDS, tmp_path_factory.mktemp("trained"), NAME, k=K)
    return model, path, tf.saved_model.load(str(path))


def serve(loaded, batch):
    out = loaded.signatures["serving_default"](movie_ids=tf.constant(batch, tf.int64))
    return out["movie_ids"].numpy(), out["scores"].numpy()


# ----------------------------------------------------------------------------- export target


@pytest.mark.parametrize("version", [-1, 0])
def test_export_version_below_1_is_refused_before_training_and_at_export(trained, tmp_path, version):
    for attempt in (
        lambda: export.check_export_target(tmp_path / "saved", NAME, version),
        lambda: export.export_for_serving(trained[0], MOVIE_IDS, tmp_path / "saved", NAME, version=version),
    ):
        with pytest.raises(ValueError, match=f"--export-version {version}:") as error:
            attempt()
        assert "1 or higher" in str(error.value)
    assert not (tmp_path / "saved").exists()


@pytest.mark.parametrize("blocker", ["above", "export_dir", "model_dir"])
def test_export_path_under_an_existing_file_is_refused(tmp_path, blocker):
    file = {"above": tmp_path / "a", "export_dir": tmp_path / "a" / "b",
            "model_dir": tmp_path / "a" / "b" / NAME}[blocker]
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("not a folder")
    with pytest.raises(ValueError, match="--export-dir") as error:
        export.check_export_target(tmp_path / "a" / "b", NAME, None)
    message = str(error.value)
    assert f"{file} is a file" in message and "pass another --export-dir" in message, message


@contextlib.contextmanager
def unwritable(folder):
    """The folder made unwritable for this process: by its mode, or as root (who ignores modes) by
    the immutable attribute."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        undo = lambda: folder.chmod(0o755)  # noqa: E731
    elif shutil.which("chattr") and subprocess.run(["chattr", "+i", str(folder)],
                                                    capture_output=True).returncode == 0:
        undo = lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)  # noqa: E731
    else:
        pytest.skip("running as root without chattr: cannot make a folder unwritable")
    try:
        if os.access(folder, os.W_OK):
            pytest.skip(f"{folder} stays writable on this file system")
        yield folder
    finally:
        undo()


@pytest.mark.parametrize("existing", [True, False], ids=["model_dir_exists", "model_dir_to_be_made"])
def test_unwritable_export_dir_is_refused(tmp_path, existing):
    export_dir = tmp_path / "saved"
    (export_dir / NAME if existing else export_dir).mkdir(parents=True)
    locked = export_dir / NAME if existing else export_dir
    with unwritable(locked):
        with pytest.raises(ValueError, match="--export-dir") as error:
            export.check_export_target(export_dir, NAME, None)
    message = str(error.value)
    assert f"cannot write in {locked}" in message and "fix its permissions" in message, message


def test_existing_export_version_is_refused_before_training(tmp_path):
    model_dir = tmp_path / "saved" / NAME
    (model_dir / "3").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="--export-version 3") as error:
        export.check_export_target(tmp_path / "saved", NAME, 3)
    message = str(error.value)
    assert str(model_dir / "3") in message and "the next free one is 4" in message, message
    assert export.check_export_target(tmp_path / "saved", NAME, 4) == model_dir
    assert export.check_export_target(tmp_path / "saved", NAME, None) == model_dir


def test_a_good_target_is_returned_and_nothing_is_made(tmp_path):
    assert export.check_export_target(tmp_path / "new" / "saved", NAME, 1) == tmp_path / "new" / "saved" / NAME
    assert not (tmp_path / "new").exists()


# ----------------------------------------------------------------------------- stale temp folders


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def make_temp(model_dir, name, age_seconds=0.0):
    temp = model_dir / name
    (temp / "variables").mkdir(parents=True)
    (temp / "variables" / "variables.data-00000-of-00001").write_bytes(b"\0" * 1024)
    if age_seconds:
        old = time.time() - age_seconds
        for path in (temp / "variables" / "variables.data-00000-of-00001", temp / "variables", temp):
            os.utime(path, (old, old))
    return temp


def test_temps_of_dead_writers_are_removed_and_live_ones_kept(trained, tmp_path):
    model_dir = tmp_path / "saved" / NAME
    host, hour = export._host(), 3600 + 60
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        gone = [
            make_temp(model_dir, f".tmp-2-{host}-{dead_pid()}-0123abcd"),  # its writer was killed
            make_temp(model_dir, ".tmp-2-k2j_x9q1", age_seconds=hour),  # older export, no pid
            make_temp(model_dir, f".tmp-2-other-host-{dead_pid()}-0123abcd", age_seconds=hour),
        ]
        kept = [
            make_temp(model_dir, f".tmp-2-{host}-{os.getpid()}-0123abcd"),  # this process writes it
            make_temp(model_dir, f".tmp-2-{host}-{sleeper.pid}-0123abcd"),  # a live process writes it
            make_temp(model_dir, ".tmp-2-a8_zz0qp"),  # no pid, but just written
            make_temp(model_dir, f".tmp-2-other-host-{dead_pid()}-4567cdef"),  # another machine's, fresh
        ]
        assert export.check_export_target(tmp_path / "saved", NAME, None) == model_dir
        assert [p.exists() for p in gone + kept] == [False] * len(gone) + [True] * len(kept)

        # The export itself cleans up too, and leaves only its version behind.
        killed = make_temp(model_dir, f".tmp-1-{host}-{dead_pid()}-89abcdef")
        assert export.export_for_serving(trained[0], MOVIE_IDS, tmp_path / "saved", NAME, k=K).name == "1"
        assert not killed.exists()
        assert sorted(p.name for p in model_dir.iterdir()) == sorted(["1", *(p.name for p in kept)])
    finally:
        sleeper.kill()
        sleeper.wait()


def test_temp_folder_is_named_with_the_writers_host_and_pid(trained, tmp_path, monkeypatch):
    seen = []

    def records_and_dies(obj, path, **kwargs):
        seen.append(os.path.basename(path))
        raise KeyboardInterrupt("killed while exporting")

    monkeypatch.setattr(tf.saved_model, "save", records_and_dies)
    with pytest.raises(KeyboardInterrupt):
        export.export_for_serving(trained[0], MOVIE_IDS, tmp_path, NAME, k=K, version=7)
    assert re.fullmatch(rf"\.tmp-7-{re.escape(export._host())}-{os.getpid()}-[0-9a-f]{{8}}", seen[0]), seen
    assert list((tmp_path / NAME).iterdir()) == []


# ----------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("umask, dir_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)],
                         ids=["umask022", "umask027"])
def test_version_folder_gets_the_umask_modes(trained, tmp_path, umask, dir_mode, file_mode):
    previous = os.umask(umask)
    try:
        path = export.export_for_serving(trained[0], MOVIE_IDS, tmp_path, NAME, k=K)
    finally:
        os.umask(previous)
    modes = {path: path.stat().st_mode & 0o777}
    modes.update({p: p.stat().st_mode & 0o777 for p in path.rglob("*")})
    want = {p: dir_mode if p.is_dir() else file_mode for p in modes}
    assert modes == want
    assert (path / "assets.extra" / export.WARMUP_ASSET) in modes


# ----------------------------------------------------------------------------- what is saved


def test_saved_model_holds_no_optimizer_state_and_answers_as_the_model(trained):
    model, path, loaded = trained
    assert int(model.optimizer.iterations.numpy()) == 1 and model.optimizer.variables
    saved = tf.train.list_variables(str(path / "variables" / "variables"))
    names = [name for name, _ in saved if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert names and not [n for n in names if re.search(
        r"optimizer|momentum|velocit|iteration|learning_rate|adam", n, re.IGNORECASE)], names
    # The weights the scores read, once each: Adam's slots would triple the count of numbers.
    saved_numbers = sum(int(np.prod(shape)) for _, shape in saved)
    model_numbers = sum(int(np.prod(w.shape)) for w in model.weights if w.path != "anneal_step")
    assert saved_numbers == model_numbers
    data = path / "variables" / "variables.data-00000-of-00001"
    assert data.stat().st_size < 1.5 * 4 * model_numbers
    for name, ids in REQUESTS.items():
        got_ids, got_scores = serve(loaded, [ids or [-1]])
        want_ids, want_scores = expected_top_k(model, ids)
        np.testing.assert_array_equal(got_ids[0], want_ids, err_msg=name)
        np.testing.assert_allclose(got_scores[0], want_scores, rtol=1e-5, atol=1e-6, err_msg=name)


def test_warmup_file_holds_predict_requests_the_model_answers(trained):
    model, path, loaded = trained
    warmup = path / "assets.extra" / "tf_serving_warmup_requests"
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
               for r in tf.data.TFRecordDataset(str(warmup))]
    assert len(records) >= 3
    batches = []
    for record in records:
        request = record.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        assert request.model_spec.name == NAME and list(request.inputs) == ["movie_ids"]
        batch = tf.make_ndarray(request.inputs["movie_ids"])
        assert batch.dtype == np.int64 and batch.ndim == 2
        assert set(batch.ravel().tolist()) <= {-1, *MOVIE_IDS.tolist()}
        batches.append(batch)
        ids, scores = serve(loaded, batch)
        assert ids.shape == scores.shape == (batch.shape[0], K) and np.isfinite(scores).all()
        for row, answer in zip(batch, ids):
            np.testing.assert_array_equal(answer, expected_top_k(model, row[row >= 0])[0])
    lengths = sorted(int((row >= 0).sum()) for batch in batches for row in batch)
    assert lengths[0] == 0 and lengths[-1] >= 20  # an empty history and a long one
    assert any((batch == -1).all() for batch in batches)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("shape", [(), (3,), (1, 2, 3), (1, 1, 2, 3)], ids=["0d", "1d", "3d", "4d"])
def test_loaded_signature_refuses_input_that_is_not_2d(trained, shape):
    batch = np.full(shape, MOVIE_IDS[0], np.int64)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=INPUT_RULE):
        serve(trained[2], batch)


@pytest.mark.parametrize("missing", ["variables", "variables/variables.index",
                                     "variables/variables.data-00000-of-00001", "saved_model.pb"])
def test_load_served_names_the_missing_file_of_an_incomplete_export(trained, tmp_path, missing):
    copy = shutil.copytree(trained[1], tmp_path / "1")
    shutil.rmtree(copy / missing) if (copy / missing).is_dir() else (copy / missing).unlink()
    expected = copy / (missing if missing != "variables" else "variables/variables.index")
    with pytest.raises(FileNotFoundError, match="incomplete SavedModel") as error:
        export.load_served(copy)
    assert str(expected) in str(error.value) and "re-export the model with train.py" in str(error.value)


def test_load_served_loads_a_complete_export(trained):
    model, path, _ = trained
    ids, _ = serve(export.load_served(path), [REQUESTS["history"]])
    np.testing.assert_array_equal(ids[0], expected_top_k(model, REQUESTS["history"])[0])
