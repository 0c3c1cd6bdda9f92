"""The paper's tables from result records: Table 2 (models x measures) and Table 1 (approach 1 vs 2).

A record is one number: a model's metric under one evaluation scheme on one fold, optionally with
the p-values of the paired tests against the reference model (Standard-VAE) on that fold. A cell is
"mean ± std" over the folds present (sample std); a model with no records gets no column, so the
same code makes the ml-1m table (no genome) and the ML-20M one. Files: Markdown for reading, CSV
with the numbers in separate columns for reuse; both written atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from hvae_tf.config import FEATURE_LABELS, HYBRID_FEATURES, PAPER_FEATURES, SCHEMES
from hvae_tf.io import write_atomic

METRICS = ("ndcg@100", "recall@20", "recall@50")
STANDARD_VAE = "Standard-VAE"
BASELINES = ("Popularity", "EASE", "EDLAE")
_METRIC_NAMES = {"ndcg": "NDCG", "recall": "Recall"}
# Row labels of the segment metrics (hvae_tf.evaluation.segments), in the order rows are shown.
SEGMENT_LABELS = {"head": "head movies", "torso": "torso movies", "tail": "tail movies",
                  "new": "new movies", "new-vs-new": "new movies among new",
                  "light-users": "light users"}


def model_label(features: str, approach: int | str | None = None) -> str:
    """The column name of a run: "Standard-VAE", "H-VAE IMDb", "H-VAE IMDb (approach 2)" or
    "H-VAE IMDb (shared)" (the sharing hybrid)."""
    if features == "none":
        return STANDARD_VAE
    label = f"H-VAE {FEATURE_LABELS.get(features, features)}"
    if approach is None:
        return label
    return f"{label} (shared)" if approach == "shared" else f"{label} (approach {approach})"


def knn_label(features: str) -> str:
    """The content kNN baseline's column: "Content kNN genre"."""
    return f"Content kNN {FEATURE_LABELS.get(features, features)}"


@dataclasses.dataclass(frozen=True)
class Result:
    """One number of the grid; p_t / p_w: paired t-test / Wilcoxon against the reference model;
    p_movies (movie segments): the two-way bootstrap over users and movies."""

    model: str
    scheme: str  # "Eval 1" or "Eval 2"
    fold: int
    metric: str  # as score_users names it: "ndcg@100", "recall@20"
    value: float
    p_t: float | None = None
    p_w: float | None = None
    p_movies: float | None = None

    @property
    def segment(self) -> str:
        """The segment the metric is restricted to ("tail", "new", ...), "" for all clicks."""
        return self.metric.rpartition(":")[0]

    @property
    def measure(self) -> str:
        """The row label: "Eval 2 NDCG@100", "Eval 2 tail movies Recall@50"."""
        name, _, k = self.metric.rpartition(":")[2].partition("@")
        segment = f" {SEGMENT_LABELS.get(self.segment, self.segment)}" if self.segment else ""
        return f"{self.scheme}{segment} {_METRIC_NAMES.get(name, name)}{'@' + k if k else ''}"


@dataclasses.dataclass(frozen=True)
class Cell:
    """One model's measure over the folds."""

    values: tuple[float, ...]
    p_t: tuple[float, ...] = ()
    p_w: tuple[float, ...] = ()
    p_movies: tuple[float, ...] = ()

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else math.nan

    def significant(self, alpha: float) -> bool:
        """Both tests below alpha in every fold."""
        return (len(self.p_t) == len(self.p_w) == len(self.values)
                and max(self.p_t) < alpha and max(self.p_w) < alpha)

    def significant_over_movies(self, alpha: float) -> bool:
        """The two-way bootstrap below alpha in every fold as well."""
        return len(self.p_movies) == len(self.values) and max(self.p_movies) < alpha


