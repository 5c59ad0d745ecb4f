"""The discrete VAE's RBM mathematics against hand values, brute force and sampling."""

from __future__ import annotations

import itertools
import math

import keras
import numpy as np
import pytest
from keras import ops
from smoothing_cdfs import spike_and_exponential_cdf

from vae_mnist import rbm
from vae_mnist.rbm import (
    annealed_importance_sampling_log_partition,
    bernoulli_entropy,
    exact_log_partition,
    expected_rbm_energy,
    gibbs_sample_numpy,
    gibbs_step,
    rbm_energy,
    rbm_log_probability_unnormalized,
    spike_and_exponential_inverse_cdf,
)


def random_rbm(first_units: int, second_units: int, coupling_scale: float, seed: int):
    """Biases and a coupling matrix drawn from normal distributions, in float32."""
    rng = np.random.default_rng(seed)
    return (
        rng.normal(0.0, 0.5, first_units).astype("float32"),
        rng.normal(0.0, 0.5, second_units).astype("float32"),
        rng.normal(0.0, coupling_scale, (first_units, second_units)).astype("float32"),
    )


def all_states(units: int) -> np.ndarray:
    """Every binary vector of length `units`, shape ``(2**units, units)``."""
    return np.array(list(itertools.product((0.0, 1.0), repeat=units))).reshape(-1, units)


def brute_force_log_probabilities(bias1, bias2, coupling) -> np.ndarray:
    """log p(z1, z2) for every joint state, the z1 index varying slowest."""
    first, second = all_states(bias1.size), all_states(bias2.size)
    z1 = np.repeat(first, len(second), axis=0)
    z2 = np.tile(second, (len(first), 1))
    log_weights = rbm_log_probability_unnormalized(z1, z2, bias1, bias2, coupling)
    largest = log_weights.max()
    return log_weights - (largest + np.log(np.sum(np.exp(log_weights - largest))))


def test_energy_and_expected_energy_hand_values():
    # a1 = 0.5, a2 = -1, W = 2: E(1, 1) = -0.5 + 1 - 2 and E_q at q = (0.3, 0.6) is
    # -0.15 + 0.6 - 0.36.
    parameters = (np.array([0.5]), np.array([-1.0]), np.array([[2.0]]))
    energies = rbm_energy(
        np.array([[1.0], [1.0], [0.0]]), np.array([[1.0], [0.0], [1.0]]), *parameters
    )
    np.testing.assert_allclose(ops.convert_to_numpy(energies), [-1.5, -0.5, 1.0], atol=1e-6)
    expected = expected_rbm_energy(np.array([[0.3]]), np.array([[0.6]]), *parameters)
    np.testing.assert_allclose(ops.convert_to_numpy(expected), [0.09], atol=1e-6)


def test_expected_energy_matches_monte_carlo_average():
    bias1, bias2, coupling = random_rbm(3, 4, 1.0, seed=1)
    rng = np.random.default_rng(2)
    q1, q2 = rng.uniform(size=(2, 3)), rng.uniform(size=(2, 4))
    samples = 20_000
    # (rows, samples, units) -> (rows * samples, units) for the energy, then back.
    z1 = (rng.uniform(size=(2, samples, 3)) < q1[:, None]).astype("float32").reshape(-1, 3)
    z2 = (rng.uniform(size=(2, samples, 4)) < q2[:, None]).astype("float32").reshape(-1, 4)
    energies = ops.convert_to_numpy(rbm_energy(z1, z2, bias1, bias2, coupling)).reshape(2, -1)
    closed_form = ops.convert_to_numpy(
        expected_rbm_energy(q1.astype("float32"), q2.astype("float32"), bias1, bias2, coupling)
    )
    standard_error = energies.std(axis=1) / math.sqrt(samples)
    assert np.all(np.abs(energies.mean(axis=1) - closed_form) < 5 * standard_error)


