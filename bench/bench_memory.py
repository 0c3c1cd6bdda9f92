"""Peak resident memory of a full-scale training run and of an evaluation pass, each in its own process.

    python bench/bench_memory.py          # 136,677 users x 20,108 movies, 200 steps; 10,000 eval users
    python bench/bench_memory.py --users 2000 --movies 300 --steps 3 --eval-users 200 --hidden 32 --latent 8

The parent (no TensorFlow) draws the click matrices (ML-20M after Liang, bench/synthetic_clicks.py)
and saves them; each child loads them as train.py loads its split, then trains (`model.fit` on
the project's pipeline over all users) or evaluates (`ranking.score_users`, Eval 2 with masking),
and reports its own peak RSS (ru_maxrss). Target: training under 6 GB. Densifying check: the
growth of a child's RSS over its imports must stay below a dense users x movies array (1 byte a
cell for training, the float32 scores for evaluation); it is only conclusive when that array is
large, so it is checked from 0.5 GB up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import scipy.sparse as sp
from synthetic_clicks import (
    LIANG_MOVIES,
    LIANG_USERS,
    check_sizes,
    fold_in_split,
    liang_like_clicks,
)

REPO = Path(__file__).resolve().parents[1]
TRAIN_TARGET_BYTES = 6e9
CONCLUSIVE_BYTES = 0.5e9
GB = 1e9


def rss_bytes() -> int:
    """This process's resident memory now (Linux /proc)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def densify_verdict(growth: int, rows: int, movies: int, bytes_per_cell: int) -> tuple[str, bool]:
    """(message, ok): could the process have held a dense rows x movies array? ok is False only
    when the growth reaches the array's size and the array is large enough for that to tell."""
    dense = rows * movies * bytes_per_cell
    if dense < CONCLUSIVE_BYTES:
        return f"densify check not conclusive at this scale (dense array {dense / GB:.3f} GB)", True
    if growth < dense:
        return f"no dense {rows:,} x {movies:,} array held (it would take {dense / GB:.2f} GB)", True
    return f"FAILED: growth {growth / GB:.2f} GB >= a dense {rows:,} x {movies:,} array ({dense / GB:.2f} GB)", False


def child_train(args) -> dict:
    import keras
    from bench_train_step import make_model, make_optimizer

    from hvae_tf.data import pipeline

    baseline = rss_bytes()
    matrix = sp.load_npz(Path(args.work) / "train.npz").tocsr()
    with_data = rss_bytes()
    keras.utils.set_random_seed(args.seed)
    dataset = pipeline.padded_batches(matrix, args.batch, seed=args.seed)
    model = make_model(args.model, matrix.shape[1], args.hidden, args.latent, args.seed, float32_outputs=False)
    model.compile(optimizer=make_optimizer("package"), jit_compile=False)
    model(next(iter(dataset)))
    samples = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: samples.append(rss_bytes()))
    model.fit(dataset.repeat(), epochs=1, steps_per_epoch=args.steps, verbose=0, callbacks=[record])
    early = min(10, len(samples))
    return {"baseline": baseline, "with_data": with_data, "early_step": early, "early": samples[early - 1],
            "end": samples[-1], "peak": peak_rss_bytes(), "rows": matrix.shape[0], "movies": matrix.shape[1],
            "params": model.count_params(), "bytes_per_cell": 1}


def child_evaluate(args) -> dict:
    import keras
    from bench_train_step import make_model

    from hvae_tf.metrics import ranking

    baseline = rss_bytes()
    fold_in = sp.load_npz(Path(args.work) / "fold_in.npz").tocsr()
    held_out = sp.load_npz(Path(args.work) / "held_out.npz").tocsr()
    with_data = rss_bytes()
    keras.utils.set_random_seed(args.seed)
    model = make_model(args.model, fold_in.shape[1], args.hidden, args.latent, args.seed, float32_outputs=False)
    per_user = ranking.score_users(model.scores, fold_in, held_out, mask_inputs=True)
    summary = ranking.summarize(per_user)
    return {"baseline": baseline, "with_data": with_data, "end": rss_bytes(), "peak": peak_rss_bytes(),
            "rows": fold_in.shape[0], "movies": fold_in.shape[1], "users_scored": summary["users"],
            "bytes_per_cell": 4}


