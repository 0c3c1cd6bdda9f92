"""The TF Serving export: versioned layout, atomic writes, and the serving_default signature's answers.

The exported model is loaded in a fresh process that imports only TensorFlow, as TF Serving would;
its answers are checked against the in-process model's scores ranked by numpy.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from hvae_tf.models import HybridVAE
from hvae_tf.training import export

N_MOVIES, K = 30, 8
MOVIE_IDS = np.arange(1, N_MOVIES + 1, dtype=np.int64) * 7 + 100  # raw ids differ from columns
UNKNOWN_ID = 5  # not a movie id of the catalogue
NAME = "tiny-hvae"

# Each request is a user's list of raw movie ids. The expected answer of each is the top-K of the
# model's scores over the catalogue minus the listed known movies (None if the list names none).
REQUESTS = {
    "history": [MOVIE_IDS[3], MOVIE_IDS[17], MOVIE_IDS[0]],
    "with_unknown": [MOVIE_IDS[3], UNKNOWN_ID, MOVIE_IDS[17], 999_999, MOVIE_IDS[0]],
    "with_duplicates": [MOVIE_IDS[3], MOVIE_IDS[3], MOVIE_IDS[17], MOVIE_IDS[0], MOVIE_IDS[17]],
    "empty": [],
    "only_unknown": [UNKNOWN_ID, 999_999],
    # Longer than the catalogue: every movie but three, twice, plus unknown ids.
    "longer_than_catalogue": [*MOVIE_IDS[3:], *MOVIE_IDS[3:][::-1], UNKNOWN_ID],
}

LOADER = r"""
import json, sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
serve = loaded.signatures["serving_default"]
requests = json.loads(sys.argv[2])
width = max(len(r) for r in requests.values())
batch = np.full((len(requests), width), -1, np.int64)  # -1 pads the shorter lists
for row, ids in enumerate(requests.values()):
    batch[row, :len(ids)] = ids
