"""The paper's experiment grid on any release: Standard-VAE, H-VAE with random, genre, genome and
IMDb embeddings, approaches 1 and 2 (and the sharing hybrid), three folds, with Popularity, EASE
and content kNN (per feature set) on the same splits.

Each cell is an ordinary train.py run in `<out>/runs/`, so a grid that stopped half-way picks up
where it was: finished runs and evaluations are reused, not retrained.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np

from hvae_tf.baselines import (
    DEFAULT_DROPOUT_GRID,
    DEFAULT_EDLAE_L2_GRID,
    DEFAULT_L2_GRID,
    DEFAULT_NEIGHBOURS_GRID,
    EASE,
    EDLAE,
    ContentKNN,
    Popularity,
)
from hvae_tf.config import (
    CONTENT_FEATURES,
    HYBRID_FEATURES,
    PAPER_FEATURES,
    SCHEMES,
    SHARED_FIELDS,
    TrainConfig,
    absolute_path,
    describe_differences,
)
from hvae_tf.data import prepare
from hvae_tf.embeddings import feature_matrix
from hvae_tf.evaluation import harness
from hvae_tf.evaluation.significance import compare_where_possible, load_per_user, movie_level_test
from hvae_tf.evaluation.tables import (
    BASELINES,
    STANDARD_VAE,
    Result,
    content_table,
    knn_label,
    model_label,
    overall,
    recipe_table,
    results_table,
    table1,
    table2,
)
from hvae_tf.io import write_atomic
from hvae_tf.training.run import train


def usable_features(data, feature_sets) -> list[str]:
    """The feature sets this release has: genome needs genome files, imdb and credits OMDb data."""
    usable = {"random": True, "genre": True, "genome": data.has_genome, "imdb": data.has_omdb,
              "credits": data.has_omdb}
    return [f for f in feature_sets if usable[f]]


def grid_cells(data, feature_sets=HYBRID_FEATURES, approaches=(1, 2)) -> list[tuple[str, int]]:
    """(features, approach) pairs this release can run."""
    return [("none", 1)] + [(f, a) for f in usable_features(data, feature_sets) for a in approaches]


def cell_label(features: str, approach: int | str, approaches) -> str:
    """The paper's labels ("H-VAE genre", with its approach when the grid runs both); the sharing
    hybrid is always named as such."""
    if features == "none":
        return STANDARD_VAE
    return model_label(features, approach if len(approaches) > 1 or approach == "shared" else None)


def run_cell(base: TrainConfig, out: Path, fold: int, features: str, approach: int,
             recipe: str | None = None) -> Path:
    """Train one grid cell, or resume it, or reuse it when finished; a run folder made with any
    other setting (epochs included) is refused rather than reused."""
    cfg = dataclasses.replace(base, fold=fold, features=features, approach=approach,
                              recipe=recipe or base.recipe)
    if approach != "shared":  # the sharing hybrid's settings, unused here, keep their defaults
        defaults = TrainConfig()
        cfg = dataclasses.replace(cfg, **{name: getattr(defaults, name) for name in SHARED_FIELDS})
    cfg = dataclasses.replace(cfg, run_dir=absolute_path(out / "runs" / cfg.model_name),
                              export_dir=absolute_path(out / "saved_models"))
    saved = Path(cfg.run_dir) / "config.json"
    if saved.exists():
        diff = cfg.result_differences(TrainConfig.from_json(saved.read_text()))
        if diff:
            raise ValueError(
                f"{cfg.run_dir} holds a grid cell made with other settings "
                f"({describe_differences(diff)}): pass "
                "another --out for these settings, or delete that folder to train it again")
    keras.backend.clear_session()
    train(cfg)  # reports a finished run instead of training it again
    return Path(cfg.run_dir)


def baseline_folders(base: TrainConfig, out: Path, fold: int, content=()) -> dict[str, Path]:
    """Popularity, EASE (L2 weight chosen on validation users), EDLAE (L2 and dropout likewise) and
    content kNN on each of the `content` feature sets (neighbours chosen on validation users) on
    the fold's test users."""
    cfg = dataclasses.replace(base, fold=fold)
    data, split = prepare.prepare(cfg, verbose=False)
    fingerprint = split.fingerprint()
    folders = {}

    def evaluated(name, scored, fit):
        """The baseline's evaluation folder, fitted and scored unless its key is cached."""
        folder = folders[name] = out / "baselines" / f"fold{fold}" / name.replace(" ", "-")
        key = harness.evaluation_key(scored, split_fingerprint=fingerprint, split_name="test")
        if harness.cached(folder, key) is None:
            model, chosen = fit()
            harness.evaluate_scorer(model.scores, split, "test", folder, key,
                                    metadata={"model": name, "fold": fold, **chosen})

    def closed_form(cls, grid, dropouts):
        def fit():
            model, table = cls.tuned(split.train, split.validation.fold_in, split.validation.held_out,
                                     grid=grid, dropouts=dropouts)
            return model, {"l2": model.l2, "dropout": model.dropout,
                           "validation_ndcg@100": {str(k): v for k, v in table.items()}}
        return fit

    evaluated("Popularity", {"baseline": "Popularity"}, lambda: (Popularity().fit(split.train), {}))
    evaluated("EASE", {"baseline": "EASE", "l2_grid": list(DEFAULT_L2_GRID)},
              closed_form(EASE, DEFAULT_L2_GRID, (0.0,)))
    evaluated("EDLAE", {"baseline": "EDLAE", "l2_grid": list(DEFAULT_EDLAE_L2_GRID),
                        "dropout_grid": list(DEFAULT_DROPOUT_GRID)},
              closed_form(EDLAE, DEFAULT_EDLAE_L2_GRID, DEFAULT_DROPOUT_GRID))
    for features in content:
        matrix = feature_matrix(dataclasses.replace(cfg, features=features), data, split)

        def knn(matrix=matrix):
            model, table = ContentKNN.tuned(matrix.standardized(), split.validation.fold_in,
                                            split.validation.held_out, grid=DEFAULT_NEIGHBOURS_GRID)
            return model, {"neighbours": model.neighbours,
                           "validation_ndcg@100": {str(k): v for k, v in table.items()}}

        evaluated(knn_label(features), {"baseline": "Content kNN", "features": matrix.fingerprint(),
                                        "neighbours_grid": list(DEFAULT_NEIGHBOURS_GRID)}, knn)
    return folders


