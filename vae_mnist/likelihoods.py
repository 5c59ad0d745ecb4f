"""Log-likelihoods of the decoder, as pure `keras.ops` functions of its parameters.

Each returns the *negative* log-likelihood per image, shape ``(batch,)``, summed over pixels,
in nats: the reconstruction term of the negative ELBO. The model averages it over the batch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from vae_mnist.backend import ops
from vae_mnist.latent import gaussian_log_density
from vae_mnist.settings import ConfigError, Part, register, setting

# A backend tensor or a numpy array: keras.ops accepts both.
TensorLike = Any

# Keras clips probabilities by this epsilon inside its binary cross-entropy; the 2017 example
# used that function, so the same clip keeps the loss identical to it.
PROBABILITY_EPSILON = 1e-7
# The Gaussian decoder's smallest standard deviation: one gray level of an 8-bit image. MNIST's
# border pixels are 0 in every training image, so an unbounded variance there shrinks towards
# zero, the training loss towards minus infinity, and the first test image with ink in such a
# pixel costs an infinite loss, which stops training.
GAUSSIAN_MINIMUM_STD = 1.0 / 255.0


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
    log_likelihood = images * ops.log(probabilities) + (1.0 - images) * ops.log(1.0 - probabilities)
    # Negating the sum, not every pixel, spares a pass over the pixels with the same result
    # (rounding is symmetric in sign).
    return -ops.sum(log_likelihood, axis=-1)


def floored_log_variance(raw_log_var: TensorLike, minimum_std: float) -> TensorLike:
    """``log σ² = m + softplus(v - m)`` with ``m = 2 log σ_min``: a smooth floor under log σ².

    Above the floor the value is v itself (softplus(t) → t), so the floor changes nothing where
    the variance is not tiny; below it the value approaches m, and σ never falls under σ_min.

    Args:
        raw_log_var: v, the decoder's unbounded log-variance head, any shape.
        minimum_std: σ_min > 0.

    Returns:
        log σ² with the shape of v (no reduction).
    """
    floor = 2.0 * math.log(minimum_std)
    raw_log_var = ops.convert_to_tensor(raw_log_var)
    return floor + ops.softplus(raw_log_var - floor)


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
    return -gaussian_log_density(images, mean, log_var)


# The parts: each names the decoder's heads and turns their outputs into the loss term.


class Likelihood(Part):
    """The base of the likelihood kinds: p(x|z) from the decoder's heads.

    ``heads``: ``{name: activation}`` of the decoder's heads, the first one the decoded image;
    ``negative_log_likelihood(images, decoded)``: ``(batch,)`` nats; ``mean(decoded)``: the
    decoded image; ``check_data(data)``: refuse targets it cannot model.
    """

    family: ClassVar[str] = "likelihood"
    required_attributes: ClassVar[tuple[str, ...]] = ("heads",)
    required_methods: ClassVar[tuple[str, ...]] = ("negative_log_likelihood",)
    heads: ClassVar[dict[str, str | None]]

    def check_data(self, data: Any) -> None:
        """Every kind of target is fine by default."""

    def mean(self, decoded: dict) -> TensorLike:
        return decoded[next(iter(self.heads))]


@register
@dataclasses.dataclass(frozen=True)
class BernoulliLikelihood(Likelihood):
    """p(x|z) = Π_d Bernoulli(x_d; p_d): one head of pixel probabilities (a sigmoid layer)."""

    kind: ClassVar[str] = "bernoulli"
    description: ClassVar[str] = "pixel probabilities; cross-entropy on grayscale or binary pixels"
    heads: ClassVar[dict[str, str | None]] = {"probabilities": "sigmoid"}

    def negative_log_likelihood(self, images: TensorLike, decoded: dict) -> TensorLike:
        """``(batch,)`` nats: `bernoulli_negative_log_likelihood` of the decoded probabilities."""
        return bernoulli_negative_log_likelihood(images, decoded["probabilities"])


@register
@dataclasses.dataclass(frozen=True)
class GaussianLikelihood(Likelihood):
    """p(x|z) = N(x; μ, diag σ²), Kingma & Welling's Appendix C.2 decoder.

    Two heads: the mean μ, squashed into (0, 1) by a sigmoid as the paper's Frey Face decoder
    did, and the log-variance, linear, held above ``2 log minimum_std`` by
    `floored_log_variance` (the paper has no floor; see `GAUSSIAN_MINIMUM_STD` for why one is
    needed on MNIST).
    """

    kind: ClassVar[str] = "gaussian"
    description: ClassVar[str] = "a mean and a variance per pixel (Kingma & Welling, C.2)"
    heads: ClassVar[dict[str, str | None]] = {"x_mean": "sigmoid", "x_log_var": None}

    minimum_std: float = setting(
        GAUSSIAN_MINIMUM_STD,
        "the smallest standard deviation of a pixel (one gray level)",
        positive=True,
    )

    def check_data(self, data: Any) -> None:
        if not data.grayscale_targets:
            raise ConfigError(
                f"a gaussian likelihood models grayscale pixels, but binarize is "
                f"{data.binarize!r}; use --likelihood bernoulli or --binarize none"
            )

    def log_variance(self, decoded: dict) -> TensorLike:
        """log σ² of every pixel, floored: ``(batch, pixels)``."""
        return floored_log_variance(decoded["x_log_var"], self.minimum_std)

    def negative_log_likelihood(self, images: TensorLike, decoded: dict) -> TensorLike:
        """``(batch,)`` nats: `gaussian_negative_log_likelihood` of μ and the floored log σ²."""
        return gaussian_negative_log_likelihood(
            images, decoded["x_mean"], self.log_variance(decoded)
        )
