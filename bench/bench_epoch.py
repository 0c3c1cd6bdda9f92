"""A whole train.py epoch, part by part, beside the reference Mult-VAE's epoch on the same data.

    python bench/bench_epoch.py --manual-dir ../shared/data/ml-1m        # ml-1m, liang, 10% users
    python bench/bench_epoch.py --ml20m --epochs 2 --rounds 1            # 136,677 x 20,108 synthetic
    python bench/bench_epoch.py --manual-dir ../shared/data/ml-1m --recipes recvae vasp-edlae recvae-edlae --epochs 4

An epoch is one training pass plus validation NDCG@100, as each implementation reports it.
Ours is `model.fit` with train.py's own callbacks (`run.fit_callbacks`: TensorBoard, ranking,
best checkpoint, backup, ...), each timed; the Standard-VAE and both H-VAE approaches (random
3-d embeddings: the Movie-VAE is not part of an epoch). The reference is the published Mult-VAE
notebook's loop (Liang et al. 2018, dawenl/vae_cf), written here from its description: a TF1 graph
under `tf.compat.v1`, dense float32 batches fed through placeholders, Adam, and a validation pass
that scores dense fold-in rows, sets the fold-in to -inf and takes NDCG@100 with numpy's
argpartition, saving a checkpoint when it improves. Both use batch 500 and Mult-VAE's recipe
([N-600-200-600-N], tanh, dropout 0.5, KL annealing), so the ratio compares the code around the
same model. Rounds interleave the implementations; each reports the median epoch of its best
round (the first epoch, which traces the graphs, is left out).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, when run as a script

import keras  # noqa: E402
from synthetic_clicks import LIANG_MOVIES, LIANG_USERS, fold_in_split, liang_like_clicks  # noqa: E402

from hvae_tf import allocator, recipes  # noqa: E402
from hvae_tf.config import RECIPES, TrainConfig  # noqa: E402
from hvae_tf.data import pipeline  # noqa: E402
from hvae_tf.data.protocols import HeldOutUsers, Split  # noqa: E402
from hvae_tf.features import random_embeddings  # noqa: E402
from hvae_tf.models import build_model  # noqa: E402
from hvae_tf.training import run as training  # noqa: E402
from hvae_tf.training.optimizer import FusedAdam  # noqa: E402

BATCH = 500
VALIDATION_BATCH = 2000
KINDS = {"Standard-VAE": None, "H-VAE approach 1": 1, "H-VAE approach 2": 2}


@dataclasses.dataclass
class Data:
    train: sp.csr_matrix
    fold_in: sp.csr_matrix
    held_out: sp.csr_matrix
    name: str

    @property
    def n_movies(self) -> int:
        return self.train.shape[1]


def ml1m(manual_dir: str, data_dir: str) -> Data:
    from hvae_tf.config import parse_args
    from hvae_tf.data import prepare

    cfg = parse_args(["--dataset", "1m", "--manual-dir", manual_dir, "--data-dir", data_dir,
                      "--protocol", "liang", "--heldout-users", "0.1", "--features", "none"])
    _, split = prepare.prepare(cfg, verbose=False)
    return Data(split.train, split.validation.fold_in, split.validation.held_out,
                f"ml-1m (liang, fold 0): {split.train.shape[0]:,} training users, "
                f"{split.validation.n_users:,} validation users, {split.n_movies:,} movies")


def ml20m_scale() -> Data:
    users = liang_like_clicks(LIANG_USERS, LIANG_MOVIES, seed=0)
    train, validation = users[10_000:], users[:10_000]
    fold_in, held_out = fold_in_split(validation, seed=1)
    return Data(train.tocsr(), fold_in, held_out,
                f"synthetic ML-20M scale: {train.shape[0]:,} training users, 10,000 validation "
                f"users, {train.shape[1]:,} movies")


# ----------------------------------------------------------------------------- the reference


def ndcg_binary_at_k(scores: np.ndarray, held_out: sp.csr_matrix, k: int = 100) -> np.ndarray:
    """The notebook's NDCG@k: argpartition, sort the top k, discount, divide by the ideal."""
    users = scores.shape[0]
    top_part = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-scores[np.arange(users)[:, None], top_part], axis=1)
    top = top_part[np.arange(users)[:, None], order]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (held_out[np.arange(users)[:, None], top].toarray() * discount).sum(axis=1)
    ideal = np.array([discount[: min(n, k)].sum() for n in held_out.getnnz(axis=1)])
    return dcg / ideal


