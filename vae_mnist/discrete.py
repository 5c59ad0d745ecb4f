"""Discrete latents: categorical and binary posteriors, relaxed in training, and a uniform prior.

Kinds:

- the ``categorical`` posterior: N variables of K classes, the Gumbel-softmax relaxation (Jang,
  Gu & Poole 2017);
- the ``bernoulli`` posterior: N binary units, the binary Concrete relaxation (Maddison et al.
  2017);
- the ``spike_exponential`` posterior: N binary units smoothed by Rolfe's (2017)
  spike-and-exponential mixture, whose decoder sees the smoothed ζ in training and evaluation;
- the ``overlapping_exponential`` and ``power_function`` posteriors: the same units smoothed by
  DVAE++'s overlapping exponentials and DVAE#'s power functions (Vahdat et al. 2018);
- the ``uniform`` prior: every code of a discrete posterior equally likely.

The two relaxed posteriors anneal their temperature ``τ = max(τ_min, τ₀ · exp(-r · step))``,
where ``step`` counts the training steps: a non-trainable variable that each training call
advances (through Keras' variable assignment, so JAX's stateless training step carries it),
saved with every checkpoint, so a resumed run continues the schedule where it stopped. With
``straight_through`` the forward value is the exact code while the gradient flows through the
relaxation. Outside training they draw an *exact* code, so the validation loss is the
single-sample ELBO of a discrete code, the number that ``evaluate`` reports.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from vae_mnist import noise
from vae_mnist.backend import ops
from vae_mnist.divergences import bernoulli_kl_divergence, categorical_kl_divergence
from vae_mnist.latent import (
    Categorical,
    FactorialBernoulli,
    Posterior,
    Prior,
    TensorLike,
    require_posterior,
)
from vae_mnist.rbm import (
    overlapping_exponential_inverse_cdf,
    power_function_smoothing,
    smoothed_log_density_ratio,
    spike_and_exponential_inverse_cdf,
)
from vae_mnist.relaxations import (
    annealed_temperature,
    bernoulli_bits,
    bernoulli_log_probability,
    bernoulli_sample,
    binary_concrete_log_density,
    binary_concrete_logit_sample,
    binary_concrete_sample,
    categorical_log_probability,
    categorical_sample,
    exp_concrete_log_density,
    exp_concrete_sample,
    gumbel_softmax_sample,
)
from vae_mnist.settings import ConfigError, register, setting


class CodePosterior(Posterior):
    """A posterior over ``variable_count`` discrete variables of ``classes`` classes each.

    Offers the ``codes`` capability: the figures set each variable to each class
    (`classes_of`, `code_of`) and count how the data uses them (`class_usage`).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"codes"})

    @property
    def variable_count(self) -> int:
        raise NotImplementedError

    @property
    def classes(self) -> int:
        raise NotImplementedError

    def classes_of(self, parameters: dict[str, np.ndarray]) -> np.ndarray:
        """The most probable class of each variable, ``(batch, variables)`` integers (numpy)."""
        raise NotImplementedError

    def code_of(self, classes: np.ndarray) -> np.ndarray:
        """The decoder's input ``(batch, code_size)`` float32 for classes ``(batch, variables)``."""
        raise NotImplementedError

    def classes_of_code(self, codes: np.ndarray) -> np.ndarray:
        """The classes ``(batch, variables)`` of exact codes ``(batch, code_size)``: the inverse
        of `code_of`, for codes drawn from a prior."""
        raise NotImplementedError

    def class_usage(self, parameters: dict[str, np.ndarray]) -> np.ndarray:
        """Per variable and class, the images whose most probable class it is: ``(N, K)``."""
        classes = self.classes_of(parameters)
        return np.stack(
            [np.bincount(column, minlength=self.classes) for column in classes.T.astype(np.int64)]
        )

    def latent_metrics(self, parameters: dict[str, np.ndarray]) -> dict[str, Any]:
        """``classes_used``: per variable, the classes that are the most probable one for at
        least one image; ``mean_classes_used``: their mean over the variables."""
        used = np.sum(self.class_usage(parameters) > 0, axis=1)
        return {
            "classes_used": [int(count) for count in used],
            "mean_classes_used": float(np.mean(used)),
        }


