"""KL divergences of the approximate posterior from the prior, as pure `keras.ops` functions.

Each takes the posterior's parameters as the encoder gives them and returns one value per
image, shape ``(batch,)``, summed over latent dimensions (or variables), in nats. The model
averages them over the batch.
"""

from __future__ import annotations

from typing import Any

from keras import ops

# A backend tensor or a numpy array: keras.ops accepts both.
TensorLike = Any


def gaussian_kl_divergence(z_mean: TensorLike, z_log_var: TensorLike) -> TensorLike:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ``-½ Σ_j (1 + log σ_j² - μ_j² - σ_j²)``.

    Args:
        z_mean: μ, shape ``(batch, latent_dim)``.
        z_log_var: log σ², shape ``(batch, latent_dim)``.

    Returns:
        Shape ``(batch,)``: the divergence per image summed over latent dimensions, in nats.
    """
    z_mean = ops.convert_to_tensor(z_mean)
    z_log_var = ops.cast(z_log_var, z_mean.dtype)
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)