class ReferenceMultVAE:
    """The TF1 Mult-VAE graph and its train/validate loop, in a graph and session of its own."""

    def __init__(self, n_movies: int, seed: int = 98765):
        self.graph = tf.Graph()
        with self.graph.as_default():
            v1 = tf.compat.v1
            v1.set_random_seed(seed)
            self.x = v1.placeholder(tf.float32, [None, n_movies])
            self.keep = v1.placeholder_with_default(1.0, shape=None)
            self.training = v1.placeholder_with_default(0.0, shape=None)
            self.anneal = v1.placeholder_with_default(1.0, shape=None)
            glorot = v1.glorot_uniform_initializer(seed=seed)
            small = v1.truncated_normal_initializer(stddev=0.001, seed=seed)

            def layer(name, h, d_in, d_out):
                w = v1.get_variable(f"w_{name}", [d_in, d_out], initializer=glorot)
                b = v1.get_variable(f"b_{name}", [d_out], initializer=small)
                return tf.matmul(h, w) + b

            h = tf.nn.dropout(tf.nn.l2_normalize(self.x, 1), rate=1.0 - self.keep)
            h = tf.tanh(layer("q0", h, n_movies, 600))
            stats = layer("q1", h, 600, 400)
            mu, logvar = stats[:, :200], stats[:, 200:]
            std = tf.exp(0.5 * logvar)
            kl = tf.reduce_mean(tf.reduce_sum(0.5 * (-logvar + tf.exp(logvar) + mu ** 2 - 1), axis=1))
            z = mu + self.training * v1.random_normal(tf.shape(std)) * std
            self.logits = layer("p1", tf.tanh(layer("p0", z, 200, 600)), 600, n_movies)
            neg_ll = -tf.reduce_mean(tf.reduce_sum(tf.nn.log_softmax(self.logits) * self.x, axis=-1))
            self.train_op = v1.train.AdamOptimizer(1e-3).minimize(neg_ll + self.anneal * kl)
            self.saver = v1.train.Saver()
            self.session = v1.Session(graph=self.graph)
            self.session.run(v1.global_variables_initializer())
        self.updates = 0
        self.best = -np.inf

    def epoch(self, data: Data, rng: np.random.Generator, checkpoint: Path) -> float:
        order = rng.permutation(data.train.shape[0])
        for start in range(0, len(order), BATCH):
            x = data.train[order[start:start + BATCH]].toarray().astype(np.float32)
            anneal = min(0.2, self.updates / 200_000)
            self.session.run(self.train_op, {self.x: x, self.keep: 0.5, self.anneal: anneal,
                                             self.training: 1.0})
            self.updates += 1
        ndcgs = []
        for start in range(0, data.fold_in.shape[0], VALIDATION_BATCH):
            rows = slice(start, start + VALIDATION_BATCH)
            x = data.fold_in[rows].toarray().astype(np.float32)
            scores = self.session.run(self.logits, {self.x: x})
            scores[x.nonzero()] = -np.inf
            ndcgs.append(ndcg_binary_at_k(scores, data.held_out[rows]))
        ndcg = float(np.nanmean(np.concatenate(ndcgs)))
        if ndcg > self.best:
            self.saver.save(self.session, str(checkpoint))
            self.best = ndcg
        return ndcg


def save_data(data: Data, path: Path) -> None:
    arrays = {}
    for name in ("train", "fold_in", "held_out"):
        matrix = getattr(data, name)
        arrays.update({f"{name}_{a}": getattr(matrix, a) for a in ("data", "indices", "indptr")})
        arrays[f"{name}_shape"] = np.array(matrix.shape)
    np.savez(path, **arrays)


def load_data(path: Path) -> Data:
    with np.load(path) as z:
        matrices = {name: sp.csr_matrix((z[f"{name}_data"], z[f"{name}_indices"], z[f"{name}_indptr"]),
                                        shape=tuple(z[f"{name}_shape"]))
                    for name in ("train", "fold_in", "held_out")}
    return Data(name="", **matrices)


