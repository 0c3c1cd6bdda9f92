"""The Standard-VAE: Mult-VAE's [N-600-200-600-N] tanh VAE over a user's click row, with the
options that let a VAE pass EASE (RecVAE's, VASP's), each off in the paper's configuration.

Input batches are padded int64 movie-index lists (see click_input.py); the sparse click matrix is
built inside the model so that `fit` works under tf.distribute strategies.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from hvae_tf.config import check_setting
from hvae_tf.models.annealing import LinearKLAnnealing
from hvae_tf.models.base import VariationalAutoencoder
from hvae_tf.models.click_input import ClickDense, click_matrix, click_weights
from hvae_tf.models.losses import gaussian_kl, log_likelihood, product_log_likelihood
from hvae_tf.models.priors import composite_prior_kl
from hvae_tf.models.sampling import Sampling
from hvae_tf.models.shallow import ShallowPath


def _seed(seed: int | None, offset: int) -> int | None:
    """A distinct seed per part, so parts of one model don't draw the same numbers."""
    return None if seed is None else seed + offset


@keras.saving.register_keras_serializable(package="hvae_tf")
class StandardVAE(VariationalAutoencoder):
    """Mult-VAE with a choice of likelihood, and optional parts from later papers.

    loss = -log p(x_u | z_u) + beta * KL(q(z_u | x_u) || N(0, I)), averaged over the users of the
    batch, beta annealed linearly to `anneal_cap` over `anneal_steps` updates. The update counter
    is a model variable, so it is saved with the weights and shared by all replicas.
    Training minimises loss + weight_decay * sum ||W||^2 over the kernels (Mult-VAE's L2 penalty,
    its `lam`; biases and movie embeddings are not penalised); the logged losses leave it out.
    Training samples z; inference (`scores`, `predict`, `evaluate`) uses the mean.

    Options (defaults: Mult-VAE as published):
    - architecture "recvae": RecVAE's encoder (Shenbin et al. 2020): five densely connected
      layers with layer normalisation, and a linear decoder.
    - prior "composite": RecVAE's prior, a mixture of N(0, I), the posterior of the encoder as
      it was at the last `refresh_prior` (train.py: every epoch end) and a wide N(0, e^10 I).
    - kl_gamma > 0: RecVAE's per-user KL weight beta_u = kl_gamma * |x_u| in place of annealing.
    - encoder_passes > 0: RecVAE's alternating updates, that many encoder updates (denoised
      input) then one decoder update (the whole input) per batch.
    - shallow "ease"/"zeros": VASP's shallow path (Vancura & Kordik 2021), an item-item layer
      whose sigmoid multiplies the VAE's; started from `shallow_weights` and `shallow_bias`
      (EASE as logits) or zeros, moving at `shallow_speed` times the learning rate.
    - shallow "frozen": the path kept at its start, its logits added to the VAE's when ranking;
      the VAE trains on its own likelihood, so the two are experts trained apart.
    - new_movies: columns of movies without training clicks (the new-movie protocol). This model
      has nothing to place them by, so it learns them as a retrain today would: movies nobody
      clicked. A model that places them by their features (`places_new_movies`) leaves them out
      of the reconstruction instead, since nobody could click them.
    """

    places_new_movies = False  # True: new movies' rows come from their features, not their clicks

    def __init__(
        self,
        n_movies: int,
        hidden_dim: int = 600,
        activation: str = "tanh",
        latent_dim: int = 200,
        likelihood: str = "multinomial",
        dropout: float = 0.5,
        normalize_input: bool = True,
        anneal_steps: int = 200_000,
        anneal_cap: float = 0.2,
        weight_decay: float = 0.0,
        architecture: str = "mult-vae",
        prior: str = "standard",
        kl_gamma: float = 0.0,
        encoder_passes: int = 0,
        shallow: str = "none",
        shallow_l2: float = 0.0,
        shallow_speed: float = 1.0,
        click_input: str = "gathered",
        seed: int | None = None,
        shallow_weights=None,
        shallow_bias: float = 0.0,
        new_movies=(),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.remember_settings(locals())
        for start in ("shallow_weights", "shallow_bias"):  # a start, not a setting: the weights hold it
            self.settings.pop(start)
        if int(n_movies) != n_movies or n_movies < 1:
            raise ValueError(f"n_movies must be a positive whole number, got {n_movies!r}")
        for name in ("hidden_dim", "activation", "latent_dim", "likelihood", "dropout", "weight_decay",
                     "architecture", "prior", "kl_gamma", "encoder_passes", "shallow", "shallow_l2",
                     "shallow_speed"):
            check_setting(name, locals()[name])
        self.n_movies = int(n_movies)
        self.hidden_dim = int(hidden_dim)
        self.latent_dim = int(latent_dim)
        self.likelihood = likelihood
        self.dropout = float(dropout)
        self.normalize_input = bool(normalize_input)
        self.annealing = LinearKLAnnealing(int(anneal_steps), float(anneal_cap))
        self.weight_decay = float(weight_decay)
        self.architecture, self.prior = architecture, prior
        self.kl_gamma, self.encoder_passes = float(kl_gamma), int(encoder_passes)
        self.shallow_l2 = float(shallow_l2)
        if shallow == "frozen" and (self.shallow_l2 != 0.0 or float(shallow_speed) != 1.0):
            raise ValueError("shallow_l2 (--shallow-l2) and shallow_speed (--shallow-speed) train the "
                             "shallow path, and shallow 'frozen' keeps it as it started: leave them unset")
        self.click_input = click_input  # read by _make_first_layer
        self.new_movies = sorted(int(i) for i in new_movies)
        if self.new_movies and not 0 <= self.new_movies[0] <= self.new_movies[-1] < self.n_movies:
            raise ValueError(f"new_movies must be column indices in [0, {self.n_movies}), got "
                             f"{self.new_movies[0]}..{self.new_movies[-1]}")
        self.settings["new_movies"] = self.new_movies
        self.counted = None  # the columns the reconstruction counts (None: all)
        if self.new_movies and self.places_new_movies:
            counted = np.ones(self.n_movies, np.float32)
            counted[self.new_movies] = 0.0
            self.counted = tf.constant(counted)
        self.seed = seed
        self.activation = keras.activations.get(activation)

        self.encoder_layers = self._make_encoder(seed, activation, trainable=True)
        self.first_layer, self.encoder_output = self.encoder_layers[0], self.encoder_layers[-1]
        # RecVAE's decoder is one linear layer; Mult-VAE's has a hidden layer.
        self.decoder_hidden = keras.layers.Dense(
            self.hidden_dim, activation=activation, name="decoder_hidden",
            kernel_initializer=keras.initializers.GlorotUniform(_seed(seed, 11)),
        ) if architecture == "mult-vae" else None
        self.decoder_output = self._make_decoder_output(_seed(seed, 12))  # logits
        # The composite prior's posterior: a frozen copy of the encoder, refreshed by refresh_prior.
        self.prior_layers = (self._make_encoder(seed, activation, trainable=False, prefix="prior_")
                             if prior == "composite" else None)
        self.shallow_path = None if shallow == "none" else ShallowPath(
            self.n_movies, shallow_weights, bias=shallow_bias, speed=shallow_speed, frozen=shallow == "frozen",
            name="shallow_path")
        self.sampling = Sampling(seed=_seed(seed, 13), name="sampling")
        self.dropout_seed = keras.random.SeedGenerator(_seed(seed, 14))
        self.anneal_step = self.add_weight(
            shape=(),
            dtype="int64",
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",  # every replica counts the same update once
            name="anneal_step",
        )

        # Built here, with known shapes, so that constructing the model inside strategy.scope()
        # places every variable and Keras never traces `call` symbolically (the sparse ops fail there).
        for layers in filter(None, (self.encoder_layers, self.prior_layers)):
            self._build_encoder(layers)
        if self.decoder_hidden is not None:
            self.decoder_hidden.build((None, self.latent_dim))
        self.decoder_output.build((None, self.hidden_dim if self.decoder_hidden else self.latent_dim))
        if self.shallow_path is not None:
            self.shallow_path.build()
        self.sampling.build(None)
        self.refresh_prior()
        self.built = True

    def _make_first_layer(self, seed: int | None, activation: str, name: str) -> ClickDense:
        """The encoder's first layer over the clicks; the Hybrid-VAE's sees movie embeddings too."""
        return ClickDense(self.n_movies, self.hidden_dim, activation=activation, seed=seed,
                          click_input=self.click_input, name=name)

    def _make_decoder_output(self, seed: int | None):
        """The decoder's last layer, hidden -> logits over the movies."""
        return keras.layers.Dense(self.n_movies, kernel_initializer=keras.initializers.GlorotUniform(seed),
                                  name="decoder_output")

    def _make_encoder(self, seed, activation, trainable: bool, prefix: str = "") -> list:
        """[first layer, (Dense, LayerNorm) x 4 and a LayerNorm after the first (recvae only), output]."""
        layers = [self._make_first_layer(_seed(seed, 0), activation, name=f"{prefix}encoder_hidden")]
        if self.architecture == "recvae":
            # RecVAE's layer norm epsilon (0.1): it keeps the normalised swish outputs smooth.
            norm = lambda i: keras.layers.LayerNormalization(  # noqa: E731
                epsilon=0.1, name=f"{prefix}encoder_norm_{i}")
            layers.append(norm(1))
            for i in range(2, 6):
                layers += [keras.layers.Dense(
                    self.hidden_dim, kernel_initializer=keras.initializers.GlorotUniform(_seed(seed, 20 + i)),
                    name=f"{prefix}encoder_dense_{i}"), norm(i)]
        layers.append(keras.layers.Dense(
            2 * self.latent_dim, kernel_initializer=keras.initializers.GlorotUniform(_seed(seed, 10)),
            name=f"{prefix}encoder_output"))  # mu, logvar
        for layer in layers:
            layer.trainable = trainable
        return layers

    def _build_encoder(self, layers) -> None:
        layers[0].build()
        for layer in layers[1:]:
            layer.build((None, self.hidden_dim))

    def refresh_prior(self) -> None:
        """Copy the encoder into the composite prior's frozen copy (no-op without that prior)."""
        if self.prior_layers is None:
            return
        for frozen, live in zip(self.prior_layers, self.encoder_layers):
            for target, source in zip(frozen.weights, live.weights):
                target.assign(source)

    @property
    def encoder_weights(self) -> list:
        """The weights an encoder pass of alternating training updates."""
        return [w for layer in self.encoder_layers for w in layer.trainable_weights]

    @property
    def decoder_weights(self) -> list:
        encoder = {id(w) for w in self.encoder_weights}
        return [w for w in self.trainable_weights if id(w) not in encoder]

    @property
    def jit_compile(self):
        """Always False: XLA has no kernels for the sparse ops (Keras' "auto" picks XLA on one GPU)."""
        return False

    @jit_compile.setter
    def jit_compile(self, value):
        if value is True:
            raise ValueError("jit_compile=True is not supported: XLA lacks the sparse ops this model uses")

    def _run_encoder(self, layers, weights: tf.SparseTensor, training: bool = False):
        """mu, logvar from an encoder's layers (the live ones or the prior's frozen copy)."""
        h = layers[0](weights, equal_in_rows=True, training=training)  # binary clicks: dropout keeps them equal
        if self.architecture == "recvae":
            # h_k = norm_k(act(W_k h_{k-1} + h_1 + ... + h_{k-1})): RecVAE's dense connections.
            h = layers[1](h)
            earlier = h
            for dense, norm in zip(layers[2:-1:2], layers[3:-1:2]):
                h = norm(self.activation(dense(h) + earlier))
                earlier = earlier + h
        return tf.split(layers[-1](h), 2, axis=-1)

    def _click_weights(self, clicks: tf.SparseTensor, denoise: bool):
        return click_weights(
            clicks,
            normalize=self.normalize_input,
            dropout=self.dropout,
            seed_generator=self.dropout_seed,
            training=denoise,
        )

    def _encode_clicks(self, clicks: tf.SparseTensor, training: bool, denoise: bool | None = None):
        """`denoise` (default: `training`) drops clicks from the input."""
        weights = self._click_weights(clicks, training if denoise is None else denoise)
        return self._run_encoder(self.encoder_layers, weights, training)

    def encode(self, indices, training: bool = False):
        """(mu, logvar) of q(z | x) for a batch of padded movie-index lists, each [batch, latent_dim]."""
        return self._encode_clicks(click_matrix(indices, self.n_movies), training)

    def decode(self, z, training: bool = False) -> tf.Tensor:
        """The VAE's logits over all movies, [batch, n_movies] (without the shallow path)."""
        return self.decoder_output(self.decoder_hidden(z) if self.decoder_hidden is not None else z,
                                   training=training)

    def _shallow_logits(self, clicks: tf.SparseTensor, training: bool = False) -> tf.Tensor:
        """The shallow path's logits; `training` lets a subclass change them in training steps."""
        return self.shallow_path(clicks)

    def _combined(self, vae_logits, clicks: tf.SparseTensor, training: bool = False):
        """Ranking scores: the VAE's logits, or with the shallow path log(s(a) s(b)) (VASP's
        product of the two paths' sigmoids), or with a frozen one a + b (both experts' logits)."""
        if self.shallow_path is None:
            return vae_logits
        if self.shallow_path.frozen:
            return vae_logits + self._shallow_logits(clicks, training)
        return -tf.nn.softplus(-vae_logits) - tf.nn.softplus(-self._shallow_logits(clicks, training))

    def call(self, indices, training: bool = False):
        clicks = click_matrix(indices, self.n_movies)
        mu, logvar = self._encode_clicks(clicks, training)
        return self._combined(self.decode(self.sampling((mu, logvar)) if training else mu, training), clicks,
                              training)

    def scores(self, indices) -> tf.Tensor:
        """Ranking scores (from the latent mean, no dropout), [batch, n_movies]."""
        return self(indices, training=False)

    @property
    def ranks_new_movies_apart(self) -> bool:
        """Whether `new_movie_scores` differs from `scores` (a second pass where it is needed)."""
        return self.shallow_path is not None and self.places_new_movies

    def new_movie_scores(self, indices) -> tf.Tensor:
        """Scores that rank the new movies among themselves (their metrics, the served shelf).

        With a shallow path and the new movies out of the reconstruction (`places_new_movies`),
        a new movie's shallow logit is the path's bias alone, the same for every new movie (no
        training click leads to it or from it), so VASP's product s(a) s(b) orders them by the
        VAE's logit a. `scores` cannot: once s(a) rounds to 1 in float32 (a above about 17) the
        new movies tie, and a top-k orders them by column."""
        if not self.ranks_new_movies_apart:
            return self.scores(indices)
        mu, _ = self._encode_clicks(click_matrix(indices, self.n_movies), False)
        return self.decode(mu, False)

    def compute_losses(self, indices, training: bool, denoise: bool | None = None):
        """Reconstruction loss, KL term and beta; the first two per user, shape [batch]; beta a
        scalar or per user. `denoise` (default: `training`) drops clicks from the encoder's input."""
        clicks = click_matrix(indices, self.n_movies)
        mu, logvar = self._encode_clicks(clicks, training, denoise)
        z = self.sampling((mu, logvar)) if training else mu
        logits = self.decode(z, training)
        joint = self.shallow_path is not None and not self.shallow_path.frozen  # a frozen path: VAE alone
        if joint and self.likelihood == "bernoulli":
            reconstruction = -product_log_likelihood(logits, self._shallow_logits(clicks, training), clicks,
                                                     counted=self.counted)
        else:
            reconstruction = -log_likelihood(self.likelihood, self._combined(logits, clicks, training)
                                             if joint else logits, clicks, counted=self.counted)
        if self.prior_layers is None:
            kl = gaussian_kl(mu, logvar)
        else:
            # The old posterior sees the whole click row, as RecVAE's does.
            prior_mu, prior_logvar = self._run_encoder(self.prior_layers, self._click_weights(clicks, False))
            kl = composite_prior_kl(z, mu, logvar, tf.stop_gradient(prior_mu), tf.stop_gradient(prior_logvar))
        if self.kl_gamma > 0:
            clicked = tf.math.unsorted_segment_sum(clicks.values, clicks.indices[:, 0], tf.shape(mu)[0])
            beta = self.kl_gamma * clicked
        else:
            beta = self.annealing(self.anneal_step)
        return reconstruction, kl, beta

    def train_step(self, data):
        if self.encoder_passes == 0:
            return super().train_step(data)
        inputs, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if not self.optimizer.built:  # with every weight: each pass updates only some of them
            self.optimizer.build(self.trainable_weights)
        for _ in range(self.encoder_passes):
            logged = self.update(inputs, self.encoder_weights, denoise=True)
        self.update(inputs, self.decoder_weights, denoise=False)
        self.after_update()
        return self._update_trackers(*logged)

    def weight_penalty(self) -> tf.Tensor:
        """sum ||W||^2 over the kernels: every weight named *kernel (first layer's included)."""
        layers = [*self.encoder_layers, self.decoder_hidden, self.decoder_output]
        kernels = [w for layer in layers if layer is not None
                   for w in layer.trainable_weights if w.name.endswith("kernel")]
        return tf.add_n([tf.reduce_sum(tf.square(w)) for w in kernels])

    def penalty(self):
        terms = []
        if self.weight_decay > 0.0:
            terms.append(self.weight_decay * self.weight_penalty())
        if self.shallow_path is not None and self.shallow_l2 > 0.0:
            terms.append(self.shallow_l2 * self.shallow_path.squared_norm())
        return tf.add_n(terms) if terms else None

    def after_update(self) -> None:
        self.anneal_step.assign_add(1)
