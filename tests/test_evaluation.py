"""The evaluation numbers: IWAE against the ELBO, the kNN classifier, active units, the JSON."""

from __future__ import annotations

import json
import math
import re
import shutil

import keras
import numpy as np
import pytest
from conftest import make_arrays

from vae_mnist import ConfigError, RunConfig, build_vae
from vae_mnist.cli import main
from vae_mnist.data import prepare_images
from vae_mnist.errors import DataError
from vae_mnist.evaluation import (
    evaluate_run,
    importance_log_weights,
    importance_weighted_log_likelihood,
    knn_accuracy,
    log_mean_exp,
    negative_elbo_terms,
)


@pytest.fixture(scope="module")
def small_vae():
    """A briefly trained VAE: its posterior is narrower than the prior, as in real use."""
    import keras

    keras.utils.set_random_seed(3)
    vae = build_vae(RunConfig().replace(hidden_layers=(32,), seed=3))
    vae.compile(optimizer=keras.optimizers.RMSprop(1e-3))
    arrays = make_arrays(train=500, test=10, seed=4)
    vae.fit(
        (arrays["x_train"].astype("float32") / 255.0).reshape(500, 784),
        epochs=20,
        batch_size=50,
        verbose=0,
    )
    return vae


@pytest.fixture(scope="module")
def images():
    arrays = make_arrays(train=10, test=12, seed=5)
    return (arrays["x_test"].astype("float32") / 255.0).reshape(12, 784)


def test_log_mean_exp_is_stable():
    values = np.array([[1000.0, 1000.0], [-1000.0, -1000.0 + math.log(3.0)]])
    result = keras.ops.convert_to_numpy(log_mean_exp(values, axis=1))
    np.testing.assert_allclose(result, [1000.0, -1000.0 + math.log(2.0)])


def gaussian_log_density(z, mean, log_var):
    return -0.5 * np.sum(np.log(2 * np.pi) + log_var + (z - mean) ** 2 / np.exp(log_var), axis=-1)


def test_iwae_with_one_sample_is_the_single_sample_elbo(small_vae, images):
    # The weights themselves, from the same seed as the estimate's first chunk; the estimate's
    # own one-sample value is compared with the ELBO in the test below.
    estimate = keras.ops.convert_to_numpy(
        log_mean_exp(importance_log_weights(small_vae, images, 1, keras.random.SeedGenerator(0)), 1)
    )
    # The same draw by hand, in numpy: log p(x|z) + log p(z) - log q(z|x).
    parameters = small_vae.encode(images)
    z, _ = small_vae.posterior_part.sample_exact(parameters, 1, keras.random.SeedGenerator(0))
    z = keras.ops.convert_to_numpy(z)[:, 0].astype(np.float64)
    z_mean, z_log_var = (keras.ops.convert_to_numpy(parameters[k]) for k in ("z_mean", "z_log_var"))
    decoded = keras.ops.convert_to_numpy(small_vae.image_decoder()(z.astype("float32")))
    decoded = np.clip(decoded.astype(np.float64), 1e-7, 1 - 1e-7)
    log_likelihood = np.sum(images * np.log(decoded) + (1 - images) * np.log(1 - decoded), -1)
    by_hand = (
        log_likelihood
        + gaussian_log_density(z, 0.0, 0.0)
        - gaussian_log_density(z, z_mean, z_log_var)
    )
    np.testing.assert_allclose(estimate, by_hand, rtol=1e-4)


def test_iwae_is_above_the_elbo_and_rises_with_samples(small_vae, images):
    reconstruction, kl = [], []
    for seed in range(20):  # Average the ELBO's sampled term over many draws.
        terms = negative_elbo_terms(small_vae, images, seed=seed)
        reconstruction.append(terms[0])
        kl.append(terms[1])
    elbo = -np.mean(np.mean(reconstruction, axis=0) + np.mean(kl, axis=0))
    estimates = {
        samples: np.mean(
            [
                importance_weighted_log_likelihood(small_vae, images, samples, seed=seed)
                for seed in range(5)
            ]
        )
        for samples in (1, 10, 100, 1000)
    }
    assert estimates[1000] >= elbo
    # In expectation the estimate rises with K. Where the posterior is narrow, as here, it
    # rises by hundredths of a nat between K = 1 and 10, the size of the noise of five seeds,
    # so each step may fall by that much; over three decades of K it must rise.
    for fewer, more in ((1, 10), (10, 100), (100, 1000)):
        assert estimates[more] > estimates[fewer] - 0.05, estimates
    assert estimates[1000] > estimates[1] + 0.01, estimates
    # With one sample the estimate is the single-sample ELBO: the same mean as its terms'.
    assert estimates[1] == pytest.approx(elbo, abs=1.0)


