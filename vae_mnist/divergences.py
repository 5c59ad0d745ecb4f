"""KL divergences of the approximate posterior from the prior, as pure `keras.ops` functions.

Each takes the posterior's parameters as the encoder gives them and returns one value per
image, shape ``(batch,)``, summed over latent dimensions (or variables), in nats. The model
averages them over the batch.
"""

from __future__ import annotations

import math
from typing import Any

from vae_mnist.backend import ops

# A backend tensor or a numpy array: keras.ops accepts both.
TensorLike = Any

LOG_TWO = math.log(2.0)


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


def categorical_kl_divergence(logits: TensorLike) -> TensorLike:
    """KL(Cat(π) ‖ uniform over K) = ``Σ_v Σ_k π_vk log π_vk + V log K``, π = softmax(logits).

    The divergence of each of the V categorical variables from the uniform prior over its K
    categories, summed over variables. It is computed as ``Σ_v Σ_k π_vk (log π_vk + log K)``,
    which is the same since each π_v sums to 1, with log π from log_softmax so that it stays
    finite when some π_vk underflow to zero.

    Args:
        logits: unnormalised log π, shape ``(batch, variables, categories)``.

    Returns:
        Shape ``(batch,)``: the divergence per image summed over variables, in nats.
    """
    logits = ops.convert_to_tensor(logits)
    log_probabilities = ops.log_softmax(logits, axis=-1)
    log_categories = math.log(logits.shape[-1])
    per_category = ops.exp(log_probabilities) * (log_probabilities + log_categories)
    return ops.sum(per_category, axis=(-2, -1))


def bernoulli_kl_divergence(logits: TensorLike) -> TensorLike:
    """KL(Bernoulli(p) ‖ Bernoulli(½)) = ``Σ_u [p_u log p_u + (1 - p_u) log(1 - p_u) + log 2]``.

    p = sigmoid(l), summed over units. Since ``log p = l - softplus(l)`` and
    ``log(1 - p) = -softplus(l)``, the bracket is ``p l - softplus(l) + log 2``, which is how it
    is computed: finite for any logits, with no log of a probability that rounded to 0 or 1.

    Args:
        logits: log-odds l, shape ``(batch, units)``.

    Returns:
        Shape ``(batch,)``: the divergence per image summed over units, in nats.
    """
    logits = ops.convert_to_tensor(logits)
    per_unit = ops.sigmoid(logits) * logits - ops.softplus(logits) + LOG_TWO
    return ops.sum(per_unit, axis=-1)
