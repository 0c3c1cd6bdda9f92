"""The Movie-VAE: mixed-type loss, standardisation, seeded training, input checks."""

import numpy as np
import pytest
import scipy.sparse

from hvae_tf.models.movie_vae import MovieVAE, train_movie_vae

N_BINARY, N_CONTINUOUS = 12, 4


def movie_features(n_movies=96, seed=0):
    rng = np.random.default_rng(seed)
    binary = (rng.random((n_movies, N_BINARY)) < 0.3).astype(np.float32)
    continuous = rng.normal(5.0, 2.0, (n_movies, N_CONTINUOUS)).astype(np.float32)
    continuous[:, -1] = 7.0  # a constant column must not divide by zero
    mask = np.arange(N_BINARY + N_CONTINUOUS) < N_BINARY
    return np.concatenate([binary, continuous], axis=1), mask


def test_adapt_standardises_only_continuous_columns():
    values, mask = movie_features()
    model = MovieVAE(mask, hidden_dim=8, seed=0)
    model.adapt(values)
    standard = model.standardize(values).numpy()
    np.testing.assert_array_equal(standard[:, mask], values[:, mask])
    np.testing.assert_allclose(standard[:, ~mask][:, :-1].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(standard[:, ~mask][:, :-1].std(axis=0), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(standard[:, -1], 0.0)


def test_evaluate_reports_the_hand_computed_mixed_loss():
    values, mask = movie_features(20)
    model = MovieVAE(mask, hidden_dim=8, seed=0)
    model.adapt(values)
    model.compile()
    logs = model.evaluate(values, batch_size=20, verbose=0, return_dict=True)

    out = model(values).numpy().astype(np.float64)
    target = model.standardize(values).numpy().astype(np.float64)
    x, f = target[:, mask], out[:, mask]
    bernoulli = -(x * np.log(1 / (1 + np.exp(-f))) + (1 - x) * np.log(1 - 1 / (1 + np.exp(-f))))
    gaussian = 0.5 * (target[:, ~mask] - out[:, ~mask]) ** 2
    reconstruction = bernoulli.sum(axis=1) + gaussian.sum(axis=1)
    mu, logvar = (t.numpy().astype(np.float64) for t in model.encode(values))
    kl = 0.5 * (np.exp(logvar) + mu**2 - 1 - logvar).sum(axis=1)
    assert logs["reconstruction_loss"] == pytest.approx(reconstruction.mean(), rel=1e-5)
    assert logs["kl_loss"] == pytest.approx(kl.mean(), rel=1e-4, abs=1e-6)
    assert logs["loss"] == pytest.approx(reconstruction.mean() + kl.mean(), rel=1e-5)


def test_same_seed_same_embeddings_and_the_global_switch_is_restored():
    from tensorflow.python.framework import config as tf_config

    values, mask = movie_features()
    settings = dict(latent_dim=3, hidden_dim=8, epochs=2, batch_size=32, verbose=0)
    before = tf_config.is_op_determinism_enabled()  # an earlier in-process train() may have set it
    model, first = train_movie_vae(values, mask, seed=3, **settings)
    _, again = train_movie_vae(scipy.sparse.csr_matrix(values), mask, seed=3, **settings)
    assert first.shape == (len(values), 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(model.embed(values).numpy(), first, rtol=1e-6)
    assert tf_config.is_op_determinism_enabled() == before


def test_weights_restore_into_a_model_made_from_its_config(tmp_path):
    values, mask = movie_features(30)
    model = MovieVAE(mask, hidden_dim=8, latent_dim=2, seed=0)
    model.adapt(values)
    model.save_weights(tmp_path / "mvae.weights.h5")
    restored = MovieVAE.from_config(model.get_config())
    restored.load_weights(tmp_path / "mvae.weights.h5")
    np.testing.assert_array_equal(restored.embed(values).numpy(), model.embed(values).numpy())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda v, m: (np.where(np.arange(v.shape[1]) == 13, np.nan, v), m), "row 0, column 13"),
        (lambda v, m: (v, m[:-1]), "15 entries"),
        (lambda v, m: (v, np.ones_like(m)), "outside"),
        (lambda v, m: (v[0], m), "matrix"),
    ],
)
def test_bad_features_are_refused_with_the_reason(change, message):
    values, mask = change(*movie_features(10))
    with pytest.raises(ValueError, match=message):
        train_movie_vae(values, mask, epochs=1)


def test_mask_must_be_boolean():
    with pytest.raises(ValueError, match="boolean"):
        MovieVAE(np.array([1, 0, 1]))
