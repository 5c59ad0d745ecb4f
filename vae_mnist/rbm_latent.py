"""Rolfe's discrete VAE latent (ICLR 2017): binary units with a learned RBM prior.

The code z is n1 + n2 binary units, split into two halves. The prior is a restricted
Boltzmann machine, ``p(z) = exp(-E(z)) / Z`` with ``E(z) = -a1·z1 - a2·z2 - z1ᵀ W z2``, whose
biases and coupling are weights of this layer and learned with the rest of the VAE. The
approximate posterior is factorial, ``q(z_i = 1 | x) = sigmoid(logit_i)``.

Training: each unit is smoothed by the spike-and-exponential mixture, and the decoder sees ζ,
drawn by the mixture's inverse CDF from uniform noise, so gradients reach the encoder. The KL
term is ``KL(q ‖ p) = -H(q) + E_q[E(z)] + log Z``: the entropy and the expected energy in
closed form for a factorial q; the gradient of log Z, ``E_p[-∂E/∂θ]``, from persistent block
Gibbs chains of the prior (the chains' states are non-trainable variables of the layer,
advanced `gibbs_sweeps` sweeps per training step, and saved with the model, so a resumed run
keeps them), or, with ``log_partition_gradient="exact"`` and a half small enough to enumerate
in every step, from the enumerated log Z itself, with no sampling error.

Which log Z the loss *shows* (its value carries no gradient, except with ``exact``):

- where the smaller half has at most `IN_GRAPH_EXACT_UNITS` units, the exact log Z of the
  current parameters, enumerated inside the training step;
- otherwise the value in the non-trainable variable ``log_partition``: that of the last
  `prepare_evaluation` (exact or AIS), and ``(n1 + n2) log 2`` (exact for W = 0 and zero
  biases) before any. The logged KL of such a run is then off by the drift of log Z since.

Evaluation calls `prepare_evaluation` first, which computes log Z in numpy (exactly where the
smaller half has at most `EXACT_LOG_PARTITION_UNITS` units, else by annealed importance
sampling) and uses that value in the KL and in log p(z) from then on.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from vae_mnist import noise
from vae_mnist.config import (
    EXACT_LOG_PARTITION_UNITS,
    IN_GRAPH_EXACT_UNITS,
    LOG_PARTITION_GRADIENTS,
)
from vae_mnist.latents import SERIALIZATION_PACKAGE, DiscreteLatent, Latent, TensorLike
from vae_mnist.rbm import (
    annealed_importance_sampling_log_partition,
    bernoulli_entropy,
    enumerated_log_partition,
    exact_log_partition,
    expected_rbm_energy,
    gibbs_sample_numpy,
    gibbs_step,
    rbm_energy,
    spike_and_exponential_inverse_cdf,
)

# Annealed importance sampling for evaluation: independent runs and annealing steps.
AIS_CHAINS = 100
AIS_STEPS = 10_000
# Block Gibbs sweeps from random states before a prior sample is decoded, for figures.
PRIOR_SAMPLE_GIBBS_STEPS = 1000
LOG_PARTITION_METHODS = ("auto", "exact", "ais")
# A unit counts as used where its posterior probability varies across the test set by more
# than this (variance of q(z_i = 1 | x)), after Burda et al.'s active-unit threshold.
USED_UNIT_THRESHOLD = 1e-2


def _numpy(value: TensorLike) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(value))


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class RBMLatent(Latent):
    """Binary units with a restricted Boltzmann machine prior and spike-and-exponential smoothing.

    Args:
        first_units: n1, the units of the first half.
        second_units: n2, the units of the second half.
        beta: β > 0, the sharpness of the exponential ``β e^(βζ) / (e^β - 1)`` on [0, 1] that
            smooths a unit that is on. Fixed during training.
        chains: persistent Gibbs chains of the prior.
        gibbs_sweeps: block Gibbs sweeps the chains advance per training step.
        log_partition_gradient: ``chains`` (the persistent chains' estimate of ∂ log Z) or
            ``exact`` (the enumerated log Z's own gradient; the smaller half must have at most
            `IN_GRAPH_EXACT_UNITS` units). The chains advance either way, for the figures.
        seed: seed of the smoothing noise, the chains' noise and the chains' first states.
        coupling_scale: standard deviation of W's initial values (the biases start at zero).
    """

    def __init__(
        self,
        first_units: int = 16,
        second_units: int = 16,
        beta: float = 8.0,
        chains: int = 100,
        gibbs_sweeps: int = 1,
        log_partition_gradient: str = "chains",
        seed: int | None = None,
        coupling_scale: float = 0.01,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("first_units", first_units),
            ("second_units", second_units),
            ("chains", chains),
            ("gibbs_sweeps", gibbs_sweeps),
        ):
            if int(value) != value or value <= 0:
                raise ValueError(f"{name} must be a positive whole number, got {value!r}")
        if not beta > 0:
            raise ValueError(f"beta must be positive, got {beta!r}")
        if log_partition_gradient not in LOG_PARTITION_GRADIENTS:
            raise ValueError(
                f"unknown log_partition_gradient {log_partition_gradient!r} "
                f"(choose from {', '.join(LOG_PARTITION_GRADIENTS)})"
            )
        if log_partition_gradient == "exact" and (
            min(first_units, second_units) > IN_GRAPH_EXACT_UNITS
        ):
            raise ValueError(
                f"log_partition_gradient exact needs a half of at most {IN_GRAPH_EXACT_UNITS} "
                f"units, got {first_units} and {second_units}"
            )
        self.first_units = int(first_units)
        self.second_units = int(second_units)
        self.beta = float(beta)
        self.chains = int(chains)
        self.gibbs_sweeps = int(gibbs_sweeps)
        self.log_partition_gradient = log_partition_gradient
        self.seed = seed
        self.coupling_scale = float(coupling_scale)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.bias1 = self.add_weight(
            shape=(self.first_units,), initializer="zeros", name="bias1", trainable=True
        )
        self.bias2 = self.add_weight(
            shape=(self.second_units,), initializer="zeros", name="bias2", trainable=True
        )
        self.coupling = self.add_weight(
            shape=(self.first_units, self.second_units),
            initializer=keras.initializers.RandomNormal(stddev=self.coupling_scale, seed=seed),
            name="coupling",
            trainable=True,
        )
        # The chains start from uniformly random states, drawn under the seed.
        rng = np.random.default_rng(seed)
        first_states = (rng.random((self.chains, self.first_units)) < 0.5).astype("float32")
        second_states = (rng.random((self.chains, self.second_units)) < 0.5).astype("float32")
        self.chain_first = self.add_weight(
            shape=first_states.shape,
            initializer=lambda shape, dtype=None: first_states,
            name="chain_first",
            trainable=False,
        )
        self.chain_second = self.add_weight(
            shape=second_states.shape,
            initializer=lambda shape, dtype=None: second_states,
            name="chain_second",
            trainable=False,
        )
        self.log_partition = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.code_size * math.log(2.0)),
            name="log_partition",
            trainable=False,
        )
        # Set by `prepare_evaluation`: the log Z (a float) that evaluation uses.
        self.evaluation_log_partition: float | None = None
        self.built = True

    # -- the Latent interface ------------------------------------------------------------------

    def head_sizes(self) -> dict[str, int]:
        return {"logits": self.code_size}

    @property
    def code_size(self) -> int:
        return self.first_units + self.second_units

    def _halves(self, values: TensorLike) -> tuple[TensorLike, TensorLike]:
        """``(..., n1 + n2)`` → ``(..., n1)`` and ``(..., n2)``."""
        return values[..., : self.first_units], values[..., self.first_units :]

    def call(self, parameters: dict, training: bool | None = None) -> TensorLike:
        """ζ ``(batch, n1 + n2)``: the smoothed sample the decoder sees.

        In training, the persistent chains also advance by `gibbs_sweeps` block Gibbs sweeps.
        """
        if training:
            first, second = self.chain_first, self.chain_second
            # A Python loop: the sweep count is a constant, so the compiled step unrolls it.
            for _ in range(self.gibbs_sweeps):
                first, second = gibbs_step(
                    first, second, self.bias1, self.bias2, self.coupling, self.seed_generator
                )
            self.chain_first.assign(first)
            self.chain_second.assign(second)
        probabilities = ops.sigmoid(parameters["logits"])
        uniform = noise.uniform(
            ops.shape(probabilities), dtype=probabilities.dtype, seed=self.seed_generator
        )
        return spike_and_exponential_inverse_cdf(probabilities, uniform, self.beta)

    def current_log_partition(self) -> TensorLike:
        """The log Z that the KL term and log p(z) add (see the module).

        It carries the gradient of log Z only with ``log_partition_gradient="exact"``; with
        ``chains`` that gradient comes from `auxiliary_loss` instead.
        """
        if self.evaluation_log_partition is not None:
            return ops.convert_to_tensor(self.evaluation_log_partition, dtype=self.bias1.dtype)
        if self.log_partition_gradient == "exact":
            return enumerated_log_partition(self.bias1, self.bias2, self.coupling)
        if min(self.first_units, self.second_units) <= IN_GRAPH_EXACT_UNITS:
            return ops.stop_gradient(
                enumerated_log_partition(self.bias1, self.bias2, self.coupling)
            )
        return ops.convert_to_tensor(self.log_partition)

    def kl_divergence(self, parameters: dict) -> TensorLike:
        """``KL(q ‖ p) = -H(q) + E_q[E(z)] + log Z`` per row, ``(batch,)`` nats.

        The gradient of log Z is not here but in `auxiliary_loss`.
        """
        logits = parameters["logits"]
        first, second = self._halves(ops.sigmoid(logits))
        expected_energy = expected_rbm_energy(first, second, self.bias1, self.bias2, self.coupling)
        return -bernoulli_entropy(logits) + expected_energy + self.current_log_partition()

    def auxiliary_loss(self, parameters: dict) -> TensorLike:
        """A term of value zero whose gradient is that of log Z: ``E_p[-∂E/∂θ]``.

        ``-mean over chains of E(z_chain)``, with the chains' states held fixed, has the
        gradient ``-mean ∂E/∂θ``, a Monte-Carlo estimate of ``∂ log Z / ∂θ``; the same value
        is subtracted without gradient, so the logged loss stays the negative ELBO. With
        ``log_partition_gradient="exact"`` the KL term's log Z carries the gradient, and this
        term is zero with no gradient.
        """
        if self.log_partition_gradient == "exact":
            return ops.zeros((), dtype=self.bias1.dtype)
        first = ops.stop_gradient(ops.convert_to_tensor(self.chain_first))
        second = ops.stop_gradient(ops.convert_to_tensor(self.chain_second))
        surrogate = -ops.mean(rbm_energy(first, second, self.bias1, self.bias2, self.coupling))
        return surrogate - ops.stop_gradient(surrogate)

    def representation(self, parameters: dict) -> TensorLike:
        return ops.sigmoid(parameters["logits"])

    def mode(self, parameters: dict) -> TensorLike:
        return ops.cast(parameters["logits"] > 0.0, "float32")

    def sample_posterior(
        self, parameters: dict, samples: int, seed: Any
    ) -> tuple[TensorLike, TensorLike]:
        """Binary z ~ q(z|x) ``(batch, samples, n1 + n2)`` and log q(z|x) ``(batch, samples)``.

        ``log q(z|x) = Σ_i [z_i log σ(l_i) + (1 - z_i) log σ(-l_i)]``, with
        ``log σ(l) = -softplus(-l)``.
        """
        # (batch, units) -> (batch, 1, units), to broadcast over the samples.
        logits = ops.expand_dims(parameters["logits"], 1)
        shape = (ops.shape(logits)[0], samples, self.code_size)
        uniform = noise.uniform(shape, dtype=logits.dtype, seed=seed)
        z = ops.cast(uniform < ops.sigmoid(logits), logits.dtype)
        log_posterior = -ops.sum(
            z * ops.softplus(-logits) + (1.0 - z) * ops.softplus(logits), axis=-1
        )
        return z, log_posterior

    def decoder_input(self, z: TensorLike, seed: Any) -> TensorLike:
        """ζ ~ r(ζ | z) for binary z: 0 where z = 0, the exponential on [0, 1] where z = 1.

        The inverse CDF of the mixture with q = z is exactly that, so the decoder sees the
        same distribution of ζ as in training.
        """
        uniform = noise.uniform(ops.shape(z), dtype=z.dtype, seed=seed)
        return spike_and_exponential_inverse_cdf(z, uniform, self.beta)

    def log_prior(self, z: TensorLike) -> TensorLike:
        """``log p(z) = -E(z) - log Z``, z ``(..., n1 + n2)`` → ``(...)``."""
        first, second = self._halves(z)
        return -rbm_energy(first, second, self.bias1, self.bias2, self.coupling) - (
            self.current_log_partition()
        )

    def sample_prior(self, count: int, seed: int) -> np.ndarray:
        """Binary z ``(count, n1 + n2)`` from the RBM by block Gibbs sampling, numpy float32.

        Each of `count` independent chains runs `PRIOR_SAMPLE_GIBBS_STEPS` sweeps from a random
        state. The binary z is fed to the decoder as ζ: a unit that is on gives ζ = 1, the mode
        of r(ζ | z = 1).
        """
        first, second = gibbs_sample_numpy(
            _numpy(self.bias1),
            _numpy(self.bias2),
            _numpy(self.coupling),
            count,
            PRIOR_SAMPLE_GIBBS_STEPS,
            np.random.default_rng(seed),
        )
        return np.concatenate([first, second], axis=1)

    # -- evaluation ----------------------------------------------------------------------------

    def exact_log_partition_possible(self) -> bool:
        return min(self.first_units, self.second_units) <= EXACT_LOG_PARTITION_UNITS

    def prepare_evaluation(self, log_partition: str = "auto", seed: int = 0, **options) -> dict:
        """Compute log Z in numpy and use it from now on; return it as metrics.

        Args:
            log_partition: ``exact`` (enumerate the smaller half; at most
                `EXACT_LOG_PARTITION_UNITS` units), ``ais`` (annealed importance sampling,
                `AIS_CHAINS` runs of `AIS_STEPS` steps), or ``auto`` (exact where possible).
            seed: seed of the AIS draws.

        Returns:
            ``log_partition`` (nats), ``log_partition_method`` and
            ``log_partition_standard_error`` (0 for the exact value).

        Raises:
            ValueError: exact asked for halves too large, or an unknown method.
        """
        if log_partition not in LOG_PARTITION_METHODS:
            raise ValueError(
                f"unknown log-partition method {log_partition!r} "
                f"(choose from {', '.join(LOG_PARTITION_METHODS)})"
            )
        parameters = (_numpy(self.bias1), _numpy(self.bias2), _numpy(self.coupling))
        if log_partition == "exact" or (
            log_partition == "auto" and self.exact_log_partition_possible()
        ):
            value = exact_log_partition(*parameters, max_enumerated_units=EXACT_LOG_PARTITION_UNITS)
            method, error = "exact", 0.0
        else:
            value, error = annealed_importance_sampling_log_partition(
                *parameters,
                chains=AIS_CHAINS,
                steps=AIS_STEPS,
                rng=np.random.default_rng(seed),
            )
            method = "ais"
        self.evaluation_log_partition = float(value)
        self.log_partition.assign(float(value))
        return {
            "log_partition": float(value),
            "log_partition_method": method,
            "log_partition_standard_error": float(error),
        }

    def unit_usage(self, parameters: dict[str, np.ndarray]) -> np.ndarray:
        """Per unit, the share of images whose most probable code has it on, ``(n1 + n2,)``."""
        return np.mean(np.asarray(parameters["logits"]) > 0.0, axis=0)

    def latent_metrics(self, parameters: dict[str, np.ndarray]) -> dict[str, Any]:
        """Per-unit usage over the given (test) images, and the units whose posterior varies."""
        probabilities = 1.0 / (1.0 + np.exp(-np.asarray(parameters["logits"], np.float64)))
        variances = np.var(probabilities, axis=0)
        return {
            "active_units": int(np.sum(variances > USED_UNIT_THRESHOLD)),
            "unit_usage": [float(value) for value in self.unit_usage(parameters)],
            "mean_posterior_probability": [float(value) for value in probabilities.mean(axis=0)],
        }

    # -- the codes-style figures' interface (one binary variable per unit, two classes) -------

    @property
    def variable_count(self) -> int:
        return self.code_size

    @property
    def classes(self) -> int:
        return 2

    def classes_of(self, parameters: dict[str, np.ndarray]) -> np.ndarray:
        """The most probable code as integers 0/1, ``(batch, n1 + n2)``."""
        return (np.asarray(parameters["logits"]) > 0.0).astype(np.int64)

    def code_of(self, classes: np.ndarray) -> np.ndarray:
        """The decoder's input for binary classes: the classes themselves, as ζ, float32."""
        return np.asarray(classes, np.float32)

    # The discrete latents' count of images per variable and class, ``(n1 + n2, 2)``: it reads
    # only `classes_of` and `classes`, which this latent gives in the same form.
    class_usage = DiscreteLatent.class_usage

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "first_units": self.first_units,
            "second_units": self.second_units,
            "beta": self.beta,
            "chains": self.chains,
            "gibbs_sweeps": self.gibbs_sweeps,
            "log_partition_gradient": self.log_partition_gradient,
            "seed": self.seed,
            "coupling_scale": self.coupling_scale,
        }
