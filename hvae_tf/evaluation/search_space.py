"""A hyperparameter search space as data: TrainConfig field name -> distribution.

Declared as data (and given as JSON on the command line) rather than as code in an objective, so
that a space is checked against TrainConfig's own rules before anything trains, is saved with the
study, and names the study it belongs to. The JSON form of each distribution:

    ["log", low, high]            a float, log-uniform (low > 0)
    ["float", low, high]          a float, uniform
    ["int", low, high]            a whole number, uniform; ["int", low, high, "log"]: log-uniform
    ["cat", [value, ...]]         one of the values

TensorFlow-free, so `evaluate.py tune` checks --space before TensorFlow loads.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from hvae_tf.config import TrainConfig, check_setting

# Settings a search may change: those of the model, the features and the fit. The split (the
# users a trial is scored on) and the outputs are the study's, not a trial's; the seed, the
# strategy and determinism change how a run is reproduced, not what is learnt.
SEARCHABLE_PARTS = frozenset({"features", "model", "fit"})
NOT_SEARCHABLE = frozenset({"seed", "strategy", "deterministic"})


@dataclasses.dataclass(frozen=True)
class Distribution:
    """One field's distribution: its kind ("log", "float", "int", "cat") and its arguments."""

    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def to_json(self) -> list:
        if self.kind == "cat":
            return ["cat", list(self.choices)]
        if self.kind == "int":
            return ["int", self.low, self.high, *(["log"] if self.log else [])]
        return [self.kind, self.low, self.high]

    def values_to_check(self) -> tuple:
        """The values that bound what the distribution can give: each must pass the field's rule."""
        return self.choices if self.kind == "cat" else (self.low, self.high)

    def suggest(self, trial, name: str):
        """The trial's value (an optuna.Trial), of the field's own type."""
        if self.kind == "cat":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            return int(trial.suggest_int(name, int(self.low), int(self.high), log=self.log))
        return float(trial.suggest_float(name, self.low, self.high, log=self.kind == "log"))


def log_float(low, high) -> Distribution:
    return Distribution("log", low, high)


def uniform(low, high) -> Distribution:
    return Distribution("float", low, high)


def int_range(low, high, log: bool = False) -> Distribution:
    return Distribution("int", low, high, log=log)


def choice(*values) -> Distribution:
    return Distribution("cat", choices=tuple(values))


# Mult-VAE's knobs (Liang et al.'s ranges, around their defaults), for every model.
COMMON_SPACE = {
    "lr": log_float(1e-4, 3e-3),
    "dropout": uniform(0.2, 0.7),
    "batch_size": int_range(25, 500, log=True),
    "anneal_cap": uniform(0.05, 0.6),
    "anneal_steps": int_range(500, 200_000, log=True),
    "weight_decay": choice(0.0, 1e-5, 1e-4),
    "hidden_dim": choice(300, 600, 1000),
    "latent_dim": choice(100, 200, 300),
}
# What only one recipe reads.
RECIPE_SPACE = {
    "recvae": {"kl_gamma": log_float(1e-4, 5e-2), "encoder_passes": int_range(1, 4)},
    "vasp": {"shallow_l2": log_float(1e-6, 1e-2), "shallow_speed": log_float(0.01, 1.0)},
}
# What a recipe's model ignores: with kl_gamma > 0, RecVAE's KL weight is per user, not annealed,
# so searching the annealing would only give the sampler dimensions that change nothing.
RECIPE_IGNORES = {"recvae": ("anneal_cap", "anneal_steps")}
# recvae-edlae tunes its VAE as recvae (its linear expert is a closed form chosen beforehand).
RECIPE_SPACE["recvae-edlae"], RECIPE_IGNORES["recvae-edlae"] = RECIPE_SPACE["recvae"], RECIPE_IGNORES["recvae"]


def default_space(recipe: str | None = None) -> dict[str, Distribution]:
    """The space for a recipe's model (None: the common knobs only)."""
    ignored = RECIPE_IGNORES.get(recipe, ())
    space = {**COMMON_SPACE, **RECIPE_SPACE.get(recipe, {})}
    return {name: dist for name, dist in space.items() if name not in ignored}


