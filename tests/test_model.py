"""The model's parts: networks, latent, likelihoods, composition, and save -> load round trips."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

import vae_mnist
from vae_mnist.config import RunConfig
from vae_mnist.divergences import gaussian_kl_divergence
from vae_mnist.errors import ModelFileError
from vae_mnist.gaussian import GaussianPosterior, StandardNormalPrior
from vae_mnist.likelihoods import (
    BernoulliLikelihood,
    GaussianLikelihood,
    bernoulli_negative_log_likelihood,
    gaussian_negative_log_likelihood,
)
from vae_mnist.model import DynamicBinarization, PartLayer, build_vae, load_model
from vae_mnist.runs import load_trained_run
from vae_mnist.settings import kind_of

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def numpy(tensor) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(tensor))


def gaussian_posterior(seed: int | None = None, **settings) -> GaussianPosterior:
    """A Gaussian posterior with its seed state, hosted as the model hosts it."""
    return PartLayer(GaussianPosterior(**settings), seed).part


@pytest.mark.parametrize("network", ["mlp", "conv"])
def test_network_shapes(network):
    kind = kind_of("network", network)(hidden_layers=(32, 16), activation="tanh")
    encoder = kind.build_encoder({"first": (3, None), "second": (3, None)}, pixels=784)
    decoder = kind.build_decoder(
        {"pixels": (784, "sigmoid"), "other": (784, None)}, code_size=3, pixels=784
    )
    images = np.random.default_rng(0).random((5, 784)).astype("float32")
    first, second = encoder(images)
    assert tuple(first.shape) == (5, 3) and tuple(second.shape) == (5, 3)
    pixels, other = decoder(np.zeros((5, 3), "float32"))
    assert tuple(pixels.shape) == (5, 784) and tuple(other.shape) == (5, 784)
    pixels = ops.convert_to_numpy(pixels)
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0


def test_the_network_builders_of_earlier_versions_still_build():
    from vae_mnist.networks import build_decoder, build_encoder
    from vae_mnist.plotting import manifold_grid, manifold_points

    encoder = build_encoder({"z_mean": (2, None)}, hidden_layers=(8,), architecture="conv")
    assert [type(layer).__name__ for layer in encoder.layers].count("Conv2D") == 2
    decoder = build_decoder({"probabilities": (784, "sigmoid")}, code_size=2, hidden_layers=(8,))
    assert tuple(decoder.outputs[0].shape) == (None, 784)
    np.testing.assert_array_equal(manifold_grid(4).reshape(16, 2), manifold_points(4))


def test_mlp_hidden_layers_and_mirrored_decoder():
    vae = build_vae(RunConfig().replace(hidden_layers=(64, 32), activation="tanh", dimension=5))
    encoder_sizes = [tuple(w.shape) for w in vae.encoder.weights if len(w.shape) == 2]
    decoder_sizes = [tuple(w.shape) for w in vae.decoder.weights if len(w.shape) == 2]
    assert encoder_sizes == [(784, 64), (64, 32), (32, 5), (32, 5)]
    assert decoder_sizes == [(5, 32), (32, 64), (64, 784)]
    assert vae.encoder.get_layer("encoder_hidden_1").activation.__name__ == "tanh"


def test_a_network_without_hidden_layers_is_linear():
    """`hidden_layers` may be empty: the heads read the code or the image directly."""
    config = RunConfig.from_dict({"network": {"kind": "mlp", "hidden_layers": []}})
    vae = build_vae(config.replace(dimension=3))
    encoder_sizes = [tuple(w.shape) for w in vae.encoder.weights if len(w.shape) == 2]
    decoder_sizes = [tuple(w.shape) for w in vae.decoder.weights if len(w.shape) == 2]
    assert encoder_sizes == [(784, 3), (784, 3)] and decoder_sizes == [(3, 784)]
    images = np.random.default_rng(0).random((4, 784)).astype("float32")
    mean, _ = vae.encoder(images)
    decoded = numpy(vae.image_decoder()(mean))
    assert decoded.shape == (4, 784) and np.all((decoded >= 0) & (decoded <= 1))
    assert RunConfig.from_dict(config.to_dict()).network.hidden_layers == ()


def test_a_decoder_without_hidden_layers_beside_a_deeper_encoder():
    """`decoder_layers: none` is Rolfe's p(x|ζ): the image decoder linear, the rest unchanged."""
    from vae_mnist.presets import preset_config

    config = preset_config("gumbolt2018-continuous", decoder_layers="none", hidden_layers=(16,))
    vae = build_vae(config)
    encoder_sizes = [tuple(w.shape) for w in vae.encoder.weights if len(w.shape) == 2]
    decoder_sizes = [tuple(w.shape) for w in vae.decoder.weights if len(w.shape) == 2]
    assert encoder_sizes == [(784, 16), (16, 64), (16, 64)] and decoder_sizes == [(64, 784)]
    # The upper layer's network, which gives p(z1|z2), keeps its mirrored hidden layers.
    (prior_network,) = vae.upper_prior_networks
    assert [tuple(w.shape) for w in prior_network.weights if len(w.shape) == 2][:2] == [
        (64, 200),
        (200, 200),
    ]
    assert RunConfig.from_dict(config.to_dict()).network.decoder_layers == "none"


