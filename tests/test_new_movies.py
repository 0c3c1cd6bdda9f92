"""New movies end to end: a sharing hybrid trained without a movie's clicks serves it to the users
whose history resembles it, and the grid reports the new-movie and tail rows beside content kNN."""

import csv
import glob

import numpy as np
import pytest
import tensorflow as tf

from hvae_tf.features import build_features
from hvae_tf.training.restore import load_run
from tests.conftest import small_run_argv, train_small_run

pytestmark = pytest.mark.slow

HISTORY = 15  # movies in each made-up user's history
TOP = 20  # "recommended": in the served top 20 (of 150 movies)


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, generated_data_dir):
    root = tmp_path_factory.mktemp("new-movies")
    return train_small_run(generated_data_dir, root, "--features", "genre", "--approach", "shared",
                           "--cold-movies", "0.2", epochs=10), root


def test_served_model_recommends_a_new_movie_to_users_whose_history_resembles_it(shared_run):
    run_dir, root = shared_run
    run = load_run(run_dir)
    split = run.split
    assert len(split.new_movies) and split.train[:, split.new_movies].nnz == 0
    genres = build_features(run.data, split.movie_ids, "genre").values
    unit = genres / np.maximum(np.linalg.norm(genres, axis=1, keepdims=True), 1e-9)
    serve = tf.saved_model.load(glob.glob(str(root / "saved" / "*" / "1"))[0]).signatures["serving_default"]
    warm = np.setdiff1d(np.arange(split.n_movies), split.new_movies)
    near_hits = far_hits = closer = shelf_closer = 0
    for new in split.new_movies:
        by_likeness = warm[np.argsort(-(unit[warm] @ unit[new]), kind="stable")]
        histories = np.stack([split.movie_ids[by_likeness[:HISTORY]], split.movie_ids[by_likeness[-HISTORY:]]])
        answer = serve(movie_ids=tf.constant(histories))
        near, far = (rank_of(split.movie_ids[new], row) for row in answer["movie_ids"].numpy())
        near_hits += near < TOP
        far_hits += far < TOP
        closer += near < far
        # The shelf of new movies alone ranks it too.
        shelf_near, shelf_far = (rank_of(split.movie_ids[new], row) for row in answer["new_movie_ids"].numpy())
        shelf_closer += shelf_near < shelf_far
    n = len(split.new_movies)
    print(f"\n{n} new movies: in the top {TOP} of similar histories {near_hits}, of unlike ones "
          f"{far_hits}; ranked higher for the similar one {closer}, on the new-movie shelf {shelf_closer}")
    assert closer >= 0.8 * n and shelf_closer >= 0.8 * n
    assert near_hits >= n / 3 and far_hits <= near_hits / 3


def rank_of(movie_id, served_ids) -> int:
    """The movie's place in a served list, or the list's length when it is not in it."""
    served_ids = list(served_ids)
    return served_ids.index(movie_id) if movie_id in served_ids else len(served_ids)


def test_served_model_scores_new_movies_as_the_run_does(shared_run):
    from hvae_tf.evaluation import harness

    run_dir, root = shared_run
    served = harness.evaluate_saved_model(glob.glob(str(root / "saved" / "*" / "1"))[0])["Eval 2"]
    direct = harness.evaluate_run(run_dir)["Eval 2"]
    for metric in ("recall@50", "new:recall@50", "new-vs-new:recall@50", "tail:ndcg@100"):
        assert served[metric] == pytest.approx(direct[metric], abs=0.02), metric  # ties may differ
    assert served["new-vs-new:users"] == direct["new-vs-new:users"] > 0


def test_credits_kept_sparse_train_export_and_serve_as_the_run_scores(tmp_path, generated_data_dir, monkeypatch):
    """Credits content kept as its nonzeros (forced here: 150 generated movies make it denser
    than the 1% it takes on a real release) goes through training, the checkpoint and the
    SavedModel."""
    from hvae_tf.evaluation import harness
    from hvae_tf.models.shared import MovieVectors

    monkeypatch.setattr(MovieVectors, "SPARSE_BELOW", 1.0)
    run_dir = train_small_run(generated_data_dir, tmp_path, "--features", "credits", "--approach", "shared",
                              "--cold-movies", "0.2", epochs=3)
    assert load_run(run_dir).model.first_layer.movie_vectors.sparse
    served = harness.evaluate_saved_model(glob.glob(str(tmp_path / "saved" / "*" / "1"))[0])["Eval 2"]
    direct = harness.evaluate_run(run_dir)["Eval 2"]
    for metric in ("recall@50", "new-vs-new:recall@50"):
        assert served[metric] == pytest.approx(direct[metric], abs=0.02), metric  # ties may differ
    monkeypatch.undo()  # this code now keeps the same content dense: the saved weights do not fit
    with pytest.raises(ValueError, match=r"does not fit the model its configuration builds now.*--retrain"):
        load_run(run_dir)


