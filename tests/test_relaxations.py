"""The discrete latents' samplers, log-probabilities and temperature schedule, on every backend."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import layers, ops

from vae_mnist import relaxations
from vae_mnist.relaxations import (
    annealed_temperature,
    bernoulli_log_probability,
    bernoulli_sample,
    binary_concrete_sample,
    categorical_log_probability,
    categorical_sample,
    gumbel_softmax_sample,
)

# Class probabilities of three categorical variables over four categories, and Bernoulli
# probabilities of twelve units, chosen to be unequal so that a wrong sampler shows. The units
# are laid out 3 × 4 (the binary Concrete is elementwise) so that every sampler draws noise of
# the same few shapes: on JAX each new shape compiles the random generator afresh, which costs
# about a second, and the tests stay fast by sharing shapes.
CATEGORY_PROBABILITIES = np.array(
    [[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]], dtype="float32"
)
UNIT_PROBABILITIES = np.array(
    [[0.1, 0.5, 0.8, 0.3], [0.9, 0.02, 0.6, 0.45], [0.5, 0.5, 0.5, 0.5]], dtype="float32"
)
DRAWS = 20_000


def category_logits(draws: int = DRAWS) -> np.ndarray:
    """Logits of shape (draws, variables, categories), one copy of the logits per draw.

    A constant is added, as logits are unnormalised: the samplers must not assume otherwise.
    """
    logits = np.log(CATEGORY_PROBABILITIES) + 3.0
    return np.tile(logits[None], (draws, 1, 1))


def unit_logits(draws: int = DRAWS) -> np.ndarray:
    """Log-odds of shape (draws, 3, 4), one copy per draw."""
    logits = np.log(UNIT_PROBABILITIES) - np.log1p(-UNIT_PROBABILITIES)
    return np.tile(logits[None], (draws, 1, 1))


def assert_frequencies(observed: np.ndarray, expected: np.ndarray, draws: int) -> None:
    """Frequencies within 5 standard errors of their probabilities (each entry on its own)."""
    standard_error = np.sqrt(expected * (1.0 - expected) / draws)
    np.testing.assert_array_less(np.abs(observed - expected), 5.0 * standard_error + 1e-12)


def gradients(function, *values: np.ndarray) -> list[np.ndarray]:
    """The gradients of the scalar ``function(*inputs)`` at ``inputs = values``, one per input.

    Keras 3 has no backend-neutral gradient, so this is the one place the tests name a backend.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        variables = [tf.Variable(value) for value in values]
        with tf.GradientTape() as tape:
            output = function(*variables)
        return [gradient.numpy() for gradient in tape.gradient(output, variables)]
    if backend == "jax":
        import jax

        arguments = tuple(range(len(values)))
        return [np.asarray(gradient) for gradient in jax.grad(function, arguments)(*values)]
    if backend == "torch":
        import torch

        variables = [torch.tensor(value, requires_grad=True) for value in values]
        function(*variables).backward()
        return [variable.grad.numpy() for variable in variables]
    pytest.skip(f"no gradient helper for the {backend} backend")


# Relaxed samples.


def test_gumbel_softmax_lies_on_the_simplex():
    sample = ops.convert_to_numpy(gumbel_softmax_sample(category_logits(), 0.5, seed=1))
    assert sample.shape == (DRAWS, 3, 4)
    assert sample.dtype == np.float32
    assert np.all(sample >= 0.0)
    np.testing.assert_allclose(sample.sum(axis=-1), 1.0, atol=1e-5)
    # At τ = 0.5 most samples are clearly inside the simplex, not at its corners.
    assert np.mean(sample.max(axis=-1) < 0.9) > 0.2


def test_gumbel_softmax_becomes_one_hot_as_the_temperature_falls():
    logits = category_logits()
    warm = ops.convert_to_numpy(gumbel_softmax_sample(logits, 1.0, seed=2)).max(axis=-1)
    cold = ops.convert_to_numpy(gumbel_softmax_sample(logits, 0.01, seed=2)).max(axis=-1)
    assert np.all(np.isfinite(cold))
    assert np.mean(cold >= 0.99) > 0.95
    assert np.mean(warm >= 0.99) < 0.2