def test_bernoulli_entropy_hand_values_and_extreme_logits():
    # p = 0.5 gives log 2; p = 0.75 (logit log 3) gives -0.75 log 0.75 - 0.25 log 0.25.
    hand = math.log(2.0) - 0.75 * math.log(0.75) - 0.25 * math.log(0.25)
    entropy = bernoulli_entropy(np.array([[0.0, math.log(3.0)]], dtype="float32"))
    np.testing.assert_allclose(ops.convert_to_numpy(entropy), [hand], rtol=1e-6)
    # Saturated units are nearly certain: entropy near 0, never NaN from a log(0).
    extreme = ops.convert_to_numpy(bernoulli_entropy(np.array([[-200.0, 200.0, 50.0]])))
    assert np.all(np.isfinite(extreme)) and 0.0 <= extreme[0] < 1e-15


@pytest.mark.parametrize(("probability", "beta"), [(0.3, 5.0), (0.9, 20.0)])
def test_inverse_cdf_reproduces_the_mixture(probability, beta):
    draws = 200_000
    uniform = np.random.default_rng(3).uniform(size=draws).astype("float32")
    q = np.full(draws, probability, dtype="float32")
    zeta = ops.convert_to_numpy(spike_and_exponential_inverse_cdf(q, uniform, beta))
    assert zeta.min() >= 0.0 and zeta.max() <= 1.0
    # The spike holds 1 - q of the mass.
    standard_error = math.sqrt(probability * (1.0 - probability) / draws)
    assert abs(np.mean(zeta == 0.0) - (1.0 - probability)) < 4 * standard_error
    # Kolmogorov-Smirnov style: the empirical CDF of all draws against the analytic one.
    points = np.linspace(0.02, 0.98, 49)
    empirical = np.searchsorted(np.sort(zeta), points, side="right") / draws
    assert np.max(np.abs(empirical - spike_and_exponential_cdf(points, probability, beta))) < 0.006


def test_inverse_cdf_is_finite_and_monotone_at_extreme_probabilities():
    probabilities = np.array([0.0, 1e-7, 1e-6, 0.5, 1.0 - 1e-6, 1.0], dtype="float32")
    uniform = np.linspace(0.0, 1.0, 201, dtype="float32")[1:-1]
    # (probabilities, uniforms) grids, flattened for the call and reshaped back.
    q_grid, uniform_grid = np.meshgrid(probabilities, uniform, indexing="ij")
    for beta in (0.5, 20.0):
        zeta = spike_and_exponential_inverse_cdf(q_grid.ravel(), uniform_grid.ravel(), beta)
        zeta = ops.convert_to_numpy(zeta).reshape(q_grid.shape)
        assert np.all(np.isfinite(zeta)) and zeta.min() >= 0.0 and zeta.max() <= 1.0
        # Monotone in q and in ρ, up to float32 rounding of nearly equal values.
        assert np.all(np.diff(zeta, axis=0) >= -1e-6) and np.all(np.diff(zeta, axis=1) >= -1e-6)
        assert np.all(zeta[0] == 0.0) and np.all(zeta[-1] > 0.0)


class SmoothedLatents(keras.layers.Layer):
    """ζ of fixed uniforms as a function of trainable q, plus the RBM terms of the KL."""

    def __init__(self, probabilities: np.ndarray, beta: float, **kwargs):
        super().__init__(**kwargs)
        self.q = self.add_weight(shape=probabilities.shape, initializer="zeros")
        self.q.assign(probabilities)
        self.beta = beta
        bias1, bias2, coupling = random_rbm(3, 2, 1.0, seed=4)
        self.bias1 = self.add_weight(shape=(3,), initializer="zeros")
        self.bias2 = self.add_weight(shape=(2,), initializer="zeros")
        self.coupling = self.add_weight(shape=(3, 2), initializer="zeros")
        for weight, value in ((self.bias1, bias1), (self.bias2, bias2), (self.coupling, coupling)):
            weight.assign(value)
        self.seed_generator = keras.random.SeedGenerator(5)

    def call(self, uniform):
        # (1, k): one row of uniforms against the k probabilities.
        zeta = spike_and_exponential_inverse_cdf(ops.expand_dims(self.q, 0), uniform, self.beta)
        self.add_loss(ops.sum(zeta))
        # The RBM part of the KL as the layer will write it, on q-independent weights, to show
        # that everything traces in a compiled train step.
        parameters = (self.bias1, self.bias2, self.coupling)
        logits = ops.ones((4, 5))
        z1, z2 = ops.zeros((6, 3)), ops.zeros((6, 2))
        for _ in range(3):
            z1, z2 = gibbs_step(z1, z2, *parameters, seed=self.seed_generator)
        chains_energy = rbm_energy(ops.stop_gradient(z1), ops.stop_gradient(z2), *parameters)
        expected = expected_rbm_energy(
            ops.sigmoid(logits[:, :3]), ops.sigmoid(logits[:, 3:]), *parameters
        )
        self.add_loss(
            ops.mean(expected) - ops.mean(chains_energy) - ops.mean(bernoulli_entropy(logits))
        )
        return zeta