def test_content_path_trains_with_free_dropout_and_serves_as_the_run_scores(tmp_path, generated_data_dir):
    """The content path's similarities and weights go through training, the checkpoint and the
    SavedModel; movies training as new move its weight off its start."""
    from hvae_tf.evaluation import harness

    run_dir = train_small_run(generated_data_dir, tmp_path, "--features", "genre", "--approach", "shared",
                              "--cold-movies", "0.2", "--content-neighbours", "10", "--free-dropout", "0.5",
                              "--recipe", "vasp", epochs=3)
    path = load_run(run_dir).model.content_path
    assert path.nonzeros > 0 and float(path.weight) != 1.0
    served = harness.evaluate_saved_model(glob.glob(str(tmp_path / "saved" / "*" / "1"))[0])["Eval 2"]
    direct = harness.evaluate_run(run_dir)["Eval 2"]
    for metric in ("recall@50", "new:recall@50", "new-vs-new:recall@50"):
        assert served[metric] == pytest.approx(direct[metric], abs=0.02), metric  # ties may differ


def test_content_path_without_the_shallow_path_is_refused_naming_the_flags(tmp_path, generated_data_dir):
    for recipe in ("mult-vae", "recvae-edlae"):  # the path off, and frozen
        with pytest.raises(ValueError, match=r"--content-neighbours 10 feeds VASP's trained shallow path.*"
                                             r"--recipe vasp"):
            train_small_run(generated_data_dir, tmp_path, "--features", "genre", "--approach", "shared",
                            "--content-neighbours", "10", "--recipe", recipe)
    assert not (tmp_path / "run" / "config.json").exists()


def test_validation_tracks_new_movies_as_the_evaluation_ranks_them(shared_run):
    import json

    from hvae_tf.evaluation import harness

    run_dir, _ = shared_run
    history = json.loads((run_dir / "validation.json").read_text())
    assert all(0 <= row["val_new_ndcg_100"] <= 1 for row in history)
    final = json.loads((run_dir / "metrics.json").read_text())["validation"]
    evaluated = harness.evaluate_run(run_dir, "validation")["Eval 2"]
    assert final["val_new_ndcg_100"] == pytest.approx(evaluated["new-vs-new:ndcg@100"], abs=1e-4)
    assert final["val_new_recall_50"] == pytest.approx(evaluated["new-vs-new:recall@50"], abs=1e-4)


def test_select_new_within_keeps_the_epoch_best_on_new_movies(tmp_path, generated_data_dir):
    import json

    run_dir = train_small_run(generated_data_dir, tmp_path, "--features", "genre", "--approach", "shared",
                              "--cold-movies", "0.2", "--select-new-within", "1", epochs=6)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = metrics["history"]
    # Within 1 of the best NDCG@100, every epoch: the first epoch best on new movies.
    best_new = max(history, key=lambda row: row["val_new_ndcg_100"])
    assert metrics["best_epoch"] == best_new["epoch"]
    assert metrics["validation"]["val_new_ndcg_100"] == pytest.approx(best_new["val_new_ndcg_100"], abs=1e-6)
    assert metrics["validation"]["val_ndcg_100"] == pytest.approx(best_new["val_ndcg_100"], abs=1e-6)


def test_validation_new_movies_are_counted_by_validation_alone(tmp_path, generated_data_dir):
    import json

    from hvae_tf.evaluation import harness

    run_dir = train_small_run(generated_data_dir, tmp_path, "--features", "genre", "--approach", "shared",
                              "--cold-movies", "0.3", "--validation-new-movies", "0.5", epochs=3)
    split = load_run(run_dir).split
    own, test_new = split.new_movies_of("validation"), split.new_movies_of("test")
    assert len(own) and len(test_new) and not np.isin(own, test_new).any()
    final = json.loads((run_dir / "metrics.json").read_text())["validation"]
    on_validation = harness.evaluate_run(run_dir, "validation")["Eval 2"]
    assert final["val_new_ndcg_100"] == pytest.approx(on_validation["new-vs-new:ndcg@100"], abs=1e-4)
    for name, movies in (("validation", own), ("test", test_new)):
        users = getattr(split, name)
        clicked = np.diff(users.held_out[:, movies].tocsr().indptr) > 0
        assert harness.evaluate_run(run_dir, name)["Eval 2"]["new:users"] == clicked.sum()
    with pytest.raises(ValueError, match="--validation-new-movies: its shelf of new movies"):
        harness.evaluate_saved_model(glob.glob(str(tmp_path / "saved" / "*" / "1"))[0])


def test_grid_with_new_movies_tabulates_them_against_content_knn(tmp_path, generated_data_dir, capsys):
    import evaluate

    argv = ["grid", *small_run_argv(generated_data_dir, None, None, epochs=3), "--cold-movies", "0.2",
            "--feature-sets", "genre", "--approaches", "shared", "--folds", "0", "--out", str(tmp_path)]
    assert evaluate.main(argv) == 0
    with open(tmp_path / "table_content.csv") as f:
        rows = {row["measure"]: row for row in csv.DictReader(f)}
    for measure in ("Eval 2 NDCG@100", "Eval 2 tail movies Recall@50", "Eval 2 new movies Recall@50",
                    "Eval 2 new movies among new Recall@50", "Eval 2 light users NDCG@100"):
        assert measure in rows, sorted(rows)
        for model in ("Standard-VAE", "H-VAE genre (shared)", "Content kNN genre", "EASE", "Popularity"):
            assert 0.0 <= float(rows[measure][model]) <= 1.0
        assert rows[measure]["H-VAE genre (shared) p_t"] != ""  # tested against the Standard-VAE
    vs_knn = (tmp_path / "table_vs_knn_genre.md").read_text()
    assert "against Content kNN genre" in vs_knn and "Standard-VAE" in vs_knn
    assert "new movies" not in (tmp_path / "table2.md").read_text()  # the paper's table as it was