def test_compiled_estimate_agrees_with_the_eager_one(small_vae, images, monkeypatch):
    from vae_mnist import evaluation

    eager = importance_weighted_log_likelihood(small_vae, images, 50, seed=4)
    # Compile at any size, in chunks of five images: the last of the 12 is padded.
    monkeypatch.setattr(evaluation, "COMPILE_FROM_DECODED_VALUES", 0)
    monkeypatch.setattr(evaluation, "DECODED_VALUES_PER_CHUNK", 5 * 50 * 784)
    compiled = importance_weighted_log_likelihood(small_vae, images, 50, seed=4)
    again = importance_weighted_log_likelihood(small_vae, images, 50, seed=4)
    assert compiled.shape == eager.shape == (12,)
    assert np.all(np.isfinite(compiled))
    np.testing.assert_array_equal(compiled, again)
    # The same noise compiled or not; TensorFlow's XLA rounds differently, so there the two
    # agree on average (the bound is the Monte-Carlo noise where they are not identical).
    difference = compiled - eager
    noise = np.std(difference) / math.sqrt(len(difference))
    assert abs(np.mean(difference)) <= 4 * noise + 1e-3, difference


def test_knn_on_separated_and_on_shuffled_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[10.0 * label, -5.0 * label] for label in range(10)])
    train_labels = rng.integers(0, 10, 2000)
    test_labels = rng.integers(0, 10, 500)
    train_points = centres[train_labels] + rng.normal(0, 0.5, (2000, 2))
    test_points = centres[test_labels] + rng.normal(0, 0.5, (500, 2))
    assert knn_accuracy(train_points, train_labels, test_points, test_labels, 5) == 1.0
    shuffled = rng.permutation(train_labels)
    chance = knn_accuracy(train_points, shuffled, test_points, test_labels, 5)
    assert 0.03 < chance < 0.2


def test_knn_breaks_ties_by_the_nearest_neighbour():
    train_points = np.array([[0.0], [1.0], [3.0], [4.0]])
    train_labels = np.array([1, 2, 1, 2])
    assert knn_accuracy(train_points, train_labels, np.array([[0.9]]), np.array([2]), 4) == 1.0


def test_active_units():
    from vae_mnist.latent import posterior_mean_variances

    rng = np.random.default_rng(0)
    z_mean = np.stack([rng.normal(0, 1, 1000), rng.normal(0, 0.01, 1000)], axis=1)
    variances = posterior_mean_variances(z_mean)
    assert variances[0] > 0.5 and variances[1] < 1e-3


def test_evaluate_is_repeatable_and_has_every_key(small_vae):
    arrays = make_arrays(train=200, test=50)
    inputs = (
        prepare_images(arrays["x_train"]),
        arrays["y_train"],
        prepare_images(arrays["x_test"]),
        arrays["y_test"],
    )
    first = evaluate_run(small_vae, *inputs, samples=20, neighbours=3, seed=2)
    second = evaluate_run(small_vae, *inputs, samples=20, neighbours=3, seed=2)
    assert first == second
    for key in (
        "negative_elbo",
        "reconstruction",
        "kl",
        "iwae_negative_log_likelihood",
        "iwae_log_likelihood",
        "knn_accuracy",
        "active_units",
        "latent_variances",
    ):
        assert key in first
    assert first["negative_elbo"] == pytest.approx(first["reconstruction"] + first["kl"])
    assert first["iwae_negative_log_likelihood"] == -first["iwae_log_likelihood"]