def test_gradient_with_respect_to_q_in_a_compiled_train_step():
    beta = 20.0
    probabilities = np.array(
        [0.0, 1e-6, 1e-6, 0.3, 0.3, 1.0 - 1e-6, 1.0 - 1e-6, 1.0], dtype="float32"
    )
    # Each probability once on the spike and once on the exponential branch; q = 0 only
    # has the spike and q = 1 only the exponential. A division by q = 0 in the unused branch
    # would make its gradient NaN.
    uniform = np.array([[0.5, 0.1, 0.9999995, 0.1, 0.9, 5e-7, 0.9, 0.5]], dtype="float32")
    layer = SmoothedLatents(probabilities, beta)
    model = keras.Sequential([keras.Input((8,)), layer])
    # With plain SGD at learning rate 1, one step moves each weight by minus its gradient.
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    model.train_on_batch(uniform)
    gradient = probabilities - ops.convert_to_numpy(layer.q)
    # dζ/dq = (1/β) (e^β - 1) / (1 + r (e^β - 1)) · (1 - ρ)/q² on the exponential branch.
    q, rho = probabilities.astype(np.float64), uniform[0].astype(np.float64)
    # q = 0 never takes the exponential branch; the floor only keeps numpy from warning.
    q = np.maximum(q, 1e-30)
    fraction = (rho - 1.0 + q) / q
    expected = np.expm1(beta) / (1.0 + fraction * np.expm1(beta)) * (1.0 - rho) / q**2 / beta
    expected = np.where(rho > 1.0 - q, expected, 0.0)
    assert np.all(np.isfinite(gradient))
    np.testing.assert_allclose(gradient, expected, rtol=1e-3, atol=1e-6)
    for weight in (layer.bias1, layer.bias2, layer.coupling):
        assert np.all(np.isfinite(ops.convert_to_numpy(weight)))


@pytest.mark.parametrize("q", [0.02, 0.3, 0.9])
def test_the_pathwise_gradient_has_the_mean_of_the_true_gradient(q):
    """E_ρ[∂f(ζ)/∂q] = ∂E[f(ζ)]/∂q = E_exp[f] - f(0): the mixture is linear in q.

    ρ runs over a fine even grid of (0, 1), so the mean is a quadrature of the expectation;
    the spike's edge moves with q, and only a ζ continuous there leaves no extra term.
    """
    from test_relaxations import gradients

    beta, count = 5.0, 200_000
    rho = ((np.arange(count) + 0.5) / count).astype("float32")

    def mean_square(probability):
        zeta = spike_and_exponential_inverse_cdf(
            probability * ops.ones_like(rho), ops.convert_to_tensor(rho), beta
        )
        return ops.mean(ops.square(zeta))

    (gradient,) = gradients(mean_square, np.array(q, "float32"))
    # E_exp[ζ²] for the density β e^(βζ) / (e^β - 1) on [0, 1], by a fine quadrature.
    grid = (np.arange(count) + 0.5) / count
    density = beta * np.exp(beta * grid) / math.expm1(beta)
    expected = float(np.mean(grid**2 * density))
    assert float(gradient) == pytest.approx(expected, rel=2e-3)


