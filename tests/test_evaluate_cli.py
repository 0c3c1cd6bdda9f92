"""evaluate.py as users run it: a fresh process on tiny finished train.py runs.

Each test checks what a subcommand writes and prints against the same numbers worked out here,
in this process, from the run folder and the saved per-user vectors.
"""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, small_run_argv, train_small_run

pytestmark = pytest.mark.slow  # each test starts evaluate.py, and with it TensorFlow, afresh

TIMEOUT_S = 300
SCHEMES = ("Eval 1", "Eval 2")
METRICS = ("ndcg@100", "recall@20", "recall@50")
# The evaluation folder's layout: one per-user file per scheme beside summary.json.
SCHEME_FILES = {"Eval 1": "eval1.npz", "Eval 2": "eval2.npz"}
# The paper's row labels of Table 2, in its order.
MEASURES = {(s, m): f"{s} {label}" for s in SCHEMES
            for m, label in zip(METRICS, ("NDCG@100", "Recall@20", "Recall@50"))}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# `compare` prints one line per scheme and metric; the sign of the difference is not checked here.
COMPARE_LINE = re.compile(
    r"^(?P<scheme>Eval \d) (?P<metric>\S+): mean difference \(second - first\) "
    r"(?P<difference>[+-]\d+\.\d{4}) over (?P<users>[\d,]+) users; "
    r"paired t p=(?P<p_t>[^\s;]+), Wilcoxon p=(?P<p_w>[^\s;]+)"
    r"(; over users and (?P<movies>[\d,]+) movies \(two-way bootstrap\) p=(?P<p_movies>\S+), "
    r"95% interval \[(?P<low>\S+), (?P<high>\S+)\])?$")
MEAN_STD = re.compile(r"^(\d+\.\d{4}) ± (\d+\.\d{4})( \*)?$")