def reference_epochs(data_file: Path, epochs: int, folder: Path) -> list[float]:
    """The reference in a process of its own: TF1 behaviour is process-wide (and so is
    train.py's op determinism, which the notebook does not use), and so is the CPU allocator, which
    stays TensorFlow's default there, as the notebook runs."""
    out = subprocess.run([sys.executable, __file__, "--reference", str(data_file), "--epochs", str(epochs),
                          "--folder", str(folder)], capture_output=True, text=True, check=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", allocator.VARIABLE: "false"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_reference(data_file: Path, epochs: int, folder: Path) -> None:
    tf.compat.v1.disable_v2_behavior()
    data = load_data(data_file)
    model, rng, seconds = ReferenceMultVAE(data.n_movies), np.random.default_rng(0), []
    for _ in range(epochs):
        start = time.perf_counter()
        model.epoch(data, rng, folder / "reference.ckpt")
        seconds.append(time.perf_counter() - start)
    print(json.dumps(seconds))


# ----------------------------------------------------------------------------- ours


class Timed(keras.callbacks.Callback):
    """One of train.py's callbacks, with the seconds its epoch-end and batch-end hooks take."""

    def __init__(self, inner, clock: "EpochClock"):
        super().__init__()
        self.inner, self.clock = inner, clock
        self.name = type(inner).__name__

    def set_model(self, model):
        super().set_model(model)
        self.inner.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.inner.set_params(params)

    def _timed(self, hook, label, *args):
        start = time.perf_counter()
        getattr(self.inner, hook)(*args)
        self.clock.add(label, time.perf_counter() - start)

    def on_train_begin(self, logs=None):
        self.inner.on_train_begin(logs)

    def on_train_end(self, logs=None):
        start = time.perf_counter()
        self.inner.on_train_end(logs)
        self.clock.at_train_end[self.name] = time.perf_counter() - start

    def on_epoch_begin(self, epoch, logs=None):
        self.inner.on_epoch_begin(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self.inner.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._timed("on_train_batch_end", f"{self.name} (batch ends)", batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.clock.pass_end is None:
            self.clock.pass_end = time.perf_counter()
        self._timed("on_epoch_end", self.name, epoch, logs)


class EpochClock(keras.callbacks.Callback):
    """Per epoch: the whole epoch, the training pass (to the first epoch-end hook), each callback;
    and each callback's train end (where the held best checkpoint is written, as at a backup)."""

    def __init__(self):
        super().__init__()
        self.epochs: list[dict[str, float]] = []
        self.at_train_end: dict[str, float] = {}
        self.pass_end = None

    def add(self, name: str, seconds: float) -> None:
        self._parts[name] = self._parts.get(name, 0.0) + seconds

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self.pass_end, self._parts = time.perf_counter(), None, {}

    def on_epoch_end(self, epoch, logs=None):  # the last callback: everything before it is done
        end = time.perf_counter()
        # The training pass includes the batch-end hooks, which run inside it.
        self.epochs.append({"epoch": end - self._start, "training pass": self.pass_end - self._start,
                            **self._parts})


def our_epochs(data: Data, kind: str, epochs: int, folder: Path,
               recipe: str = "mult-vae") -> tuple[list[dict[str, float]], dict[str, float]]:
    """train.py's epochs; the paper's recipe at batch 500 (pinned, so that a new default recipe
    does not change what is compared with the reference), or another recipe with its own settings."""
    approach = KINDS[kind]
    asked = TrainConfig(features="none" if approach is None else "random", approach=approach or 1,
                        recipe=recipe, batch_size=BATCH if recipe == "mult-vae" else None,
                        epochs=epochs, verbose=0, run_dir=str(folder / "run"), patience=0)
    cfg = recipes.resolve(asked, data.train.shape[0], data.n_movies).config
    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()  # train.py's default
    users = HeldOutUsers(np.arange(data.fold_in.shape[0]), data.fold_in, data.held_out)
    split = Split("liang", 0, cfg.seed, np.arange(data.n_movies), data.train,
                  np.arange(data.train.shape[0]), validation=users, test=users)
    embeddings = None if approach is None else random_embeddings(data.n_movies, 3, seed=cfg.seed)
    train_ds = pipeline.padded_batches(data.train, cfg.batch_size, seed=cfg.seed)
    model = build_model(data.n_movies, embeddings, train_clicks=data.train,
                        **training.shallow_start(cfg, data.train), **cfg.part("model"))
    model.compile(optimizer=FusedAdam(cfg.lr), jit_compile=False)
    model(next(iter(train_ds)))
    clock = EpochClock()
    _, callbacks = training.fit_callbacks(cfg, Path(cfg.run_dir), split, train_ds, chief=True)
    training.fit(model, cfg, split, train_ds, [Timed(c, clock) for c in callbacks] + [clock])
    return clock.epochs, clock.at_train_end


def end_write(seconds: list[float]) -> str:
    """The fastest train-end write of the rounds that had one: where an epoch outlasts
    --backup-every, the best checkpoint went out with the backup inside an epoch, leaving none."""
    writes = [s for s in seconds if s >= 0.0005]
    return f"{min(writes):.3f} s" if writes else "none left (written with a backup inside an epoch)"


def median_of_best_round(rounds: list[list[float]]) -> float:
    return min(float(np.median(r[1:] if len(r) > 1 else r)) for r in rounds)


def compare_recipes(data: Data, names, epochs: int, rounds: int, tmp: Path) -> int:
    """Each recipe's Standard-VAE epoch (training pass + validation), interleaved in rounds, as a
    ratio to the mult-vae recipe's measured in the same run: what each recipe's NDCG costs."""
    names = ["mult-vae", *[n for n in names if n != "mult-vae"]]
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names:
            folder = tmp / f"recipes{r}" / name
            times[name].append([e["epoch"] for e in our_epochs(data, "Standard-VAE", epochs, folder, name)[0]])
    base = median_of_best_round(times["mult-vae"])
    print(f"\n{'recipe':<12}{'epoch s':>9}{'/ mult-vae':>12}   (median epoch of the best round)")
    for name in names:
        epoch = median_of_best_round(times[name])
        print(f"{name:<12}{epoch:>9.3f}{epoch / base:>12.2f}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manual-dir", help="the ml-1m release folder (e.g. ../shared/data/ml-1m)")
    p.add_argument("--ml20m", action="store_true", help="synthetic users at ML-20M scale instead")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--recipes", nargs="+", choices=[r for r in RECIPES if r != "auto"],
                   help="instead of the reference: the Standard-VAE's epoch under each recipe "
                        "(its own batch size and schedule) beside the mult-vae recipe's")
    p.add_argument("--reference", type=Path, help=argparse.SUPPRESS)  # the reference's own process
    p.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.reference:
        run_reference(args.reference, args.epochs, args.folder)
        return 0
    if not args.ml20m and not args.manual_dir:
        p.error("pass --manual-dir with the ml-1m release, or --ml20m")
    with tempfile.TemporaryDirectory(prefix="bench-epoch-") as tmp:
        data = ml20m_scale() if args.ml20m else ml1m(args.manual_dir, str(Path(tmp) / "tfds"))
        print(data.name)
        if args.recipes:
            return compare_recipes(data, args.recipes, args.epochs, args.rounds, Path(tmp))
        data_file = Path(tmp) / "clicks.npz"
        save_data(data, data_file)
        reference, ours, writes = [], {kind: [] for kind in args.kinds}, {kind: [] for kind in args.kinds}
        for r in range(args.rounds):
            folder = Path(tmp) / f"round{r}"
            folder.mkdir()
            reference.append(reference_epochs(data_file, args.epochs, folder))
            for kind in args.kinds:
                epochs, at_end = our_epochs(data, kind, args.epochs, folder / kind.replace(" ", "-"))
                ours[kind].append(epochs)
                writes[kind].append(at_end["BestCheckpoint"])
    ref = median_of_best_round(reference)
    print(f"\nreference Mult-VAE (TF1 graph, dense batches): {ref:.3f} s an epoch")
    print(f"{'':<20}{'epoch s':>9}{'/ ref':>7}   where an epoch goes (s, median of the best round)")
    for kind, rounds in ours.items():
        epoch = median_of_best_round([[e["epoch"] for e in r] for r in rounds])
        best = min(rounds, key=lambda r: np.median([e["epoch"] for e in r[1:] or r]))
        parts = {k: float(np.median([e.get(k, 0.0) for e in best[1:] or best]))
                 for k in best[-1] if k != "epoch"}
        where = ", ".join(f"{k} {v:.3f}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v >= 0.0005)
        print(f"{kind:<20}{epoch:>9.3f}{epoch / ref:>7.2f}   {where}")
    print("The best checkpoint is written with each backup (at most once per --backup-every, default "
          "120 s) and at the end, outside the epochs above; the end's write, fastest of the rounds: "
          + ", ".join(f"{kind} {end_write(w)}" for kind, w in writes.items()) + ".")
    return 0


if __name__ == "__main__":
    sys.exit(main())
