"""The default model's epoch written by hand in JAX, on one CPU device or on two (the batch split).

XLA can present the host's cores as several devices (``--xla_force_host_platform_device_count``);
with the batch sharded over two of them, each half of every step is its own program, which runs
in parallel with the other's, and the gradients are summed across the two. The question this
answers: does that data parallelism use a 2-core machine better than one device, whose small
products and element-wise operations each share the cores inside one program?

The epoch is the faithful model (784-256-2, ReLU, Bernoulli likelihood, the closed-form KL),
RMSprop written out, all steps of one epoch as one `lax.scan` over device-resident data; no
validation. Each measurement is a fresh process (the device count is fixed when JAX starts), one
device and two alternating, and the script prints seconds per epoch after the first.

    python benchmarks/bench_devices.py --data ../shared/data/mnist.npz --batch 100 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WIDTHS = {"hidden": 256, "latent": 2, "pixels": 784}


def _weights(seed: int) -> dict:
    """Glorot-uniform kernels and zero biases for the five dense layers."""
    import jax.numpy as jnp
    import numpy as np

    generator = np.random.default_rng(seed)
    hidden, latent, pixels = WIDTHS["hidden"], WIDTHS["latent"], WIDTHS["pixels"]
    shapes = {
        "encoder": (pixels, hidden),
        "mean": (hidden, latent),
        "log_variance": (hidden, latent),
        "decoder": (latent, hidden),
        "pixels": (hidden, pixels),
    }
    weights = {}
    for name, (fan_in, fan_out) in shapes.items():
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        kernel = generator.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)
        weights[name] = (jnp.asarray(kernel), jnp.zeros(fan_out, jnp.float32))
    return weights


def _negative_elbo(weights, images, key):
    """The batch mean of the summed binary cross-entropy of the logits and the Gaussian KL."""
    import jax
    import jax.numpy as jnp

    def dense(name, inputs):
        kernel, bias = weights[name]
        return inputs @ kernel + bias

    hidden = jax.nn.relu(dense("encoder", images))
    mean, log_variance = dense("mean", hidden), dense("log_variance", hidden)
    z = mean + jnp.exp(log_variance / 2) * jax.random.normal(key, mean.shape)
    logits = dense("pixels", jax.nn.relu(dense("decoder", z)))
    cross_entropy = jnp.sum(
        jnp.maximum(logits, 0) - logits * images + jnp.log1p(jnp.exp(-jnp.abs(logits))), axis=-1
    )
    kl = -0.5 * jnp.sum(1 + log_variance - mean**2 - jnp.exp(log_variance), axis=-1)
    return jnp.mean(cross_entropy + kl)


def _epoch_function(steps: int):
    """One epoch of RMSprop (rho 0.9, learning rate 1e-3) as one scan over the batches."""
    import jax
    import jax.numpy as jnp

    def epoch(weights, squares, batches, key):
        def step(carry, inputs):
            weights, squares = carry
            images, step_key = inputs
            loss, gradients = jax.value_and_grad(_negative_elbo)(weights, images, step_key)
            squares = jax.tree.map(
                lambda square, gradient: 0.9 * square + 0.1 * gradient**2, squares, gradients
            )
            weights = jax.tree.map(
                lambda weight, gradient, square: (
                    weight - 1e-3 * gradient / (jnp.sqrt(square) + 1e-7)
                ),
                weights,
                gradients,
                squares,
            )
            return (weights, squares), loss

        (weights, squares), losses = jax.lax.scan(
            step, (weights, squares), (batches, jax.random.split(key, steps))
        )
        return weights, squares, jnp.mean(losses)

    return epoch


def _worker(devices: int, batch: int, epochs: int, data_path: str) -> dict:
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    import time

    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    with np.load(data_path, allow_pickle=False) as arrays:
        images = arrays["x_train"].astype(np.float32) / 255.0
    steps = len(images) // batch
    # (n, 28, 28) -> (steps, batch, 784): the epoch's batches, in order.
    batches = images[: steps * batch].reshape(steps, batch, -1)
    weights = _weights(seed=0)
    squares = jax.tree.map(jax.numpy.zeros_like, weights)
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    replicated = NamedSharding(mesh, PartitionSpec())
    # Each device holds its half of every batch; the weights are on both.
    split = NamedSharding(mesh, PartitionSpec(None, "batch", None))
    batches = jax.device_put(batches, split)
    weights, squares = jax.device_put((weights, squares), replicated)
    epoch = jax.jit(_epoch_function(steps))
    key = jax.random.key(0)
    seconds, loss = [], float("nan")
    for index in range(epochs):
        start = time.perf_counter()
        weights, squares, loss = epoch(weights, squares, batches, jax.random.fold_in(key, index))
        loss = float(loss)
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds[1:], "loss": loss, "devices": len(jax.devices())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="MNIST in the Keras .npz layout")
    parser.add_argument("--batch", type=int, default=100, help="images per step (default 100)")
    parser.add_argument(
        "--epochs", type=int, default=4, help="epochs per process; the first is not timed"
    )
    parser.add_argument("--repeats", type=int, default=2, help="processes per device count")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        result = _worker(int(arguments.worker), arguments.batch, arguments.epochs, arguments.data)
        print(json.dumps(result))
        return
    print(f"{'devices':>7}  {'s/epoch (each)':<28}  {'median':>6}  loss after the last epoch")
    for _ in range(arguments.repeats):
        for devices in (1, 2):
            command = [
                sys.executable,
                __file__,
                "--worker",
                str(devices),
                *("--data", arguments.data, "--batch", str(arguments.batch)),
                *("--epochs", str(arguments.epochs)),
            ]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            each = " ".join(f"{seconds:.2f}" for seconds in result["seconds"])
            median = statistics.median(result["seconds"])
            print(f"{result['devices']:>7}  {each:<28}  {median:6.2f}  {result['loss']:.2f}")


if __name__ == "__main__":
    main()
