"""Compiled chunks of steps: `steps_per_execution` training steps as one XLA program.

Keras' JAX trainer runs `steps_per_execution` as a Python loop around the compiled step, so
every step pays a dispatch and a copy of its batch; at small batches (Burda et al.'s 20) that
costs as much as the arithmetic. Its TensorFlow trainer loops in the graph, but launches each
step's XLA program separately and pulls each batch from `tf.data` between them. Here the chunk's
batches are stacked, copied once, and the steps run inside one compiled loop (`jax.lax.scan`,
or a `tf.while_loop` under XLA), so one chunk is one call. The step is Keras' own (`train_step`
or `test_step`), so the arithmetic, the random streams and the metrics are those of the loop;
callbacks still run at chunk boundaries, as Keras calls them.

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

    On JAX, `step(state, data) -> (logs, state)` is a stateless Keras step, and the result takes
    the trainer's `(state, iterator)` and returns the last step's logs and the final state; on
    TensorFlow, `step(data) -> logs` updates the model's variables, and the result takes the
    iterator and returns the last step's logs. Either raises `StopIteration` when the iterator
    has nothing left, as Keras' own iterator functions do.
    """
    if keras.backend.backend() == "tensorflow":
        return _TensorFlowChunkRunner(step, steps)
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


def _stacked_runs(batches: list, stack: Callable) -> list:
    """The batches as runs of one shape each, stacked by `stack`: ``(chunk, batch, ...)``
    arrays per entry of a batch's structure. An epoch's last batch may be smaller than the
    rest, and arrays of two shapes do not stack, so it runs as a chunk of its own."""
    runs: list[tuple[list, list]] = []
    for batch in batches:
        shape = [tuple(value.shape) for value in keras.tree.flatten(batch) if value is not None]
        if runs and runs[-1][0] == shape:
            runs[-1][1].append(batch)
        else:
            runs.append((shape, [batch]))
    return [
        keras.tree.map_structure(lambda *values: None if values[0] is None else stack(values), *run)
        for _, run in runs
    ]


class _ChunkRunner:
    """Feeds a compiled chunk function from Keras' batch iterator, one chunk ahead.

    JAX returns from a compiled call before the arithmetic ends, so the next chunk's batches
    are gathered and stacked on the host while this one runs, as Keras' step loop overlaps
    each step's batch with the step before it.
    """

    def __init__(self, compiled: Callable, steps: int) -> None:
        self.compiled = compiled
        self.steps = steps
        self.ahead: tuple[Iterator, list] | None = None

    def _stack(self, iterator: Iterator) -> list:
        return _stacked_runs(list(itertools.islice(iterator, self.steps)), np.stack)

    def __call__(self, state: Any, iterator: Iterator) -> tuple[Any, Any]:
        ahead, self.ahead = self.ahead, None
        runs = []
        if ahead is not None and ahead[0] is iterator:
            runs = ahead[1]
        if not runs:
            # Nothing gathered ahead from this iterator: a new epoch, or the first call.
            runs = self._stack(iterator)
        if not runs:
            raise StopIteration
        for stacked in runs:
            result = self.compiled(state, stacked)
            state = result[1]
        self.ahead = (iterator, self._stack(iterator))
        return result


class _TensorFlowChunkRunner:
    """Runs up to `steps` of Keras' TensorFlow steps as one XLA program.

    TensorFlow runs eagerly between calls, so the chunk's batches are pulled from the iterator
    and stacked before the call, then one XLA call runs the steps on them.
    """

    def __init__(self, step: Callable, steps: int) -> None:
        import tensorflow as tf

        self.step = step
        self.steps = steps
        self.compiled = tf.function(self._run, jit_compile=True)

    def _run(self, stacked: Any) -> Any:
        import tensorflow as tf

        def batch(index):
            return keras.tree.map_structure(lambda value: value[index], stacked)

        def body(index):
            self.step(batch(index))
            return (index + 1,)

        # (chunk, batch, ...): all but the last batch in the loop; the last one gives the logs.
        last = tf.shape(keras.tree.flatten(stacked)[0])[0] - 1
        (index,) = tf.while_loop(lambda index: index < last, body, (tf.constant(0),))
        return self.step(batch(index))

    def __call__(self, iterator: Any) -> Any:
        import tensorflow as tf

        batches = []
        for _ in range(self.steps):
            optional = iterator.get_next_as_optional()
            if not optional.has_value():
                break
            batches.append(optional.get_value())
        if not batches:
            raise StopIteration
        for stacked in _stacked_runs(batches, tf.stack):
            logs = self.compiled(stacked)
        return logs


def compiles_chunks(model: Any) -> bool:
    """Whether `model` trains in compiled chunks: asked for, offered by its network, on JAX or
    TensorFlow, compiled, more than one step a call."""
    return (
        model.run_config.training.compiled_chunks
        and model.run_config.network.offers("compiled_chunks")
        and keras.backend.backend() in ("jax", "tensorflow")
        and bool(model.jit_compile)
        and not model.run_eagerly
        and model.steps_per_execution > 1
        and keras.distribution.distribution() is None
    )