class RelaxedPosterior(CodePosterior):
    """A discrete posterior relaxed at an annealed temperature in training (see the module).

    It offers ``relaxed_density``: a relaxed sample in the logits' space v (`draw_relaxed_logits`),
    the code the decoder sees for it (`relaxed_code`), and its density at the current
    temperature (`relaxed_log_density`), which the importance-weighted objective weighs
    relaxed samples by (Maddison et al. 2017). `log_density` is the exact code's probability.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"codes", "relaxed_density"})
    logged_metrics: ClassVar[tuple[str, ...]] = ("temperature",)
    logged_titles: ClassVar[dict[str, str]] = {"temperature": "relaxation temperature τ"}
    # A later stage of training may relax differently (a lower floor, or exact bits forward).
    resumable_settings: ClassVar[tuple[str, ...]] = (
        "straight_through",
        "temperature",
        "temperature_min",
        "temperature_rate",
    )

    def check(self) -> None:
        if self.temperature_min > self.temperature:
            raise ConfigError(
                f"temperature_min {self.temperature_min} is above the starting temperature "
                f"{self.temperature}"
            )

    def create_state(self, host: Any, seed: int | None) -> None:
        super().create_state(host, seed)
        # The training steps taken so far: the schedule's clock, saved with the model.
        host.step = host.add_weight(
            shape=(), initializer="zeros", dtype="int", trainable=False, name="step"
        )
        self.attach(step=host.step)

    def current_temperature(self) -> TensorLike:
        """τ at the current step: the temperature that the next training step relaxes with."""
        return annealed_temperature(
            self.step, self.temperature, self.temperature_min, self.temperature_rate
        )

    def logged_values(self) -> dict[str, TensorLike]:
        return {"temperature": self.current_temperature()}

    def relaxed_sample(self, parameters: dict, temperature: TensorLike) -> TensorLike:
        raise NotImplementedError

    def draw_relaxed_logits(self, parameters: dict) -> TensorLike:
        """A relaxed sample in the logits' space at the current temperature. The step is not
        advanced here: the sample's densities must be taken at the temperature that drew it,
        and `advance_step` follows them."""
        return self.relaxed_logit_sample(parameters, self.current_temperature())

    def advance_step(self) -> None:
        """One training step taken: the schedule's clock moves on."""
        self.step.assign_add(1)

    def relaxed_log_density(self, v: TensorLike, parameters: dict) -> TensorLike:
        """``(batch,)``: the density of `v` under `parameters` at the current temperature."""
        raise NotImplementedError

    def sample(self, parameters: dict, training: bool | None = None) -> TensorLike:
        if not training:
            z, _ = self.sample_exact(parameters, 1, self.seed_generator)
            return ops.squeeze(z, 1)  # (batch, 1, code) -> (batch, code)
        z = self.relaxed_sample(parameters, self.current_temperature())
        self.advance_step()
        return z


def _temperature_settings() -> dict[str, Any]:
    return dict(
        straight_through=setting(False, "one-hot forward pass, gradients through the relaxation"),
        temperature=setting(1.0, "the relaxation's starting temperature", positive=True),
        temperature_min=setting(0.5, "the relaxation's temperature floor", positive=True),
        temperature_rate=setting(
            math.log(2.0) / 30_000,
            "r in temperature = max(min, start * exp(-r * step))",
        ),
    )