@dataclasses.dataclass
class Table:
    """Rows are measures, columns models (by header); cells keyed by (measure, header)."""

    title: str
    measures: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Cell]
    reference: str | None = None

    @property
    def folds(self) -> int:
        return max((len(c.values) for c in self.cells.values()), default=0)

    def _has_p(self, column: str) -> bool:
        return any(cell.p_t or cell.p_w for (_, c), cell in self.cells.items() if c == column)

    def _has_p_movies(self, column: str) -> bool:
        return any(cell.p_movies for (_, c), cell in self.cells.items() if c == column)

    def markdown(self, alpha: float = 0.05) -> str:
        """The table as Markdown; "*" marks cells different from the reference in every fold, "**"
        those where the two-way bootstrap over users and movies agrees."""
        p_columns = [c for c in self.columns if self._has_p(c)]
        note = f"mean ± std over {self.folds} fold{'s' * (self.folds != 1)}"
        if p_columns:
            note += (f"; * = p < {alpha:g} against {self.reference or 'the reference'} in every fold, "
                     "paired t-test and Wilcoxon signed-rank test")
        if any(self._has_p_movies(c) for c in p_columns):
            note += "; ** = and the two-way bootstrap over users and movies too"
        lines = [f"**{self.title}** ({note})", ""]
        lines += _markdown_grid(self.measures, self.columns,
                                lambda m, c: self._cell_text(m, c, alpha))
        if p_columns:
            over_movies = " / two-way bootstrap" if any(self._has_p_movies(c) for c in p_columns) else ""
            lines += ["", f"p-values against {self.reference or 'the reference'} "
                      f"(paired t-test / Wilcoxon{over_movies}; the largest over the folds)", ""]
            lines += _markdown_grid(self.measures, p_columns, self._p_text)
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        """One row per measure; per model its mean, std, folds and (where given) largest p-values."""
        p_columns = {c for c in self.columns if self._has_p(c)}
        movie_columns = {c for c in p_columns if self._has_p_movies(c)}
        header = ["measure"]
        for c in self.columns:
            header += [c, f"{c} std", f"{c} folds"] + ([f"{c} p_t", f"{c} p_w"] if c in p_columns else [])
            header += [f"{c} p_movies"] if c in movie_columns else []
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for m in self.measures:
            row = [m]
            for c in self.columns:
                cell = self.cells.get((m, c))
                row += ["", "", 0] if cell is None else [_number(cell.mean), _number(cell.std), len(cell.values)]
                if c in p_columns:
                    row += [_number(max(cell.p_t)) if cell and cell.p_t else "",
                            _number(max(cell.p_w)) if cell and cell.p_w else ""]
                if c in movie_columns:
                    row += [_number(max(cell.p_movies)) if cell and cell.p_movies else ""]
            writer.writerow(row)
        return out.getvalue()

    def write(self, stem, alpha: float = 0.05) -> tuple[Path, Path]:
        """Write `stem`.md and `stem`.csv (each atomically); returns their paths."""
        stem = Path(stem)
        md, csv_path = stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".csv")
        write_atomic(md, self.markdown(alpha))
        write_atomic(csv_path, self.csv())
        return md, csv_path

    def _cell_text(self, measure: str, column: str, alpha: float) -> str:
        cell = self.cells.get((measure, column))
        if cell is None:
            return "–"
        text = f"{cell.mean:.4f}" if len(cell.values) == 1 else f"{cell.mean:.4f} ± {cell.std:.4f}"
        if len(cell.values) < self.folds:
            text += f" ({len(cell.values)} fold{'s' * (len(cell.values) != 1)})"
        if cell.significant(alpha):
            text += " **" if cell.significant_over_movies(alpha) else " *"
        return text

    def _p_text(self, measure: str, column: str) -> str:
        cell = self.cells.get((measure, column))
        if cell is None or not (cell.p_t or cell.p_w):
            return "–"
        tests = (cell.p_t, cell.p_w) + ((cell.p_movies,) if cell.p_movies else ())
        return " / ".join(f"{max(p):.2g}" if p else "–" for p in tests)