def _parse_distribution(name: str, spec) -> Distribution:
    shapes = ('["log", low, high], ["float", low, high], ["int", low, high] (+ "log") '
              'or ["cat", [values]]')
    if not isinstance(spec, list) or not spec or spec[0] not in ("log", "float", "int", "cat"):
        raise ValueError(f"{name}: {json.dumps(spec)} is not a distribution: write {shapes}")
    kind, args = spec[0], spec[1:]
    if kind == "cat":
        if len(args) != 1 or not isinstance(args[0], list) or not args[0]:
            raise ValueError(f"{name}: write [\"cat\", [value, ...]] with at least one value, "
                             f"got {json.dumps(spec)}")
        if not all(v is None or isinstance(v, (bool, int, float, str)) for v in args[0]):
            raise ValueError(f"{name}: categorical values must be numbers, strings, booleans or "
                             f"null, got {json.dumps(spec)}")
        return choice(*args[0])
    log = kind == "int" and len(args) == 3 and args[2] == "log"
    bounds = args[:2] if log else args
    if len(bounds) != 2 or not all(_number(v) for v in bounds):
        raise ValueError(f"{name}: write {shapes}, got {json.dumps(spec)}")
    low, high = bounds
    if not low < high:
        raise ValueError(f"{name}: low must be below high, got {json.dumps(spec)}")
    if kind == "int":
        if not all(float(v).is_integer() for v in bounds):
            raise ValueError(f"{name}: an int range takes whole numbers, got {json.dumps(spec)}")
        low, high = int(low), int(high)
    if (kind == "log" or log) and low <= 0:
        raise ValueError(f"{name}: a log range needs low > 0, got {json.dumps(spec)}")
    return Distribution(kind, low, high, log=log)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _field_kind(name: str) -> type:
    field = TrainConfig.__dataclass_fields__[name]
    return field.metadata["type"] or type(field.default)


def check_space(space: dict[str, Distribution], base: TrainConfig) -> None:
    """Each field must exist, be searchable, and get only values its rule (and the base
    configuration) accepts: a ValueError naming the field."""
    if not space:
        raise ValueError("the space is empty: give at least one field to search")
    fields = TrainConfig.__dataclass_fields__
    for name, dist in space.items():
        if name not in fields:
            raise ValueError(f"{name}: not a train.py setting (a TrainConfig field name, as "
                             f"'hidden_dim' for --hidden-dim)")
        if not fields[name].metadata["parts"] & SEARCHABLE_PARTS or name in NOT_SEARCHABLE:
            raise ValueError(f"{name}: not searchable: a search changes only model, movie-feature "
                             f"and training settings, not the split, seed or outputs")
        kind = _field_kind(name)
        if dist.kind != "cat" and kind not in (int, float):
            raise ValueError(f"{name} takes {kind.__name__} values: use [\"cat\", [...]]")
        if dist.kind in ("log", "float") and kind is int:
            raise ValueError(f"{name} takes whole numbers: use [\"int\", low, high] or [\"cat\", [...]]")
        for value in dist.values_to_check():
            if (kind is bool and not isinstance(value, bool)) or (kind is str and not isinstance(value, str)):
                raise ValueError(f"{name} takes {kind.__name__} values, got {value!r}")
            if kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
                raise ValueError(f"{name} takes whole numbers, got {value!r}")
            check_setting(name, value)
            problems = dataclasses.replace(base, **{name: value}).problems()
            if problems:
                raise ValueError(f"{name} = {value!r} cannot run with this command: {problems[0]}")


def parse_space(text: str, base: TrainConfig) -> dict[str, Distribution]:
    """A space from JSON text (or a .json file holding it), checked; ValueError names the field."""
    if not text.lstrip().startswith("{") and Path(text).is_file():
        text = Path(text).read_text()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error}): write e.g. '{{\"lr\": [\"log\", 1e-4, 3e-3]}}'") from None
    if not isinstance(raw, dict):
        raise ValueError("write a JSON object mapping field names to distributions")
    space = {name: _parse_distribution(name, spec) for name, spec in raw.items()}
    check_space(space, base)
    return space


def space_to_json(space: dict[str, Distribution]) -> dict[str, list]:
    return {name: dist.to_json() for name, dist in sorted(space.items())}