@register
@dataclasses.dataclass(frozen=True)
class CategoricalPosterior(RelaxedPosterior):
    """N categorical variables of K classes, the Gumbel-softmax relaxation in training.

    The encoder gives N·K logits; the code is the N one-hot vectors side by side,
    ``(batch, N·K)``, variable i at columns ``i·K .. i·K + K - 1``.
    """

    kind: ClassVar[str] = "categorical"
    description: ClassVar[str] = "categorical variables, Gumbel-softmax (Jang et al. 2017)"

    variables: int = setting(20, "the number of categorical variables N", positive=True)
    categories: int = setting(10, "classes K of each categorical variable", minimum=2)
    straight_through: bool = _temperature_settings()["straight_through"]
    temperature: float = _temperature_settings()["temperature"]
    temperature_min: float = _temperature_settings()["temperature_min"]
    temperature_rate: float = _temperature_settings()["temperature_rate"]

    @property
    def variable_count(self) -> int:
        return self.variables

    @property
    def classes(self) -> int:
        return self.categories

    def head_sizes(self) -> dict[str, int]:
        return {"logits": self.variables * self.categories}

    @property
    def code_size(self) -> int:
        return self.variables * self.categories

    def _logits(self, parameters: dict) -> TensorLike:
        # (batch, N*K) -> (batch, N, K)
        return ops.reshape(parameters["logits"], (-1, self.variables, self.categories))

    def relaxed_sample(self, parameters: dict, temperature: TensorLike) -> TensorLike:
        sample = gumbel_softmax_sample(
            self._logits(parameters), temperature, self.seed_generator, self.straight_through
        )
        return ops.reshape(sample, (-1, self.code_size))  # (batch, N, K) -> (batch, N*K)

    def distribution(self, parameters: dict) -> Categorical:
        return Categorical(parameters["logits"], self.variables, self.categories)

    def relaxed_logit_sample(self, parameters: dict, temperature: TensorLike) -> TensorLike:
        """x = log y of a Concrete sample, ``(batch, N·K)``."""
        sample = exp_concrete_sample(self._logits(parameters), temperature, self.seed_generator)
        return ops.reshape(sample, (-1, self.code_size))  # (batch, N, K) -> (batch, N*K)

    def relaxed_code(self, v: TensorLike) -> TensorLike:
        return ops.exp(v)

    def relaxed_log_density(self, v: TensorLike, parameters: dict) -> TensorLike:
        shape = (-1, self.variables, self.categories)
        # (batch, N*K) -> (batch, N, K), the density's own shape.
        return exp_concrete_log_density(
            ops.reshape(v, shape), self._logits(parameters), self.current_temperature()
        )

    def log_density(self, z: TensorLike, parameters: dict) -> TensorLike:
        """log q(z|x) of exact one-hot codes ``(batch, N·K)``."""
        # (batch, N·K) -> (batch, N, K)
        one_hot = ops.reshape(z, (-1, self.variables, self.categories))
        return categorical_log_probability(one_hot, self._logits(parameters))

    def representation(self, parameters: dict) -> TensorLike:
        """The posterior probabilities softmax(logits) of every variable, ``(batch, N·K)``."""
        # (batch, N, K) -> (batch, N·K)
        return ops.reshape(ops.softmax(self._logits(parameters), axis=-1), (-1, self.code_size))

    def mode(self, parameters: dict) -> TensorLike:
        """Each variable's most probable class, one-hot, ``(batch, N·K)``."""
        logits = self._logits(parameters)
        one_hot = ops.one_hot(ops.argmax(logits, axis=-1), self.categories, dtype=logits.dtype)
        return ops.reshape(one_hot, (-1, self.code_size))  # (batch, N, K) -> (batch, N·K)

    def sample_exact(self, parameters: dict, samples: int, seed: Any) -> tuple[Any, Any]:
        """Exact one-hot codes z ~ q(z|x) ``(batch, samples, N·K)`` and log q(z|x)."""
        logits = self._logits(parameters)
        one_hot = categorical_sample(logits, seed, samples=samples)  # (batch, S, N, K)
        log_posterior = categorical_log_probability(one_hot, ops.expand_dims(logits, 1))
        z = ops.reshape(one_hot, (-1, samples, self.code_size))  # -> (batch, S, N*K)
        return z, log_posterior

    def classes_of(self, parameters: dict[str, np.ndarray]) -> np.ndarray:
        # (batch, N*K) -> (batch, N, K)
        logits = np.asarray(parameters["logits"]).reshape(-1, self.variables, self.categories)
        return np.argmax(logits, axis=-1)

    def code_of(self, classes: np.ndarray) -> np.ndarray:
        classes = np.asarray(classes, dtype=np.int64)
        one_hot = np.eye(self.categories, dtype=np.float32)[classes]  # (batch, N, K)
        return one_hot.reshape(len(classes), self.code_size)  # (batch, N, K) -> (batch, N*K)

    def classes_of_code(self, codes: np.ndarray) -> np.ndarray:
        # (batch, N*K) -> (batch, N, K): each variable's one-hot, whose 1 is its class.
        one_hot = np.asarray(codes).reshape(-1, self.variables, self.categories)
        return np.argmax(one_hot, axis=-1)


