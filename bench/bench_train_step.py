"""Training-step throughput: Standard-VAE, H-VAE (approaches 1, 2) and the sharing hybrid, beside
naive dense versions.

    python bench/bench_train_step.py                       # 20,108 (Liang) and 26,621 (paper) movies
    python bench/bench_train_step.py --movies 2000 --steps 3 --warmup 1      # a quick look
    python bench/bench_train_step.py --breakdown           # + where the Standard-VAE's step goes

Each model is trained with `model.fit` on the project's tf.data pipeline (padded movie-index
batches) over users drawn with ML-20M-after-Liang statistics (bench/synthetic_clicks.py) and the
package's optimizer (FusedAdam; `+keras-adam` models use keras' Adam, to show the difference). The
naive models are the same Keras models with the first layer fed the dense click rows (approach 1:
the batch x N x d embedding input flattened to N*d; approach 2: a Dense(1) over it), as the
original code did; they densify inside the step, so both sides get the same input. The sharing
hybrid ("shared") computes its movie vectors (--shared-dim wide) from --shared-content columns
per movie, the width of Movie-VAE embeddings of that size or of a small feature matrix. "vasp" is
the Standard-VAE with VASP's shallow path (Bernoulli product likelihood), "shared-vasp-content"
the sharing hybrid on that path with its content path over 200 neighbours a movie and half the
movies training as new each step (--free-dropout 0.5), so that the content path runs. Ratios are
measured inside one run (shared machines are noisy). The matmul bound is the FLOPs of the step's
dense matmuls (forward + backward = 3x forward) over this process's measured tf.matmul rate.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, when run as a script

from synthetic_clicks import LIANG_MOVIES, PAPER_MOVIES, check_sizes, liang_like_clicks

from hvae_tf.baselines import ContentKNN
from hvae_tf.data import pipeline
from hvae_tf.models import HybridVAE, SharedHybridVAE, StandardVAE
from hvae_tf.models.click_input import DENSE_FROM_DENSITY, ClickDense, click_matrix, click_weights
from hvae_tf.models.shared import MovieVectors
from hvae_tf.training.optimizer import FusedAdam

MODELS = ("standard", "hvae1", "hvae2", "shared", "shared-dense", "naive-standard", "naive-hvae1", "naive-hvae2",
          "vasp", "shared-vasp-content")
KERAS_ADAM = "+keras-adam"  # a model name with this suffix trains with keras' Adam, not the package's
# Not by default: shared-dense is the old product; the VASP pair holds two N x N shallow paths.
OPT_IN = ("shared-dense", "vasp", "shared-vasp-content")
DEFAULT_MODELS = (*(m for m in MODELS if m not in OPT_IN), *(m + KERAS_ADAM for m in MODELS[:3]))
CONTENT_NEIGHBOURS = 200  # the content path's similarities per movie
EMBEDDING_DIM = 3


class NaiveFirstLayer(keras.layers.Layer):
    """The first encoder layer on dense input: x [B, N] (standard), flatten(x_i e_i) [B, N*d]
    (approach 1), or Dense(1)(x_i e_i) [B, N] (approach 2). Cost ~ B x N (x d) x units."""

    def __init__(self, n_movies, units, embeddings=None, approach=0, seed=None, activation="tanh",
                 **kwargs):
        super().__init__(**kwargs)
        self.n_movies, self.units, self.approach, self.seed = n_movies, units, approach, seed
        self._embeddings = embeddings
        self.activation = keras.activations.get(activation)

    def build(self, input_shape=None):
        width = self.n_movies * (EMBEDDING_DIM if self.approach == 1 else 1)
        init = keras.initializers.GlorotUniform(self.seed)
        self.kernel = self.add_weight(shape=(width, self.units), initializer=init, name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
        if self.approach:
            values = self._embeddings
            self.embeddings = self.add_weight(shape=values.shape, trainable=False, name="movie_embeddings",
                                              initializer=lambda shape, dtype=None: tf.constant(values))
        if self.approach == 2:
            self.collapse = self.add_weight(shape=(EMBEDDING_DIM, 1), initializer=init, name="collapse_kernel")

    def call(self, weights: tf.SparseTensor, equal_in_rows: bool = False, training: bool = False):  # dense: no shortcut
        x = tf.cast(tf.scatter_nd(weights.indices, weights.values, weights.dense_shape), self.compute_dtype)
        if self.approach:
            x = x[:, :, None] * tf.cast(self.embeddings, self.compute_dtype)[None]  # [B, N, d]
            x = tf.reshape(x, (-1, self.n_movies * EMBEDDING_DIM)) if self.approach == 1 else (
                tf.squeeze(tf.tensordot(x, self.collapse, axes=1), -1))
        return self.activation(tf.matmul(x, self.kernel) + self.bias)


class NaiveVAE(StandardVAE):
    """The package's VAE (same loss, dropout, decoder, optimizer) with the naive first layer."""

    def __init__(self, embeddings=None, approach=0, **kwargs):
        self._naive = (embeddings, approach)
        super().__init__(**kwargs)

    def _make_first_layer(self, seed, activation, name):
        embeddings, approach = self._naive
        return NaiveFirstLayer(self.n_movies, self.hidden_dim, embeddings, approach, seed, activation,
                               name=name)


