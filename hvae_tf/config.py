"""Every setting of a training run, as flags for train.py and as the run folder's config.json.

One dataclass so that the command line, the saved config, the run-folder check and the cache keys
all read the same field names.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from tf_datasets.hvae_movielens.releases import RELEASES

DATASETS = (*RELEASES, "generated")
FEATURES = ("none", "random", "genre", "genome", "imdb")
LIKELIHOODS = ("multinomial", "bernoulli")
PROTOCOLS = ("paper", "liang")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")

# Fields that may change between a run and its continuation in the same run folder.
RESUMABLE_FIELDS = frozenset({"epochs", "export_dir", "export_version", "verbose", "strategy"})


@dataclasses.dataclass
class TrainConfig:
    dataset: str = "20m"
    data_dir: str | None = None
    manual_dir: str | None = None
    generated_users: int = 138_493
    generated_movies: int = 27_278
    generated_ratings: int = 20_000_263
    protocol: str = "paper"
    fold: int = 0
    heldout_users: float | None = None
    threshold: float = 3.5
    features: str = "genome"
    approach: int = 1
    embedding_dim: int = 3
    trainable_embeddings: bool = False
    movie_vae_epochs: int = 100
    vad_lexicon: str | None = None
    liwc_dic: str | None = None
    word_vectors: str | None = None
    likelihood: str = "multinomial"
    hidden_dim: int = 600
    latent_dim: int = 200
    dropout: float = 0.5
    normalize_input: bool = True
    epochs: int = 200
    batch_size: int = 500
    lr: float = 1e-3
    anneal_steps: int = 200_000
    anneal_cap: float = 0.2
    weight_decay: float = 0.0
    seed: int = 98765
    deterministic: bool = True
    strategy: str = "auto"
    run_dir: str | None = None
    export_dir: str = "saved_models"
    export_k: int = 100
    export_version: int | None = None
    verbose: int = 1

    @property
    def model_name(self) -> str:
        """A name that says what was trained; it names the run folder and the served model."""
        kind = "vae" if self.features == "none" else f"hvae-{self.features}-a{self.approach}"
        return f"{self.dataset}-{self.protocol}-fold{self.fold}-{kind}-{self.likelihood}"

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir) if self.run_dir else Path("runs") / self.model_name

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})

    def differences(self, other: "TrainConfig") -> dict[str, tuple]:
        """Fields that differ and would make two runs incomparable (resumable ones ignored)."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return {k: (theirs[k], mine[k]) for k in mine
                if k not in RESUMABLE_FIELDS and mine[k] != theirs[k]}


def _choice_error(parser: argparse.ArgumentParser, flag: str, value, allowed) -> None:
    parser.error(f"{flag} {value!r} is not one of {', '.join(map(str, allowed))}")


