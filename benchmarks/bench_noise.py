"""JAX's Threefry hash on the CPU: its rolled lowering against vae-mnist's unrolled one.

One compiled program draws, in a `lax.scan` of training-sized steps, what a step of `iwae2015`
draws (a batch of 20 × 784 uniforms for the dynamic binarization and 20 × 50 normals for the
code); it is compiled once with JAX's own lowering and once with `vae_mnist.noise`'s, and the
two alternate. It prints CPU and wall seconds per epoch's worth of steps, and checks that both
draw the same numbers.

    KERAS_BACKEND=jax python benchmarks/bench_noise.py --steps 3000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")


def _draws(steps: int, batch: int):
    """A compiled program that draws `steps` steps' noise and returns a checksum."""
    import jax
    import jax.numpy as jnp

    def step(carry, _):
        key, checksum = carry
        key, binarization, code = jax.random.split(key, 3)
        uniform = jax.random.uniform(binarization, (batch, 784))
        normal = jax.random.normal(code, (batch, 50))
        return (key, checksum + uniform.sum() + normal.sum()), None

    @jax.jit
    def run(key):
        (_, checksum), _ = jax.lax.scan(step, (key, jnp.float32(0.0)), None, length=steps)
        return checksum

    return run


def _timed(program, key, repeats: int) -> tuple[float, float, float]:
    """Median CPU and wall seconds of one call (after a compiling call), and its value."""
    program(key).block_until_ready()
    cpu, wall = [], []
    for _ in range(repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        value = float(program(key).block_until_ready())
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return statistics.median(cpu), statistics.median(wall), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="steps per call (default: 3000)")
    parser.add_argument("--batch", type=int, default=20, help="images per step (default: 20)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls (default: 3)")
    arguments = parser.parse_args()
    import jax

    from vae_mnist import noise

    key = jax.random.PRNGKey(0)
    # JAX's rolled lowering: compiled (and so fixed) before the unrolled one is installed.
    rolled = _draws(arguments.steps, arguments.batch)
    rolled(key).block_until_ready()
    noise.install_unrolled_threefry()
    unrolled = _draws(arguments.steps, arguments.batch)
    print(f"{'lowering':<10}{'cpu s':>8}{'wall s':>8}   checksum")
    for _ in range(2):
        for name, program in (("rolled", rolled), ("unrolled", unrolled)):
            cpu, wall, value = _timed(program, key, arguments.repeats)
            print(f"{name:<10}{cpu:8.3f}{wall:8.3f}   {value!r}")


if __name__ == "__main__":
    main()