def test_gumbel_softmax_argmax_follows_the_softmax_of_the_logits():
    sample = ops.convert_to_numpy(gumbel_softmax_sample(category_logits(), 1.0, seed=3))
    # (draws, variables, categories) -> frequency of each category being the argmax.
    counts = np.stack([np.bincount(row, minlength=4) for row in sample.argmax(axis=-1).T])
    assert_frequencies(counts / DRAWS, CATEGORY_PROBABILITIES, DRAWS)


def test_binary_concrete_exceeds_a_half_with_the_sigmoid_of_the_logit():
    sample = ops.convert_to_numpy(binary_concrete_sample(unit_logits(), 0.7, seed=4))
    assert sample.shape == (DRAWS, 3, 4)
    # In (0, 1) in exact arithmetic; float32 sigmoid rounds to 0 or 1 far out in the tails.
    assert np.all((sample >= 0.0) & (sample <= 1.0))
    assert_frequencies(np.mean(sample > 0.5, axis=0), UNIT_PROBABILITIES, DRAWS)
    # A low temperature pushes the relaxed bits to 0 or 1.
    cold = ops.convert_to_numpy(binary_concrete_sample(unit_logits(), 0.01, seed=4))
    assert np.mean((cold < 0.01) | (cold > 0.99)) > 0.95


def test_the_temperature_may_be_a_tensor_or_a_variable():
    logits = category_logits()
    expected = ops.convert_to_numpy(gumbel_softmax_sample(logits, 0.3, seed=5))
    for temperature in (ops.convert_to_tensor(0.3), keras.Variable(0.3, trainable=False)):
        sample = gumbel_softmax_sample(logits, temperature, seed=5)
        np.testing.assert_allclose(ops.convert_to_numpy(sample), expected, rtol=1e-6)
    bits = binary_concrete_sample(unit_logits(), keras.Variable(0.3), seed=5)
    expected_bits = binary_concrete_sample(unit_logits(), 0.3, seed=5)
    np.testing.assert_allclose(ops.convert_to_numpy(bits), ops.convert_to_numpy(expected_bits))


# Straight-through samples.


@pytest.mark.parametrize("temperature", [0.1, 1.0, 5.0])
def test_straight_through_gumbel_softmax_is_exactly_one_hot(temperature):
    logits = category_logits()
    hard = ops.convert_to_numpy(
        gumbel_softmax_sample(logits, temperature, seed=6, straight_through=True)
    )
    soft = ops.convert_to_numpy(gumbel_softmax_sample(logits, temperature, seed=6))
    assert set(np.unique(hard)) == {0.0, 1.0}
    np.testing.assert_array_equal(hard.sum(axis=-1), 1.0)
    # The one is where the relaxed sample under the same noise is largest.
    np.testing.assert_array_equal(hard.argmax(axis=-1), soft.argmax(axis=-1))


def test_straight_through_binary_concrete_is_exactly_zero_or_one():
    logits = unit_logits()
    hard = ops.convert_to_numpy(binary_concrete_sample(logits, 2.0, seed=7, straight_through=True))
    soft = ops.convert_to_numpy(binary_concrete_sample(logits, 2.0, seed=7))
    assert set(np.unique(hard)) == {0.0, 1.0}
    np.testing.assert_array_equal(hard, (soft > 0.5).astype("float32"))


def test_straight_through_forward_values_are_the_exact_samples():
    # Same int seed, same shape: the same noise, so the same discrete draw.
    categories = category_logits()
    np.testing.assert_array_equal(
        ops.convert_to_numpy(gumbel_softmax_sample(categories, 0.5, 8, straight_through=True)),
        ops.convert_to_numpy(categorical_sample(categories, 8)),
    )
    units = unit_logits()
    np.testing.assert_array_equal(
        ops.convert_to_numpy(binary_concrete_sample(units, 0.5, 8, straight_through=True)),
        ops.convert_to_numpy(bernoulli_sample(units, 8)),
    )