def test_gibbs_chains_reach_the_rbm_distribution():
    # A strongly coupled RBM whose mass is spread over many states: a sampler that updates z1
    # from the old z2 instead of the new one lands about 0.28 away in total variation.
    bias1, bias2, coupling = random_rbm(2, 3, 2.0, seed=4)
    chains = 20_000
    z1, z2 = np.zeros((chains, 2), "float32"), np.zeros((chains, 3), "float32")
    seed = keras.random.SeedGenerator(7)
    for _ in range(20):
        z1, z2 = gibbs_step(z1, z2, bias1, bias2, coupling, seed=seed)
    # Each joint state as an index, z1 the high bits, matching the brute-force order.
    bits = np.concatenate([ops.convert_to_numpy(z1), ops.convert_to_numpy(z2)], axis=1)
    indices = bits.astype(int) @ (2 ** np.arange(4, -1, -1))
    frequencies = np.bincount(indices, minlength=32) / chains
    exact = np.exp(brute_force_log_probabilities(bias1, bias2, coupling))
    # Sampling noise alone gives about 0.015 with this many chains.
    assert 0.5 * np.sum(np.abs(frequencies - exact)) < 0.04


def test_gibbs_step_with_an_int_seed_is_repeatable():
    # The same sizes as above, so that JAX reuses the operations it compiled there.
    bias1, bias2, coupling = random_rbm(2, 3, 2.0, seed=8)
    z1, z2 = np.ones((20_000, 2), "float32"), np.ones((20_000, 3), "float32")
    first = [ops.convert_to_numpy(z) for z in gibbs_step(z1, z2, bias1, bias2, coupling, seed=9)]
    second = [ops.convert_to_numpy(z) for z in gibbs_step(z1, z2, bias1, bias2, coupling, seed=9)]
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert set(np.unique(first[0])) == {0.0, 1.0} and set(np.unique(first[1])) == {0.0, 1.0}


@pytest.mark.parametrize(("first_units", "second_units"), [(3, 4), (4, 3)])
def test_exact_log_partition_matches_brute_force(first_units, second_units, monkeypatch):
    bias1, bias2, coupling = random_rbm(first_units, second_units, 1.0, seed=10)
    first, second = all_states(first_units), all_states(second_units)
    log_weights = rbm_log_probability_unnormalized(
        np.repeat(first, len(second), axis=0),
        np.tile(second, (len(first), 1)),
        bias1,
        bias2,
        coupling,
    )
    brute_force = math.log(np.sum(np.exp(log_weights)))
    assert exact_log_partition(bias1, bias2, coupling) == pytest.approx(brute_force, abs=1e-9)
    # Chunks of two states each must give the same sum as one chunk.
    monkeypatch.setattr(rbm, "ENUMERATION_VALUES_PER_CHUNK", 2 * (first_units + second_units))
    assert exact_log_partition(bias1, bias2, coupling) == pytest.approx(brute_force, abs=1e-9)


def test_exact_log_partition_refuses_large_halves():
    bias1, bias2, coupling = random_rbm(21, 22, 0.1, seed=11)
    with pytest.raises(ValueError, match="21 and 22 units"):
        exact_log_partition(bias1, bias2, coupling)


@pytest.mark.parametrize(("first_units", "second_units"), [(8, 8), (10, 6)])
def test_annealed_importance_sampling_is_close_to_exact(first_units, second_units):
    bias1, bias2, coupling = random_rbm(first_units, second_units, 1.0, seed=12)
    exact = exact_log_partition(bias1, bias2, coupling)
    estimate, standard_error = annealed_importance_sampling_log_partition(
        bias1, bias2, coupling, chains=100, steps=500, rng=np.random.default_rng(13)
    )
    assert abs(estimate - exact) < 0.1
    assert 0.0 < standard_error < 0.05


def test_annealed_importance_sampling_rejects_a_bad_schedule():
    with pytest.raises(ValueError, match="increase from 0 to 1"):
        annealed_importance_sampling_log_partition(
            *random_rbm(2, 2, 1.0, seed=14), betas=np.array([0.0, 0.7, 0.5, 1.0])
        )


def test_the_gibbs_chains_start_from_uniformly_random_states_in_both_halves():
    # With no sweep the chains are their starting states: both halves uniformly random (the
    # notebook's row of 0 sweeps decodes them as the factorial prior's codes).
    zeros = np.zeros(64)
    first, second = gibbs_sample_numpy(
        zeros[:32], zeros[:32], np.zeros((32, 32)), 200, 0, np.random.default_rng(0)
    )
    assert abs(first.mean() - 0.5) < 0.02 and abs(second.mean() - 0.5) < 0.02