def test_evaluate_run_refuses_counts_that_are_not_counts_before_any_work(small_vae):
    arrays = make_arrays(train=20, test=5)
    train_images, test_images = prepare_images(arrays["x_train"]), prepare_images(arrays["x_test"])
    inputs = (train_images, arrays["y_train"], test_images, arrays["y_test"])
    refusals = {
        "samples must be positive, got 0": {"samples": 0},
        "samples must be a whole number, got 2.5": {"samples": 2.5},
        "neighbours 21 is more than the 20 training images: choose at most 20": {"neighbours": 21},
        "seed must not be negative, got -1": {"seed": -1},
    }
    for message, options in refusals.items():
        with pytest.raises(ConfigError, match=re.escape(message)):
            evaluate_run(small_vae, *inputs, **options)
    with pytest.raises(ConfigError, match="20 training images and 19 labels"):
        evaluate_run(small_vae, train_images, arrays["y_train"][:-1], *inputs[2:], samples=2)
    # Pixels not divided by 255 gave a NaN ELBO and a kNN accuracy from nothing; float labels
    # an IndexError, negative ones a wrong accuracy.
    bad_inputs = {
        "the test images hold values in 0..255": (train_images, test_images * 255),
        "the training images of dtype uint8: expected floats": (
            arrays["x_train"].reshape(20, -1),
            test_images,
        ),
    }
    for message, (train, test) in bad_inputs.items():
        with pytest.raises(DataError, match=re.escape(message)):
            evaluate_run(small_vae, train, arrays["y_train"], test, arrays["y_test"], samples=2)
    bad_labels = {
        "the test labels of dtype float64: expected integer class numbers": arrays["y_test"] + 0.5,
        "the test labels in -1..9: expected class numbers from 0": np.r_[
            -1, arrays["y_test"][1:].astype(int)
        ],
    }
    for message, labels in bad_labels.items():
        with pytest.raises(DataError, match=re.escape(message)):
            evaluate_run(small_vae, train_images, arrays["y_train"], test_images, labels, samples=2)
    # A log Z method asked of a prior that has no partition function was ignored.
    with pytest.raises(ValueError, match="--log-partition applies to a prior with a partition"):
        evaluate_run(small_vae, *inputs, samples=2, log_partition="ais")


def test_evaluate_command_writes_metrics(trained_run, session_npz, tmp_path, capsys):
    # A copy: the shared run is only read, so other tests may rely on it holding no metrics.
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert main(["evaluate", "--run", str(run), "--data", str(session_npz), "--samples", "50"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    numbers = [value for value in metrics.values() if isinstance(value, (int, float))]
    assert all(math.isfinite(value) for value in numbers)
    assert metrics["iwae_samples"] == 50 and metrics["test_images"] == 100
    assert metrics["iwae_negative_log_likelihood"] <= metrics["negative_elbo"] + 1.0
    written = capsys.readouterr()
    assert "negative ELBO" in written.out and "warning" not in written.err


def test_evaluate_refuses_more_neighbours_than_training_images_before_any_estimate(
    trained_run, session_npz, tmp_path, capsys, monkeypatch
):
    from vae_mnist import evaluation

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    count = len(np.load(session_npz)["x_train"])

    def estimate(*args, **kwargs):
        raise AssertionError("the estimate ran before the refusal")

    monkeypatch.setattr(evaluation, "negative_elbo_terms", estimate)
    status = main(
        ["evaluate", "--run", str(run), "--data", str(session_npz)]
        + [
            "--neighbours",
            str(count + 1),
        ]
    )
    error = capsys.readouterr().err.strip()
    assert status == 1 and "\n" not in error
    assert f"neighbours {count + 1} is more than the {count} training images" in error
    assert not (run / "metrics.json").exists()
    # As many neighbours as images is a vote of them all: allowed, so the estimate runs.
    arguments = ["evaluate", "--run", str(run), "--data", str(session_npz)]
    with pytest.raises(AssertionError, match="the estimate ran"):
        main([*arguments, "--neighbours", str(count)])


def test_evaluate_warns_of_a_number_that_is_not_finite(
    trained_run, session_npz, tmp_path, capsys, monkeypatch
):
    from vae_mnist.commands import evaluate

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    measured = evaluate.evaluate_run

    def with_an_infinite_sample(*arguments, **options):
        return {**measured(*arguments, **options), "iwae_negative_log_likelihood": math.nan}

    monkeypatch.setattr(evaluate, "evaluate_run", with_an_infinite_sample)
    command = ["evaluate", "--run", str(run), "--data", str(session_npz), "--samples", "5"]
    assert main([*command, "--quiet"]) == 0
    error = capsys.readouterr().err
    assert error.startswith(
        "vae-mnist evaluate: warning: not finite: iwae_negative_log_likelihood (nan) ("
    )
    assert error.count("\n") == 1


@pytest.mark.parametrize("size_key", ["code_size", "latent_dim"])
def test_the_table_gives_active_units_out_of_the_codes_size(size_key):
    from vae_mnist.metric_table import format_table

    metrics = {"negative_elbo": 151.69, "active_units": 2, size_key: 5, "test_images": 100}
    metrics |= {"iwae_samples": 10, "knn_neighbours": 5}
    lines = format_table(metrics).splitlines()
    assert any(
        line.startswith("active latent units") and line.endswith("  2 of 5") for line in lines
    )
