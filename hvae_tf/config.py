"""Every setting of a training run, as flags for train.py and as the run folder's config.json.

One dataclass, so that the command line, the saved config, the run-folder check, the cache keys
and the model's constructor all read the same field names. Each field says which parts of a run
it belongs to, and the parts are read from it instead of being listed again elsewhere:

    split     the data and the user split (the split cache is keyed on these)
    features  the movie features and the Movie-VAE (the embeddings cache is keyed on these)
    model     the constructor arguments of the Standard-/Hybrid-VAE (`build_model(**cfg.part("model"))`)
    fit       how `model.fit` runs
    output    where results go and what is printed

This module imports neither TensorFlow nor anything that does, so flags are checked in a fraction
of a second, before TensorFlow loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Callable

from tf_datasets.hvae_movielens.releases import RELEASES

DATASETS = (*RELEASES, "generated")
CONTENT_FEATURES = ("genre", "genome", "imdb", "credits")  # what a movie's own data says
HYBRID_FEATURES = ("random", *CONTENT_FEATURES)  # what the Hybrid-VAE can be given
PAPER_FEATURES = ("random", "genre", "genome", "imdb")  # the paper's Table 2 columns
FEATURES = ("none", *HYBRID_FEATURES)  # "none": the Standard-VAE
FEATURE_LABELS = {"random": "random", "genre": "genre", "genome": "genome", "imdb": "IMDb",
                  "credits": "credits"}
APPROACHES = (1, 2, "shared")  # the paper's two, and the sharing hybrid (hvae_tf/models/shared.py)
SHARED_INPUTS = ("features", "embeddings")
# The sharing hybrid's own settings.
SHARED_FIELDS = ("shared_input", "shared_dim", "free_l2", "free_dropout", "shared_speed",
                 "content_neighbours", "select_new_within")
LIKELIHOODS = ("multinomial", "bernoulli")
ACTIVATIONS = ("tanh", "swish", "relu", "elu", "gelu")
CLICK_INPUTS = ("auto", "dense", "gathered")
PROTOCOLS = ("paper", "liang")
SCHEMES = ("Eval 1", "Eval 2")
HELD_OUT_SPLITS = ("test", "validation")  # the held-out users an evaluation scores
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
RECIPES = ("auto", "mult-vae", "recvae", "vasp", "vasp-edlae", "recvae-edlae")
ARCHITECTURES = ("mult-vae", "recvae")
PRIORS = ("standard", "composite")
SHALLOW_PATHS = ("none", "ease", "zeros", "frozen")
PARTS = ("split", "features", "model", "fit", "output")

# Fields that may change between a run and its continuation in the same run folder.
# run_dir among them: a folder is where it is, however it was spelled when saved (relative, or
# from before a copy), so the saved spelling never refuses the folder it sits in.
RESUMABLE_FIELDS = frozenset({"epochs", "export_dir", "export_version", "verbose", "strategy", "retrain",
                              "backup_every", "run_dir"})


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a setting's value must be: a test and the words that say it ("at least 1")."""

    holds: Callable[[Any], bool]
    requirement: str


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


AT_LEAST_1 = Rule(lambda v: _finite(v) and int(v) == v and v >= 1, "a whole number >= 1")
AT_LEAST_0 = Rule(lambda v: _finite(v) and int(v) == v and v >= 0, "a whole number >= 0")
POSITIVE = Rule(lambda v: _finite(v) and v > 0, "a finite number > 0")
NON_NEGATIVE = Rule(lambda v: _finite(v) and v >= 0, "a finite number >= 0")
RATE = Rule(lambda v: _finite(v) and 0 <= v < 1, "in [0, 1)")
FINITE = Rule(_finite, "a finite number")
SHARE = Rule(lambda v: _finite(v) and 0 < v <= 1, "in (0, 1]")


def absolute_path(value) -> str:
    """`value` absolute with its `..` and `.` folded in (symlinks kept), so that one folder has one
    spelling: `/a/main/../data` and `/a/grid/../data` must name the same files in a saved config."""
    return os.path.abspath(Path(value).expanduser())


def setting(default, parts: str = "", help: str | None = None, *, type=None, choices=None,
            rule: Rule | None = None, flag: str | None = None, action: str | None = None,
            group: str | None = None, path: bool = False):
    """A TrainConfig field: its default, the parts it belongs to (space-separated) and its flag,
    listed in --help under its first part (or `group`). A `path` is stored as `absolute_path`
    spells it, so the saved config means the same files from any working directory."""
    unknown = set(parts.split()) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}: choose from {PARTS}")
    return dataclasses.field(default=default, metadata={
        "parts": frozenset(parts.split()), "group": group or parts.split()[0], "help": help,
        "type": type, "choices": choices, "rule": rule, "flag": flag, "action": action, "path": path,
    })


