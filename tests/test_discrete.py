"""The discrete posteriors (categorical and Bernoulli) and the uniform prior, on every backend.

The pure samplers and KLs have their own tests (test_relaxations.py, test_divergences.py);
these test the posterior and prior parts, their temperature schedule through training and a
resume, the discrete evaluation, the saved model, the figures and the command line's refusals.
"""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
from keras import ops

from tests.conftest import folder_state, make_arrays
from vae_mnist.cli import main
from vae_mnist.config import RunConfig
from vae_mnist.discrete import BernoulliPosterior, CategoricalPosterior, UniformPrior
from vae_mnist.errors import RunError
from vae_mnist.evaluation import (
    evaluate_run,
    importance_log_weights,
    importance_weighted_log_likelihood,
    negative_elbo_terms,
)
from vae_mnist.model import PartLayer, build_vae, load_model, save_model
from vae_mnist.runs import read_history
from vae_mnist.settings import make_part
from vae_mnist.training import train

VARIABLES, CATEGORIES = 3, 4
UNITS = 6
# A fast schedule, so that a few steps move the temperature measurably.
RATE, MINIMUM = 0.05, 0.1
TRAIN_IMAGES, TEST_IMAGES, BATCH = 200, 50, 50
STEPS_PER_EPOCH = TRAIN_IMAGES // BATCH


def numpy(value) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(value))


def tiny_config(posterior: str = "categorical", epochs: int = 1) -> RunConfig:
    sizes = (
        dict(variables=VARIABLES, categories=CATEGORIES)
        if posterior == "categorical"
        else dict(units=UNITS)
    )
    return RunConfig().replace(
        posterior=posterior,
        prior="uniform",
        **sizes,
        hidden_layers=[16],
        binarize="static",
        temperature_rate=RATE,
        temperature_min=MINIMUM,
        optimizer="adam",
        batch_size=BATCH,
        epochs=epochs,
        # Tiny models: compiling with XLA would cost more than the steps it speeds up.
        jit_compile=False,
    )


def tiny_data():
    arrays = make_arrays(train=TRAIN_IMAGES, test=TEST_IMAGES)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def expected_temperature(step: float) -> float:
    return max(MINIMUM, math.exp(-RATE * step))


