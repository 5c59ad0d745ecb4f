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
- ``latent_metrics(parameters)``: a JSON-ready dict of numbers that describe how the test set
  uses the latent (the Gaussian's active units, a discrete latent's classes used), from numpy
  parameters. Empty by default.
- ``logged_metrics``: names of values that training logs per epoch (a discrete latent's
  temperature), and ``logged_values()``: their current values as scalars. Empty by default.
- ``decoder_input(z, seed)``: what the decoder sees for exact posterior samples z (z itself,
  except where training's decoder sees a smoothed code, as the RBM latent's ζ ~ r(ζ|z)).
- ``prepare_evaluation(**options)``: work to do once before evaluation (the RBM prior's log Z);
  returns a JSON-ready dict of metrics. Nothing by default.

`parameters` is the dict of the encoder's heads by name. Seeds are `keras.random.SeedGenerator`s
or integers.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from vae_mnist import noise
from vae_mnist.divergences import (
    bernoulli_kl_divergence,
    categorical_kl_divergence,
    gaussian_kl_divergence,
)
from vae_mnist.relaxations import (
    annealed_temperature,
    bernoulli_log_probability,
    bernoulli_sample,
    binary_concrete_sample,
    categorical_log_probability,
    categorical_sample,
    gumbel_softmax_sample,
)

SERIALIZATION_PACKAGE = "vae_mnist"
LOG_TWO_PI = math.log(2.0 * math.pi)
LOG_TWO = math.log(2.0)
TensorLike = Any
# Burda et al. (2015) call a latent dimension active when the variance of its posterior mean
# across the data exceeds this.
ACTIVE_UNIT_THRESHOLD = 1e-2


class Latent(keras.layers.Layer):
    """The base of every latent: an auxiliary loss of zero, and a config of the layer's own."""

    def head_sizes(self) -> dict[str, int]:
        raise NotImplementedError

    @property
    def code_size(self) -> int:
        raise NotImplementedError

    # Values that training logs once per epoch, by name; none for most latents.
    logged_metrics: tuple[str, ...] = ()

    def auxiliary_loss(self, parameters: dict) -> TensorLike:
        return 0.0

    def decoder_input(self, z: TensorLike, seed: Any) -> TensorLike:
        return z

    def prepare_evaluation(self, **options: Any) -> dict[str, Any]:
        return {}

    def logged_values(self) -> dict[str, TensorLike]:
        return {}

    def latent_metrics(self, parameters: dict[str, np.ndarray]) -> dict[str, Any]:
        return {}

    def compute_output_shape(self, input_shape):
        batch = next(iter(input_shape.values()))[0]
        return (batch, self.code_size)


def active_units(z_mean: np.ndarray) -> np.ndarray:
    """Per latent dimension, Cov_x(E_q[z]): the variance of z_mean across the data.

    A dimension is active where this exceeds `ACTIVE_UNIT_THRESHOLD` (Burda et al. 2015).
    """
    return np.var(z_mean.astype(np.float64), axis=0)


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
        epsilon = noise.normal(ops.shape(z_mean), stddev=self.epsilon_std, seed=self.seed_generator)
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
        z = z_mean + ops.exp(0.5 * z_log_var) * noise.normal(shape, seed=seed)
        return z, gaussian_log_density(z, z_mean, z_log_var)

    def log_prior(self, z: TensorLike) -> TensorLike:
        return -0.5 * ops.sum(LOG_TWO_PI + ops.square(z), axis=-1)

    def sample_prior(self, count: int, seed: int) -> np.ndarray:
        return (
            np.random.default_rng(seed).standard_normal((count, self.latent_dim)).astype(np.float32)
        )

    def latent_metrics(self, parameters: dict[str, np.ndarray]) -> dict[str, Any]:
        """``active_units``: dimensions whose z_mean varies across the data by more than
        `ACTIVE_UNIT_THRESHOLD`; ``latent_variances``: that variance per dimension."""
        variances = active_units(parameters["z_mean"])
        return {
            "active_units": int(np.sum(variances > ACTIVE_UNIT_THRESHOLD)),
            "latent_variances": [float(value) for value in variances],
        }

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "epsilon_std": self.epsilon_std,
            "seed": self.seed,
        }


