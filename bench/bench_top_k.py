"""The evaluation's top-100: the package's exact two-level top-k against one tf.math.top_k call, on
the same scores in the same process.

    python bench/bench_top_k.py                    # 1,000 users (a score_users batch) x 20,108 movies
    python bench/bench_top_k.py --movies 26621 --rounds 40

Whether the two levels pay off depends on the CPU: tf.math.top_k's per-row scan against the two
levels' one vectorised pass for the group maxima plus two small top_k calls. The scores are
normal draws with 30% of each row at -inf, as the fold-in mask leaves a heavy user's row; both
functions run under tf.function, in interleaved rounds (the fastest and the median count), and
their lists are checked equal first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, when run as a script

from synthetic_clicks import LIANG_MOVIES

from hvae_tf.metrics import ranking

DEPTH = 100  # score_users' default metrics: Recall@20, Recall@50, NDCG@100


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=1000, help="rows of scores (score_users' batch size)")
    p.add_argument("--movies", type=int, default=LIANG_MOVIES)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("users", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.movies < DEPTH:
        p.error(f"--movies must be at least {DEPTH}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    scores = rng.normal(size=(args.users, args.movies)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    scores = tf.constant(scores)
    candidates = {
        "two-level (package)": tf.function(lambda s: ranking.top_k_indices(s, DEPTH)),
        "tf.math.top_k": tf.function(lambda s: tf.math.top_k(s, DEPTH, sorted=True).indices),
    }
    lists = [fn(scores).numpy() for fn in candidates.values()]
    if not np.array_equal(*lists):
        raise SystemExit("the two top-k functions gave different lists")
    two_level = ranking.TWO_LEVEL_FROM_GROUPS_PER_K * DEPTH * ranking.TOP_K_GROUP
    print(f"{args.users:,} users x {args.movies:,} movies, top-{DEPTH}, {args.rounds} interleaved rounds "
          f"(the package takes two levels from {two_level:,} movies"
          f"{'' if args.movies >= two_level else ': here it makes the one tf.math.top_k call'})")
    seconds = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn(scores).numpy()
            seconds[name].append(time.perf_counter() - start)
    for name, values in seconds.items():
        print(f"  {name:>20}: best {min(values) * 1e3:7.1f} ms, median {np.median(values) * 1e3:7.1f} ms "
              f"({1e3 * min(values) / args.users * 1000:.0f} ms per 1,000 users)")
    package, reference = seconds["two-level (package)"], seconds["tf.math.top_k"]
    print(f"  two-level / tf.math.top_k: best {min(package) / min(reference):.2f}, "
          f"median {np.median(package) / np.median(reference):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