class Float32Outputs:
    """Mixed precision: latents and logits in float32 before the losses (Keras' advice for
    outputs). Without it the package's models fail under mixed_bfloat16 (a bf16 x f32 Mul in the
    loss); a no-op once vae.py casts them itself."""

    def _encode_clicks(self, clicks, training, denoise=None):
        return tuple(tf.cast(t, tf.float32) for t in super()._encode_clicks(clicks, training, denoise))

    def decode(self, z, training=False):
        return tf.cast(super().decode(z, training), tf.float32)


def make_optimizer(name: str, learning_rate: float = 1e-3) -> keras.optimizers.Optimizer:
    """'package': the FusedAdam train.py uses; 'keras': keras' own Adam, for comparison."""
    return (FusedAdam if name == "package" else keras.optimizers.Adam)(learning_rate, name=f"{name}_adam")


def shared_content_matrix(n_movies: int, columns: int, nonzeros: int, seed: int) -> np.ndarray:
    """Dense normal content (Movie-VAE means, a small feature matrix), or with `nonzeros` > 0 a
    multi-hot row of that many ones per movie (credits)."""
    rng = np.random.default_rng(seed)
    if not nonzeros:
        return rng.normal(size=(n_movies, columns)).astype(np.float32)
    content = np.zeros((n_movies, columns), np.float32)
    rows = np.repeat(np.arange(n_movies), nonzeros)
    content[rows, np.concatenate([rng.choice(columns, nonzeros, replace=False) for _ in range(n_movies)])] = 1.0
    return content


