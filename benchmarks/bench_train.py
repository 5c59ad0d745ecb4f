"""Training speed and memory: a plain Keras reference against the project's training path.

In one run, on the same data and hyperparameters, each backend trains

(a) the reference: the same VAE compiled with Keras' defaults and fitted on numpy arrays, and
(b) the project's own path, `vae_mnist.training.train` with the default `RunConfig`
    (checkpointing and history writing included),

each in a fresh process of its own; on JAX and TensorFlow, where (b) runs each call's steps as
one compiled program (the default ``--compiled-chunks``), also (c) Keras' own step loop
(``project-loop``, ``--no-compiled-chunks``), and with ``--peer``, once,
(d) a plain PyTorch training loop of the same model as pytorch/examples writes its VAE (an
``nn.Module``, a hand loop, RMSprop), written here. It prints the median seconds per epoch over
the epochs after the first, the peak resident memory, the validation loss after the last epoch,
the speed-up, the fraction of the compute floor reached, and the slowest epoch after the first
as a multiple of the median (a stall shows there). The floor is the FLOPs per epoch over a
float32 matrix-product throughput that each row measures in its own process, before and after
its training (the faster of the two), since a machine's product speed can move between the
rows of one run (README's Speed section gives this project's machines).

With ``--presets``, it instead trains each named preset of the family (or ``all``) on the
project's path (on JAX and TensorFlow, also in Keras' step loop), one fresh process each, and
reports its seconds per epoch, peak memory and the fraction of its own floor: the FLOPs of its
networks' dense and convolutional layers, the decoder's once per sample of z, the encoder's also
for the VampPrior's pseudo-inputs at every step (an RBM prior's Gibbs sampling, a discrete
latent's relaxation and the upper layers of a stack are not counted). Fashion-MNIST comes from
``$VAE_MNIST_FASHION_DATA`` or a download.

    python benchmarks/bench_train.py --data ../shared/data/mnist.npz --backend all --epochs 10
    python benchmarks/bench_train.py --data ../shared/data/mnist.npz --presets all --epochs 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

BACKENDS = ("tensorflow", "jax", "torch")
# The backends whose default path runs compiled chunks, where Keras' loop is timed beside it.
CHUNKED_BACKENDS = ("tensorflow", "jax")
PATHS = ("reference", "project")


def layer_flops_per_image(layer) -> float:
    """Multiply-add FLOPs of one forward pass of a dense or convolutional layer, per image.

    A dense layer costs 2·inputs·outputs; a convolution 2·(kernel size) at each output position,
    a transposed convolution at each input position. Other layers cost nothing here.
    """
    import keras

    if isinstance(layer, keras.layers.Dense):
        return 2.0 * layer.kernel.shape[0] * layer.kernel.shape[1]
    kernel = 1
    for size in getattr(getattr(layer, "kernel", None), "shape", ()):
        kernel *= size
    if isinstance(layer, keras.layers.Conv2DTranspose):
        # (batch, height, width, channels): one kernel application per input position.
        return 2.0 * kernel * layer.input.shape[1] * layer.input.shape[2]
    if isinstance(layer, keras.layers.Conv2D):
        return 2.0 * kernel * layer.output.shape[1] * layer.output.shape[2]
    return 0.0


def training_flops_per_epoch(vae, images: int, validation_images: int) -> float:
    """FLOPs of one epoch: forward and backward on the training images, forward on validation.

    Backward costs as much again as forward for each gradient a layer needs: of its weights,
    and of its inputs, except for the encoder's first layer, whose input is the data. So a
    training step costs three forwards less one of the first layer. The decoder runs once for
    each sample of z that the objective draws per image (K for the importance-weighted bound,
    in training and validation alike), and the encoder once more per step for each image of
    the prior's own (the VampPrior's pseudo-inputs, weights, so all three passes count).
    """
    encoder = [layer_flops_per_image(layer) for layer in vae.encoder.layers]
    decoder = [layer_flops_per_image(layer) for layer in vae.decoder.layers]
    forward = sum(encoder) + vae.objective.part.importance_samples * sum(decoder)
    first = next((flops for flops in encoder if flops), 0.0)
    batch_size = vae.run_config.training.batch_size
    # One forward pass of the prior's own images through the encoder.
    prior_forward = vae.prior_part.encoded_images_per_step() * sum(encoder)
    prior = prior_forward * (
        3 * math.ceil(images / batch_size) + math.ceil(validation_images / batch_size)
    )
    return (3 * forward - first) * images + forward * validation_images + prior


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
    """Train one path here and return its measurements, with the matrix-product throughput
    measured around them (the faster of before and after)."""
    throughput_before = matmul_throughput()
    measurements = _train_path(path, epochs, data_path)
    measurements["throughput"] = max(throughput_before, matmul_throughput())
    return measurements


def _train_path(path: str, epochs: int, data_path: str | None) -> dict:
    """Train one path (reference, project, preset:NAME or torch-peer); its measurements."""
    import keras

    import vae_mnist
    from vae_mnist.data import DATA_ENVIRONMENT_VARIABLE, prepare_images
    from vae_mnist.presets import preset_config
    from vae_mnist.training import train

    class EpochClock(keras.callbacks.Callback):
        """Wall-clock time between epoch ends, so saving and validation count too."""

        def on_train_begin(self, logs=None):
            self.marks = [time.perf_counter()]

        def on_epoch_end(self, epoch, logs=None):
            self.marks.append(time.perf_counter())

    if path == "torch-peer":
        return _torch_peer(epochs, data_path)
    # "-loop": Keras' step loop, in place of the default compiled scan of each call's steps.
    chunks = not path.endswith("-loop")
    path = path.removesuffix("-loop")
    preset = path.removeprefix("preset:") if path.startswith("preset:") else None
    config = preset_config(preset) if preset else vae_mnist.RunConfig()
    config = config.replace(epochs=epochs, compiled_chunks=chunks)
    # --data is the copy of MNIST; another data set is read from its own variable.
    reads_data_flag = config.data.environment_variable == DATA_ENVIRONMENT_VARIABLE
    data = config.data.load(data_path if reads_data_flag else None)
    (x_train, _), (x_test, _) = data
    flops = training_flops_per_epoch(vae_mnist.build_vae(config), len(x_train), len(x_test))
    clock = EpochClock()
    if path == "reference":
        keras.utils.set_random_seed(config.training.seed)
        vae = vae_mnist.build_vae(config)
        vae.compile(
            optimizer=keras.optimizers.RMSprop(learning_rate=config.optimizer.learning_rate)
        )
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
        "flops_per_epoch": flops,
        "first_epoch_seconds": durations[0],
        "median_epoch_seconds": statistics.median(durations[1:] or durations),
        "slowest_epoch_seconds": max(durations[1:] or durations),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "val_loss": validation_loss,
    }


def _torch_peer(epochs: int, data_path: str | None) -> dict:
    """The default model as a plain PyTorch loop: ``nn.Module``, RMSprop, no Keras.

    The same architecture, loss (784 · mean binary cross-entropy + KL, averaged over the
    batch), optimizer settings (RMSprop 1e-3 with Keras' ρ = 0.9 and ε = 1e-7), batch of 100,
    shuffling and validation on the test set every epoch.
    """
    import torch
    from torch import nn

    import vae_mnist
    from vae_mnist.data import prepare_images

    torch.manual_seed(1)
    (x_train, _), (x_test, _) = vae_mnist.load_dataset("mnist", data_path)
    train_images = torch.from_numpy(prepare_images(x_train))
    test_images = torch.from_numpy(prepare_images(x_test))

    class PlainVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(784, 256)
            self.mean = nn.Linear(256, 2)
            self.log_var = nn.Linear(256, 2)
            self.decoder = nn.Sequential(nn.Linear(2, 256), nn.ReLU(), nn.Linear(256, 784))

        def forward(self, images):
            hidden = torch.relu(self.hidden(images))
            mean, log_var = self.mean(hidden), self.log_var(hidden)
            z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
            return self.decoder(z), mean, log_var

    def loss_of(model, images):
        logits, mean, log_var = model(images)
        reconstruction = nn.functional.binary_cross_entropy_with_logits(
            logits, images, reduction="none"
        ).sum(dim=1)
        kl = -0.5 * (1 + log_var - mean.square() - log_var.exp()).sum(dim=1)
        return (reconstruction + kl).mean()

    model = PlainVAE()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    marks, validation_loss = [time.perf_counter()], float("nan")
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(train_images)).split(100):
            optimizer.zero_grad()
            loss = loss_of(model, train_images[batch])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            losses = [loss_of(model, chunk) for chunk in test_images.split(100)]
        validation_loss = float(torch.stack(losses).mean())
        marks.append(time.perf_counter())
    durations = [end - start for start, end in zip(marks, marks[1:], strict=False)]
    return {
        "backend": "torch",
        "path": "torch-peer",
        "epochs": epochs,
        "flops_per_epoch": float("nan"),
        "first_epoch_seconds": durations[0],
        "median_epoch_seconds": statistics.median(durations[1:] or durations),
        "slowest_epoch_seconds": max(durations[1:] or durations),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "val_loss": validation_loss,
    }


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """The benchmarks' one `--backend` option: a Keras backend, or all three in turn."""
    parser.add_argument(
        "--backend",
        choices=(*BACKENDS, "all"),
        default="tensorflow",
        help="Keras backend to measure, or all three (default: tensorflow)",
    )


def chosen_backends(arguments: argparse.Namespace) -> tuple[str, ...]:
    """The backends `--backend` names, in the order the tables list them."""
    return BACKENDS if arguments.backend == "all" else (arguments.backend,)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_backend_argument(parser)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per training (default: 10)")
    parser.add_argument(
        "--data", help="local MNIST .npz or IDX folder (default: $VAE_MNIST_DATA or download)"
    )
    parser.add_argument(
        "--presets",
        help="comma-separated presets, or all: one row per preset instead of the comparison",
    )
    parser.add_argument(
        "--peer",
        action="store_true",
        help="also time a plain PyTorch training loop of the default model (needs torch)",
    )
    parser.add_argument(
        "--loop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --presets: also time Keras' step loop where the chunks are the default",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is not timed)")
    if arguments.worker:
        print(json.dumps(_worker(arguments.worker, arguments.epochs, arguments.data)))
        return
    presets = _chosen_presets(parser, arguments.presets)

    backends = chosen_backends(arguments)
    print(f"command: python benchmarks/bench_train.py {' '.join(sys.argv[1:])}")
    print(
        "GFLOP/s: each row's float32 4096² matrix product (numpy), the faster of before and "
        "after its training; of floor: FLOPs per epoch / that throughput / s per epoch"
    )
    options = ["--epochs", str(arguments.epochs)]
    options += ["--data", arguments.data] if arguments.data else []
    if presets:
        _report_presets(backends, presets, options, arguments.loop)
        return
    header = (
        f"{'backend':<11}{'path':<14}{'s/epoch':>9}{'first':>8}{'peak MiB':>10}"
        f"{'val_loss':>10}{'speed-up':>10}{'GFLOP/s':>9}{'of floor':>10}{'slowest':>9}"
    )
    fastest = float("inf")
    for number, backend in enumerate(backends):
        paths = (*PATHS, "project-loop") if backend in CHUNKED_BACKENDS else PATHS
        results = {path: run_worker(__file__, backend, path, options) for path in paths}
        # The project's fastest path: its default, or Keras' step loop where the backend has both.
        project_paths = [path for path in paths if path.startswith("project")]
        fastest = min(fastest, *(results[path]["median_epoch_seconds"] for path in project_paths))
        flops = results["project"]["flops_per_epoch"]
        if number == 0:
            print(f"floor: {flops / 1e9:.0f} GFLOP per epoch")
            print(header)
            print("-" * len(header))
        reference_seconds = results["reference"]["median_epoch_seconds"]
        for path in paths:
            result = results[path]
            seconds = result["median_epoch_seconds"]
            print(
                f"{backend:<11}{path:<14}{seconds:>9.3f}{result['first_epoch_seconds']:>8.2f}"
                f"{result['peak_rss_mib']:>10.0f}{result['val_loss']:>10.2f}"
                f"{reference_seconds / seconds:>9.2f}x{result['throughput'] / 1e9:>9.0f}"
                f"{_of_floor(flops, result):>10.2f}"
                f"{result['slowest_epoch_seconds'] / seconds:>8.2f}x",
                flush=True,
            )
        difference = results["project"]["val_loss"] - results["reference"]["val_loss"]
        print(f"{backend:<11}val_loss difference (project - reference): {difference:+.2f} nats")
    if arguments.peer:
        peer = run_worker(__file__, "torch", "torch-peer", options)
        seconds = peer["median_epoch_seconds"]
        print(
            f"plain PyTorch loop (no Keras): {seconds:.3f} s/epoch, first "
            f"{peer['first_epoch_seconds']:.2f}, val_loss {peer['val_loss']:.2f}, "
            f"{_of_floor(flops, peer):.2f} of the floor at {peer['throughput'] / 1e9:.0f} "
            f"GFLOP/s; the project's fastest path is {seconds / fastest:.2f}x faster"
        )


def _of_floor(flops_per_epoch: float, result: dict) -> float:
    """The fraction of the compute floor a row reached: its floor (the FLOPs per epoch over its
    own measured throughput) over its median seconds per epoch."""
    return flops_per_epoch / result["throughput"] / result["median_epoch_seconds"]


def _chosen_presets(parser: argparse.ArgumentParser, value: str | None) -> list[str]:
    """The presets that `--presets` names (all of them for ``all``); none without the flag."""
    if value is None:
        return []
    from vae_mnist.presets import preset_names

    names = preset_names()
    chosen = names if value == "all" else [name.strip() for name in value.split(",")]
    unknown = [name for name in chosen if name not in names]
    if unknown:
        parser.error(f"unknown preset {unknown[0]!r} (choose from {', '.join(names)}, or all)")
    return chosen


def _report_presets(
    backends: tuple[str, ...],
    presets: list[str],
    options: list[str],
    loop: bool,
) -> None:
    """One row per preset and backend: the project's path, against each preset's own floor."""
    header = (
        f"{'backend':<11}{'preset':<30}{'s/epoch':>9}{'first':>8}{'peak MiB':>10}"
        f"{'val_loss':>10}{'GFLOP':>8}{'GFLOP/s':>9}{'of floor':>10}"
    )
    print(header)
    print("-" * len(header))
    for backend in backends:
        # Where the chunks are the default, each preset also runs in Keras' own step loop.
        suffixes = ("", "-loop") if loop and backend in CHUNKED_BACKENDS else ("",)
        for preset, suffix in ((preset, suffix) for preset in presets for suffix in suffixes):
            result = run_worker(__file__, backend, f"preset:{preset}{suffix}", options)
            seconds = result["median_epoch_seconds"]
            name = preset + suffix
            print(
                f"{backend:<11}{name:<30}{seconds:>9.3f}{result['first_epoch_seconds']:>8.2f}"
                f"{result['peak_rss_mib']:>10.0f}{result['val_loss']:>10.2f}"
                f"{result['flops_per_epoch'] / 1e9:>8.0f}{result['throughput'] / 1e9:>9.0f}"
                f"{_of_floor(result['flops_per_epoch'], result):>10.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
