"""The variational autoencoder, composed of its parts as its configuration says.

`VAE` composes a stack of stochastic layers: the first, z₁ from x by the encoder network and the
posterior part; optional upper layers, z_{i+1} from z_i, each with a network that also gives the
conditional prior p(z_i | z_{i+1}); the prior part on the top layer; and the decoder network
with the likelihood part, p(x | z₁). The objective part turns the terms into the loss.

A saved VAE's configuration *is* its run configuration's model sections (as keras-hub's
backbones save their settings), so a saved model reloads in safe mode by building the same
parts again and loading their weights. Every part's variables live on a `PartLayer`, which Keras
tracks and saves.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from vae_mnist._quiet import start_tensorflow_quietly

start_tensorflow_quietly()

import keras  # noqa: E402  (TensorFlow must start quietly first)
from keras import ops  # noqa: E402

from vae_mnist import noise  # noqa: E402
from vae_mnist.chunks import chunked, compiles_chunks  # noqa: E402
from vae_mnist.config import RunConfig  # noqa: E402
from vae_mnist.data import MODEL_INPUTS, check_model_inputs  # noqa: E402
from vae_mnist.errors import ModelFileError  # noqa: E402
from vae_mnist.files import atomic_path  # noqa: E402
from vae_mnist.latent import TensorLike  # noqa: E402
from vae_mnist.optimizers import backend_neutral_optimizers  # noqa: E402
from vae_mnist.settings import Part  # noqa: E402

SERIALIZATION_PACKAGE = "vae_mnist"
# The dynamic binarization's noise must not be the posterior's: offset its seed by this.
BINARIZATION_SEED_OFFSET = 7919
# Each upper layer's noise is seeded apart from the layers below it.
UPPER_LAYER_SEED_OFFSET = 104_729


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class DynamicBinarization(keras.layers.Layer):
    """Draws every pixel afresh from Bernoulli(x) at each training step, inside the step.

    Outside training it passes the images through: the test set is binarized once, with a
    fixed seed, before it reaches the model. Keras does not save a seed generator's position,
    so a resumed run draws its stream again from the seed: repeatable, though not a
    continuation.
    """

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training: bool | None = None):
        if not training:
            return images
        uniform = noise.uniform(ops.shape(images), seed=self.seed_generator)
        return ops.cast(uniform < images, images.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


class PartLayer(keras.layers.Layer):
    """Hosts a part in the model: Keras tracks and saves the variables the part makes on it.

    Not registered with Keras: the VAE makes its hosts again from its own configuration when
    it loads, so no saved file names this class, and its part is no configuration to save.
    """

    def __init__(self, part: Part, seed: int | None, *state_arguments: Any, **kwargs):
        super().__init__(**kwargs)
        self.part = part
        part.create_state(self, seed, *state_arguments)
        self.built = True

    def load_own_variables(self, store: Any) -> None:
        super().load_own_variables(store)
        self.part.variables_loaded()


def _as_list(outputs: Any) -> list:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _checked_batch(
    values: Any, network: keras.Model, method: str, what: str, pixels: bool = False
) -> Any:
    """`values` as `network` reads them (a nested list as an array), or `ValueError` in one
    line for a batch it cannot read: not ``(batch, width)`` of its input's width, or, where
    it reads `pixels`, not the model's inputs (`vae_mnist.data.check_model_inputs`)."""
    width = network.inputs[0].shape[-1]
    if not hasattr(values, "shape"):
        values = np.asarray(values)  # A nested list, which Keras reads as an array.
    shape = tuple(values.shape)
    if len(shape) != 2 or shape[1] not in (width, None):
        raise ValueError(f"VAE.{method} takes {what} of shape (batch, {width}), got {shape}")
    if pixels and isinstance(values, np.ndarray):
        # Values are read from arrays only: a backend tensor may be symbolic, inside a step.
        return check_model_inputs(values, f"VAE.{method}'s images")
    dtype = keras.backend.standardize_dtype(values.dtype)
    if pixels and "float" not in dtype:
        raise ValueError(f"VAE.{method}'s images of dtype {dtype}: expected floats, {MODEL_INPUTS}")
    return values