class _InterruptAfterFirstEpoch(keras.callbacks.Callback):
    """Stops training as Ctrl-C would, after the first epoch has been committed to the run."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("discrete-data") / "tiny.npz"
    np.savez(path, **make_arrays(train=TRAIN_IMAGES, test=TEST_IMAGES))
    return path


@pytest.fixture(scope="module")
def categorical_run(tmp_path_factory):
    """A categorical run interrupted after epoch 1 of 2, then resumed to its end.

    Returns the folder and the temperature logged for epoch 1 before the interruption.
    """
    folder = tmp_path_factory.mktemp("discrete-runs") / "categorical"
    config, data = tiny_config(epochs=2), tiny_data()
    with pytest.raises(KeyboardInterrupt):
        train(config, data, folder, verbose=0, callbacks=[_InterruptAfterFirstEpoch()])
    interrupted = json.loads((folder / "run.json").read_text())
    assert interrupted["status"] == "training" and interrupted["completed_epochs"] == 1
    first_temperature = interrupted["history"][0]["temperature"]
    train(config, data, folder, verbose=0)
    return folder, first_temperature


@pytest.fixture(scope="module")
def bernoulli_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("discrete-runs") / "bernoulli"
    train(tiny_config("bernoulli"), tiny_data(), folder, verbose=0)
    return folder


def hosted(part, seed: int = 1, *extra):
    """The part with its variables made on a Keras layer, as the model hosts it."""
    return PartLayer(part, seed, *extra).part


def categorical_posterior(**changes) -> CategoricalPosterior:
    settings = dict(
        variables=VARIABLES,
        categories=CATEGORIES,
        temperature=1.0,
        temperature_min=MINIMUM,
        temperature_rate=RATE,
    )
    return hosted(CategoricalPosterior(**{**settings, **changes}))


def bernoulli_posterior(**changes) -> BernoulliPosterior:
    return hosted(BernoulliPosterior(**{"units": UNITS, **changes}))


def uniform_prior(posterior) -> UniformPrior:
    return hosted(UniformPrior(), 1, posterior)


def random_logits(batch: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 2.0, (batch, width)).astype("float32")


# The posterior and prior parts.


def test_categorical_relaxed_code_lies_on_each_variables_simplex_and_hardens_as_tau_falls():
    logits = random_logits(64, VARIABLES * CATEGORIES)
    warm = numpy(categorical_posterior().sample({"logits": logits}, training=True))
    per_variable = warm.reshape(64, VARIABLES, CATEGORIES)
    assert np.all(per_variable >= 0)
    np.testing.assert_allclose(per_variable.sum(axis=-1), 1.0, atol=1e-5)
    assert np.mean(per_variable.max(axis=-1)) < 0.95  # at τ = 1 the code is far from one-hot
    cold = categorical_posterior(temperature=1e-5, temperature_min=1e-5)
    hard = numpy(cold.sample({"logits": logits}, training=True)).reshape(64, VARIABLES, CATEGORIES)
    # A near-tie of the two largest perturbed logits (within a few τ) may leave a rare
    # variable soft; all but a few are one-hot.
    assert np.mean(hard.max(axis=-1) > 1.0 - 1e-3) >= 0.98


def test_straight_through_code_is_exactly_one_hot_and_binary():
    logits = random_logits(32, VARIABLES * CATEGORIES)
    posterior = categorical_posterior(straight_through=True)
    code = numpy(posterior.sample({"logits": logits}, training=True))
    per_variable = code.reshape(32, VARIABLES, CATEGORIES)
    assert set(np.unique(per_variable)) == {0.0, 1.0}
    np.testing.assert_array_equal(per_variable.sum(axis=-1), 1.0)
    bernoulli = bernoulli_posterior(straight_through=True)
    bits = numpy(bernoulli.sample({"logits": random_logits(32, UNITS)}, training=True))
    assert set(np.unique(bits)) <= {0.0, 1.0}


def test_exact_posterior_samples_follow_the_softmax_and_the_sigmoid():
    draws = 4000
    probabilities = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1], [0.25] * 4], "float32")
    logits = np.log(probabilities).reshape(1, -1)
    z, log_q = categorical_posterior().sample_exact({"logits": logits}, draws, seed=3)
    one_hot = numpy(z).reshape(draws, VARIABLES, CATEGORIES)
    frequencies = one_hot.mean(axis=0)
    error = np.sqrt(probabilities * (1 - probabilities) / draws)
    np.testing.assert_array_less(np.abs(frequencies - probabilities), 5 * error)
    # log q(z|x) of each one-hot sample is the sum of its classes' log-probabilities.
    expected = np.sum(one_hot * np.log(probabilities), axis=(-2, -1))
    np.testing.assert_allclose(numpy(log_q)[0], expected, rtol=1e-5)

    unit_probabilities = np.array([[0.1, 0.5, 0.9, 0.3, 0.7, 0.02]], "float32")
    unit_logits = np.log(unit_probabilities) - np.log1p(-unit_probabilities)
    bits, _ = bernoulli_posterior().sample_exact({"logits": unit_logits}, draws, seed=3)
    frequencies = numpy(bits)[0].mean(axis=0)
    error = np.sqrt(unit_probabilities[0] * (1 - unit_probabilities[0]) / draws)
    np.testing.assert_array_less(np.abs(frequencies - unit_probabilities[0]), 5 * error + 1e-6)


def test_kl_divergences_against_a_hand_computation():
    logits = random_logits(5, VARIABLES * CATEGORIES)
    grouped = logits.reshape(5, VARIABLES, CATEGORIES).astype(np.float64)
    probabilities = np.exp(grouped) / np.exp(grouped).sum(axis=-1, keepdims=True)
    expected = np.sum(probabilities * np.log(probabilities * CATEGORIES), axis=(1, 2))
    posterior = categorical_posterior()
    kl = numpy(uniform_prior(posterior).kl_divergence(posterior.distribution({"logits": logits})))
    np.testing.assert_allclose(kl, expected, rtol=1e-4, atol=1e-5)

    unit_logits = random_logits(5, UNITS).astype(np.float64)
    p = 1 / (1 + np.exp(-unit_logits))
    expected = np.sum(p * np.log(2 * p) + (1 - p) * np.log(2 * (1 - p)), axis=1)
    bernoulli = bernoulli_posterior()
    distribution = bernoulli.distribution({"logits": unit_logits})
    kl = numpy(uniform_prior(bernoulli).kl_divergence(distribution))
    np.testing.assert_allclose(kl, expected, rtol=1e-4, atol=1e-5)


def test_uniform_prior_mode_and_representation():
    posterior = categorical_posterior()
    prior = uniform_prior(posterior)
    z = prior.sample(500, seed=0)
    assert z.shape == (500, VARIABLES * CATEGORIES) and z.dtype == np.float32
    np.testing.assert_array_equal(z.reshape(500, VARIABLES, CATEGORIES).sum(axis=-1), 1.0)
    log_prior = numpy(prior.log_density(ops.convert_to_tensor(z)))
    np.testing.assert_allclose(log_prior, -VARIABLES * math.log(CATEGORIES), rtol=1e-6)
    logits = random_logits(8, VARIABLES * CATEGORIES)
    mode = numpy(posterior.mode({"logits": logits}))
    np.testing.assert_array_equal(mode, posterior.code_of(posterior.classes_of({"logits": logits})))
    representation = numpy(posterior.representation({"logits": logits}))
    np.testing.assert_allclose(representation.reshape(8, VARIABLES, -1).sum(-1), 1.0, atol=1e-5)
    bernoulli_prior = uniform_prior(bernoulli_posterior())
    np.testing.assert_allclose(
        numpy(bernoulli_prior.log_density(ops.zeros((4, UNITS)))), -UNITS * math.log(2.0), rtol=1e-6
    )


def test_the_temperature_follows_the_schedule_step_by_step():
    posterior = categorical_posterior()
    logits = {"logits": random_logits(4, VARIABLES * CATEGORIES)}
    assert float(numpy(posterior.current_temperature())) == pytest.approx(1.0)
    for _ in range(7):
        posterior.sample(logits, training=True)
    posterior.sample(logits, training=False)  # inference does not advance the schedule
    assert int(numpy(posterior.step)) == 7
    temperature = float(numpy(posterior.current_temperature()))
    assert temperature == pytest.approx(expected_temperature(7), rel=1e-5)
    for _ in range(60):
        posterior.sample(logits, training=True)
    assert float(numpy(posterior.current_temperature())) == pytest.approx(MINIMUM)


def test_every_setting_is_in_the_config():
    posterior = CategoricalPosterior(
        variables=VARIABLES, categories=CATEGORIES, straight_through=True, temperature_rate=RATE
    )
    clone = make_part("posterior", posterior.get_config())
    assert type(clone) is CategoricalPosterior and clone.get_config() == posterior.get_config()
    for name in ("variables", "categories", "straight_through", "temperature_rate"):
        assert getattr(clone, name) == getattr(posterior, name)
    bernoulli = make_part("posterior", BernoulliPosterior(units=9, temperature=2.0).get_config())
    assert type(bernoulli) is BernoulliPosterior
    assert bernoulli.units == 9 and bernoulli.temperature == 2.0


@pytest.mark.parametrize("posterior", ["categorical", "bernoulli"])
def test_save_load_gives_identical_outputs_in_safe_mode(tmp_path, posterior):
    vae = build_vae(tiny_config(posterior).replace(seed=4))
    images = (make_arrays(train=1, test=8)["x_test"].reshape(8, -1) > 100).astype("float32")
    for _ in range(3):
        vae(images, training=True)  # advances the schedule and the noise stream
    save_model(vae, tmp_path / "vae.keras")
    loaded = load_model(tmp_path / "vae.keras")
    assert type(loaded.posterior_part) is type(vae.posterior_part)
    assert type(loaded.prior_part) is type(vae.prior_part)
    assert int(numpy(loaded.posterior_part.step)) == 3
    for name, value in vae.encode(images).items():
        np.testing.assert_allclose(numpy(loaded.encode(images)[name]), numpy(value), atol=1e-6)
    parameters = vae.encode(images)
    loaded_parameters = loaded.encode(images)
    z, log_q = vae.posterior_part.sample_exact(parameters, 2, seed=5)
    loaded_z, loaded_log_q = loaded.posterior_part.sample_exact(loaded_parameters, 2, seed=5)
    np.testing.assert_array_equal(numpy(loaded_z), numpy(z))
    np.testing.assert_allclose(numpy(loaded_log_q), numpy(log_q), rtol=1e-5)
    np.testing.assert_allclose(
        numpy(
            loaded.prior_part.kl_divergence(loaded.posterior_part.distribution(loaded_parameters))
        ),
        numpy(vae.prior_part.kl_divergence(vae.posterior_part.distribution(parameters))),
        atol=1e-5,
    )
    for part in ("representation", "mode"):
        expected = numpy(getattr(vae.posterior_part, part)(parameters))
        np.testing.assert_allclose(
            numpy(getattr(loaded.posterior_part, part)(loaded_parameters)), expected, atol=1e-5
        )
    np.testing.assert_allclose(
        numpy(loaded.decode(z[:, 0])[loaded.likelihood_heads[0]]),
        numpy(vae.decode(z[:, 0])[vae.likelihood_heads[0]]),
        atol=1e-5,
    )


# Training, resuming and evaluating.


def test_a_resumed_run_continues_the_temperature_schedule(categorical_run):
    folder, first_temperature = categorical_run
    history = read_history(folder / "history.csv")
    # The logged value is the epoch's mean of τ after each step: steps 1..S, then S+1..2S.
    steps = np.arange(1, 2 * STEPS_PER_EPOCH + 1)
    expected = [expected_temperature(step) for step in steps]
    first, second = np.mean(expected[:STEPS_PER_EPOCH]), np.mean(expected[STEPS_PER_EPOCH:])
    assert first_temperature == pytest.approx(first, rel=1e-5)
    np.testing.assert_allclose(history["temperature"], [first, second], rtol=1e-5)
    assert "val_temperature" not in history
    vae = load_model(folder / "vae.keras")
    assert int(numpy(vae.posterior_part.step)) == 2 * STEPS_PER_EPOCH


def test_an_extension_may_relax_differently_but_not_change_the_code(tmp_path):
    folder = tmp_path / "run"
    train(tiny_config("bernoulli"), tiny_data(), folder, verbose=0)
    floor = 0.5
    later = tiny_config("bernoulli", epochs=2).replace(
        temperature_min=floor, temperature_rate=0.0, straight_through=True
    )
    info = train(later, tiny_data(), folder, verbose=0, extend=True)
    # The second epoch relaxes at the new schedule: no decay, so τ stays at its start of 1.
    assert info["history"][1]["temperature"] == pytest.approx(1.0)
    assert info["history"][0]["temperature"] < 0.9
    vae = load_model(folder / "vae.keras")
    assert vae.posterior_part.straight_through and vae.posterior_part.temperature_min == floor
    saved = json.loads((folder / "config.json").read_text())["posterior"]
    assert saved["straight_through"] and saved["temperature_rate"] == 0.0
    assert int(numpy(vae.posterior_part.step)) == 2 * STEPS_PER_EPOCH
    with pytest.raises(RunError, match=r"units 6 .saved. against 8"):
        train(later.replace(epochs=3, units=8), tiny_data(), folder, verbose=0, extend=True)


def test_the_gaussian_runs_history_columns_are_unchanged(tmp_path):
    config = RunConfig().replace(hidden_layers=[16], batch_size=BATCH, epochs=1, jit_compile=False)
    train(config, tiny_data(), tmp_path / "gaussian", verbose=0)
    header = (tmp_path / "gaussian" / "history.csv").read_text().splitlines()[0]
    assert header == (
        "epoch,loss,reconstruction_loss,kl_loss,val_loss,val_reconstruction_loss,val_kl_loss"
    )


def test_discrete_iwae_with_one_sample_is_the_discrete_elbo_and_rises_with_samples(
    categorical_run,
):
    vae = load_model(categorical_run[0] / "vae.keras")
    _, (test_images, _) = tiny_data()
    images = (test_images.reshape(len(test_images), -1) / 255.0 > 0.5).astype("float32")
    reconstruction, kl = negative_elbo_terms(vae, images, seed=11)
    # The weights of that one-sample estimate, drawn from the same seed.
    # Same seed, same one-hot sample: the two differ only by the KL's estimate from that
    # sample, log q(z|x) - log p(z), against its exact value.
    one = numpy(importance_log_weights(vae, images, 1, keras.random.SeedGenerator(11)))[:, 0]
    generator = keras.random.SeedGenerator(11)
    z, log_q = vae.posterior_part.sample_exact(vae.encode(images), 1, generator)
    single_sample_kl = numpy(log_q)[:, 0] - numpy(vae.prior_part.log_density(z))[:, 0]
    np.testing.assert_allclose(one, -(reconstruction + single_sample_kl), rtol=1e-5, atol=1e-3)
    # In expectation they agree: over several seeds the mean is the ELBO, within noise.
    means = [np.mean(importance_weighted_log_likelihood(vae, images, 1, seed=s)) for s in range(4)]
    assert np.mean(means) == pytest.approx(-np.mean(reconstruction + kl), abs=3.0)
    bounds = [np.mean(importance_weighted_log_likelihood(vae, images, k, seed=2)) for k in (1, 50)]
    assert bounds[1] > bounds[0]


def test_evaluation_reports_the_classes_used_per_variable(categorical_run):
    vae = load_model(categorical_run[0] / "vae.keras")
    (train_images, train_labels), (test_images, test_labels) = tiny_data()
    flat = lambda images: (images.reshape(len(images), -1) / 255.0 > 0.5).astype("float32")  # noqa: E731
    metrics = evaluate_run(
        vae, flat(train_images), train_labels, flat(test_images), test_labels, samples=4
    )
    assert len(metrics["classes_used"]) == VARIABLES
    assert all(1 <= count <= CATEGORIES for count in metrics["classes_used"])
    assert metrics["mean_classes_used"] == pytest.approx(np.mean(metrics["classes_used"]))
    assert 0.0 <= metrics["knn_accuracy"] <= 1.0
    assert "active_units" not in metrics


# The command line: figures and refusals.


DISCRETE_FIGURES = {
    "latent_scatter.png",
    "decode_7.png",
    "decode_9.png",
    "reconstructions.png",
    "samples.png",
    "interpolation.png",
    "training_curves.png",
    "codes_7.png",
    "codes_9.png",
    "class_usage.png",
}


@pytest.mark.parametrize("run_fixture", ["categorical_run", "bernoulli_run"])
def test_plot_all_writes_every_discrete_figure(request, run_fixture, npz, tmp_path, capsys):
    run = request.getfixturevalue(run_fixture)
    folder = run[0] if isinstance(run, tuple) else run
    out = tmp_path / "figures"
    assert main(["plot", "all", "--run", str(folder), "--data", str(npz), "--out", str(out)]) == 0
    assert {path.name for path in out.iterdir()} == DISCRETE_FIGURES
    count = VARIABLES if run_fixture == "categorical_run" else UNITS
    code = ",".join(str(value % 2) for value in range(count))
    arguments = ["plot", "decode", "--run", str(folder), "--code", code, "--out", str(out)]
    assert main(arguments) == 0
    assert f"code = {code}" in capsys.readouterr().out
    assert (out / f"decode_code_{code.replace(',', '-')}.png").is_file()


def test_a_code_may_be_given_with_spaces(categorical_run, tmp_path, capsys):
    out = tmp_path / "figures"
    arguments = ["plot", "decode", "--run", str(categorical_run[0]), "--out", str(out)]
    code = [str(value % 2) for value in range(VARIABLES)]
    assert main([*arguments, "--code", code[0], ",".join(code[1:])]) == 0
    assert f"code = {','.join(code)}" in capsys.readouterr().out
    assert main([*arguments, "--code", *code]) == 0
    assert f"code = {','.join(code)}" in capsys.readouterr().out
    assert {path.name for path in out.iterdir()} == {f"decode_code_{'-'.join(code)}.png"}
    # The figure's name after the code, where argparse would read it as one more class.
    run_flags = ["--run", str(categorical_run[0]), "--out", str(out)]
    assert main(["plot", "--code", *code, "decode", *run_flags]) == 0
    assert f"code = {','.join(code)}" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["manifold", "density", "animation"])
def test_gaussian_figures_are_refused_for_a_discrete_run(categorical_run, kind, tmp_path, capsys):
    out = tmp_path / "figures"
    assert main(["plot", kind, "--run", str(categorical_run[0]), "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "needs a continuous latent space" in error
    assert "categorical posterior" in error
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--code", "1,2"], "--code needs 3 classes"),
        (["--code", "1,2,4"], "class 4 is out of range"),
        (["--z", "0.5", "0.5"], "--z decodes a point of a continuous latent"),
    ],
)
def test_bad_codes_are_refused_with_one_line(categorical_run, flags, message, tmp_path, capsys):
    out = tmp_path / "figures"
    arguments = ["plot", "decode", "--run", str(categorical_run[0]), "--out", str(out), *flags]
    before = folder_state(categorical_run[0])
    assert main(arguments) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error
    assert not out.exists()
    assert folder_state(categorical_run[0]) == before


DISCRETE = ["--posterior", "categorical", "--prior", "uniform"]
BERNOULLI = ["--posterior", "bernoulli", "--prior", "uniform"]


@pytest.mark.parametrize(
    ("flags", "status", "message"),
    [
        (
            DISCRETE + ["--categories", "1"],
            2,
            "--categories: expected a whole number of at least 2",
        ),
        (DISCRETE + ["--variables", "0"], 2, "positive"),
        (BERNOULLI + ["--units", "-3"], 2, "positive"),
        (DISCRETE + ["--temperature", "0"], 2, "positive"),
        (BERNOULLI + ["--temperature-min", "-0.5"], 2, "positive"),
        (
            DISCRETE + ["--temperature", "0.5", "--temperature-min", "0.8"],
            1,
            "temperature_min 0.8 is above the starting temperature 0.5",
        ),
        (["--posterior", "categorical"], 1, "the standard_normal prior needs a continuous"),
        (DISCRETE + ["--dimension", "3"], 1, "--dimension is a setting of the gaussian posterior"),
        (["--code", "1,2,3"], 2, "unrecognized arguments"),
    ],
)
def test_bad_discrete_settings_are_refused_with_nothing_written(
    flags, status, message, npz, tmp_path, capsys
):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) if status == 2 else _NoException() as raised:
        result = main(["train", "--data", str(npz), "--out", str(out), "--quiet", *flags])
    code = raised.value.code if status == 2 else result
    assert code == status
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error
    assert not out.exists()


class _NoException:
    """A context manager that expects nothing to be raised (the pair of `pytest.raises`)."""

    def __enter__(self):
        return None

    def __exit__(self, *exception):
        return False


def test_a_relaxed_samples_densities_are_taken_at_the_temperature_that_drew_it():
    # A fast schedule (τ from 1 at step 0 to e^-1 at step 1), so a density one step late shows.
    config = RunConfig().replace(
        posterior="bernoulli",
        prior="uniform",
        units=6,
        hidden_layers=[16],
        objective="iwae",
        importance_samples=3,
        temperature_rate=1.0,
        temperature_min=0.1,
    )
    vae = build_vae(config)
    images = (np.random.default_rng(0).random((4, 784)) > 0.5).astype("float32")
    outputs = vae(images, training=True)
    posterior = vae.posterior_part
    assert int(ops.convert_to_numpy(posterior.step)) == 1
    # The relaxed code is σ(v): v back from it, and its log-ratio at step 0's temperature.
    v = ops.log(outputs["z"]) - ops.log1p(-outputs["z"])
    posterior.step.assign(0)
    expected = posterior.relaxed_log_density(
        v, {"logits": outputs["logits"]}
    ) - vae.prior_part.relaxed_log_density(v)
    np.testing.assert_allclose(
        ops.convert_to_numpy(outputs["relaxed_log_ratio"]),
        ops.convert_to_numpy(expected),
        rtol=1e-3,
        atol=1e-3,
    )
