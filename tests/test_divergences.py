"""The KL divergences against values worked out by hand, on every backend."""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from vae_mnist.divergences import (
    bernoulli_kl_divergence,
    categorical_kl_divergence,
    gaussian_kl_divergence,
)


def test_gaussian_kl_divergence_by_hand():
    # Image 1: μ = (1, 0), σ² = (1, 2): -½[(1 + 0 - 1 - 1) + (1 + log 2 - 0 - 2)] = 1 - ½ log 2.
    # Image 2: the prior itself, so zero.
    z_mean = np.array([[1.0, 0.0], [0.0, 0.0]], dtype="float32")
    z_log_var = np.array([[0.0, math.log(2.0)], [0.0, 0.0]], dtype="float32")
    result = ops.convert_to_numpy(gaussian_kl_divergence(z_mean, z_log_var))
    assert result.shape == (2,)
    np.testing.assert_allclose(result, [1.0 - 0.5 * math.log(2.0), 0.0], rtol=1e-6, atol=1e-7)


def test_categorical_kl_divergence_by_hand():
    # Image 1: two variables over three categories, π = (½, ¼, ¼) and (1, 0, 0) in the limit
    # (logits 0 and -100 underflow π to 0, which must give 0 · log 0 = 0, not NaN).
    # KL = [½ log ½ + 2 · ¼ log ¼ + log 3] + [log 3] = -(3/2) log 2 + 2 log 3.
    # Image 2: uniform logits, offset by a constant, give zero.
    logits = np.array(
        [
            [[math.log(0.5), math.log(0.25), math.log(0.25)], [0.0, -100.0, -100.0]],
            [[5.0, 5.0, 5.0], [-2.0, -2.0, -2.0]],
        ],
        dtype="float32",
    )
    result = ops.convert_to_numpy(categorical_kl_divergence(logits))
    assert result.shape == (2,)
    expected = -1.5 * math.log(2.0) + 2.0 * math.log(3.0)
    np.testing.assert_allclose(result, [expected, 0.0], rtol=1e-6, atol=1e-6)


def test_categorical_kl_divergence_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(4, 5, 10)).astype("float32")
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    expected = np.sum(probabilities * np.log(probabilities), axis=(1, 2)) + 5 * math.log(10)
    result = ops.convert_to_numpy(categorical_kl_divergence(logits))
    np.testing.assert_allclose(result, expected, rtol=1e-5)
    assert np.all(result > 0.0)


def test_bernoulli_kl_divergence_by_hand():
    # Image 1: p = ¾ (logit log 3) and p = ½: [¾ log ¾ + ¼ log ¼ + log 2] + 0.
    # Image 2: logits ±100, p rounds to 1 and 0: each unit contributes log 2, with no NaN.
    logits = np.array([[math.log(3.0), 0.0], [100.0, -100.0]], dtype="float32")
    result = ops.convert_to_numpy(bernoulli_kl_divergence(logits))
    assert result.shape == (2,)
    expected = 0.75 * math.log(0.75) + 0.25 * math.log(0.25) + math.log(2.0)
    np.testing.assert_allclose(result, [expected, 2.0 * math.log(2.0)], rtol=1e-6)


def test_bernoulli_kl_divergence_is_zero_at_zero_logits_and_sums_over_units():
    # Image 1: one unit at logit -1.3 and one at 0, which contributes nothing.
    # Image 2: two units at logit -1.3, so twice image 1.
    logits = np.array([[-1.3, 0.0], [-1.3, -1.3]], dtype="float32")
    result = ops.convert_to_numpy(bernoulli_kl_divergence(logits))
    probability = 1.0 / (1.0 + math.exp(1.3))
    single = (
        probability * math.log(probability)
        + (1.0 - probability) * math.log(1.0 - probability)
        + math.log(2.0)
    )
    np.testing.assert_allclose(result, [single, 2.0 * single], rtol=1e-5)
    zeros = ops.convert_to_numpy(bernoulli_kl_divergence(np.zeros((2, 2), dtype="float32")))
    np.testing.assert_allclose(zeros, 0.0, atol=1e-6)
