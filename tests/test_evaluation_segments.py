"""The segment metrics (tail, new movies, light users) against brute-force numpy on small splits."""

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from hvae_tf.data.protocols import HeldOutUsers, Split
from hvae_tf.evaluation import segments
from hvae_tf.evaluation.schemes import evaluate_scheme
from hvae_tf.metrics import ranking

N_MOVIES, N_USERS = 40, 60


def _random_csr(rng, rows, density, without=()):
    dense = (rng.random((rows, N_MOVIES)) < density).astype(np.float32)
    dense[:, list(without)] = 0.0
    return sp.csr_matrix(dense)


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(3)
    popularity = np.linspace(0.6, 0.02, N_MOVIES)  # column 0 most clicked
    new = np.array([5, 17, 33])
    train = (rng.random((200, N_MOVIES)) < popularity).astype(np.float32)
    train[:, new] = 0.0
    fold_in = _random_csr(rng, N_USERS, 0.25, without=new)
    held_out = _random_csr(rng, N_USERS, 0.2).toarray() * (fold_in.toarray() == 0)
    users = HeldOutUsers(np.arange(N_USERS), fold_in, sp.csr_matrix(held_out, dtype=np.float32))
    return Split("liang", 0, 0, np.arange(N_MOVIES) + 1, sp.csr_matrix(train), np.arange(200), users, users,
                 new_movies=new)


def _scorer(indices):
    """A fixed scorer whose ranking differs per user: score = cos of (user's index sum, movie)."""
    indices = np.asarray(indices)
    seed = np.where(indices >= 0, indices + 1, 0).sum(axis=1, keepdims=True)
    return np.cos(seed * 0.37 + np.arange(N_MOVIES)[None, :] * 1.3).astype(np.float32)


def _brute_force(scores, fold_in, held_out, candidates, group, k):
    """Recall@k and NDCG@k of `group`'s held-out clicks, ranking `candidates` minus the fold-in."""
    recall, ndcg = [], []
    for u in range(scores.shape[0]):
        s = np.where(candidates, scores[u], -np.inf)
        s[fold_in[u].indices] = -np.inf
        order = sorted(range(N_MOVIES), key=lambda j: (-s[j], j))[:k]
        targets = set(held_out[u].indices) & set(np.flatnonzero(group))
        if not targets:
            recall.append(np.nan), ndcg.append(np.nan)
            continue
        hits = [j in targets for j in order]
        recall.append(sum(hits) / min(k, len(targets)))
        dcg = sum(h / np.log2(r + 2) for r, h in enumerate(hits))
        ndcg.append(dcg / sum(1 / np.log2(r + 2) for r in range(min(k, len(targets)))))
    return np.array(recall), np.array(ndcg)


def test_popularity_buckets_split_clicked_movies_20_30_50_by_training_clicks(split):
    buckets = segments.popularity_buckets(split)
    counts = np.diff(split.train.tocsc().indptr)
    clicked = counts > 0
    assert not clicked[split.new_movies].any()
    sizes = {name: int(mask.sum()) for name, mask in buckets.items()}
    assert sizes == {"head": round(0.2 * clicked.sum()), "tail": round(0.5 * clicked.sum()),
                     "torso": clicked.sum() - round(0.2 * clicked.sum()) - round(0.5 * clicked.sum())}
    assert (sum(m.astype(int) for m in buckets.values()) == clicked).all()  # a partition of them
    assert counts[buckets["head"]].min() >= counts[buckets["torso"]].max()
    assert counts[buckets["torso"]].min() >= counts[buckets["tail"]].max()


def test_lightest_users_are_the_quarter_with_fewest_fold_in_clicks(split):
    light = segments.lightest_users(split.test.fold_in)
    counts = np.diff(split.test.fold_in.indptr)
    assert light.sum() == int(np.ceil(0.25 * N_USERS))
    assert counts[light].max() <= counts[~light].min()


def test_segment_metrics_match_brute_force(split):
    users = split.test
    seg = segments.for_split(split, users, "test")
    per_user = evaluate_scheme(_scorer, users, "Eval 2", recall_ks=(5,), ndcg_ks=(10,), segments=seg)
    scores = _scorer(ranking.padded_indices(users.fold_in))
    everything = np.ones(N_MOVIES, bool)
    for name, group in seg.movie_groups.items():
        for k, metric in ((5, "recall"), (10, "ndcg")):
            expected = _brute_force(scores, users.fold_in, users.held_out, everything, group, k)
            np.testing.assert_allclose(per_user[f"{name}:{metric}@{k}"], expected[metric == "ndcg"])
    new = seg.movie_groups["new"]
    for k, metric in ((5, "recall"), (10, "ndcg")):
        expected = _brute_force(scores, users.fold_in, users.held_out, new, new, k)
        np.testing.assert_allclose(per_user[f"new-vs-new:{metric}@{k}"], expected[metric == "ndcg"])
    # Ranked among new movies only, a new movie can only rise.
    both = ~np.isnan(per_user["new:recall@5"])
    assert (per_user["new-vs-new:recall@5"][both] >= per_user["new:recall@5"][both]).all()
    light = seg.light_users
    np.testing.assert_array_equal(np.isnan(per_user["light-users:ndcg@10"]), ~light | np.isnan(per_user["ndcg@10"]))
    np.testing.assert_allclose(per_user["light-users:ndcg@10"][light], per_user["ndcg@10"][light])
    summary = ranking.summarize(per_user)
    assert summary["new:users"] == int((~np.isnan(per_user["new:recall@5"])).sum()) > 0
    assert summary["tail:recall@5"] == pytest.approx(np.nanmean(per_user["tail:recall@5"]))
    assert summary["users"] == int((~np.isnan(per_user["recall@5"])).sum())


def test_without_new_movies_there_is_no_new_segment(split):
    plain = Split("liang", 0, 0, split.movie_ids, split.train, split.train_user_ids, split.test, split.test)
    per_user = evaluate_scheme(_scorer, split.test, "Eval 2", segments=segments.for_split(plain, split.test, "test"))
    assert not any(name.startswith("new") for name in per_user)
    assert "tail:recall@50" in per_user and "light-users:ndcg@100" in per_user


def test_with_validation_new_movies_each_side_counts_only_its_own(split):
    own = split.new_movies[::2]
    parted = dataclasses.replace(split, validation_new_movies=own)
    for name, expected in (("validation", own), ("test", np.setdiff1d(split.new_movies, own))):
        group = segments.for_split(parted, split.test, name).movie_groups["new"]
        np.testing.assert_array_equal(np.flatnonzero(group), expected)
    both = segments.for_split(split, split.test, "validation").movie_groups["new"]
    np.testing.assert_array_equal(np.flatnonzero(both), split.new_movies)
