"""DVAE#'s power-function smoothing (Vahdat, Andriyash & Macready 2018): the draws against the
mixture's CDF, the implicit gradient against the exact derivative, the kind and its presets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from keras import ops
from smoothing_cdfs import power_function_cdf
from test_dvae import run_command
from test_gumbolt import numpy, preset_round_trip
from test_relaxations import gradients

from vae_mnist.discrete import PowerFunctionPosterior
from vae_mnist.model import PartLayer
from vae_mnist.rbm import power_function_smoothing

GRID = 200_000


def even_uniforms(count: int = GRID) -> np.ndarray:
    """ρ on an even grid of (0, 1): means over it are quadratures, free of sampling noise."""
    return ((np.arange(count) + 0.5) / count).astype("float32")


def beta_moment(power: float, order: int) -> float:
    """E[ζ^order] for ζ ~ r0 = Beta(λ, 1), λ = power: ``λ / (λ + order)``."""
    return power / (power + order)


@pytest.mark.parametrize("q", [0.0, 1e-6, 0.3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("beta", [1.0, 5.0, 30.0])
def test_the_draws_follow_the_mixture(q, beta):
    rho = even_uniforms()
    zeta = numpy(power_function_smoothing(np.full_like(rho, q), rho, beta))
    assert np.all((zeta >= 0.0) & (zeta <= 1.0)) and np.all(np.isfinite(zeta))
    # The share of draws at or below each point is the CDF there.
    points = np.linspace(0.02, 0.98, 13)
    shares = np.array([np.mean(zeta <= point) for point in points])
    np.testing.assert_allclose(shares, power_function_cdf(points, q, beta), atol=2e-4)
    # The mass gathered at the ends, where the sharpness puts most of it: within 10⁻³ of 1.
    assert np.mean(zeta >= 1.0 - 1e-3) == pytest.approx(
        1.0 - power_function_cdf(1.0 - 1e-3, q, beta), abs=2e-4
    )


@pytest.mark.parametrize("q", [0.0, 0.05, 0.5, 0.95, 1.0])
@pytest.mark.parametrize("beta", [5.0, 30.0])
def test_the_implicit_gradient_is_the_derivative_of_the_expectation(q, beta):
    """E_q[f(ζ)] = (1 - q) E_r0[f] + q E_r1[f] is linear in q, so its derivative is
    E_r1[f] - E_r0[f]; for f(ζ) = ζ² and r0 = Beta(λ, 1) that is
    ``1 - 2 λ/(λ+1) + λ/(λ+2) - λ/(λ+2)``. The mean over an even grid of ρ is its quadrature,
    at q = 0 and 1 too, where one state's share of ρ is empty."""
    rho = ops.convert_to_tensor(even_uniforms())

    def mean_square(probability):
        zeta = power_function_smoothing(probability * ops.ones_like(rho), rho, beta)
        return ops.mean(ops.square(zeta))

    (gradient,) = gradients(mean_square, np.array(q, "float32"))
    power = 1.0 / beta
    on = 1.0 - 2.0 * beta_moment(power, 1) + beta_moment(power, 2)
    off = beta_moment(power, 2)
    assert math.isfinite(float(gradient))
    assert float(gradient) == pytest.approx(on - off, rel=1e-3)


def test_each_draw_carries_a_gradient_to_q():
    """Unlike the spike, both states have a density, so dζ/dq is positive at every draw."""
    rho = ops.convert_to_tensor(even_uniforms(1000))

    def total(probabilities):
        return ops.sum(power_function_smoothing(probabilities, rho, 8.0))

    (slopes,) = gradients(total, np.full(1000, 0.3, "float32"))
    assert np.all(np.isfinite(slopes)) and np.all(slopes > 0.0)


def test_the_decoder_sees_each_states_power_function():
    posterior = PartLayer(PowerFunctionPosterior(units=2, sharpness=4.0), 0).part
    bits = np.tile(np.array([[0.0, 1.0]], "float32"), (50_000, 1))
    zeta = numpy(posterior.decoder_input(bits, 3))
    # r0 is Beta(1/β, 1), whose mean is 1 / (1 + β); r1 its mirror.
    assert zeta[:, 0].mean() == pytest.approx(1.0 / 5.0, abs=0.005)
    assert zeta[:, 1].mean() == pytest.approx(4.0 / 5.0, abs=0.005)
    assert np.all(zeta[:, 0] < 1.0) and np.all(zeta[:, 1] > 0.0)


def test_a_sharpness_of_zero_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "run"
    result = run_command(
        "train", "--preset", "dvaesharp2018", "--sharpness", "0", "--out", str(folder)
    )
    assert result.returncode != 0 and not folder.exists()
    assert "sharpness" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_dvaesharp_preset_builds_saves_reloads_trains_and_evaluates(tmp_path):
    from vae_mnist.presets import load_preset

    config, metrics = preset_round_trip("dvaesharp2018", tmp_path)
    # dvae2017-small at its first size (16 + 16 units) with the smoothing alone changed.
    first_size = load_preset("dvae2017-small").config.replace(units=32, halves=(16, 16))
    a, b = first_size.to_dict(), config.to_dict()
    assert a["prior"] == b["prior"] and a["network"] == b["network"]
    assert b["posterior"]["kind"] == "power_function"
    assert metrics["log_partition_method"] == "exact"
