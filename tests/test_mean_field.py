"""DVAE#'s relaxed Boltzmann prior (Vahdat, Andriyash & Macready 2018): the density of the smoothed
sample ζ under the RBM prior, its sum over states bounded by mean-field, and the importance-
weighted bound that it trains with; the uniform prior's exact density of the same ζ."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import set_rbm_weights
from keras import ops
from test_dvae import run_command
from test_gumbolt import SHORT_AIS, numpy, preset_round_trip
from test_relaxations import gradients

from vae_mnist.discrete import OverlappingExponentialPosterior, PowerFunctionPosterior
from vae_mnist.hierarchical import HierarchicalPowerFunctionPosterior
from vae_mnist.model import PartLayer, build_vae
from vae_mnist.presets import preset_config
from vae_mnist.rbm import exact_log_partition, mean_field_log_partition
from vae_mnist.rbm_prior import RBMPrior
from vae_mnist.settings import ConfigError


def all_states(units: int) -> np.ndarray:
    """Every binary state of `units` units, ``(2^units, units)``."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=units)))


def power_function_density(zeta: np.ndarray, bit: np.ndarray, beta: float) -> np.ndarray:
    """r(ζ | z) of DVAE#'s power functions, in numpy: ``λ ζ^(λ-1)`` off, its mirror on."""
    power = 1.0 / beta
    distance = np.where(bit > 0.5, 1.0 - zeta, zeta)
    return power * distance ** (power - 1.0)


def overlapping_exponential_density(zeta: np.ndarray, bit: np.ndarray, beta: float) -> np.ndarray:
    """r(ζ | z) of DVAE++'s overlapping exponentials: ``β e^(-βζ) / (1 - e^(-β))``, mirrored."""
    distance = np.where(bit > 0.5, 1.0 - zeta, zeta)
    return beta * np.exp(-beta * distance) / (1.0 - np.exp(-beta))


def mean_field_parts(halves=(2, 3), beta=3.0, coupling_scale=1.0, seed=0):
    """A power-function posterior and an RBM prior with DVAE#'s relaxation and random weights,
    hosted as in the model."""
    units = sum(halves)
    posterior = PartLayer(PowerFunctionPosterior(units=units, sharpness=beta), seed)
    settings = dict(halves=halves, chains=4, relaxation="mean_field", mean_field_iterations=50)
    prior = PartLayer(RBMPrior(**settings), seed, posterior.part).part
    rng = np.random.default_rng(seed)
    set_rbm_weights(
        prior,
        rng.normal(0.0, 1.0, halves[0]),
        rng.normal(0.0, 1.0, halves[1]),
        rng.normal(0.0, coupling_scale, halves),
    )
    return posterior.part, prior


def brute_force_relaxed_log_density(prior: RBMPrior, zeta: np.ndarray, beta: float) -> np.ndarray:
    """``log Σ_z p(z) Π_i r(ζ_i | z_i)`` by enumerating every z, ``(batch,)``."""
    bias1, bias2, coupling = (np.asarray(weight, np.float64) for weight in prior.numpy_weights())
    first = len(bias1)
    states = all_states(len(bias1) + len(bias2))
    negative_energy = (
        states[:, :first] @ bias1
        + states[:, first:] @ bias2
        + np.einsum("si,ij,sj->s", states[:, :first], coupling, states[:, first:])
    )
    log_prior = negative_energy - exact_log_partition(bias1, bias2, coupling)
    # (batch, 1, N) against (1, states, N): each sample's smoothing density under each state.
    densities = power_function_density(zeta[:, None, :], states[None, :, :], beta)
    log_joint = log_prior[None, :] + np.sum(np.log(densities), axis=-1)
    return np.logaddexp.reduce(log_joint, axis=1)


def test_the_mean_field_bound_is_below_log_z_and_exact_for_a_factorial_rbm():
    rng = np.random.default_rng(0)
    bias1, bias2 = rng.normal(size=(6, 3)), rng.normal(size=(6, 4))
    coupling = rng.normal(size=(3, 4))
    bound = numpy(mean_field_log_partition(bias1, bias2, coupling, 30))
    exact = np.array(
        [exact_log_partition(a, b, coupling) for a, b in zip(bias1, bias2, strict=True)]
    )
    assert np.all(bound <= exact + 1e-5)
    assert np.all(exact - bound < 0.5)
    # With no coupling the RBM is factorial, and mean-field is its log Z exactly.
    factorial = numpy(mean_field_log_partition(bias1, bias2, np.zeros((3, 4)), 1))
    expected = np.sum(np.logaddexp(0.0, bias1), 1) + np.sum(np.logaddexp(0.0, bias2), 1)
    np.testing.assert_allclose(factorial, expected, rtol=1e-6)
    # Strong fields leave the state nearly certain, where the bound is tight.
    strong = numpy(mean_field_log_partition(20.0 * bias1, 20.0 * bias2, coupling, 30))
    strong_exact = [
        exact_log_partition(20 * a, 20 * b, coupling) for a, b in zip(bias1, bias2, strict=True)
    ]
    gap = np.asarray(strong_exact) - strong
    assert np.all(gap > -1e-4) and np.all(gap < 0.05) and np.max(gap) < np.max(exact - bound)


