"""The paper's two evaluation schemes over any scorer (a VAE, a baseline, a SavedModel).

Eval 1: a test user's whole click history is the input and the target, nothing masked: it measures
        how well the model reproduces what it was shown.
Eval 2: Liang et al.'s strong generalisation: the fold-in 80% is the input, the held-out 20% the
        target, and the fold-in movies are removed from the ranking (`masked=False` shows the
        unmasked variant, where they compete with the targets).
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable

import numpy as np

from hvae_tf.config import SCHEMES
from hvae_tf.data.protocols import HeldOutUsers
from hvae_tf.evaluation import segments as segmenting
from hvae_tf.evaluation.movie_level import ClickRanks
from hvae_tf.metrics import ranking

Scorer = Callable[[np.ndarray], np.ndarray]


def evaluate_scheme(
    scorer: Scorer, users: HeldOutUsers, scheme: str, *, masked: bool = True,
    recall_ks: Iterable[int] = (20, 50), ndcg_ks: Iterable[int] = (100,), batch_size: int = 1000,
    segments: segmenting.Segments | None = None, click_ranks: dict[str, ClickRanks] | None = None,
    new_movie_scorer: Scorer | None = None,
) -> dict[str, np.ndarray]:
    """Per-user metric vectors (NaN where the user has no target) for one scheme; with `segments`
    Eval 2 adds the segment metrics (evaluation/segments.py; Eval 1's targets are its inputs),
    and a `click_ranks` dict gets each movie segment's held-out clicks with their ranks.
    `new_movie_scorer` ranks the new movies among themselves (default `scorer`; a model's
    `new_movie_scores`)."""
    if scheme == "Eval 1":
        full = users.full
        return ranking.score_users(scorer, full, full, mask_inputs=False, recall_ks=recall_ks,
                                   ndcg_ks=ndcg_ks, batch_size=batch_size)
    if scheme == "Eval 2":
        options = dict(mask_inputs=masked, recall_ks=recall_ks, ndcg_ks=ndcg_ks, batch_size=batch_size)
        if segments is None:
            return ranking.score_users(scorer, users.fold_in, users.held_out, **options)
        new = segments.movie_groups.get("new")
        among_new = None if new is None else functools.partial(
            ranking.score_users, segmenting.among(new_movie_scorer or scorer, new), **options)
        return with_segments(functools.partial(ranking.score_users, scorer, **options), among_new,
                             users, segments, max((*recall_ks, *ndcg_ks)), click_ranks)
    raise ValueError(f"unknown evaluation scheme {scheme!r}: choose one of {', '.join(SCHEMES)}")


def with_segments(score: Callable, score_among_new: Callable | None, users: HeldOutUsers,
                  segments: segmenting.Segments, depth: int,
                  click_ranks: dict[str, ClickRanks] | None = None) -> dict[str, np.ndarray]:
    """Eval 2 per user with every segment's metrics, for a model scored either way (a scorer, or
    a served model's top lists): `score(fold_in, held_out, column_groups=, ranks_out=)` ranks all
    movies, `score_among_new(fold_in, held_out, ranks_out=)` the new movies alone (None: the split
    has none). A `click_ranks` dict gets each segment's held-out clicks with their ranks, kept
    only when asked for (they cost a sort per batch)."""
    groups = segments.movie_groups
    ranks = [] if click_ranks is not None else None
    per_user = score(users.fold_in, users.held_out, column_groups=groups, ranks_out=ranks)
    if click_ranks is not None:
        click_ranks.update(ClickRanks.per_segment(users.held_out, ranks[0], depth, groups))
    if score_among_new is not None:
        new_held_out = ranking.only_columns(users.held_out, groups["new"])
        among_new = score_among_new(users.fold_in, new_held_out, ranks_out=ranks)
        per_user.update({f"{segmenting.AMONG_NEW}:{k}": v for k, v in among_new.items()})
        if click_ranks is not None:
            click_ranks[segmenting.AMONG_NEW] = ClickRanks.of(new_held_out, ranks[1], depth)
    return segmenting.with_light_users(per_user, segments.light_users)