def make_model(kind: str, n_movies: int, hidden: int, latent: int, seed: int, float32_outputs: bool,
               shared_dim: int = 64, shared_content: int = 64, shared_nonzeros: int = 0):
    """One of MODELS, built (weights created) in the current strategy scope. "shared-dense" is
    the sharing hybrid with its content multiplied densely whatever its sparsity (the product
    before sparse content was kept as its nonzeros)."""
    embeddings = np.random.default_rng(seed).normal(size=(n_movies, EMBEDDING_DIM)).astype(np.float32)
    common = {"hidden_dim": hidden, "latent_dim": latent, "seed": seed}
    if kind in ("vasp", "shared-vasp-content"):
        common.update(shallow="zeros", likelihood="bernoulli")
    if kind == "shared-vasp-content":
        content = shared_content_matrix(n_movies, shared_content, shared_nonzeros, seed)
        similarity = ContentKNN(CONTENT_NEIGHBOURS).fit(content).similarity
        cls = (type("SharedFloat32Outputs", (Float32Outputs, SharedHybridVAE), {}) if float32_outputs
               else SharedHybridVAE)
        return cls(content, shared_dim=shared_dim, free_dropout=0.5, content_similarity=similarity, **common)
    if kind in ("shared", "shared-dense"):
        content = shared_content_matrix(n_movies, shared_content, shared_nonzeros, seed)
        cls = (type("SharedFloat32Outputs", (Float32Outputs, SharedHybridVAE), {}) if float32_outputs
               else SharedHybridVAE)
        sparse_below = MovieVectors.SPARSE_BELOW
        MovieVectors.SPARSE_BELOW = -1.0 if kind == "shared-dense" else sparse_below  # read at construction
        try:
            return cls(content, shared_dim=shared_dim, **common)
        finally:
            MovieVectors.SPARSE_BELOW = sparse_below
    naive = kind.startswith("naive-")
    approach = {"standard": 0, "vasp": 0, "hvae1": 1, "hvae2": 2}[kind.removeprefix("naive-")]
    if naive:
        cls, args = NaiveVAE, {"n_movies": n_movies, "embeddings": embeddings, "approach": approach}
    elif approach:
        cls, args = HybridVAE, {"movie_embeddings": embeddings, "approach": approach}
    else:
        cls, args = StandardVAE, {"n_movies": n_movies}
    if float32_outputs:
        cls = type(f"{cls.__name__}Float32Outputs", (Float32Outputs, cls), {})
    return cls(**args, **common)


def dense_matmul_flops(kind: str, batch: int, n_movies: int, hidden: int, latent: int) -> float:
    """FLOPs of one step's dense matmuls. Shared: encoder 2nd layer, decoder layers, each 3x forward
    (output gradient + weight gradient). A naive first layer adds B x width x units: 2x forward
    (no input gradient), 3x for approach 2 (its Dense(1) needs one). The package's sparse first
    layer is ~nnz x units: not a dense matmul, and under 1% of these."""
    forward = 2 * batch * (hidden * 2 * latent + latent * hidden + hidden * n_movies)
    flops = 3 * forward
    if kind.startswith("naive-"):
        approach = kind[-1]
        width = n_movies * (EMBEDDING_DIM if approach == "1" else 1)
        flops += (3 if approach == "2" else 2) * 2 * batch * width * hidden
    return float(flops)


def matmul_rate(dtype=tf.float32, size: int | None = None, repeats: int = 3) -> float:
    """FLOP/s of a big square tf.matmul on this process's default device (best of `repeats`)."""
    size = size or (8192 if tf.config.list_logical_devices("GPU") else 2048)
    a = tf.random.normal((size, size), dtype=tf.float32, seed=1)
    a = tf.cast(a, dtype)
    (a @ a).numpy()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tf.reduce_sum(tf.cast((a @ a)[:1, :1], tf.float32)).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def training_batches(n_movies: int, batch: int, pool_batches: int, seed: int) -> tf.data.Dataset:
    pool = liang_like_clicks(batch * pool_batches, n_movies, seed=seed)
    return pipeline.padded_batches(pool, batch, seed=seed, drop_remainder=True).repeat()


