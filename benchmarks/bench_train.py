"""Training speed and memory: a plain Keras reference against the project's training path.

In one run, on the same data and hyperparameters, each backend trains

(a) the reference: the same VAE compiled with Keras' defaults and fitted on numpy arrays, and
(b) the project's own path, `vae_mnist.training.train` with the default `RunConfig`
    (checkpointing and history writing included),

each in a fresh process of its own. It prints the median seconds per epoch over the epochs after
the first, the peak resident memory, the validation loss after the last epoch, the speed-up, the
fraction of the compute floor reached (FLOPs per epoch over a float32 matrix-product
throughput measured on this machine in the same run), and the slowest epoch after the first as
a multiple of the median (a stall shows there).

    python benchmarks/bench_train.py --data ../shared/data/mnist.npz --backend all --epochs 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

BACKENDS = ("tensorflow", "jax", "torch")
PATHS = ("reference", "project")


def training_flops_per_epoch(
    images: int = 60_000,
    validation_images: int = 10_000,
    original_dim: int = 784,
    intermediate_dim: int = 256,
    latent_dim: int = 2,
) -> float:
    """Multiply-add FLOPs of one epoch: forward and backward on training, forward on validation.

    A dense layer costs 2·inputs·outputs FLOPs per image forward, and as much again backward for
    each gradient it needs: of its weights, and of its inputs, except for the first layer, whose
    input is the data. So a training step costs three forwards less one first-layer forward.
    """
    layers = [
        original_dim * intermediate_dim,  # encoder hidden layer
        intermediate_dim * 2 * latent_dim,  # z_mean and z_log_var
        latent_dim * intermediate_dim,  # decoder hidden layer
        intermediate_dim * original_dim,  # decoder output layer
    ]
    forward = 2 * sum(layers)
    training = 3 * forward - 2 * layers[0]
    return training * images + forward * validation_images


def matmul_throughput(size: int = 4096, repeats: int = 3) -> float:
    """Best float32 FLOP/s of a large square matrix product (numpy's BLAS, all cores)."""
    import numpy as np

    rng = np.random.default_rng(0)
    left = rng.random((size, size), dtype=np.float32)
    right = rng.random((size, size), dtype=np.float32)
    left @ right  # Warm the library up.
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        left @ right
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def _worker(path: str, epochs: int, data_path: str | None) -> dict:
    """Train one path in this process and return its measurements."""
    import keras

    import vae_mnist
    from vae_mnist.data import prepare_images
    from vae_mnist.training import train

    class EpochClock(keras.callbacks.Callback):
        """Wall-clock time between epoch ends, so saving and validation count too."""

        def on_train_begin(self, logs=None):
            self.marks = [time.perf_counter()]

        def on_epoch_end(self, epoch, logs=None):
            self.marks.append(time.perf_counter())

    data = vae_mnist.load_mnist(data_path)
    config = vae_mnist.RunConfig().replace(epochs=epochs)
    clock = EpochClock()
    if path == "reference":
        keras.utils.set_random_seed(config.training.seed)
        vae = vae_mnist.build_vae(config)
        vae.compile(optimizer=keras.optimizers.RMSprop(learning_rate=config.training.learning_rate))
        (x_train, _), (x_test, _) = data
        history = vae.fit(
            prepare_images(x_train),
            batch_size=config.training.batch_size,
            epochs=epochs,
            shuffle=True,
            validation_data=prepare_images(x_test),
            callbacks=[clock],
            verbose=0,
        )
        validation_loss = float(history.history["val_loss"][-1])
    else:
        with tempfile.TemporaryDirectory() as folder:
            info = train(config, data, folder, verbose=0, callbacks=[clock])
        validation_loss = float(info["history"][-1]["val_loss"])
    durations = [end - start for start, end in zip(clock.marks, clock.marks[1:], strict=False)]
    return {
        "backend": keras.backend.backend(),
        "path": path,
        "epochs": epochs,
        "first_epoch_seconds": durations[0],
        "median_epoch_seconds": statistics.median(durations[1:] or durations),
        "slowest_epoch_seconds": max(durations[1:] or durations),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "val_loss": validation_loss,
    }


def run_worker(script: str, backend: str, path: str, options: list[str]) -> dict:
    """Run `script --worker PATH OPTIONS` in a fresh process on `backend`; its JSON result.

    A fresh process per measurement, so no backend's state or compiled code carries over.
    """
    command = [sys.executable, script, "--worker", path, *options]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": backend},
    )
    if result.returncode != 0:
        raise SystemExit(f"{backend} {path} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _run_worker(backend: str, path: str, epochs: int, data_path: str | None) -> dict:
    options = ["--epochs", str(epochs), *(["--data", data_path] if data_path else [])]
    return run_worker(__file__, backend, path, options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend",
        choices=(*BACKENDS, "all"),
        default="tensorflow",
        help="Keras backend to measure, or all three (default: tensorflow)",
    )
    parser.add_argument("--epochs", type=int, default=10, help="epochs per training (default: 10)")
    parser.add_argument(
        "--data", help="local MNIST .npz or IDX folder (default: $VAE_MNIST_DATA or download)"
    )
    parser.add_argument("--worker", choices=PATHS, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is not timed)")
    if arguments.worker:
        print(json.dumps(_worker(arguments.worker, arguments.epochs, arguments.data)))
        return

    backends = BACKENDS if arguments.backend == "all" else (arguments.backend,)
    throughput = matmul_throughput()
    flops = training_flops_per_epoch()
    floor = flops / throughput
    print(f"command: python benchmarks/bench_train.py {' '.join(sys.argv[1:])}")
    print(
        f"floor: {flops / 1e9:.0f} GFLOP per epoch / {throughput / 1e9:.0f} GFLOP/s "
        f"(float32 4096² matrix product, numpy) = {floor:.2f} s per epoch"
    )
    header = (
        f"{'backend':<11}{'path':<10}{'s/epoch':>9}{'first':>8}{'peak MiB':>10}"
        f"{'val_loss':>10}{'speed-up':>10}{'of floor':>10}{'slowest':>9}"
    )
    print(header)
    print("-" * len(header))
    for backend in backends:
        results = {
            path: _run_worker(backend, path, arguments.epochs, arguments.data) for path in PATHS
        }
        reference_seconds = results["reference"]["median_epoch_seconds"]
        for path in PATHS:
            result = results[path]
            seconds = result["median_epoch_seconds"]
            print(
                f"{backend:<11}{path:<10}{seconds:>9.3f}{result['first_epoch_seconds']:>8.2f}"
                f"{result['peak_rss_mib']:>10.0f}{result['val_loss']:>10.2f}"
                f"{reference_seconds / seconds:>9.2f}x{floor / seconds:>10.2f}"
                f"{result['slowest_epoch_seconds'] / seconds:>8.2f}x"
            )
        difference = results["project"]["val_loss"] - results["reference"]["val_loss"]
        print(f"{backend:<11}val_loss difference (project - reference): {difference:+.2f} nats")


if __name__ == "__main__":
    main()
