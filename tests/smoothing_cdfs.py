"""The cumulative distribution functions of the smoothings in `vae_mnist.rbm`, in NumPy.

They are the references that the tests check the smoothings' samples against; training and
evaluation draw through the inverse CDFs, so the library itself has no use for them.
"""

from __future__ import annotations

import numpy as np


def spike_and_exponential_cdf(zeta: np.ndarray, q: float | np.ndarray, beta: float) -> np.ndarray:
    """CDF of the mixture ``(1 - q)·spike(0) + q·exponential``
    (see `vae_mnist.rbm.spike_and_exponential_inverse_cdf`).

    ``F(ζ) = 0`` for ζ < 0, ``(1 - q) + q (e^(βζ) - 1)/(e^β - 1)`` for 0 <= ζ < 1, and 1 from
    ζ = 1 on. Elementwise; broadcasts ζ against q.
    """
    zeta = np.asarray(zeta, dtype=np.float64)
    inside = np.clip(zeta, 0.0, 1.0)
    values = (1.0 - q) + q * np.expm1(beta * inside) / np.expm1(beta)
    return np.where(zeta < 0.0, 0.0, values)


def overlapping_exponential_cdf(zeta: np.ndarray, q: float | np.ndarray, beta: float) -> np.ndarray:
    """CDF of ``(1 - q)·r0 + q·r1`` (see
    `vae_mnist.rbm.overlapping_exponential_inverse_cdf`):
    ``[(1 - q)(1 - e^(-βζ)) + q (e^(β(ζ - 1)) - e^(-β))] / (1 - e^(-β))`` on [0, 1]."""
    zeta = np.clip(np.asarray(zeta, dtype=np.float64), 0.0, 1.0)
    off = (1.0 - q) * -np.expm1(-beta * zeta)
    on = q * (np.exp(beta * (zeta - 1.0)) - np.exp(-beta))
    return (off + on) / -np.expm1(-beta)


def power_function_cdf(zeta: np.ndarray, q: float | np.ndarray, beta: float) -> np.ndarray:
    """CDF of ``(1 - q)·r0 + q·r1`` (see `vae_mnist.rbm.power_function_smoothing`):
    ``(1 - q) ζ^(1/β) + q (1 - (1 - ζ)^(1/β))`` on [0, 1]."""
    zeta = np.clip(np.asarray(zeta, dtype=np.float64), 0.0, 1.0)
    power = 1.0 / beta
    return (1.0 - q) * zeta**power + q * (1.0 - (1.0 - zeta) ** power)
