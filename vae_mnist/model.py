"""The variational autoencoder: functional encoder and decoder, a sampling layer, the model."""

from __future__ import annotations

import os
from pathlib import Path

import keras
from keras import layers, ops

from vae_mnist.config import VAEConfig
from vae_mnist.files import atomic_path
from vae_mnist.losses import kl_divergence, reconstruction_loss

SERIALIZATION_PACKAGE = "vae_mnist"


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class Sampling(layers.Layer):
    """Draws ``z = z_mean + exp(z_log_var / 2) · ε`` with ``ε ~ N(0, epsilon_std² I)``.

    This is the reparameterisation trick: the noise is an input to a deterministic function,
    so gradients flow to ``z_mean`` and ``z_log_var``. The layer owns a `SeedGenerator`, so
    its draws are repeatable under a seed on every backend and its state is saved with it.
    """

    def __init__(self, epsilon_std: float = 1.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.epsilon_std = epsilon_std
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(
            ops.shape(z_mean), stddev=self.epsilon_std, seed=self.seed_generator
        )
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "epsilon_std": self.epsilon_std, "seed": self.seed}


def build_encoder(
    original_dim: int = 784, intermediate_dim: int = 256, latent_dim: int = 2
) -> keras.Model:
    """x ``(batch, original_dim)`` → ``[z_mean, z_log_var]``, each ``(batch, latent_dim)``."""
    images = keras.Input(shape=(original_dim,), name="images")
    hidden = layers.Dense(intermediate_dim, activation="relu", name="encoder_hidden")(images)
    z_mean = layers.Dense(latent_dim, name="z_mean")(hidden)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(hidden)
    return keras.Model(images, [z_mean, z_log_var], name="encoder")


def build_decoder(
    original_dim: int = 784, intermediate_dim: int = 256, latent_dim: int = 2
) -> keras.Model:
    """z ``(batch, latent_dim)`` → pixel probabilities ``(batch, original_dim)``.

    This is the blog's ``generator``.
    """
    latent = keras.Input(shape=(latent_dim,), name="z")
    hidden = layers.Dense(intermediate_dim, activation="relu", name="decoder_hidden")(latent)
    probabilities = layers.Dense(original_dim, activation="sigmoid", name="decoder_output")(hidden)
    return keras.Model(latent, probabilities, name="decoder")


def build_mean_encoder(encoder: keras.Model) -> keras.Model:
    """x → z_mean, sharing the encoder's layers: the blog's ``encoder``."""
    return keras.Model(encoder.input, encoder.outputs[0], name="mean_encoder")


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class VAE(keras.Model):
    """The variational autoencoder of Kingma & Welling (2013) with an MLP encoder and decoder.

    Calling it returns a dict with the sampled ``reconstruction`` and the posterior's
    ``z_mean`` and ``z_log_var``. `compute_loss` turns that into the negative ELBO, written
    only with `keras.ops`, so it trains unchanged on TensorFlow, JAX and PyTorch.
    """

    def __init__(
        self,
        original_dim: int = 784,
        intermediate_dim: int = 256,
        latent_dim: int = 2,
        epsilon_std: float = 1.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.original_dim = original_dim
        self.intermediate_dim = intermediate_dim
        self.latent_dim = latent_dim
        self.epsilon_std = epsilon_std
        self.seed = seed
        sizes = dict(
            original_dim=original_dim, intermediate_dim=intermediate_dim, latent_dim=latent_dim
        )
        self.encoder = build_encoder(**sizes)
        self.decoder = build_decoder(**sizes)
        self.sampling = Sampling(epsilon_std=epsilon_std, seed=seed, name="sampling")
        # Keras already tracks the total as "loss"; these add its two terms.
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")

    def build(self, input_shape=None):
        # The encoder and decoder are functional models, built with weights when made.
        self.built = True

    def call(self, images):
        z_mean, z_log_var = self.encoder(images)
        z = self.sampling([z_mean, z_log_var])
        return {
            "reconstruction": self.decoder(z),
            "z_mean": z_mean,
            "z_log_var": z_log_var,
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The negative ELBO averaged over the batch: mean(reconstruction + KL)."""
        reconstruction = reconstruction_loss(x, y_pred["reconstruction"])
        kl = kl_divergence(y_pred["z_mean"], y_pred["z_log_var"])
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        return ops.mean(reconstruction + kl)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "original_dim": self.original_dim,
            "intermediate_dim": self.intermediate_dim,
            "latent_dim": self.latent_dim,
            "epsilon_std": self.epsilon_std,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict) -> VAE:
        return cls(**config)


def build_vae(config: VAEConfig) -> VAE:
    """The VAE with the sizes of a `VAEConfig`, built so its weights exist."""
    vae = VAE(
        original_dim=config.original_dim,
        intermediate_dim=config.intermediate_dim,
        latent_dim=config.latent_dim,
        epsilon_std=config.epsilon_std,
        seed=config.seed,
        name="vae",
    )
    vae.build((None, config.original_dim))
    return vae


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