def test_the_mean_field_gradient_is_the_mean_field_marginals():
    """At the fixed point the bound's gradient in the biases is the mean-field state m."""
    rng = np.random.default_rng(1)
    bias1 = rng.normal(size=(1, 3)).astype("float32")
    bias2 = rng.normal(size=(1, 4)).astype("float32")
    coupling = (0.5 * rng.normal(size=(3, 4))).astype("float32")

    def bound(first):
        return ops.sum(mean_field_log_partition(first, bias2, coupling, 200))

    (gradient,) = gradients(bound, bias1)
    second = 1.0 / (1.0 + np.exp(-bias2))
    for _ in range(200):
        first = 1.0 / (1.0 + np.exp(-(bias1 + second @ coupling.T)))
        second = 1.0 / (1.0 + np.exp(-(bias2 + first @ coupling)))
    np.testing.assert_allclose(numpy(gradient), first, atol=1e-5)


@pytest.mark.parametrize("beta", [3.0, 40.0])
def test_the_posterior_density_of_zeta_is_the_mixtures(beta):
    posterior = PartLayer(PowerFunctionPosterior(units=4, sharpness=beta), 0).part
    rng = np.random.default_rng(2)
    logits = rng.normal(0.0, 2.0, (5, 4)).astype("float32")
    zeta = rng.uniform(0.01, 0.99, (5, 4)).astype("float32")
    value = numpy(posterior.smoothed_log_density(zeta, {"logits": logits}))
    q = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    zeta64 = zeta.astype(np.float64)
    off = power_function_density(zeta64, np.zeros_like(zeta64), beta)
    mixture = (1.0 - q) * off + q * power_function_density(zeta64, np.ones_like(zeta64), beta)
    # The density up to Σ log r(ζ|0), which the prior's density has too.
    np.testing.assert_allclose(value, np.sum(np.log(mixture) - np.log(off), axis=1), rtol=1e-5)


def test_the_overlapping_exponentials_log_odds():
    posterior = PartLayer(OverlappingExponentialPosterior(units=3, sharpness=5.0), 0).part
    zeta = np.array([[0.1, 0.5, 0.9]], "float32")
    expected = np.log(
        overlapping_exponential_density(zeta.astype(np.float64), np.ones((1, 3)), 5.0)
        / overlapping_exponential_density(zeta.astype(np.float64), np.zeros((1, 3)), 5.0)
    )
    np.testing.assert_allclose(numpy(posterior.smoothing_log_odds(zeta)), expected, rtol=1e-5)


@pytest.mark.parametrize("coupling_scale", [0.0, 0.3, 1.0])
def test_the_rbm_density_of_zeta_is_bounded_by_mean_field(coupling_scale):
    """log p(ζ) = Σ log r(ζ|0) + log Z(a + g) - log Z(a), log Z(a + g) bounded by mean-field:
    below the enumerated sum over states, equal to it without coupling, and near it where the
    sharp smoothing all but decides each bit."""
    beta = 3.0
    posterior, prior = mean_field_parts(beta=beta, coupling_scale=coupling_scale)
    rng = np.random.default_rng(3)
    zeta = rng.uniform(0.02, 0.98, (8, 5))
    exact = brute_force_relaxed_log_density(prior, zeta, beta)
    log_odds = posterior.smoothing_log_odds(ops.convert_to_tensor(zeta.astype("float32")))
    base = np.sum(np.log(power_function_density(zeta, np.zeros_like(zeta), beta)), axis=1)
    value = numpy(prior.smoothed_log_density(log_odds)) + base
    assert np.all(value <= exact + 1e-4)
    if coupling_scale == 0.0:
        np.testing.assert_allclose(value, exact, atol=1e-4)
    else:
        assert np.all(exact - value < 0.3)