class _StepClock(keras.callbacks.Callback):
    """Wall and process CPU time at the end of each execution (synchronised by reading the loss)."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        np.asarray(logs["loss"])  # wait for the step (a GPU runs ahead of Python otherwise)
        self.times.append((time.perf_counter(), time.process_time()))


def fit_seconds(model, dataset, executions: int, steps_per_execution: int) -> np.ndarray:
    """[executions, 2]: wall and CPU seconds per step of each execution of one `fit` but its first
    (fit's set-up, the iterator and callbacks, and the first execution are not counted)."""
    clock = _StepClock()
    model.fit(dataset, epochs=1, steps_per_epoch=(executions + 1) * steps_per_execution, verbose=0,
              callbacks=[clock])
    return np.diff(np.array(clock.times), axis=0) / steps_per_execution


@dataclasses.dataclass
class Result:
    kind: str
    n_movies: int
    seconds: float  # the fastest execution's wall seconds per step: the least disturbed by other load
    median: float  # the median execution's
    cpu: float  # median CPU seconds per step of this process, all threads: the work, whatever the load
    flops: float
    batch: int

    @property
    def users_per_second(self) -> float:
        return self.batch / self.seconds


def build_model(kind, n_movies, args, dataset, strategy):
    keras.utils.set_random_seed(args.seed)
    kind, keras_adam, _ = kind.partition(KERAS_ADAM)
    with strategy.scope():
        model = make_model(kind, n_movies, args.hidden, args.latent, args.seed,
                           float32_outputs=args.precision != "float32", shared_dim=args.shared_dim,
                           shared_content=args.shared_content, shared_nonzeros=args.shared_nonzeros)
        model.compile(optimizer=make_optimizer("keras" if keras_adam else "package"),
                      steps_per_execution=args.steps_per_execution)
        model(next(iter(dataset)))  # built inside the scope before fit, as train.py does
    return model


def time_models(kinds, n_movies, args, dataset, strategy, compute) -> tuple[list[Result], float]:
    """Warm every model up, then time them in interleaved rounds: load on a shared machine drifts,
    so each model sees the same conditions; the fastest execution is the least disturbed. The
    matmul rate takes its turn in every round too (its best is returned), so that the bound is
    not taken from a moment of heavy load."""
    models = {}
    for kind in kinds:
        models[kind] = build_model(kind, n_movies, args, dataset, strategy)
        fit_seconds(models[kind], dataset, args.warmup, args.steps_per_execution)  # trace, allocate
    rounds, rate = {kind: [] for kind in kinds}, 0.0
    for _ in range(args.rounds):
        rate = max(rate, matmul_rate(compute))
        for kind, model in models.items():
            rounds[kind].append(fit_seconds(model, dataset, args.steps, args.steps_per_execution))
    results = []
    for kind, times in rounds.items():
        wall, cpu = np.concatenate(times).T
        flops = dense_matmul_flops(kind.removesuffix(KERAS_ADAM), args.batch, n_movies, args.hidden, args.latent)
        results.append(Result(kind, n_movies, wall.min(), float(np.median(wall)), float(np.median(cpu)),
                              flops, args.batch))
    return results, rate


def min_seconds(fns: dict, repeats: int) -> dict[str, float]:
    """Fastest of `repeats` calls of each fn as a tf.function, after a tracing call. The fns take
    turns, so drifting load from other processes reaches all of them alike."""
    compiled = {name: tf.function(fn, jit_compile=False) for name, fn in fns.items()}
    for fn in compiled.values():
        tf.nest.map_structure(lambda t: t.numpy(), fn())
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in compiled.items():
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), fn())
            best[name] = min(best[name], time.perf_counter() - start)
    return best


# Shares of the movies a user clicked, around ML-20M's (0.4%), ml-1m's (2.7%) and denser data.
DENSITY_SWEEP = (0.004, 0.01, 0.027, 0.05, 0.1, 0.2)


def first_layer_gradients(layer, weights, upstream, training: bool = True):
    """fwd + bwd of a first layer alone: what a step spends on it (kernel gradient, no input one;
    binary clicks, as the model calls it)."""
    def run():
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(tf.cast(layer(weights, equal_in_rows=True, training=training), tf.float32) * upstream)
        return [tf.reduce_sum(tf.convert_to_tensor(g)[:1])  # a gathered kernel's gradient is sliced
                for g in tape.gradient(value, layer.trainable_variables)]
    return run


