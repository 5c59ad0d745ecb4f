"""The Gaussian latent of Kingma & Welling (2013): a diagonal Gaussian posterior, an N(0, I) prior.

Kinds: the ``gaussian`` posterior and the ``standard_normal`` prior. Their KL is analytic; the
standard normal prior pairs with any continuous posterior (by the Monte-Carlo KL where the
posterior is not Gaussian, which needs its density), and the Gaussian posterior with any prior
of real codes.
"""

from __future__ import annotations

import dataclasses
import math
from statistics import NormalDist
from typing import Any, ClassVar

import numpy as np

from vae_mnist import noise
from vae_mnist.backend import ops
from vae_mnist.divergences import gaussian_kl_divergence
from vae_mnist.latent import (
    ACTIVE_UNIT_THRESHOLD,
    LOG_TWO_PI,
    DiagonalGaussian,
    Posterior,
    Prior,
    TensorLike,
    gaussian_log_density,
    gaussian_pairwise_log_density,
    posterior_mean_variances,
    require_posterior,
)
from vae_mnist.settings import register, setting


def _tensors(parameters: dict) -> tuple[TensorLike, TensorLike]:
    """z_mean and z_log_var as backend tensors (numpy arrays are welcome)."""
    return ops.convert_to_tensor(parameters["z_mean"]), ops.convert_to_tensor(
        parameters["z_log_var"]
    )


@register
@dataclasses.dataclass(frozen=True)
class GaussianPosterior(Posterior):
    """q(z|x) = N(μ, diag σ²), drawn as ``z = μ + exp(log σ² / 2) · ε``, ε ~ N(0, ε_std² I).

    The reparameterisation trick, so gradients reach ``z_mean`` and ``z_log_var``. It samples in
    training and inference alike, as the 2017 example's ``Lambda`` layer did.
    """

    kind: ClassVar[str] = "gaussian"
    description: ClassVar[str] = "a diagonal Gaussian (Kingma & Welling 2013)"
    capabilities: ClassVar[frozenset[str]] = frozenset({"continuous", "density"})

    dimension: int = setting(2, "dimensions of the latent space z", positive=True)
    epsilon_std: float = setting(1.0, "standard deviation of the sampling noise ε", positive=True)

    def head_sizes(self) -> dict[str, int]:
        return {"z_mean": self.dimension, "z_log_var": self.dimension}

    @property
    def code_size(self) -> int:
        return self.dimension

    def sample(self, parameters: dict, training: bool | None = None) -> TensorLike:
        z_mean, z_log_var = _tensors(parameters)
        epsilon = noise.normal(ops.shape(z_mean), stddev=self.epsilon_std, seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def distribution(self, parameters: dict) -> DiagonalGaussian:
        return DiagonalGaussian(parameters["z_mean"], parameters["z_log_var"])

    def log_density(self, z: TensorLike, parameters: dict) -> TensorLike:
        """log N(z; μ, σ²) for z ``(batch, ..., dimension)``; parameters broadcast from the left."""
        z_mean, z_log_var = _tensors(parameters)
        for _ in range(len(ops.shape(z)) - len(ops.shape(z_mean))):
            z_mean, z_log_var = ops.expand_dims(z_mean, 1), ops.expand_dims(z_log_var, 1)
        return gaussian_log_density(z, z_mean, z_log_var)

    def sample_log_density(self, z: TensorLike, parameters: dict) -> TensorLike:
        """log N(z; μ, ε_std² σ²): the density `sample` draws from, which weighs its samples
        (the importance-weighted bound, a Monte-Carlo KL). With ε_std = 1 it is
        `log_density`, and the 2017 example's closed-form KL takes N(μ, σ²) whatever ε_std."""
        if self.epsilon_std == 1.0:
            return self.log_density(z, parameters)
        widened = parameters["z_log_var"] + 2.0 * math.log(self.epsilon_std)
        return self.log_density(z, {**parameters, "z_log_var": widened})

    def pairwise_log_density(self, z: TensorLike, parameters: dict) -> TensorLike:
        """log N(z_i; μ_k, σ_k²) for every pair, by `gaussian_pairwise_log_density`."""
        return gaussian_pairwise_log_density(z, *_tensors(parameters))

    def sample_exact(self, parameters: dict, samples: int, seed: Any) -> tuple[Any, Any]:
        """z ~ q(z|x) = N(μ, σ²) (unit noise, the true posterior), and log q(z|x)."""
        z_mean, z_log_var = (ops.expand_dims(value, 1) for value in _tensors(parameters))
        shape = (ops.shape(z_mean)[0], samples, self.dimension)
        z = z_mean + ops.exp(0.5 * z_log_var) * noise.normal(shape, seed=seed)
        return z, gaussian_log_density(z, z_mean, z_log_var)

    def representation(self, parameters: dict) -> TensorLike:
        return parameters["z_mean"]

    def mode(self, parameters: dict) -> TensorLike:
        return parameters["z_mean"]

    def latent_metrics(self, parameters: dict[str, np.ndarray]) -> dict[str, Any]:
        """``active_units``: dimensions whose z_mean varies across the data by more than
        `ACTIVE_UNIT_THRESHOLD`; ``latent_variances``: that variance per dimension."""
        variances = posterior_mean_variances(parameters["z_mean"])
        return {
            "active_units": int(np.sum(variances > ACTIVE_UNIT_THRESHOLD)),
            "latent_variances": [float(value) for value in variances],
        }


def standard_normal_quantiles(probabilities: np.ndarray) -> np.ndarray:
    """N(0, 1)'s inverse CDF at each of `probabilities` (any shape)."""
    return np.vectorize(NormalDist().inv_cdf)(np.asarray(probabilities, np.float64))


@register
@dataclasses.dataclass(frozen=True)
class StandardNormalPrior(Prior):
    """p(z) = N(0, I): the prior of Kingma & Welling (2013) and of the 2017 Keras example."""

    kind: ClassVar[str] = "standard_normal"
    description: ClassVar[str] = "N(0, I)"
    capabilities: ClassVar[frozenset[str]] = frozenset({"sample", "quantiles", "isotropic_normal"})

    def check_posterior(self, posterior: Posterior) -> None:
        require_posterior(self, posterior, "continuous", "a continuous posterior")

    def kl_divergence(self, distribution: Any) -> TensorLike | None:
        if isinstance(distribution, DiagonalGaussian):
            return gaussian_kl_divergence(distribution.mean, distribution.log_var)
        return None

    def log_density(self, z: TensorLike) -> TensorLike:
        return -0.5 * ops.sum(LOG_TWO_PI + ops.square(z), axis=-1)

    def sample(self, count: int, seed: int) -> np.ndarray:
        shape = (count, self.posterior.code_size)
        return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)

    def mean(self) -> np.ndarray:
        return np.zeros(self.posterior.code_size, np.float32)

    def quantiles(self, probabilities: np.ndarray) -> np.ndarray:
        """The inverse CDF of each dimension's marginal at `probabilities` (any shape, since
        every dimension's is N(0, 1)'s)."""
        return standard_normal_quantiles(probabilities)