def test_the_uniform_prior_density_of_zeta_is_exact():
    config = preset_config("dvaesharp2018-factorial", sharpness=3.0, units=5)
    vae = build_vae(config)
    posterior, prior = vae.posterior_part, vae.prior_part
    zeta = np.random.default_rng(4).uniform(0.02, 0.98, (6, 5))
    log_odds = posterior.smoothing_log_odds(ops.convert_to_tensor(zeta.astype("float32")))
    value = numpy(prior.smoothed_log_density(log_odds))
    off = power_function_density(zeta, np.zeros_like(zeta), 3.0)
    on = power_function_density(zeta, np.ones_like(zeta), 3.0)
    np.testing.assert_allclose(value, np.sum(np.log(0.5 * (off + on) / off), axis=1), rtol=1e-5)


def test_a_hierarchical_posterior_weighs_zeta_by_its_conditional_logits():
    posterior = PartLayer(
        HierarchicalPowerFunctionPosterior(units=4, groups=2, sharpness=3.0), 0
    ).part
    posterior.group_coupling.assign(np.random.default_rng(5).normal(size=(4, 4)).astype("float32"))
    parameters = {"logits": np.random.default_rng(6).normal(size=(3, 4)).astype("float32")}
    zeta = ops.convert_to_tensor(np.random.default_rng(7).uniform(0.05, 0.95, (3, 4)), "float32")
    conditional = posterior.conditional_logits(parameters, zeta)
    # The second group's logits depend on the first group's ζ, and the density follows them.
    assert not np.allclose(numpy(conditional), parameters["logits"])
    factorial = PartLayer(PowerFunctionPosterior(units=4, sharpness=3.0), 0).part
    expected = factorial.smoothed_log_density(zeta, {"logits": conditional})
    np.testing.assert_allclose(
        numpy(posterior.smoothed_log_density(zeta, parameters)), numpy(expected), rtol=1e-6
    )


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("dvaesharp2018-factorial", {}),
        ("dvaesharp2018", {"relaxation": "mean_field", "log_partition_gradient": "exact"}),
    ],
)
def test_training_and_evaluation_bound_the_same_model(name, changes):
    """The training objective with many samples and evaluation's exact bits estimate the same
    log p(x): the smoothing's model p(z) r(ζ|z) p(x|ζ), whose marginal over z is the relaxed
    prior. For the uniform prior the training weights are exact; for the RBM, mean-field makes
    them a bound, tight at the starting coupling of 0.01. Binary images, so that dynamic
    binarization leaves them as they are."""
    from vae_mnist.objectives import log_mean_exp

    samples = 2000
    config = preset_config(
        name, objective="iwae", importance_samples=samples, jit_compile=False, **changes
    )
    vae = build_vae(config)
    images = (np.random.default_rng(8).random((3, 784)) < 0.2).astype("float32")
    outputs = vae(images, training=True)
    training_estimate = -float(numpy(vae.compute_loss(y_pred=outputs)))
    log_weights = vae.log_weights(ops.convert_to_tensor(images), samples, 9)
    evaluation_estimate = float(np.mean(numpy(log_mean_exp(log_weights, axis=1))))
    assert math.isfinite(training_estimate)
    assert training_estimate == pytest.approx(evaluation_estimate, abs=0.5)


def test_mean_field_needs_a_smoothing_with_a_density(tmp_path):
    folder = tmp_path / "run"
    result = run_command(
        "train", "--preset", "dvae2017-small", "--relaxation", "mean_field", "--out", str(folder)
    )
    assert result.returncode != 0 and not folder.exists()
    assert "mean_field" in result.stderr and "spike_exponential" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    # The closed form gives no density of ζ, so the importance-weighted bound stays refused.
    with pytest.raises(ConfigError, match="iwae objective weighs samples"):
        preset_config("dvaesharp2018", objective="iwae")
    with pytest.raises(ConfigError, match="mean_field_iterations must be positive"):
        preset_config("dvaesharp2018", relaxation="mean_field", mean_field_iterations=0)


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("dvaesharp2018", {**SHORT_AIS, "relaxation": "mean_field"}),
        (
            "dvaesharp2018",
            {**SHORT_AIS, "relaxation": "mean_field", "objective": "iwae", "importance_samples": 2},
        ),
        ("dvaesharp2018-factorial", {"objective": "iwae", "importance_samples": 2}),
        ("dvaesharp2018-hierarchical", {**SHORT_AIS, "relaxation": "mean_field"}),
        ("dvaepp2018", {**SHORT_AIS, "relaxation": "mean_field"}),
    ],
)
def test_the_relaxed_prior_trains_saves_reloads_and_evaluates(name, changes, tmp_path):
    config, metrics = preset_round_trip(name, tmp_path, **changes)
    assert math.isfinite(metrics["iwae_negative_log_likelihood"])
    assert config.to_dict()["prior"].get("relaxation", "closed_form") == changes.get(
        "relaxation", "closed_form"
    )
