"""The GPU check a session with a lent H200 runs (well under 5 minutes), or the CPU smoke version.

    python bench/gpu_check.py           # on the GPU machine: full scale
    python bench/gpu_check.py --small   # any machine, tiny sizes (what the tests run on CPU)

One process, in order (bench/bench_train_step.py does the timing):
1. float32: Standard-VAE, H-VAE approaches 1 and 2, their naive dense versions, and the first two
   with keras' Adam instead of the package's FusedAdam, at 20,108 movies (ML-20M after Liang),
   batch 500, with the Standard-VAE's step breakdown; the three package models at 26,621 movies
   (the paper's);
2. mixed precision (bfloat16): the three package models at 20,108 movies;
3. MirroredStrategy over the one GPU: the Standard-VAE, and the sharing hybrid with credits-like
   content kept as its nonzeros (integer-indexed variables), float32 (the path train.py takes
   with several GPUs: padded batches, model built in the scope);
4. the Standard-VAE at batch 2,500: what the hardware allows when launches are amortised;
   the sharing hybrid beside it on credits-like content (8,192 multi-hot columns, 5 ones a movie),
   its sparse product and the dense one;
5. evaluation: 10,000 users x 20,108 movies through `score_users`' compiled path (bench_eval.py);
6. op determinism on (train.py's default): does one fit step of each model have deterministic
   kernels on this device? (Last: TF's switch is global.)
Goals, printed beside the figures: Standard-VAE >= 200,000 users/s (step 1 or 2); an ML-20M-scale
epoch (136,677 training users at that rate, plus the validation of 10,000 users) under 2 s; the
10,000-user evaluation under 0.5 s. Every section reports its own failure and the rest still run.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

import bench_eval
import bench_train_step as bench
import keras
import tensorflow as tf
from synthetic_clicks import LIANG_MOVIES, PAPER_MOVIES

TARGET_USERS_PER_SECOND = 200_000
TARGET_EPOCH_SECONDS = 2.0
TARGET_EVALUATION_SECONDS = 0.5
ML20M_TRAINING_USERS = 136_677
EVALUATION_USERS = 10_000
PACKAGE_MODELS = ["standard", "hvae1", "hvae2"]


def scale_flags(small: bool, gpu: bool) -> list[str]:
    if small:
        return ["--batch", "16", "--hidden", "16", "--latent", "4", "--steps", "1", "--rounds", "1",
                "--warmup", "1", "--steps-per-execution", "2", "--pool-batches", "2"]
    if gpu:  # ~2 ms steps: many per tf.function call, enough per round to dwarf fit's set-up
        return ["--steps", "30", "--rounds", "3", "--warmup", "2", "--steps-per-execution", "10"]
    return ["--steps", "2", "--rounds", "2"]


def sections(small: bool, gpu: bool) -> list[tuple[str, list[str]]]:
    flags = scale_flags(small, gpu)
    liang, paper = (["200"], []) if small else ([str(LIANG_MOVIES)], [str(PAPER_MOVIES)])
    keras_adam = [m + bench.KERAS_ADAM for m in PACKAGE_MODELS[:2]]
    models = ([*PACKAGE_MODELS, "naive-hvae1"] if small else
              [*(m for m in bench.MODELS if m != "shared-dense"), *keras_adam])  # its own section below
    credits = ["--shared-content", "400", "--shared-nonzeros", "2"] if small else [
        "--shared-content", "8192", "--shared-nonzeros", "5"]
    paper_scale = [] if small else [  # the same code paths as the section before it
        ("float32, the paper's movies", ["--movies", *paper, "--models", *PACKAGE_MODELS, *flags])]
    return [
        ("float32", ["--movies", *liang, "--models", *models, "--breakdown", *flags]),
        *paper_scale,
        ("mixed_bfloat16", ["--movies", *liang, "--models", *PACKAGE_MODELS[: 1 if small else 3],
                            "--precision", "mixed_bfloat16", *flags]),
        ("MirroredStrategy", ["--movies", *liang, "--models", "standard", "shared", *credits,
                              "--strategy", "mirrored", *flags]),
        ("large batch", ["--movies", *liang, "--models", "standard", *flags, "--batch", "64" if small else "2500"]),
        ("sharing hybrid, credits-like content", ["--movies", *liang, "--models", "standard", "shared",
                                                  "shared-dense", *credits, *flags]),
    ]


def determinism_check(small: bool) -> None:
    """One fit step per model with op determinism on: ok, or the error TF raises."""
    tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy("float32")
    n_movies, batch, hidden, latent = (200, 16, 16, 4) if small else (LIANG_MOVIES, 500, 600, 200)
    dataset = bench.training_batches(n_movies, batch, 1, seed=0)
    for kind in PACKAGE_MODELS:
        try:
            model = bench.make_model(kind, n_movies, hidden, latent, seed=0, float32_outputs=False)
            model.compile(optimizer=bench.make_optimizer("package"))
            model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
            print(f"  {kind}: a deterministic step runs")
        except Exception as error:  # noqa: BLE001 - the message is the finding
            print(f"  {kind}: {type(error).__name__}: {str(error).strip().splitlines()[0][:300]}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="tiny sizes, for a CPU smoke run")
    args = p.parse_args(argv)
    gpus = tf.config.list_physical_devices("GPU")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, GPUs: "
          f"{[tf.config.experimental.get_device_details(g).get('device_name', g.name) for g in gpus] or 'none'}")
    if not gpus and not args.small:
        print("no GPU visible: running at full scale on the CPU (slow); use --small for a smoke run")
    start, failures = time.perf_counter(), 0
    best = (0.0, "none")  # Standard-VAE users/s in the batch-500 sections, and which run
    for title, flags in sections(args.small, bool(gpus)):
        print(f"\n== {title}: bench_train_step.py {' '.join(flags)} "
              f"[{time.perf_counter() - start:.0f} s in]", flush=True)
        try:
            results = bench.run(bench.parse_args(flags))
        except Exception:  # noqa: BLE001 - report and go on to the next section
            failures += 1
            traceback.print_exc(limit=4)
            continue
        if title in ("float32", "mixed_bfloat16"):  # batch 500, the ML-20M scale
            best = max([best] + [(r.users_per_second, f"{title}, {r.kind}") for r in results
                                 if r.kind.startswith("standard")])
    print(f"\n== evaluation: compiled score_users [{time.perf_counter() - start:.0f} s in]", flush=True)
    evaluation = float("nan")
    try:
        evaluation = evaluation_seconds(args.small)
    except Exception:  # noqa: BLE001 - report and go on
        failures += 1
        traceback.print_exc(limit=4)
    print("\n== op determinism (train.py's default --deterministic)", flush=True)
    determinism_check(args.small)
    epoch = ML20M_TRAINING_USERS / best[0] + evaluation if best[0] else float("inf")

    def verdict(ok):
        return "met" if ok else "MISSED"

    print(f"\nStandard-VAE step: best {best[0]:,.0f} users/s ({best[1]}) "
          f"(target >= {TARGET_USERS_PER_SECOND:,}: {verdict(best[0] >= TARGET_USERS_PER_SECOND)})")
    print(f"evaluation of {EVALUATION_USERS:,} users: {evaluation:.3f} s "
          f"(target < {TARGET_EVALUATION_SECONDS} s: {verdict(evaluation < TARGET_EVALUATION_SECONDS)})"
          + (" [--small: a smaller catalogue]" if args.small else ""))
    print(f"ML-20M-scale epoch ({ML20M_TRAINING_USERS:,} users at that rate + that evaluation): "
          f"{epoch:.2f} s (target < {TARGET_EPOCH_SECONDS} s: {verdict(epoch < TARGET_EPOCH_SECONDS)})")
    print(f"{failures} section(s) failed | {time.perf_counter() - start:.0f} s")
    return 1 if failures else 0


def evaluation_seconds(small: bool) -> float:
    """Seconds for the compiled score_users pass over the evaluation users (the best of rounds)."""
    argv = ["--models", "standard", "--rounds", "1" if small else "3"]
    if small:
        argv += ["--users", "200", "--movies", "200", "--hidden", "16", "--latent", "4", "--batch-size", "100"]
    args = bench_eval.parse_args(argv)
    fold_in, held_out = bench_eval.fold_in_split(
        bench_eval.liang_like_clicks(args.users, args.movies, seed=args.seed), seed=args.seed)
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(args.seed)
    model = bench.make_model("standard", args.movies, args.hidden, args.latent, args.seed, float32_outputs=False)
    seconds, rate = bench_eval.stage_seconds(model, fold_in, held_out, args.batch_size, args.rounds)
    bench_eval.report("standard", model, seconds, rate, args.users)
    return seconds["compiled score_users"] * EVALUATION_USERS / args.users


if __name__ == "__main__":
    sys.exit(main())
