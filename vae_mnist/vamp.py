"""The VampPrior of Tomczak & Welling ("VAE with a VampPrior", AISTATS 2018).

The kind ``vamp``: the prior is the mixture of the model's own posterior at K learned
pseudo-inputs u_k, ``p(z) = (1/K) Σ_k q(z | u_k)``, so it reaches the encoder. The pseudo-inputs
are weights of the prior, images of the data's size kept in [0, 1] by a hard clip (the paper's
hard tanh on [0, 1]) and initialised from N(0.05, 0.01²) as the paper's code does; they are
learned with the rest of the model. Its KL has no closed form, so the model estimates it,
``log q(z|x) - log p(z)`` at the sampled z, which needs a posterior with a density.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from vae_mnist.backend import keras, ops, to_numpy
from vae_mnist.latent import Posterior, Prior, TensorLike, require_posterior
from vae_mnist.settings import ConfigError, register, setting

# The pseudo-inputs start from N(0.05, 0.01²), as in Tomczak & Welling's code.
PSEUDO_INPUT_MEAN = 0.05
PSEUDO_INPUT_STD = 0.01


@register
@dataclasses.dataclass(frozen=True)
class VampPrior(Prior):
    """``p(z) = (1/K) Σ_k q(z | u_k)`` at K learned pseudo-inputs (see the module)."""

    kind: ClassVar[str] = "vamp"
    description: ClassVar[str] = "the posterior at learned pseudo-inputs (Tomczak & Welling 2018)"
    capabilities: ClassVar[frozenset[str]] = frozenset({"sample"})

    pseudo_inputs: int = setting(
        500, "K, the learned pseudo-inputs whose posteriors the VampPrior mixes", positive=True
    )

    def check_posterior(self, posterior: Posterior) -> None:
        require_posterior(self, posterior, "density", "a posterior with a density")

    def check_layers(self, count: int) -> None:
        if count > 1:
            raise ConfigError(
                "the vamp prior mixes the posterior of the layer next to the images, so it "
                "serves a model of one stochastic layer"
            )

    def connect(self, model: Any, host: Any, seed: int | None) -> None:
        shape = (self.pseudo_inputs, model.run_config.data.pixels)
        initializer = keras.initializers.RandomNormal(
            mean=PSEUDO_INPUT_MEAN, stddev=PSEUDO_INPUT_STD, seed=seed
        )
        host.pseudo_input_weights = host.add_weight(
            shape=shape, initializer=initializer, name="pseudo_inputs"
        )
        self.attach(model=model, weights=host.pseudo_input_weights)

    def pseudo_images(self) -> TensorLike:
        """The pseudo-inputs u_k ``(K, pixels)``, clipped into [0, 1]."""
        return ops.clip(self.weights, 0.0, 1.0)

    def components(self) -> dict:
        """q(z | u_k)'s parameters by head name, each ``(K, dimensions)``."""
        return self.model.posterior_parameters(self.pseudo_images())

    def log_density(self, z: TensorLike) -> TensorLike:
        """``log p(z) = logsumexp_k log q(z | u_k) - log K``, z ``(..., d)`` → ``(...)``."""
        # (..., d) -> (n, d), whose (n, K) log-densities the posterior gives.
        flat = ops.reshape(z, (-1, ops.shape(z)[-1]))  # (..., d) -> (n, d)
        log_q = self.posterior.pairwise_log_density(flat, self.components())
        mixture = ops.logsumexp(log_q, axis=1) - math.log(self.pseudo_inputs)
        return ops.reshape(mixture, ops.shape(z)[:-1])  # (n,) -> (...)

    def encoded_images_per_step(self) -> int:
        """Its K pseudo-inputs, encoded at every step."""
        return self.pseudo_inputs

    def mean(self) -> np.ndarray:
        """The mixture's mean: the average of its components' means, each the posterior's most
        probable code (a Gaussian's mean is its mode)."""
        means = self.posterior.mode(self.components())  # (K, dimensions)
        return to_numpy(ops.mean(means, axis=0)).astype(np.float32, copy=False)

    def sample(self, count: int, seed: int) -> np.ndarray:
        """Codes from the mixture: a component drawn uniformly, then z ~ q(z | u_k)."""
        chosen = np.random.default_rng(seed).integers(0, self.pseudo_inputs, count)
        parameters = {
            name: ops.take(value, ops.convert_to_tensor(chosen), axis=0)
            for name, value in self.components().items()
        }
        z, _ = self.posterior.sample_exact(parameters, 1, seed)
        # (count, 1, code) -> (count, code)
        return to_numpy(ops.squeeze(z, 1)).astype(np.float32, copy=False)
