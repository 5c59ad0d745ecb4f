"""Numbers to compare with papers: the ELBO, the IWAE estimate of log p(x), latent quality.

All results are per test image, in nats. Every random draw comes from a seeded numpy
generator, so repeated evaluations of the same run give the same numbers.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from vae_mnist.files import atomic_write_text
from vae_mnist.losses import kl_divergence, reconstruction_loss

LOG_TWO_PI = math.log(2.0 * math.pi)
# Burda et al. (2015) call a latent dimension active when the variance of its posterior mean
# across the data exceeds this.
ACTIVE_UNIT_THRESHOLD = 1e-2
# Decoded pixels held in memory at once by the importance-weighted estimate (about 300 MB).
DECODED_VALUES_PER_CHUNK = 80_000_000


def _numpy(tensor) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(tensor))


def gaussian_log_density(z: np.ndarray, mean: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """log N(z; mean, diag(exp(log_var))), summed over the last axis."""
    return -0.5 * np.sum(LOG_TWO_PI + log_var + (z - mean) ** 2 / np.exp(log_var), axis=-1)


def log_mean_exp(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log(mean(exp(values)))`` along `axis`, stable for values of any size."""
    largest = np.max(values, axis=axis, keepdims=True)
    shifted = np.log(np.mean(np.exp(values - largest), axis=axis))
    return shifted + np.squeeze(largest, axis=axis)