def test_a_configuration_without_decoder_layers_mirrors_the_encoder():
    """Runs saved before the setting existed have no `decoder_layers`: their decoders mirror."""
    config = RunConfig.from_dict({"network": {"kind": "mlp", "hidden_layers": [64, 32]}})
    assert config.network.decoder_layers == "mirrored"
    assert config.network.decoder_hidden_layers() == (32, 64)


def test_conv_network_is_the_keras_io_example():
    vae = build_vae(RunConfig().replace(network="conv", hidden_layers=(16,)))
    kinds = [type(layer).__name__ for layer in vae.encoder.layers]
    assert kinds.count("Conv2D") == 2
    filters = [layer.filters for layer in vae.encoder.layers if hasattr(layer, "filters")]
    assert filters == [32, 64]
    strides = [layer.strides for layer in vae.encoder.layers if hasattr(layer, "strides")]
    assert strides == [(2, 2), (2, 2)]
    assert [type(layer).__name__ for layer in vae.decoder.layers].count("Conv2DTranspose") == 3


def test_default_architecture_is_the_2017_example():
    vae = build_vae(RunConfig())
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
    assert vae.encoder.get_layer("encoder_hidden_1").activation.__name__ == "relu"
    assert isinstance(vae.posterior_part, GaussianPosterior) and vae.binarization is None
    assert isinstance(vae.prior_part, StandardNormalPrior)
    assert isinstance(vae.likelihood, BernoulliLikelihood)


def test_gaussian_latent_statistics():
    posterior = gaussian_posterior(seed=3, dimension=2, epsilon_std=1.0)
    count = 200_000
    parameters = {
        "z_mean": np.tile(np.array([[1.5, -2.0]], "float32"), (count, 1)),
        "z_log_var": np.tile(np.log(np.array([[0.25, 4.0]], "float32")), (count, 1)),
    }
    z = numpy(posterior.sample(parameters, training=True))
    np.testing.assert_allclose(z.mean(axis=0), [1.5, -2.0], atol=0.02)
    np.testing.assert_allclose(z.std(axis=0), [0.5, 2.0], rtol=0.01)
    assert abs(np.corrcoef(z.T)[0, 1]) < 0.01


def test_gaussian_latent_is_repeatable_under_a_seed_and_varies_between_calls():
    parameters = {"z_mean": np.zeros((4, 2), "float32"), "z_log_var": np.zeros((4, 2), "float32")}
    first, second = gaussian_posterior(seed=7), gaussian_posterior(seed=7)
    a, b = numpy(first.sample(parameters)), numpy(second.sample(parameters))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, numpy(first.sample(parameters)))


