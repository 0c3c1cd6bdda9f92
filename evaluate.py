"""Evaluate runs the paper's way, reproduce its experiment grid, and look inside the embeddings.

    python evaluate.py RUN_DIR [RUN_DIR ...]         Eval 1 and Eval 2 on the run's test users
    python evaluate.py saved_models/NAME/VERSION     Eval 2 through the SavedModel's signature
    python evaluate.py compare RUN_A RUN_B           paired t-test and Wilcoxon on the same fold
                                                     (a run or an evaluation folder, e.g. a grid's
                                                     baselines/fold0/EASE)
    python evaluate.py grid --dataset 1m --manual-dir DIR --out results/1m [train.py flags]
    python evaluate.py tune --out tuning/1m --trials 30 [train.py flags]   search on validation users
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
from hvae_tf.config import (
    APPROACHES,
    HELD_OUT_SPLITS,
    HYBRID_FEATURES,
    PAPER_FEATURES,
    RECIPES,
    TrainConfig,
    config_from_args,
    parse_approach,
)
from hvae_tf.config import build_parser as train_parser

COMMANDS = ("run", "compare", "grid", "tune", "plots", "nearest", "embeddings")


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
    grid.add_argument("--approaches", type=parse_approach, nargs="+", choices=APPROACHES,
                      default=[1, 2], help="H-VAE approaches: 1, 2 (the paper's) and shared (the "
                      "sharing hybrid); default 1 2")
    grid.add_argument("--feature-sets", nargs="*", default=list(PAPER_FEATURES), choices=HYBRID_FEATURES,
                      help="the H-VAE's feature sets (default: the paper's; none given: the "
                           "Standard-VAE and the baselines only)")
    grid.add_argument("--recipes", nargs="+", default=[], choices=RECIPES,
                      help="recipes for a recipe table beside --recipe's (each one's Standard-VAE "
                           "and H-VAE genre, with the baselines)")
    tune = sub.add_parser("tune", parents=[train_parser(add_help=False)],
                          help="search train.py's settings (Optuna), scored on validation users only")
    tune.add_argument("--out", required=True, help="folder for the study (study.db), its trials' "
                      "runs, trials.md/csv, best.json and best_command.txt")
    tune.add_argument("--trials", type=int, default=30, help="trials to complete or prune in all, "
                      "those of earlier runs of this command included (default 30)")
    tune.add_argument("--space", help="the search space, replacing the default one: JSON (or a "
                      ".json file) mapping settings to distributions, e.g. "
                      "'{\"lr\": [\"log\", 1e-4, 3e-3], \"dropout\": [\"float\", 0.2, 0.7], "
                      "\"batch_size\": [\"int\", 25, 500, \"log\"], "
                      "\"hidden_dim\": [\"cat\", [300, 600, 1000]]}'")
    tune.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    tune.add_argument("--prune-startup-trials", type=int, default=5,
                      help="trials that finish before the median pruner stops any (default 5)")
    tune.add_argument("--prune-warmup-epochs", type=int, default=10,
                      help="epochs a trial runs before it can be pruned (default 10)")
    tune.add_argument("--no-pruning", action="store_true", help="run every trial to the end")
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
            numbers = "  ".join(f"{k}={v:.4f}" for k, v in summary.items() if "@" in k and ":" not in k)
            target = "clicks" if scheme == "Eval 1" else "held-out clicks"  # what each scheme scores
            print(f"  {scheme}: {numbers}  ({summary['users']:,} users, "
                  f"{summary['users_excluded']:,} without {target} excluded)")
            segments = dict.fromkeys(k.rpartition(":")[0] for k in summary if ":" in k)
            for segment in segments:  # tail movies, new movies, light users (Eval 2)
                part = "  ".join(f"{k.rpartition(':')[2]}={v:.4f}" for k, v in summary.items()
                                 if k.startswith(segment + ":") and "@" in k)
                print(f"    {segment}: {part}  ({summary[segment + ':users']:,} users)")


def command_compare(args) -> None:
    from hvae_tf.evaluation import harness
    from hvae_tf.evaluation.significance import comparison_lines

    folders = []
    for path in map(Path, (args.first, args.second)):
        if (path / harness.SUMMARY).exists():  # an evaluation folder (e.g. a grid's baseline)
            folders.append(path)
            continue
        harness.evaluate_run(path, args.split)
        folders.append(harness.evaluation_folder(path, args.split, True))
    for line in comparison_lines(*(harness.scheme_files(f) for f in folders)):
        print(line)


def command_grid(parser, args) -> None:
    from hvae_tf.evaluation.grid import run_grid

    if "shared" in args.approaches:  # the grid sets each cell's approach; this admits the shared flags
        args.approach = "shared"
    base = config_from_args(parser, args)
    run_grid(base, args.out, folds=tuple(args.folds), feature_sets=tuple(args.feature_sets),
             approaches=tuple(args.approaches), recipes=tuple(args.recipes))


def command_tune(parser, args) -> None:
    from hvae_tf.evaluation.search_space import parse_space

    base = config_from_args(parser, args)
    for flag, value, minimum in (("--trials", args.trials, 1), ("--prune-startup-trials",
                                 args.prune_startup_trials, 0),
                                 ("--prune-warmup-epochs", args.prune_warmup_epochs, 0)):
        if value < minimum:
            parser.error(f"{flag} must be a whole number >= {minimum}, got {value}")
    if args.timeout is not None and not args.timeout > 0:
        parser.error(f"--timeout must be a number of seconds > 0, got {args.timeout}")
    if args.run_dir is not None:
        parser.error("--run-dir: tune puts each trial's run folder under --out/trials/; drop it")
    if args.export_dir != TrainConfig.__dataclass_fields__["export_dir"].default:
        parser.error("--export-dir: tune exports each trial under --out/trials/<trial>/saved_models; "
                     "drop it")
    if base.retrain:
        parser.error("--retrain: a search resumes its trials' runs; pass a new --out to start afresh")
    if base.strategy == "multiworker":
        parser.error("--strategy multiworker: tune runs its trials in this one process")
    space = None
    if args.space is not None:
        try:
            space = parse_space(args.space, base)
        except ValueError as error:
            parser.error(f"--space: {error}")
    import optuna

    from hvae_tf.evaluation import tuning  # TensorFlow loads only once the flags are checked

    pruner = (optuna.pruners.NopPruner() if args.no_pruning
              else tuning.median_pruner(args.prune_startup_trials, args.prune_warmup_epochs))
    tuning.run_study(base, args.out, space, n_trials=args.trials, timeout=args.timeout, pruner=pruner)


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
        if args.command in ("grid", "tune", "embeddings"):
            {"grid": command_grid, "tune": command_tune,
             "embeddings": command_embeddings}[args.command](parser, args)
        else:
            {"run": command_run, "compare": command_compare, "plots": command_plots,
             "nearest": command_nearest}[args.command](args)
    except (ValueError, OSError, FloatingPointError) as error:
        print(f"evaluate.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