def breakdown(n_movies: int, args, dataset) -> None:
    """Where a Standard-VAE step goes (phases, then parts timed alone), and the first layers alone."""
    keras.utils.set_random_seed(args.seed)
    repeats = args.steps * args.rounds
    model = make_model("standard", n_movies, args.hidden, args.latent, args.seed, args.precision != "float32")
    model.compile(optimizer=make_optimizer("package"))
    batch = next(iter(dataset))
    model.optimizer.build(model.trainable_variables)
    variables = model.trainable_variables

    def loss():
        reconstruction, kl, beta = model.compute_losses(batch, training=True)
        return tf.reduce_mean(reconstruction + beta * kl)

    def gradients():
        with tf.GradientTape() as tape:
            value = loss()
        return tape.gradient(value, variables)

    def step():
        model.optimizer.apply_gradients(zip(gradients(), variables))
        return model.optimizer.iterations

    fixed = [tf.random.normal(v.shape, stddev=1e-3) for v in variables]
    keras_adam = make_optimizer("keras")
    keras_adam.build(variables)
    logits = tf.random.normal((args.batch, n_movies))
    hidden = tf.random.normal((args.batch, args.hidden))
    kernel = model.decoder_output.kernel

    def decoder_matmuls():  # forward, input gradient, weight gradient of the output layer
        out = hidden @ kernel
        return tf.reduce_sum(out[:1]) + tf.reduce_sum((out @ tf.transpose(kernel))[:1]) + tf.reduce_sum(
            (tf.transpose(hidden) @ out)[:1])

    def softmax_and_gradient():
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = tf.reduce_sum(tf.nn.log_softmax(logits)[:, :10])
        return tape.gradient(value, logits)[:1]

    clicks = click_matrix(batch, n_movies)
    # A training step's click weights: Mult-VAE's dropout 0.5 leaves about half the clicks non-zero.
    weights = click_weights(clicks, normalize=True, dropout=0.5,
                            seed_generator=keras.random.SeedGenerator(args.seed), training=True)
    upstream = tf.random.normal((args.batch, args.hidden))
    t = min_seconds(dict((
        ("forward", loss), ("gradients", lambda: [tf.reduce_sum(tf.convert_to_tensor(g)[:1]) for g in gradients()]), ("step", step),
        ("decoder output matmuls (fwd + 2 bwd)", decoder_matmuls),
        ("log-softmax fwd+bwd", softmax_and_gradient),
        ("sparse first layer fwd+bwd", first_layer_gradients(model.first_layer, weights, upstream)),
        ("FusedAdam (package)", lambda: model.optimizer.apply_gradients(zip(fixed, variables))),
        ("keras Adam", lambda: keras_adam.apply_gradients(zip(fixed, variables))),
    )), repeats)
    whole = t["step"]
    print(f"\nStandard-VAE step breakdown, {n_movies:,} movies, batch {args.batch} "
          f"(tf.functions, no fit; the package's FusedAdam):")
    parts = {"forward + loss": t["forward"], "backward": t["gradients"] - t["forward"],
             "optimizer": whole - t["gradients"]}
    parts.update({f"alone: {name}": value for name, value in list(t.items())[3:]})
    for name, seconds in parts.items():
        print(f"  {name:>44}: {seconds * 1e3:8.1f} ms  ({seconds / whole:6.1%} of the step)")

    print(f"\nStandard first layer, fwd + bwd, {n_movies:,} movies, by the share of movies a user "
          "clicked (dropout 0.5), dense / gathered time (click_input.DENSE_FROM_DENSITY is "
          f"{DENSE_FROM_DENSITY:.1%}):")
    layer = ClickDense(n_movies, args.hidden, seed=args.seed, click_input="gathered")
    dense = ClickDense(n_movies, args.hidden, seed=args.seed, click_input="dense")
    for built in (layer, dense):
        built.build()
    rng = np.random.default_rng(args.seed)
    for density in DENSITY_SWEEP:
        clicked = rng.random((args.batch, n_movies)) < density
        indices = np.full((args.batch, max(1, clicked.sum(1).max())), -1, np.int64)
        for row, movies in enumerate(clicked):
            indices[row, :movies.sum()] = np.flatnonzero(movies)
        swept = click_weights(click_matrix(indices, n_movies), normalize=True, dropout=0.5,
                              seed_generator=keras.random.SeedGenerator(args.seed), training=True)
        seconds = min_seconds({"dense": first_layer_gradients(dense, swept, upstream),
                               "gathered": first_layer_gradients(layer, swept, upstream)}, repeats)
        print(f"  {density:6.1%}: dense {seconds['dense'] * 1e3:7.1f} ms, gathered "
              f"{seconds['gathered'] * 1e3:7.1f} ms: {seconds['dense'] / seconds['gathered']:5.2f}")

    print(f"\nFirst layer alone, fwd + bwd, {n_movies:,} movies (package sparse vs naive dense):")
    for kind in ("standard", "hvae1", "hvae2"):
        seconds = list(min_seconds({k: first_layer_gradients(
            make_model(k, n_movies, args.hidden, args.latent, args.seed, False).first_layer, weights, upstream)
            for k in (kind, f"naive-{kind}")}, repeats).values())
        print(f"  {kind:>8}: {seconds[0] * 1e3:8.1f} ms vs naive {seconds[1] * 1e3:8.1f} ms: "
              f"{seconds[1] / seconds[0]:5.1f}x")