class BinaryPosterior(CodePosterior):
    """Independent binary units, ``q(z_i = 1 | x) = sigmoid(logit_i)``: variables of 2 classes."""

    @property
    def variable_count(self) -> int:
        return self.units

    @property
    def classes(self) -> int:
        return 2

    def head_sizes(self) -> dict[str, int]:
        return {"logits": self.units}

    @property
    def code_size(self) -> int:
        return self.units

    def distribution(self, parameters: dict) -> FactorialBernoulli:
        return FactorialBernoulli(parameters["logits"])

    def representation(self, parameters: dict) -> TensorLike:
        """The posterior probability of each unit being 1, sigmoid(logits), ``(batch, N)``."""
        return ops.sigmoid(parameters["logits"])

    def mode(self, parameters: dict) -> TensorLike:
        """Each unit's more probable value: 1 where the logit is positive, ``(batch, N)``."""
        logits = parameters["logits"]
        return ops.cast(ops.greater(logits, 0.0), logits.dtype)

    def classes_of(self, parameters: dict[str, np.ndarray]) -> np.ndarray:
        return (np.asarray(parameters["logits"]) > 0).astype(np.int64)

    def code_of(self, classes: np.ndarray) -> np.ndarray:
        # (batch, units) bits, whatever nesting they came in.
        return np.asarray(classes, dtype=np.float32).reshape(len(classes), self.units)

    def classes_of_code(self, codes: np.ndarray) -> np.ndarray:
        return (np.asarray(codes) > 0.5).astype(np.int64)


@register
@dataclasses.dataclass(frozen=True)
class BernoulliPosterior(RelaxedPosterior, BinaryPosterior):
    """N binary units with the binary Concrete relaxation in training (Maddison et al. 2017)."""

    kind: ClassVar[str] = "bernoulli"
    description: ClassVar[str] = "binary units, binary Concrete (Maddison et al. 2017)"
    capabilities: ClassVar[frozenset[str]] = frozenset({"codes", "relaxed_density", "relaxed_bits"})

    units: int = setting(200, "the number of binary units", positive=True)
    straight_through: bool = _temperature_settings()["straight_through"]
    temperature: float = _temperature_settings()["temperature"]
    temperature_min: float = _temperature_settings()["temperature_min"]
    temperature_rate: float = _temperature_settings()["temperature_rate"]

    def relaxed_sample(self, parameters: dict, temperature: TensorLike) -> TensorLike:
        return binary_concrete_sample(
            parameters["logits"], temperature, self.seed_generator, self.straight_through
        )

    def relaxed_logit_sample(self, parameters: dict, temperature: TensorLike) -> TensorLike:
        """L, the logit of a binary Concrete sample, ``(batch, N)``."""
        return binary_concrete_logit_sample(parameters["logits"], temperature, self.seed_generator)

    def relaxed_code(self, v: TensorLike) -> TensorLike:
        return ops.sigmoid(v)

    def relaxed_log_density(self, v: TensorLike, parameters: dict) -> TensorLike:
        return binary_concrete_log_density(v, parameters["logits"], self.current_temperature())

    def log_density(self, z: TensorLike, parameters: dict) -> TensorLike:
        """log q(z|x) of exact bits ``(batch, N)``."""
        return bernoulli_log_probability(z, parameters["logits"])

    def relaxed_log_probability(self, zeta: TensorLike, parameters: dict) -> TensorLike:
        """GumBolt's proxy of log q(z|x) at a relaxed sample ζ in [0, 1]^N, ``(batch,)``.

        The bits' log-probability ``Σ_u [z_u l_u - softplus(l_u)]`` is linear in each bit, and
        it is evaluated at ζ in place of z (Khoshaman & Amin 2018); as the temperature falls, ζ
        tends to the bits and this to log q(z|x). It is not the density of ζ.
        """
        return bernoulli_log_probability(zeta, parameters["logits"])

    def sample_exact(self, parameters: dict, samples: int, seed: Any) -> tuple[Any, Any]:
        """Exact bits z ~ q(z|x) ``(batch, samples, N)`` and log q(z|x)."""
        logits = parameters["logits"]
        bits = bernoulli_sample(logits, seed, samples=samples)
        return bits, bernoulli_log_probability(bits, ops.expand_dims(logits, 1))