def results_table(
    records: Iterable[Result],
    models: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
    title: str = "Results",
    reference: str | None = STANDARD_VAE,
) -> Table:
    """A table of `models` (in that order, those with records; None: all, in order of appearance).

    `headers` renames model labels to column headers. Rows: Eval 1 then Eval 2, NDCG@100,
    Recall@20, Recall@50 first, then any other measures in order of appearance.
    """
    records = list(records)
    seen: dict[tuple, Result] = {}
    for r in records:
        if not isinstance(r, Result):
            raise TypeError(f"expected Result records, got {type(r).__name__}: {r!r}")
        key = (r.model, r.scheme, r.fold, r.metric)
        if key in seen:
            raise ValueError(f"two results for {r.model!r} {r.measure} fold {r.fold} "
                             f"({seen[key].value} and {r.value}): each run must be recorded once")
        seen[key] = r
    present = list(dict.fromkeys(r.model for r in records))
    chosen = present if models is None else [m for m in models if m in present]
    headers = {m: (headers or {}).get(m, m) for m in chosen}
    if len(set(headers.values())) != len(headers):
        raise ValueError(f"two models share a column header: {headers}")

    paper_order = [Result("", s, 0, f"{g}:{m}" if g else m, 0.0).measure
                   for s in SCHEMES for g in ("", *SEGMENT_LABELS) for m in METRICS]
    measures = list(dict.fromkeys(r.measure for r in records if r.model in headers))
    measures = [m for m in paper_order if m in measures] + [m for m in measures if m not in paper_order]
    cells = {}
    for model in chosen:
        for measure in measures:
            rows = sorted((r for r in records if r.model == model and r.measure == measure),
                          key=lambda r: r.fold)
            if rows:
                cells[(measure, headers[model])] = Cell(
                    tuple(float(r.value) for r in rows),
                    tuple(float(r.p_t) for r in rows if r.p_t is not None),
                    tuple(float(r.p_w) for r in rows if r.p_w is not None),
                    tuple(float(r.p_movies) for r in rows if r.p_movies is not None))
    return Table(title, measures, list(headers.values()), cells, reference)


def overall(records: Iterable[Result]) -> list[Result]:
    """The records over all held-out clicks (the paper's measures), without segment metrics."""
    return [r for r in records if not r.segment]


def content_table(records: Iterable[Result], models: Sequence[str], reference: str = STANDARD_VAE,
                  title: str = "Where content matters: Eval 2 on test users") -> Table:
    """Eval 2 overall and on each segment (tail movies, new movies, light users), `models` side by
    side, p-values against `reference` (records from `collect(..., reference=reference)`)."""
    return results_table([r for r in records if r.scheme == "Eval 2"], models, reference=reference,
                         title=title)


def table2(records: Iterable[Result], approach: int = 1) -> Table:
    """Paper's Table 2: Standard-VAE, H-VAE random/genre/genome/IMDb, then the baselines.

    The H-VAE columns are the runs labelled model_label(features, approach), or model_label(features)
    when the grid ran one approach only.
    """
    records = overall(records)
    labels = {r.model for r in records}
    models, headers = [STANDARD_VAE], {}
    for features in PAPER_FEATURES:
        with_approach = model_label(features, approach)
        label = with_approach if with_approach in labels else model_label(features)
        models.append(label)
        headers[label] = model_label(features)
    models += list(BASELINES)
    return results_table(records, models, headers,
                         title=f"Table 2: test users, H-VAE approach {approach}")


def recipe_table(records: Iterable[Result], recipes: Sequence[str]) -> Table:
    """Each recipe's Standard-VAE and H-VAE (genre) side by side, then the baselines; p-values
    against EASE (records from `collect(..., reference="EASE")`)."""
    models = [f"{model_label(f)} ({r})" for r in recipes for f in ("none", "genre")]
    return results_table(overall(records), [*models, *BASELINES], reference="EASE",
                         title="Recipes: test users, against EASE")


def table1(records: Iterable[Result], feature_sets: Sequence[str] = HYBRID_FEATURES) -> Table:
    """Paper's Table 1: approach 1 (flattened embeddings) next to approach 2 (collapsed), per feature set."""
    models = [model_label(f, a) for f in feature_sets for a in (1, 2)]
    return results_table(overall(records), models, title="Table 1: H-VAE approach 1 vs approach 2")


def _markdown_grid(rows: Sequence[str], columns: Sequence[str], text) -> list[str]:
    lines = ["| measure | " + " | ".join(columns) + " |", "|---" + "|---:" * len(columns) + "|"]
    lines += ["| " + " | ".join([r] + [text(r, c) for c in columns]) + " |" for r in rows]
    return lines


def _number(value: float) -> str:
    return "" if value is None or math.isnan(value) else repr(float(value))