def test_gaussian_posterior_log_density_and_prior():
    posterior, prior = GaussianPosterior(dimension=2), StandardNormalPrior()
    parameters = {
        "z_mean": np.array([[0.5, -1.0]], "float32"),
        "z_log_var": np.log(np.array([[0.5, 2.0]], "float32")),
    }
    z, log_q = posterior.sample_exact(parameters, 4, keras.random.SeedGenerator(1))
    z, log_q = numpy(z), numpy(log_q)
    assert z.shape == (1, 4, 2) and log_q.shape == (1, 4)
    variance = np.array([0.5, 2.0])
    by_hand = -0.5 * np.sum(
        np.log(2 * np.pi * variance) + (z[0] - [0.5, -1.0]) ** 2 / variance, axis=-1
    )
    np.testing.assert_allclose(log_q[0], by_hand, rtol=1e-5)
    # The density of a given sample, as the Monte-Carlo KL takes it, is the same number.
    np.testing.assert_allclose(numpy(posterior.log_density(z, parameters))[0], by_hand, rtol=1e-5)
    np.testing.assert_allclose(
        numpy(prior.log_density(z))[0], -0.5 * np.sum(np.log(2 * np.pi) + z[0] ** 2, -1), rtol=1e-5
    )
    # The prior knows the Gaussian posterior's KL in closed form.
    np.testing.assert_allclose(
        numpy(prior.kl_divergence(posterior.distribution(parameters))),
        numpy(gaussian_kl_divergence(parameters["z_mean"], parameters["z_log_var"])),
    )


def test_kl_matches_the_closed_form_and_monte_carlo():
    mean = np.array([[0.3, -1.2]], "float32")
    log_var = np.array([[np.log(0.5), np.log(2.0)]], "float32")
    variance = np.exp(log_var)
    closed_form = np.sum(0.5 * (variance + mean**2 - 1.0 - log_var))
    value = float(numpy(gaussian_kl_divergence(mean, log_var))[0])
    assert value == pytest.approx(closed_form, rel=1e-6)
    rng = np.random.default_rng(0)
    z = mean + np.sqrt(variance) * rng.standard_normal((400_000, 2))
    log_q = -0.5 * np.sum(np.log(2 * np.pi * variance) + (z - mean) ** 2 / variance, axis=1)
    log_p = -0.5 * np.sum(np.log(2 * np.pi) + z**2, axis=1)
    assert np.mean(log_q - log_p) == pytest.approx(value, abs=0.01)
    assert float(numpy(gaussian_kl_divergence(np.zeros((1, 2)), np.zeros((1, 2))))[0]) == 0


def test_bernoulli_likelihood_by_hand():
    images = np.array([[1.0, 0.0, 0.5]], "float32")
    decoded = np.array([[0.9, 0.2, 0.5]], "float32")
    by_hand = -(np.log(0.9) + np.log(0.8) + 0.5 * np.log(0.5) + 0.5 * np.log(0.5))
    value = float(numpy(bernoulli_negative_log_likelihood(images, decoded))[0])
    assert value == pytest.approx(by_hand, rel=1e-5)
    # 784 times the mean over pixels, as the 2017 example wrote it.
    mean_form = 3 * float(np.mean(numpy(keras.losses.binary_crossentropy(images, decoded))))
    assert value == pytest.approx(mean_form, rel=1e-4)
    # Saturated outputs are clipped, so the loss stays finite.
    assert np.isfinite(numpy(bernoulli_negative_log_likelihood(images, np.zeros((1, 3)))))


def test_gaussian_likelihood_against_its_closed_form():
    images = np.array([[0.2, 0.9], [0.0, 1.0]], "float32")
    mean = np.array([[0.25, 0.5], [0.1, 0.8]], "float32")
    log_var = np.log(np.array([[0.01, 0.2], [0.5, 0.05]], "float32"))
    variance = np.exp(log_var.astype(np.float64))
    density = np.prod(
        np.exp(-((images - mean) ** 2) / (2 * variance)) / np.sqrt(2 * np.pi * variance), axis=1
    )
    value = numpy(gaussian_negative_log_likelihood(images, mean, log_var))
    np.testing.assert_allclose(value, -np.log(density), rtol=1e-5)
    part = GaussianLikelihood()
    decoded = {"x_mean": mean, "x_log_var": log_var}
    floored = numpy(part.log_variance(decoded))
    np.testing.assert_allclose(
        numpy(part.negative_log_likelihood(images, decoded)),
        numpy(gaussian_negative_log_likelihood(images, mean, floored)),
        rtol=1e-6,
    )
    # Variances far above the floor (σ ≥ 0.1 here against σ_min = 1/255) are nearly untouched.
    np.testing.assert_allclose(floored, log_var, atol=2e-3)
    np.testing.assert_array_equal(numpy(part.mean(decoded)), mean)