def collect(folders: dict[tuple[str, int], Path], reference=STANDARD_VAE, over_movies: bool = True) -> list[Result]:
    """Result records from evaluation folders, with paired tests against the reference per fold,
    and on the movie segments (`over_movies`) the two-way bootstrap over users and movies."""
    records = []
    for (label, fold), folder in folders.items():
        for scheme in SCHEMES:
            mine = load_per_user(harness.scheme_file(folder, scheme))
            ref_folder = folders.get((reference, fold))
            ref = load_per_user(harness.scheme_file(ref_folder, scheme)) if ref_folder and label != reference else None
            for metric in mine.metrics:
                values = mine.metrics[metric]
                test = compare_where_possible(mine, ref, metric) if ref is not None else None
                both_ways = movie_level_test(mine, ref, metric) if test and over_movies else None
                records.append(Result(label, scheme, fold, metric, float(np.nanmean(values)),
                                      test.p_t if test else None, test.p_w if test else None,
                                      both_ways.p if both_ways else None))
    return records


def recipe_label(recipe: str, features: str) -> str:
    """A recipe table's column: "Standard-VAE (recvae)", "H-VAE genre (vasp)"."""
    return f"{model_label(features)} ({recipe})"


# The recipe table's models: each recipe's Standard-VAE and its H-VAE with genre features.
RECIPE_CELLS = (("none", 1), ("genre", 1))


