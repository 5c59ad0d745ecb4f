"""Noise that stays fast when TensorFlow compiles the training step with XLA.

Keras' `keras.random.uniform` and `keras.random.normal` let TensorFlow choose the generator
("auto_select"), which on a CPU is Philox; inside XLA on a CPU that choice compiles to a program
about 50 times slower than Philox named: the 78,400 values of one batch's dynamic binarization
took 34 ms against 0.65 ms, which made XLA-compiled training of the binarized presets 9 times
slower than without XLA. So on TensorFlow the noise is drawn with Philox named, which gives
Keras' own values, draw for draw. JAX and PyTorch draw through `keras.random` unchanged.
"""

from __future__ import annotations

from typing import Any

from vae_mnist.backend import keras

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
    return tf.random.stateless_uniform(
        shape,
        seed=_tensorflow_seed(seed),
        minval=tf.cast(minval, dtype),
        maxval=tf.cast(maxval, dtype),
        dtype=dtype,
        alg="philox",
    )


def normal(
    shape: tuple, seed: Seed, dtype: str | None = None, mean: float = 0.0, stddev: float = 1.0
) -> TensorLike:
    """ε ~ N(mean, stddev²) of the given shape (no reduction), as `keras.random.normal`.

    Args:
        shape: the output shape.
        seed: a `keras.random.SeedGenerator` (advanced by one draw) or an integer.
        dtype: a float type; Keras' float type by default.
        mean: the mean.
        stddev: the standard deviation.
    """
    if keras.backend.backend() != "tensorflow":
        return keras.random.normal(shape, mean=mean, stddev=stddev, dtype=dtype, seed=seed)
    import tensorflow as tf

    dtype = dtype or keras.config.floatx()
    return tf.random.stateless_normal(
        shape, seed=_tensorflow_seed(seed), mean=mean, stddev=stddev, dtype=dtype, alg="philox"
    )


def _tensorflow_seed(seed: Seed):
    """The int32 pair that TensorFlow's stateless draws take, as Keras makes it from `seed`."""
    import tensorflow as tf

    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()
    else:
        seed = tf.constant([int(seed), 0], dtype="int64")
    # The generator's state is int64; TensorFlow's stateless draws want int32.
    if seed.dtype != tf.int32:
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), "int32")
    return seed