@register
@dataclasses.dataclass(frozen=True)
class SpikeExponentialPosterior(BinaryPosterior):
    """N binary units smoothed by the spike-and-exponential mixture (Rolfe 2017).

    The decoder sees ζ, drawn by the mixture's inverse CDF from uniform noise: 0 where the unit
    is off, ``β e^(βζ) / (e^β - 1)`` on [0, 1] where it is on, so gradients reach the encoder.
    It smooths in evaluation too (`decoder_input`), so the decoder sees the same ζ there.
    """

    kind: ClassVar[str] = "spike_exponential"
    description: ClassVar[str] = "binary units, spike-and-exponential smoothing (Rolfe 2017)"

    units: int = setting(200, "the number of binary units", positive=True)
    sharpness: float = setting(8.0, "β, the sharpness of the smoothing", positive=True)

    def smooth(self, q: TensorLike, uniform: TensorLike) -> TensorLike:
        """ζ by the mixture's inverse CDF at ρ = `uniform`, q = q(z = 1 | x) (or the bits)."""
        return spike_and_exponential_inverse_cdf(q, uniform, self.sharpness)

    def sample(self, parameters: dict, training: bool | None = None) -> TensorLike:
        probabilities = ops.sigmoid(parameters["logits"])
        uniform = noise.uniform(
            ops.shape(probabilities), dtype=probabilities.dtype, seed=self.seed_generator
        )
        return self.smooth(probabilities, uniform)

    def sample_exact(self, parameters: dict, samples: int, seed: Any) -> tuple[Any, Any]:
        """Binary z ~ q(z|x) ``(batch, samples, N)`` and log q(z|x) ``(batch, samples)``.

        ``log q(z|x) = Σ_i [z_i log σ(l_i) + (1 - z_i) log σ(-l_i)]``, with
        ``log σ(l) = -softplus(-l)``.
        """
        # (batch, units) -> (batch, 1, units), to broadcast over the samples.
        logits = ops.expand_dims(parameters["logits"], 1)
        shape = (ops.shape(logits)[0], samples, self.units)
        uniform = noise.uniform(shape, dtype=logits.dtype, seed=seed)
        z = bernoulli_bits(uniform, logits)
        log_posterior = -ops.sum(
            z * ops.softplus(-logits) + (1.0 - z) * ops.softplus(logits), axis=-1
        )
        return z, log_posterior

    def decoder_input(self, z: TensorLike, seed: Any) -> TensorLike:
        """ζ ~ r(ζ | z) for binary z: the mixture's inverse CDF with q = z is exactly that."""
        uniform = noise.uniform(ops.shape(z), dtype=z.dtype, seed=seed)
        return self.smooth(z, uniform)

    def latent_metrics(self, parameters: dict[str, np.ndarray]) -> dict[str, Any]:
        """Per-unit usage over the given images, and the units whose posterior varies."""
        logits = np.asarray(parameters["logits"], np.float64)
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        return {
            "active_units": int(np.sum(np.var(probabilities, axis=0) > USED_UNIT_THRESHOLD)),
            "unit_usage": [float(value) for value in np.mean(logits > 0.0, axis=0)],
            "mean_posterior_probability": [float(value) for value in probabilities.mean(axis=0)],
        }


