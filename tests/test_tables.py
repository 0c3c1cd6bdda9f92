"""Paper-shaped tables from a small hand-built list of result records."""

import csv
import statistics

import pytest

from hvae_tf.evaluation.tables import Result, model_label, results_table, table1, table2

GENRE = model_label("genre", 1)


def records():
    rows = []
    for fold, (vae, genre, ease) in enumerate([(0.40, 0.43, 0.45), (0.41, 0.44, 0.46), (0.42, 0.48, 0.44)]):
        rows += [Result("Standard-VAE", "Eval 2", fold, "ndcg@100", vae),
                 Result(GENRE, "Eval 2", fold, "ndcg@100", genre, p_t=0.001 * (fold + 1), p_w=0.002),
                 Result("EASE", "Eval 2", fold, "ndcg@100", ease),
                 Result("Standard-VAE", "Eval 1", fold, "recall@20", vae + 0.1)]
    return rows


def test_cells_are_mean_and_sample_std_over_folds():
    markdown = table2(records()).markdown()
    values = [0.43, 0.44, 0.48]
    want = f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"
    row = next(line for line in markdown.splitlines() if line.startswith("| Eval 2 NDCG@100"))
    assert want in row


def test_columns_follow_the_paper_order_and_skip_missing_models():
    table = table2(records())
    assert table.columns == ["Standard-VAE", "H-VAE genre", "EASE"]  # no random, genome, IMDb, Popularity
    assert table.measures == ["Eval 1 Recall@20", "Eval 2 NDCG@100"]
    assert "genome" not in table.markdown()


def test_p_values_take_the_largest_fold_and_mark_significant_cells():
    table = table2(records())
    markdown = table.markdown(alpha=0.05)
    assert "0.003 / 0.002" in markdown  # largest p_t over folds 0.001, 0.002, 0.003
    assert "*" in markdown.split("p-values")[0].split("| Eval 2 NDCG@100")[1].splitlines()[0]
    assert "*" not in table.markdown(alpha=0.001).split("p-values")[0].split("| Eval 2 NDCG@100")[1]


def test_csv_holds_the_numbers(tmp_path):
    md, csv_path = table2(records()).write(tmp_path / "table2")
    assert md.read_text().startswith("**Table 2")
    rows = {r["measure"]: r for r in csv.DictReader(csv_path.open())}
    assert float(rows["Eval 2 NDCG@100"]["EASE"]) == pytest.approx(statistics.mean([0.45, 0.46, 0.44]))
    assert float(rows["Eval 2 NDCG@100"]["EASE std"]) == pytest.approx(statistics.stdev([0.45, 0.46, 0.44]))
    assert rows["Eval 2 NDCG@100"]["H-VAE genre p_t"] == repr(0.003)
    assert rows["Eval 1 Recall@20"]["EASE folds"] == "0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table2.csv", "table2.md"]


def test_table1_sets_approach_1_beside_approach_2():
    rows = [Result(model_label(f, a), "Eval 2", 0, "ndcg@100", 0.1 * a) for f in ("imdb", "genre") for a in (2, 1)]
    table = table1(rows)
    assert table.columns == ["H-VAE genre (approach 1)", "H-VAE genre (approach 2)",
                             "H-VAE IMDb (approach 1)", "H-VAE IMDb (approach 2)"]
    assert table.cells[("Eval 2 NDCG@100", "H-VAE IMDb (approach 2)")].values == (0.2,)


def test_table2_picks_the_requested_approach():
    rows = [Result(model_label("genre", a), "Eval 2", 0, "ndcg@100", 0.1 * a) for a in (1, 2)]
    assert table2(rows, approach=2).cells[("Eval 2 NDCG@100", "H-VAE genre")].values == (0.2,)


def test_a_run_recorded_twice_is_an_error():
    rows = records() + [Result("EASE", "Eval 2", 0, "ndcg@100", 0.5)]
    with pytest.raises(ValueError, match="'EASE' Eval 2 NDCG@100 fold 0"):
        results_table(rows)