def parse_approach(value) -> int | str:
    """--approach's value: 1 and 2 as numbers (as configs saved them), "shared" as a word."""
    text = str(value).strip()
    return int(text) if text.isdigit() else text


@dataclasses.dataclass
class TrainConfig:
    dataset: str = setting("20m", "split", "MovieLens release, or 'generated' (synthetic data in "
                           "ML-20M layout)", choices=DATASETS)
    data_dir: str | None = setting(None, help="TFDS data folder (default ~/tensorflow_datasets); "
                                   "splits and embeddings are cached there too", type=str,
                                   group="split", path=True)
    manual_dir: str | None = setting(None, "split", "folder holding the unzipped release (or its "
                                     "zip) and omdb.jsonl", type=str, path=True)
    generated_users: int = setting(138_493, "split", rule=AT_LEAST_1)
    generated_movies: int = setting(27_278, "split", rule=AT_LEAST_1)
    generated_ratings: int = setting(20_000_263, "split", rule=AT_LEAST_1)
    protocol: str = setting("paper", "split", choices=PROTOCOLS)
    fold: int = setting(0, "split", choices=(0, 1, 2))
    heldout_users: float | None = setting(
        None, "split", "validation and test users each: a count, or a fraction < 1 (default "
        "10,000 on the big releases, 10%% on small ones)", type=float, rule=POSITIVE)
    threshold: float = setting(3.5, "split", "a rating above this is a click", rule=FINITE)
    cold_movies: float = setting(0.0, "split", "this share of the movies with features become new "
                                 "movies: no training clicks and none in the held-out users' "
                                 "input, only their held-out clicks (0: none)", rule=RATE)
    validation_new_movies: float = setting(
        0.0, "split", "this share of the new movies is the validation users' alone: their "
        "new-movie metrics (and --select-new-within) count only these, the test users' only the "
        "others, so that what is chosen on validation says nothing about the test's new movies "
        "(0: both count every new movie)", rule=RATE)
    features: str = setting("genome", "features", "'none' trains the Standard-VAE; the others a "
                            "Hybrid-VAE", choices=FEATURES)
    approach: int | str = setting(1, "model", "1: flatten the N x d embeddings; 2: a dense layer "
                                  "collapses each to 1 value; shared: movie rows computed from "
                                  "the features by weights shared over all movies, plus a free "
                                  "part (beyond the paper)", type=parse_approach,
                                  choices=APPROACHES)
    shared_input: str = setting("features", "model", "what the sharing hybrid computes its movie "
                                "vectors from: the feature matrix (standardised) or the "
                                "Movie-VAE's embeddings (--embedding-dim wide)", choices=SHARED_INPUTS)
    shared_dim: int = setting(32, "model", "size of the sharing hybrid's movie vectors",
                              rule=AT_LEAST_1)
    free_l2: float = setting(0.0, "model", "L2 weight on the sharing hybrid's free per-movie "
                             "rows: larger leaves more to the shared part", rule=NON_NEGATIVE)
    free_dropout: float = setting(0.0, "model", "share of the movies the sharing hybrid trains as "
                                  "new ones in each step (their free rows left out), so its shared "
                                  "part learns to place a movie alone", rule=RATE)
    shared_speed: float = setting(1.0, "model", "the sharing hybrid's shared weights (what places "
                                  "a movie from its features) move at this multiple of the "
                                  "learning rate", rule=POSITIVE)
    content_neighbours: int = setting(0, "fit", "give the sharing hybrid's shallow path content "
                                      "kNN's evidence over this many neighbours per movie, for "
                                      "movies without their own weights (new ones, and with "
                                      "--free-dropout those training as new; 0: off)",
                                      rule=AT_LEAST_0)
    embedding_dim: int = setting(3, "features", "size of the movie embeddings (the Movie-VAE's "
                                 "latent size)", rule=AT_LEAST_1)
    trainable_embeddings: bool = setting(False, "model", "let the H-VAE's training move the movie "
                                         "embeddings", action="store_true")
    movie_vae_epochs: int = setting(100, "features", rule=AT_LEAST_1)
    vad_lexicon: str | None = setting(None, "features", "Warriner et al. (2013) CSV for the imdb "
                                      "features", type=str, path=True)
    liwc_dic: str | None = setting(None, "features", "LIWC .dic dictionary (default: Empath's open "
                                   "categories)", type=str, path=True)
    word_vectors: str | None = setting(None, "features", "pretrained word2vec file (default: "
                                       "trained on the plots)", type=str, path=True)
    recipe: str = setting("auto", "fit", "a named set of the settings below marked 'from the "
                          "recipe' (a flag given on the command line wins): mult-vae (Liang et "
                          "al. 2018, the paper's model), recvae (Shenbin et al. 2020), vasp (a "
                          "VAE with a shallow item-item path, Vancura & Kordik 2021), recvae-edlae "
                          "(RecVAE's logits plus EDLAE's, each trained alone); auto: the "
                          "best measured recipe up to 10,000 movies, mult-vae above",
                          choices=RECIPES)
    likelihood: str | None = setting(None, "model", "from the recipe", type=str, choices=LIKELIHOODS)
    architecture: str | None = setting(None, "model", "mult-vae: [N-600-200-600-N]; recvae: a "
                                       "densely connected, layer-normalised encoder and a linear "
                                       "decoder (from the recipe)", type=str, choices=ARCHITECTURES)
    prior: str | None = setting(None, "model", "standard: N(0, I); composite: RecVAE's mixture "
                                "of N(0, I), the previous epoch's posterior and a wide Gaussian "
                                "(from the recipe)", type=str, choices=PRIORS)
    kl_gamma: float | None = setting(None, "model", "RecVAE's per-user KL weight beta_u = gamma * "
                                     "clicks of u, in place of annealing (0: annealed beta; from "
                                     "the recipe)", type=float, rule=NON_NEGATIVE)
    encoder_passes: int | None = setting(None, "model", "RecVAE's alternating updates: this many "
                                         "encoder updates, then one decoder update without "
                                         "dropout, per batch (0: joint updates; from the recipe)",
                                         type=int, rule=AT_LEAST_0)
    shallow: str | None = setting(None, "model", "VASP's shallow item-item path beside the VAE, "
                                  "started from EASE's closed form or from zeros; frozen: the "
                                  "closed form kept as it is, its calibrated logits added to the "
                                  "VAE's when ranking, the VAE trained alone (none: off; from the "
                                  "recipe)", type=str, choices=SHALLOW_PATHS)
    shallow_l2: float | None = setting(None, "model", "L2 weight on the shallow path (from the "
                                       "recipe)", type=float, rule=NON_NEGATIVE)
    shallow_speed: float | None = setting(None, "model", "the shallow path's weights move at this "
                                          "share of the learning rate, so that a start from EASE "
                                          "is refined, not washed out (from the recipe)", type=float,
                                          rule=SHARE)
    shallow_init_l2: float | None = setting(None, "fit", "the closed form's L2 for the shallow "
                                            "path's start (from the recipe)", type=float,
                                            rule=POSITIVE)
    shallow_init_dropout: float | None = setting(None, "fit", "EDLAE's dropout for the shallow "
                                                 "path's start (Steck 2020): the closed form of a "
                                                 "linear autoencoder trained with that input "
                                                 "dropout, which penalises popular movies' weights "
                                                 "more; 0: EASE (from the recipe)", type=float,
                                                 rule=RATE)
    hidden_dim: int = setting(600, "model", rule=AT_LEAST_1)
    activation: str | None = setting(None, "model", "the hidden layers' activation (Mult-VAE's: "
                                     "tanh; RecVAE's: swish; from the recipe)", type=str,
                                     choices=ACTIVATIONS)
    latent_dim: int = setting(200, "model", rule=AT_LEAST_1)
    click_input: str = setting("auto", "model", "how the first layer multiplies a batch's clicks: "
                               "scattered into a dense matmul, or a kernel row gathered per click; "
                               "auto: dense when users click 5%% of the movies or more",
                               choices=CLICK_INPUTS)
    dropout: float = setting(0.5, "model", "share of a user's clicks dropped from the encoder's "
                             "input in training", rule=RATE)
    normalize_input: bool = setting(True, "model", "feed the click row as is, not L2-normalised",
                                    flag="--no-normalize-input", action="store_false")
    anneal_steps: int | None = setting(None, "model", "steps over which the KL weight rises "
                                       "linearly to --anneal-cap (0: the cap from the first step; "
                                       "from the recipe and the data)", type=int, rule=AT_LEAST_0)
    anneal_cap: float | None = setting(None, "model", "from the recipe", type=float, rule=NON_NEGATIVE)
    weight_decay: float = setting(0.0, "model", "L2 penalty weight on the dense kernels, added to "
                                  "the loss (Mult-VAE's lambda; 0 = off)", rule=NON_NEGATIVE)
    epochs: int = setting(200, "fit", rule=AT_LEAST_1)
    batch_size: int | None = setting(None, "fit", "from the recipe and the data", type=int,
                                     rule=AT_LEAST_1)
    patience: int | None = setting(None, "fit", "stop when the best validation epoch is this many "
                                   "epochs back (0: run every epoch; from the recipe)", type=int,
                                   rule=AT_LEAST_0)
    select_new_within: float | None = setting(
        None, "fit", "keep the epoch whose validation NDCG@100 on new movies (ranked among the new "
        "movies) is best among the epochs within this much of the best overall validation "
        "NDCG@100 (sharing hybrid with --cold-movies; default: the best overall epoch)",
        type=float, rule=NON_NEGATIVE)
    lr: float = setting(1e-3, "fit", rule=POSITIVE)
    seed: int = setting(98765, "split features model fit")
    deterministic: bool = setting(True, "fit", "allow non-deterministic (faster) kernels",
                                  flag="--no-deterministic", action="store_false")
    strategy: str = setting("auto", "fit", "auto: MirroredStrategy over all GPUs when there are "
                            "several; multiworker: MultiWorkerMirroredStrategy from TF_CONFIG",
                            choices=STRATEGIES)
    verbose: int = setting(1, "output", choices=(0, 1, 2))
    run_dir: str | None = setting(None, "output", "run folder (default runs/<model name>)", type=str,
                                  path=True)
    export_dir: str = setting("saved_models", "output", "TF Serving base folder: the model goes to "
                              "<dir>/<name>/<version>/", path=True)
    export_k: int = setting(100, "output", "how many movies the served model returns",
                            rule=AT_LEAST_1)
    export_version: int | None = setting(None, "output", type=int)
    backup_every: float = setting(120.0, "output", "seconds between backups for resuming a killed "
                                  "run, written at epoch ends (0: every epoch)", rule=NON_NEGATIVE)
    retrain: bool = setting(False, "output", "train again from scratch when the run folder holds a "
                            "finished (or interrupted) run of this configuration", action="store_true")

    def part(self, name: str) -> dict[str, Any]:
        """The settings of one part of the run, e.g. `cfg.part("model")` for the model's constructor."""
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r}: choose from {', '.join(PARTS)}")
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if name in f.metadata["parts"]}

    @property
    def model_name(self) -> str:
        """A name that says what was trained; it names the run folder and the served model."""
        approach = "shared" if self.approach == "shared" else f"a{self.approach}"
        kind = "vae" if self.features == "none" else f"hvae-{self.features}-{approach}"
        likelihood = f"-{self.likelihood}" if self.likelihood else ""
        return f"{self.dataset}-{self.protocol}-fold{self.fold}-{kind}-{self.recipe}{likelihood}"

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir) if self.run_dir else Path("runs") / self.model_name

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        saved = json.loads(text)
        # Saved before recipes existed: every setting then was the paper's (mult-vae) one.
        saved.setdefault("recipe", "mult-vae")
        # Saved before the sharing hybrid had free dropout: it trained with none.
        saved.setdefault("free_dropout", 0.0)
        saved.setdefault("shared_speed", 1.0)  # saved before it existed: the shared weights moved at 1
        saved.setdefault("content_neighbours", 0)  # saved before it existed: no content path
        # Saved before recipes chose the shallow path's start: it was EASE with L2 500.
        saved.setdefault("shallow_init_l2", 500.0)
        saved.setdefault("shallow_init_dropout", 0.0)
        for f in dataclasses.fields(cls):  # saved before paths were normalised: `a/../b` meant `b`
            if f.metadata["path"] and saved.get(f.name) is not None:
                saved[f.name] = absolute_path(saved[f.name])
        return cls(**{k: v for k, v in saved.items() if k in known})

    def differences(self, other: "TrainConfig") -> dict[str, tuple]:
        """Fields that differ and would make two runs incomparable (resumable ones ignored)."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return {k: (theirs[k], mine[k]) for k in mine
                if k not in RESUMABLE_FIELDS and mine[k] != theirs[k]}

    def result_differences(self, other: "TrainConfig") -> dict[str, tuple]:
        """Fields that differ and change what a run computes (epochs included): two runs agreeing
        on all of them are the same experiment."""
        same_result = {"verbose", "strategy"}
        if self.approach != "shared" and other.approach != "shared":  # the sharing hybrid's own
            same_result |= set(SHARED_FIELDS)
        return {f.name: (getattr(other, f.name), getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.metadata["parts"] & {"split", "features", "model", "fit"}
                and f.name not in same_result and getattr(self, f.name) != getattr(other, f.name)}

    def problems(self) -> list[str]:
        """Every value and combination of values that cannot work, each naming its flag."""
        found = []
        for f in dataclasses.fields(self):
            value, rule = getattr(self, f.name), f.metadata["rule"]
            if value is not None and rule is not None and not rule.holds(value):
                found.append(f"{flag_of(f.name)} must be {rule.requirement}, got {value!r}")
        if self.features == "none" and self.trainable_embeddings:
            found.append("--trainable-embeddings needs movie embeddings: pick --features "
                         + "/".join(HYBRID_FEATURES))
        if self.approach == "shared" and self.trainable_embeddings:
            found.append("--trainable-embeddings applies to approaches 1 and 2: the sharing hybrid "
                         "(--approach shared) learns its movie vectors from fixed features")
        defaults = TrainConfig()
        for name in SHARED_FIELDS:
            if self.approach != "shared" and getattr(self, name) != getattr(defaults, name):
                found.append(f"{flag_of(name)} only applies with --approach shared")
        if self.validation_new_movies and not self.cold_movies > 0:
            found.append("--validation-new-movies sets aside some of the new movies: it needs "
                         "--cold-movies FRACTION")
        if self.select_new_within is not None and not self.cold_movies > 0:
            found.append("--select-new-within weighs the ranking of new movies: it needs "
                         "--cold-movies FRACTION")
        for name in ("generated_users", "generated_movies", "generated_ratings"):
            if self.dataset != "generated" and getattr(self, name) != getattr(defaults, name):
                found.append(f"{flag_of(name)} only applies with --dataset generated")
        return found


def describe_differences(diff: dict[str, tuple]) -> str:
    """"field: saved -> asked, ..." for the (saved, asked) pairs `differences` returns."""
    return ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(diff.items()))


def flag_of(name: str) -> str:
    """The command-line flag of a TrainConfig field."""
    return f"--{name.replace('_', '-')}"


def check_setting(name: str, value) -> None:
    """The rule or choices of TrainConfig's field `name`, for code that takes the setting as an
    argument (the models): a ValueError naming the argument, as the flag is checked."""
    meta = TrainConfig.__dataclass_fields__[name].metadata
    if meta["choices"] and value not in meta["choices"]:
        raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(map(str, meta['choices']))}")
    if meta["rule"] and not meta["rule"].holds(value):
        raise ValueError(f"{name} must be {meta['rule'].requirement}, got {value!r}")


_GROUP_TITLES = {"split": "data", "features": "movie features", "model": "model",
                 "fit": "training", "output": "outputs"}


def build_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """train.py's flags, one per TrainConfig field; evaluate.py's grid takes the same ones
    (add_help=False for a parent parser)."""
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train a Standard-VAE or Hybrid-VAE on MovieLens and export it for TF Serving.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        add_help=add_help,
    )
    groups = {part: p.add_argument_group(title) for part, title in _GROUP_TITLES.items()}
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        options = {"dest": f.name, "help": meta["help"]}
        if meta["action"]:
            options["action"] = meta["action"]
        else:
            options.update(default=f.default, type=meta["type"] or type(f.default))
            if meta["choices"]:
                options["choices"] = meta["choices"]
        groups[meta["group"]].add_argument(meta["flag"] or flag_of(f.name), **options)
    return p


def parse_args(argv=None) -> TrainConfig:
    parser = build_parser()
    return config_from_args(parser, parser.parse_args(argv))


def config_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> TrainConfig:
    """The config of parsed flags; the first problem found ends the program naming its flag."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in known}
    heldout = values["heldout_users"]
    if heldout is not None and _finite(heldout) and heldout >= 1:
        values["heldout_users"] = int(heldout)
    for f in dataclasses.fields(TrainConfig):
        if f.metadata["path"] and values.get(f.name) is not None:
            values[f.name] = absolute_path(values[f.name])
    cfg = TrainConfig(**values)
    for problem in cfg.problems():
        parser.error(problem)
    return cfg
