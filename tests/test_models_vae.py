"""Standard-VAE and Hybrid-VAE: losses, KL annealing counter, fit on padded batches, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from hvae_tf.models import HybridVAE, StandardVAE

N_MOVIES, MAX_LEN, HIDDEN, LATENT = 60, 9, 16, 4


def padded_users(n_users, seed=0):
    rng = np.random.default_rng(seed)
    batch = np.full((n_users, MAX_LEN), -1, np.int64)
    for row in range(n_users):
        k = rng.integers(1, MAX_LEN + 1)
        batch[row, :k] = rng.choice(N_MOVIES, k, replace=False)
    batch[::7] = -1  # users with no clicks
    return batch


def small_vae(**kwargs):
    settings = dict(n_movies=N_MOVIES, hidden_dim=HIDDEN, latent_dim=LATENT, seed=0)
    return StandardVAE(**{**settings, **kwargs})


def hybrid_embeddings():
    return np.random.default_rng(5).normal(size=(N_MOVIES, 3)).astype(np.float32)


def small_hybrid(approach, **kwargs):
    settings = dict(approach=approach, hidden_dim=HIDDEN, latent_dim=LATENT, seed=0)
    return HybridVAE(hybrid_embeddings(), **settings, **kwargs)


def dense_clicks(batch):
    x = np.zeros((len(batch), N_MOVIES))
    for row, movies in enumerate(batch):
        x[row, movies[movies >= 0]] = 1.0
    return x


def log_softmax(f):
    f = f - f.max(axis=1, keepdims=True)
    return f - np.log(np.exp(f).sum(axis=1, keepdims=True))


@pytest.fixture(scope="module")
def fitted():
    """A Standard-VAE after 2 epochs of fit on a tf.data of padded batches (5 steps each)."""
    users = padded_users(40)
    model = small_vae(anneal_steps=8, anneal_cap=0.5)
    model.compile(keras.optimizers.Adam(1e-2))
    initial = [w.numpy().copy() for w in model.trainable_weights]
    batches = tf.data.Dataset.from_tensor_slices(users).batch(8)
    history = model.fit(batches, epochs=2, verbose=0, shuffle=False)
    return model, users, history, initial


def test_fit_on_padded_batches_trains_and_counts_updates(fitted):
    model, users, history, initial = fitted
    assert int(model.anneal_step.numpy()) == 10
    for name in ("loss", "reconstruction_loss", "kl_loss", "kl_weight"):
        assert np.isfinite(history.history[name]).all(), name
    # the logged KL weight is the epoch's mean of min(cap, step / anneal_steps) over its updates
    betas = np.minimum(0.5, np.arange(10) / 8)
    np.testing.assert_allclose(history.history["kl_weight"], [betas[:5].mean(), betas[5:].mean()], rtol=1e-6)
    assert all(not np.array_equal(w.numpy(), w0) for w, w0 in zip(model.trainable_weights, initial))
    assert np.isfinite(model.scores(users).numpy()).all()


@pytest.mark.parametrize("likelihood", ["multinomial", "bernoulli"])
def test_evaluate_reports_the_hand_computed_losses(likelihood):
    users = padded_users(12, seed=1)
    model = small_vae(likelihood=likelihood, anneal_steps=10, anneal_cap=0.5)
    model.compile()
    model.anneal_step.assign(3)  # beta = 0.3
    logs = model.evaluate(users, batch_size=12, verbose=0, return_dict=True)

    x = dense_clicks(users)
    f = model.scores(users).numpy().astype(np.float64)
    if likelihood == "multinomial":
        loglik = (x * log_softmax(f)).sum(axis=1)
    else:
        p = 1 / (1 + np.exp(-f))
        loglik = (x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1)
    mu, logvar = (t.numpy().astype(np.float64) for t in model.encode(users))
    kl = 0.5 * (np.exp(logvar) + mu**2 - 1 - logvar).sum(axis=1)
    assert logs["kl_weight"] == pytest.approx(0.3)
    assert logs["reconstruction_loss"] == pytest.approx(-loglik.mean(), rel=1e-5)
    assert logs["kl_loss"] == pytest.approx(kl.mean(), rel=1e-4, abs=1e-6)
    assert logs["loss"] == pytest.approx(-loglik.mean() + 0.3 * kl.mean(), rel=1e-5)


def test_train_step_logs_shape_one_values_and_advances_the_counter():
    model = small_vae()
    model.compile()
    for step in range(2):
        logs = model.train_step(padded_users(8))
        assert {k: tuple(v.shape) for k, v in logs.items()} == {
            "loss": (1,), "reconstruction_loss": (1,), "kl_loss": (1,), "kl_weight": (1,)
        }
        assert int(model.anneal_step.numpy()) == step + 1


def test_kl_weight_follows_the_counter_across_steps():
    model = small_vae(anneal_steps=4, anneal_cap=0.3)
    model.compile()
    users = padded_users(8)
    seen = []
    for _ in range(6):
        model.kl_weight_tracker.reset_state()
        model.train_step(users)
        seen.append(float(model.kl_weight_tracker.result()))
    np.testing.assert_allclose(seen, [0.0, 0.25, 0.3, 0.3, 0.3, 0.3], rtol=1e-6)


def test_padding_and_list_order_do_not_change_scores():
    model = small_vae()
    short = np.array([[4, 17, 30], [-1, -1, -1]])
    longer = np.array([[30, -1, 4, -1, 17], [-1, -1, -1, -1, -1]])
    np.testing.assert_allclose(model.scores(short).numpy(), model.scores(longer).numpy(), atol=1e-6)
    # a user with no clicks gets the decoder's answer for the encoder's empty input
    empty_mu = tf.split(model.encoder_output(tf.tanh(model.first_layer.bias[None])), 2, axis=-1)[0]
    np.testing.assert_allclose(model.scores(short).numpy()[1], model.decode(empty_mu).numpy()[0], atol=1e-6)


def test_same_seed_same_training():
    users = padded_users(16)

    def two_steps():
        model = small_vae(seed=7)
        model.compile(keras.optimizers.Adam(1e-2))
        model.train_step(users)
        model.train_step(users)
        return model.scores(users).numpy()

    np.testing.assert_array_equal(two_steps(), two_steps())


def test_weights_and_update_counter_survive_save_and_load(fitted, tmp_path):
    model, users, _, _ = fitted
    path = tmp_path / "vae.weights.h5"
    model.save_weights(path)
    restored = small_vae(anneal_steps=8, anneal_cap=0.5, seed=123)
    restored.load_weights(path)
    assert int(restored.anneal_step.numpy()) == int(model.anneal_step.numpy())
    np.testing.assert_allclose(restored.scores(users).numpy(), model.scores(users).numpy(), rtol=1e-6)


@pytest.mark.parametrize("approach", [1, 2])
def test_hybrid_trains_only_embeddings_it_is_told_to(approach):
    users = padded_users(16)
    for trainable in (False, True):
        model = small_hybrid(approach, trainable_embeddings=trainable, dropout=0.0)
        model.compile(keras.optimizers.Adam(1e-2))
        before = model.movie_embeddings.numpy().copy()
        model.train_step(users)
        changed = not np.array_equal(model.movie_embeddings.numpy(), before)
        assert changed == trainable
        np.testing.assert_array_equal(before, hybrid_embeddings())


def test_hybrid_round_trips_through_a_keras_file(tmp_path):
    users = padded_users(24)
    model = small_hybrid(1, trainable_embeddings=True)
    model.compile(keras.optimizers.Adam(1e-2))
    for _ in range(3):
        model.train_step(users)
    path = tmp_path / "hybrid.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, HybridVAE) and loaded.approach == 1
    assert int(loaded.anneal_step.numpy()) == 3
    np.testing.assert_array_equal(loaded.movie_embeddings.numpy(), model.movie_embeddings.numpy())
    np.testing.assert_allclose(loaded.scores(users).numpy(), model.scores(users).numpy(), rtol=1e-6)


def _one_sgd_step(model_factory, users):
    model = model_factory()
    model.compile(keras.optimizers.SGD(learning_rate=0.1))
    before = {w.path: w.numpy().copy() for w in model.trainable_weights}
    model.train_step(users)
    return model, before, {w.path: w.numpy() for w in model.trainable_weights}


@pytest.mark.parametrize("hybrid", [False, True])
def test_weight_decay_adds_its_gradient_to_kernels_only(hybrid):
    """One SGD step with the penalty = the same step without it, minus lr * 2 * lambda * W."""
    users, decay, lr = padded_users(16), 0.05, 0.1
    factory = small_vae
    if hybrid:
        settings = dict(approach=2, trainable_embeddings=True, hidden_dim=HIDDEN, latent_dim=LATENT)
        factory = lambda **kw: HybridVAE(hybrid_embeddings(), **settings, **kw)  # noqa: E731
    plain, before, without = _one_sgd_step(lambda: factory(seed=3), users)
    decayed, _, with_decay = _one_sgd_step(lambda: factory(seed=3, weight_decay=decay), users)
    kernels = [w.path for w in decayed.trainable_weights if w.name.endswith("kernel")]
    assert len(kernels) == (5 if hybrid else 4)  # approach 2's collapse kernel is a kernel too
    for path, w0 in before.items():
        expected = without[path] - (lr * 2 * decay * w0 if path in kernels else 0.0)
        np.testing.assert_allclose(with_decay[path], expected, rtol=1e-4, atol=1e-6, err_msg=path)
    penalty = sum(float(np.sum(before[path].astype(np.float64) ** 2)) for path in kernels)
    fresh = factory(seed=3, weight_decay=decay)
    assert float(fresh.weight_penalty()) == pytest.approx(penalty, rel=1e-5)


def test_every_model_flag_reaches_the_model_and_its_saved_config():
    """The config's model part is the constructor's arguments: a new model flag needs no wiring."""
    from hvae_tf.config import SHARED_FIELDS, parse_args
    from hvae_tf.models import build_model

    cfg = parse_args(["--features", "none", "--weight-decay", "0.01", "--hidden-dim", "8",
                      "--latent-dim", "2", "--dropout", "0.3", "--anneal-steps", "7",
                      "--anneal-cap", "0.4", "--likelihood", "bernoulli", "--no-normalize-input",
                      "--seed", "5", "--approach", "2", "--activation", "swish",
                      "--click-input", "dense", "--architecture", "mult-vae", "--prior", "composite",
                      "--kl-gamma", "0.01", "--encoder-passes", "2", "--shallow", "zeros",
                      "--shallow-l2", "0.001", "--shallow-speed", "0.5"])
    settings = cfg.part("model")
    assert None not in settings.values()  # every recipe setting given: nothing left to the recipe
    hybrid_only = {"approach", "trainable_embeddings", *SHARED_FIELDS}
    model = build_model(N_MOVIES, None, **settings)
    config = model.get_config()
    assert {k: config[k] for k in settings if k not in hybrid_only} == {
        k: v for k, v in settings.items() if k not in hybrid_only}
    assert model.weight_decay == 0.01 and model.dropout == 0.3 and not model.normalize_input
    assert model.decoder_hidden.activation is keras.activations.swish
    assert StandardVAE.from_config(config).get_config() == config
    hybrid = build_model(N_MOVIES, np.ones((N_MOVIES, 3), np.float32), **settings)
    saved = hybrid.get_config()
    shared_only = set(SHARED_FIELDS)
    assert {k: saved[k] for k in settings if k not in shared_only} == {
        k: v for k, v in settings.items() if k not in shared_only}
    assert HybridVAE.from_config(saved).get_config() == saved
    # The sharing hybrid's own flags reach it (shared_input chose its content, not a weight).
    shared_cfg = parse_args(["--features", "genre", "--approach", "shared", "--shared-dim", "6",
                             "--free-l2", "0.02", "--free-dropout", "0.4", "--shared-speed", "3"])
    own = ("shared_dim", "free_l2", "free_dropout", "shared_speed")
    sharing = build_model(N_MOVIES, np.ones((N_MOVIES, 3), np.float32), **{
        **settings, "approach": "shared", **{k: getattr(shared_cfg, k) for k in own}})
    assert {k: sharing.get_config()[k] for k in own} == {
        "shared_dim": 6, "free_l2": 0.02, "free_dropout": 0.4, "shared_speed": 3.0}
    with pytest.raises(SystemExit):
        parse_args(["--weight-decay", "-1"])


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: small_vae(likelihood="poisson"), "likelihood"),
        (lambda: small_vae(activation="sigmoid"), "unknown activation 'sigmoid'"),
        (lambda: small_vae(dropout=1.0), "dropout"),
        (lambda: small_vae(anneal_steps=-1), "anneal_steps"),
        (lambda: small_vae(weight_decay=-0.1), "weight_decay"),
        (lambda: small_hybrid(3), "approach"),
        (lambda: HybridVAE(np.ones((5, 3)), n_movies=6), "n_movies=6"),
        (lambda: HybridVAE(np.full((5, 3), np.nan)), "non-finite"),
        (lambda: HybridVAE(np.ones(5)), r"\[n_movies, d\]"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_xla_is_refused_and_auto_means_off():
    model = small_vae()
    model.compile(jit_compile="auto")
    assert model.jit_compile is False
    with pytest.raises(ValueError, match="XLA"):
        model.compile(jit_compile=True)
