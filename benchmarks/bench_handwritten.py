"""`iwae2015-2layer`'s training epoch written by hand in JAX, beside the project's own epoch.

The hand-written side is the preset's model with no Keras at all: Burda et al.'s two stochastic
layers (784-200-200-100 and 100-100-50, tanh, p(z1|z2) from the mirrored upper network),
dynamic binarization, the one-sample ELBO and Adam written out, all 3,000 steps of batch 20 as
one `lax.scan` over device-resident data. The project's side is `vae_mnist.training.train` of
the preset (its compiled chunks, validation included). The two alternate in one process, and
the script prints seconds per epoch of each: how far the project's path is from what XLA makes
of the same arithmetic on this machine.

    KERAS_BACKEND=jax python benchmarks/bench_handwritten.py --data ../shared/data/mnist.npz
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

BATCH = 20
# The preset's networks: each entry is (input width, hidden widths, output width).
NETWORKS = {
    "encoder": (784, (200, 200), 2 * 100),
    "upper_encoder": (100, (100, 100), 2 * 50),
    "upper_decoder": (50, (100, 100), 2 * 100),
    "decoder": (100, (200, 200), 784),
}


def _weights(seed: int) -> dict:
    """Glorot-uniform weights and zero biases for every network."""
    import jax.numpy as jnp
    import numpy as np

    generator = np.random.default_rng(seed)
    weights = {}
    for name, (inputs, hidden, outputs) in NETWORKS.items():
        widths = (inputs, *hidden, outputs)
        layers = []
        for fan_in, fan_out in itertools.pairwise(widths):
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            kernel = generator.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)
            layers.append((jnp.asarray(kernel), jnp.zeros(fan_out, jnp.float32)))
        weights[name] = layers
    return weights


def _network(layers, inputs):
    """tanh hidden layers and a linear output."""
    import jax.numpy as jnp

    hidden = inputs
    for kernel, bias in layers[:-1]:
        hidden = jnp.tanh(hidden @ kernel + bias)
    kernel, bias = layers[-1]
    return hidden @ kernel + bias


def _negative_elbo(weights, images, key):
    """The batch mean of −log p(x|z1) + log q(z1|x) + log q(z2|z1) − log p(z1|z2) − log p(z2).

    The Gaussian terms are written as their closed-form KL where both sides are Gaussian and the
    codes are one reparameterized sample each, as the preset's one-sample ELBO trains.
    """
    import jax
    import jax.numpy as jnp

    lower, upper = jax.random.split(key)
    mean1, log_var1 = jnp.split(_network(weights["encoder"], images), 2, axis=-1)
    z1 = mean1 + jnp.exp(log_var1 / 2) * jax.random.normal(lower, mean1.shape)
    mean2, log_var2 = jnp.split(_network(weights["upper_encoder"], z1), 2, axis=-1)
    z2 = mean2 + jnp.exp(log_var2 / 2) * jax.random.normal(upper, mean2.shape)
    prior_mean, prior_log_var = jnp.split(_network(weights["upper_decoder"], z2), 2, axis=-1)
    logits = _network(weights["decoder"], z1)
    reconstruction = jnp.sum(jnp.logaddexp(0.0, logits) - logits * images)
    lower_kl = 0.5 * jnp.sum(
        prior_log_var
        - log_var1
        + (jnp.exp(log_var1) + (mean1 - prior_mean) ** 2) / jnp.exp(prior_log_var)
        - 1.0
    )
    upper_kl = 0.5 * jnp.sum(mean2**2 + jnp.exp(log_var2) - log_var2 - 1.0)
    return (reconstruction + lower_kl + upper_kl) / images.shape[0]


def _handwritten_epoch(pixels):
    """A compiled epoch: every step binarizes a batch, differentiates the ELBO, updates Adam."""
    import jax
    import jax.numpy as jnp

    steps = pixels.shape[0] // BATCH
    beta1, beta2, epsilon, learning_rate = 0.9, 0.999, 1e-4, 1e-3

    def step(state, rows):
        weights, first, second, count, key = state
        key, binarization, noise = jax.random.split(key, 3)
        batch = pixels[rows]
        images = (jax.random.uniform(binarization, batch.shape) < batch).astype(jnp.float32)
        gradients = jax.grad(_negative_elbo)(weights, images, noise)
        count = count + 1.0
        step_size = learning_rate * jnp.sqrt(1 - beta2**count) / (1 - beta1**count)
        first = jax.tree.map(lambda m, g: m + (g - m) * (1 - beta1), first, gradients)
        second = jax.tree.map(lambda v, g: v + (g * g - v) * (1 - beta2), second, gradients)
        weights = jax.tree.map(
            lambda w, m, v: w - step_size * m / (jnp.sqrt(v) + epsilon), weights, first, second
        )
        return (weights, first, second, count, key), None

    @jax.jit
    def epoch(state, order):
        # The data stay on the device; an epoch's shuffle is a permutation of their row numbers,
        # cut into one row of BATCH numbers per step: (60000,) -> (3000, 20).
        return jax.lax.scan(step, state, order[: steps * BATCH].reshape(steps, BATCH))[0]

    return epoch


def _time_handwritten(pixels, epochs: int) -> list[float]:
    """Wall seconds of each epoch after a compiling one."""
    import jax
    import jax.numpy as jnp

    weights = _weights(0)
    zeros = jax.tree.map(jnp.zeros_like, weights)
    state = (weights, zeros, zeros, jnp.float32(0.0), jax.random.key(0))
    epoch = _handwritten_epoch(pixels)
    orders = jax.random.split(jax.random.key(1), epochs + 1)
    shuffle = jax.jit(lambda key: jax.random.permutation(key, pixels.shape[0]))
    state = jax.block_until_ready(epoch(state, shuffle(orders[0])))
    seconds = []
    for key in orders[1:]:
        start = time.perf_counter()
        state = jax.block_until_ready(epoch(state, shuffle(key)))
        seconds.append(time.perf_counter() - start)
    return seconds


def _time_project(data_path: str, epochs: int) -> list[float]:
    """Wall seconds of each of the project's epochs after the first."""
    import keras

    from vae_mnist.presets import preset_config
    from vae_mnist.training import train

    class Clock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            marks.append(time.perf_counter())

    config = preset_config("iwae2015-2layer").replace(epochs=epochs + 1)
    data = config.data.load(data_path)
    marks: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        train(config, data, folder, verbose=0, callbacks=[Clock()])
    return [end - start for start, end in itertools.pairwise(marks)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="mnist.npz (Keras' layout)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per side (default: 2)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of both sides (default: 2)")
    arguments = parser.parse_args()
    import jax.numpy as jnp
    import numpy as np

    with np.load(arguments.data, allow_pickle=False) as archive:
        pixels = jnp.asarray(archive["x_train"].reshape(-1, 784).astype(np.float32) / 255.0)
    rows = []
    for _ in range(arguments.repeats):
        rows.append(("hand-written JAX", _time_handwritten(pixels, arguments.epochs)))
        rows.append(("vae-mnist", _time_project(arguments.data, arguments.epochs)))
    print("path               s/epoch (each)            median")
    for name, seconds in rows:
        each = " ".join(f"{value:.2f}" for value in seconds)
        print(f"{name:<18} {each:<25} {statistics.median(seconds):.2f}")


if __name__ == "__main__":
    main()
