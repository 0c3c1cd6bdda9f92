"""From flags to a ready split: build or reuse the TFDS data, then build or reuse the user split.

Splitting ML-20M takes tens of seconds and every run of the experiment grid needs the same folds,
so a split is cached under the data folder, keyed by everything that determines it: the split
settings and the fingerprint of the raw files the data came from, so that other data (a subset,
a fixed download) never reuses a split, nor the embeddings cached under its key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hvae_tf.data import loading, protocols
from hvae_tf.data.schema import MovieLensData
from hvae_tf.synthetic import generate


def default_data_dir(data_dir: str | None) -> Path:
    return Path(data_dir).expanduser() if data_dir else Path("~/tensorflow_datasets").expanduser()


def generated_release_dir(cfg) -> Path:
    """Generated data lives in its own folder per generator version, scale and seed, never mixed
    with a real 20m nor with what an older generator wrote."""
    return default_data_dir(cfg.data_dir) / "hvae_generated" / (
        f"v{generate.GENERATOR_VERSION}-u{cfg.generated_users}-m{cfg.generated_movies}"
        f"-r{cfg.generated_ratings}-s{cfg.seed}"
    )


def load_data(cfg) -> MovieLensData:
    """The release the flags name; 'generated' is written once (ML-20M layout) and built as 20m."""
    if cfg.dataset != "generated":
        return loading.load_movielens(cfg.dataset, data_dir=cfg.data_dir, manual_dir=cfg.manual_dir)
    raw = generated_release_dir(cfg) / "raw"
    if not (raw / "ratings.csv").exists():
        generate.generate(
            raw, n_users=cfg.generated_users, n_movies=cfg.generated_movies,
            n_ratings=cfg.generated_ratings, seed=cfg.seed,
        )
    return loading.load_movielens(
        "20m", data_dir=str(generated_release_dir(cfg) / "tfds"), manual_dir=str(raw)
    )


def split_key(cfg, data: MovieLensData) -> str:
    """A name for the fold, from every setting of the config's split part, the data's source
    fingerprint (which stands for the manual dir's files, wherever they lie) and the version of
    the protocols' code."""
    if not data.fingerprint:
        raise ValueError(f"MovieLens {data.release} data without a source fingerprint cannot key "
                         "a cache: load it with loading.load_movielens")
    fields = cfg.part("split")
    fields.pop("manual_dir")
    for name in ("cold_movies", "validation_new_movies"):  # splits cached before these keep their names
        if not fields[name]:
            fields.pop(name)
    fields["data_fingerprint"] = data.fingerprint
    fields["protocol_version"] = protocols.PROTOCOL_VERSION
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    return f"{cfg.dataset}-{cfg.protocol}-fold{cfg.fold}-{digest}"


def prepare(cfg, verbose: bool = True) -> tuple[MovieLensData, protocols.Split]:
    """The data and the fold the flags ask for, each built once and reused after."""
    data = load_data(cfg)
    if verbose:  # generated data has its own sizes, not the release's published counts
        print(loading.summary(data, check_counts=cfg.dataset != "generated"))
    cache = default_data_dir(cfg.data_dir) / "hvae_splits" / f"{split_key(cfg, data)}.npz"
    if cache.exists():
        split = protocols.Split.load(cache)
    else:
        split = protocols.make_split(
            data, protocol=cfg.protocol, fold=cfg.fold, seed=cfg.seed,
            heldout_users=cfg.heldout_users, threshold=cfg.threshold, cold_movies=cfg.cold_movies,
            validation_new_movies=cfg.validation_new_movies,
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        split.save(cache)
    if verbose:
        print(split.summary())
    return data, split
