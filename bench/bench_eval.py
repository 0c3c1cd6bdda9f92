"""Evaluation throughput: users/s for scoring all movies and ranking the top 100 with masking, beside
the matmul-bound users/s measured in the same process.

    python bench/bench_eval.py                          # 10,000 users, 20,108 movies
    python bench/bench_eval.py --users 500 --movies 300 --hidden 32 --latent 8    # a quick look

Held-out users are drawn with ML-20M-after-Liang statistics and split 80/20 (Eval 2). Stages, each
over all users in batches as `ranking.score_users` takes them:
    encoder (tf.function)  model.encode, compiled: the sparse first layer and the encoder's 2nd layer
    scores (eager)         model.scores on the padded fold-in, as score_users' numpy path calls it
    scores (tf.function)   the same, compiled
    + top-100, masked      compiled scores, then ranking.rank_top_k (masking and top_k, eagerly)
    compiled top-100       ranking.compiled_top_k: scores, masking and top_k in one tf.function; only
                           the top-100 lists come back
    score_users            the whole metric pass on the eager path: padding, scores, masked top-100,
                           Recall@20/50, NDCG@100
    compiled score_users   the same pass with traceable=True (the compiled top-100)
The matmul bound is the FLOPs of scoring a user with dense matmuls (encoder 2nd layer and decoder
layers, forward only; the sparse first layer is not counted) divided by the rate of a 2,048^2
float32 tf.matmul timed in this process. Stages and the matmul take turns in interleaved rounds
(load on a shared machine drifts) and the fastest round of each counts. Weights are untrained:
the cost does not depend on their values.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, when run as a script

from bench_train_step import make_model, matmul_rate
from synthetic_clicks import LIANG_MOVIES, check_sizes, fold_in_split, liang_like_clicks

from hvae_tf.metrics import ranking

DEPTH = 100  # score_users' default metrics: Recall@20, Recall@50, NDCG@100
GOAL = 2.0  # the Standard-VAE's compiled score_users within this many times the bound's time
SPEC = [tf.TensorSpec([None, None], tf.int64)]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def scoring_flops(model) -> float:
    """FLOPs of scoring one user with dense matmuls: encoder 2nd layer (hidden -> 2 latent), decoder
    (latent -> hidden -> movies), forward only. The sparse first layer (~clicks x hidden) is left out."""
    hidden, latent, movies = model.hidden_dim, model.latent_dim, model.n_movies
    return 2.0 * (hidden * 2 * latent + latent * hidden + hidden * movies)


def stages(model, fold_in, held_out, users: slice, batch_size: int) -> dict:
    """The timed stages over `users`, each a function of no arguments."""
    encoder = tf.function(lambda i: model.encode(i)[0], input_signature=SPEC)
    compiled = tf.function(model.scores, input_signature=SPEC)
    ranked = ranking.compiled_top_k(model.scores, DEPTH, mask_inputs=True)  # what score_users uses
    starts = range(users.start, users.stop, batch_size)
    batches = [(ranking.padded_indices(fold_in[s : min(s + batch_size, users.stop)]),
                fold_in[s : min(s + batch_size, users.stop)]) for s in starts]
    return {
        "encoder (tf.function)": lambda: [tf.reduce_sum(encoder(tf.constant(i))[:, :1]).numpy() for i, _ in batches],
        "scores (eager)": lambda: [tf.reduce_sum(model.scores(i)[:, :1]).numpy() for i, _ in batches],
        "scores (tf.function)": lambda: [tf.reduce_sum(compiled(tf.constant(i))[:, :1]).numpy()
                                         for i, _ in batches],
        "+ top-100, masked": lambda: [ranking.rank_top_k(compiled(tf.constant(i)), DEPTH, exclude=rows)
                                      for i, rows in batches],
        "compiled top-100": lambda: [ranked(tf.constant(i)).numpy() for i, _ in batches],
        "score_users": lambda: ranking.score_users(model.scores, fold_in[users], held_out[users],
                                                   batch_size=batch_size),
        "compiled score_users": lambda: ranking.score_users(model.scores, fold_in[users], held_out[users],
                                                            batch_size=batch_size, traceable=True),
    }


def stage_seconds(model, fold_in, held_out, batch_size: int, rounds: int) -> tuple[dict[str, float], float]:
    """Fastest seconds of each stage over all users, and the best matmul rate (FLOP/s), over
    `rounds` interleaved rounds, after a warm-up (tracing) on one batch."""
    for fn in stages(model, fold_in, held_out, slice(0, min(batch_size, fold_in.shape[0])), batch_size).values():
        fn()
    timed_stages = stages(model, fold_in, held_out, slice(0, fold_in.shape[0]), batch_size)
    best, rate = {name: float("inf") for name in timed_stages}, 0.0
    for _ in range(rounds):
        rate = max(rate, matmul_rate(tf.float32))
        for name, fn in timed_stages.items():
            best[name] = min(best[name], timed(fn))
    return best, rate


def report(kind: str, model, seconds: dict[str, float], rate: float, users: int) -> None:
    flops = scoring_flops(model)
    bound = rate / flops  # users/s
    print(f"\n{kind}: [{model.n_movies:,}-{model.hidden_dim}-{model.latent_dim}-{model.hidden_dim}-"
          f"{model.n_movies:,}], {flops / 1e6:.3g} MFLOP a user in dense matmuls (forward)")
    for name, value in seconds.items():
        line = f"  {name:>22}: {value:7.2f} s, {users / value:9,.0f} users/s"
        if name.endswith("score_users"):
            achieved = users / value
            line += f"; bound {bound:,.0f} users/s, achieved / bound {achieved / bound:.2f} ({bound / achieved:.2f}x its time)"
        print(line)
    print(f"  matmul bound: {bound:,.0f} users/s = {rate / 1e9:.0f} GFLOP/s (2,048^2 float32 tf.matmul, best "
          f"of the rounds) / {flops / 1e6:.3g} MFLOP a user")
    per_1000 = {name: 1000 * value / users * 1000 for name, value in seconds.items()}  # ms per 1,000 users
    print("  compiled path, ms per 1,000 users: "
          f"encoder {per_1000['encoder (tf.function)']:.0f}, "
          f"decoder {per_1000['scores (tf.function)'] - per_1000['encoder (tf.function)']:.0f}, "
          f"masking + top-100 {per_1000['compiled top-100'] - per_1000['scores (tf.function)']:.0f}, "
          f"host (padding, copies, metrics) {per_1000['compiled score_users'] - per_1000['compiled top-100']:.0f}; "
          f"total {per_1000['compiled score_users']:.0f}, bound {1e6 / bound:.3g}")
    eager_share = 1 - seconds["scores (tf.function)"] / seconds["+ top-100, masked"]
    compiled_share = 1 - seconds["scores (tf.function)"] / seconds["compiled top-100"]
    print(f"  masking + top-100: {eager_share:.0%} of compiled scoring + eager ranking, "
          f"{compiled_share:.0%} of the compiled top-100")
    if kind == "standard":
        ratio = bound / (users / seconds["compiled score_users"])
        verdict = "met" if ratio <= GOAL else "not met"
        print(f"  goal: compiled score_users within {GOAL:g}x of the bound's time: {verdict} ({ratio:.2f}x)")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--movies", type=int, default=LIANG_MOVIES)
    p.add_argument("--models", nargs="+", choices=("standard", "hvae1", "hvae2"), default=["standard", "hvae1"])
    p.add_argument("--batch-size", type=int, default=1000, help="users per scoring batch (score_users' default)")
    p.add_argument("--hidden", type=int, default=600)
    p.add_argument("--latent", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; the fastest of each stage counts")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    check_sizes(p, args, ("users", "batch_size", "hidden", "latent", "rounds"))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    fold_in, held_out = fold_in_split(liang_like_clicks(args.users, args.movies, seed=args.seed), seed=args.seed)
    print(f"{args.users:,} users x {args.movies:,} movies, {fold_in.nnz:,} fold-in and {held_out.nnz:,} "
          f"held-out clicks, batches of {args.batch_size}, best of {args.rounds} rounds, devices "
          f"{[d.name for d in tf.config.list_logical_devices()]}")
    for kind in args.models:
        keras.utils.set_random_seed(args.seed)
        model = make_model(kind, args.movies, args.hidden, args.latent, args.seed, float32_outputs=False)
        seconds, rate = stage_seconds(model, fold_in, held_out, args.batch_size, args.rounds)
        report(kind, model, seconds, rate, args.users)
    return 0


if __name__ == "__main__":
    sys.exit(main())