def log_likelihoods(decoder: keras.Model, images: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log p(x | z) = -(summed binary cross-entropy), the training loss's own likelihood.

    Args:
        decoder: z -> x̂.
        images: ``(batch, 784)``.
        z: ``(batch, samples, latent_dim)``.

    Returns:
        ``(batch, samples)``.
    """
    batch, samples, latent_dim = z.shape
    decoded = decoder(z.reshape(batch * samples, latent_dim), training=False)
    # (batch*samples, 784) -> (batch, samples, 784), to broadcast against (batch, 1, 784)
    decoded = ops.reshape(decoded, (batch, samples, -1))
    return -_numpy(reconstruction_loss(ops.convert_to_tensor(images[:, None, :]), decoded))


def importance_weighted_log_likelihood(
    encoder: keras.Model,
    decoder: keras.Model,
    images: np.ndarray,
    samples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The IWAE estimate of log p(x) per image (Burda et al. 2015), in nats.

    ``log p(x) ≈ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x)`` with ``z_k ~ q(z|x)``. It is a lower
    bound in expectation that rises with K towards log p(x); with K = 1 it is the single-sample
    ELBO. The K terms are combined with a stable log-mean-exp.

    Args:
        encoder: x -> [z_mean, z_log_var].
        decoder: z -> x̂.
        images: ``(n, 784)`` in [0, 1].
        samples: K.
        rng: the source of the noise.

    Returns:
        ``(n,)``.
    """
    z_mean_all, z_log_var_all = (_numpy(output) for output in encoder(images, training=False))
    chunk = max(1, DECODED_VALUES_PER_CHUNK // (samples * images.shape[1]))
    estimates = []
    for start in range(0, len(images), chunk):
        stop = min(start + chunk, len(images))
        z_mean = z_mean_all[start:stop, None, :]  # (chunk, 1, latent_dim)
        z_log_var = z_log_var_all[start:stop, None, :]
        noise = rng.standard_normal((stop - start, samples, z_mean.shape[-1]))
        z = (z_mean + np.exp(0.5 * z_log_var) * noise).astype(np.float32)
        log_weights = (
            log_likelihoods(decoder, images[start:stop], z)
            + gaussian_log_density(z, 0.0, np.zeros_like(z))
            - gaussian_log_density(z, z_mean, z_log_var)
        )
        estimates.append(log_mean_exp(log_weights.astype(np.float64), axis=1))
    return np.concatenate(estimates)


def negative_elbo_terms(
    encoder: keras.Model,
    decoder: keras.Model,
    images: np.ndarray,
    rng: np.random.Generator,
    batch_size: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image reconstruction and KL terms, computed exactly as the training loss does.

    One sampled z per image for the reconstruction, the closed-form KL.

    Returns:
        ``(reconstruction, kl)``, each ``(n,)``.
    """
    reconstructions, kls = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        z_mean, z_log_var = (_numpy(output) for output in encoder(batch, training=False))
        noise = rng.standard_normal(z_mean.shape).astype(np.float32)
        z = z_mean + np.exp(0.5 * z_log_var) * noise
        decoded = decoder(z, training=False)
        reconstructions.append(_numpy(reconstruction_loss(ops.convert_to_tensor(batch), decoded)))
        kls.append(_numpy(kl_divergence(z_mean, z_log_var)))
    return np.concatenate(reconstructions), np.concatenate(kls)


def knn_accuracy(
    train_points: np.ndarray,
    train_labels: np.ndarray,
    test_points: np.ndarray,
    test_labels: np.ndarray,
    neighbours: int = 5,
    chunk: int = 500,
) -> float:
    """Accuracy of a k-nearest-neighbour vote that labels each test point from training points.

    Euclidean distance; a tied vote goes to the tied label with the nearest neighbour.
    """
    train_points = train_points.astype(np.float64)
    squared_train = np.sum(train_points**2, axis=1)
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    correct = 0
    # Each closer neighbour adds a tiny bonus larger than all farther ones together, so a tied
    # vote goes to the label of the nearest tied neighbour, and untied votes are unchanged.
    rank_bonus = 1.0 + 1e-6 * 0.5 ** np.arange(neighbours)
    for start in range(0, len(test_points), chunk):
        points = test_points[start : start + chunk].astype(np.float64)
        # (chunk, n_train) squared distances without forming the differences.
        distances = (
            np.sum(points**2, axis=1)[:, None] - 2.0 * points @ train_points.T + squared_train
        )
        nearest = np.argpartition(distances, neighbours - 1, axis=1)[:, :neighbours]
        order = np.argsort(np.take_along_axis(distances, nearest, axis=1), axis=1)
        nearest = np.take_along_axis(nearest, order, axis=1)  # (chunk, k), nearest first
        votes = np.zeros((len(points), classes))
        np.add.at(
            votes,
            (np.arange(len(points))[:, None], train_labels[nearest]),
            rank_bonus[None, :],
        )
        correct += int(np.sum(np.argmax(votes, axis=1) == test_labels[start : start + chunk]))
    return correct / len(test_points)


def active_units(z_mean: np.ndarray, threshold: float = ACTIVE_UNIT_THRESHOLD) -> np.ndarray:
    """Per latent dimension, Cov_x(E_q[z]): the variance of z_mean across the data.

    A dimension is active where this exceeds `threshold` (Burda et al. 2015).
    """
    return np.var(z_mean.astype(np.float64), axis=0)


def evaluate_run(
    vae: keras.Model,
    data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    samples: int = 1000,
    neighbours: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric of a trained VAE on the test set, as a JSON-ready dict."""
    from vae_mnist.data import prepare_images

    (train_images, train_labels), (test_images, test_labels) = data
    train_images, test_images = prepare_images(train_images), prepare_images(test_images)
    rng = np.random.default_rng(seed)
    reconstruction, kl = negative_elbo_terms(vae.encoder, vae.decoder, test_images, rng)
    log_likelihood = importance_weighted_log_likelihood(
        vae.encoder, vae.decoder, test_images, samples, rng
    )
    train_mean = _numpy(vae.encoder.predict(train_images, batch_size=10_000, verbose=0)[0])
    test_mean = _numpy(vae.encoder.predict(test_images, batch_size=10_000, verbose=0)[0])
    variances = active_units(test_mean)
    return {
        "test_images": int(len(test_images)),
        "negative_elbo": float(np.mean(reconstruction + kl)),
        "reconstruction": float(np.mean(reconstruction)),
        "kl": float(np.mean(kl)),
        "iwae_samples": int(samples),
        "iwae_log_likelihood": float(np.mean(log_likelihood)),
        "iwae_negative_log_likelihood": float(-np.mean(log_likelihood)),
        "knn_neighbours": int(neighbours),
        "knn_accuracy": float(
            knn_accuracy(train_mean, train_labels, test_mean, test_labels, neighbours)
        ),
        "latent_dim": int(test_mean.shape[1]),
        "active_units": int(np.sum(variances > ACTIVE_UNIT_THRESHOLD)),
        "latent_variances": [float(value) for value in variances],
        "seed": int(seed),
    }


TABLE_ROWS = (
    ("negative ELBO (nats)", "negative_elbo", "{:.2f}"),
    ("  reconstruction", "reconstruction", "{:.2f}"),
    ("  KL", "kl", "{:.2f}"),
    ("-log p(x), IWAE (nats)", "iwae_negative_log_likelihood", "{:.2f}"),
    ("kNN accuracy on z_mean", "knn_accuracy", "{:.4f}"),
    ("active latent units", "active_units", "{}"),
)


def format_table(metrics: dict[str, Any]) -> str:
    width = max(len(label) for label, _, _ in TABLE_ROWS)
    lines = [
        f"{label:<{width}}  {template.format(metrics[key])}" for label, key, template in TABLE_ROWS
    ]
    lines.append(
        f"({metrics['test_images']} test images, K={metrics['iwae_samples']}, "
        f"k={metrics['knn_neighbours']}, {metrics['latent_dim']} latent dimensions)"
    )
    return "\n".join(lines)


def evaluate_command(arguments: argparse.Namespace) -> dict[str, Any]:
    """The `evaluate` command: print the table and write ``metrics.json`` in the run."""
    from vae_mnist.data import load_mnist
    from vae_mnist.model import ModelFileError, load_model
    from vae_mnist.training import RunPaths

    paths = RunPaths(Path(arguments.run))
    if not paths.vae.exists():
        raise ModelFileError(f"{paths.folder} holds no trained model (no vae.keras)")
    vae = load_model(paths.vae)
    data = load_mnist(arguments.data)
    metrics = evaluate_run(vae, data, arguments.samples, arguments.neighbours, arguments.seed)
    atomic_write_text(paths.metrics, json.dumps(metrics, indent=2) + "\n")
    print(format_table(metrics))
    print(f"wrote {paths.metrics}")
    return metrics
