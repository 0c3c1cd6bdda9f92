"""Paired tests on per-user metrics, and the per-user files two runs are compared through."""

import numpy as np
import pytest

from hvae_tf.evaluation.significance import (
    PerUser,
    compare,
    comparison_lines,
    load_per_user,
    paired_tests,
    save_per_user,
)


def test_identical_runs_give_p_one_without_crashing():
    values = np.random.default_rng(0).random(50)
    result = paired_tests(values, values.copy())
    assert (result.mean_difference, result.p_t, result.p_w, result.n) == (0.0, 1.0, 1.0, 50)


def test_a_clear_shift_is_significant_and_signed_a_minus_b():
    rng = np.random.default_rng(1)
    b = rng.random(200)
    a = b + 0.05 + rng.normal(0, 0.02, 200)
    result = paired_tests(a, b)
    assert result.p_t < 0.01 and result.p_w < 0.01
    assert result.mean_difference == pytest.approx(np.mean(a - b))
    assert result.t > 0
    assert paired_tests(b, a).t < 0


def test_noise_alone_is_not_significant():
    rng = np.random.default_rng(2)
    b = rng.random(300)
    result = paired_tests(b + rng.normal(0, 0.05, 300), b)
    assert result.p_t > 0.01 and result.p_w > 0.01


def test_users_nan_in_either_run_are_dropped_pairwise():
    rng = np.random.default_rng(3)
    a, b = rng.random(40), rng.random(40)
    a[[1, 5]] = np.nan
    b[[5, 9]] = np.nan
    keep = np.ones(40, bool)
    keep[[1, 5, 9]] = False
    assert paired_tests(a, b) == paired_tests(a[keep], b[keep])
    assert paired_tests(a, b).n == 37


def test_save_and_load_round_trip(tmp_path):
    metrics = {"ndcg@100": np.array([0.5, np.nan, 0.25]), "recall@20": np.array([1.0, np.nan, 0.0])}
    path = save_per_user(tmp_path / "run" / "per_user.npz", metrics, [7, 3, 11], {"fold": 0})
    loaded = load_per_user(path)
    assert set(loaded.metrics) == set(metrics)
    for name in metrics:
        np.testing.assert_array_equal(loaded.metrics[name], metrics[name])
    np.testing.assert_array_equal(loaded.user_ids, [7, 3, 11])
    assert loaded.metadata == {"fold": 0}
    assert [p.name for p in path.parent.iterdir()] == ["per_user.npz"]  # no temporary file left


def test_comparing_runs_on_different_users_is_refused(tmp_path):
    rng = np.random.default_rng(4)
    a = PerUser({"ndcg@100": rng.random(5)}, np.arange(5), {})
    b = PerUser({"ndcg@100": rng.random(5)}, np.array([0, 1, 2, 3, 99]), {})
    with pytest.raises(ValueError, match="different folds/users"):
        compare(a, b)
    with pytest.raises(ValueError, match="different folds/users"):
        compare(a, PerUser(b.metrics | {"ndcg@100": rng.random(4)}, np.arange(4), {}))
    with pytest.raises(ValueError, match="recall@50"):
        compare(a, a, "recall@50")
    assert compare(a, a).p_t == 1.0


def test_bad_files_and_shapes_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"\.npz"):
        save_per_user(tmp_path / "x.csv", {"ndcg@100": [0.1]}, [1])
    with pytest.raises(ValueError, match="ndcg@100"):
        save_per_user(tmp_path / "x.npz", {"ndcg@100": [0.1, 0.2]}, [1])
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        load_per_user(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="same length"):
        paired_tests([0.1, 0.2], [0.1])


def test_comparison_lines_say_second_minus_first_with_its_sign(tmp_path):
    """The second run is better by construction: the printed difference is positive."""
    rng = np.random.default_rng(5)
    users = np.arange(100)
    first = rng.random(100) * 0.5
    second = first + 0.1 + rng.normal(0, 0.01, 100)
    files = {}
    for name, values in (("first", first), ("second", second)):
        files[name] = {"Eval 2": save_per_user(tmp_path / f"{name}.npz", {"ndcg@100": values}, users)}
    (line,) = comparison_lines(files["first"], files["second"])
    difference = float(line.split("(second - first) ")[1].split()[0])
    assert difference == pytest.approx(np.mean(second - first), abs=1e-4) and difference > 0
    (reverse,) = comparison_lines(files["second"], files["first"])
    assert "(second - first) -0.1" in reverse


def test_a_segment_too_small_to_test_gets_no_test_instead_of_an_error():
    from hvae_tf.evaluation.significance import PerUser, compare_where_possible

    ids = np.arange(4)
    a = PerUser({"new:recall@50": np.array([np.nan, 1.0, np.nan, np.nan]), "ndcg@100": np.arange(4.0)}, ids, {})
    b = PerUser({"new:recall@50": np.array([0.5, 0.2, np.nan, 0.1]), "ndcg@100": np.arange(4.0)[::-1]}, ids, {})
    assert compare_where_possible(a, b, "new:recall@50") is None
    assert compare_where_possible(a, b, "ndcg@100").n == 4
    with pytest.raises(ValueError, match="different folds/users"):
        compare_where_possible(a, PerUser(b.metrics, ids + 1, {}), "new:recall@50")
