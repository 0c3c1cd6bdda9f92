"""Memory of VASP's shallow item-item path at ML-20M's catalogue sizes, against its bound.

    python bench/bench_shallow_memory.py                       # 20,108 and 26,621 movies
    python bench/bench_shallow_memory.py --movies 3502 --steps 3

The path is a movies x movies float32 matrix; Adam keeps two more of the same size, so training
it needs at least 3 N^2 x 4 bytes (the bound printed). Each size runs in its own process: a
Standard-VAE with the shallow path (`--recipe vasp`'s model, started from zeros: EASE's start
would add its own N^2 Gram matrix and inverse, see hvae_tf/baselines/ease.py) trained for a few
steps of 500 users at ML-20M's density (bench/synthetic_clicks.py); the child reports its peak
RSS growth over the model-free baseline, and the ratio to the bound.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench_memory import GB, peak_rss_bytes, rss_bytes
from synthetic_clicks import LIANG_MOVIES, liang_like_clicks

REPO = Path(__file__).resolve().parents[1]
ML20M_MOVIES = (LIANG_MOVIES, 26_621)  # movies with a click after Liang's filter; all rated movies


def child(movies: int, steps: int, batch: int) -> dict:
    sys.path.insert(0, str(REPO))

    from hvae_tf.data import pipeline
    from hvae_tf.models import build_model
    from hvae_tf.training.optimizer import FusedAdam

    clicks = liang_like_clicks(steps * batch, movies, seed=0)
    dataset = pipeline.padded_batches(clicks, batch, seed=0)
    baseline = rss_bytes()
    model = build_model(movies, None, train_clicks=clicks, likelihood="bernoulli", architecture="recvae",
                        activation="swish", prior="standard", kl_gamma=0.0, encoder_passes=0,
                        shallow="zeros", shallow_l2=1e-4, anneal_steps=100, anneal_cap=0.2)
    model.compile(optimizer=FusedAdam(1e-3), jit_compile=False)
    model(next(iter(dataset)))
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    return {"movies": movies, "growth": peak_rss_bytes() - baseline,
            "shallow_bytes": 4 * movies * movies, "params": model.count_params()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--movies", type=int, nargs="+", default=list(ML20M_MOVIES))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.batch)))
        return 0
    print(f"{'movies':>8}{'N^2 float32':>13}{'bound 3 N^2':>13}{'peak growth':>13}{'/ bound':>9}")
    for movies in args.movies:
        out = subprocess.run([sys.executable, __file__, "--child", str(movies), "--steps", str(args.steps),
                              "--batch", str(args.batch)], capture_output=True, text=True, cwd=REPO)
        if out.returncode:
            raise SystemExit(f"bench_shallow_memory: the {movies}-movie child failed:\n{out.stderr[-2000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        bound = 3 * r["shallow_bytes"]
        print(f"{movies:>8,}{r['shallow_bytes'] / GB:>11.2f}GB{bound / GB:>11.2f}GB"
              f"{r['growth'] / GB:>11.2f}GB{r['growth'] / bound:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
