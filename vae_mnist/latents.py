"""The latent variables: each a registered Keras layer that the VAE composes.

A latent names the encoder heads it needs, draws the code z that the decoder sees, and gives
the KL term of the loss. For evaluation it also draws exact posterior samples with their
log-probabilities, and the prior's log-density, so the importance-weighted bound works for
every latent. The interface, which every latent implements:

- ``head_sizes()``: ``{name: units}`` of the encoder heads, in order. The first head is the
  one the blog's ``encoder.keras`` outputs (for the Gaussian, ``z_mean``).
- ``code_size``: the width of z, the decoder's input.
- ``call(parameters, training)``: z ``(batch, code_size)``, a reparameterised (or relaxed)
  sample, so gradients reach the encoder.
- ``kl_divergence(parameters)``: ``(batch,)`` nats, the KL term of the loss.
- ``auxiliary_loss(parameters)``: a scalar added to the loss but not to the KL term (zero
  here; a learned prior uses it for the gradient of its log-partition function).
- ``representation(parameters)``: ``(batch, features)``, what the latent scatter, the
  principal components and the kNN classifier use.
- ``mode(parameters)``: the posterior's most probable code, ``(batch, code_size)``.
- ``sample_posterior(parameters, samples, seed)``: exact samples z ``(batch, samples,
  code_size)`` and log q(z|x) ``(batch, samples)``.
- ``log_prior(z)``: log p(z), z ``(..., code_size)`` → ``(...)``.
- ``sample_prior(count, seed)``: ``(count, code_size)`` numpy float32, for figures; `seed` is an
  integer.
- ``decoder_input(z, seed)``: what the decoder sees for exact posterior samples z (z itself,
  except where training's decoder sees a smoothed code, as the RBM latent's ζ ~ r(ζ|z)).
- ``prepare_evaluation(**options)``: work to do once before evaluation (the RBM prior's log Z);
  returns a JSON-ready dict of metrics. Nothing by default.
- ``latent_metrics(parameters)``: a JSON-ready dict of numbers that describe how the test set
  uses the latent, from numpy parameters. Empty by default.

`parameters` is the dict of the encoder's heads by name. Seeds are `keras.random.SeedGenerator`s
or integers.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from vae_mnist.divergences import gaussian_kl_divergence

SERIALIZATION_PACKAGE = "vae_mnist"
LOG_TWO_PI = math.log(2.0 * math.pi)
TensorLike = Any


class Latent(keras.layers.Layer):
    """The base of every latent: an auxiliary loss of zero, and a config of the layer's own."""

    def head_sizes(self) -> dict[str, int]:
        raise NotImplementedError

    @property
    def code_size(self) -> int:
        raise NotImplementedError

    def auxiliary_loss(self, parameters: dict) -> TensorLike:
        return 0.0

    def decoder_input(self, z: TensorLike, seed: Any) -> TensorLike:
        return z

    def prepare_evaluation(self, **options: Any) -> dict[str, Any]:
        return {}

    def latent_metrics(self, parameters: dict[str, np.ndarray]) -> dict[str, Any]:
        return {}

    def compute_output_shape(self, input_shape):
        batch = next(iter(input_shape.values()))[0]
        return (batch, self.code_size)


def gaussian_log_density(z: TensorLike, mean: TensorLike, log_var: TensorLike) -> TensorLike:
    """``log N(z; μ, diag σ²) = -½ Σ_j [log 2π + log σ_j² + (z_j - μ_j)² / σ_j²]``, last axis."""
    return -0.5 * ops.sum(LOG_TWO_PI + log_var + ops.square(z - mean) * ops.exp(-log_var), axis=-1)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class GaussianLatent(Latent):
    """A diagonal Gaussian posterior and an N(0, I) prior: the VAE of Kingma & Welling (2013).

    Draws ``z = z_mean + exp(z_log_var / 2) · ε`` with ``ε ~ N(0, epsilon_std² I)``: the
    reparameterisation trick, so gradients flow to ``z_mean`` and ``z_log_var``. It samples in
    training and inference alike, as the 2017 example's ``Lambda`` layer did. The layer owns a
    `SeedGenerator`, so its draws repeat under a seed on every backend and its state is saved.
    """

    def __init__(
        self, latent_dim: int = 2, epsilon_std: float = 1.0, seed: int | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.epsilon_std = epsilon_std
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def head_sizes(self) -> dict[str, int]:
        return {"z_mean": self.latent_dim, "z_log_var": self.latent_dim}

    @property
    def code_size(self) -> int:
        return self.latent_dim

    def call(self, parameters: dict, training: bool | None = None) -> TensorLike:
        z_mean, z_log_var = parameters["z_mean"], parameters["z_log_var"]
        epsilon = keras.random.normal(
            ops.shape(z_mean), stddev=self.epsilon_std, seed=self.seed_generator
        )
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def kl_divergence(self, parameters: dict) -> TensorLike:
        return gaussian_kl_divergence(parameters["z_mean"], parameters["z_log_var"])

    def representation(self, parameters: dict) -> TensorLike:
        return parameters["z_mean"]

    def mode(self, parameters: dict) -> TensorLike:
        return parameters["z_mean"]

    def sample_posterior(
        self, parameters: dict, samples: int, seed: Any
    ) -> tuple[TensorLike, TensorLike]:
        """z ~ q(z|x) = N(μ, σ²) (unit noise, the true posterior), and log q(z|x)."""
        # (batch, latent_dim) -> (batch, 1, latent_dim), to broadcast over the samples.
        z_mean = ops.expand_dims(parameters["z_mean"], 1)
        z_log_var = ops.expand_dims(parameters["z_log_var"], 1)
        shape = (ops.shape(z_mean)[0], samples, self.latent_dim)
        z = z_mean + ops.exp(0.5 * z_log_var) * keras.random.normal(shape, seed=seed)
        return z, gaussian_log_density(z, z_mean, z_log_var)

    def log_prior(self, z: TensorLike) -> TensorLike:
        return -0.5 * ops.sum(LOG_TWO_PI + ops.square(z), axis=-1)

    def sample_prior(self, count: int, seed: int) -> np.ndarray:
        return (
            np.random.default_rng(seed).standard_normal((count, self.latent_dim)).astype(np.float32)
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "epsilon_std": self.epsilon_std,
            "seed": self.seed,
        }


def make_latent(model_config: Any, seed: int | None = None) -> Latent:
    """The latent part that a `ModelConfig` asks for."""
    if model_config.latent == "gaussian":
        return GaussianLatent(
            latent_dim=model_config.latent_dim,
            epsilon_std=model_config.epsilon_std,
            seed=seed,
            name="sampling",
        )
    if model_config.latent == "rbm":
        # Imported here: the RBM latent builds on this module's `Latent`.
        from vae_mnist.rbm_latent import RBMLatent

        first_units, second_units = model_config.rbm_units
        return RBMLatent(
            first_units=first_units,
            second_units=second_units,
            beta=model_config.beta,
            chains=model_config.rbm_chains,
            seed=seed,
            name="rbm",
        )
    raise NotImplementedError(f"the {model_config.latent} latent is not available yet")