out = serve(movie_ids=tf.constant(batch))
zero_width = serve(movie_ids=tf.zeros([2, 0], tf.int64))
print("RESULT " + json.dumps({
    "names": list(requests),
    "movie_ids": out["movie_ids"].numpy().tolist(),
    "scores": out["scores"].numpy().tolist(),
    "zero_width_ids": zero_width["movie_ids"].numpy().tolist(),
    "hvae_tf_imported": any(m == "hvae_tf" or m.startswith("hvae_tf.") for m in sys.modules),
    "signature_keys": sorted(loaded.signatures),
}))
sys.stdout.flush()
# `saved_model_cli show --all --dir DIR`: the command's own entry point, run here to spare a
# second TensorFlow start-up.
from tensorflow.python.tools import saved_model_cli
sys.argv = ["saved_model_cli", "show", "--all", "--dir", sys.argv[1]]
print("CLI OUTPUT")
saved_model_cli.main()
"""


def tiny_model():
    rng = np.random.default_rng(3)
    model = HybridVAE(rng.normal(size=(N_MOVIES, 3)), approach=1, hidden_dim=16, latent_dim=4, seed=1)
    model(tf.constant([[0, 1, -1]], tf.int64))
    # Random, non-zero biases so that ranking does not tie and an empty history has an answer.
    model.decoder_output.bias.assign(rng.normal(size=N_MOVIES).astype(np.float32))
    return model


def expected_top_k(model, raw_ids):
    column_of = {int(m): c for c, m in enumerate(MOVIE_IDS)}
    columns = sorted({column_of[int(i)] for i in raw_ids if int(i) in column_of})
    scores = model.scores(tf.constant([columns or [-1]], tf.int64)).numpy()[0].astype(np.float64)
    scores[columns] = -np.inf
    order = np.argsort(-scores, kind="stable")[:K]
    order = order[np.isfinite(scores[order])]
    ids = np.full(K, -1, np.int64)
    ids[: len(order)] = MOVIE_IDS[order]
    top = np.zeros(K)
    top[: len(order)] = scores[order]
    return ids, top


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("serving")
    model = tiny_model()
    first = export.export_for_serving(model, MOVIE_IDS, base, NAME, k=K)
    return model, base, first


def fresh_process(*args, timeout=180):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("PYTHONPATH", None)  # the loader must not be able to import hvae_tf at all
    return subprocess.run(args, check=False, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd="/")


@pytest.fixture(scope="module")
def served(exported):
    _, _, version_dir = exported
    requests = {name: [int(i) for i in ids] for name, ids in REQUESTS.items()}
    done = fresh_process(sys.executable, "-c", LOADER, str(version_dir), json.dumps(requests))
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    result["cli_output"] = done.stdout.split("CLI OUTPUT", 1)[1]
    answers = {
        name: (np.array(ids), np.array(scores))
        for name, ids, scores in zip(result["names"], result["movie_ids"], result["scores"])
    }
    return result, answers


def test_layout_is_name_then_integer_version(exported):
    _, base, first = exported
    assert first == base / NAME / "1"
    assert (first / "saved_model.pb").is_file() and (first / "variables").is_dir()
    assert (first / "assets.extra" / "tf_serving_warmup_requests").is_file()  # TF Serving's warm-up


def test_loads_without_hvae_tf_and_has_the_serving_signature(served):
    result, _ = served
    assert not result["hvae_tf_imported"]
    assert result["signature_keys"] == ["serving_default"]


@pytest.mark.parametrize("name", REQUESTS)
def test_answers_equal_the_models_ranking_without_the_input_movies(exported, served, name):
    model = exported[0]
    ids, scores = served[1][name]
    want_ids, want_scores = expected_top_k(model, REQUESTS[name])
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
    given = {int(i) for i in REQUESTS[name]}
    assert not given & set(ids.tolist())


def test_unknown_ids_duplicates_and_empty_lists_are_handled(served):
    answers = served[1]
    for variant in ("with_unknown", "with_duplicates"):
        np.testing.assert_array_equal(answers[variant][0], answers["history"][0])
    np.testing.assert_array_equal(answers["only_unknown"][0], answers["empty"][0])
    assert (answers["empty"][0] >= 0).all()  # an empty history still gets K movies
    # Only three movies are left to recommend; the rest of the K slots are -1 with score 0.
    left = answers["longer_than_catalogue"]
    assert sorted(left[0][:3]) == sorted(MOVIE_IDS[:3]) and (left[0][3:] == -1).all()
    assert (left[1][3:] == 0).all()
    assert served[0]["zero_width_ids"] == [answers["empty"][0].tolist()] * 2


def test_saved_model_cli_lists_a_predict_signature(served):
    shown = served[0]["cli_output"]
    serving = shown[shown.index("signature_def['serving_default']"):]
    assert "Method name is: tensorflow/serving/predict" in serving
    assert "inputs['movie_ids'] tensor_info:" in serving
    assert "dtype: DT_INT64" in serving and "shape: (-1, -1)" in serving
    assert "outputs['movie_ids']" in serving and "outputs['scores']" in serving


def test_second_export_is_version_2_and_a_failed_export_leaves_no_partial_version(
    exported, tmp_path, monkeypatch
):
    model, _, _ = exported
    base = tmp_path / "serving"
    assert export.export_for_serving(model, MOVIE_IDS, base, NAME, k=K).name == "1"

    real_save = tf.saved_model.save

    def dies_half_way(obj, path, **kwargs):
        real_save(obj, path, **kwargs)
        (Path(path) / "variables" / "variables.index").write_bytes(b"truncated")
        raise KeyboardInterrupt("killed while exporting")

    monkeypatch.setattr(tf.saved_model, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        export.export_for_serving(model, MOVIE_IDS, base, NAME, k=K)
    monkeypatch.setattr(tf.saved_model, "save", real_save)

    entries = sorted(p.name for p in (base / NAME).iterdir())
    assert entries == ["1"], entries  # no integer-named partial folder, no temp left behind
    reloaded = tf.saved_model.load(str(base / NAME / "1"))
    out = reloaded.signatures["serving_default"](movie_ids=tf.constant([[int(MOVIE_IDS[0])]], tf.int64))
    assert out["movie_ids"].shape == (1, K)

    assert export.export_for_serving(model, MOVIE_IDS, base, NAME, k=K).name == "2"
    with pytest.raises(FileExistsError, match="--export-version"):
        export.export_for_serving(model, MOVIE_IDS, base, NAME, k=K, version=2)


def test_serving_graph_needs_no_xla(exported):
    """Approach 1 trains with XLA-compiled pieces; TF Serving's default build cannot run them."""
    from tensorflow.core.protobuf import saved_model_pb2

    _, _, version_dir = exported
    saved = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    compiled = [f.signature.name for f in graph.library.function if f.attr["_XlaMustCompile"].b]
    compiled += [n.name for n in graph.node if n.attr["_XlaMustCompile"].b]
    assert compiled == []
