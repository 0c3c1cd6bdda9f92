"""Evaluate runs the paper's way, reproduce its experiment grid, and look inside the embeddings.

    python evaluate.py RUN_DIR [RUN_DIR ...]         Eval 1 and Eval 2 on the run's test users
    python evaluate.py saved_models/NAME/VERSION     Eval 2 through the SavedModel's signature
    python evaluate.py compare RUN_A RUN_B           paired t-test and Wilcoxon on the same fold
    python evaluate.py grid --dataset 1m --manual-dir DIR --out results/1m [train.py flags]
    python evaluate.py plots RUN_DIR                 user clusters, movie space, curves, projector
    python evaluate.py nearest RUN_DIR "Toy Story (1995)" [-k 10]
    python evaluate.py embeddings --dataset 1m --manual-dir DIR --features genre [train.py flags]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# TensorFlow-free: the commands parse their flags before TensorFlow loads.
from hvae_tf.config import APPROACHES, HELD_OUT_SPLITS, HYBRID_FEATURES, config_from_args
from hvae_tf.config import build_parser as train_parser

COMMANDS = ("run", "compare", "grid", "plots", "nearest", "embeddings")


def add_metric_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", choices=HELD_OUT_SPLITS, default="test")
    p.add_argument("--recall-ks", type=int, nargs="+", default=[20, 50])
    p.add_argument("--ndcg-ks", type=int, nargs="+", default=[100])


def build_parser() -> argparse.ArgumentParser:

    p = argparse.ArgumentParser(prog="evaluate.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="evaluate run folders or SavedModels (the default command)")
    run.add_argument("paths", nargs="+", help="train.py run folders or SavedModel version folders")
    run.add_argument("--unmasked", action="store_true",
                     help="Eval 2 without removing the fold-in movies from the ranking")
    run.add_argument("--unfinished", action="store_true",
                     help="score a run that has not finished (its best checkpoint so far)")
    add_metric_flags(run)
    cmp = sub.add_parser("compare", help="significance of the difference between two runs")
    cmp.add_argument("first")
    cmp.add_argument("second")
    cmp.add_argument("--split", choices=HELD_OUT_SPLITS, default="test")
    grid = sub.add_parser("grid", parents=[train_parser(add_help=False)],
                          help="the paper's grid: all feature sets, both approaches, 3 folds")
    grid.add_argument("--out", required=True, help="folder for runs, evaluations and tables")
    grid.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2])
    grid.add_argument("--approaches", type=int, nargs="+", choices=APPROACHES, default=list(APPROACHES))
    grid.add_argument("--feature-sets", nargs="+", default=list(HYBRID_FEATURES), choices=HYBRID_FEATURES)
    plots = sub.add_parser("plots", help="the paper's figures and embedding numbers for a run")
    plots.add_argument("run_dir")
    plots.add_argument("--seed", type=int, default=0)
    near = sub.add_parser("nearest", help="nearest movies in a run's movie-embedding space")
    near.add_argument("run_dir")
    near.add_argument("query", help="a title (fuzzy) or a MovieLens movie id")
    near.add_argument("-k", type=int, default=10)
    sub.add_parser("embeddings", parents=[train_parser(add_help=False)],
                   help="build a fold's movie embeddings and check how they group movies by genre")
    return p


def parse(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv.insert(0, "run")  # `evaluate.py RUN_DIR` is the common case
    parser = build_parser()
    return parser, parser.parse_args(argv)


def command_run(args) -> None:
    from hvae_tf.evaluation import harness

    options = dict(recall_ks=tuple(args.recall_ks), ndcg_ks=tuple(args.ndcg_ks))
    for path in map(Path, args.paths):
        if (path / "saved_model.pb").exists():
            result = harness.evaluate_saved_model(path, args.split, **options)
        else:
            result = harness.evaluate_run(path, args.split, masked=not args.unmasked,
                                          allow_unfinished=args.unfinished, **options)
        unfinished = not (path / "saved_model.pb").exists() and harness.finished_metrics(path) is None
        print(f"{path} ({args.split} users)"
              + ("  ** UNFINISHED RUN: its best checkpoint so far, not its result **" if unfinished else ""))
        for scheme, summary in result.items():
            numbers = "  ".join(f"{k}={v:.4f}" for k, v in summary.items() if "@" in k)
            target = "clicks" if scheme == "Eval 1" else "held-out clicks"  # what each scheme scores
            print(f"  {scheme}: {numbers}  ({summary['users']:,} users, "
                  f"{summary['users_excluded']:,} without {target} excluded)")


def command_compare(args) -> None:
    from hvae_tf.evaluation import harness
    from hvae_tf.evaluation.significance import comparison_lines

    folders = []
    for run in (args.first, args.second):
        harness.evaluate_run(run, args.split)
        folders.append(harness.evaluation_folder(Path(run), args.split, True))
    for line in comparison_lines(*(harness.scheme_files(f) for f in folders)):
        print(line)


def command_grid(parser, args) -> None:
    from hvae_tf.evaluation.grid import run_grid

    base = config_from_args(parser, args)
    run_grid(base, args.out, folds=tuple(args.folds), feature_sets=tuple(args.feature_sets),
             approaches=tuple(args.approaches))


def command_plots(args) -> None:
    from hvae_tf.analysis.report import write_report

    print(json.dumps(write_report(args.run_dir, seed=args.seed), indent=2))


def command_embeddings(parser, args) -> None:
    from hvae_tf.analysis.report import genre_check

    print(genre_check(config_from_args(parser, args)))


def command_nearest(args) -> None:
    from hvae_tf.analysis.report import nearest_movies

    for title, distance in nearest_movies(args.run_dir, args.query, args.k):
        print(f"{distance:8.4f}  {title}")


def main(argv=None) -> int:
    parser, args = parse(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # as train.py: no C++ start-up notes
    try:
        if args.command in ("grid", "embeddings"):
            {"grid": command_grid, "embeddings": command_embeddings}[args.command](parser, args)
        else:
            {"run": command_run, "compare": command_compare, "plots": command_plots,
             "nearest": command_nearest}[args.command](args)
    except (ValueError, OSError, FloatingPointError) as error:
        print(f"evaluate.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
