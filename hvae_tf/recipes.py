"""Recipes: named sets of model and training settings, and a schedule fitted to the data.

A user who wants RecVAE should not need to know its eight settings, and ML-20M's schedule (KL
annealed over 200,000 updates of 500 users) does not fit a release with 5,000 users, where it is
about ten updates an epoch and the KL weight never moves. So every setting marked "from the
recipe" is None until `resolve` fills it: first from the flag the user gave, then from the recipe,
then, for the data-fitted settings, from the number of training users.

`resolve` depends only on the configuration and the data's size, so train.py and evaluate.py
(which rebuilds a run's model) get the same settings from the same config.json.
"""

from __future__ import annotations

import dataclasses
import math

from hvae_tf.config import TrainConfig

# The settings a recipe gives. DATA_FITTED: the value is computed from the data (see resolve).
DATA_FITTED = "fitted to the data"
RECIPE_SETTINGS = {
    "mult-vae": {  # Liang et al. (2018), as published: train.py's settings before recipes, bit for bit
        "likelihood": "multinomial", "architecture": "mult-vae", "activation": "tanh",
        "prior": "standard", "kl_gamma": 0.0, "encoder_passes": 0, "shallow": "none",
        "shallow_l2": 0.0, "shallow_speed": 1.0, "shallow_init_l2": 500.0, "shallow_init_dropout": 0.0,
        "anneal_steps": 200_000, "anneal_cap": 0.2, "batch_size": 500, "patience": 0,
    },
    "recvae": {  # Shenbin et al. (2020): composite prior, beta_u = gamma |x_u|, alternating updates
        "likelihood": "multinomial", "architecture": "recvae", "activation": "swish",
        "prior": "composite", "kl_gamma": 0.005, "encoder_passes": 3, "shallow": "none",
        "shallow_l2": 0.0, "shallow_speed": 1.0, "shallow_init_l2": 500.0, "shallow_init_dropout": 0.0,
        "anneal_steps": 0, "anneal_cap": 0.2, "batch_size": DATA_FITTED, "patience": 20,
    },
    "vasp": {  # Vancura & Kordik (2021): a deep VAE times a shallow item-item path, Bernoulli loss
        "likelihood": "bernoulli", "architecture": "recvae", "activation": "swish",
        "prior": "standard", "kl_gamma": 0.0, "encoder_passes": 0, "shallow": "ease",
        "shallow_l2": 1e-4, "shallow_speed": 0.1, "shallow_init_l2": 500.0, "shallow_init_dropout": 0.0,
        "anneal_steps": DATA_FITTED, "anneal_cap": 0.2, "batch_size": DATA_FITTED, "patience": 20,
    },
}
# VASP with its shallow path started from EDLAE (Steck 2020) instead of EASE: the closed form of a
# linear autoencoder trained with input dropout, a better start on small catalogues. Its L2 and
# dropout were chosen on ML-1M's fold-0 validation users (results/README.md).
RECIPE_SETTINGS["vasp-edlae"] = {**RECIPE_SETTINGS["vasp"], "shallow_init_l2": 300.0,
                                 "shallow_init_dropout": 0.5}
# RecVAE trained alone, its logits added at ranking to EDLAE's closed form calibrated as click logits
# (a product of two experts, neither fitted to the other's residual): trained jointly, VASP's deep
# part learns only what the linear path misses and overfits it on a small catalogue. EDLAE's
# settings are vasp-edlae's.
RECIPE_SETTINGS["recvae-edlae"] = {**RECIPE_SETTINGS["recvae"], "shallow": "frozen", "shallow_init_l2": 300.0,
                                   "shallow_init_dropout": 0.5}
RECIPE_FIELDS = tuple(RECIPE_SETTINGS["mult-vae"])  # every setting a recipe decides

# "auto" on catalogues up to this size: the recipe with the best validation NDCG@100 measured on
# ML-1M (results/README.md). Above it, the paper's model, so that ML-20M trains what was published.
AUTO_MAX_MOVIES = 10_000
AUTO_SMALL_CATALOGUE = "recvae-edlae"
AUTO_LARGE_CATALOGUE = "mult-vae"

UPDATES_PER_EPOCH = 100  # the batch size gives about this many updates an epoch ...
BATCH_SIZE_RANGE = (25, 500)  # ... within these bounds, in steps of 25
ANNEAL_SHARE = 0.1  # the KL weight reaches its cap after this share of the planned updates


@dataclasses.dataclass(frozen=True)
class Resolved:
    config: TrainConfig  # every "from the recipe" setting filled; `recipe` as asked
    recipe: str  # the recipe used ("auto" resolved)
    choices: tuple[str, ...]  # one line per setting not given on the command line


def recipe_for(asked: str, n_movies: int) -> tuple[str, str]:
    """The concrete recipe and why it was chosen."""
    if asked != "auto":
        return asked, f"--recipe {asked}"
    if n_movies <= AUTO_MAX_MOVIES:
        return AUTO_SMALL_CATALOGUE, (f"--recipe auto: {n_movies:,} movies <= {AUTO_MAX_MOVIES:,}, "
                                      "the best recipe measured on ML-1M")
    return AUTO_LARGE_CATALOGUE, (f"--recipe auto: {n_movies:,} movies > {AUTO_MAX_MOVIES:,}, the "
                                  "paper's model")


def fitted_batch_size(n_users: int) -> int:
    low, high = BATCH_SIZE_RANGE
    return int(min(high, max(low, 25 * round(n_users / UPDATES_PER_EPOCH / 25))))


def resolve(cfg: TrainConfig, n_users: int, n_movies: int) -> Resolved:
    """Fill every unset recipe setting of `cfg` for `n_users` training users and `n_movies` movies."""
    recipe, why = recipe_for(cfg.recipe, n_movies)
    given = RECIPE_SETTINGS[recipe]
    values, choices = {}, [why]
    for name in RECIPE_FIELDS:
        if name not in ("batch_size", "anneal_steps") and getattr(cfg, name) is None:
            values[name] = given[name]
    if cfg.batch_size is None:
        if given["batch_size"] == DATA_FITTED:
            values["batch_size"] = fitted_batch_size(n_users)
            choices.append(f"batch size {values['batch_size']}: about {UPDATES_PER_EPOCH} updates an "
                           f"epoch for {n_users:,} training users")
        else:
            values["batch_size"] = given["batch_size"]
    batch_size = values.get("batch_size", cfg.batch_size)
    kl_gamma = values.get("kl_gamma", cfg.kl_gamma)
    if cfg.anneal_steps is None:
        if given["anneal_steps"] == DATA_FITTED:
            planned = cfg.epochs * math.ceil(n_users / batch_size)
            values["anneal_steps"] = max(1, round(ANNEAL_SHARE * planned))
            cap = values.get("anneal_cap", cfg.anneal_cap)
            choices.append(f"KL weight annealed to {cap} over {values['anneal_steps']:,} updates: "
                           f"{ANNEAL_SHARE:.0%} of the {planned:,} planned ({cfg.epochs} epochs)")
        else:
            values["anneal_steps"] = given["anneal_steps"]
    if kl_gamma > 0:
        choices.append(f"KL weight per user: {kl_gamma} x the user's clicks (no annealing)")
    filled = {k: v for k, v in values.items() if k not in ("batch_size", "anneal_steps")}
    if filled:
        choices.append(f"{recipe} recipe: " + ", ".join(f"{k}={v}" for k, v in filled.items()))
    return Resolved(dataclasses.replace(cfg, **values), recipe, tuple(choices))
