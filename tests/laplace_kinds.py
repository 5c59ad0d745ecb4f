"""A module of kinds from outside the package: the Laplace posterior and prior of README's
"Adding a latent kind".

Its import registers them, as when the command-line tests name this file in $VAE_MNIST_KINDS;
the tests in `test_parts.py` register them again by calling `define` (and take them away
afterwards, since other modules list every kind). Keras is reached through `vae_mnist.backend`,
so that the command line still starts at once.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from vae_mnist import Posterior, Prior, register, require_posterior, setting

LAPLACE_PRIOR = "standard_laplace"


def define() -> tuple[type, type]:
    """What a user writes to add a kind: two small classes, registered by the public API."""
    from vae_mnist import noise
    from vae_mnist.backend import ops

    def laplace_noise(shape, seed):
        # The inverse CDF of a standard Laplace at U ~ Uniform(-1/2, 1/2), kept off the ends.
        u = noise.uniform(shape, seed=seed, minval=-0.5 + 1e-6, maxval=0.5 - 1e-6)
        return -ops.sign(u) * ops.log(1.0 - 2.0 * ops.abs(u))

    def laplace_log_density(z, loc, log_scale):
        return ops.sum(-math.log(2.0) - log_scale - ops.abs(z - loc) * ops.exp(-log_scale), axis=-1)

    @register
    @dataclasses.dataclass(frozen=True)
    class LaplacePosterior(Posterior):
        kind: ClassVar[str] = "laplace"
        description: ClassVar[str] = "a factorial Laplace"
        capabilities: ClassVar[frozenset[str]] = frozenset({"continuous", "density"})

        dimension: int = setting(2, "dimensions of the latent space z", positive=True)

        def head_sizes(self) -> dict[str, int]:
            return {"z_loc": self.dimension, "z_log_scale": self.dimension}

        @property
        def code_size(self) -> int:
            return self.dimension

        def sample(self, parameters: dict, training: bool | None = None):
            loc, log_scale = parameters["z_loc"], parameters["z_log_scale"]
            epsilon = laplace_noise(ops.shape(loc), self.seed_generator)
            return loc + ops.exp(log_scale) * epsilon

        def log_density(self, z, parameters: dict):
            loc, log_scale = parameters["z_loc"], parameters["z_log_scale"]
            for _ in range(len(ops.shape(z)) - len(ops.shape(loc))):
                loc, log_scale = ops.expand_dims(loc, 1), ops.expand_dims(log_scale, 1)
            return laplace_log_density(z, loc, log_scale)

        def sample_exact(self, parameters: dict, samples: int, seed: Any):
            loc = ops.expand_dims(parameters["z_loc"], 1)
            log_scale = ops.expand_dims(parameters["z_log_scale"], 1)
            shape = (ops.shape(loc)[0], samples, self.dimension)
            z = loc + ops.exp(log_scale) * laplace_noise(shape, seed)
            return z, laplace_log_density(z, loc, log_scale)

        def distribution(self, parameters: dict):
            return None  # No prior knows it in closed form: the KL is the Monte-Carlo estimate.

        def representation(self, parameters: dict):
            return parameters["z_loc"]

        def mode(self, parameters: dict):
            return parameters["z_loc"]

    @register
    @dataclasses.dataclass(frozen=True)
    class StandardLaplacePrior(Prior):
        kind: ClassVar[str] = LAPLACE_PRIOR
        description: ClassVar[str] = "a standard Laplace per dimension"
        capabilities: ClassVar[frozenset[str]] = frozenset({"sample"})

        def check_posterior(self, posterior) -> None:
            # A density of real codes: a discrete posterior's KL against it means nothing.
            require_posterior(self, posterior, "continuous", "a continuous posterior")

        def log_density(self, z):
            return ops.sum(-math.log(2.0) - ops.abs(z), axis=-1)

        def sample(self, count: int, seed: int) -> np.ndarray:
            shape = (count, self.posterior.code_size)
            return np.random.default_rng(seed).laplace(size=shape).astype(np.float32)

    return LaplacePosterior, StandardLaplacePrior


LAPLACE_KINDS = define()
