"""Log-likelihoods of the decoder, as pure `keras.ops` functions of its parameters.

Each returns the *negative* log-likelihood per image, shape ``(batch,)``, summed over pixels,
in nats: the reconstruction term of the negative ELBO. The model averages it over the batch.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

# A backend tensor or a numpy array: keras.ops accepts both.
TensorLike = Any

# Keras clips probabilities by this epsilon inside its binary cross-entropy; the 2017 example
# used that function, so the same clip keeps the loss identical to it.
PROBABILITY_EPSILON = 1e-7
LOG_TWO_PI = math.log(2.0 * math.pi)


def bernoulli_negative_log_likelihood(images: TensorLike, probabilities: TensorLike) -> TensorLike:
    """Binary cross-entropy summed over pixels: ``-Σ_d [x_d log p_d + (1 - x_d) log(1 - p_d)]``.

    On binary targets this is ``-log Bernoulli(x; p)``; on grayscale targets in [0, 1] it is the
    2017 example's ``original_dim * binary_crossentropy(x, x̂)`` (784 times the mean over
    pixels). p is clipped to ``[1e-7, 1 - 1e-7]`` as Keras does.

    Args:
        images: targets in [0, 1], shape ``(batch, pixels)``.
        probabilities: the decoder's pixel probabilities p, shape ``(batch, pixels)``.

    Returns:
        Shape ``(batch,)``: the summed cross-entropy per image, in nats.
    """
    # Numpy inputs are welcome; the targets take the probabilities' float type.
    probabilities = ops.convert_to_tensor(probabilities)
    images = ops.cast(images, probabilities.dtype)
    probabilities = ops.clip(probabilities, PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    per_pixel = -(images * ops.log(probabilities) + (1.0 - images) * ops.log(1.0 - probabilities))
    return ops.sum(per_pixel, axis=-1)


def gaussian_negative_log_likelihood(
    images: TensorLike, mean: TensorLike, log_var: TensorLike
) -> TensorLike:
    """``-log N(x; μ, diag σ²) = ½ Σ_d [log 2π + log σ_d² + (x_d - μ_d)² / σ_d²]``.

    Kingma & Welling's Appendix C.2 decoder: a mean and a log-variance per pixel.

    Args:
        images: targets, shape ``(batch, pixels)``.
        mean: μ, shape ``(batch, pixels)``.
        log_var: log σ², shape ``(batch, pixels)``.

    Returns:
        Shape ``(batch,)``: the negative log-density per image summed over pixels, in nats
        (a density, so it can be negative).
    """
    mean = ops.convert_to_tensor(mean)
    images = ops.cast(images, mean.dtype)
    log_var = ops.cast(log_var, mean.dtype)
    per_pixel = LOG_TWO_PI + log_var + ops.square(images - mean) * ops.exp(-log_var)
    return 0.5 * ops.sum(per_pixel, axis=-1)


# The parts: each names the decoder's heads and turns their outputs into the loss term.

SERIALIZATION_PACKAGE = "vae_mnist"


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class BernoulliLikelihood(keras.layers.Layer):
    """p(x|z) = Π_d Bernoulli(x_d; p_d): one head of pixel probabilities (a sigmoid layer)."""

    heads = {"probabilities": "sigmoid"}

    def negative_log_likelihood(self, images: TensorLike, decoded: dict) -> TensorLike:
        """``(batch,)`` nats: `bernoulli_negative_log_likelihood` of the decoded probabilities."""
        return bernoulli_negative_log_likelihood(images, decoded["probabilities"])

    def mean(self, decoded: dict) -> TensorLike:
        """The decoded image: the pixel probabilities."""
        return decoded["probabilities"]


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class GaussianLikelihood(keras.layers.Layer):
    """p(x|z) = N(x; μ, diag σ²), Kingma & Welling's Appendix C.2 decoder.

    Two heads: the mean μ, squashed into (0, 1) by a sigmoid as the paper's Frey Face decoder
    did, and the log-variance log σ², linear.
    """

    heads = {"x_mean": "sigmoid", "x_log_var": None}

    def negative_log_likelihood(self, images: TensorLike, decoded: dict) -> TensorLike:
        """``(batch,)`` nats: `gaussian_negative_log_likelihood` of the decoded μ and log σ²."""
        return gaussian_negative_log_likelihood(images, decoded["x_mean"], decoded["x_log_var"])

    def mean(self, decoded: dict) -> TensorLike:
        """The decoded image: the mean μ."""
        return decoded["x_mean"]


LIKELIHOOD_PARTS = {"bernoulli": BernoulliLikelihood, "gaussian": GaussianLikelihood}


def make_likelihood(name: str) -> keras.layers.Layer:
    """The likelihood part called `name` (``bernoulli`` or ``gaussian``)."""
    if name not in LIKELIHOOD_PARTS:
        raise ValueError(f"unknown likelihood {name!r} (choose from {', '.join(LIKELIHOOD_PARTS)})")
    return LIKELIHOOD_PARTS[name](name=f"{name}_likelihood")