def report(results: list[Result], rate: float) -> list[str]:
    """The table, the ratios the issue's targets are about, and a line per target."""
    header = (f"{'model':>19} {'movies':>7} {'ms/step':>9} {'median':>9} {'CPU ms':>9} {'users/s':>9} "
              f"{'GFLOP':>7} {'bound ms':>9} {'x bound':>8}")
    lines = [header]
    by = {(r.kind, r.n_movies): r for r in results}
    for r in results:
        bound = r.flops / rate
        lines.append(f"{r.kind:>19} {r.n_movies:>7} {r.seconds * 1e3:9.1f} {r.median * 1e3:9.1f} {r.cpu * 1e3:9.1f} "
                     f"{r.users_per_second:9.0f} "
                     f"{r.flops / 1e9:7.1f} {bound * 1e3:9.1f} {r.seconds / bound:8.2f}")
    checks = []
    for n in sorted({r.n_movies for r in results}):
        def ratio(a, b, n=n):  # (wall, CPU) time of a over b
            if (a, n) not in by or (b, n) not in by:
                return None
            return by[(a, n)].seconds / by[(b, n)].seconds, by[(a, n)].cpu / by[(b, n)].cpu
        for suffix, label in (("", ""), (KERAS_ADAM, " (keras Adam)")):
            for approach in ("1", "2"):
                if (r := ratio(f"hvae{approach}{suffix}", f"standard{suffix}")) is not None:
                    checks.append((f"{n} movies{label}: H-VAE approach {approach} step / Standard-VAE step",
                                   r, "<=", 1.25))
            if (r := ratio(f"shared{suffix}", f"standard{suffix}")) is not None:
                checks.append((f"{n} movies{label}: sharing hybrid step / Standard-VAE step", r, "<=", 1.25))
            if (r := ratio(f"shared-vasp-content{suffix}", f"vasp{suffix}")) is not None:
                checks.append((f"{n} movies{label}: sharing hybrid with the content path step / VASP "
                               "Standard-VAE step", r, "<=", 1.25))
            for kind in ("standard", "hvae1", "hvae2"):
                if (r := ratio(f"naive-{kind}{suffix}", f"{kind}{suffix}")) is not None:
                    checks.append((f"{n} movies{label}: naive {kind} step / {kind} step (speed-up)", r, ">=",
                                   3.0 if kind == "hvae1" else None))
            if (std := by.get((f"standard{suffix}", n))) is not None:
                checks.append((f"{n} movies{label}: Standard-VAE step / matmul bound",
                               (std.seconds / (std.flops / rate), None), "<=", 2.0))
        for kind in ("standard", "hvae1", "hvae2"):
            if (r := ratio(kind + KERAS_ADAM, kind)) is not None:
                checks.append((f"{n} movies: {kind} step, keras Adam / FusedAdam", r, ">=", None))
    for name, (value, cpu), op, target in checks:
        text = f"  {name}: {value:.2f}" + ("" if cpu is None else f" (CPU time {cpu:.2f})")
        if target is not None:
            met = value <= target if op == "<=" else value >= target
            text += f" (target {op} {target}: {'met' if met else 'MISSED'})"
        lines.append(text)
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--movies", type=int, nargs="+", default=[LIANG_MOVIES, PAPER_MOVIES])
    p.add_argument("--models", nargs="+", choices=MODELS + tuple(m + KERAS_ADAM for m in MODELS),
                   default=list(DEFAULT_MODELS),
                   help=f"'{KERAS_ADAM}': trained with keras' Adam, else the package's FusedAdam")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--hidden", type=int, default=600)
    p.add_argument("--latent", type=int, default=200)
    p.add_argument("--shared-dim", type=int, default=64, help="the sharing hybrid's movie vectors")
    p.add_argument("--shared-content", type=int, default=64, help="content columns per movie it "
                   "computes them from")
    p.add_argument("--shared-nonzeros", type=int, default=0, help="ones per movie in multi-hot "
                   "content (credits: about 5 of 8,192); 0: dense normal content")
    p.add_argument("--steps", type=int, default=3, help="timed fit executions per round (each --steps-per-execution steps)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; the fastest execution counts")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps-per-execution", type=int, default=1,
                   help="steps per tf.function call in fit (amortises Python on a GPU)")
    p.add_argument("--pool-batches", type=int, default=8, help="distinct batches drawn per scale")
    p.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16", "mixed_float16"))
    p.add_argument("--strategy", default="default", choices=("default", "mirrored"))
    p.add_argument("--breakdown", action="store_true", help="also time the parts of a Standard-VAE step")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not 0 <= args.shared_nonzeros <= args.shared_content:
        p.error("--shared-nonzeros must be between 0 and --shared-content")
    check_sizes(p, args, ("batch", "hidden", "latent", "shared_dim", "shared_content", "steps", "rounds", "warmup", "steps_per_execution",
                          "pool_batches"))
    return args


