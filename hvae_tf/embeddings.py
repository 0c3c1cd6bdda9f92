"""Movie embeddings for the Hybrid-VAE: features -> Movie-VAE -> latent means, built once and reused.

Feature extraction over 27k plots and the Movie-VAE's training take minutes; every H-VAE run of the
experiment grid on the same fold and features needs the same embeddings. They are cached under the
data folder, keyed by the fold (whose key holds the raw data's fingerprint), the feature matrix's
fingerprint and the Movie-VAE settings, with the Movie-VAE's weights beside them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from hvae_tf.baselines.content_knn import ContentKNN
from hvae_tf.data import prepare
from hvae_tf.features import build, build_features, random_embeddings
from hvae_tf.features.feature_matrix import FeatureMatrix
from hvae_tf.io import file_digest, write_atomic
from hvae_tf.models.movie_vae import train_movie_vae


def cache_dir(cfg, data) -> Path:
    return prepare.default_data_dir(cfg.data_dir) / "hvae_embeddings" / prepare.split_key(cfg, data)


def feature_matrix(cfg, data, split) -> FeatureMatrix:
    """The fold's feature matrix for --features, extracted once per fold and option set."""
    options = dict(vad_lexicon=cfg.vad_lexicon, liwc_dic=cfg.liwc_dic, word_vectors=cfg.word_vectors)
    # Keyed on the files' contents, not their names: an edited lexicon is another feature set.
    contents = {k: file_digest(v) if v and Path(v).is_file() else v for k, v in options.items()}
    contents["version"] = build.FEATURES_VERSION  # read here, so a raised version is seen
    digest = hashlib.sha256(json.dumps(contents, sort_keys=True).encode()).hexdigest()[:8]
    path = cache_dir(cfg, data) / f"features-{cfg.features}-{digest}"
    if path.with_suffix(".npz").exists() and path.with_suffix(".json").exists():
        return FeatureMatrix.load(path)
    features = build_features(data, split.movie_ids, cfg.features, seed=cfg.seed, **options)
    features.save(path)
    print(features.summary_text())
    return features


def movie_embeddings(cfg, data, split) -> np.ndarray | None:
    """What the hybrid is given per movie: None for the Standard-VAE; random vectors for the
    control; the standardised feature matrix for the sharing hybrid fed features directly; else
    the Movie-VAE's latent means."""
    if cfg.features == "none":
        return None
    direct = cfg.approach == "shared" and cfg.shared_input == "features"
    if cfg.features == "random":  # for the sharing hybrid as wide as its movie vectors
        return random_embeddings(split.n_movies, cfg.shared_dim if direct else cfg.embedding_dim,
                                 seed=cfg.seed)
    features = feature_matrix(cfg, data, split)
    if direct:
        return features.standardized()
    settings = {**cfg.part("features"), "fingerprint": features.fingerprint()}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    folder = cache_dir(cfg, data) / f"movie-vae-{cfg.features}-{key}"
    cached = folder / "embeddings.npy"
    if cached.exists():
        return np.load(cached)
    binary = np.array([kind == "binary" for kind in features.kinds])
    model, embeddings = train_movie_vae(
        features.values, binary, latent_dim=cfg.embedding_dim, epochs=cfg.movie_vae_epochs,
        seed=cfg.seed, verbose=2 if cfg.verbose else 0,  # a line an epoch, not a bar per step
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(folder / "movie_vae.weights.h5"))
    write_atomic(folder / "settings.json", json.dumps(settings, indent=2))
    tmp = folder / ".embeddings.tmp.npy"
    np.save(tmp, embeddings.astype(np.float32))
    tmp.replace(cached)
    return embeddings.astype(np.float32)


def content_similarity(cfg, embeddings) -> dict:
    """build_model's content evidence for the sharing hybrid's shallow path: content kNN's
    similarities over the hybrid's own content (the standardised features content kNN is given
    too, or the Movie-VAE's means); nothing when `--content-neighbours` is 0."""
    if cfg.approach != "shared" or cfg.content_neighbours == 0 or embeddings is None:
        return {}
    if cfg.shallow in ("none", "frozen"):
        raise ValueError(f"--content-neighbours {cfg.content_neighbours} feeds VASP's trained shallow path, "
                         f"which recipe {cfg.recipe!r} turns off or freezes: use --recipe vasp or vasp-edlae, "
                         "or --shallow ease")
    return {"content_similarity": ContentKNN(cfg.content_neighbours).fit(embeddings).similarity}