def run_grid(base: TrainConfig, out: str | Path, folds=(0, 1, 2), feature_sets=PAPER_FEATURES,
             approaches=(1, 2), split_name: str = "test", recipes=()) -> dict[str, Path]:
    """Train, evaluate and tabulate the grid; returns the written table files.

    The paper's tables use `base.recipe` for every model. `recipes` (others) add a recipe table:
    each recipe's Standard-VAE and H-VAE (genre, approach 1) beside the base recipe's, with the
    baselines."""
    out = Path(out)
    data, _ = prepare.prepare(dataclasses.replace(base, fold=folds[0]), verbose=True)
    cells = grid_cells(data, feature_sets, approaches)
    content = [f for f in usable_features(data, feature_sets) if f in CONTENT_FEATURES]
    others = [r for r in dict.fromkeys(recipes) if r != base.recipe]
    recipe_cells = [(r, f, a) for r in (base.recipe, *others) for f, a in RECIPE_CELLS] if others else []
    extra = [c for c in recipe_cells if c[0] != base.recipe or (c[1], c[2]) not in cells]
    total = len(folds) * (len(cells) + len(extra) + 1)
    folders: dict[tuple[str, int], Path] = {}
    by_recipe: dict[tuple[str, int], Path] = {}
    done = 0
    for fold in folds:
        for recipe, features, approach in [(base.recipe, f, a) for f, a in cells] + extra:
            done += 1
            label = (cell_label(features, approach, approaches) if recipe == base.recipe
                     and (features, approach) in cells else recipe_label(recipe, features))
            print(f"[grid {done}/{total}] fold {fold}: {label}"
                  + (f" ({recipe})" if recipe == base.recipe else ""), flush=True)
            run = run_cell(base, out, fold, features, approach, recipe)
            harness.evaluate_run(run, split_name)
            folder = harness.evaluation_folder(run, split_name, True)
            if recipe == base.recipe and (features, approach) in cells:
                folders[(label, fold)] = folder
            if (recipe, features, approach) in recipe_cells:
                by_recipe[(recipe_label(recipe, features), fold)] = folder
        done += 1
        print(f"[grid {done}/{total}] fold {fold}: Popularity, EASE, EDLAE"
              + "".join(f", {knn_label(f)}" for f in content), flush=True)
        for name, folder in baseline_folders(base, out, fold, content).items():
            folders[(name, fold)] = folder
            by_recipe[(name, fold)] = folder
    records = collect(folders)
    written = {}
    tables = [("table2", table2(records, approach=approaches[0]))]
    if len(approaches) > 1 and feature_sets:
        tables.append(("table1", table1(records, [f for f in feature_sets
                                                   if any(c[0] == f for c in cells)])))
    # The claim a user checks first: does the VAE beat the closed-form baseline, fold by fold?
    against_ease = collect(folders, reference="EASE", over_movies=False)  # its tables: all clicks
    knns = [knn_label(f) for f in content]
    models = [label for label in dict.fromkeys(label for label, _ in folders)
              if label not in (*BASELINES, *knns)]
    everything = [*models, *knns, *BASELINES]
    tables.append(("table_vs_ease", results_table(
        overall(against_ease), everything, reference="EASE",
        title=f"Test users, each model against EASE ({base.recipe} recipe)")))
    # Where movie features can count: rare movies, new movies, light users.
    tables.append(("table_content", content_table(records, everything)))
    for features in content:  # the hybrids on one feature set against content alone
        reference = knn_label(features)
        own = [m for m in models if m == STANDARD_VAE or m.startswith(model_label(features) + " ")
               or m == model_label(features)]
        tables.append((f"table_vs_knn_{features}", content_table(
            collect(folders, reference=reference), [*own, reference], reference=reference,
            title=f"Where content matters: Eval 2 on test users, against {reference}")))
    if others:
        tables.append(("table_recipes", recipe_table(collect(by_recipe, reference="EASE", over_movies=False),
                                                     [base.recipe, *others])))
    for stem, table in tables:
        md, csv = table.write(out / stem)
        written[stem] = md
        print(md.read_text())
    write_atomic(out / "records.json", json.dumps([dataclasses.asdict(r) for r in records], indent=1))
    return written
