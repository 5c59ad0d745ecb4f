"""DVAE++'s overlapping exponential smoothing (Vahdat et al. 2018): the inverse CDF against the
mixture, its pathwise gradient against the exact one, the kind and its preset."""

from __future__ import annotations

import math

import numpy as np
import pytest
from keras import ops
from smoothing_cdfs import overlapping_exponential_cdf
from test_gumbolt import numpy, preset_round_trip
from test_relaxations import gradients

from vae_mnist.discrete import OverlappingExponentialPosterior
from vae_mnist.model import PartLayer
from vae_mnist.rbm import overlapping_exponential_inverse_cdf


@pytest.mark.parametrize("q", [0.0, 1e-6, 0.2, 0.5, 0.9, 1.0 - 1e-6, 1.0])
@pytest.mark.parametrize("beta", [1.0, 5.0, 20.0])
def test_the_inverse_cdf_inverts_the_mixture(q, beta):
    rho = ((np.arange(2000) + 0.5) / 2000).astype("float32")
    zeta = numpy(overlapping_exponential_inverse_cdf(np.full_like(rho, q), rho, beta))
    assert np.all((zeta >= 0.0) & (zeta <= 1.0)) and np.all(np.diff(zeta) >= -1e-6)
    np.testing.assert_allclose(overlapping_exponential_cdf(zeta, q, beta), rho, atol=2e-4)


@pytest.mark.parametrize("q", [0.0, 0.05, 0.5, 0.95, 1.0])
def test_the_pathwise_gradient_is_the_derivative_of_the_expectation(q):
    """E_q[f(ζ)] = (1 - q) E_r0[f] + q E_r1[f] is linear in q, so its derivative is
    E_r1[f] - E_r0[f]; ρ on a fine even grid makes the mean of ∂f(ζ)/∂q its quadrature. The
    gradient is finite at q = 0 and 1, where one of the quadratic's forms is unused."""
    beta, count = 5.0, 200_000
    rho = ((np.arange(count) + 0.5) / count).astype("float32")

    def mean_square(probability):
        zeta = overlapping_exponential_inverse_cdf(
            probability * ops.ones_like(rho), ops.convert_to_tensor(rho), beta
        )
        return ops.mean(ops.square(zeta))

    (gradient,) = gradients(mean_square, np.array(q, "float32"))
    grid = (np.arange(count) + 0.5) / count
    normaliser = -math.expm1(-beta)
    on = beta * np.exp(beta * (grid - 1.0)) / normaliser
    off = beta * np.exp(-beta * grid) / normaliser
    expected = float(np.mean(grid**2 * (on - off)))
    assert math.isfinite(float(gradient))
    assert float(gradient) == pytest.approx(expected, rel=5e-3)


def test_the_decoder_sees_each_states_exponential():
    posterior = PartLayer(OverlappingExponentialPosterior(units=2, sharpness=5.0), 0).part
    bits = np.tile(np.array([[0.0, 1.0]], "float32"), (50_000, 1))
    zeta = numpy(posterior.decoder_input(bits, 3))
    # The mean of r1 is 1 - (1/β - e^-β / (1 - e^-β)) and r0's its mirror.
    mean_off = 1.0 / 5.0 - math.exp(-5.0) / -math.expm1(-5.0)
    assert zeta[:, 0].mean() == pytest.approx(mean_off, abs=0.005)
    assert zeta[:, 1].mean() == pytest.approx(1.0 - mean_off, abs=0.005)


def test_the_dvaepp_preset_builds_saves_reloads_trains_and_evaluates(tmp_path):
    from vae_mnist.presets import load_preset

    config, metrics = preset_round_trip("dvaepp2018", tmp_path)
    # dvae2017-small at its first size (16 + 16 units) with the smoothing alone changed.
    first_size = load_preset("dvae2017-small").config.replace(units=32, halves=(16, 16))
    a, b = first_size.to_dict(), config.to_dict()
    assert {name for name in {*a, *b} if a[name] != b[name]} >= {"posterior"}
    assert a["prior"] == b["prior"] and a["network"] == b["network"]
    assert metrics["log_partition_method"] == "exact"
