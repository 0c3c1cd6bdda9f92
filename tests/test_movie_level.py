"""The per-click ranks an evaluation keeps, and the two-way bootstrap over users and movies."""

import numpy as np
import pytest
import scipy.sparse as sp

from hvae_tf.evaluation import significance
from hvae_tf.evaluation.movie_level import ClickRanks, two_way_bootstrap
from hvae_tf.metrics import ranking

N_USERS, N_MOVIES = 300, 60


def _held_out(rng, density=0.08):
    matrix = sp.csr_matrix((rng.random((N_USERS, N_MOVIES)) < density).astype(np.float32))
    matrix.indices = matrix.indices.astype(np.int32)
    return matrix


def _random_tops(rng, depth=20):
    return np.stack([rng.permutation(N_MOVIES)[:depth] for _ in range(N_USERS)])


def test_held_out_ranks_are_each_clicks_place_in_its_users_list():
    rng = np.random.default_rng(0)
    held_out, top = _held_out(rng), _random_tops(rng)
    top[:5, -3:] = -1  # a served model's short lists
    ranks = ranking.held_out_ranks(top, held_out)
    for entry, (user, movie) in enumerate(zip(*held_out.nonzero())):
        where = np.flatnonzero(top[user] == movie)
        assert ranks[entry] == (where[0] if len(where) else -1)


def test_score_users_ranks_match_its_metrics_and_the_bootstrap_reproduces_the_per_user_means():
    rng = np.random.default_rng(1)
    fold_in, held_out = _held_out(rng, 0.05), _held_out(rng)
    scores = {name: rng.normal(size=(N_USERS, N_MOVIES)).astype(np.float32) for name in "ab"}
    group = np.zeros(N_MOVIES, bool)
    group[::3] = True
    per_user, clicks = {}, {}
    for name, table in scores.items():
        ranks = []
        per_user[name] = ranking.score_users(lambda idx, t=table: t, fold_in, held_out, mask_inputs=False,
                                             recall_ks=(3, 50), ndcg_ks=(5, 100),
                                             column_groups={"g": group}, ranks_out=ranks)
        clicks[name] = ClickRanks.of(held_out, ranks[0], depth=100, columns=group)
    for metric in ("g:recall@3", "g:recall@50", "g:ndcg@5", "g:ndcg@100"):  # cut-offs below some users' clicks
        expected = np.nanmean(per_user["a"][metric] - per_user["b"][metric])
        test = two_way_bootstrap(clicks["a"], clicks["b"], metric, replicates=200)
        assert test.mean_difference == pytest.approx(expected, abs=1e-12)
        assert test.low <= test.high


def _one_movie_apart(rng, lucky_movies):
    """B ranks every click below place 50; A the same, except that the clicks on
    `lucky_movies` are moved to the top of the list."""
    held_out = _held_out(rng, 0.1)
    rows, movies = (np.repeat(np.arange(N_USERS), np.diff(held_out.indptr)), held_out.indices)
    base = rng.integers(50, 100, size=len(rows)).astype(np.int32)  # below every top 50
    better = np.where(np.isin(movies, lucky_movies), 0, base).astype(np.int32)
    return (ClickRanks(rows.astype(np.int32), movies.astype(np.int32), better, 100),
            ClickRanks(rows.astype(np.int32), movies.astype(np.int32), base, 100))


def test_a_gain_on_one_movie_is_significant_over_users_but_not_over_movies():
    a, b = _one_movie_apart(np.random.default_rng(2), lucky_movies=[7])
    per_user = {name: _recall_per_user(c, 50) for name, c in (("a", a), ("b", b))}
    assert significance.paired_tests(per_user["a"], per_user["b"]).p_t < 1e-4
    assert two_way_bootstrap(a, b, "recall@50", replicates=1000).p > 0.05


def test_a_gain_spread_over_many_movies_is_significant_both_ways():
    a, b = _one_movie_apart(np.random.default_rng(3), lucky_movies=np.arange(0, N_MOVIES, 2))
    test = two_way_bootstrap(a, b, "recall@50", replicates=1000)
    assert test.p < 0.01 and test.low > 0


