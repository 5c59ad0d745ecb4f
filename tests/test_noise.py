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