@pytest.mark.parametrize(
    ("sampler", "make_logits"),
    [(gumbel_softmax_sample, category_logits), (binary_concrete_sample, unit_logits)],
    ids=["gumbel_softmax", "binary_concrete"],
)
def test_straight_through_gradient_is_the_relaxed_gradient(sampler, make_logits):
    logits = make_logits()
    # Unequal weights per category make the gradient depend on which entries the sample moves.
    weights = np.array([[1.0, -2.0, 0.5, 3.0], [-1.0, 0.0, 2.0, 1.5], [0.3, -0.7, 1.1, -2.5]])
    weights = weights.astype("float32")

    def loss(straight_logits, relaxed_logits):
        # The same int seed gives both samplers the same noise, so only the estimator differs.
        straight = sampler(straight_logits, 0.5, seed=9, straight_through=True)
        relaxed = sampler(relaxed_logits, 0.5, seed=9)
        return ops.sum(ops.multiply(straight, weights)) + ops.sum(ops.multiply(relaxed, weights))

    straight_gradient, relaxed_gradient = gradients(loss, logits, logits)
    assert np.all(np.isfinite(relaxed_gradient))
    assert np.max(np.abs(relaxed_gradient)) > 1e-3
    np.testing.assert_allclose(straight_gradient, relaxed_gradient, rtol=1e-5, atol=1e-7)


# Exact samples.


def test_categorical_sample_is_one_hot_with_each_images_softmax_frequencies():
    # Two images with different probabilities, the second's categories reversed: each image's
    # samples must follow its own logits, so the samples axis must sit after the batch axis.
    probabilities = np.stack([CATEGORY_PROBABILITIES, CATEGORY_PROBABILITIES[:, ::-1]])
    logits = np.log(probabilities) - 1.0
    sample = ops.convert_to_numpy(categorical_sample(logits, seed=10, samples=DRAWS))
    assert sample.shape == (2, DRAWS, 3, 4)
    assert set(np.unique(sample)) == {0.0, 1.0}
    np.testing.assert_array_equal(sample.sum(axis=-1), 1.0)
    assert_frequencies(sample.mean(axis=1), probabilities, DRAWS)


def test_bernoulli_sample_is_binary_with_each_images_sigmoid_frequencies():
    probabilities = np.stack([UNIT_PROBABILITIES, 1.0 - UNIT_PROBABILITIES])
    logits = np.log(probabilities) - np.log1p(-probabilities)
    sample = ops.convert_to_numpy(bernoulli_sample(logits, seed=11, samples=DRAWS))
    assert sample.shape == (2, DRAWS, 3, 4)
    assert set(np.unique(sample)) == {0.0, 1.0}
    assert_frequencies(sample.mean(axis=1), probabilities, DRAWS)


@pytest.mark.parametrize("samples", [0, -1, 2.0, True])
def test_a_bad_number_of_samples_is_refused(samples):
    with pytest.raises(ValueError, match="samples must be a positive int"):
        categorical_sample(category_logits(1), seed=0, samples=samples)


# Seeds.


@pytest.mark.parametrize(
    "draw",
    [
        lambda seed: gumbel_softmax_sample(category_logits(), 1.0, seed),
        lambda seed: binary_concrete_sample(unit_logits(), 1.0, seed),
        lambda seed: categorical_sample(category_logits(), seed),
        lambda seed: bernoulli_sample(unit_logits(2), seed, samples=DRAWS),
    ],
    ids=["gumbel_softmax", "binary_concrete", "categorical", "bernoulli"],
)
def test_samples_repeat_under_a_seed_and_differ_under_another(draw):
    first, again, other = (ops.convert_to_numpy(draw(seed)) for seed in (13, 13, 14))
    np.testing.assert_array_equal(first, again)
    assert np.any(first != other)
    # A seed generator advances: its second draw differs, and a new one with the same seed
    # repeats the first.
    generator = keras.random.SeedGenerator(15)
    generator_first, generator_second = (ops.convert_to_numpy(draw(generator)) for _ in "12")
    repeated = ops.convert_to_numpy(draw(keras.random.SeedGenerator(15)))
    assert np.any(generator_first != generator_second)
    np.testing.assert_array_equal(generator_first, repeated)