def build_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """train.py's flags; evaluate.py's grid takes the same ones (add_help=False for a parent)."""
    defaults = TrainConfig()
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train a Standard-VAE or Hybrid-VAE on MovieLens and export it for TF Serving.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        add_help=add_help,
    )
    data = p.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default=defaults.dataset,
                      help="MovieLens release, or 'generated' (synthetic data in ML-20M layout)")
    data.add_argument("--data-dir", help="TFDS data folder (default ~/tensorflow_datasets)")
    data.add_argument("--manual-dir", help="folder holding the unzipped release (or its zip) and omdb.jsonl")
    data.add_argument("--generated-users", type=int, default=defaults.generated_users)
    data.add_argument("--generated-movies", type=int, default=defaults.generated_movies)
    data.add_argument("--generated-ratings", type=int, default=defaults.generated_ratings)
    data.add_argument("--protocol", choices=PROTOCOLS, default=defaults.protocol)
    data.add_argument("--fold", type=int, choices=(0, 1, 2), default=defaults.fold)
    data.add_argument("--heldout-users", type=float,
                      help="validation and test users each: a count, or a fraction < 1 "
                           "(default 10,000 on the big releases, 10%% on small ones)")
    data.add_argument("--threshold", type=float, default=defaults.threshold,
                      help="a rating above this is a click")
    feats = p.add_argument_group("movie features")
    feats.add_argument("--features", choices=FEATURES, default=defaults.features,
                       help="'none' trains the Standard-VAE; the others a Hybrid-VAE")
    feats.add_argument("--approach", type=int, choices=(1, 2), default=defaults.approach,
                       help="1: flatten the N x d embeddings; 2: a dense layer collapses each to 1 value")
    feats.add_argument("--embedding-dim", type=int, default=defaults.embedding_dim)
    feats.add_argument("--trainable-embeddings", action="store_true")
    feats.add_argument("--movie-vae-epochs", type=int, default=defaults.movie_vae_epochs)
    feats.add_argument("--vad-lexicon", help="Warriner et al. (2013) CSV for the imdb features")
    feats.add_argument("--liwc-dic", help="LIWC .dic dictionary (default: Empath's open categories)")
    feats.add_argument("--word-vectors", help="pretrained word2vec file (default: trained on the plots)")
    model = p.add_argument_group("model")
    model.add_argument("--likelihood", choices=LIKELIHOODS, default=defaults.likelihood)
    model.add_argument("--hidden-dim", type=int, default=defaults.hidden_dim)
    model.add_argument("--latent-dim", type=int, default=defaults.latent_dim)
    model.add_argument("--dropout", type=float, default=defaults.dropout)
    model.add_argument("--no-normalize-input", dest="normalize_input", action="store_false")
    fit = p.add_argument_group("training")
    fit.add_argument("--epochs", type=int, default=defaults.epochs)
    fit.add_argument("--batch-size", type=int, default=defaults.batch_size)
    fit.add_argument("--lr", type=float, default=defaults.lr)
    fit.add_argument("--anneal-steps", type=int, default=defaults.anneal_steps,
                     help="steps over which the KL weight rises linearly to --anneal-cap")
    fit.add_argument("--anneal-cap", type=float, default=defaults.anneal_cap)
    fit.add_argument("--weight-decay", type=float, default=defaults.weight_decay,
                     help="L2 penalty weight on the dense kernels, added to the loss "
                          "(Mult-VAE's lambda; 0 = off)")
    fit.add_argument("--seed", type=int, default=defaults.seed)
    fit.add_argument("--no-deterministic", dest="deterministic", action="store_false",
                     help="allow non-deterministic (faster) kernels")
    fit.add_argument("--strategy", choices=STRATEGIES, default=defaults.strategy,
                     help="auto: MirroredStrategy over all GPUs when there are several; "
                          "multiworker: MultiWorkerMirroredStrategy from TF_CONFIG")
    fit.add_argument("--verbose", type=int, choices=(0, 1, 2), default=defaults.verbose)
    out = p.add_argument_group("outputs")
    out.add_argument("--run-dir", help="run folder (default runs/<model name>)")
    out.add_argument("--export-dir", default=defaults.export_dir,
                     help="TF Serving base folder: the model goes to <dir>/<name>/<version>/")
    out.add_argument("--export-k", type=int, default=defaults.export_k,
                     help="how many movies the served model returns")
    out.add_argument("--export-version", type=int)
    return p


def parse_args(argv=None) -> TrainConfig:
    parser = build_parser()
    return config_from_args(parser, parser.parse_args(argv))


def config_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> TrainConfig:
    """Check the flags together (parser.error names the flag) and make the config."""
    checks = [
        (args.epochs < 1, "--epochs must be at least 1"),
        (args.batch_size < 1, "--batch-size must be at least 1"),
        (not 0 <= args.dropout < 1, "--dropout must be in [0, 1)"),
        (not 0 <= args.anneal_cap, "--anneal-cap must be >= 0"),
        (not 0 <= args.weight_decay, "--weight-decay must be >= 0"),
        (args.anneal_steps < 1, "--anneal-steps must be at least 1"),
        (args.lr <= 0, "--lr must be positive"),
        (args.heldout_users is not None and args.heldout_users <= 0, "--heldout-users must be positive"),
        (args.export_k < 1, "--export-k must be at least 1"),
        (args.features in ("none",) and args.trainable_embeddings,
         "--trainable-embeddings needs movie embeddings: pick --features random/genre/genome/imdb"),
        (args.dataset != "generated" and args.generated_users != TrainConfig.generated_users,
         "--generated-users only applies with --dataset generated"),
    ]
    for failed, message in checks:
        if failed:
            parser.error(message)
    heldout = args.heldout_users
    if heldout is not None and heldout >= 1:
        heldout = int(heldout)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in known}
    return TrainConfig(**{**values, "heldout_users": heldout})