def _recall_per_user(clicks, k):
    hits = np.bincount(clicks.rows, (clicks.ranks >= 0) & (clicks.ranks < k), minlength=N_USERS)
    n = np.bincount(clicks.rows, minlength=N_USERS)
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, hits / np.minimum(n, k), np.nan)


def test_the_bootstrap_refuses_other_clicks_and_a_depth_it_was_not_ranked_to():
    a, b = _one_movie_apart(np.random.default_rng(4), lucky_movies=[1])
    other = ClickRanks(b.rows[1:], b.movies[1:], b.ranks[1:], b.depth)
    with pytest.raises(ValueError, match="different held-out clicks"):
        two_way_bootstrap(a, other, "recall@50")
    with pytest.raises(ValueError, match="ranked only 100 deep"):
        two_way_bootstrap(a, b, "recall@200")
    with pytest.raises(ValueError, match="recall@k or ndcg@k"):
        two_way_bootstrap(a, b, "users")


def test_click_ranks_survive_the_per_user_file_and_reach_the_comparison(tmp_path):
    a, b = _one_movie_apart(np.random.default_rng(5), lucky_movies=[3, 9])
    files = {}
    for name, clicks in (("a", a), ("b", b)):
        metrics = {"new-vs-new:recall@50": _recall_per_user(clicks, 50)}
        files[name] = {"Eval 2": significance.save_per_user(
            tmp_path / f"{name}.npz", metrics, np.arange(N_USERS), clicks={"new-vs-new": clicks})}
    loaded = significance.load_per_user(files["a"]["Eval 2"])
    assert np.array_equal(loaded.clicks["new-vs-new"].ranks, a.ranks)
    assert loaded.clicks["new-vs-new"].depth == 100
    (line,) = significance.comparison_lines(files["b"], files["a"])
    assert f"over users and {len(np.unique(a.movies))} movies (two-way bootstrap)" in line


def test_an_evaluation_keeps_the_ranks_of_its_tail_and_new_movie_clicks(tmp_path):
    from hvae_tf.data.protocols import HeldOutUsers, Split
    from hvae_tf.evaluation import harness

    rng = np.random.default_rng(6)
    new = np.array([4, 11, 30, 45])
    train = (rng.random((200, N_MOVIES)) < np.linspace(0.5, 0.02, N_MOVIES)).astype(np.float32)
    train[:, new] = 0.0
    fold_in = _held_out(rng, 0.1)
    fold_in = sp.csr_matrix(fold_in.toarray() * np.isin(np.arange(N_MOVIES), new, invert=True))
    held_out = sp.csr_matrix(_held_out(rng, 0.15).toarray() * (fold_in.toarray() == 0))
    users = HeldOutUsers(np.arange(N_USERS), fold_in, held_out)
    split = Split("liang", 0, 0, np.arange(N_MOVIES) + 1, sp.csr_matrix(train), np.arange(200), users, users,
                  new_movies=new)
    table = rng.normal(size=(N_USERS, N_MOVIES)).astype(np.float32)
    key = harness.evaluation_key({"scorer": "random"}, split_fingerprint="f", split_name="test",
                                 schemes=("Eval 2",))
    harness.evaluate_scorer(lambda idx: table, split, "test", tmp_path, key)
    saved = significance.load_per_user(harness.scheme_file(tmp_path, "Eval 2"))
    assert set(saved.clicks) == {"tail", "new", "new-vs-new"}
    among_new = saved.clicks["new-vs-new"]
    assert set(np.unique(among_new.movies)) <= set(new) and among_new.depth == 100
    np.testing.assert_allclose(_recall_per_user(among_new, 50), saved.metrics["new-vs-new:recall@50"])
    np.testing.assert_allclose(_recall_per_user(saved.clicks["tail"], 20), saved.metrics["tail:recall@20"])