def run_children(args, work: Path) -> dict[str, dict]:
    """Both children at once (their peaks are their own); each prints one JSON line last."""
    common = ["--work", str(work), "--batch", str(args.batch), "--hidden", str(args.hidden),
              "--latent", str(args.latent), "--steps", str(args.steps), "--seed", str(args.seed),
              "--model", args.model]
    procs = {role: subprocess.Popen([sys.executable, __file__, "--child", role, *common],
                                    stdout=subprocess.PIPE, text=True, cwd=REPO)
             for role in ("train", "evaluate")}
    results = {}
    for role, proc in procs.items():
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"bench_memory: the {role} child failed (exit {proc.returncode}); its errors are above")
        results[role] = json.loads(out.strip().splitlines()[-1])
    return results


def report(results: dict[str, dict]) -> bool:
    ok = True
    for role, r in results.items():
        growth = r["peak"] - r["baseline"]
        print(f"{role}: peak RSS {r['peak'] / GB:.2f} GB | after imports {r['baseline'] / GB:.2f} GB, "
              f"+ data {(r['with_data'] - r['baseline']) / GB:.3f} GB, end {r['end'] / GB:.2f} GB, "
              f"growth over imports {growth / GB:.2f} GB")
        if role == "train":
            print(f"  {r['params']:,} parameters; RSS after step {r['early_step']} {r['early'] / GB:.2f} GB -> "
                  f"end {r['end'] / GB:.2f} GB (growth over the run {(r['end'] - r['early']) / 1e6:+.0f} MB)")
            met = r["peak"] < TRAIN_TARGET_BYTES
            print(f"  training peak < {TRAIN_TARGET_BYTES / GB:.0f} GB: {'met' if met else 'MISSED'}")
        message, fine = densify_verdict(growth, r["rows"], r["movies"], r["bytes_per_cell"])
        print(f"  {message}")
        ok = ok and fine
    return ok


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=LIANG_USERS, help="training users")
    p.add_argument("--movies", type=int, default=LIANG_MOVIES)
    p.add_argument("--eval-users", type=int, default=10_000)
    p.add_argument("--steps", type=int, default=200, help="training steps (batches)")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--hidden", type=int, default=600)
    p.add_argument("--latent", type=int, default=200)
    p.add_argument("--model", default="hvae1", choices=("standard", "hvae1", "hvae2"),
                   help="model trained and evaluated (approach 1 has the largest first layer)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", choices=("train", "evaluate"), help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    check_sizes(p, args, ("users", "eval_users", "steps", "batch", "hidden", "latent"))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        sys.path.insert(0, str(REPO))
        result = (child_train if args.child == "train" else child_evaluate)(args)
        print(json.dumps(result))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        train = liang_like_clicks(args.users, args.movies, seed=args.seed)
        fold_in, held_out = fold_in_split(liang_like_clicks(args.eval_users, args.movies, seed=args.seed + 1),
                                          seed=args.seed)
        for name, matrix in (("train", train), ("fold_in", fold_in), ("held_out", held_out)):
            sp.save_npz(work / f"{name}.npz", matrix, compressed=False)
        print(f"training: {args.users:,} users x {args.movies:,} movies, {train.nnz:,} clicks, {args.model}, "
              f"{args.steps} steps of {args.batch} | evaluation: {args.eval_users:,} users, "
              f"{fold_in.nnz:,} fold-in clicks", flush=True)
        del train, fold_in, held_out
        ok = report(run_children(args, work))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
