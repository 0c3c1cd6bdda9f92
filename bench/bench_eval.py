"""Evaluation throughput: users/s for scoring all movies and ranking the top 100 with masking.

    python bench/bench_eval.py                          # 10,000 users, 20,108 movies
    python bench/bench_eval.py --users 500 --movies 300 --hidden 32 --latent 8    # a quick look

Held-out users are drawn with ML-20M-after-Liang statistics and split 80/20 (Eval 2). Stages, each
over all users in batches as `ranking.score_users` takes them:
    scores (eager)        model.scores on the padded fold-in, as the callbacks and harness call it
    scores (tf.function)  the same, compiled
    + top-100, masked     ranking.rank_top_k with the fold-in excluded
    score_users           the whole metric pass: padding, scores, masked top-100, Recall@20/50, NDCG@100
Weights are untrained: the cost does not depend on their values.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, when run as a script

from bench_train_step import make_model
from synthetic_clicks import LIANG_MOVIES, check_sizes, fold_in_split, liang_like_clicks

from hvae_tf.metrics import ranking

DEPTH = 100


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def stage_seconds(model, fold_in, held_out, batch_size: int) -> dict[str, float]:
    """Seconds to take all users through each stage, after a warm-up (tracing) on one batch."""
    compiled = tf.function(model.scores, input_signature=[tf.TensorSpec([None, None], tf.int64)])

    def stages(users: slice):
        starts = range(users.start, users.stop, batch_size)
        batches = [(ranking.padded_indices(fold_in[s : s + batch_size]), fold_in[s : s + batch_size])
                   for s in starts]
        return {
            "scores (eager)": lambda: [tf.reduce_sum(model.scores(i)[:, :1]).numpy() for i, _ in batches],
            "scores (tf.function)": lambda: [tf.reduce_sum(compiled(tf.constant(i))[:, :1]).numpy()
                                             for i, _ in batches],
            "+ top-100, masked": lambda: [ranking.rank_top_k(compiled(tf.constant(i)), DEPTH, exclude=rows)
                                          for i, rows in batches],
            "score_users": lambda: ranking.score_users(model.scores, fold_in[users], held_out[users],
                                                       batch_size=batch_size),
        }

    for fn in stages(slice(0, min(batch_size, fold_in.shape[0]))).values():
        fn()
    return {name: timed(fn) for name, fn in stages(slice(0, fold_in.shape[0])).items()}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--movies", type=int, default=LIANG_MOVIES)
    p.add_argument("--models", nargs="+", choices=("standard", "hvae1", "hvae2"), default=["standard", "hvae1"])
    p.add_argument("--batch-size", type=int, default=1000, help="users per scoring batch (score_users' default)")
    p.add_argument("--hidden", type=int, default=600)
    p.add_argument("--latent", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    check_sizes(p, args, ("users", "batch_size", "hidden", "latent"))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    fold_in, held_out = fold_in_split(liang_like_clicks(args.users, args.movies, seed=args.seed), seed=args.seed)
    print(f"{args.users:,} users x {args.movies:,} movies, {fold_in.nnz:,} fold-in and {held_out.nnz:,} "
          f"held-out clicks, batches of {args.batch_size}, devices "
          f"{[d.name for d in tf.config.list_logical_devices()]}")
    for kind in args.models:
        keras.utils.set_random_seed(args.seed)
        model = make_model(kind, args.movies, args.hidden, args.latent, args.seed, float32_outputs=False)
        seconds = stage_seconds(model, fold_in, held_out, args.batch_size)
        print(f"\n{kind}:")
        for name, value in seconds.items():
            print(f"  {name:>22}: {value:7.2f} s, {args.users / value:9.0f} users/s")
        ranking_share = 1 - seconds["scores (tf.function)"] / seconds["+ top-100, masked"]
        print(f"  masking + top-100: {ranking_share:.0%} of compiled scoring + ranking")
    return 0


if __name__ == "__main__":
    sys.exit(main())
