"""The variational autoencoder, composed of its parts: two networks, a latent, a likelihood.

`VAE` takes the parts as keras-hub's tasks take a backbone: an encoder network (x → the
latent's parameters), a latent (parameters → z, and the KL term), a decoder network (z → the
likelihood's parameters) and a likelihood (the reconstruction term). `build_vae` makes them
from a `RunConfig`. Every part is a registered Keras object, so a saved VAE reloads in safe mode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras
from keras import ops

from vae_mnist import noise
from vae_mnist.config import ModelConfig, RunConfig
from vae_mnist.files import atomic_path
from vae_mnist.latents import Latent, make_latent
from vae_mnist.likelihoods import make_likelihood
from vae_mnist.networks import build_decoder, build_encoder

SERIALIZATION_PACKAGE = "vae_mnist"
# The dynamic binarization's noise must not be the latent's: offset its seed by this.
BINARIZATION_SEED_OFFSET = 7919


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class DynamicBinarization(keras.layers.Layer):
    """Draws every pixel afresh from Bernoulli(x) at each training step, inside the step.

    Outside training it passes the images through: the test set is binarized once, with a
    fixed seed, before it reaches the model. Its `SeedGenerator` makes the draws repeat under
    a seed. Keras does not save a generator's position, so a reloaded model (a resumed run)
    draws its stream again from the seed: repeatable, though not a continuation.
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


