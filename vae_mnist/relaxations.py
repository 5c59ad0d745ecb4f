"""Discrete latents and their continuous relaxations, as pure `keras.ops` functions.

The Gumbel-softmax (Jang, Gu & Poole, 2017), also called the Concrete distribution (Maddison,
Mnih & Teh, 2017), replaces a one-hot categorical sample by a point of the simplex that is a
differentiable function of the logits and of Gumbel noise; the temperature τ sets how close to
one-hot it is. The binary Concrete does the same for a Bernoulli variable with logistic noise.

Shape conventions, shared by every function here:

- categorical logits are unnormalised log-probabilities log π of shape
  ``(batch, variables, categories)``: ``variables`` independent categorical variables per
  image, each over ``categories`` classes;
- Bernoulli logits are log-odds of shape ``(batch, units)``;
- samples have the logits' float type and, unless ``samples`` is asked for, the logits' shape.

Every draw comes from `keras.random` with the ``seed`` given (a `keras.random.SeedGenerator`,
which advances on each call, or an int, which gives the same draw every time), so the functions
run inside a compiled train step on TensorFlow, JAX and PyTorch.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from vae_mnist import noise
from vae_mnist.backend import keras, ops

# A backend tensor or a numpy array: keras.ops accepts both.
TensorLike = Any
# A `keras.random.SeedGenerator` or an int, as `keras.random` takes them.
Seed = Any

# Uniform noise is kept this far from 0 and 1, so that log U and log(1 - U) stay finite. Noise is
# drawn in at least float32, where 1 - 1e-7 is still below 1. The Gumbel and logistic tails
# this cuts off have probability about 1e-7, far below what any estimate here can resolve.
UNIFORM_EPSILON = 1e-7

# Jang, Gu & Poole (2017) anneal τ = max(0.5, exp(-r t)) in the global training step t, updating
# τ every N steps, with r in {1e-5, 1e-4} and N in {500, 1000}. This rate takes τ from 1.0 to
# the floor 0.5 in exactly 30,000 steps: exp(-r · 30,000) = 1/2, so r = log 2 / 30,000, about
# 2.31e-5.
DEFAULT_INITIAL_TEMPERATURE = 1.0
DEFAULT_MINIMUM_TEMPERATURE = 0.5
DEFAULT_TEMPERATURE_RATE = math.log(2.0) / 30_000


def _noise_dtype(dtype: str) -> str:
    """The float type noise is drawn in: the logits' own, but never narrower than float32.

    Half precision cannot hold 1 - 1e-7 (it rounds to 1), so its log(1 - U) could be -inf.
    """
    dtype = keras.backend.standardize_dtype(dtype)
    return "float64" if dtype == "float64" else "float32"


def _uniform_noise(shape: tuple, dtype: str, seed: Seed) -> TensorLike:
    """U ~ Uniform(0, 1) of the given shape, clipped to ``[ε, 1 - ε]``, in the noise type."""
    noise_dtype = _noise_dtype(dtype)
    uniform = noise.uniform(shape, minval=0.0, maxval=1.0, dtype=noise_dtype, seed=seed)
    return _off_the_ends(uniform)


def _off_the_ends(uniform: TensorLike) -> TensorLike:
    """U clipped to ``[ε, 1 - ε]``."""
    return ops.clip(uniform, UNIFORM_EPSILON, 1.0 - UNIFORM_EPSILON)


def _gumbel_noise(shape: tuple, dtype: str, seed: Seed) -> TensorLike:
    """g = -log(-log U) ~ Gumbel(0, 1), returned in ``dtype``."""
    uniform = _uniform_noise(shape, dtype, seed)
    return ops.cast(-ops.log(-ops.log(uniform)), dtype)


def _logistic_noise(shape: tuple, dtype: str, seed: Seed) -> TensorLike:
    """L = log U - log(1 - U) ~ Logistic(0, 1), returned in ``dtype``."""
    uniform = _uniform_noise(shape, dtype, seed)
    return ops.cast(ops.log(uniform) - ops.log1p(-uniform), dtype)


def _straight_through(hard: TensorLike, relaxed: TensorLike) -> TensorLike:
    """``hard`` in the forward pass, with the gradient of ``relaxed`` in the backward pass.

    Written as ``hard + (relaxed - stop_gradient(relaxed))`` rather than
    ``relaxed + stop_gradient(hard - relaxed)``: the bracket is exactly zero in floating point,
    so the forward value is exactly ``hard``, with no rounding error left over from the
    subtraction.
    """
    return hard + (relaxed - ops.stop_gradient(relaxed))


def _with_samples_axis(logits: TensorLike, samples: int | None) -> tuple[TensorLike, tuple]:
    """The logits, and the shape to draw noise in, with an optional samples axis after batch.

    With ``samples`` given, logits ``(batch, ...)`` become ``(batch, 1, ...)`` and broadcast
    against noise of shape ``(batch, samples, ...)``.
    """
    if samples is None:
        return logits, tuple(ops.shape(logits))
    if isinstance(samples, bool) or not isinstance(samples, numbers.Integral) or samples < 1:
        raise ValueError(f"samples must be a positive int or None, got {samples!r}")
    # (batch, ...) -> (batch, 1, ...), so one set of logits serves every sample.
    logits = ops.expand_dims(logits, axis=1)
    shape = tuple(ops.shape(logits))
    return logits, (shape[0], int(samples), *shape[2:])


def gumbel_softmax_sample(
    logits: TensorLike,
    temperature: float | TensorLike,
    seed: Seed,
    straight_through: bool = False,
) -> TensorLike:
    """A relaxed categorical sample: ``y = softmax((logits + g) / τ)`` over the last axis.

    g ~ Gumbel(0, 1) is drawn independently per entry as ``-log(-log U)``, U ~ Uniform(0, 1)
    clipped to ``[1e-7, 1 - 1e-7]``. Each variable's y lies on the simplex (non-negative,
    summing to 1), and as τ → 0 it tends to the one-hot of ``argmax(logits + g)``, which is an
    exact sample of Categorical(softmax(logits)) (the Gumbel-max trick).

    With ``straight_through`` the forward value is that exact one-hot, while the gradient is
    the relaxed sample's: ``one_hot + (y - stop_gradient(y))``. The argmax is taken of the
    perturbed logits, which y shares, so it does not depend on τ or on rounding in the softmax.

    Args:
        logits: unnormalised log π, shape ``(batch, variables, categories)`` (any leading axes
            work; the softmax is over the last).
        temperature: τ > 0, a Python float or a scalar tensor or variable (for an annealed τ).
        seed: a `keras.random.SeedGenerator` or an int.
        straight_through: return the exact one-hot forward, with the relaxed gradient.

    Returns:
        The sample, same shape and float type as ``logits``. No reduction.
    """
    logits = ops.convert_to_tensor(logits)
    perturbed = logits + _gumbel_noise(tuple(ops.shape(logits)), logits.dtype, seed)
    temperature = ops.cast(temperature, logits.dtype)
    relaxed = ops.softmax(perturbed / temperature, axis=-1)
    if not straight_through:
        return relaxed
    categories = ops.shape(logits)[-1]
    hard = ops.one_hot(ops.argmax(perturbed, axis=-1), categories, dtype=logits.dtype)
    return _straight_through(hard, relaxed)


def binary_concrete_sample(
    logits: TensorLike,
    temperature: float | TensorLike,
    seed: Seed,
    straight_through: bool = False,
) -> TensorLike:
    """A relaxed Bernoulli sample: ``y = sigmoid((logits + log U - log(1 - U)) / τ)``.

    U ~ Uniform(0, 1) per entry, clipped to ``[1e-7, 1 - 1e-7]``; ``log U - log(1 - U)`` is
    logistic noise. y lies in (0, 1) and ``P(y > ½) = sigmoid(logits)`` at every τ; as τ → 0, y
    tends to the exact Bernoulli sample ``[logits + log U - log(1 - U) > 0]``.

    With ``straight_through`` the forward value is that exact {0, 1} sample (y > ½, tested on
    the sigmoid's argument so that rounding cannot move it), while the gradient is y's:
    ``bits + (y - stop_gradient(y))``.

    Args:
        logits: log-odds, shape ``(batch, units)`` (any shape works, elementwise).
        temperature: τ > 0, a Python float or a scalar tensor or variable.
        seed: a `keras.random.SeedGenerator` or an int.
        straight_through: return the exact {0, 1} forward, with the relaxed gradient.

    Returns:
        The sample, same shape and float type as ``logits``. No reduction.
    """
    logits = ops.convert_to_tensor(logits)
    perturbed = logits + _logistic_noise(tuple(ops.shape(logits)), logits.dtype, seed)
    temperature = ops.cast(temperature, logits.dtype)
    relaxed = ops.sigmoid(perturbed / temperature)
    if not straight_through:
        return relaxed
    bits = ops.cast(ops.greater(perturbed, 0.0), logits.dtype)
    return _straight_through(bits, relaxed)


def categorical_sample(logits: TensorLike, seed: Seed, samples: int | None = None) -> TensorLike:
    """Exact one-hot samples of Categorical(softmax(logits)), by ``argmax(logits + g)``.

    No relaxation and no gradient: for evaluation, such as the importance-weighted bound. With
    the same int seed and ``samples=None`` it draws the very noise `gumbel_softmax_sample`
    draws, so it returns that function's straight-through forward value.

    Args:
        logits: unnormalised log π, shape ``(batch, variables, categories)``.
        seed: a `keras.random.SeedGenerator` or an int.
        samples: None for one sample per image, shape ``(batch, variables, categories)``; an
            int S for S independent samples per image, shape
            ``(batch, S, variables, categories)``.

    Returns:
        One-hot samples (exactly 0.0 and 1.0, one 1 per variable), in the logits' float type.
    """
    logits = ops.convert_to_tensor(logits)
    logits, shape = _with_samples_axis(logits, samples)
    perturbed = logits + _gumbel_noise(shape, logits.dtype, seed)
    categories = shape[-1]
    return ops.one_hot(ops.argmax(perturbed, axis=-1), categories, dtype=logits.dtype)


def bernoulli_sample(logits: TensorLike, seed: Seed, samples: int | None = None) -> TensorLike:
    """Exact {0, 1} samples of Bernoulli(sigmoid(logits)), by ``[logits + L > 0]``.

    L = log U - log(1 - U) is logistic noise, so ``P(1) = P(L > -logits) = sigmoid(logits)``.
    No relaxation and no gradient: for evaluation. With the same int seed and ``samples=None``
    it returns `binary_concrete_sample`'s straight-through forward value.

    Args:
        logits: log-odds, shape ``(batch, units)``.
        seed: a `keras.random.SeedGenerator` or an int.
        samples: None for shape ``(batch, units)``; an int S for shape ``(batch, S, units)``.

    Returns:
        Samples of exactly 0.0 or 1.0, in the logits' float type.
    """
    logits = ops.convert_to_tensor(logits)
    logits, shape = _with_samples_axis(logits, samples)
    perturbed = logits + _logistic_noise(shape, logits.dtype, seed)
    return ops.cast(ops.greater(perturbed, 0.0), logits.dtype)


def bernoulli_bits(uniform: TensorLike, logits: TensorLike) -> TensorLike:
    """Exact bits of Bernoulli(σ(logits)) from U ~ Uniform[0, 1): ``z = [U' < σ(logits)]``
    with ``U' = clip(U, ε, 1 - ε)``, in the logits' float type.

    Uniform draws in float32 lie on a grid of 2⁻²³ that holds 0, so ``U < σ(l)`` would draw a 1
    with probability at least 2⁻²³ at any logits, far more than σ(l) past l ≈ −16; an
    importance weight divides by the true q(z), and one such bit can then overstate p(x) by
    many nats. Clipped, a bit with probability below ε is never drawn: under-drawn by at most
    ε, never over-drawn. Where it matters not, the bits are those of ``U < σ(l)``.
    """
    return ops.cast(_off_the_ends(uniform) < ops.sigmoid(logits), logits.dtype)


def categorical_log_probability(one_hot: TensorLike, logits: TensorLike) -> TensorLike:
    """``log q(z) = Σ_v Σ_k z_vk log softmax(logits_v)_k``, summed over variables.

    This is log q(z|x) of a one-hot sample z for the importance-weighted bound. log_softmax
    keeps it finite for any logits.

    Args:
        one_hot: samples, shape ``(batch, variables, categories)`` or
            ``(batch, samples, variables, categories)``.
        logits: unnormalised log π, broadcastable against ``one_hot``: for samples from
            ``categorical_sample(logits, seed, samples=S)``, pass ``ops.expand_dims(logits, 1)``,
            shape ``(batch, 1, variables, categories)``.

    Returns:
        Shape ``one_hot.shape[:-2]``: ``(batch,)`` or ``(batch, samples)``, in nats.
    """
    logits = ops.convert_to_tensor(logits)
    one_hot = ops.cast(one_hot, logits.dtype)
    log_probabilities = ops.log_softmax(logits, axis=-1)
    return ops.sum(one_hot * log_probabilities, axis=(-2, -1))


def bernoulli_log_probability(bits: TensorLike, logits: TensorLike) -> TensorLike:
    """``log q(b) = Σ_u [b_u l_u - softplus(l_u)]``, summed over units.

    This equals ``Σ_u [b_u log σ(l_u) + (1 - b_u) log(1 - σ(l_u))]``, since
    ``log σ(l) = l - softplus(l)`` and ``log(1 - σ(l)) = -softplus(l)``, and it stays finite for
    any logits.

    Args:
        bits: samples in {0, 1}, shape ``(batch, units)`` or ``(batch, samples, units)``.
        logits: log-odds, broadcastable against ``bits`` (``(batch, 1, units)`` for samples from
            ``bernoulli_sample(logits, seed, samples=S)``).

    Returns:
        Shape ``bits.shape[:-1]``: ``(batch,)`` or ``(batch, samples)``, in nats.
    """
    logits = ops.convert_to_tensor(logits)
    bits = ops.cast(bits, logits.dtype)
    return ops.sum(bits * logits - ops.softplus(logits), axis=-1)


def annealed_temperature(
    step: int | float | TensorLike,
    initial: float = DEFAULT_INITIAL_TEMPERATURE,
    minimum: float = DEFAULT_MINIMUM_TEMPERATURE,
    rate: float = DEFAULT_TEMPERATURE_RATE,
) -> float | TensorLike:
    """``τ = max(minimum, initial · exp(-rate · step))``.

    On Python (or numpy scalar) numbers it returns a Python float; when any argument is a
    tensor or variable (such as ``optimizer.iterations``) it returns a scalar tensor of Keras'
    float type, so it can be computed inside a compiled step. To update τ only every N steps,
    as Jang et al. did, pass ``(step // N) * N``.

    Args:
        step: the training step t ≥ 0.
        initial: τ at step 0.
        minimum: the floor τ never goes below.
        rate: r, per step.

    Returns:
        The temperature τ.
    """
    arguments = (step, initial, minimum, rate)
    if all(isinstance(argument, numbers.Real) for argument in arguments):
        return max(float(minimum), float(initial) * math.exp(-float(rate) * float(step)))
    # An integer step counter is cast first: exp needs a float, and float32 is exact for any
    # step below 2**24 and precise to far better than τ needs beyond.
    dtype = keras.backend.floatx()
    step, initial, minimum, rate = (ops.cast(argument, dtype) for argument in arguments)
    return ops.maximum(minimum, initial * ops.exp(-rate * step))


# -- the relaxed densities, for the importance-weighted bound of a relaxed posterior ------------
# Maddison, Mnih & Teh (2017) weigh relaxed samples by their densities, which are stable in the
# logits' space: the binary Concrete's logit L, the Concrete's log-probabilities x = log y.


def binary_concrete_logit_sample(logits: TensorLike, temperature: Any, seed: Seed) -> TensorLike:
    """``L = (α + log U - log(1 - U)) / τ``, the logit of a binary Concrete sample y = σ(L).

    Same shape as `logits` α (no reduction).
    """
    logits = ops.convert_to_tensor(logits)
    return (logits + _logistic_noise(ops.shape(logits), logits.dtype, seed)) / temperature


def binary_concrete_log_density(
    logit: TensorLike, logits: TensorLike, temperature: Any
) -> TensorLike:
    """``log p(L) = Σ_u [log τ - τ L_u + α_u - 2 softplus(α_u - τ L_u)]``, the logistic density
    of L with location α/τ and scale 1/τ, summed over the last axis."""
    logits = ops.convert_to_tensor(logits)
    temperature = ops.cast(temperature, logits.dtype)
    shifted = logits - temperature * ops.cast(logit, logits.dtype)
    per_unit = ops.log(temperature) + shifted - 2.0 * ops.softplus(shifted)
    return ops.sum(per_unit, axis=-1)


def exp_concrete_sample(logits: TensorLike, temperature: Any, seed: Seed) -> TensorLike:
    """``x = log softmax((α + g) / τ)`` over the last axis: the log of a Concrete sample y = e^x.

    Same shape as `logits` α ``(..., K)``.
    """
    logits = ops.convert_to_tensor(logits)
    gumbel = _gumbel_noise(ops.shape(logits), logits.dtype, seed)
    return ops.log_softmax((logits + gumbel) / temperature, axis=-1)


def exp_concrete_log_density(
    log_sample: TensorLike, logits: TensorLike, temperature: Any
) -> TensorLike:
    """``log p(x) = log (K-1)! + (K-1) log τ + Σ_k (α_k - τ x_k) - K logsumexp(α - τ x)`` per
    variable (the density of x on the log-simplex), summed over the variables.

    `log_sample` and `logits` are ``(..., variables, K)``; the result is ``(...)``.
    """
    logits = ops.convert_to_tensor(logits)
    temperature = ops.cast(temperature, logits.dtype)
    classes = ops.shape(logits)[-1]
    shifted = logits - temperature * ops.cast(log_sample, logits.dtype)
    per_variable = (
        math.lgamma(classes)
        + (classes - 1) * ops.log(temperature)
        + ops.sum(shifted, axis=-1)
        - classes * ops.logsumexp(shifted, axis=-1)
    )
    return ops.sum(per_variable, axis=-1)
