"""Annealed importance sampling of an RBM's log Z: vae-mnist's loop against a plain one.

The RBM presets with halves above 16 units estimate log Z by AIS at every epoch's end (100 runs
of 10,000 steps), in NumPy float64, a loop of small array operations. This times
`vae_mnist.rbm.annealed_importance_sampling_log_partition` against a plain reference written
here (each step evaluates both temperatures' marginals and the Gibbs sweep separately, as the
textbook loop does) on the same random RBM and the same random stream, alternating, and prints
CPU seconds, the ratio, and both estimates, which must agree to rounding.

    python benchmarks/bench_ais.py --halves 32,32 64,64 --steps 10000 --repeats 2
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from vae_mnist.rbm import annealed_importance_sampling_log_partition


def _softplus(values: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, values)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return np.exp(-_softplus(-values))


def plain_ais(bias1, bias2, coupling, chains: int, steps: int, rng) -> tuple[float, float]:
    """AIS from the factorial base of the biases to the RBM, the chains on the smaller half."""
    if bias1.size > bias2.size:
        bias1, bias2, coupling = bias2, bias1, coupling.T

    def log_marginal(states, beta):
        return states @ bias1 + np.sum(_softplus(bias2 + states @ (beta * coupling)), axis=-1)

    betas = np.linspace(0.0, 1.0, steps + 1)
    states = (rng.random((chains, bias1.size)) < _sigmoid(bias1)).astype(np.float64)
    log_weights = np.zeros(chains)
    for previous_beta, beta in zip(betas[:-1], betas[1:], strict=True):
        log_weights += log_marginal(states, beta) - log_marginal(states, previous_beta)
        if beta < 1.0:
            others_probability = _sigmoid(bias2 + beta * (states @ coupling))
            others = (rng.random(others_probability.shape) < others_probability).astype(float)
            states_probability = _sigmoid(bias1 + beta * (others @ coupling.T))
            states = (rng.random(states.shape) < states_probability).astype(np.float64)
    base = float(np.sum(_softplus(bias1)) + np.sum(_softplus(bias2)))
    largest = np.max(log_weights)
    log_mean = largest + math.log(np.mean(np.exp(log_weights - largest)))
    scaled = np.exp(log_weights - largest)
    return base + log_mean, float(np.std(scaled, ddof=1) / (np.mean(scaled) * math.sqrt(chains)))


def _timed(function, *arguments) -> tuple[float, tuple[float, float]]:
    start = time.process_time()
    result = function(*arguments)
    return time.process_time() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--halves", nargs="+", default=["32,32", "64,64"])
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=2)
    arguments = parser.parse_args()
    # The project's first call converts through Keras, which loads its backend: not timed.
    annealed_importance_sampling_log_partition(np.zeros(2), np.zeros(2), np.zeros((2, 2)), 2, 2)
    print(f"AIS: {arguments.chains} runs of {arguments.steps} steps, CPU seconds per estimate")
    print(f"{'halves':<8} {'plain s':>8} {'project s':>10} {'speed-up':>9}  log Z (plain, project)")
    for halves in arguments.halves:
        first, second = (int(value) for value in halves.split(","))
        random = np.random.default_rng(0)
        # Weights of a trained RBM's scale: the estimate's variance comes from the coupling.
        bias1, bias2 = random.normal(0, 0.5, first), random.normal(0, 0.5, second)
        coupling = random.normal(0, 2.0 / math.sqrt(first + second), (first, second))
        plain, project = [], []
        for _ in range(arguments.repeats):
            seconds, reference = _timed(
                plain_ais, bias1, bias2, coupling, arguments.chains, arguments.steps,
                np.random.default_rng(1),
            )  # fmt: skip
            plain.append(seconds)
            seconds, estimate = _timed(
                annealed_importance_sampling_log_partition, bias1, bias2, coupling,
                arguments.chains, arguments.steps, None, np.random.default_rng(1),
            )  # fmt: skip
            project.append(seconds)
        plain_s, project_s = statistics.median(plain), statistics.median(project)
        print(
            f"{halves:<8} {plain_s:>8.3f} {project_s:>10.3f} {plain_s / project_s:>8.2f}x  "
            f"{reference[0]:.6f} ± {reference[1]:.4f}, {estimate[0]:.6f} ± {estimate[1]:.4f}"
        )


if __name__ == "__main__":
    main()