def _as_list(outputs: Any) -> list:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class VAE(keras.Model):
    """A variational autoencoder (Kingma & Welling 2013) composed of its parts.

    Calling it returns a dict: the encoder's heads by name (for the Gaussian latent
    ``z_mean`` and ``z_log_var``), the code ``z``, the decoder's heads by name, the decoded
    image ``reconstruction``, and the ``targets`` the loss compares it with (the images, or
    their dynamic binarization in training). `compute_loss` turns that into the negative
    ELBO, written only with `keras.ops`, so it trains unchanged on TensorFlow, JAX and PyTorch.
    """

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        latent: Latent,
        likelihood: keras.layers.Layer,
        binarization: keras.layers.Layer | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.latent = latent
        self.likelihood = likelihood
        self.binarization = binarization
        self.latent_heads = list(latent.head_sizes())
        self.likelihood_heads = list(likelihood.heads)
        # Keras already tracks the total as "loss"; these add its two terms.
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        # Values the latent logs (a discrete latent's temperature), averaged over each epoch.
        self.latent_trackers = [keras.metrics.Mean(name=name) for name in latent.logged_metrics]

    @property
    def training_only_metrics(self) -> tuple[str, ...]:
        """Logged names that describe training only: their validation copies are not recorded."""
        return tuple(self.latent.logged_metrics)

    def build(self, input_shape=None):
        # The encoder and decoder are functional models, built with weights when made.
        self.built = True

    def encode(self, images) -> dict:
        """The posterior's parameters by head name, each ``(batch, units)``."""
        return dict(zip(self.latent_heads, _as_list(self.encoder(images)), strict=True))

    def decode(self, z) -> dict:
        """The likelihood's parameters by head name, each ``(batch, original_dim)``."""
        return dict(zip(self.likelihood_heads, _as_list(self.decoder(z)), strict=True))

    def call(self, images, training: bool | None = None):
        targets = images
        if self.binarization is not None:
            targets = self.binarization(images, training=training)
        parameters = self.encode(targets)
        z = self.latent(parameters, training=training)
        decoded = self.decode(z)
        return {
            **parameters,
            **decoded,
            "z": z,
            "reconstruction": self.likelihood.mean(decoded),
            "targets": targets,
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The negative ELBO averaged over the batch: mean(reconstruction + KL)."""
        decoded = {name: y_pred[name] for name in self.likelihood_heads}
        parameters = {name: y_pred[name] for name in self.latent_heads}
        reconstruction = self.likelihood.negative_log_likelihood(y_pred["targets"], decoded)
        kl = self.latent.kl_divergence(parameters)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        # Read after the latent's call, so a discrete latent gives the temperature of its next
        # step. Validation updates them too, so the progress bar shows the same value there.
        values = self.latent.logged_values()
        for tracker in self.latent_trackers:
            tracker.update_state(values[tracker.name])
        return ops.mean(reconstruction + kl) + self.latent.auxiliary_loss(parameters)

    def image_decoder(self) -> keras.Model:
        """z → the decoded image, sharing the decoder's layers: the blog's ``generator``."""
        return keras.Model(self.decoder.input, _as_list(self.decoder.outputs)[0], name="generator")

    def first_head_encoder(self) -> keras.Model:
        """x → the first head (z_mean for the Gaussian), sharing the encoder's layers.

        For the Gaussian latent this is the blog's ``encoder``.
        """
        return keras.Model(self.encoder.input, _as_list(self.encoder.outputs)[0], name="encoder")

    def get_config(self) -> dict:
        serialize = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "encoder": serialize(self.encoder),
            "decoder": serialize(self.decoder),
            "latent": serialize(self.latent),
            "likelihood": serialize(self.likelihood),
            "binarization": serialize(self.binarization) if self.binarization else None,
        }

    @classmethod
    def from_config(cls, config: dict) -> VAE:
        config = dict(config)
        if "intermediate_dim" in config:
            return _version_1_vae(config)
        deserialize = keras.saving.deserialize_keras_object
        for key in ("encoder", "decoder", "latent", "likelihood"):
            config[key] = deserialize(config[key])
        if config.get("binarization"):
            config["binarization"] = deserialize(config["binarization"])
        return cls(**config)


def _version_1_vae(config: dict) -> VAE:
    """A version-1 VAE (the 2017 model, saved with its sizes), rebuilt with today's parts.

    Its layers are made in the same order with the same shapes, so its saved weights load.
    """
    model = ModelConfig(
        original_dim=config["original_dim"],
        hidden_layers=(config["intermediate_dim"],),
        latent_dim=config["latent_dim"],
        epsilon_std=config["epsilon_std"],
    )
    return compose_vae(model, binarize="none", seed=config.get("seed"), name=config.get("name"))


def compose_vae(
    model: ModelConfig, binarize: str = "none", seed: int | None = None, name: str | None = "vae"
) -> VAE:
    """The VAE of a `ModelConfig`, built so its weights exist.

    The layers are made in the 2017 example's order (encoder, then decoder), so the weights'
    initial values under a seed are the same as there.
    """
    latent = make_latent(model, seed=seed)
    likelihood = make_likelihood(model.likelihood, model.gaussian_minimum_std)
    networks = dict(
        original_dim=model.original_dim,
        hidden_layers=model.hidden_layers,
        activation=model.activation,
        architecture=model.architecture,
    )
    encoder = build_encoder(
        {name: (units, None) for name, units in latent.head_sizes().items()}, **networks
    )
    decoder = build_decoder(
        {name: (model.original_dim, activation) for name, activation in likelihood.heads.items()},
        code_size=latent.code_size,
        **networks,
    )
    binarization = None
    if binarize == "dynamic":
        binarization = DynamicBinarization(
            seed=None if seed is None else seed + BINARIZATION_SEED_OFFSET, name="binarization"
        )
    vae = VAE(encoder, decoder, latent, likelihood, binarization, name=name)
    vae.build((None, model.original_dim))
    return vae


def build_vae(config: RunConfig) -> VAE:
    """The VAE of a run's configuration, seeded by its training seed."""
    return compose_vae(config.model, binarize=config.data.binarize, seed=config.training.seed)


class ModelFileError(ValueError):
    """A saved model that is missing, unreadable or refused."""


def save_model(model: keras.Model, path: str | os.PathLike) -> None:
    """Save `model` as a `.keras` file, atomically: a crash never leaves half a file at `path`."""
    with atomic_path(path) as temporary:
        model.save(temporary)


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a `.keras` file with safe mode on, turning every failure into `ModelFileError`.

    Safe mode refuses to deserialize Python code (a `Lambda` layer's function), so loading a
    stranger's file cannot run their code.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many kinds; every one means "cannot use it".
        message = str(error)
        if "Lambda" in message or "safe_mode" in message or "unsafe" in message:
            raise ModelFileError(
                f"{path}: refused, it holds a Lambda layer (arbitrary Python code), which "
                "safe mode does not run"
            ) from None
        first_line = message.strip().splitlines()[0] if message.strip() else type(error).__name__
        raise ModelFileError(f"{path}: not a readable Keras model ({first_line})") from None