def run(args) -> list[Result]:
    """Every model at every scale under the chosen precision and strategy; prints as it goes."""
    keras.mixed_precision.set_global_policy(args.precision)
    strategy = tf.distribute.MirroredStrategy() if args.strategy == "mirrored" else tf.distribute.get_strategy()
    devices = [d.name for d in tf.config.list_logical_devices()]
    compute = tf.bfloat16 if args.precision == "mixed_bfloat16" else (
        tf.float16 if args.precision == "mixed_float16" else tf.float32)
    rate = matmul_rate(compute)
    print(f"devices {devices} | {args.precision} | strategy {args.strategy} "
          f"({strategy.num_replicas_in_sync} replica) | batch {args.batch} | "
          f"tf.matmul {rate / 1e9:,.0f} GFLOP/s ({compute.name})", flush=True)
    results = []
    for n_movies in args.movies:
        dataset = training_batches(n_movies, args.batch, args.pool_batches, args.seed)
        timed, round_rate = time_models(args.models, n_movies, args, dataset, strategy, compute)
        rate = max(rate, round_rate)
        for r in timed:
            results.append(r)
            print(f"  {r.kind:>19} {n_movies:>7} movies: {r.seconds * 1e3:8.1f} ms/step "
                  f"(median {r.median * 1e3:.1f}), {r.users_per_second:9.0f} users/s", flush=True)
        if args.breakdown:
            breakdown(n_movies, args, dataset)
    print(f"\nbest tf.matmul rate over the run: {rate / 1e9:,.0f} GFLOP/s (the bound below uses it)")
    print("\n" + "\n".join(report(results, rate)))
    return results


def main(argv=None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