def test_gaussian_log_variance_never_falls_below_the_floor():
    part = GaussianLikelihood(minimum_std=0.01)
    raw = np.array([[-1000.0, -30.0, 2 * np.log(0.01), 0.0, 5.0]], "float32")
    floored = numpy(part.log_variance({"x_log_var": raw}))
    floor = 2 * np.log(0.01)
    assert np.all(floored >= floor - 1e-6)
    np.testing.assert_allclose(floored[0, :2], floor, atol=1e-4)  # far below: the floor
    np.testing.assert_allclose(floored[0, 2], floor + np.log(2.0), rtol=1e-6)  # at it: +log 2
    np.testing.assert_allclose(floored[0, 3:], raw[0, 3:], atol=1e-3)  # far above: itself
    # An image with ink where the decoder is sure of black costs a large but finite loss.
    images = np.ones((1, 5), "float32")
    decoded = {"x_mean": np.zeros((1, 5), "float32"), "x_log_var": raw}
    loss = numpy(part.negative_log_likelihood(images, decoded))
    assert np.all(np.isfinite(loss))
    with pytest.raises(ValueError, match="minimum_std"):
        GaussianLikelihood(minimum_std=0.0)


def test_gaussian_decoder_outputs_a_mean_and_a_log_variance():
    vae = build_vae(RunConfig().replace(likelihood="gaussian", hidden_layers=(8,)))
    outputs = vae(np.random.default_rng(0).random((3, 784)).astype("float32"))
    assert tuple(outputs["x_mean"].shape) == (3, 784) and tuple(outputs["x_log_var"].shape) == (
        3,
        784,
    )
    np.testing.assert_array_equal(numpy(outputs["reconstruction"]), numpy(outputs["x_mean"]))


def test_encode_and_decode_refuse_a_batch_they_cannot_read_in_one_line():
    vae = build_vae(RunConfig().replace(hidden_layers=(8,)))
    refusals = {
        "VAE.encode takes images of shape (batch, 784), got (3, 28, 28)": lambda: vae.encode(
            np.zeros((3, 28, 28), "float32")
        ),
        "VAE.encode takes images of shape (batch, 784), got (784,)": lambda: vae.encode(
            np.zeros(784, "float32")
        ),
        # Raw pixels of 0 to 255 were encoded as they were, far outside the scale trained on.
        "VAE.encode's images of dtype uint8: expected floats": lambda: vae.encode(
            np.zeros((3, 784), "uint8")
        ),
        # As floats, too: the astype without the division by 255.
        "VAE.encode's images hold values in 0..255: expected pixels in [0, 1]": lambda: vae.encode(
            np.linspace(0, 255, 3 * 784, dtype="float32").reshape(3, 784)
        ),
        "VAE.encode's images hold values that are not numbers": lambda: vae.encode(
            np.full((3, 784), np.nan, "float32")
        ),
        "VAE.decode takes codes of shape (batch, 2), got (3, 3)": lambda: vae.decode(
            np.zeros((3, 3), "float32")
        ),
    }
    for message, call in refusals.items():
        with pytest.raises(ValueError) as refusal:
            call()
        assert str(refusal.value).startswith(message) and "\n" not in str(refusal.value)
    # A nested list reads as the array it spells.
    assert tuple(vae.encode([[0.5] * 784])["z_mean"].shape) == (1, 2)
    assert tuple(vae.decode(np.zeros((3, 2), "float32"))["probabilities"].shape) == (3, 784)


def test_compute_loss_is_the_batch_mean_of_both_terms():
    vae = build_vae(RunConfig().replace(hidden_layers=(8,)))
    images = np.random.default_rng(1).random((6, 784)).astype("float32")
    outputs = vae(images)
    expected = np.mean(
        numpy(bernoulli_negative_log_likelihood(images, outputs["reconstruction"]))
        + numpy(gaussian_kl_divergence(outputs["z_mean"], outputs["z_log_var"]))
    )
    loss = float(numpy(vae.compute_loss(images, None, outputs)))
    assert loss == pytest.approx(float(expected), rel=1e-5)
    names = {metric.name for metric in vae.metrics}
    assert {"reconstruction_loss", "kl_loss"} <= names


