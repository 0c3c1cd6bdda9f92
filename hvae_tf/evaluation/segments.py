"""Where movie content can matter: Eval 2 restricted to rare movies, new movies and light users.

A movie's features can only help where its own weights learn little, and an average over all
held-out clicks is dominated by the popular movies, where they do not. So beside the usual metrics
an Eval 2 reports, per user (NaN where the user has nothing to score):

- "head:", "torso:", "tail:" metrics over the held-out clicks on the most-clicked 20% of the movies,
  the least-clicked 50%, and the rest, buckets fixed by the training clicks (new movies in none);
- "new:" over the held-out clicks on the split's new movies (no training clicks), ranked among
  all movies; "new-vs-new:" the same clicks ranked among the new movies only;
- "light-users:" every held-out click, for the quarter of the users with the fewest fold-in clicks.

A restricted Recall@k divides the group's hits in the top k by min(k, the user's clicks in the
group), and a restricted NDCG@k discounts those hits where they rank, against the same number of
hits at the top: the definitions of metrics.ranking, applied to the group's clicks alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from hvae_tf.data.protocols import HeldOutUsers, Split

HEAD_SHARE, TAIL_SHARE = 0.2, 0.5  # of the movies with training clicks
LIGHT_USERS_SHARE = 0.25
AMONG_NEW = "new-vs-new"
LIGHT_USERS = "light-users"
# Names and meanings of the segment metrics, and the click ranks kept for them
# (evaluation/movie_level.py): part of every evaluation's cache key. 3: new movies ranked among
# themselves by a model's new_movie_scores, which a VASP-style product no longer ties.
VERSION = "segments/3"


@dataclasses.dataclass
class Segments:
    """The movie groups (boolean column masks) and light users (boolean row mask) of one evaluation."""

    movie_groups: dict[str, np.ndarray]
    light_users: np.ndarray


def popularity_buckets(split: Split) -> dict[str, np.ndarray]:
    """Head, torso and tail column masks by training clicks, over the movies that have any (new
    movies, and under "paper" catalogue movies nobody clicked, are in no bucket). Ties in the
    counts go to the lower column, so the buckets are fixed by the split alone."""
    counts = np.diff(split.train.tocsc().indptr)
    clicked = np.flatnonzero(counts > 0)
    order = clicked[np.argsort(-counts[clicked], kind="stable")]
    n_head, n_tail = round(HEAD_SHARE * len(order)), round(TAIL_SHARE * len(order))
    buckets = {}
    for name, columns in (("head", order[:n_head]), ("torso", order[n_head:len(order) - n_tail]),
                          ("tail", order[len(order) - n_tail:])):
        buckets[name] = np.zeros(split.n_movies, bool)
        buckets[name][columns] = True
    return buckets


def lightest_users(fold_in: sp.csr_matrix, share: float = LIGHT_USERS_SHARE) -> np.ndarray:
    """The ceil(share x users) users with the fewest fold-in clicks (ties to the earlier row)."""
    counts = np.diff(fold_in.indptr)
    light = np.zeros(len(counts), bool)
    light[np.argsort(counts, kind="stable")[:int(np.ceil(share * len(counts)))]] = True
    return light


def for_split(split: Split, users: HeldOutUsers, split_name: str) -> Segments:
    groups = popularity_buckets(split)
    if len(split.new_movies):
        groups["new"] = np.zeros(split.n_movies, bool)
        groups["new"][split.new_movies_of(split_name)] = True
    return Segments(groups, lightest_users(users.fold_in))


def among(scorer, columns: np.ndarray):
    """A scorer that ranks only `columns` (boolean mask): every other movie scores -inf."""
    def restricted(indices):
        return np.where(columns, np.asarray(scorer(indices), np.float32), -np.inf).astype(np.float32)
    return restricted


def with_light_users(per_user: dict[str, np.ndarray], light: np.ndarray) -> dict[str, np.ndarray]:
    """The light users' copy of each plain metric (NaN for the other users), added to `per_user`."""
    plain = [name for name in per_user if ":" not in name]
    return {**per_user, **{f"{LIGHT_USERS}:{name}": np.where(light, per_user[name], np.nan) for name in plain}}
