"""The posterior q(z|x) and the prior p(z): two families of parts, and what they tell each other.

A **posterior** kind names the encoder heads it needs, draws the code the decoder sees, and gives
its distribution for an analytic KL, exact samples with their log-probabilities for evaluation,
and what the figures need. A **prior** kind gives log p(z), samples for the figures, and the
analytic KL from the posteriors whose distribution it knows; for any other pair the model uses
the Monte-Carlo estimate ``log q(z|x) - log p(z)`` at the sampled z.

Parts hold their settings; their variables (a seed generator, a step counter, an RBM's
coupling) live on the Keras layer that hosts them in the model (`vae_mnist.model.PartLayer`),
which calls `create_state` once. Every tensor function here is written with `keras.ops`, so the
parts train on TensorFlow, JAX and PyTorch.

What a posterior or a prior offers is in its ``capabilities`` (an instance's, where a setting
adds some: ``offered_capabilities()``); the commands ask ``offers(name)`` for these:

``continuous``     a continuous code: a point ``--z`` can be decoded, the space walked.
``codes``          a code of discrete variables: ``--code``, the codes and usage figures.
``sample``         samples of the prior for the figures.
``quantiles``      the prior's inverse CDF per dimension: the manifold and its animation.
``isotropic_normal`` the prior is N(0, I), in any rotation of the code: the density figure's
                   circles hold in the plane of any two principal components.
``structure``      a learned structure to draw (an RBM's coupling).
``density``        log q(z|x) of the training sample: the Monte-Carlo KL and the IWAE objective.
``relaxed_density`` a relaxed sample's density in the logits' space (a posterior), or the relaxed
                   uniform prior's (a prior): the IWAE objective on a relaxed posterior. Such
                   a posterior draws with `draw_relaxed_logits`, and moves its temperature's clock
                   with `advance_step` after the sample's densities are taken.
``partition_function`` a normalising constant that evaluation computes (an RBM's log Z).
``relaxed_bits``   (a posterior) binary units whose training sample ζ in [0, 1]^N tends to the
                   bits as its temperature falls, and whose bits' log-probability, linear in
                   each bit, extends to ζ (`relaxed_log_probability`): what GumBolt needs;
                   (a prior) a log p(z) of such bits that holds at ζ too (the uniform prior's
                   constant), so that ``log q̃(ζ|x) - log p(ζ)`` weighs a relaxed sample for
                   the IWAE objective as GumBolt's Boltzmann prior weighs it.
``hierarchical``   (a posterior) units in groups, each conditioned on the groups before it: no
                   factorial distribution, so no closed-form KL.
``expected_bits``  (a posterior) binary units in groups, each smoothed (ζ ~ r(ζ|z)) and
                   conditioned on the ζ of the groups before it, that give with each training
                   sample the units' conditional logits and E[z | ζ] (`distribution_given`), so
                   a prior's KL is ``-H + E(E[z|ζ]) + log Z``: exact in expectation (DVAE++).
``relaxed_energy`` (a prior) a Boltzmann prior whose energy the training step evaluates at the
                   posterior's relaxed sample (GumBolt, Khoshaman & Amin 2018, or DVAE#'s
                   mean-field): it gives the training KL, or each sample's log-ratio for the
                   IWAE objective, from ζ (`relaxed_divergence`).
``smoothed_density`` (a posterior) smoothed binary units whose states both have a density on
                   [0, 1] (DVAE++'s, DVAE#'s), that give log q(ζ|x) of the training sample up to
                   Σ log r(ζ|0) (`smoothed_log_density`) and the smoothing's log-odds; (a prior)
                   log p(ζ) of such a sample up to the same term (`smoothed_log_density`): the
                   IWAE objective, and DVAE#'s relaxed Boltzmann prior.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from vae_mnist.backend import keras, ops
from vae_mnist.settings import ConfigError, Part, UsageError

TensorLike = Any
LOG_TWO_PI = math.log(2.0 * math.pi)
# Burda et al. (2015) call a latent dimension active when the variance of its posterior mean
# across the data exceeds this.
ACTIVE_UNIT_THRESHOLD = 1e-2


# -- distributions: what a posterior is, for a prior that computes the KL in closed form --------


@dataclasses.dataclass(frozen=True)
class DiagonalGaussian:
    """N(mean, diag exp(log_var)), each ``(batch, dimensions)``."""

    mean: TensorLike
    log_var: TensorLike


@dataclasses.dataclass(frozen=True)
class Categorical:
    """N independent categorical variables of K classes; logits ``(batch, N·K)``."""

    logits: TensorLike
    variables: int
    categories: int


@dataclasses.dataclass(frozen=True)
class FactorialBernoulli:
    """Independent bits with ``q(z_i = 1) = sigmoid(logit_i)``; logits ``(batch, units)``.

    A hierarchical posterior gives one of these per training sample: each unit's logit given the
    sampled ζ of the groups before it, and in `expectations` the bits' expected values given the
    sample (``E[z | ζ]``, ``(batch, units)``), which stand for the bits in a prior's expected
    energy. None means sigmoid(logits), the bits' expectation under q itself. Where an
    expectation is a step in the sampling noise (a spike-and-exponential bit), the
    `boundary_weights` ``(batch, units)`` weigh the gradient of that step (Rolfe's Eq. 12; see
    `vae_mnist.rbm_prior.RBMPrior.kl_divergence`).
    """

    logits: TensorLike
    expectations: TensorLike | None = None
    boundary_weights: TensorLike | None = None


def gaussian_log_density(z: TensorLike, mean: TensorLike, log_var: TensorLike) -> TensorLike:
    """``log N(z; μ, diag σ²) = -½ Σ_j [log 2π + log σ_j² + (z_j - μ_j)² / σ_j²]``, last axis."""
    z, mean, log_var = (ops.convert_to_tensor(value) for value in (z, mean, log_var))
    return -0.5 * ops.sum(LOG_TWO_PI + log_var + ops.square(z - mean) * ops.exp(-log_var), axis=-1)


def gaussian_pairwise_log_density(
    z: TensorLike, mean: TensorLike, log_var: TensorLike
) -> TensorLike:
    """``log N(z_i; μ_k, diag σ_k²)`` for every code z_i, a row of z ``(n, d)``, and every
    component k, a row of mean and log_var ``(K, d)``: ``(n, K)``.

    The square is expanded, ``Σ_j (z_ij - μ_kj)² / σ_kj² = Σ_j z_ij² / σ_kj²
    - 2 Σ_j z_ij μ_kj / σ_kj² + Σ_j μ_kj² / σ_kj²``, so the ``(n, K, d)`` differences are never
    formed: two matrix products do the work. The expansion rounds where a component is very
    narrow and far from 0; the tests bound it at the scales of trained posteriors.
    """
    z, mean, log_var = (ops.convert_to_tensor(value) for value in (z, mean, log_var))
    precision = ops.exp(-log_var)  # (K, d)
    quadratic = (
        ops.matmul(ops.square(z), ops.transpose(precision))
        - 2.0 * ops.matmul(z, ops.transpose(mean * precision))
        + ops.sum(ops.square(mean) * precision, axis=-1)
    )  # (n, K)
    normalizer = ops.sum(log_var, axis=-1) + LOG_TWO_PI * ops.shape(z)[-1]  # (K,)
    return -0.5 * (quadratic + normalizer)


def posterior_mean_variances(z_mean: np.ndarray) -> np.ndarray:
    """Per latent dimension, Cov_x(E_q[z]): the variance of z_mean across the data.

    A dimension is active where this exceeds `ACTIVE_UNIT_THRESHOLD` (Burda et al. 2015).
    """
    return np.var(np.asarray(z_mean, np.float64), axis=0)


# The name of versions up to this one, for code written against them.
active_units = posterior_mean_variances


class Posterior(Part):
    """The base of the posterior kinds.

    The interface (``parameters`` is the dict of the encoder's heads by name):

    - ``head_sizes()``: ``{name: units}`` of the encoder heads, in order; the first is what the
      blog's ``encoder.keras`` outputs (the Gaussian's ``z_mean``).
    - ``code_size``: the width of z, the decoder's input.
    - ``sample(parameters, training)``: z ``(batch, code_size)``; in training a reparameterised
      (or relaxed) sample, so gradients reach the encoder.
    - ``distribution(parameters)``: a `DiagonalGaussian`, `Categorical` or `FactorialBernoulli`
      for the priors that know its KL in closed form, or None.
    - ``log_density(z, parameters)``: log q(z|x) of a training sample (``density`` kinds);
      ``sample_log_density``, the same unless `sample` draws from another distribution.
    - ``sample_exact(parameters, samples, seed)``: exact z ``(batch, samples, code_size)`` and
      log q(z|x) ``(batch, samples)``, for the importance-weighted bound.
    - ``decoder_input(z, seed)``: what the decoder sees for an exact sample (z itself, except
      where training's decoder sees a smoothed code).
    - ``exact_sample(parameters, samples, seed)``: `sample_exact`'s pair and the decoder's
      input ``(batch, samples, code_size)`` where the draw made it (a hierarchy of smoothed
      groups decodes the ζ its groups were conditioned on), else None: `decoder_input` then.
    - ``representation(parameters)``: what the scatter, the principal components and the kNN
      classifier use; ``mode(parameters)``: the most probable code.
    - ``latent_metrics(parameters)``: JSON-ready numbers on how the data uses the code.
    - ``code_layout()``: how the code is laid out for controls that set it, JSON-ready: a
      continuous code's ``{"dimensions": D}``, a discrete code's ``{"variables": N,
      "classes": K}``.
    - ``logged_values()``: values training logs per epoch (a temperature), by name.
    """

    family: ClassVar[str] = "posterior"
    required_methods: ClassVar[tuple[str, ...]] = (
        "head_sizes",
        "code_size",
        "sample",
        "sample_exact",
        "representation",
        "mode",
    )
    logged_metrics: ClassVar[tuple[str, ...]] = ()
    # What the training curves call each logged value (its name, where it has no title).
    logged_titles: ClassVar[dict[str, str]] = {}

    def create_state(self, host: Any, seed: int | None) -> None:
        """Make this part's variables on `host`, the Keras layer that tracks and saves them."""
        host.seed_generator = keras.random.SeedGenerator(seed)
        self.attach(seed_generator=host.seed_generator)

    def distribution(self, parameters: dict) -> Any:
        return None

    def log_density(self, z: TensorLike, parameters: dict) -> TensorLike:
        raise NotImplementedError(f"the {self.kind} posterior has no density of its samples")

    def sample_log_density(self, z: TensorLike, parameters: dict) -> TensorLike:
        """log q(z|x) of a sample that `sample` drew: what weighs it in a Monte-Carlo KL or an
        importance weight. `log_density` unless a kind draws from another distribution than
        the one whose density it gives (the Gaussian with its 2017 noise scale)."""
        return self.log_density(z, parameters)

    def pairwise_log_density(self, z: TensorLike, parameters: dict) -> TensorLike:
        """log q(z_i | k) for every code z_i ``(n, d)`` and every set k of parameters, each
        parameter ``(K, d)``: ``(n, K)``. By broadcasting `log_density`; a kind with a faster
        form overrides it."""
        # (n, d) -> (n, 1, d) against each parameter's (1, K, d).
        components = {name: ops.expand_dims(value, 0) for name, value in parameters.items()}
        return self.log_density(ops.expand_dims(z, 1), components)

    def decoder_input(self, z: TensorLike, seed: Any) -> TensorLike:
        return z

    def exact_sample(self, parameters: dict, samples: int, seed: Any) -> tuple[Any, Any, Any]:
        """`sample_exact`'s z and log q(z|x), and None: the decoder's input is `decoder_input`
        of z."""
        z, log_q = self.sample_exact(parameters, samples, seed)
        return z, log_q, None

    def distribution_given(self, parameters: dict, z: TensorLike) -> Any:
        """The distribution for a prior's closed-form KL, given the training sample z: the
        `distribution` of the parameters, except for a posterior whose units are conditioned on
        the sample itself (``expected_bits``)."""
        return self.distribution(parameters)

    def latent_metrics(self, parameters: dict[str, np.ndarray]) -> dict[str, Any]:
        return {}

    def code_layout(self) -> dict[str, int]:
        """By the capabilities: a ``continuous`` code's dimensions, or the variables and classes
        of one with ``codes``; nothing for a code that offers neither."""
        if self.offers("continuous"):
            return {"dimensions": self.code_size}
        if self.offers("codes"):
            return {"variables": self.variable_count, "classes": self.classes}
        return {}

    def logged_values(self) -> dict[str, TensorLike]:
        return {}


class Prior(Part):
    """The base of the prior kinds.

    The interface:

    - ``check_posterior(posterior)``: `ConfigError` where this prior cannot pair with it;
      ``check_layers(count)``: the same for a stack of `count` stochastic layers.
    - ``create_state(host, seed, posterior)``: variables on the hosting layer.
    - ``connect(model, host, seed)``: once the networks exist (a prior that calls the encoder).
    - ``kl_divergence(distribution)``: ``(batch,)`` nats in closed form, or None where this
      prior does not know the posterior's distribution (the model then estimates it).
    - ``log_density(z)``: log p(z), ``(..., code_size)`` → ``(...)``.
    - ``sample(count, seed)``: ``(count, code_size)`` numpy float32 codes, for the figures.
    - ``quantiles(probabilities)``: with the ``quantiles`` capability, each dimension's inverse
      CDF, ``(count, code_size)`` probabilities to values of that shape, for the manifold.
    - ``mean()``: the mean of p(z), ``(code_size,)`` numpy float32, where known in closed form
      (None by default): where the explore page's controls start.
    - ``training_update()``: work inside each training step (an RBM's persistent chains).
    - ``auxiliary_loss()``: a scalar of the KL added to the loss beside the per-image KL (an
      RBM's zero-valued term carrying the gradient of log Z), which the objective weighs as it
      weighs the KL (zero by default).
    - ``callbacks()``: Keras callbacks it needs during training (an RBM's log Z refresh).
    - ``structure()``: with the ``structure`` capability, ``(bias1 (n1,), bias2 (n2,),
      coupling (n1, n2))`` numpy arrays of a learned pairwise structure between two halves of
      the code (an RBM's), for the coupling figure.
    - ``check_evaluation(**options)``: refuse evaluation options it cannot honour (the
      ``log_partition`` method of a prior without a partition function).
    - ``prepare_evaluation(**options)``: work before evaluation (its options checked
      first); JSON-ready metrics.
    - ``relaxed_divergence(zeta, parameters, sample_estimate)``: with ``relaxed_energy``, the
      training KL (or each sample's log-ratio) at the posterior's relaxed sample.
    """

    family: ClassVar[str] = "prior"
    required_methods: ClassVar[tuple[str, ...]] = ("log_density", "sample")

    def check_posterior(self, posterior: Posterior) -> None:
        """Refuse a posterior this prior cannot pair with; every pair is fine by default."""

    def check_layers(self, count: int) -> None:
        """Refuse a stack of `count` stochastic layers; any stack is fine by default."""

    def create_state(self, host: Any, seed: int | None, posterior: Posterior) -> None:
        self.attach(posterior=posterior)

    def connect(self, model: Any, host: Any, seed: int | None) -> None:
        """Called once the model's networks exist, for a prior that uses them (the VampPrior
        encodes its pseudo-inputs); may add variables to `host`. Nothing by default."""

    def kl_divergence(self, distribution: Any) -> TensorLike | None:
        return None

    def mean(self) -> np.ndarray | None:
        return None

    def encoded_images_per_step(self) -> int:
        """Images of its own that the prior passes through the encoder at every step (none by
        default), work that a compute floor must count."""
        return 0

    def training_update(self) -> None:
        """Nothing inside the training step by default."""

    def auxiliary_loss(self) -> TensorLike:
        return 0.0

    def callbacks(self) -> list:
        return []

    def check_evaluation(self, log_partition: str = "auto", **options: Any) -> None:
        """Refuse, before anything is computed, an evaluation option this prior cannot honour:
        a way of computing log Z, where the prior has no partition function."""
        if log_partition != "auto" and not self.offers("partition_function"):
            raise UsageError(
                f"--log-partition applies to a prior with a partition function, and this run's "
                f"{self.kind} prior has none"
            )

    def prepare_evaluation(self, **options: Any) -> dict[str, Any]:
        self.check_evaluation(**options)
        return {}


def require_posterior(prior: Prior, posterior: Posterior, capability: str, what: str) -> None:
    """`ConfigError` unless the posterior offers `capability`, naming both kinds."""
    if not posterior.offers(capability):
        raise ConfigError(
            f"the {prior.kind} prior needs {what}, and the {posterior.kind} posterior is not one"
        )