def _fresh(part: Part) -> Part:
    """A part of its own for the model: the configuration's part stays free of variables."""
    return type(part)(**{field.name: getattr(part, field.name) for field in part.settings()})


class StochasticLayer:
    """An upper layer: its encoder (z_i → q(z_{i+1}) heads), its conditional prior network
    (z_{i+1} → p(z_i) heads, shaped as the lower posterior's) and its posterior's host."""

    def __init__(self, network: Part, posterior: PartLayer, lower: Part, index: int):
        self.posterior = posterior
        heads = {name: (units, None) for name, units in posterior.part.head_sizes().items()}
        self.encoder = network.build_encoder(heads, pixels=lower.code_size)
        self.encoder.name = f"encoder_{index}"
        lower_heads = {name: (units, None) for name, units in lower.head_sizes().items()}
        self.prior_network = network.build_decoder(
            lower_heads, code_size=posterior.part.code_size, pixels=lower.code_size
        )
        self.prior_network.name = f"prior_network_{index}"


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class VAE(keras.Model):
    """A variational autoencoder (Kingma & Welling 2013) composed of its parts.

    Calling it returns a dict: the first layer's posterior heads by name (for the Gaussian,
    ``z_mean`` and ``z_log_var``), the code ``z`` the decoder saw, the decoder's heads, the
    decoded image ``reconstruction``, and the ``targets`` the loss compares it with (the images,
    or their dynamic binarization in training); upper layers add ``z_2``, ``layer_2/z_mean``,
    ``prior_1/z_mean``, .... With an importance-weighted objective every image appears K times,
    consecutively. `compute_loss` turns that into the objective, with `keras.ops` only.
    """

    def __init__(self, config: RunConfig | dict, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = RunConfig.from_dict(config)
        self.run_config = config
        seed = config.training.seed
        # The 2017 example's order: the latent, the encoder, the decoder, so that the weights'
        # initial values under a seed are the same as there.
        self.posterior = PartLayer(_fresh(config.posterior), seed, name="posterior")
        self.likelihood = _fresh(config.likelihood)
        pixels = config.data.pixels
        encoder_heads = {
            name: (units, None) for name, units in self.posterior.part.head_sizes().items()
        }
        self.encoder = config.network.build_encoder(encoder_heads, pixels=pixels)
        decoder_heads = {
            name: (pixels, activation) for name, activation in self.likelihood.heads.items()
        }
        self.decoder = config.network.build_decoder(
            decoder_heads, code_size=self.posterior.part.code_size, pixels=pixels
        )
        self.upper_layers = self._build_upper_layers(config, seed)
        self.prior = PartLayer(_fresh(config.prior), seed, self.top_posterior_part, name="prior")
        self.prior.part.connect(self, self.prior, seed)
        self.objective = PartLayer(_fresh(config.objective), seed, name="objective")
        self.binarization = None
        if config.data.binarized_each_step:
            self.binarization = DynamicBinarization(
                seed=seed + BINARIZATION_SEED_OFFSET, name="binarization"
            )
        self.latent_heads = list(self.posterior.part.head_sizes())
        self.likelihood_heads = list(self.likelihood.heads)
        # Keras already tracks the total as "loss"; these add the ELBO's two terms.
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self.logged_trackers = [
            keras.metrics.Mean(name=name) for name in self.training_only_metrics
        ]

    def _build_upper_layers(self, config: RunConfig, seed: int) -> list[StochasticLayer]:
        layers, lower = [], self.posterior.part
        for index, upper in enumerate(config.upper_layers, start=2):
            layer_seed = seed + UPPER_LAYER_SEED_OFFSET * (index - 1)
            host = PartLayer(_fresh(upper.posterior), layer_seed, name=f"posterior_{index}")
            layers.append(StochasticLayer(upper.network, host, lower, index))
            lower = host.part
        # Tracked as attributes, so Keras saves their weights.
        self.upper_encoders = [layer.encoder for layer in layers]
        self.upper_prior_networks = [layer.prior_network for layer in layers]
        self.upper_posteriors = [layer.posterior for layer in layers]
        return layers

    def continue_with(self, config: RunConfig) -> None:
        """Take from `config` what a continued run may change (each part's resumable
        settings, the epochs, the learning rate) before training traces its step again, so
        that the model saved at the end holds the configuration it last trained with."""
        hosted = [*self.layer_posteriors, self.prior.part, self.objective.part, self.likelihood]
        configured = [*config.posteriors, config.prior, config.objective, config.likelihood]
        for part, wanted in zip(hosted, configured, strict=True):
            part.continue_with(wanted)
        self.run_config = config

    @property
    def training_only_metrics(self) -> tuple[str, ...]:
        """Logged names that describe training only: their validation copies are not recorded."""
        return (*self.posterior.part.logged_metrics, *self.objective.part.logged_metrics)

    @property
    def logged_titles(self) -> dict[str, str]:
        """What the training curves call the values that training alone logs."""
        return {**self.posterior.part.logged_titles, **self.objective.part.logged_titles}

    @property
    def weighs_relaxed_samples(self) -> bool:
        """Whether training weighs the posterior's relaxed samples by their densities: an
        importance-weighted objective on a relaxed posterior (the one layer of its model)."""
        posterior = self.posterior.part
        return (
            self.objective.part.needs_log_weights
            and not posterior.offers("density")
            and posterior.offers("relaxed_density")
            and not self.relaxes_prior_energy
        )

    @property
    def relaxes_prior_energy(self) -> bool:
        """Whether training evaluates the prior's energy at the top layer's relaxed sample
        (GumBolt): the prior then gives that layer's KL term from the sample."""
        return self.prior.part.offers("relaxed_energy")

    def _weighs_smoothed_density(self, posterior: Part) -> bool:
        """Whether the prior weighs the top layer's smoothed sample ζ by its density (DVAE#'s
        relaxed priors; the uniform prior's, exactly), where the KL is a sample estimate."""
        return posterior.offers("smoothed_density") and self.prior.part.offers("smoothed_density")

    @property
    def posterior_part(self) -> Part:
        return self.posterior.part

    @property
    def prior_part(self) -> Part:
        return self.prior.part

    @property
    def top_posterior_part(self) -> Part:
        return self.layer_posteriors[-1]

    @property
    def layer_posteriors(self) -> list[Part]:
        """Each stochastic layer's posterior part, from the one next to x to the top."""
        return [self.posterior.part, *(layer.posterior.part for layer in self.upper_layers)]

    def build(self, input_shape=None):
        # The networks are functional models, built with weights when made.
        self.built = True

    def encode(self, images: TensorLike) -> dict[str, TensorLike]:
        """The first layer's posterior parameters by head name, each ``(batch, units)``, of
        a caller's images, checked first (`_checked_batch`)."""
        images = _checked_batch(images, self.encoder, "encode", "images", pixels=True)
        return self.posterior_parameters(images)

    def decode(self, z: TensorLike) -> dict[str, TensorLike]:
        """The likelihood's parameters by head name, each ``(batch, pixels)``, of a caller's
        codes, checked first."""
        z = _checked_batch(z, self.decoder, "decode", "codes")
        return self.likelihood_parameters(z)

    def posterior_parameters(self, images: TensorLike) -> dict[str, TensorLike]:
        """`encode` unchecked: for the model's own inputs, inside a training or evaluation
        step, where a check would run (or be traced) at every step."""
        return dict(zip(self.latent_heads, _as_list(self.encoder(images)), strict=True))

    def likelihood_parameters(self, z: TensorLike) -> dict[str, TensorLike]:
        """`decode` unchecked, for the model's own codes inside a step."""
        return dict(zip(self.likelihood_heads, _as_list(self.decoder(z)), strict=True))

    def _upper_parameters(self, layer: StochasticLayer, z) -> dict:
        names = list(layer.posterior.part.head_sizes())
        return dict(zip(names, _as_list(layer.encoder(z)), strict=True))

    def layer_representations(self, images: TensorLike) -> list[TensorLike]:
        """Each stochastic layer's representation of `images` (the Gaussian's mean), first up.

        Each upper layer encodes the representation of the layer below, so the path is
        deterministic: the points a latent-space figure draws for every layer.
        """
        parameters = self.encode(images)
        representations = [self.posterior.part.representation(parameters)]
        for layer in self.upper_layers:
            parameters = self._upper_parameters(layer, representations[-1])
            representations.append(layer.posterior.part.representation(parameters))
        return representations

    def conditional_prior(self, index: int, z_above: TensorLike) -> dict[str, TensorLike]:
        """p(z_i | z_{i+1})'s parameters from upper layer `index` (0-based), by head name."""
        layer = self.upper_layers[index]
        lower = self.layer_posteriors[index]
        names = list(lower.head_sizes())
        return dict(zip(names, _as_list(layer.prior_network(z_above)), strict=True))

    def call(self, images, training: bool | None = None):
        targets = images
        if self.binarization is not None:
            targets = self.binarization(images, training=training)
        parameters = self.posterior_parameters(targets)
        samples = self.objective.part.importance_samples
        if samples > 1:
            # (batch, ...) -> (batch*K, ...): each image's K samples side by side.
            parameters = {
                name: ops.repeat(value, samples, axis=0) for name, value in parameters.items()
            }
            targets = ops.repeat(targets, samples, axis=0)
        if training:
            self.prior.part.training_update()
        outputs = dict(parameters)
        if training and self.weighs_relaxed_samples:
            # The relaxed sample's densities, in the logits' space where they are stable.
            v = self.posterior.part.draw_relaxed_logits(parameters)
            z = self.posterior.part.relaxed_code(v)
            log_q = self.posterior.part.relaxed_log_density(v, parameters)
            outputs["relaxed_log_ratio"] = log_q - self.prior.part.relaxed_log_density(v)
            self.posterior.part.advance_step()
        else:
            z = self.posterior.part.sample(parameters, training=training)
        outputs["z"] = z
        code, top_parameters = z, parameters
        for number, layer in enumerate(self.upper_layers, start=2):
            top_parameters = self._upper_parameters(layer, code)
            code = layer.posterior.part.sample(top_parameters, training=training)
            outputs.update(
                {f"layer_{number}/{name}": value for name, value in top_parameters.items()}
            )
            outputs[f"z_{number}"] = code
        if training and self.relaxes_prior_energy:
            outputs["relaxed_kl"] = self.prior.part.relaxed_divergence(
                code, top_parameters, sample_estimate=self.objective.part.needs_log_weights
            )
        decoded = self.likelihood_parameters(z)
        return {
            **outputs,
            **decoded,
            "reconstruction": self.likelihood.mean(decoded),
            "targets": targets,
        }

    def _layer_outputs(self, y_pred: dict) -> list[tuple[Part, dict, Any]]:
        """``(posterior, parameters, z)`` of every stochastic layer, from the first up."""
        layers = [
            (self.posterior.part, {name: y_pred[name] for name in self.latent_heads}, y_pred["z"])
        ]
        for number, layer in enumerate(self.upper_layers, start=2):
            part = layer.posterior.part
            parameters = {name: y_pred[f"layer_{number}/{name}"] for name in part.head_sizes()}
            layers.append((part, parameters, y_pred[f"z_{number}"]))
        return layers

    def kl_terms(self, y_pred: dict, analytic: bool = True) -> TensorLike:
        """The KL term per image: ``Σ_layers log q - log p`` at the samples, or in closed form
        for the top layer where the prior knows the posterior's distribution and `analytic`, or
        GumBolt's term at the relaxed sample where the training step gave it (``relaxed_kl``)."""
        layers = self._layer_outputs(y_pred)
        top, top_parameters, top_z = layers[-1]
        if "relaxed_kl" in y_pred:
            # GumBolt's term at the relaxed sample, as the objective needs it.
            kl = y_pred["relaxed_kl"]
        elif analytic:
            kl = self.prior.part.kl_divergence(top.distribution_given(top_parameters, top_z))
        else:
            kl = None
        if kl is None and "relaxed_log_ratio" in y_pred:
            kl = y_pred["relaxed_log_ratio"]
        elif kl is None and self._weighs_smoothed_density(top):
            kl = top.smoothed_log_ratio(top_z, top_parameters, self.prior.part)
        elif kl is None:
            kl = top.sample_log_density(top_z, top_parameters) - self.prior.part.log_density(top_z)
        for index, (part, parameters, z) in enumerate(layers[:-1]):
            prior_parameters = self.conditional_prior(index, layers[index + 1][2])
            # log q of the sample as drawn, against the conditional prior's density.
            kl = kl + part.sample_log_density(z, parameters) - part.log_density(z, prior_parameters)
        return kl

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The objective on the batch, its ELBO terms tracked beside it."""
        decoded = {name: y_pred[name] for name in self.likelihood_heads}
        reconstruction = self.likelihood.negative_log_likelihood(y_pred["targets"], decoded)
        objective = self.objective.part
        kl = self.kl_terms(y_pred, analytic=not objective.needs_log_weights)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        # Read after the posterior's call, so a relaxed posterior gives the temperature of its
        # next step. Validation updates them too, so the progress bar shows the same value.
        values = {**self.posterior.part.logged_values(), **objective.logged_values()}
        for tracker in self.logged_trackers:
            tracker.update_state(values[tracker.name])
        if objective.needs_log_weights:
            # (batch*K,) -> (batch, K): each image's log-weights in a row.
            log_weights = ops.reshape(-(reconstruction + kl), (-1, objective.importance_samples))
            loss = objective.loss(log_weights)
        else:
            loss = objective.loss(reconstruction, kl)
        # The prior's own term of the KL (an RBM's gradient of log Z) takes the KL's weight, so
        # that a warm-up or a beta weighs the whole of the KL's gradient alike.
        return loss + objective.weighted_kl(self.prior.part.auxiliary_loss())

    def exact_terms(
        self, images: TensorLike, samples: int, seed: Any
    ) -> tuple[TensorLike, TensorLike, dict[str, TensorLike]]:
        """``-log p(x|z)`` and ``log q(z|x) - log p(z)`` for K exact posterior samples per image.

        Every layer draws exactly; what the decoder sees for z₁ is the ζ the posterior drew
        with it (a hierarchy of smoothed groups), or else its `decoder_input` (z itself, or a
        smoothed ζ ~ r(ζ|z)); the density of ζ given z cancels from the weight, being in both
        the model and the proposal. Each ``(batch * K,)``, the samples of an image side by side.
        """
        images = ops.convert_to_tensor(images)
        batch = ops.shape(images)[0]
        parameters = self.posterior_parameters(images)
        z, log_q, drawn_input = self.posterior.part.exact_sample(parameters, samples, seed)
        # (batch, K, code) -> (batch*K, code) for the networks above and below.
        codes = [ops.reshape(z, (batch * samples, -1))]
        # What each layer's conditional prior below it reads: the code, or the smoothed ζ that
        # a layer of smoothed binary units drew with its bits, as in training.
        conditions = [codes[0]]
        log_ratio = ops.reshape(log_q, (batch * samples,))  # (batch, K) -> (batch*K,)
        for layer in self.upper_layers:
            upper = self._upper_parameters(layer, conditions[-1])
            part = layer.posterior.part
            above, log_q, smoothed = part.exact_sample(upper, 1, seed)
            codes.append(ops.squeeze(above, 1))  # (batch*K, 1, code) -> (batch*K, code)
            if smoothed is None:
                conditions.append(part.decoder_input(codes[-1], seed))
            else:
                conditions.append(ops.squeeze(smoothed, 1))  # (batch*K, 1, code) -> (batch*K, code)
            log_ratio = log_ratio + ops.squeeze(log_q, 1)  # (batch*K, 1) -> (batch*K,)
        for index in range(len(self.upper_layers)):
            lower = self.layer_posteriors[index]
            prior_parameters = self.conditional_prior(index, conditions[index + 1])
            log_ratio = log_ratio - lower.log_density(codes[index], prior_parameters)
        log_ratio = log_ratio - self.prior.part.log_density(codes[-1])
        if drawn_input is None:
            decoder_input = self.posterior.part.decoder_input(codes[0], seed)
        else:
            # (batch, K, code) -> (batch*K, code), as the codes.
            decoder_input = ops.reshape(drawn_input, (batch * samples, -1))
        decoded = self.likelihood_parameters(decoder_input)
        # (batch, pixels) -> (batch*K, pixels): each image once per sample.
        targets = ops.repeat(images, samples, axis=0) if samples > 1 else images
        return self.likelihood.negative_log_likelihood(targets, decoded), log_ratio, parameters

    def log_weights(self, images: TensorLike, samples: int, seed: Any) -> TensorLike:
        """``log p(x, z_k) - log q(z_k|x)`` for K exact posterior samples, ``(batch, K)``."""
        reconstruction, log_ratio, _ = self.exact_terms(images, samples, seed)
        # (batch*K,) -> (batch, K)
        return ops.reshape(-(reconstruction + log_ratio), (-1, samples))

    def elbo_terms(self, images: TensorLike, seed: Any) -> tuple[TensorLike, TensorLike]:
        """The negative ELBO's reconstruction and KL per image, ``(batch,)`` each, from one
        exact sample; the KL in closed form where the prior has one, as training takes it."""
        reconstruction, log_ratio, parameters = self.exact_terms(images, 1, seed)
        analytic = None
        if not self.upper_layers:
            distribution = self.posterior.part.distribution(parameters)
            analytic = self.prior.part.kl_divergence(distribution)
        return reconstruction, log_ratio if analytic is None else analytic

    def sample_codes(self, count: int, seed: int) -> np.ndarray:
        """Codes z₁ ``(count, code_size)`` numpy float32 drawn from the model's prior, as the
        decoder sees them: `decoder_codes` of the prior part's draw."""
        return self.decoder_codes(self.prior.part.sample(count, seed), seed)

    def decoder_codes(self, top_code: TensorLike, seed: int) -> np.ndarray:
        """What the decoder sees, numpy float32, for codes of the top layer drawn from the prior.

        The top code passes through its posterior's `decoder_input` (a smoothed binary code is
        decoded from ζ ~ r(ζ|z), as in training, not from the bits); each layer below is drawn
        from its conditional prior p(z_i | z_{i+1}), as its posterior kind draws from such
        parameters.
        """
        code = ops.convert_to_numpy(
            self.top_posterior_part.decoder_input(ops.convert_to_tensor(top_code), seed)
        )
        for index in reversed(range(len(self.upper_layers))):
            lower = self.layer_posteriors[index]
            parameters = self.conditional_prior(index, ops.convert_to_tensor(code))
            code = ops.convert_to_numpy(lower.sample(parameters, training=False))
        return code

    def make_train_function(self, force: bool = False):
        if compiles_chunks(self) and (self.train_function is None or force):
            self.train_function = chunked(self.train_step, self.steps_per_execution)
            return self.train_function
        return super().make_train_function(force)

    def make_test_function(self, force: bool = False):
        if compiles_chunks(self) and (self.test_function is None or force):
            self.test_function = chunked(self.test_step, self.steps_per_execution)
            return self.test_function
        return super().make_test_function(force)

    def image_decoder(self) -> keras.Model:
        """z → the decoded image, sharing the decoder's layers: the blog's ``generator``."""
        return keras.Model(self.decoder.input, _as_list(self.decoder.outputs)[0], name="generator")

    def first_head_encoder(self) -> keras.Model:
        """x → the first head (z_mean for the Gaussian), sharing the encoder's layers."""
        return keras.Model(self.encoder.input, _as_list(self.encoder.outputs)[0], name="encoder")

    def get_config(self) -> dict:
        return {**super().get_config(), "config": self.run_config.to_dict()}

    def get_compile_config(self) -> dict:
        """The compile settings as saved, naming the optimizer's backend-neutral Keras class
        where Keras would name PyTorch's own subclass (`backend_neutral_optimizers`), so that
        a model saved on PyTorch loads on every backend, with or without this package."""
        config = super().get_compile_config()
        optimizer = config.get("optimizer")
        if isinstance(optimizer, dict) and optimizer.get("module", "").startswith(
            "keras.src.backend.torch."
        ):
            config["optimizer"] = {
                **optimizer,
                "module": "keras.optimizers",
                "registered_name": None,
            }
        return config

    @classmethod
    def from_config(cls, config: dict) -> VAE:
        config = dict(config)
        if "config" not in config:
            raise ModelFileError(
                "a model saved by vae-mnist 2 or earlier: load it through its run folder"
            )
        return cls(**config)


def build_vae(config: RunConfig) -> VAE:
    """The VAE of a run's configuration, seeded by its training seed, built with its weights."""
    vae = VAE(config, name="vae")
    vae.build((None, config.data.pixels))
    return vae


def save_model(model: keras.Model, path: str | os.PathLike) -> None:
    """Save `model` as a `.keras` file, atomically: a crash never leaves half a file at `path`."""
    with atomic_path(path) as temporary:
        model.save(temporary)


def load_model(path: str | os.PathLike, config: RunConfig | None = None) -> keras.Model:
    """Load a `.keras` file with safe mode on, turning every failure into `ModelFileError`.

    Safe mode refuses to deserialize Python code (a `Lambda` layer's function), so loading a
    stranger's file cannot run their code. A VAE saved by version 2 or earlier is rebuilt from
    `config`, its run's configuration, and its weights are loaded into that
    (`vae_mnist.legacy`).
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: a folder, where a model file is expected")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        path.open("rb").close()
    except OSError as error:
        raise ModelFileError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path}: not a readable Keras model (not a .keras archive: empty, cut short or "
            "another kind of file)"
        )
    from vae_mnist import legacy

    if config is not None and legacy.is_legacy_vae(path):
        try:
            return legacy.load_legacy_vae(path, config)
        except (KeyError, TypeError, ValueError, OSError) as error:
            # A damaged archive: no weights file, weights of other shapes than its
            # config.json's, or not HDF5 at all.
            raise ModelFileError(
                f"{path}: a damaged model of version 2 ({type(error).__name__}: {error})"
            ) from None
    try:
        return keras.saving.load_model(
            path, safe_mode=True, custom_objects=backend_neutral_optimizers()
        )
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
    except Exception as error:  # Keras raises many kinds; every one means "cannot use it".
        message = str(error)
        if "Lambda" in message or "safe_mode" in message or "unsafe" in message:
            raise ModelFileError(
                f"{path}: refused, it holds a Lambda layer (arbitrary Python code), which "
                "safe mode does not run"
            ) from None
        first_line = message.strip().splitlines()[0] if message.strip() else type(error).__name__
        raise ModelFileError(f"{path}: not a readable Keras model ({first_line})") from None
