"""The mathematics of Rolfe's discrete VAE (ICLR 2017) as small pure functions.

The latent z is binary and split into two halves, z1 (n1 units) and z2 (n2 units). The prior
is a restricted Boltzmann machine (RBM)::

    p(z) = exp(-E(z)) / Z,    E(z) = -a1·z1 - a2·z2 - z1ᵀ W z2,    W of shape (n1, n2),

and the approximate posterior is factorial, q(z_i = 1 | x) = sigmoid(logit_i). Each binary
unit is smoothed by the paper's spike-and-exponential mixture so that gradients reach the
encoder.

Two kinds of function live here:

* Training-time functions, written only with ``keras.ops`` and ``keras.random`` so that they
  run inside a compiled train step on TensorFlow, JAX and PyTorch. They take backend tensors
  or numpy arrays, work in float32 (Keras' ``floatx``) unless given another float type, and
  return one value per row, shape ``(batch,)``, where they reduce.
* Evaluation-time functions for the log-partition function log Z, in numpy float64: the exact
  value for small RBMs and an annealed importance sampling estimate for larger ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vae_mnist import noise
from vae_mnist.backend import keras, ops

# A backend tensor or a numpy array: keras.ops accepts both.
TensorLike = Any

# Numbers held in memory at once by one chunk of the exact enumeration (8 bytes each, so
# about 32 MB per array; the few temporaries of a chunk stay well under 200 MB).
ENUMERATION_VALUES_PER_CHUNK = 4_000_000


def _float_tensors(*values: TensorLike) -> list[TensorLike]:
    """The values as tensors of one float type: the first value's, or floatx if it is not float.

    Binary states may arrive as integers or booleans; they are cast so that the matrix products
    below see one float type.
    """
    first = ops.convert_to_tensor(values[0])
    if not keras.backend.is_float_dtype(first.dtype):
        first = ops.cast(first, keras.config.floatx())
    return [first] + [ops.cast(value, first.dtype) for value in values[1:]]


def rbm_energy(
    z1: TensorLike, z2: TensorLike, bias1: TensorLike, bias2: TensorLike, coupling: TensorLike
) -> TensorLike:
    """The RBM energy ``E(z) = -a1·z1 - a2·z2 - z1ᵀ W z2`` of each row.

    Args:
        z1: states of the first half, shape ``(batch, n1)``, values in {0, 1}.
        z2: states of the second half, shape ``(batch, n2)``.
        bias1: a1, shape ``(n1,)``.
        bias2: a2, shape ``(n2,)``.
        coupling: W, shape ``(n1, n2)``.

    Returns:
        Shape ``(batch,)``: the energy of each state (no reduction over the batch).
    """
    z1, z2, bias1, bias2, coupling = _float_tensors(z1, z2, bias1, bias2, coupling)
    # (batch, n1) @ (n1, n2) -> (batch, n2), then a row-wise dot product with z2.
    interaction = ops.sum(ops.matmul(z1, coupling) * z2, axis=-1)
    return -ops.sum(z1 * bias1, axis=-1) - ops.sum(z2 * bias2, axis=-1) - interaction


def expected_rbm_energy(
    q1: TensorLike, q2: TensorLike, bias1: TensorLike, bias2: TensorLike, coupling: TensorLike
) -> TensorLike:
    """``E_q[E(z)] = -a1·q1 - a2·q2 - q1ᵀ W q2`` for a factorial q, in closed form.

    The energy is linear in each unit and q makes the units independent, so the expectation of
    ``z1_i z2_j`` is ``q1_i q2_j``: the expected energy is the energy evaluated at the
    probabilities. Together with the entropy and log Z this gives the KL term of the ELBO,
    ``KL(q ‖ p) = E_q[E(z)] + log Z - H(q)``.

    Args:
        q1: q(z1 = 1 | x), shape ``(batch, n1)``.
        q2: q(z2 = 1 | x), shape ``(batch, n2)``.
        bias1, bias2, coupling: a1 ``(n1,)``, a2 ``(n2,)``, W ``(n1, n2)``.

    Returns:
        Shape ``(batch,)``: the expected energy per row.
    """
    return rbm_energy(q1, q2, bias1, bias2, coupling)


def bernoulli_entropy(logits: TensorLike) -> TensorLike:
    """Entropy of a factorial Bernoulli from its logits, summed over units.

    With p = sigmoid(l), ``log p = -softplus(-l)`` and ``log(1 - p) = -softplus(l)``, so::

        H = Σ_i [p_i softplus(-l_i) + (1 - p_i) softplus(l_i)]

    Both terms are non-negative and finite for any finite logit, so there is no log(0) and no
    cancellation.

    Args:
        logits: l, shape ``(batch, units)``.

    Returns:
        Shape ``(batch,)``: the entropy per row summed over units, in nats.
    """
    (logits,) = _float_tensors(logits)
    probabilities = ops.sigmoid(logits)
    per_unit = probabilities * ops.softplus(-logits) + (1.0 - probabilities) * ops.softplus(logits)
    return ops.sum(per_unit, axis=-1)


def gibbs_step(
    z1: TensorLike,
    z2: TensorLike,
    bias1: TensorLike,
    bias2: TensorLike,
    coupling: TensorLike,
    seed: keras.random.SeedGenerator | int,
) -> tuple[TensorLike, TensorLike]:
    """One block Gibbs sweep of a batch of chains; it leaves the RBM distribution invariant.

    ``z2 ~ Bernoulli(sigmoid(a2 + z1 W))``, then ``z1 ~ Bernoulli(sigmoid(a1 + z2 Wᵀ))`` with
    the new z2. The old z2 is not used: only z1 carries the chain's state.

    Args:
        z1: current states of the first half, shape ``(chains, n1)``.
        z2: current states of the second half, shape ``(chains, n2)``. Its values are not
            used, since the sweep resamples z2 first; it is taken so the step maps a pair of
            states to a pair.
        bias1, bias2, coupling: a1 ``(n1,)``, a2 ``(n2,)``, W ``(n1, n2)``.
        seed: a ``keras.random.SeedGenerator`` (advanced by one draw per call), or an int,
            which makes the step a fixed function of the state: pass a generator to run a
            chain.

    Returns:
        The new ``(z1, z2)``, shapes ``(chains, n1)`` and ``(chains, n2)``, values 0.0 or 1.0
        in z1's float type. They depend on the parameters only through sampling, so they carry
        no gradient.
    """
    z1, z2, bias1, bias2, coupling = _float_tensors(z1, z2, bias1, bias2, coupling)
    first_units, second_units = ops.shape(coupling)
    # One draw for both halves, so an int seed still gives the halves independent noise.
    # Shape (chains, n2 + n1): the first n2 columns update z2, the rest update z1.
    uniform = noise.uniform(
        (*ops.shape(z1)[:-1], second_units + first_units), dtype=z1.dtype, seed=seed
    )
    second_probabilities = ops.sigmoid(bias2 + ops.matmul(z1, coupling))
    new_z2 = ops.cast(uniform[..., :second_units] < second_probabilities, z1.dtype)
    first_probabilities = ops.sigmoid(bias1 + ops.matmul(new_z2, ops.transpose(coupling)))
    new_z1 = ops.cast(uniform[..., second_units:] < first_probabilities, z1.dtype)
    return new_z1, new_z2


def mean_field_log_partition(
    bias1: TensorLike, bias2: TensorLike, coupling: TensorLike, iterations: int
) -> TensorLike:
    """A lower bound on an RBM's log Z by naive mean-field, one per row of biases.

    For any factorial Bernoulli m = (m1, m2) over the two halves, Jensen's inequality gives::

        log Z ≥ a1·m1 + a2·m2 + m1ᵀ W m2 + H(m1) + H(m2),

    with equality where the RBM is itself factorial (W = 0) at m = sigmoid(a). m starts at
    sigmoid of the biases and takes `iterations` fixed-point sweeps,
    ``m1 = sigmoid(a1 + m2 Wᵀ)``, then ``m2 = sigmoid(a2 + m1 W)``. The bound is evaluated at the
    final m held without gradient: its gradient in a and W is then the bound's partial one, which
    is the gradient of the maximised bound where the sweeps have converged (the envelope theorem),
    and the backward pass does not run through the sweeps.

    Args:
        bias1: a1, shape ``(..., n1)``: a row of biases per bound (the RBM's own, shifted).
        bias2: a2, shape ``(..., n2)``.
        coupling: W, shape ``(n1, n2)``, shared by every row.
        iterations: fixed-point sweeps, at least 1.

    Returns:
        Shape ``(...)``: the bound for each row of biases, in nats.
    """
    bias1, bias2, coupling = _float_tensors(bias1, bias2, coupling)
    # The sweeps read the weights without gradient, so the state m carries none.
    fixed_bias1, fixed_bias2 = ops.stop_gradient(bias1), ops.stop_gradient(bias2)
    fixed_coupling = ops.stop_gradient(coupling)
    second = ops.sigmoid(fixed_bias2)
    for _ in range(iterations):
        # (..., n2) @ (n2, n1) -> (..., n1), then (..., n1) @ (n1, n2) -> (..., n2).
        first_logits = fixed_bias1 + ops.matmul(second, ops.transpose(fixed_coupling))
        first = ops.sigmoid(first_logits)
        second_logits = fixed_bias2 + ops.matmul(first, fixed_coupling)
        second = ops.sigmoid(second_logits)
    # -E(m) at the mean-field state, with the gradient of the biases and the coupling.
    negative_energy = (
        ops.sum(bias1 * first, axis=-1)
        + ops.sum(bias2 * second, axis=-1)
        + ops.sum(ops.matmul(first, coupling) * second, axis=-1)
    )
    return negative_energy + bernoulli_entropy(first_logits) + bernoulli_entropy(second_logits)


def smoothed_log_density_ratio(logits: TensorLike, log_odds: TensorLike) -> TensorLike:
    """``log q(ζ|x) - Σ_i log r(ζ_i|0)`` for smoothed binary units, summed over units.

    Each unit's ζ has the mixture density ``(1 - q) r(ζ|0) + q r(ζ|1)``, q = sigmoid(l); with
    the smoothing's log-odds ``g = log r(ζ|1) - log r(ζ|0)`` that is ``r(ζ|0) (1 + e^(l + g)) /
    (1 + e^l)``, so::

        log q(ζ|x) - Σ_i log r(ζ_i|0) = Σ_i [softplus(l_i + g_i) - softplus(l_i)].

    The Σ log r(ζ|0) left out is the same in a relaxed prior's density of the same ζ, so the
    importance weights need only this part.

    Args:
        logits: l, shape ``(..., N)`` (for a hierarchical posterior, each unit's logit given
            the sample's earlier groups).
        log_odds: g at the sample, broadcastable against ``logits``.

    Returns:
        Shape ``(...)``, in nats.
    """
    logits, log_odds = _float_tensors(logits, log_odds)
    return ops.sum(ops.softplus(logits + log_odds) - ops.softplus(logits), axis=-1)


def spike_and_exponential_inverse_cdf(
    q: TensorLike, uniform: TensorLike, beta: float | TensorLike
) -> TensorLike:
    """Smoothed latents ζ: the inverse CDF of ``(1 - q)·spike(0) + q·exponential`` at ρ.

    The exponential half is ``r(ζ | z = 1) = β e^(βζ) / (e^β - 1)`` on [0, 1]. The inverse CDF
    of the mixture is::

        ζ = 0                                                   for ρ <= 1 - q,
        ζ = (1/β) log(1 + (ρ - 1 + q)/q · (e^β - 1))             otherwise,

    written as ``log1p(r · expm1(β)) / β`` with ``r = (ρ - 1 + q)/q`` in [0, 1]. ζ is continuous
    in q (ζ → 0 at the switch), so its gradient with respect to q is the reparameterization
    gradient, ``dζ/dq = (e^β - 1) (1 - ρ) / (β q² (1 + r (e^β - 1)))`` on the exponential
    branch and 0 on the spike. The unused branch is evaluated at a safe argument, so the
    gradient is finite for every q in [0, 1], including exactly 0 and 1. Valid for β in
    (0, ~80] in float32 (``e^β`` must not overflow).

    Args:
        q: q(z = 1 | x), any shape, values in [0, 1].
        uniform: ρ ~ U(0, 1), the same shape as q; ρ must be below 1, as
            ``keras.random.uniform`` draws are.
        beta: β > 0, a number or a scalar tensor.

    Returns:
        ζ in [0, 1], the same shape as q (no reduction).
    """
    q, uniform, beta = _float_tensors(q, uniform, beta)
    takes_exponential = uniform > 1.0 - q
    # The exponential branch divides by q. Where it is not taken, q may be 0, and even though
    # the outer `where` discards the value, 0 · (an infinite derivative) would make q's
    # gradient NaN; so that branch sees q = 1 instead. Where it is taken, q > 1 - ρ > 0.
    safe_q = ops.where(takes_exponential, q, ops.ones_like(q))
    # r lies in [0, 1]; the clip only guards against rounding.
    fraction = ops.clip((uniform - 1.0 + safe_q) / safe_q, 0.0, 1.0)
    exponential_branch = ops.log1p(fraction * ops.expm1(beta)) / beta
    return ops.where(takes_exponential, exponential_branch, ops.zeros_like(exponential_branch))


def overlapping_exponential_inverse_cdf(
    q: TensorLike, uniform: TensorLike, beta: float | TensorLike
) -> TensorLike:
    """Smoothed latents ζ: the inverse CDF of DVAE++'s ``(1 - q)·r0 + q·r1`` at ρ.

    Vahdat et al.'s (DVAE++, ICML 2018) overlapping exponentials on [0, 1]:
    ``r0(ζ) = β e^(-βζ) / (1 - e^(-β))`` (a unit that is off) and its mirror
    ``r1(ζ) = β e^(β(ζ - 1)) / (1 - e^(-β))`` (on). With ``x = e^(-βζ)``, ``b = e^(-β)`` and
    ``c = 1 - b``, the mixture's CDF equals ρ where x solves the quadratic::

        (1 - q) x² + B x - q b = 0,    B = ρ c - (1 - q) + q b,

    whose root in [b, 1] is ``x = 2 q b / (B + D)`` for B >= 0 and ``(D - B) / (2 (1 - q))``
    for B < 0, ``D = sqrt(B² + 4 (1 - q) q b)`` (each form free of cancellation where it is
    used); then ``ζ = -log(x) / β``. Unlike the spike, both branches have a density, so ζ
    moves with q everywhere and ``dζ/dq`` is finite for q in [0, 1]: the unused form sees a
    safe denominator, so its value cannot make the gradient NaN.

    Args:
        q: q(z = 1 | x), any shape, values in [0, 1].
        uniform: ρ ~ U(0, 1), the same shape as q.
        beta: β > 0, a number or a scalar tensor.

    Returns:
        ζ in [0, 1], the same shape as q (no reduction).
    """
    q, uniform, beta = _float_tensors(q, uniform, beta)
    b = ops.exp(-beta)
    c = -ops.expm1(-beta)
    linear = uniform * c - (1.0 - q) + q * b
    root = ops.sqrt(ops.square(linear) + 4.0 * (1.0 - q) * q * b)
    positive = linear >= 0.0
    first = 2.0 * q * b / ops.where(positive, linear + root, ops.ones_like(q))
    second = (root - linear) / ops.where(positive, ops.ones_like(q), 2.0 * (1.0 - q))
    x = ops.clip(ops.where(positive, first, second), b, 1.0)
    return -ops.log(x) / beta


# Where a power function's draw underflows, its distance from the state's end is held at this
# floor: far below anything float32 resolves next to 1, and small enough that r's pole there,
# a^(1/β - 1), stays finite in float32 for every β.
POWER_FUNCTION_FLOOR = 1e-30


def power_function_smoothing(
    q: TensorLike, uniform: TensorLike, beta: float | TensorLike
) -> TensorLike:
    """Smoothed latents ζ from DVAE#'s power functions, with the implicit gradient in q.

    Vahdat, Andriyash & Macready (DVAE#, NeurIPS 2018) smooth a unit that is off by
    ``r0(ζ) = λ ζ^(λ - 1)`` on [0, 1], λ = 1/β (a Beta(λ, 1) density, whose mass gathers at 0
    as β grows), and a unit that is on by its mirror ``r1(ζ) = r0(1 - ζ)``. The mixture
    ``(1 - q)·r0 + q·r1`` has the CDF ``F(ζ) = (1 - q) ζ^λ + q (1 - (1 - ζ)^λ)``, which has no
    closed-form inverse, so ζ is drawn in two parts from the one uniform ρ: the state
    ``z = [ρ >= 1 - q]``, then ρ rescaled within the state's share of [0, 1] (uniform again,
    given z) raised to the power β, which is the distance of ζ from 0 (off) or from 1 (on).
    The gradient is the implicit one (Figurnov et al. 2018, DVAE#'s section 3.4): with ρ held
    fixed, ``F(ζ; q) = ρ`` gives

        dζ/dq = -(∂F/∂q) / (∂F/∂ζ) = (ζ^λ + (1 - ζ)^λ - 1) / ((1 - q) r0(ζ) + q r1(ζ)),

    so ``ζ = stop_gradient(ζ) + stop_gradient(dζ/dq) · (q - stop_gradient(q))``: its value is
    the draw, its gradient that slope. Every draw carries a gradient to q, as with DVAE++'s
    overlapping exponentials. Distances below `POWER_FUNCTION_FLOOR` are held there.

    Args:
        q: q(z = 1 | x), any shape, values in [0, 1].
        uniform: ρ ~ U(0, 1), the same shape as q, below 1 as ``keras.random.uniform`` draws.
        beta: β > 0, a number or a scalar tensor.

    Returns:
        ζ in [0, 1], the same shape as q (no reduction).
    """
    q, uniform, beta = _float_tensors(q, uniform, beta)
    fixed_q = ops.stop_gradient(q)
    off_share = 1.0 - fixed_q
    is_on = uniform >= off_share
    # ρ rescaled within its state's share; the unused share's denominator is kept at 1, so
    # that q = 0 or 1 never divides by zero.
    share = ops.where(is_on, fixed_q, off_share)
    start = ops.where(is_on, off_share, ops.zeros_like(q))
    safe_share = ops.where(share > 0.0, share, ops.ones_like(q))
    within = ops.clip((uniform - start) / safe_share, 0.0, 1.0)
    distance = ops.clip(ops.power(within, beta), POWER_FUNCTION_FLOOR, 1.0)
    zeta = ops.where(is_on, 1.0 - distance, distance)
    # The CDF and density at ζ, from ζ's distances to 0 and to 1 (the nearer one exact).
    from_zero = ops.maximum(zeta, POWER_FUNCTION_FLOOR)
    from_one = ops.maximum(ops.where(is_on, distance, 1.0 - distance), POWER_FUNCTION_FLOOR)
    power = 1.0 / beta
    log_zero, log_one = ops.log(from_zero), ops.log(from_one)
    cdf_difference = ops.exp(power * log_zero) + ops.exp(power * log_one) - 1.0
    density = power * (
        off_share * ops.exp((power - 1.0) * log_zero) + fixed_q * ops.exp((power - 1.0) * log_one)
    )
    slope = ops.stop_gradient(cdf_difference / ops.maximum(density, POWER_FUNCTION_FLOOR))
    return ops.stop_gradient(zeta) + slope * (q - fixed_q)


def _softplus(values: np.ndarray) -> np.ndarray:
    """``log(1 + e^x)`` without overflow."""
    return np.logaddexp(0.0, values)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    """``1 / (1 + e^-x)`` without overflow warnings."""
    return np.exp(-_softplus(-values))


def _log_sum_exp(values: np.ndarray) -> float:
    """``log Σ exp(values)`` over all entries, stable for values of any size."""
    largest = np.max(values)
    return float(largest + np.log(np.sum(np.exp(values - largest))))


def _float64(value: TensorLike) -> np.ndarray:
    """A backend tensor, variable or array as a float64 numpy array."""
    return np.asarray(ops.convert_to_numpy(value), dtype=np.float64)


def _as_float64(
    bias1: np.ndarray, bias2: np.ndarray, coupling: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The parameters as float64 numpy arrays, checked against each other's shapes."""
    bias1, bias2, coupling = (_float64(value) for value in (bias1, bias2, coupling))
    if coupling.shape != (bias1.size, bias2.size):
        raise ValueError(
            f"The coupling has shape {coupling.shape}; the biases need ({bias1.size}, "
            f"{bias2.size})."
        )
    return bias1.reshape(-1), bias2.reshape(-1), coupling


def rbm_log_probability_unnormalized(
    z1: np.ndarray, z2: np.ndarray, bias1: np.ndarray, bias2: np.ndarray, coupling: np.ndarray
) -> np.ndarray:
    """``-E(z) = a1·z1 + a2·z2 + z1ᵀ W z2`` per row, in numpy float64: log p(z) + log Z.

    Shapes as for :func:`rbm_energy`; returns shape ``(batch,)``.
    """
    bias1, bias2, coupling = _as_float64(bias1, bias2, coupling)
    z1, z2 = _float64(z1), _float64(z2)
    return z1 @ bias1 + z2 @ bias2 + np.sum((z1 @ coupling) * z2, axis=-1)


def _marginal_log_weight(
    states: np.ndarray, state_bias: np.ndarray, other_bias: np.ndarray, coupling: np.ndarray
) -> np.ndarray:
    """``log Σ_other exp(-E)`` for each row of `states`: the other half summed in closed form.

    ``a_s·z_s + Σ_j softplus(a_o_j + (z_s W)_j)`` with W of shape (n_state, n_other);
    returns shape ``(rows,)``.
    """
    return states @ state_bias + np.sum(_softplus(other_bias + states @ coupling), axis=-1)


def _smaller_half_first(
    bias1: np.ndarray, bias2: np.ndarray, coupling: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The parameters reordered so the first half is the smaller; E(z) is symmetric in this."""
    if bias1.size <= bias2.size:
        return bias1, bias2, coupling
    return bias2, bias1, coupling.T


def exact_log_partition(
    bias1: np.ndarray,
    bias2: np.ndarray,
    coupling: np.ndarray,
    max_enumerated_units: int = 20,
) -> float:
    """log Z of the RBM, exactly: every state of the smaller half, the other summed out.

    ``log Z = logsumexp over z_s of [a_s·z_s + Σ_j softplus(a_o_j + (z_s W)_j)]``, where s is
    the smaller half and o the other. The 2^m states are enumerated in chunks of at most 4
    million numbers per array, so memory stays under 200 MB even for m = 20 and a large other
    half. Time grows as 2^m · n_other.

    Args:
        bias1, bias2, coupling: a1 ``(n1,)``, a2 ``(n2,)``, W ``(n1, n2)``.
        max_enumerated_units: the largest m allowed.

    Returns:
        log Z in nats, as a Python float.

    Raises:
        ValueError: if the smaller half has more than `max_enumerated_units` units.
    """
    bias1, bias2, coupling = _as_float64(bias1, bias2, coupling)
    if min(bias1.size, bias2.size) > max_enumerated_units:
        raise ValueError(
            f"Exact log Z enumerates the smaller half, but the halves have {bias1.size} and "
            f"{bias2.size} units: more than max_enumerated_units={max_enumerated_units}."
        )
    state_bias, other_bias, coupling = _smaller_half_first(bias1, bias2, coupling)
    units = state_bias.size
    chunk = max(1, ENUMERATION_VALUES_PER_CHUNK // max(1, units + other_bias.size))
    chunk_log_sums = []
    for start in range(0, 2**units, chunk):
        indices = np.arange(start, min(start + chunk, 2**units))
        states = _states_numbered(indices, units, np.float64)
        log_weights = _marginal_log_weight(states, state_bias, other_bias, coupling)
        chunk_log_sums.append(_log_sum_exp(log_weights))
    return _log_sum_exp(np.array(chunk_log_sums))


# Where an AIS step's change of the other half's activations stays below this, the marginals'
# difference is taken from the Gibbs sweep's probabilities (exp of it is far from overflow).
LARGEST_AIS_SHIFT = 30.0


def annealed_importance_sampling_log_partition(
    bias1: np.ndarray,
    bias2: np.ndarray,
    coupling: np.ndarray,
    chains: int = 100,
    steps: int = 1000,
    betas: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[float, float]:
    """An annealed importance sampling (AIS) estimate of log Z, and its standard error.

    The base distribution is the factorial Bernoulli with the RBM's own biases,
    ``p_0(z) ∝ exp(a1·z1 + a2·z2)``, whose ``log Z_0 = Σ softplus(a1) + Σ softplus(a2)``.
    The intermediate distributions ``p_β ∝ exp(-[(1 - β) E_0 + β E])`` are then RBMs with the
    same biases and coupling βW. The chains live on the smaller half only, the other half
    summed out (its free energy), which lowers the variance; each step is a block Gibbs sweep
    that leaves p_β invariant. With ``f_β`` the marginal unnormalized probability::

        log w = Σ_k [log f_{β_k}(x_{k-1}) - log f_{β_{k-1}}(x_{k-1})],
        log Z ≈ log Z_0 + log mean_chains exp(log w).

    The estimate is unbiased for Z, so in log space it is slightly low on average.

    Args:
        bias1, bias2, coupling: a1 ``(n1,)``, a2 ``(n2,)``, W ``(n1, n2)``.
        chains: the number of independent AIS runs.
        steps: the number of annealing steps; β takes ``steps + 1`` evenly spaced values from
            0 to 1. The cost is about ``steps · chains · n1 · n2`` multiply-adds.
        betas: an increasing schedule from 0 to 1, used instead of `steps` when given.
        rng: the source of randomness; a fresh unseeded generator if None.

    Returns:
        ``(log Z estimate, standard error)`` in nats; the standard error is the delta-method
        ``std(w) / (mean(w) √chains)``.
    """
    bias1, bias2, coupling = _as_float64(bias1, bias2, coupling)
    state_bias, other_bias, coupling = _smaller_half_first(bias1, bias2, coupling)
    if chains < 2:
        raise ValueError(f"AIS needs at least 2 chains for its standard error; got {chains}.")
    rng = np.random.default_rng() if rng is None else rng
    betas = np.linspace(0.0, 1.0, steps + 1) if betas is None else np.asarray(betas, float)
    if betas[0] != 0.0 or betas[-1] != 1.0 or np.any(np.diff(betas) <= 0.0):
        raise ValueError("The AIS schedule `betas` must increase from 0 to 1.")

    base_log_partition = float(np.sum(_softplus(state_bias)) + np.sum(_softplus(other_bias)))
    log_weights = _annealed_log_weights(state_bias, other_bias, coupling, betas, chains, rng)
    log_mean_weight = _log_sum_exp(log_weights) - math.log(chains)
    scaled_weights = np.exp(log_weights - np.max(log_weights))
    standard_error = float(
        np.std(scaled_weights, ddof=1) / (np.mean(scaled_weights) * math.sqrt(chains))
    )
    return base_log_partition + log_mean_weight, standard_error


def _annealed_log_weights(
    state_bias: np.ndarray,
    other_bias: np.ndarray,
    coupling: np.ndarray,
    betas: np.ndarray,
    chains: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Each AIS run's log w ``(chains,)``, its chain on the state half (the first), the other
    half summed out, annealed through `betas` (see
    `annealed_importance_sampling_log_partition`)."""
    # Exact draws from the base, where the units are independent.
    states = (rng.random((chains, state_bias.size)) < _sigmoid(state_bias)).astype(np.float64)
    log_weights = np.zeros(chains)
    coupling_transposed = np.ascontiguousarray(coupling.T)
    # The loop runs thousands of times on small arrays, so each step does few operations: the
    # state's projection serves both β's marginals and the Gibbs sweep, and the marginals'
    # difference comes from the sweep's probabilities p = sigmoid(a) at the new β, as
    # softplus(a) - softplus(a - Δ) = -log1p(p · expm1(-Δ)) with Δ = (β - β_prev) · projection
    # (the state's own bias term cancels between them), without cancellation when Δ is small.
    # A sigmoid of a very negative input overflows exp to inf, which gives the right 0.
    with np.errstate(over="ignore"):
        for previous_beta, beta in zip(betas[:-1], betas[1:], strict=True):
            projection = states @ coupling  # (chains, n_other)
            activation = other_bias + beta * projection
            other_probabilities = 1.0 / (1.0 + np.exp(-activation))
            shift = (previous_beta - beta) * projection
            if np.max(np.abs(shift)) < LARGEST_AIS_SHIFT:
                log_weights -= np.sum(np.log1p(other_probabilities * np.expm1(shift)), axis=-1)
            else:
                # A coarse schedule on large weights: exp(shift) could overflow.
                log_weights += np.sum(_softplus(activation) - _softplus(activation + shift), -1)
            if beta < 1.0:
                # Block Gibbs under p_β: the other half given the state, then the state back.
                others = rng.random(activation.shape) < other_probabilities
                state_activation = state_bias + beta * (others @ coupling_transposed)
                state_probabilities = 1.0 / (1.0 + np.exp(-state_activation))
                states = (rng.random(states.shape) < state_probabilities).astype(np.float64)
    return log_weights


def _states_numbered(indices: np.ndarray, units: int, dtype: Any) -> np.ndarray:
    """The states of `units` binary units that `indices` number, ``(len(indices), units)``
    of 0 and 1: bit i of each index is unit i."""
    return ((indices[:, None] >> np.arange(units)) & 1).astype(dtype)


def _binary_states(units: int) -> np.ndarray:
    """Every state of `units` binary units, shape ``(2**units, units)``, float32."""
    return _states_numbered(np.arange(2**units), units, np.float32)


def enumerated_log_partition(
    bias1: TensorLike, bias2: TensorLike, coupling: TensorLike
) -> TensorLike:
    """log Z of the RBM in `keras.ops`, exactly, for use inside a (compiled) training step.

    The same sum as :func:`exact_log_partition`, over every state s of the smaller half with
    the other half o summed in closed form::

        log Z = logsumexp_s [a_s·s + Σ_j softplus(a_o_j + (s W)_j)]

    All 2^m states are held at once, ``(2^m, m)``, so this is meant for small halves (m <= 16:
    65,536 states, a few million operations per call). The shapes must be static.

    Args:
        bias1, bias2, coupling: a1 ``(n1,)``, a2 ``(n2,)``, W ``(n1, n2)``.

    Returns:
        A scalar tensor: log Z in nats. Differentiable (its gradient is the exact
        ``E_p[-∂E/∂θ]``), though the discrete VAE takes that gradient from Gibbs chains instead.
    """
    bias1, bias2, coupling = _float_tensors(bias1, bias2, coupling)
    first_units, second_units = (int(size) for size in ops.shape(coupling))
    if first_units <= second_units:
        state_bias, other_bias, oriented = bias1, bias2, coupling
    else:
        state_bias, other_bias, oriented = bias2, bias1, ops.transpose(coupling)
    states = ops.cast(_binary_states(min(first_units, second_units)), bias1.dtype)
    # (2^m, m) @ (m, n_other) -> (2^m, n_other), summed over the other half's units.
    log_weights = ops.sum(states * state_bias, axis=-1) + ops.sum(
        ops.softplus(other_bias + ops.matmul(states, oriented)), axis=-1
    )
    return ops.logsumexp(log_weights)


def gibbs_sample_numpy(
    bias1: np.ndarray,
    bias2: np.ndarray,
    coupling: np.ndarray,
    count: int,
    steps: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """`count` samples of the RBM by `steps` block Gibbs sweeps from uniformly random states.

    The numpy twin of :func:`gibbs_step`, for figures: z2 given z1, then z1 given z2, each
    sweep. Returns ``(z1 (count, n1), z2 (count, n2))``, float32 values 0.0 or 1.0.
    """
    bias1, bias2, coupling = _as_float64(bias1, bias2, coupling)
    first = (rng.random((count, bias1.size)) < 0.5).astype(np.float64)
    # The first sweep draws the second half anew, so its random start is drawn only where there
    # is no sweep: chains of sweeps keep the draws, and the figures, of earlier versions.
    second = np.zeros((count, bias2.size))
    if steps == 0:
        second = (rng.random(second.shape) < 0.5).astype(np.float64)
    for _ in range(steps):
        second = (rng.random(second.shape) < _sigmoid(bias2 + first @ coupling)).astype(float)
        first = (rng.random(first.shape) < _sigmoid(bias1 + second @ coupling.T)).astype(float)
    return first.astype(np.float32), second.astype(np.float32)
