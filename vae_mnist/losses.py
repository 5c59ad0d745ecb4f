"""The two terms of the negative ELBO, as small pure functions written with `keras.ops`.

Both return one value per image, shape ``(batch,)``; the model averages them over the batch.
"""

from __future__ import annotations

from typing import Any

from keras import ops

# A backend tensor or a numpy array: keras.ops accepts both.
TensorLike = Any

# Keras clips probabilities by this epsilon inside its binary cross-entropy; the 2017 example
# used that function, so the same clip keeps the loss identical to it.
PROBABILITY_EPSILON = 1e-7


def reconstruction_loss(images: TensorLike, reconstructions: TensorLike) -> TensorLike:
    """Binary cross-entropy summed over pixels: ``-Σ_d [x_d log x̂_d + (1 - x_d) log(1 - x̂_d)]``.

    This equals the 2017 example's ``original_dim * binary_crossentropy(x, x̂)`` (784 times
    the mean over pixels). x̂ is clipped to ``[1e-7, 1 - 1e-7]`` as Keras does.

    Args:
        images: targets in [0, 1], shape ``(batch, 784)`` (grayscale, not binarized).
        reconstructions: decoder probabilities, shape ``(batch, 784)``.

    Returns:
        Shape ``(batch,)``: the summed cross-entropy per image, in nats.
    """
    # Numpy inputs are welcome; the targets take the reconstructions' float type.
    reconstructions = ops.convert_to_tensor(reconstructions)
    images = ops.cast(images, reconstructions.dtype)
    probabilities = ops.clip(reconstructions, PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    per_pixel = -(images * ops.log(probabilities) + (1.0 - images) * ops.log(1.0 - probabilities))
    return ops.sum(per_pixel, axis=-1)


def kl_divergence(z_mean: TensorLike, z_log_var: TensorLike) -> TensorLike:
    """KL(q(z|x) ‖ N(0, I)) of a diagonal Gaussian: ``-½ Σ_j (1 + log σ_j² - μ_j² - σ_j²)``.

    Args:
        z_mean: μ, shape ``(batch, latent_dim)``.
        z_log_var: log σ², shape ``(batch, latent_dim)``.

    Returns:
        Shape ``(batch,)``: the divergence per image summed over latent dimensions, in nats.
    """
    z_mean = ops.convert_to_tensor(z_mean)
    z_log_var = ops.cast(z_log_var, z_mean.dtype)
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)
