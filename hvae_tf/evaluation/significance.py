"""Is model A better than model B on the same users? Paired tests on per-user metric vectors.

The paper names a significance test as future work. Both runs must score the same users in the
same order (the same fold of the same split), so each run saves its per-user vectors with the
user ids, and a comparison refuses vectors from different folds or users.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np
import scipy.stats

from hvae_tf.evaluation.movie_level import SEGMENTS, ClickRanks, two_way_bootstrap
from hvae_tf.io import save_npz_atomic

_FORMAT = "hvae_tf.per_user/1"


@dataclasses.dataclass(frozen=True)
class PairedTest:
    """A - B over the users both runs could score: paired t-test and Wilcoxon signed-rank test."""

    mean_difference: float
    t: float
    p_t: float
    w: float
    p_w: float
    n: int


def paired_tests(a, b) -> PairedTest:
    """Two-sided tests of mean(a - b) = 0; users NaN in either vector (nothing held out) are dropped.

    Users with equal values in both runs count in the t-test and are left out of the Wilcoxon test
    (scipy's default "wilcox" zero handling). When all differences are 0 the runs are
    indistinguishable: t = W = 0 and p = 1.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired tests need two per-user vectors of the same length, got shapes "
                         f"{a.shape} and {b.shape}: score both runs on the same users")
    both = ~(np.isnan(a) | np.isnan(b))
    difference = a[both] - b[both]
    n = len(difference)
    if n < 2:
        raise ValueError(f"paired tests need at least 2 users scored by both runs, got {n}")
    if not difference.any():
        return PairedTest(0.0, 0.0, 1.0, 0.0, 1.0, n)
    t, p_t = scipy.stats.ttest_rel(a[both], b[both])
    w, p_w = scipy.stats.wilcoxon(difference)
    return PairedTest(float(difference.mean()), float(t), float(p_t), float(w), float(p_w), n)


class PerUser(NamedTuple):
    """One run's per-user metric vectors (name -> array), row i belonging to user `user_ids[i]`,
    and per movie segment ("tail", "new-vs-new") the ranks of its held-out clicks."""

    metrics: dict[str, np.ndarray]
    user_ids: np.ndarray
    metadata: dict
    clicks: dict[str, ClickRanks] = {}


def save_per_user(path, metrics: Mapping[str, np.ndarray], user_ids, metadata: Mapping | None = None,
                  clicks: Mapping[str, ClickRanks] | None = None) -> Path:
    """Write one .npz (written beside `path`, then renamed into place); `metadata` is kept as JSON."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"per-user metrics file {path} must end in .npz (np.savez's format)")
    user_ids = np.asarray(user_ids)
    arrays = {}
    for name, values in metrics.items():
        values = np.asarray(values, np.float64)
        if values.shape != user_ids.shape:
            raise ValueError(f"metric {name!r} has {values.shape} values for {user_ids.shape} user ids: "
                             "save the vectors score_users returned for these users")
        arrays[f"metric:{name}"] = values
    depths = {}
    for segment, ranked in (clicks or {}).items():
        for field in ("rows", "movies", "ranks"):
            arrays[f"clicks:{segment}:{field}"] = getattr(ranked, field)
        depths[segment] = ranked.depth
    header = json.dumps({"format": _FORMAT, "metadata": dict(metadata or {}), "click_depths": depths})
    return save_npz_atomic(path, header=np.array(header), user_ids=user_ids, **arrays)


def load_per_user(path) -> PerUser:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read per-user metrics {path}: {err}; write it with save_per_user") from err
    header = json.loads(str(arrays.pop("header", "{}")))
    if header.get("format") != _FORMAT or "user_ids" not in arrays:
        raise ValueError(f"{path} is not a per-user metrics file ({_FORMAT}); write it with save_per_user")
    metrics = {k[len("metric:"):]: v for k, v in arrays.items() if k.startswith("metric:")}
    clicks = {segment: ClickRanks(*(arrays[f"clicks:{segment}:{field}"] for field in ("rows", "movies", "ranks")),
                                  depth=depth)
              for segment, depth in header.get("click_depths", {}).items()}
    return PerUser(metrics, arrays["user_ids"], header["metadata"], clicks)


def compare(a: PerUser, b: PerUser, metric: str = "ndcg@100") -> PairedTest:
    """Paired tests of run a against run b on `metric`, after checking they scored the same users."""
    if a.user_ids.shape != b.user_ids.shape or not np.array_equal(a.user_ids, b.user_ids):
        raise ValueError(f"cannot compare runs on different folds/users ({len(a.user_ids)} vs "
                         f"{len(b.user_ids)} users, ids differ): evaluate both on the same split and fold")
    for name, run in (("first", a), ("second", b)):
        if metric not in run.metrics:
            raise ValueError(f"the {name} run has no per-user {metric!r}; it has "
                             f"{', '.join(sorted(run.metrics)) or 'none'}")
    return paired_tests(a.metrics[metric], b.metrics[metric])


def compare_where_possible(a: PerUser, b: PerUser, metric: str = "ndcg@100") -> PairedTest | None:
    """`compare`, or None when fewer than 2 users were scored by both (a segment can be that small:
    few users click a new movie on a small release)."""
    if metric in a.metrics and metric in b.metrics and np.array_equal(a.user_ids, b.user_ids):
        if (~(np.isnan(a.metrics[metric]) | np.isnan(b.metrics[metric]))).sum() < 2:
            return None
    return compare(a, b, metric)  # with its errors for other users or a missing metric


def movie_level_test(a: PerUser, b: PerUser, metric: str):
    """The two-way bootstrap of a - b on a movie segment's metric ("new-vs-new:recall@50"), or None
    when either evaluation kept no click ranks for that segment, or they hold fewer than 2 users
    or 2 movies (a small release's segment can)."""
    segment = metric.rpartition(":")[0]
    if segment not in SEGMENTS or segment not in a.clicks or segment not in b.clicks:
        return None
    clicks = a.clicks[segment]
    if len(np.unique(clicks.rows)) < 2 or len(np.unique(clicks.movies)) < 2:
        return None
    return two_way_bootstrap(clicks, b.clicks[segment], metric)


def comparison_lines(first: Mapping[str, Path], second: Mapping[str, Path]) -> list[str]:
    """One line per scheme and metric: mean(second - first) over the users both scored, and the
    paired tests' p-values. `first`/`second` map a scheme to its per-user file."""
    lines = []
    for scheme in first:
        a, b = load_per_user(first[scheme]), load_per_user(second[scheme])
        for metric in a.metrics:
            test = compare_where_possible(b, a, metric)  # second - first, as the line says
            if test is None:
                lines.append(f"{scheme} {metric}: fewer than 2 users scored by both, no test")
                continue
            lines.append(f"{scheme} {metric}: mean difference (second - first) "
                         f"{test.mean_difference:+.4f} over {test.n:,} users; paired t "
                         f"p={test.p_t:.3g}, Wilcoxon p={test.p_w:.3g}" + _movie_level_text(b, a, metric))
    return lines


def _movie_level_text(a: PerUser, b: PerUser, metric: str) -> str:
    test = movie_level_test(a, b, metric)
    if test is None:
        return ""
    return (f"; over users and {test.movies:,} movies (two-way bootstrap) p={test.p:.3g}, 95% interval "
            f"[{test.low:+.4f}, {test.high:+.4f}]")
