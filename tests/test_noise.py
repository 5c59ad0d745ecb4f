"""The noise helpers: Keras' draws, and the same draws inside a compiled function."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from vae_mnist import noise


def numpy(value) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value))


def test_uniform_draws_what_keras_draws_from_the_same_seed():
    ours = numpy(noise.uniform((64, 7), seed=keras.random.SeedGenerator(5)))
    keras_own = numpy(keras.random.uniform((64, 7), seed=keras.random.SeedGenerator(5)))
    np.testing.assert_array_equal(ours, keras_own)
    assert ours.dtype == np.float32
    assert 0.0 <= ours.min() and ours.max() < 1.0


def test_normal_draws_what_keras_draws_from_the_same_seed():
    ours = numpy(noise.normal((500, 3), seed=keras.random.SeedGenerator(2), stddev=2.0))
    keras_own = numpy(keras.random.normal((500, 3), seed=keras.random.SeedGenerator(2), stddev=2.0))
    np.testing.assert_array_equal(ours, keras_own)
    assert abs(ours.std() - 2.0) < 0.2


def test_uniform_advances_its_generator_and_repeats_under_an_integer_seed():
    generator = keras.random.SeedGenerator(1)
    first, second = (numpy(noise.uniform((100,), seed=generator)) for _ in range(2))
    assert not np.array_equal(first, second)
    again = [numpy(noise.uniform((100,), seed=3, minval=-2.0, maxval=2.0)) for _ in range(2)]
    np.testing.assert_array_equal(*again)
    assert -2.0 <= again[0].min() and again[0].max() < 2.0
    assert again[0].std() > 0.5  # Spread over the whole interval, not stuck near one value.


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="XLA as TensorFlow uses it")
def test_noise_inside_xla_is_the_eager_noise():
    import tensorflow as tf

    for draw in (noise.uniform, noise.normal):
        compiled = tf.function(lambda draw=draw: draw((50, 784), seed=7), jit_compile=True)
        np.testing.assert_array_equal(numpy(compiled()), numpy(draw((50, 784), seed=7)))


# Random123's known answers for Threefry-2x32 with 20 rounds: (key, counter) -> output words.
THREEFRY_KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


def test_unrolled_threefry_gives_the_known_answers():
    keys, counters, answers = (
        np.array(column, dtype=np.uint32).T for column in zip(*THREEFRY_KNOWN_ANSWERS, strict=True)
    )
    words = noise.unrolled_threefry_2x32(keys[0], keys[1], counters[0], counters[1])
    np.testing.assert_array_equal(np.stack(words), answers)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX's Threefry lowering")
def test_jax_draws_hash_unrolled_with_the_same_bits():
    import jax
    from jax.extend.random import threefry_2x32

    noise.uniform((3,), seed=0)  # The first draw installs the unrolled lowering.
    key = np.array([0x13198A2E, 0x03707344], dtype=np.uint32)
    counts = np.arange(2_000, dtype=np.uint32)
    compiled = np.asarray(jax.jit(threefry_2x32)(key, counts))
    # JAX hashes the first half of the counts with the second: (x1, x2) pairs.
    expected = noise.unrolled_threefry_2x32(key[0], key[1], counts[:1_000], counts[1_000:])
    np.testing.assert_array_equal(compiled, np.concatenate(expected))
    program = jax.jit(lambda: noise.uniform((20, 784), seed=1)).lower().as_text()
    assert "while" not in program  # The rolled lowering's loop is gone.
