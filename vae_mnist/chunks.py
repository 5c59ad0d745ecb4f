"""Compiled chunks of steps on JAX: `steps_per_execution` steps as one XLA program.

Keras' JAX trainer runs `steps_per_execution` as a Python loop around the compiled step, so
every step pays a dispatch and a copy of its batch; at small batches (Burda et al.'s 20) that
costs as much as the arithmetic. Here the chunk's batches are stacked on the host, copied once,
and the step runs inside `jax.lax.scan`, so one chunk is one call. The step is Keras' own
(`train_step` or `test_step`, stateless on JAX), so the arithmetic, the random streams and the
metrics are those of the loop; callbacks still run at chunk boundaries, as Keras calls them.

It is a training setting (`--compiled-chunks`, on by default; `--no-compiled-chunks` gives
Keras' loop). The two give the same numbers; README (Speed) has what each costs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from vae_mnist.backend import keras


def chunked(step: Callable, steps: int) -> Callable:
    """A Keras iterator function running up to `steps` calls of `step` as one compiled program.

    `step(state, data) -> (logs, state)` is a stateless Keras step; the result takes the
    trainer's `(state, iterator)` and returns the last step's logs and the final state, raising
    `StopIteration` when the iterator has nothing left, as Keras' own iterator functions do.
    """
    import jax

    def run(state: Any, stacked: Any) -> tuple[Any, Any]:
        def body(carried, data):
            _, carried = step(carried, data)
            return carried, None

        # (chunk, batch, ...) -> all but the last batch scanned; the last one gives the logs.
        head = keras.tree.map_structure(lambda value: value[:-1], stacked)
        state, _ = jax.lax.scan(body, state, head)
        return step(state, keras.tree.map_structure(lambda value: value[-1], stacked))

    # The state is donated, as Keras donates it to its own compiled step.
    return _ChunkRunner(jax.jit(run, donate_argnums=0), steps)


class _ChunkRunner:
    """Feeds a compiled chunk function from Keras' batch iterator, one chunk ahead.

    JAX returns from a compiled call before the arithmetic ends, so the next chunk's batches
    are gathered and stacked on the host while this one runs, as Keras' step loop overlaps
    each step's batch with the step before it.
    """

    def __init__(self, compiled: Callable, steps: int) -> None:
        self.compiled = compiled
        self.steps = steps
        self.ahead: tuple[Iterator, Any] | None = None

    def _stack(self, iterator: Iterator) -> Any:
        batches = list(itertools.islice(iterator, self.steps))
        if not batches:
            return None
        # A tuple of (batch, ...) arrays per step -> one (chunk, batch, ...) array per entry.
        return keras.tree.map_structure(
            lambda *values: None if values[0] is None else np.stack(values), *batches
        )

    def __call__(self, state: Any, iterator: Iterator) -> tuple[Any, Any]:
        ahead, self.ahead = self.ahead, None
        stacked = None
        if ahead is not None and ahead[0] is iterator:
            stacked = ahead[1]
        if stacked is None:
            # Nothing gathered ahead from this iterator: a new epoch, or the first call.
            stacked = self._stack(iterator)
        if stacked is None:
            raise StopIteration
        result = self.compiled(state, stacked)
        self.ahead = (iterator, self._stack(iterator))
        return result


def compiles_chunks(model: Any) -> bool:
    """Whether `model` trains in compiled chunks: asked for, on JAX, compiled, more than one
    step a call."""
    return (
        model.run_config.training.compiled_chunks
        and keras.backend.backend() == "jax"
        and bool(model.jit_compile)
        and not model.run_eagerly
        and model.steps_per_execution > 1
        and keras.distribution.distribution() is None
    )
