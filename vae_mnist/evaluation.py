"""Numbers to compare with papers: the ELBO, the IWAE estimate of log p(x), latent quality.

All results are per test image, in nats, on the test set as the run saw it (binarized with the
fixed test seed where the run was binarized). The Monte-Carlo draws come from a seeded
`SeedGenerator`, so repeated evaluations of the same run give the same numbers. The arithmetic
runs in the backend (TensorFlow, JAX or PyTorch) through `keras.ops`, for every latent and
likelihood, through the latent's interface (see `vae_mnist.latent`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Keras through the package, so that TensorFlow starts quietly (`vae_mnist._quiet`).
from vae_mnist.backend import keras, ops, to_numpy
from vae_mnist.data import check_labels, check_model_inputs

# Kept importable from here, where earlier versions had them: the Gaussian's active units,
# which live with its latent, and the table of the numbers, in `metric_table`.
from vae_mnist.latent import ACTIVE_UNIT_THRESHOLD, active_units  # noqa: F401
from vae_mnist.metric_table import TABLE_ROWS, format_metric, format_table  # noqa: F401
from vae_mnist.objectives import log_mean_exp
from vae_mnist.progress import CountBar
from vae_mnist.settings import LARGEST_SEED, ConfigError, check_number

# Decoded pixels held in memory at once by the importance-weighted estimate (about 300 MB).
DECODED_VALUES_PER_CHUNK = 80_000_000
# Below this many decoded values in all, the importance-weighted estimate runs one operation at a
# time: compiling it would take longer than it saves.
COMPILE_FROM_DECODED_VALUES = 20_000_000
ENCODER_BATCH = 1000


def importance_log_weights(vae: keras.Model, images: Any, samples: int, seed: Any) -> Any:
    """``log p(x, z_k) - log q(z_k|x)`` for K exact posterior samples z_k, ``(batch, K)``.

    `seed` is a `keras.random.SeedGenerator`; the model computes the weights over every
    stochastic layer (`VAE.log_weights`).
    """
    return vae.log_weights(images, samples, seed)


def importance_weighted_log_likelihood(
    vae: keras.Model,
    images: np.ndarray,
    samples: int,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """The IWAE estimate of log p(x) per image (Burda et al. 2015), in nats.

    ``log p(x) ≈ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x)`` with ``z_k ~ q(z|x)``. It is a lower
    bound in expectation that rises with K towards log p(x); with K = 1 it is the single-sample
    ELBO. The K terms are combined with a stable log-mean-exp. Where the estimate is compiled,
    the images go through in chunks of one size (the last one padded), so it compiles once.

    Returns:
        ``(n,)``.
    """
    generator = keras.random.SeedGenerator(seed)
    chunk = max(1, DECODED_VALUES_PER_CHUNK // (samples * images.shape[1]))
    chunk = min(chunk, len(images))
    compile_estimate = len(images) * samples * images.shape[1] >= COMPILE_FROM_DECODED_VALUES
    estimate = _chunk_estimator(vae, samples, generator, compile_estimate)
    bar = None
    if progress:
        print(f"importance-weighted log p(x), K={samples} samples per image:", flush=True)
        bar = CountBar(len(images), unit_name="image")
    estimates = []
    for start in range(0, len(images), chunk):
        batch = images[start : start + chunk]
        count = len(batch)
        if compile_estimate and count < chunk:
            # (count, pixels) -> (chunk, pixels): zero images whose estimates are dropped.
            padding = np.zeros((chunk - count, *batch.shape[1:]), dtype=batch.dtype)
            batch = np.concatenate([batch, padding])
        estimates.append(to_numpy(estimate(batch))[:count])
        if bar is not None and start == 0:
            # The first chunk includes compiling the estimate; the time estimate leaves it out.
            bar.warmed_up(count)
        elif bar is not None:
            bar.update(start + count)
    return np.concatenate(estimates).astype(np.float64)


def _chunk_estimator(
    vae: keras.Model, samples: int, generator: keras.random.SeedGenerator, compile_estimate: bool
):
    """``images (chunk, pixels) → log p(x) estimates (chunk,)``, compiled where that pays.

    With `compile_estimate`, on TensorFlow and JAX the whole estimate becomes one XLA
    program, which fuses the decoder's sigmoid with the likelihood's clip, logs and sum over
    pixels, so the 300 MB of a chunk's pixel probabilities are not written and read back for
    each operation (``benchmarks/bench_evaluate.py`` measures the gain). PyTorch runs it
    eagerly, as `torch.compile`'s start-up costs more than it saves here. The seed generator's
    state goes in and out as a value (Keras' `StatelessScope`), so repeated evaluations give
    the same numbers and the noise is the eager noise. The model's variables go in as values
    too: as the program's constants, XLA may fold them into it, and on the CPU it computes a
    product with a weight of one repeated value (an RBM's coupling set to zero by hand, say)
    wrongly, returning garbage (README, Corrections). JAX's results are the eager ones;
    TensorFlow's XLA rounds its sigmoid and logarithms a little differently (README, Speed).
    """

    variables = list(vae.variables)

    def estimate(images, seed_state, values):
        mapping = [(generator.state, seed_state), *zip(variables, values, strict=True)]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            log_weights = importance_log_weights(vae, images, samples, generator)
            estimates = log_mean_exp(log_weights, axis=1)
            next_state = scope.get_current_value(generator.state)
        return estimates, next_state

    backend = keras.backend.backend() if compile_estimate else "eager"
    if backend == "jax":
        import jax

        compiled = jax.jit(estimate)
    elif backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(estimate, jit_compile=True)
    else:
        compiled = estimate

    def run(images: np.ndarray):
        values = [variable.value for variable in variables]
        estimates, next_state = compiled(
            ops.convert_to_tensor(images), generator.state.value, values
        )
        generator.state.assign(next_state)
        return estimates

    return run


def negative_elbo_terms(
    vae: keras.Model, images: np.ndarray, seed: int = 0, batch_size: int = ENCODER_BATCH
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image reconstruction and KL terms, as the training loss has them.

    One exact posterior sample per image for the reconstruction, the latent's KL.

    Returns:
        ``(reconstruction, kl)``, each ``(n,)``.
    """
    generator = keras.random.SeedGenerator(seed)
    reconstructions, kls = [], []
    for start in range(0, len(images), batch_size):
        batch = ops.convert_to_tensor(images[start : start + batch_size])
        reconstruction, kl = vae.elbo_terms(batch, generator)
        reconstructions.append(to_numpy(reconstruction))
        kls.append(to_numpy(kl))
    return np.concatenate(reconstructions), np.concatenate(kls)


def encode_all(vae: keras.Model, images: np.ndarray, batch_size: int = ENCODER_BATCH) -> dict:
    """The posterior's parameters of every image, by head name, as numpy arrays: of the
    model's inputs, which `evaluate_run` checks once for the whole evaluation."""
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        for name, value in vae.posterior_parameters(batch).items():
            parts.setdefault(name, []).append(to_numpy(value))
    return {name: np.concatenate(values) for name, values in parts.items()}


def representation(vae: keras.Model, parameters: dict) -> np.ndarray:
    """What the latent scatter and the kNN classifier use (z_mean for the Gaussian)."""
    return to_numpy(vae.posterior_part.representation(parameters))


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
        # Rows (chunk, 1) against labels (chunk, k); each rank's bonus (k,) -> (1, k).
        np.add.at(
            votes,
            (np.arange(len(points))[:, None], train_labels[nearest]),
            rank_bonus[None, :],
        )
        correct += int(np.sum(np.argmax(votes, axis=1) == test_labels[start : start + chunk]))
    return correct / len(test_points)


def evaluate_run(
    vae: keras.Model,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    samples: int = 1000,
    neighbours: int = 5,
    seed: int = 0,
    progress: bool = False,
    log_partition: str = "auto",
) -> dict[str, Any]:
    """Every metric of a trained VAE on the test set, as a JSON-ready dict.

    The images are the model's inputs (`vae_mnist.data.model_inputs`), binarized as the run
    was; the training images serve the kNN classifier only, which works on the latent's
    representation (z_mean; a discrete latent's posterior probabilities). The prior prepares
    first (the RBM prior computes its log Z: `log_partition` is exact, ais or auto) and the
    posterior adds its own numbers (`Prior.prepare_evaluation`, `Posterior.latent_metrics`).

    Raises:
        ConfigError: a count or seed that is not one, or images and labels of different
            lengths (checked before the work).
        DataError: images that are not the model's inputs (pixels / 255), or labels that are
            not class numbers.
    """
    train_images, train_labels = _checked_split("training", train_images, train_labels)
    test_images, test_labels = _checked_split("test", test_images, test_labels)
    samples, neighbours, seed = _checked_counts(samples, neighbours, seed, len(train_images))
    prepared = vae.prior_part.prepare_evaluation(log_partition=log_partition, seed=seed)
    reconstruction, kl = negative_elbo_terms(vae, test_images, seed)
    log_likelihood = importance_weighted_log_likelihood(
        vae, test_images, samples, seed + 1, progress=progress
    )
    train_parameters = encode_all(vae, train_images)
    test_parameters = encode_all(vae, test_images)
    train_points = representation(vae, train_parameters)
    test_points = representation(vae, test_parameters)
    metrics: dict[str, Any] = {
        "test_images": int(len(test_images)),
        "negative_elbo": float(np.mean(reconstruction + kl)),
        "reconstruction": float(np.mean(reconstruction)),
        "kl": float(np.mean(kl)),
        "iwae_samples": int(samples),
        "iwae_log_likelihood": float(np.mean(log_likelihood)),
        "iwae_negative_log_likelihood": float(-np.mean(log_likelihood)),
        "knn_neighbours": int(neighbours),
        "knn_accuracy": float(
            knn_accuracy(train_points, train_labels, test_points, test_labels, neighbours)
        ),
        "code_size": int(vae.posterior_part.code_size),
        "seed": int(seed),
    }
    metrics.update(prepared)
    # How the test set uses the latent: the Gaussian's active units, a discrete latent's
    # classes used per variable. Each latent knows its own.
    metrics.update(vae.posterior_part.latent_metrics(test_parameters))
    return metrics


def _checked_counts(
    samples: Any, neighbours: Any, seed: Any, training_images: int
) -> tuple[int, int, int]:
    """The importance samples, the kNN classifier's neighbours (at most the training images)
    and the seed, as whole numbers, or a one-line `ConfigError` naming the one that is not."""
    samples = check_number("samples", "int", {"positive": True}, samples)
    neighbours = check_number("neighbours", "int", {"positive": True}, neighbours)
    if neighbours > training_images:
        raise ConfigError(
            f"neighbours {neighbours} is more than the {training_images} training images: "
            f"choose at most {training_images}"
        )
    seed = check_number("seed", "int", {"maximum": LARGEST_SEED}, seed)
    return samples, neighbours, seed


def _checked_split(
    split: str, images: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One split's images and labels, or a one-line error naming what is wrong with them."""
    images = check_model_inputs(images, f"the {split} images")
    labels = check_labels(labels, f"the {split} labels")
    if len(images) != len(labels) or not len(images):
        raise ConfigError(
            f"{len(images)} {split} images and {len(labels)} labels: expected as many of each, "
            "and at least one"
        )
    return images, labels