class _RelaxedLayer(layers.Layer):
    """A minimal layer of the kind the latent layers will be: a seed generator and a τ variable."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(16)
        self.temperature = keras.Variable(0.5, trainable=False, name="temperature")

    def call(self, logits):
        relaxed = gumbel_softmax_sample(
            logits, self.temperature, self.seed_generator, straight_through=True
        )
        return relaxed, categorical_log_probability(relaxed, logits)


def test_the_samplers_run_inside_a_compiled_model():
    # predict() traces the call (tf.function on TensorFlow, jax.jit on JAX), with the seed
    # generator's state threaded through: a sampler that broke tracing would fail here.
    inputs = keras.Input(shape=(3, 4))
    model = keras.Model(inputs, _RelaxedLayer()(inputs))
    logits = category_logits(8)
    one_hot, log_probability = model.predict(logits, batch_size=4, verbose=0)
    assert one_hot.shape == (8, 3, 4)
    np.testing.assert_array_equal(one_hot.sum(axis=-1), 1.0)
    expected = np.sum(one_hot * np.log(CATEGORY_PROBABILITIES), axis=(-2, -1))
    np.testing.assert_allclose(log_probability, expected, rtol=1e-5)
    # The two batches of four drew different noise.
    assert np.any(one_hot[:4] != one_hot[4:])


# Log-probabilities.


def test_categorical_log_probability_against_numpy():
    rng = np.random.default_rng(17)
    logits = rng.normal(size=(2, 3, 5)).astype("float32")
    one_hot = np.eye(5, dtype="float32")[rng.integers(0, 5, size=(2, 3))]
    log_softmax = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    expected = np.sum(one_hot * log_softmax, axis=(1, 2))
    result = ops.convert_to_numpy(categorical_log_probability(one_hot, logits))
    assert result.shape == (2,)
    np.testing.assert_allclose(result, expected, rtol=1e-5)


def test_categorical_log_probability_by_hand_with_a_samples_axis():
    # One image, two variables over two categories: π = (¼, ¾) and (½, ½).
    logits = np.log(np.array([[[0.25, 0.75], [0.5, 0.5]]], dtype="float32"))
    # Two samples: categories (0, 1) and (1, 1); shape (batch 1, samples 2, variables 2, 2).
    one_hot = np.array([[[[1, 0], [0, 1]], [[0, 1], [0, 1]]]], dtype="float32")
    result = ops.convert_to_numpy(categorical_log_probability(one_hot, logits[:, None]))
    assert result.shape == (1, 2)
    expected = [[math.log(0.25) + math.log(0.5), math.log(0.75) + math.log(0.5)]]
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_bernoulli_log_probability_against_numpy_and_for_extreme_logits():
    logits = np.array([[-2.0, 0.0, 3.0], [1.5, -0.5, 0.25]], dtype="float32")
    bits = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype="float32")
    probabilities = 1.0 / (1.0 + np.exp(-logits.astype("float64")))
    expected = np.sum(
        bits * np.log(probabilities) + (1.0 - bits) * np.log(1.0 - probabilities), axis=-1
    )
    result = ops.convert_to_numpy(bernoulli_log_probability(bits, logits))
    assert result.shape == (2,)
    np.testing.assert_allclose(result, expected, rtol=1e-5)
    # Where sigmoid rounds to 1, log(1 - p) of a naive formula would be -inf; here it is -l.
    extreme = ops.convert_to_numpy(bernoulli_log_probability([[0.0, 1.0]], [[200.0, -200.0]]))
    np.testing.assert_allclose(extreme, [-400.0], rtol=1e-6)


# The temperature schedule.


def test_the_default_rate_halves_the_temperature_in_thirty_thousand_steps():
    assert 1e-5 < relaxations.DEFAULT_TEMPERATURE_RATE < 1e-4
    assert annealed_temperature(0) == pytest.approx(1.0)
    assert annealed_temperature(15_000) == pytest.approx(math.sqrt(0.5))
    assert annealed_temperature(30_000) == pytest.approx(0.5)
    assert annealed_temperature(29_000) > 0.5


def test_annealed_temperature_by_hand_and_never_below_the_minimum():
    # 2 · exp(-0.001 · 1000) = 2 / e.
    assert annealed_temperature(1000, 2.0, 0.1, 1e-3) == pytest.approx(2.0 / math.e)
    assert annealed_temperature(10**6, 2.0, 0.1, 1e-3) == 0.1
    steps = np.arange(0, 200_000, 5_000)
    values = [annealed_temperature(int(step)) for step in steps]
    assert min(values) == relaxations.DEFAULT_MINIMUM_TEMPERATURE
    assert all(earlier >= later for earlier, later in zip(values, values[1:], strict=False))


def test_annealed_temperature_on_tensors():
    # An integer step counter, as an optimizer keeps one.
    steps = ops.convert_to_tensor(np.array([0, 1000, 10**6], dtype="int32"))
    result = ops.convert_to_numpy(annealed_temperature(steps, 2.0, 0.1, 1e-3))
    np.testing.assert_allclose(result, [2.0, 2.0 / math.e, 0.1], rtol=1e-6)
    # An integer variable, as optimizer.iterations is (int32, which every backend has).
    step = keras.Variable(30_000, dtype="int32", trainable=False)
    assert float(ops.convert_to_numpy(annealed_temperature(step))) == pytest.approx(0.5, rel=1e-6)


# -- the relaxed densities --------------------------------------------------------------------


def test_binary_concrete_density_integrates_to_one_and_matches_its_samples():
    from vae_mnist.relaxations import binary_concrete_log_density, binary_concrete_logit_sample

    grid = np.linspace(-80.0, 80.0, 400_001)
    # One unit: the density of its logit, one grid point per row, integrates to one.
    density = np.exp(np.asarray(binary_concrete_log_density(grid[:, None], np.array([[0.7]]), 0.5)))
    assert density.shape == (len(grid),)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-6)
    samples = np.asarray(
        binary_concrete_logit_sample(np.full((200_000, 1), 0.7, np.float32), 0.5, seed=3)
    )
    # The logit L = (α + logistic noise) / τ has mean α / τ.
    assert samples.mean() == pytest.approx(0.7 / 0.5, abs=0.03)


def test_relaxed_densities_are_normalised_against_each_other():
    """E_q[p(v) / q(v)] = 1 for two normalised densities on the same space."""
    from vae_mnist.relaxations import (
        binary_concrete_log_density,
        binary_concrete_logit_sample,
        exp_concrete_log_density,
        exp_concrete_sample,
    )

    count = 400_000
    logits = np.tile(np.array([[1.2, -0.4, 0.3]], np.float32), (count, 1))
    v = exp_concrete_sample(logits, 0.7, seed=5)
    # (count, K) -> (count, 1, K): one variable per row.
    log_q = exp_concrete_log_density(v[:, None, :], logits[:, None, :], 0.7)
    log_p = exp_concrete_log_density(v[:, None, :], np.zeros_like(logits)[:, None, :], 0.7)
    assert float(np.mean(np.exp(np.asarray(log_p - log_q)))) == pytest.approx(1.0, abs=0.02)
    bits = np.tile(np.array([[0.9, -2.0]], np.float32), (count, 1))
    v = binary_concrete_logit_sample(bits, 0.6, seed=6)
    log_q = binary_concrete_log_density(v, bits, 0.6)
    log_p = binary_concrete_log_density(v, np.zeros_like(bits), 0.6)
    assert float(np.mean(np.exp(np.asarray(log_p - log_q)))) == pytest.approx(1.0, abs=0.02)