class SmoothedDensity:
    """What a smoothing offers whose two states both have a density on [0, 1] (DVAE++'s and
    DVAE#'s, not Rolfe's spike): the density of the training sample ζ itself, for a relaxed
    Boltzmann prior (DVAE#) and for the importance-weighted bound (``smoothed_density``).

    A kind gives ``smoothing_log_odds(ζ) = log r(ζ|1) - log r(ζ|0)``; `unit_logits` are the
    logits that q(ζ|x) mixes the states by (each group's given the earlier ones, where the
    posterior is hierarchical).
    """

    def unit_logits(self, parameters: dict, zeta: TensorLike) -> TensorLike:
        return parameters["logits"]

    def smoothed_log_density(self, zeta: TensorLike, parameters: dict) -> TensorLike:
        """``log q(ζ|x) - Σ_i log r(ζ_i|0)``, ``(batch,)`` nats
        (`vae_mnist.rbm.smoothed_log_density_ratio`)."""
        return smoothed_log_density_ratio(
            self.unit_logits(parameters, zeta), self.smoothing_log_odds(zeta)
        )

    def smoothed_log_ratio(self, zeta: TensorLike, parameters: dict, prior: Any) -> TensorLike:
        """``log q(ζ|x) - log p(ζ)`` of the training sample under a prior that offers
        ``smoothed_density``, ``(batch,)`` nats: the Σ log r(ζ|0) of both cancels."""
        # The log-odds once, for both densities: this runs in every training step.
        log_odds = self.smoothing_log_odds(zeta)
        log_q = smoothed_log_density_ratio(self.unit_logits(parameters, zeta), log_odds)
        return log_q - prior.smoothed_log_density(log_odds)


@register
@dataclasses.dataclass(frozen=True)
class OverlappingExponentialPosterior(SmoothedDensity, SpikeExponentialPosterior):
    """N binary units smoothed by DVAE++'s overlapping exponentials (Vahdat et al. 2018).

    As the spike-and-exponential, with the spike at 0 replaced by the mirror of the exponential
    at 1, so that both states have a density on [0, 1] and every draw carries a gradient to q
    (`vae_mnist.rbm.overlapping_exponential_inverse_cdf`). The decoder sees ζ in training and
    evaluation alike.
    """

    kind: ClassVar[str] = "overlapping_exponential"
    description: ClassVar[str] = "binary units, overlapping exponentials (DVAE++, Vahdat 2018)"
    capabilities: ClassVar[frozenset[str]] = frozenset({"codes", "smoothed_density"})

    def smooth(self, q: TensorLike, uniform: TensorLike) -> TensorLike:
        return overlapping_exponential_inverse_cdf(q, uniform, self.sharpness)

    def smoothing_log_odds(self, zeta: TensorLike) -> TensorLike:
        """``log r(ζ|1) - log r(ζ|0) = β(2ζ - 1)`` for the overlapping exponentials."""
        return self.sharpness * (2.0 * zeta - 1.0)