def evaluate(*args, cwd: Path, timeout: float = TIMEOUT_S) -> str:
    """Run evaluate.py in a fresh process; its stdout once it has exited 0."""
    done = subprocess.run([sys.executable, str(REPO / "evaluate.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, (f"evaluate.py {' '.join(map(str, args))} exited {done.returncode}\n"
                                  f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def copy_of(run: Path, tmp_path: Path, name: str = "run") -> Path:
    """evaluate.py writes into the run folder: work on a copy so the shared run stays as trained."""
    return Path(shutil.copytree(run, tmp_path / name))


@pytest.fixture(scope="module")
def standard_run(tmp_path_factory, generated_data_dir) -> Path:
    """A Standard-VAE on the same fold as tiny_run: a different model scoring the same users."""
    return train_small_run(generated_data_dir, tmp_path_factory.mktemp("standard-run"),
                           "--features", "none")


def test_run_writes_the_means_and_per_user_vectors_of_scoring_the_run_directly(tiny_run, tmp_path):
    """`evaluate.py RUN` must score the best weights on the run's own test users, masked as the
    paper's Eval 2 is: the same numbers as calling the scoring functions on the loaded run."""
    from hvae_tf.evaluation import segments
    from hvae_tf.evaluation.schemes import evaluate_scheme
    from hvae_tf.evaluation.significance import load_per_user
    from hvae_tf.metrics.ranking import summarize
    from hvae_tf.training.restore import load_run

    run_dir = copy_of(tiny_run, tmp_path)
    printed = evaluate(run_dir, cwd=tmp_path)
    folder = run_dir / "eval" / "test"
    summary = json.loads((folder / "summary.json").read_text())
    run = load_run(run_dir)
    assert (summary["model"], summary["fold"], summary["masked"]) == (
        run.config.model_name, run.config.fold, True)
    assert sorted(summary["schemes"]) == list(SCHEMES)
    for scheme in SCHEMES:
        per_user = evaluate_scheme(run.model.scores, run.split.test, scheme,
                                   segments=segments.for_split(run.split, run.split.test, "test"))
        expected, written = summarize(per_user), summary["schemes"][scheme]
        assert written.keys() == expected.keys(), scheme
        assert (written["users"], written["users_excluded"]) == (
            expected["users"], expected["users_excluded"]), scheme
        assert written["users"] > 0
        for metric in METRICS:
            assert written[metric] == pytest.approx(expected[metric], abs=1e-6), (scheme, metric)
        saved = load_per_user(folder / SCHEME_FILES[scheme])
        np.testing.assert_array_equal(saved.user_ids, run.split.test.user_ids)
        assert saved.metrics.keys() == per_user.keys() and saved.metadata["scheme"] == scheme
        for metric, values in per_user.items():
            np.testing.assert_allclose(saved.metrics[metric], values, atol=1e-6, err_msg=metric)
        line = next((line for line in printed.splitlines() if line.strip().startswith(f"{scheme}:")), "")
        for metric in METRICS:
            assert f"{metric}={written[metric]:.4f}" in line, printed


def test_compare_prints_a_difference_and_p_values_per_scheme_and_metric(tiny_run, standard_run,
                                                                       tmp_path):
    """`evaluate.py compare A B` pairs the two runs' users: the printed difference is the gap
    between their means and the p-values are the paired tests of their saved per-user vectors."""
    from hvae_tf.evaluation.significance import load_per_user, paired_tests

    first, second = copy_of(tiny_run, tmp_path, "first"), copy_of(standard_run, tmp_path, "second")
    printed = evaluate("compare", first, second, cwd=tmp_path)
    lines = {}
    for line in printed.splitlines():
        match = COMPARE_LINE.match(line)
        if match:
            lines[(match["scheme"], match["metric"])] = match
    segment_lines = {key for key in lines if ":" in key[1]}
    assert {("Eval 2", "tail:recall@50"), ("Eval 2", "light-users:ndcg@100")} <= segment_lines, printed
    assert all(scheme == "Eval 2" for scheme, _ in segment_lines)  # Eval 1's targets are its inputs
    # The movie segments add the bootstrap over users and movies; the others and all clicks do not.
    assert {key for key, m in lines.items() if m["p_movies"]} == {
        key for key in segment_lines if key[1].split(":")[0] in ("tail", "new", "new-vs-new")}
    tail = lines[("Eval 2", "tail:recall@50")]
    assert float(tail["low"]) <= float(tail["difference"]) <= float(tail["high"]), tail.group(0)
    lines = {key: match for key, match in lines.items() if key not in segment_lines}
    assert sorted(lines) == sorted(MEASURES), printed
    summaries = [json.loads((r / "eval" / "test" / "summary.json").read_text())["schemes"]
                 for r in (first, second)]
    for (scheme, metric), match in lines.items():
        means = [s[scheme][metric] for s in summaries]
        # Printed to 4 decimals; only the size is checked, not the sign.
        assert abs(float(match["difference"])) == pytest.approx(abs(means[1] - means[0]), abs=6e-5)
        assert int(match["users"].replace(",", "")) == summaries[0][scheme]["users"]
        p_t, p_w = float(match["p_t"]), float(match["p_w"])
        assert 0 <= p_t <= 1 and 0 <= p_w <= 1, match.group(0)
        a, b = (load_per_user(r / "eval" / "test" / SCHEME_FILES[scheme]) for r in (first, second))
        test = paired_tests(a.metrics[metric], b.metrics[metric])
        assert (match["p_t"], match["p_w"]) == (f"{test.p_t:.3g}", f"{test.p_w:.3g}"), match.group(0)
    assert any(float(m["difference"]) != 0 for m in lines.values()), "two different models tie"
    # An evaluation folder (as a grid keeps for its baselines) compares as its run does.
    assert evaluate("compare", first / "eval" / "test", second, cwd=tmp_path) == printed


def test_grid_over_two_folds_writes_table2_with_mean_and_std_of_each_model(generated_data_dir,
                                                                           tmp_path):
    """`evaluate.py grid` on one feature set and approach: Standard-VAE, H-VAE random, Popularity,
    EASE and EDLAE on folds 0 and 1; Table 2's cells are mean ± std over the folds of the
    evaluations."""
    from hvae_tf.config import parse_args

    out = tmp_path / "grid"
    flags = small_run_argv(generated_data_dir)
    printed = evaluate("grid", "--out", out, "--folds", "0", "1", "--feature-sets", "random",
                       "--approaches", "1", *flags, cwd=tmp_path, timeout=600)
    assert (out / "table2.md").is_file() and (out / "table2.csv").is_file()
    assert not (out / "table1.md").exists()  # approach 1 vs 2 needs both approaches

    models = ("Standard-VAE", "H-VAE random", "Popularity", "EASE", "EDLAE")
    records = json.loads((out / "records.json").read_text())
    plain = [r for r in records if ":" not in r["metric"]]  # the segment metrics come beside them
    assert len(plain) == len(models) * 2 * len(MEASURES)
    assert {(r["model"], r["fold"], r["scheme"], r["metric"]) for r in plain} == {
        (m, f, s, metric) for m in models for f in (0, 1) for s, metric in MEASURES}
    assert {r["metric"] for r in records} > {r["metric"] for r in plain}
    # Each record is the mean its evaluation folder's summary holds.
    folders = {(m, f): out / "baselines" / f"fold{f}" / m for m in models[2:] for f in (0, 1)}
    for label, features in (("Standard-VAE", "none"), ("H-VAE random", "random")):
        for fold in (0, 1):
            name = parse_args([*flags, "--fold", str(fold), "--features", features]).model_name
            folders[(label, fold)] = out / "runs" / name / "eval" / "test"
    for r in records:
        summary = json.loads((folders[(r["model"], r["fold"])] / "summary.json").read_text())
        assert r["value"] == pytest.approx(summary["schemes"][r["scheme"]][r["metric"]], abs=1e-9), r
        if r["model"] == "Standard-VAE":
            assert r["p_t"] is None and r["p_w"] is None
        elif r in plain:  # a segment too small to test has no p-values
            assert 0 <= r["p_t"] <= 1 and 0 <= r["p_w"] <= 1, r
        over_movies = r["metric"].startswith("tail:") and r["p_t"] is not None
        assert (r["p_movies"] is not None) == over_movies, r  # only the movie segments have it
        assert r["p_movies"] is None or 0 < r["p_movies"] <= 1, r
    folds_differ = [np.std([r["value"] for r in records if (r["model"], r["scheme"], r["metric"])
                            == (m, s, metric)]) > 0 for m in models for s, metric in MEASURES]
    assert any(folds_differ), "folds 0 and 1 gave identical numbers: are they the same split?"

    with open(out / "table2.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["measure"] for row in rows] == list(MEASURES.values())
    for row in rows:
        for model in models:
            values = [r["value"] for r in plain
                      if r["model"] == model and MEASURES[(r["scheme"], r["metric"])] == row["measure"]]
            assert row[f"{model} folds"] == "2"
            assert float(row[model]) == pytest.approx(np.mean(values), abs=1e-9), (row["measure"], model)
            assert float(row[f"{model} std"]) == pytest.approx(np.std(values, ddof=1), abs=1e-9)

    markdown = (out / "table2.md").read_text()
    assert markdown in printed
    values_table, p_table = markdown_tables(markdown)  # the cells, then the p-values
    assert values_table[0] == ["measure", *models]
    assert p_table[0] == ["measure", *models[1:]]  # against Standard-VAE: no p-values of its own
    values, p_values = ({cells[0]: cells[1:] for cells in t[2:]} for t in (values_table, p_table))
    for row in rows:
        for model, cell in zip(models, values[row["measure"]], strict=True):
            match = MEAN_STD.match(cell)
            assert match, f"{row['measure']} / {model}: {cell!r} is not 'mean ± std'"
            assert match[1] == f"{float(row[model]):.4f}" and match[2] == f"{float(row[f'{model} std']):.4f}"
        for model, cell in zip(models[1:], p_values[row["measure"]], strict=True):
            assert cell == f"{float(row[f'{model} p_t']):.2g} / {float(row[f'{model} p_w']):.2g}"


def test_grid_of_recipes_tests_every_model_against_ease(generated_data_dir, tmp_path):
    """No H-VAE feature sets and a second recipe: the Standard-VAE and the baselines, a table
    against EASE whose p-values are the paired tests of the per-user files, and a recipe table."""
    from hvae_tf.evaluation import harness
    from hvae_tf.evaluation.significance import compare, load_per_user

    out = tmp_path / "grid"
    flags = small_run_argv(generated_data_dir, epochs=1)
    evaluate("grid", "--out", out, "--folds", "0", "--feature-sets", "--approaches", "1",
             "--recipes", "recvae", *flags, cwd=tmp_path, timeout=600)
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == 4 and sum("recvae" in r for r in runs) == 2  # each recipe: none and genre
    values, p_values = markdown_tables((out / "table_vs_ease.md").read_text())
    assert values[0] == ["measure", "Standard-VAE", "Popularity", "EASE", "EDLAE"]
    assert p_values[0] == ["measure", "Standard-VAE", "Popularity", "EDLAE"]
    standard = next(r for r in runs if "-vae-mult-vae" in r)
    mine = load_per_user(harness.scheme_file(out / "runs" / standard / "eval" / "test", "Eval 2"))
    ease = load_per_user(harness.scheme_file(out / "baselines" / "fold0" / "EASE", "Eval 2"))
    test = compare(mine, ease, "ndcg@100")
    row = next(r for r in p_values if r[0] == "Eval 2 NDCG@100")
    assert row[1] == f"{test.p_t:.2g} / {test.p_w:.2g}"
    recipes, _ = markdown_tables((out / "table_recipes.md").read_text())
    assert recipes[0] == ["measure", "Standard-VAE (mult-vae)", "H-VAE genre (mult-vae)",
                          "Standard-VAE (recvae)", "H-VAE genre (recvae)", "Popularity", "EASE", "EDLAE"]


def markdown_tables(text: str) -> list[list[list[str]]]:
    """The Markdown tables in `text`, each as rows of stripped cell texts."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        else:
            current = None
    return tables


def test_plots_of_an_hvae_run_writes_png_figures_and_numbers(tiny_run, tmp_path):
    """`evaluate.py plots RUN` on an H-VAE run draws the user clusters, the genre movie space,
    the movie embeddings before and after training and the curves, and saves the numbers shown."""
    from hvae_tf.training.restore import load_run

    run_dir = copy_of(tiny_run, tmp_path)
    printed = evaluate("plots", run_dir, cwd=tmp_path)
    plots = run_dir / "plots"
    figures = {p.name: p.read_bytes() for p in plots.glob("*.png")}
    assert sorted(figures) == sorted(["user_clusters.png", "movie_clusters.png",
                                      "embeddings_before_after.png", "training_curves.png"])
    for name, data in figures.items():
        assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", name
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width > 0 and height > 0 and len(data) > 1000, name  # a drawn figure, not a stub

    numbers = json.loads((plots / "numbers.json").read_text())
    assert json.loads(printed[printed.index("{"):]) == numbers
    assert -1 <= numbers["genre_movie_vae_ami"] <= 1
    assert numbers["embedding_shift"]["trainable"] is False
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["features"], config["approach"]) == ("genre", 1)
    # The projector's movie list is the run's catalogue, one row per movie column.
    metadata = (run_dir / "logs" / "movie_embeddings" / "metadata.tsv").read_text().splitlines()
    assert metadata[0] == "title\tgenres" and len(metadata) - 1 == load_run(run_dir).split.n_movies
