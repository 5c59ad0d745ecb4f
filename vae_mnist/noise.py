"""Noise that stays fast when TensorFlow compiles the training step with XLA.

Keras' `keras.random.uniform` and `keras.random.normal` let TensorFlow choose the generator
("auto_select"), which on a CPU is Philox; inside XLA on a CPU that choice compiles to a program
far slower than Philox named (README, Speed, measures it), which made XLA-compiled training of
the binarized presets slower than without XLA. So on TensorFlow the noise is drawn with Philox
named, which gives Keras' own values, draw for draw. JAX and PyTorch draw through
`keras.random` unchanged.

On JAX, every draw hashes its counters with Threefry-2x32 (20 rounds: five blocks of four
rounds, a key injection after each block; Salmon et al., "Parallel random numbers: as easy as
1, 2, 3", 2011). JAX lowers that hash for the CPU as a loop over the five blocks, to compile
faster; inside a compiled training step each such loop runs as a loop of small programs, where
the same rounds unrolled fuse into one. So on JAX the hash is lowered unrolled
(`unrolled_threefry_2x32`, installed on the first draw): the same bits, drawn in less time.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

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
    if keras.backend.backend() == "jax":
        install_unrolled_threefry()
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
    if keras.backend.backend() == "jax":
        install_unrolled_threefry()
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


# Threefry-2x32's rotation distances, for the even and the odd blocks of four rounds.
_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
# The constant that makes the third key word: key1 ^ key2 ^ this.
_THREEFRY_PARITY = 0x1BD11BDA


def unrolled_threefry_2x32(key1: Any, key2: Any, count1: Any, count2: Any) -> tuple[Any, Any]:
    """Threefry-2x32 with 20 rounds, written out: the pair of uint32 words that the key
    ``(key1, key2)`` hashes the counter ``(count1, count2)`` to, element by element (the
    arguments broadcast; no reduction).

    Each round is ``x1 += x2; x2 = rotl(x2, r) ^ x1``; after each block of four rounds the
    key words ``k[(b + 1) % 3]`` and ``k[(b + 2) % 3] + b + 1`` are added, with
    ``k = (key1, key2, key1 ^ key2 ^ 0x1BD11BDA)``. Written with operators only, so it runs on
    NumPy's uint32 arrays as well as on JAX's.
    """
    keys = (key1, key2, key1 ^ key2 ^ np.uint32(_THREEFRY_PARITY))
    x1, x2 = count1 + keys[0], count2 + keys[1]
    for block in range(5):
        for distance in _THREEFRY_ROTATIONS[block % 2]:
            x1 = x1 + x2
            x2 = (x2 << np.uint32(distance)) | (x2 >> np.uint32(32 - distance))
            x2 = x1 ^ x2
        x1 = x1 + keys[(block + 1) % 3]
        x2 = x2 + keys[(block + 2) % 3] + np.uint32(block + 1)
    return x1, x2


@functools.cache
def install_unrolled_threefry() -> None:
    """Lower JAX's Threefry primitive on the CPU with `unrolled_threefry_2x32` (once per
    process): programs compiled from then on draw the same bits faster."""
    from jax.extend.random import threefry2x32_p
    from jax.interpreters import mlir

    rule = mlir.lower_fun(unrolled_threefry_2x32, multiple_results=True)
    mlir.register_lowering(threefry2x32_p, rule, platform="cpu")
