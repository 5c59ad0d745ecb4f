"""How noisy each smoothing's pathwise gradient is: per-draw gradients of a smooth test function.

For one binary unit with posterior logit l, each smoothing draws ζ from uniform noise and
carries a gradient to l. This script draws many ζ at a given logit, takes the gradient of the
test function f(ζ) = (ζ - 0.3)² for each draw, and prints the gradients' mean (an estimate of
the same derivative for the three smoothings of a binary code, ``q (1 - q) (E_r1 f - E_r0 f)``,
and of a different one for the binary Concrete, whose ζ has another distribution),
their standard deviation, a high quantile of their size, and the share of draws whose gradient
is not zero: the heavier the tail, the harder Adam's course.

    KERAS_BACKEND=jax python benchmarks/bench_gradients.py --logits=-1,-4 --draws 1000000
"""

from __future__ import annotations

import argparse

import numpy as np

from vae_mnist.backend import ops
from vae_mnist.rbm import (
    overlapping_exponential_inverse_cdf,
    power_function_smoothing,
    spike_and_exponential_inverse_cdf,
)

CENTRE = 0.3


def smoothings() -> dict:
    """Each smoothing as ``(logit, uniform noise) -> ζ``, at the presets' settings."""
    return {
        "spike_exponential, beta 5": lambda logit, rho: spike_and_exponential_inverse_cdf(
            ops.sigmoid(logit), rho, 5.0
        ),
        "overlapping_exponential, beta 5": lambda logit, rho: overlapping_exponential_inverse_cdf(
            ops.sigmoid(logit), rho, 5.0
        ),
        "power_function, beta 30": lambda logit, rho: power_function_smoothing(
            ops.sigmoid(logit), rho, 30.0
        ),
        "power_function, beta 40": lambda logit, rho: power_function_smoothing(
            ops.sigmoid(logit), rho, 40.0
        ),
        "binary Concrete, tau 0.5": lambda logit, rho: ops.sigmoid(
            (logit + ops.log(rho) - ops.log1p(-rho)) / 0.5
        ),
    }


def per_draw_gradients(smooth, logit: float, rho: np.ndarray) -> np.ndarray:
    """d f(ζ_i) / d l for every draw i: one logit per draw, all at the same value."""
    import keras

    if keras.backend.backend() != "jax":
        raise SystemExit("bench_gradients.py: run it with KERAS_BACKEND=jax")
    import jax

    def total(logits):
        zeta = smooth(logits, ops.convert_to_tensor(rho))
        return ops.sum(ops.square(zeta - CENTRE))

    return np.asarray(jax.grad(total)(np.full(rho.shape, logit, "float32")), np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logits", default="-1,-4", help="comma-separated logits (default -1,-4)")
    parser.add_argument("--draws", type=int, default=1_000_000, help="draws per row")
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    logits = [float(value) for value in arguments.logits.split(",")]
    rng = np.random.default_rng(arguments.seed)
    rho = rng.uniform(1e-7, 1.0 - 1e-7, arguments.draws).astype("float32")
    print(f"{'smoothing':34} {'logit':>6} {'mean':>9} {'sd':>8} {'|g| 99.99%':>11} {'non-zero':>9}")
    for logit in logits:
        for name, smooth in smoothings().items():
            values = per_draw_gradients(smooth, logit, rho)
            print(
                f"{name:34} {logit:6.1f} {values.mean():9.4f} {values.std():8.3f} "
                f"{np.quantile(np.abs(values), 0.9999):11.3f} {np.mean(values != 0.0):9.3f}"
            )


if __name__ == "__main__":
    main()