@register
@dataclasses.dataclass(frozen=True)
class PowerFunctionPosterior(SmoothedDensity, SpikeExponentialPosterior):
    """N binary units smoothed by DVAE#'s power functions (Vahdat, Andriyash & Macready 2018).

    As the overlapping exponentials, with ``r0(ζ) = ζ^(1/β - 1) / β`` for a unit that is off
    and its mirror for one that is on: sharper at the ends for the same β, and a mixture whose
    CDF has no closed-form inverse, so ζ is drawn state by state and its gradient in q is the
    implicit one (`vae_mnist.rbm.power_function_smoothing`). The decoder sees ζ in training and
    evaluation alike.
    """

    kind: ClassVar[str] = "power_function"
    description: ClassVar[str] = "binary units, power-function smoothing (DVAE#, Vahdat 2018)"
    capabilities: ClassVar[frozenset[str]] = frozenset({"codes", "smoothed_density"})

    def smooth(self, q: TensorLike, uniform: TensorLike) -> TensorLike:
        return power_function_smoothing(q, uniform, self.sharpness)

    def smoothing_log_odds(self, zeta: TensorLike) -> TensorLike:
        """``log r(ζ|1) - log r(ζ|0) = (1/β - 1)(log(1 - ζ) - log ζ)`` for the power functions,
        ζ held `POWER_FUNCTION_MARGIN` inside [0, 1]."""
        zeta = ops.clip(zeta, POWER_FUNCTION_MARGIN, 1.0 - POWER_FUNCTION_MARGIN)
        return (1.0 / self.sharpness - 1.0) * (ops.log1p(-zeta) - ops.log(zeta))


# The power functions' ζ is held this far inside [0, 1] for their log-odds: an "on" unit's ζ may
# round to exactly 1 in float32, where log(1 - ζ), and so the gradient, would not be finite.
POWER_FUNCTION_MARGIN = 1e-7


# A unit counts as used where its posterior probability varies across the test set by more
# than this (variance of q(z_i = 1 | x)), after Burda et al.'s active-unit threshold.
USED_UNIT_THRESHOLD = 1e-2


@register
@dataclasses.dataclass(frozen=True)
class UniformPrior(Prior):
    """Every code of a discrete posterior equally likely: ``log p(z) = -N log K``."""

    kind: ClassVar[str] = "uniform"
    description: ClassVar[str] = "uniform over the codes of a discrete posterior"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"sample", "relaxed_density", "relaxed_bits", "smoothed_density"}
    )

    def check_posterior(self, posterior: Posterior) -> None:
        require_posterior(self, posterior, "codes", "a discrete posterior")

    def smoothed_log_density(self, log_odds: TensorLike) -> TensorLike:
        """``log p(ζ) - Σ_i log r(ζ_i|0) = Σ_i [softplus(g_i) - log 2]`` for smoothed bits under
        the uniform prior, ``p(ζ_i) = (r(ζ_i|0) + r(ζ_i|1)) / 2``; g ``(..., N)`` → ``(...)``."""
        return ops.sum(ops.softplus(log_odds) - math.log(2.0), axis=-1)

    def kl_divergence(self, distribution: Any) -> TensorLike | None:
        if isinstance(distribution, Categorical):
            # (batch, N*K) -> (batch, N, K)
            logits = ops.reshape(
                distribution.logits, (-1, distribution.variables, distribution.categories)
            )
            return categorical_kl_divergence(logits)
        if isinstance(distribution, FactorialBernoulli):
            return bernoulli_kl_divergence(distribution.logits)
        return None

    def log_density(self, z: TensorLike) -> TensorLike:
        """``log p(z) = -N log K`` for every code, shape ``z.shape[:-1]``."""
        posterior = self.posterior
        constant = posterior.variable_count * math.log(posterior.classes)
        return ops.zeros(ops.shape(z)[:-1], dtype=z.dtype) - constant

    def relaxed_log_density(self, v: TensorLike) -> TensorLike:
        """The density of a relaxed sample under the relaxed uniform prior: the posterior's
        relaxation with all logits zero, at the same temperature."""
        zeros = {"logits": ops.zeros((ops.shape(v)[0], self.posterior.code_size), dtype=v.dtype)}
        return self.posterior.relaxed_log_density(v, zeros)

    def sample(self, count: int, seed: int) -> np.ndarray:
        """Codes with every class of every variable equally likely."""
        posterior = self.posterior
        shape = (count, posterior.variable_count)
        classes = np.random.default_rng(seed).integers(0, posterior.classes, shape)
        return posterior.code_of(classes)
