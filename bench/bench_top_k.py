"""The evaluation's top-100: the package's exact two-level top-k against tf.math.top_k, on the same
scores in the same process, with each user's fold-in left out (as Eval 2 ranks) and without.

    python bench/bench_top_k.py                    # 1,000 users (a score_users batch) x 20,108 movies
    python bench/bench_top_k.py --movies 26621 --rounds 40

Whether the two levels pay off depends on the CPU: tf.math.top_k's per-row scan against the two
levels' one vectorised pass for the group maxima plus two small top_k calls. With the fold-in, the
reference writes -inf over it in a copy of the scores (tensor_scatter_nd_update, as the package
did before), then calls top_k; the package passes the fold-in to the two levels as bits per group
instead. The scores are normal draws, the fold-in that of held-out users drawn with
ML-20M-after-Liang statistics (bench/synthetic_clicks.py); all functions run under tf.function,
in interleaved rounds (the fastest and the median count), and each pair's lists are checked equal
first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, when run as a script

from synthetic_clicks import LIANG_MOVIES, fold_in_split, liang_like_clicks

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
    scores = tf.constant(rng.normal(size=(args.users, args.movies)).astype(np.float32))
    fold_in = fold_in_split(liang_like_clicks(args.users, args.movies, seed=args.seed), seed=args.seed)[0].tocoo()
    rows, movies = tf.constant(fold_in.row, tf.int64), tf.constant(fold_in.col, tf.int64)

    def scattered_top_k(s, r, m):
        masked = tf.tensor_scatter_nd_update(s, tf.stack([r, m], axis=1), tf.fill(tf.shape(m), -np.inf))
        return tf.math.top_k(masked, DEPTH, sorted=True).indices

    pairs = {  # name: (package, reference), each a function of no arguments
        "fold-in left out": (tf.function(lambda: ranking.top_k_indices(scores, DEPTH, clicked=(rows, movies))),
                             tf.function(lambda: scattered_top_k(scores, rows, movies))),
        "all movies": (tf.function(lambda: ranking.top_k_indices(scores, DEPTH)),
                       tf.function(lambda: tf.math.top_k(scores, DEPTH, sorted=True).indices)),
    }
    for name, (package, reference) in pairs.items():
        if not np.array_equal(package().numpy(), reference().numpy()):
            raise SystemExit(f"{name}: the package's top-k and the reference gave different lists")
    two_level = ranking.TWO_LEVEL_FROM_GROUPS_PER_K * DEPTH * ranking.TOP_K_GROUP
    print(f"{args.users:,} users x {args.movies:,} movies, {fold_in.nnz:,} fold-in clicks, top-{DEPTH}, "
          f"{args.rounds} interleaved rounds (the package takes two levels from {two_level:,} movies"
          f"{'' if args.movies >= two_level else ': here it makes the one tf.math.top_k call'})")
    seconds = {(name, side): [] for name in pairs for side in ("package", "reference")}
    for _ in range(args.rounds):
        for name, functions in pairs.items():
            for side, fn in zip(("package", "reference"), functions):
                start = time.perf_counter()
                fn().numpy()
                seconds[name, side].append(time.perf_counter() - start)
    references = {"fold-in left out": "-inf scatter + tf.math.top_k", "all movies": "tf.math.top_k"}
    for name in pairs:
        print(f"  {name}:")
        for side, label in (("package", "two-level (package)"), ("reference", references[name])):
            values = seconds[name, side]
            print(f"    {label:>28}: best {min(values) * 1e3:7.1f} ms, median {np.median(values) * 1e3:7.1f} ms "
                  f"({1e3 * min(values) / args.users * 1000:.0f} ms per 1,000 users)")
        package, reference = seconds[name, "package"], seconds[name, "reference"]
        print(f"    package / reference: best {min(package) / min(reference):.2f}, "
              f"median {np.median(package) / np.median(reference):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
