"""The benchmarks under bench/ work: each script runs at a tiny scale on the CPU, in a subprocess as
users run it, and the pieces they rest on (the synthetic clicks, the naive models, the densify
check) do what the benchmarks' conclusions assume."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))

import synthetic_clicks  # noqa: E402  (bench/ is a folder of scripts, put on the path above)

NUMBER = r"[\d,.]+"


def run_script(name: str, *args: str) -> str:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, str(BENCH / name), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def users_per_second(output: str, label: str) -> list[float]:
    """Every users/s figure printed on lines that start with `label`."""
    pattern = rf"^\s*{re.escape(label)}(?!\w).*?({NUMBER}) users/s"
    return [float(m.replace(",", "")) for m in re.findall(pattern, output, flags=re.MULTILINE)]


def test_gpu_check_small_runs_every_section_on_cpu():
    out = run_script("gpu_check.py", "--small")
    for section in ("== float32", "== mixed_bfloat16", "== MirroredStrategy", "== large batch",
                    "== sharing hybrid, credits-like content", "== op determinism"):
        assert section in out
    assert "0 section(s) failed" in out
    assert re.search(r"evaluation of 10,000 users: [\d.]+ s \(target < 0.5 s: (met|MISSED)\)", out)
    assert re.search(r"ML-20M-scale epoch .*: [\d.]+ s \(target < 2.0 s: (met|MISSED)\)", out)
    for kind in ("standard", "hvae1", "hvae2", "naive-hvae1", "shared", "shared-dense"):
        speeds = users_per_second(out, kind)
        assert speeds and all(s > 0 for s in speeds), kind
    assert "(1 replica)" in out and "strategy mirrored" in out
    assert "step breakdown" in out and "First layer alone" in out
    assert re.search(r"H-VAE approach 1 step / Standard-VAE step: [\d.]+ \(CPU time [\d.]+\) \(target <= 1.25", out)
    assert out.count("a deterministic step runs") + out.count("Error:") == 3


def test_bench_eval_small_reports_every_stage():
    out = run_script("bench_eval.py", "--users", "300", "--movies", "200", "--hidden", "16", "--latent", "4",
                     "--batch-size", "100", "--models", "standard", "hvae2")
    for stage in ("scores (eager)", "scores (tf.function)", "+ top-100, masked", "score_users"):
        speeds = users_per_second(out, stage)
        assert len(speeds) == 2 and all(s > 0 for s in speeds), stage


@pytest.mark.parametrize("movies, one_level", [("13000", False), ("500", True)])
def test_bench_top_k_compares_the_package_with_tf_top_k(movies, one_level):
    out = run_script("bench_top_k.py", "--users", "20", "--movies", movies, "--rounds", "2")
    assert ("here it makes the one tf.math.top_k call" in out) == one_level
    assert len(re.findall(rf"package / reference: best {NUMBER}, median {NUMBER}", out)) == 2


def test_bench_memory_small_measures_both_processes():
    out = run_script("bench_memory.py", "--users", "1500", "--movies", "200", "--eval-users", "150",
                     "--steps", "3", "--batch", "100", "--hidden", "16", "--latent", "4")
    peaks = [float(x) for x in re.findall(r"^(?:train|evaluate): peak RSS ([\d.]+) GB", out, flags=re.MULTILINE)]
    assert len(peaks) == 2 and all(0.1 < p < 6 for p in peaks)
    assert "training peak < 6 GB: met" in out


def test_synthetic_clicks_have_the_liang_shape():
    n_users, n_movies = 3000, 900
    m = synthetic_clicks.liang_like_clicks(n_users, n_movies, mean_clicks=40, seed=3)
    counts = np.diff(m.indptr)
    assert m.shape == (n_users, n_movies) and m.has_sorted_indices
    assert counts.min() >= synthetic_clicks.MIN_CLICKS and counts.max() <= n_movies // 3
    assert 30 < counts.mean() < 50 and np.median(counts) < counts.mean()  # long-tailed activity
    for row in range(0, n_users, 97):  # distinct movies per user
        cols = m.indices[m.indptr[row] : m.indptr[row + 1]]
        assert len(np.unique(cols)) == len(cols)
    popularity = np.sort(np.bincount(m.indices, minlength=n_movies))[::-1]
    assert popularity[:10].sum() > 5 * popularity[-10:].sum()  # long-tailed popularity
    again = synthetic_clicks.liang_like_clicks(n_users, n_movies, mean_clicks=40, seed=3)
    assert (again != m).nnz == 0
    assert (synthetic_clicks.liang_like_clicks(n_users, n_movies, mean_clicks=40, seed=4) != m).nnz > 0


def test_fold_in_split_partitions_the_clicks():
    m = synthetic_clicks.liang_like_clicks(500, 300, mean_clicks=30, seed=1)
    fold_in, held_out = synthetic_clicks.fold_in_split(m, held_out=0.2, seed=2)
    assert (fold_in + held_out != m).nnz == 0 and fold_in.multiply(held_out).nnz == 0
    assert 0.15 < held_out.nnz / m.nnz < 0.25


def test_synthetic_clicks_reject_impossible_sizes():
    with pytest.raises(ValueError, match="n_movies >= 15"):
        synthetic_clicks.liang_like_clicks(10, 10)


def test_densify_verdict_flags_growth_as_large_as_the_dense_matrix():
    import bench_memory

    users, movies = 100_000, 20_000  # 2 GB at one byte a cell
    assert bench_memory.densify_verdict(int(1.5e9), users, movies, 1)[1]
    message, ok = bench_memory.densify_verdict(int(2.5e9), users, movies, 1)
    assert not ok and "FAILED" in message
    message, ok = bench_memory.densify_verdict(int(5e9), 100, 100, 4)  # too small to tell
    assert ok and "not conclusive" in message


@pytest.mark.parametrize("approach", [0, 1, 2])
def test_naive_first_layer_computes_the_package_layer(approach):
    """The speed comparison is fair only if the naive layer is the same function of the same weights."""
    import bench_train_step

    from hvae_tf.models.click_input import click_matrix, click_weights

    n_movies, units = 40, 8
    kinds = {0: "standard", 1: "hvae1", 2: "hvae2"}
    package = bench_train_step.make_model(kinds[approach], n_movies, units, 4, seed=1, float32_outputs=False)
    naive = bench_train_step.make_model("naive-" + kinds[approach], n_movies, units, 4, seed=1,
                                        float32_outputs=False)
    naive.first_layer.kernel.assign(package.first_layer.kernel)
    if approach == 2:
        naive.first_layer.collapse.assign(package.first_layer.collapse_kernel)
    indices = np.array([[3, 7, 39, -1], [0, -1, -1, -1], [-1, -1, -1, -1], [5, 6, 7, 8]], np.int64)
    weights = click_weights(click_matrix(indices, n_movies), normalize=True, dropout=0.0,
                            seed_generator=None, training=False)
    np.testing.assert_allclose(naive.first_layer(weights), package.first_layer(weights), rtol=1e-5, atol=1e-6)
    assert not np.allclose(naive.first_layer(weights)[0], naive.first_layer(weights)[3])


def test_shared_dense_is_the_same_model_as_shared_with_its_content_multiplied_densely():
    """Its timing compares the two products of one model, not two models."""
    import bench_train_step

    models = [bench_train_step.make_model(kind, 40, 8, 4, seed=1, float32_outputs=False, shared_dim=4,
                                          shared_content=300, shared_nonzeros=2)
              for kind in ("shared", "shared-dense")]
    sparse, dense = (m.first_layer.movie_vectors for m in models)
    assert sparse.sparse and not dense.sparse
    assert (np.count_nonzero(dense.content.numpy(), axis=1) == 2).all()
    np.testing.assert_allclose(sparse.vectors(), dense.vectors(), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_bench_epoch_times_ours_part_by_part_beside_the_reference(shared_data):
    out = run_script("bench_epoch.py", "--manual-dir", str(shared_data / "ml-1m"), "--epochs", "2",
                     "--rounds", "1", "--kinds", "Standard-VAE")
    reference = re.search(rf"reference Mult-VAE .*: ({NUMBER}) s an epoch", out)
    ours = re.search(rf"^Standard-VAE\s+({NUMBER})\s+({NUMBER})\s+(.*)$", out, flags=re.MULTILINE)
    assert reference and ours, out[-3000:]
    ratio = float(ours.group(1)) / float(reference.group(1))
    assert ratio == pytest.approx(float(ours.group(2)), abs=0.01)
    for part in ("training pass", "RankingMetrics", "BestCheckpoint"):
        assert part in ours.group(3)
    written = re.search(rf"fastest of the rounds: Standard-VAE ({NUMBER}) s", out)
    assert written and float(written.group(1)) > 0, out[-1000:]
