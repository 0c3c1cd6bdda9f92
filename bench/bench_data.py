"""Generation and TFDS build of ML-20M-layout data: wall time and peak memory of each stage.

    python bench/bench_data.py                       # full ML-20M scale
    python bench/bench_data.py --users 13849 --movies 2728 --ratings 2000026   # a tenth

Each stage runs in its own process so that its peak resident memory is its own (ru_maxrss of the
child). Prints seconds, peak GiB, and throughput; the targets are < 5 min for generation and
< 8 GB peak for both stages.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = {
    "generate": (
        "from hvae_tf.synthetic import generate; "
        "generate.generate({raw!r}, n_users={users}, n_movies={movies}, n_ratings={ratings}, seed=0)"
    ),
    "tfds build + load": (
        "from hvae_tf.data import loading; "
        "d = loading.load_movielens('20m', data_dir={tfds!r}, manual_dir={raw!r}); "
        "print(f'loaded {{len(d.ratings):,}} ratings, {{d.ratings.userId.nunique():,}} users, "
        "{{len(d.movies):,}} movies')"
    ),
    "load again (built)": (
        "from hvae_tf.data import loading; "
        "d = loading.load_movielens('20m', data_dir={tfds!r}, manual_dir={raw!r})"
    ),
}


PEAK = "; import resource; print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def run_stage(code: str) -> tuple[float, float]:
    """Wall seconds and the stage process's own peak RSS in GiB."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code + PEAK], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode:  # TF's and TFDS's chatter is only worth showing when the stage failed
        sys.exit(f"stage failed:\n{done.stderr[-4000:]}")
    out = done.stdout
    seconds = time.perf_counter() - start
    lines = out.strip().splitlines()
    print("\n".join(line for line in lines if not line.startswith("PEAK_KIB")))
    peak_kib = int(next(line for line in lines if line.startswith("PEAK_KIB")).split()[1])
    return seconds, peak_kib / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=138_493)
    p.add_argument("--movies", type=int, default=27_278)
    p.add_argument("--ratings", type=int, default=20_000_263)
    p.add_argument("--work-dir", help="where to write (default: a temp folder, removed after)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        names = dict(raw=str(work / "raw"), tfds=str(work / "tfds"),
                     users=args.users, movies=args.movies, ratings=args.ratings)
        print(f"scale: {args.users:,} users, {args.movies:,} movies, {args.ratings:,} ratings")
        for stage, code in STAGES.items():
            seconds, peak = run_stage(code.format(**names))
            print(f"{stage:>20}: {seconds:7.1f} s, peak RSS {peak:5.2f} GiB, "
                  f"{args.ratings / seconds / 1e6:5.2f} M ratings/s")


if __name__ == "__main__":
    main()
