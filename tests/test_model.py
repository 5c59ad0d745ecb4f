"""The model: shapes, the sampling layer, the loss terms, and save -> load round trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

import vae_mnist
from vae_mnist import VAEConfig, build_decoder, build_encoder, build_mean_encoder, build_vae
from vae_mnist.losses import kl_divergence, reconstruction_loss
from vae_mnist.model import Sampling


def test_model_shapes():
    encoder = build_encoder(784, 32, 3)
    decoder = build_decoder(784, 32, 3)
    images = np.random.default_rng(0).random((5, 784)).astype("float32")
    z_mean, z_log_var = encoder(images)
    assert tuple(z_mean.shape) == (5, 3) and tuple(z_log_var.shape) == (5, 3)
    assert tuple(decoder(np.zeros((5, 3), "float32")).shape) == (5, 784)
    assert tuple(build_mean_encoder(encoder)(images).shape) == (5, 3)
    vae = build_vae(VAEConfig(intermediate_dim=32, latent_dim=3))
    outputs = vae(images)
    assert tuple(outputs["reconstruction"].shape) == (5, 784)
    assert tuple(outputs["z_mean"].shape) == (5, 3)


def test_default_architecture_is_the_2017_example():
    vae = build_vae(VAEConfig())
    sizes = [tuple(weight.shape) for weight in vae.encoder.weights + vae.decoder.weights]
    assert sizes == [
        (784, 256),
        (256,),
        (256, 2),
        (2,),
        (256, 2),
        (2,),
        (2, 256),
        (256,),
        (256, 784),
        (784,),
    ]
    assert vae.decoder.layers[-1].activation.__name__ == "sigmoid"
    assert vae.encoder.get_layer("encoder_hidden").activation.__name__ == "relu"


def test_sampling_statistics():
    layer = Sampling(epsilon_std=1.0, seed=3)
    count = 200_000
    z_mean = np.tile(np.array([[1.5, -2.0]], "float32"), (count, 1))
    z_log_var = np.tile(np.log(np.array([[0.25, 4.0]], "float32")), (count, 1))
    z = ops.convert_to_numpy(layer([z_mean, z_log_var]))
    np.testing.assert_allclose(z.mean(axis=0), [1.5, -2.0], atol=0.02)
    np.testing.assert_allclose(z.std(axis=0), [0.5, 2.0], rtol=0.01)
    assert abs(np.corrcoef(z.T)[0, 1]) < 0.01


def test_sampling_is_repeatable_under_a_seed_and_varies_between_calls():
    inputs = [np.zeros((4, 2), "float32"), np.zeros((4, 2), "float32")]
    first, second = Sampling(seed=7), Sampling(seed=7)
    a, b = ops.convert_to_numpy(first(inputs)), ops.convert_to_numpy(second(inputs))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, ops.convert_to_numpy(first(inputs)))


def test_kl_matches_the_closed_form_and_monte_carlo():
    mean = np.array([[0.3, -1.2]], "float32")
    log_var = np.array([[np.log(0.5), np.log(2.0)]], "float32")
    variance = np.exp(log_var)
    closed_form = np.sum(0.5 * (variance + mean**2 - 1.0 - log_var))
    value = float(ops.convert_to_numpy(kl_divergence(mean, log_var))[0])
    assert value == pytest.approx(closed_form, rel=1e-6)
    rng = np.random.default_rng(0)
    z = mean + np.sqrt(variance) * rng.standard_normal((400_000, 2))
    log_q = -0.5 * np.sum(np.log(2 * np.pi * variance) + (z - mean) ** 2 / variance, axis=1)
    log_p = -0.5 * np.sum(np.log(2 * np.pi) + z**2, axis=1)
    assert np.mean(log_q - log_p) == pytest.approx(value, abs=0.01)
    assert float(ops.convert_to_numpy(kl_divergence(np.zeros((1, 2)), np.zeros((1, 2))))[0]) == 0


def test_reconstruction_loss_by_hand():
    images = np.array([[1.0, 0.0, 0.5]], "float32")
    decoded = np.array([[0.9, 0.2, 0.5]], "float32")
    by_hand = -(np.log(0.9) + np.log(0.8) + 0.5 * np.log(0.5) + 0.5 * np.log(0.5))
    value = float(ops.convert_to_numpy(reconstruction_loss(images, decoded))[0])
    assert value == pytest.approx(by_hand, rel=1e-5)
    # 784 times the mean over pixels, as the 2017 example wrote it.
    mean_form = 3 * float(
        np.mean(ops.convert_to_numpy(keras.losses.binary_crossentropy(images, decoded)))
    )
    assert value == pytest.approx(mean_form, rel=1e-4)
    # Saturated outputs are clipped, so the loss stays finite.
    assert np.isfinite(ops.convert_to_numpy(reconstruction_loss(images, np.zeros((1, 3)))))


def test_compute_loss_is_the_batch_mean_of_both_terms():
    vae = build_vae(VAEConfig(intermediate_dim=8))
    images = np.random.default_rng(1).random((6, 784)).astype("float32")
    outputs = vae(images)
    expected = np.mean(
        ops.convert_to_numpy(reconstruction_loss(images, outputs["reconstruction"]))
        + ops.convert_to_numpy(kl_divergence(outputs["z_mean"], outputs["z_log_var"]))
    )
    loss = float(ops.convert_to_numpy(vae.compute_loss(images, None, outputs)))
    assert loss == pytest.approx(float(expected), rel=1e-5)
    names = {metric.name for metric in vae.metrics}
    assert {"reconstruction_loss", "kl_loss"} <= names


def test_get_config_returns_every_constructor_argument():
    layer = Sampling(epsilon_std=0.5, seed=4)
    assert {"epsilon_std": 0.5, "seed": 4}.items() <= layer.get_config().items()
    vae = vae_mnist.VAE(784, 16, 3, 0.5, 9)
    config = vae.get_config()
    for key, value in dict(
        original_dim=784, intermediate_dim=16, latent_dim=3, epsilon_std=0.5, seed=9
    ).items():
        assert config[key] == value
    assert vae_mnist.VAE.from_config(config).get_config() == config


def test_save_load_gives_identical_outputs(tmp_path):
    vae = build_vae(VAEConfig(intermediate_dim=16, seed=5))
    images = np.random.default_rng(2).random((8, 784)).astype("float32")
    mean_encoder = build_mean_encoder(vae.encoder)
    for name, model in (("vae", vae), ("encoder", mean_encoder), ("decoder", vae.decoder)):
        model.save(tmp_path / f"{name}.keras")
    loaded = {
        name: keras.saving.load_model(tmp_path / f"{name}.keras", safe_mode=True)
        for name in ("vae", "encoder", "decoder")
    }
    z = np.random.default_rng(3).standard_normal((8, 2)).astype("float32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded["decoder"](z)), ops.convert_to_numpy(vae.decoder(z))
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded["encoder"](images)), ops.convert_to_numpy(mean_encoder(images))
    )
    # The sampling layer's seed state travels with the model, so even its draws agree.
    original, reloaded = vae(images), loaded["vae"](images)
    for key in ("reconstruction", "z_mean", "z_log_var"):
        np.testing.assert_allclose(
            ops.convert_to_numpy(reloaded[key]), ops.convert_to_numpy(original[key]), rtol=1e-6
        )
    assert isinstance(loaded["vae"], vae_mnist.VAE)