def test_dynamic_binarization_differs_between_steps_yet_repeats_under_a_seed():
    images = np.full((4, 784), 0.5, "float32")
    first, second = DynamicBinarization(seed=3), DynamicBinarization(seed=3)
    a, b = numpy(first(images, training=True)), numpy(second(images, training=True))
    assert set(np.unique(a)) == {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, numpy(first(images, training=True)))
    # Outside training the (already binarized) test images pass through unchanged.
    np.testing.assert_array_equal(numpy(first(images, training=False)), images)
    draws = numpy(DynamicBinarization(seed=1)(np.full((200, 784), 0.3, "float32"), training=True))
    assert draws.mean() == pytest.approx(0.3, abs=0.01)


def test_get_config_returns_every_constructor_argument():
    posterior = GaussianPosterior(dimension=3, epsilon_std=0.5)
    assert posterior.get_config() == {"kind": "gaussian", "dimension": 3, "epsilon_std": 0.5}
    assert DynamicBinarization(seed=2).get_config()["seed"] == 2
    run_config = RunConfig().replace(hidden_layers=(16,), dimension=3, binarize="dynamic", seed=9)
    vae = build_vae(run_config)
    config = vae.get_config()
    # The saved configuration is the run's: every part's settings, the seed included.
    assert config["config"] == run_config.to_dict()
    rebuilt = vae_mnist.VAE.from_config(config)
    assert rebuilt.run_config == run_config
    assert rebuilt.posterior_part.get_config() == vae.posterior_part.get_config()
    assert rebuilt.binarization.get_config()["seed"] == vae.binarization.get_config()["seed"]
    with pytest.raises(ModelFileError, match="through its run folder"):
        vae_mnist.VAE.from_config({"latent": {}, "name": "vae"})


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"network": "conv", "hidden_layers": (16,)},
        {"likelihood": "gaussian", "dimension": 4},
    ],
)
def test_save_load_gives_identical_outputs(tmp_path, changes):
    vae = build_vae(RunConfig().replace(**{"hidden_layers": (16,), "seed": 5, **changes}))
    images = np.random.default_rng(2).random((8, 784)).astype("float32")
    models = {"vae": vae, "encoder": vae.first_head_encoder(), "decoder": vae.image_decoder()}
    for name, model in models.items():
        model.save(tmp_path / f"{name}.keras")
    loaded = {name: load_model(tmp_path / f"{name}.keras") for name in models}
    z = (
        np.random.default_rng(3)
        .standard_normal((8, vae.posterior_part.code_size))
        .astype("float32")
    )
    np.testing.assert_allclose(numpy(loaded["decoder"](z)), numpy(models["decoder"](z)))
    np.testing.assert_allclose(numpy(loaded["encoder"](images)), numpy(models["encoder"](images)))
    # The latent's seed state travels with the model, so even its draws agree.
    original, reloaded = vae(images), loaded["vae"](images)
    for key in original:
        np.testing.assert_allclose(numpy(reloaded[key]), numpy(original[key]), rtol=1e-6)
    assert isinstance(loaded["vae"], vae_mnist.VAE)


def test_version_1_models_keep_loading():
    """A run saved by version 1 (the fixed 2017 model) loads, with the same weights."""
    folder = FIXTURES / "run_v1"
    config = RunConfig.load(folder / "config.json")
    old_vae = load_model(folder / "vae.keras", config)
    # Through the run folder too; without its configuration the file is refused in one line.
    through_folder = load_trained_run(folder).vae.get_weights()
    assert len(through_folder) == len(old_vae.get_weights())
    for mine, theirs in zip(through_folder, old_vae.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ModelFileError, match="run folder"):
        load_model(folder / "vae.keras")
    encoder, decoder = load_model(folder / "encoder.keras"), load_model(folder / "decoder.keras")
    images = np.random.default_rng(4).random((5, 784)).astype("float32")
    np.testing.assert_allclose(numpy(old_vae.encode(images)["z_mean"]), numpy(encoder(images)))
    z = np.random.default_rng(5).standard_normal((5, 2)).astype("float32")
    np.testing.assert_allclose(numpy(old_vae.decode(z)["probabilities"]), numpy(decoder(z)))
    assert config.network.hidden_layers == (4,) and config.preset == "keras2017"
    assert math.isclose(config.optimizer.learning_rate, 1e-3)
