"""Uniform noise that stays fast when TensorFlow compiles the training step with XLA.

Keras' `keras.random.uniform` lets TensorFlow choose the generator ("auto_select"). Outside
XLA that is Philox on a CPU; inside XLA on a CPU it is another one, about 50 times slower: the
78,400 values of one batch's dynamic binarization took 34 ms, against 0.65 ms with Philox
named, which made XLA-compiled training of the binarized presets 9 times slower than without
XLA. So on TensorFlow the noise is drawn with Philox named; the values outside XLA are
Keras' own, draw for draw. JAX and PyTorch draw through `keras.random` unchanged.
"""

from __future__ import annotations

from typing import Any

import keras

# A backend tensor: keras.ops accepts it.
TensorLike = Any
# A `keras.random.SeedGenerator` or an integer seed.
Seed = Any


def uniform(
    shape: tuple, seed: Seed, dtype: str | None = None, minval: float = 0.0, maxval: float = 1.0
) -> TensorLike:
    """U ~ Uniform[minval, maxval) of the given shape (no reduction), as `keras.random.uniform`.

    Args:
        shape: the output shape.
        seed: a `keras.random.SeedGenerator` (advanced by one draw) or an integer.
        dtype: a float type; Keras' float type by default.
        minval: the lower bound, included.
        maxval: the upper bound, excluded.
    """
    if keras.backend.backend() != "tensorflow":
        return keras.random.uniform(shape, minval=minval, maxval=maxval, dtype=dtype, seed=seed)
    import tensorflow as tf

    dtype = dtype or keras.config.floatx()
    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()
    else:
        seed = tf.constant([int(seed), 0], dtype="int64")
    # The generator's state is int64; TensorFlow's stateless draws want int32 (as Keras does it).
    if seed.dtype != tf.int32:
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), "int32")
    return tf.random.stateless_uniform(
        shape,
        seed=seed,
        minval=tf.cast(minval, dtype),
        maxval=tf.cast(maxval, dtype),
        dtype=dtype,
        alg="philox",
    )