class DiscreteLatent(Latent):
    """The base of the discrete latents: N variables of K classes each, relaxed in training.

    In training, `call` draws a relaxed sample at the temperature
    ``τ = max(τ_min, τ₀ · exp(-r · step))``, where ``step`` counts the training calls, which are
    the optimizer's steps. The count is a non-trainable variable of the layer that each
    training call advances (through Keras' variable assignment, so JAX's stateless training
    step carries it too): it is saved with every checkpoint, and a resumed run continues the
    schedule where it stopped. With ``straight_through`` the forward value is the exact one-hot
    (or binary) sample while the gradient flows through the relaxation.

    Outside training (validation, evaluation) `call` draws an *exact* discrete sample, not the
    mode: the validation loss is then the single-sample ELBO with a discrete code, the number
    that ``evaluate`` reports, and no temperature enters it.

    The prior is uniform over the K^N codes, so the KL term is the exact KL of each posterior
    variable from the uniform, summed over variables.

    Subclasses set ``variable_count`` and ``classes``, and give the relaxed and exact samplers
    and the conversions between a code z and its classes ``(batch, variables)``.
    """

    logged_metrics = ("temperature",)

    def __init__(
        self,
        straight_through: bool = False,
        temperature: float = 1.0,
        temperature_min: float = 0.5,
        temperature_rate: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not temperature > 0 or not temperature_min > 0:
            raise ValueError(
                f"temperatures must be positive, got {temperature} and {temperature_min}"
            )
        if temperature_min > temperature:
            raise ValueError(
                f"temperature_min {temperature_min} is above the starting temperature {temperature}"
            )
        self.straight_through = straight_through
        self.initial_temperature = temperature
        self.temperature_min = temperature_min
        self.temperature_rate = temperature_rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # The training steps taken so far: the schedule's clock, saved with the model.
        self.step = self.add_weight(
            shape=(), initializer="zeros", dtype="int", trainable=False, name="step"
        )

    # Set by each subclass: N, the variables, and K, the classes of each.
    variable_count: int
    classes: int

    def temperature(self) -> TensorLike:
        """τ at the current step: the temperature that the next training step relaxes with."""
        return annealed_temperature(
            self.step, self.initial_temperature, self.temperature_min, self.temperature_rate
        )

    def logged_values(self) -> dict[str, TensorLike]:
        return {"temperature": self.temperature()}

    def relaxed_sample(self, parameters: dict, temperature: TensorLike) -> TensorLike:
        raise NotImplementedError

    def exact_sample(self, parameters: dict, seed: Any) -> TensorLike:
        """One exact discrete code per image, ``(batch, code_size)``."""
        z, _ = self.sample_posterior(parameters, 1, seed)
        return ops.squeeze(z, 1)  # (batch, 1, code) -> (batch, code)

    def call(self, parameters: dict, training: bool | None = None) -> TensorLike:
        if not training:
            return self.exact_sample(parameters, self.seed_generator)
        z = self.relaxed_sample(parameters, self.temperature())
        self.step.assign_add(1)
        return z

    def classes_of(self, parameters: dict[str, np.ndarray]) -> np.ndarray:
        """The most probable class of each variable, ``(batch, variables)`` integers (numpy)."""
        raise NotImplementedError

    def code_of(self, classes: np.ndarray) -> np.ndarray:
        """The code z ``(batch, code_size)`` float32 of classes ``(batch, variables)`` (numpy)."""
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

    def sample_prior(self, count: int, seed: int) -> np.ndarray:
        """Codes drawn from the uniform prior: every class of every variable equally likely."""
        shape = (count, self.variable_count)
        classes = np.random.default_rng(seed).integers(0, self.classes, shape)
        return self.code_of(classes)

    def log_prior(self, z: TensorLike) -> TensorLike:
        """``log p(z) = -N log K`` for every code: the uniform prior, shape ``z.shape[:-1]``."""
        return ops.zeros(ops.shape(z)[:-1], dtype=z.dtype) - self.variable_count * math.log(
            self.classes
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "straight_through": self.straight_through,
            "temperature": self.initial_temperature,
            "temperature_min": self.temperature_min,
            "temperature_rate": self.temperature_rate,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class CategoricalLatent(DiscreteLatent):
    """N categorical variables of K classes with the Gumbel-softmax relaxation (Jang et al. 2017).

    The encoder gives N·K logits; the code z is the N one-hot vectors (relaxed in training)
    side by side, ``(batch, N·K)``, variable i at columns ``i·K .. i·K + K - 1``.
    """

    def __init__(self, variables: int = 20, categories: int = 10, **kwargs):
        super().__init__(**kwargs)
        if variables < 1 or categories < 2:
            raise ValueError(
                f"a categorical latent needs at least 1 variable of at least 2 classes, "
                f"got {variables} of {categories}"
            )
        # Not `self.variables`: that name is the Keras layer's list of its weights.
        self.variable_count = variables
        self.categories = categories
        self.classes = categories

    def head_sizes(self) -> dict[str, int]:
        return {"logits": self.variable_count * self.categories}

    @property
    def code_size(self) -> int:
        return self.variable_count * self.categories

    def _logits(self, parameters: dict) -> TensorLike:
        # (batch, N*K) -> (batch, N, K)
        return ops.reshape(parameters["logits"], (-1, self.variable_count, self.categories))

    def relaxed_sample(self, parameters: dict, temperature: TensorLike) -> TensorLike:
        sample = gumbel_softmax_sample(
            self._logits(parameters), temperature, self.seed_generator, self.straight_through
        )
        return ops.reshape(sample, (-1, self.code_size))  # (batch, N, K) -> (batch, N*K)

    def kl_divergence(self, parameters: dict) -> TensorLike:
        return categorical_kl_divergence(self._logits(parameters))

    def representation(self, parameters: dict) -> TensorLike:
        """The posterior probabilities softmax(logits) of every variable, ``(batch, N·K)``."""
        return ops.reshape(ops.softmax(self._logits(parameters), axis=-1), (-1, self.code_size))

    def mode(self, parameters: dict) -> TensorLike:
        """Each variable's most probable class, one-hot, ``(batch, N·K)``."""
        logits = self._logits(parameters)
        one_hot = ops.one_hot(ops.argmax(logits, axis=-1), self.categories, dtype=logits.dtype)
        return ops.reshape(one_hot, (-1, self.code_size))

    def sample_posterior(
        self, parameters: dict, samples: int, seed: Any
    ) -> tuple[TensorLike, TensorLike]:
        """Exact one-hot codes z ~ q(z|x) ``(batch, samples, N·K)`` and log q(z|x)."""
        logits = self._logits(parameters)
        one_hot = categorical_sample(logits, seed, samples=samples)  # (batch, S, N, K)
        log_posterior = categorical_log_probability(one_hot, ops.expand_dims(logits, 1))
        z = ops.reshape(one_hot, (-1, samples, self.code_size))  # -> (batch, S, N*K)
        return z, log_posterior

    def classes_of(self, parameters: dict[str, np.ndarray]) -> np.ndarray:
        logits = np.asarray(parameters["logits"]).reshape(-1, self.variable_count, self.categories)
        return np.argmax(logits, axis=-1)

    def code_of(self, classes: np.ndarray) -> np.ndarray:
        classes = np.asarray(classes, dtype=np.int64)
        one_hot = np.eye(self.categories, dtype=np.float32)[classes]  # (batch, N, K)
        return one_hot.reshape(len(classes), self.code_size)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "variables": self.variable_count,
            "categories": self.categories,
        }


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class BernoulliLatent(DiscreteLatent):
    """N binary units with the binary Concrete relaxation (Maddison et al. 2017).

    The encoder gives N logits (log-odds); the code z is the N bits (relaxed in training),
    ``(batch, N)``. As a discrete latent its variables have K = 2 classes, 0 and 1.
    """

    def __init__(self, units: int = 200, **kwargs):
        super().__init__(**kwargs)
        if units < 1:
            raise ValueError(f"a Bernoulli latent needs at least 1 unit, got {units}")
        self.units = units
        self.variable_count = units
        self.classes = 2

    def head_sizes(self) -> dict[str, int]:
        return {"logits": self.units}

    @property
    def code_size(self) -> int:
        return self.units

    def relaxed_sample(self, parameters: dict, temperature: TensorLike) -> TensorLike:
        return binary_concrete_sample(
            parameters["logits"], temperature, self.seed_generator, self.straight_through
        )

    def kl_divergence(self, parameters: dict) -> TensorLike:
        return bernoulli_kl_divergence(parameters["logits"])

    def representation(self, parameters: dict) -> TensorLike:
        """The posterior probability of each unit being 1, sigmoid(logits), ``(batch, N)``."""
        return ops.sigmoid(parameters["logits"])

    def mode(self, parameters: dict) -> TensorLike:
        """Each unit's more probable value: 1 where the logit is positive, ``(batch, N)``."""
        logits = parameters["logits"]
        return ops.cast(ops.greater(logits, 0.0), logits.dtype)

    def sample_posterior(
        self, parameters: dict, samples: int, seed: Any
    ) -> tuple[TensorLike, TensorLike]:
        """Exact bits z ~ q(z|x) ``(batch, samples, N)`` and log q(z|x)."""
        logits = parameters["logits"]
        bits = bernoulli_sample(logits, seed, samples=samples)
        return bits, bernoulli_log_probability(bits, ops.expand_dims(logits, 1))

    def classes_of(self, parameters: dict[str, np.ndarray]) -> np.ndarray:
        return (np.asarray(parameters["logits"]) > 0).astype(np.int64)

    def code_of(self, classes: np.ndarray) -> np.ndarray:
        return np.asarray(classes, dtype=np.float32).reshape(len(classes), self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}


def make_latent(model_config: Any, seed: int | None = None) -> Latent:
    """The latent part that a `ModelConfig` asks for."""
    if model_config.latent == "gaussian":
        return GaussianLatent(
            latent_dim=model_config.latent_dim,
            epsilon_std=model_config.epsilon_std,
            seed=seed,
            name="sampling",
        )
    if model_config.latent in ("categorical", "bernoulli"):
        schedule = dict(
            straight_through=model_config.straight_through,
            temperature=model_config.temperature,
            temperature_min=model_config.temperature_min,
            temperature_rate=model_config.temperature_rate,
            seed=seed,
            name="latent",
        )
        if model_config.latent == "categorical":
            return CategoricalLatent(
                variables=model_config.categorical_variables,
                categories=model_config.categories,
                **schedule,
            )
        return BernoulliLatent(units=model_config.latent_dim, **schedule)
    if model_config.latent == "rbm":
        # Imported here: the RBM latent builds on this module's `Latent`.
        from vae_mnist.rbm_latent import RBMLatent

        first_units, second_units = model_config.rbm_units
        return RBMLatent(
            first_units=first_units,
            second_units=second_units,
            beta=model_config.beta,
            chains=model_config.rbm_chains,
            gibbs_sweeps=model_config.rbm_gibbs_sweeps,
            log_partition_gradient=model_config.rbm_log_partition_gradient,
            seed=seed,
            name="rbm",
        )
    raise NotImplementedError(f"the {model_config.latent} latent is not available yet")
