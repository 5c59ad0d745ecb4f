"""Evaluation speed: the importance-weighted estimate of log p(x) against its compute floor.

`vae-mnist evaluate` spends nearly all its time in the IWAE estimate: K latent samples per test
image, each decoded to 784 pixel probabilities. In one run, each backend (in a fresh process of
its own) times

(a) the reference: the same estimate one operation at a time per chunk (eager), as the project
    computed it before, and
(b) the project's path, `importance_weighted_log_likelihood`, which compiles the estimate of a
    chunk into one XLA program on TensorFlow and JAX (compilation included in the time) and
    runs eagerly on PyTorch,

on the default model (untrained: the speed does not depend on the weights) and the first N test
images, with the same seed. It prints the seconds, the mean estimate of each path (they must
agree within Monte-Carlo noise), and the fraction of the floor: the decoder's FLOPs for N·K
latent points over a float32 matrix-product throughput measured on this machine in the same run.

    python benchmarks/bench_evaluate.py --data ../shared/data/mnist.npz --backend all
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from bench_train import add_backend_argument, chosen_backends, matmul_throughput, run_worker

PATHS = ("reference", "project")


def decoder_flops_per_point(
    original_dim: int = 784, intermediate_dim: int = 256, latent_dim: int = 2
) -> float:
    """Multiply-add FLOPs of one decoder forward pass: two dense layers."""
    return 2.0 * (latent_dim * intermediate_dim + intermediate_dim * original_dim)


def _worker(path: str, images: int, samples: int, data_path: str | None) -> dict:
    """Time one path in this process and return its measurements."""
    import keras
    import numpy as np

    import vae_mnist
    from vae_mnist import evaluation
    from vae_mnist.data import model_inputs

    data = vae_mnist.load_mnist(data_path)
    _, test_images = model_inputs(data)
    test_images = test_images[:images]
    # Seeded, so both paths (in their own processes) estimate the same untrained model.
    keras.utils.set_random_seed(1)
    vae = vae_mnist.build_vae(vae_mnist.RunConfig())
    if path == "reference":
        # One operation at a time at every size.
        evaluation.COMPILE_FROM_DECODED_VALUES = math.inf

    def estimate(batch: np.ndarray) -> np.ndarray:
        return evaluation.importance_weighted_log_likelihood(vae, batch, samples, seed=1)

    # A warm-up on a few images (eager at that size) loads the backend's kernels; the project's
    # compilation happens inside the timed call, as it does in `vae-mnist evaluate`.
    estimate(test_images[:8])
    started = time.perf_counter()
    estimates = estimate(test_images)
    seconds = time.perf_counter() - started
    return {
        "backend": keras.backend.backend(),
        "path": path,
        "seconds": seconds,
        "mean_log_likelihood": float(np.mean(estimates)),
    }


def _run_worker(backend: str, path: str, arguments: argparse.Namespace) -> dict:
    options = ["--images", str(arguments.images), "--samples", str(arguments.samples)]
    if arguments.data:
        options += ["--data", arguments.data]
    return run_worker(__file__, backend, path, options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_backend_argument(parser)
    parser.add_argument("--images", type=int, default=2000, help="test images (default: 2000)")
    parser.add_argument("--samples", type=int, default=1000, help="K per image (default: 1000)")
    parser.add_argument(
        "--data", help="local MNIST .npz or IDX folder (default: $VAE_MNIST_DATA or download)"
    )
    parser.add_argument("--worker", choices=PATHS, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.images < 1 or arguments.samples < 1:
        parser.error("--images and --samples must be positive")
    if arguments.worker:
        result = _worker(arguments.worker, arguments.images, arguments.samples, arguments.data)
        print(json.dumps(result))
        return

    backends = chosen_backends(arguments)
    throughput = matmul_throughput()
    flops = decoder_flops_per_point() * arguments.images * arguments.samples
    floor = flops / throughput
    print(f"command: python benchmarks/bench_evaluate.py {' '.join(sys.argv[1:])}")
    print(
        f"floor: {flops / 1e9:.0f} GFLOP of decoding ({arguments.images} images x K = "
        f"{arguments.samples}) / {throughput / 1e9:.0f} GFLOP/s = {floor:.2f} s"
    )
    header = (
        f"{'backend':<11}{'path':<10}{'seconds':>9}{'log p(x)':>11}{'speed-up':>10}{'of floor':>10}"
    )
    print(header)
    print("-" * len(header))
    for backend in backends:
        results = {path: _run_worker(backend, path, arguments) for path in PATHS}
        reference_seconds = results["reference"]["seconds"]
        for path in PATHS:
            result = results[path]
            print(
                f"{backend:<11}{path:<10}{result['seconds']:>9.2f}"
                f"{result['mean_log_likelihood']:>11.3f}"
                f"{reference_seconds / result['seconds']:>9.2f}x{floor / result['seconds']:>10.2f}"
            )


if __name__ == "__main__":
    main()
