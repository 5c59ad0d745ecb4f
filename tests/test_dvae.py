"""Rolfe's discrete VAE: the RBM prior's KL, saving, chains that survive resume, the commands."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import folder_state, make_arrays, set_rbm_weights
from keras import ops

from vae_mnist.cli import main
from vae_mnist.config import RunConfig
from vae_mnist.discrete import SpikeExponentialPosterior
from vae_mnist.model import PartLayer, build_vae, load_model, save_model
from vae_mnist.rbm import exact_log_partition, rbm_log_probability_unnormalized
from vae_mnist.rbm_prior import RBMPrior
from vae_mnist.settings import ConfigError
from vae_mnist.training import train

TINY = RunConfig().replace(
    posterior="spike_exponential",
    units=7,
    prior="rbm",
    halves=(3, 4),
    chains=6,
    hidden_layers=[16],
    binarize="dynamic",
    optimizer="adam",
    batch_size=50,
    epochs=1,
    steps_per_execution=2,
    # XLA's compile time outweighs its gain on a model this small.
    jit_compile=False,
)
TINY_FLAGS = (
    "--posterior",
    "spike_exponential",
    "--units",
    "7",
    "--prior",
    "rbm",
    "--halves",
    "3,4",
    "--chains",
    "6",
    "--hidden-layers",
    "16",
    "--binarize",
    "dynamic",
    "--optimizer",
    "adam",
    "--batch-size",
    "50",
    "--no-jit-compile",
)


class Result:
    """What one in-process run of the command line gave: its status and its output."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_command(*arguments: str) -> Result:
    """`vae-mnist` in this process (no interpreter start-up per call), its output captured."""
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(list(arguments))
        except SystemExit as exit_:
            code = exit_.code
    return Result(int(code or 0), stdout.getvalue(), stderr.getvalue())


def numpy(value) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(value), dtype=np.float64)


def make_parts(
    first: int = 2, second: int = 3, seed: int = 0, **prior_settings
) -> tuple[SpikeExponentialPosterior, RBMPrior]:
    """A spike-and-exponential posterior and an RBM prior over it, hosted as in the model."""
    posterior = PartLayer(SpikeExponentialPosterior(units=first + second, sharpness=5.0), seed)
    settings = dict(halves=(first, second), chains=4, **prior_settings)
    prior = PartLayer(RBMPrior(**settings), seed, posterior.part)
    return posterior.part, prior.part


def random_parts(
    first: int = 2, second: int = 3, seed: int = 0, **prior_settings
) -> tuple[SpikeExponentialPosterior, RBMPrior]:
    """A small RBM prior whose parameters are far from their initial values, and its posterior."""
    posterior, prior = make_parts(first, second, seed, **prior_settings)
    rng = np.random.default_rng(seed)
    set_rbm_weights(
        prior,
        rng.normal(0.0, 1.0, first),
        rng.normal(0.0, 1.0, second),
        rng.normal(0.0, 1.0, (first, second)),
    )
    return posterior, prior


def kl_of(posterior, prior, parameters) -> np.ndarray:
    return numpy(prior.kl_divergence(posterior.distribution(parameters)))


def all_codes(units: int) -> np.ndarray:
    return np.array(list(itertools.product((0.0, 1.0), repeat=units)), dtype=np.float32)


def test_kl_matches_brute_force_over_every_code():
    posterior, prior = random_parts()
    logits = np.random.default_rng(1).normal(0.0, 2.0, (3, 5)).astype("float32")
    kl = kl_of(posterior, prior, {"logits": logits})
    bias1, bias2, coupling = (numpy(value) for value in (prior.bias1, prior.bias2, prior.coupling))
    codes = all_codes(5).astype(np.float64)  # (32, 5)
    log_z = exact_log_partition(bias1, bias2, coupling)
    log_prior = (
        rbm_log_probability_unnormalized(codes[:, :2], codes[:, 2:], bias1, bias2, coupling) - log_z
    )
    probabilities = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))  # (3, 5)
    # q(z|x) of every code for every row: (3, 32).
    on, off = probabilities[:, None], 1.0 - probabilities[:, None]
    q = np.prod(np.where(codes[None] == 1.0, on, off), axis=-1)
    brute_force = np.sum(q * (np.log(q) - log_prior[None]), axis=1)
    np.testing.assert_allclose(kl, brute_force, rtol=1e-4, atol=1e-4)
    # The prior's refreshed log Z is the exact one; after prepare_evaluation it is the numpy
    # value, and the KL does not change.
    np.testing.assert_allclose(numpy(prior.current_log_partition()), log_z, rtol=1e-5)
    prepared = prior.prepare_evaluation(log_partition="exact")
    assert prepared["log_partition_method"] == "exact"
    np.testing.assert_allclose(prepared["log_partition"], log_z, rtol=1e-12)
    np.testing.assert_allclose(kl_of(posterior, prior, {"logits": logits}), kl, atol=1e-4)


def test_log_prior_normalised_and_posterior_log_probability_exact():
    posterior, prior = random_parts(seed=3)
    codes = all_codes(5)
    assert math.isclose(float(np.sum(np.exp(numpy(prior.log_density(codes))))), 1.0, rel_tol=1e-4)
    logits = np.array([[2.0, -1.0, 0.5, 0.0, -3.0]], np.float32)
    z, log_q = posterior.sample_exact({"logits": logits}, 200, keras.random.SeedGenerator(0))
    z, log_q = numpy(z)[0], numpy(log_q)[0]
    probabilities = 1.0 / (1.0 + np.exp(-logits[0].astype(np.float64)))
    expected = np.sum(np.where(z == 1.0, np.log(probabilities), np.log1p(-probabilities)), -1)
    np.testing.assert_allclose(log_q, expected, rtol=1e-5)
    assert set(np.unique(z)) <= {0.0, 1.0}


def test_decoder_input_is_the_smoothing_of_binary_codes():
    posterior, _ = random_parts()
    z = np.tile(np.array([[0.0, 1.0, 0.0, 1.0, 1.0]], np.float32), (400, 1))
    zeta = numpy(posterior.decoder_input(z, keras.random.SeedGenerator(0)))
    assert np.all(zeta[z == 0.0] == 0.0)
    assert np.all((zeta[z == 1.0] > 0.0) & (zeta[z == 1.0] <= 1.0))
    # The exponential with sharpness (beta) 5 has mean 1/(1 - e^-5) - 1/5.
    assert abs(zeta[z == 1.0].mean() - (1 / (1 - math.exp(-5.0)) - 0.2)) < 0.03


def test_prior_samples_are_decoded_from_smoothed_codes_not_from_the_bits():
    """Issue 17: the decoder sees a prior sample as it sees a posterior one, ζ ~ r(ζ | z)."""
    vae = build_vae(TINY)
    bits = vae.prior_part.sample(300, seed=4)
    codes = vae.sample_codes(300, seed=4)
    assert codes.shape == bits.shape == (300, 7)
    assert np.all(codes[bits == 0.0] == 0.0)
    on = codes[bits == 1.0]
    assert on.size > 100 and np.all((on > 0.0) & (on <= 1.0))
    # The exponential with sharpness β has mean 1/(1 - e^-β) - 1/β, short of the bit's 1.
    beta = vae.posterior_part.sharpness
    assert abs(on.mean() - (1 / (1 - math.exp(-beta)) - 1 / beta)) < 0.03


def test_auxiliary_loss_is_zero_in_value_and_ais_agrees_with_exact():
    _, prior = random_parts(2, 4, seed=5)
    assert abs(float(numpy(prior.auxiliary_loss()))) < 1e-6
    exact = prior.prepare_evaluation(log_partition="exact")["log_partition"]
    ais = prior.prepare_evaluation(log_partition="ais", seed=1)
    assert ais["log_partition_method"] == "ais"
    assert abs(ais["log_partition"] - exact) < 0.05


@pytest.mark.parametrize(
    ("part", "arguments"),
    [
        (RBMPrior, dict(halves=(0, 4))),
        (RBMPrior, dict(halves=(3, -2))),
        (RBMPrior, dict(halves=(3,))),
        (SpikeExponentialPosterior, dict(sharpness=0.0)),
        (SpikeExponentialPosterior, dict(sharpness=-1.0)),
        (RBMPrior, dict(chains=0)),
        (RBMPrior, dict(gibbs_sweeps=0)),
        (RBMPrior, dict(log_partition_gradient="sampled")),
        (RBMPrior, dict(halves=(17, 17), log_partition_gradient="exact")),
    ],
)
def test_parts_refuse_bad_settings(part, arguments):
    with pytest.raises(ConfigError):
        part(**arguments)


def test_the_rbm_prior_refuses_a_posterior_of_another_size_or_kind():
    with pytest.raises(ConfigError, match="need 7 binary units"):
        TINY.replace(units=8)
    with pytest.raises(ConfigError, match="binary posterior"):
        TINY.replace(posterior="gaussian")


@pytest.mark.parametrize("method", ["exact", "chains"])
def test_prior_gradient_is_the_moment_difference(method):
    """∂KL/∂θ = E_q[∂E/∂θ] - (E_p or the chains' mean)[∂E/∂θ], with ∂E/∂a = -z, ∂E/∂W = -z1 z2ᵀ."""
    from test_relaxations import gradients

    posterior, prior = random_parts(2, 3, seed=4, log_partition_gradient=method)
    rng = np.random.default_rng(6)
    prior.chain_first.assign((rng.random((4, 2)) < 0.5).astype("float32"))
    prior.chain_second.assign((rng.random((4, 3)) < 0.5).astype("float32"))
    logits = rng.normal(0.0, 1.5, (6, 5)).astype("float32")
    distribution = posterior.distribution({"logits": logits})
    variables = (prior.bias1, prior.bias2, prior.coupling)

    def loss(bias1, bias2, coupling):
        mapping = list(zip(variables, (bias1, bias2, coupling), strict=True))
        with keras.StatelessScope(state_mapping=mapping):
            return ops.mean(prior.kl_divergence(distribution)) + prior.auxiliary_loss()

    values = [numpy(variable).astype("float32") for variable in variables]
    gradient1, gradient2, gradient_coupling = gradients(loss, *values)
    q = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    q1, q2 = q[:, :2], q[:, 2:]
    if method == "exact":
        codes = all_codes(5).astype(np.float64)
        bias1, bias2, coupling = (value.astype(np.float64) for value in values)
        weights = np.exp(
            rbm_log_probability_unnormalized(codes[:, :2], codes[:, 2:], bias1, bias2, coupling)
        )
        weights /= weights.sum()
        z1, z2 = codes[:, :2], codes[:, 2:]
    else:
        weights = np.full(4, 0.25)
        z1, z2 = numpy(prior.chain_first), numpy(prior.chain_second)
    np.testing.assert_allclose(gradient1, -q1.mean(0) + weights @ z1, atol=1e-5)
    np.testing.assert_allclose(gradient2, -q2.mean(0) + weights @ z2, atol=1e-5)
    expected_coupling = -np.einsum("bi,bj->ij", q1, q2) / len(q) + np.einsum(
        "s,si,sj->ij", weights, z1, z2
    )
    np.testing.assert_allclose(gradient_coupling, expected_coupling, atol=1e-5)


def test_the_chains_advance_by_the_configured_sweeps():
    config = TINY.replace(gibbs_sweeps=4, log_partition_gradient="exact")
    vae = build_vae(config)
    prior = vae.prior_part
    assert (prior.gibbs_sweeps, prior.log_partition_gradient) == (4, "exact")
    assert {"gibbs_sweeps": 4, "log_partition_gradient": "exact"}.items() <= (
        prior.get_config().items()
    )
    # The chains share the posterior's seed generator: each sweep takes one draw from it, and
    # the smoothing of the training step's code one more.
    assert prior.seed_generator is vae.posterior_part.seed_generator
    images = np.zeros((2, 784), "float32")
    drawn = []
    for sweeps in (1, 4):
        model = build_vae(config.replace(gibbs_sweeps=sweeps))
        generator = model.posterior_part.seed_generator
        before = numpy(generator.state)
        model(images, training=True)
        drawn.append(numpy(generator.state) - before)
    np.testing.assert_array_equal(drawn[1] - drawn[0], 3 * (drawn[0] / 2))
    # A coupling so strong that a sweep from any state lands on the all-on code.
    prior.bias1.assign(np.full(3, -20.0, "float32"))
    prior.bias2.assign(np.full(4, 10.0, "float32"))
    prior.coupling.assign(np.full((3, 4), 40.0, "float32"))
    prior.chain_first.assign(np.zeros((6, 3), "float32"))
    vae(images, training=True)
    np.testing.assert_array_equal(numpy(prior.chain_first), np.ones((6, 3)))
    np.testing.assert_array_equal(numpy(prior.chain_second), np.ones((6, 4)))
    # Outside training the chains stay where they are.
    prior.chain_first.assign(np.zeros((6, 3), "float32"))
    vae(images, training=False)
    np.testing.assert_array_equal(numpy(prior.chain_first), np.zeros((6, 3)))


def test_a_saved_rbm_model_loads_after_the_readmes_import(tmp_path):
    """`import vae_mnist.model` registers the VAE and its RBM prior, as README's snippet says."""
    import subprocess
    import sys

    save_model(build_vae(TINY), tmp_path / "vae.keras")
    script = (
        "import vae_mnist.model, keras, sys; "
        "model = keras.saving.load_model(sys.argv[1]); "
        "print(type(model.posterior_part).__name__, type(model.prior_part).__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "vae.keras")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SpikeExponentialPosterior RBMPrior"


def test_a_small_rbm_reloads_with_the_log_z_of_its_weights(tmp_path):
    """A run saved while the step enumerated the logged log Z kept the starting value in the
    variable; loading brings it to the weights' exact log Z (by the refresh's enumeration)."""
    vae = build_vae(TINY)
    prior = vae.prior_part
    rng = np.random.default_rng(5)
    prior.bias1.assign(rng.normal(0, 1, 3).astype("float32"))
    prior.coupling.assign(rng.normal(0, 1, (3, 4)).astype("float32"))
    exact = exact_log_partition(*prior.numpy_weights())
    assert abs(float(numpy(prior.log_partition)) - exact) > 0.1
    save_model(vae, tmp_path / "vae.keras")
    loaded = load_model(tmp_path / "vae.keras").prior_part
    assert float(numpy(loaded.log_partition)) == pytest.approx(exact, rel=1e-6)


@pytest.mark.parametrize("value", [0.0, 0.5])
def test_compiled_estimate_with_a_coupling_of_one_value(monkeypatch, value):
    """A coupling whose entries are all one value (the RBM switched off by hand, W = 0, to see
    what it carried) made JAX's CPU program of the estimate return garbage, 1e33 or NaN, when
    the weights were the program's constants: XLA folds a product with such a constant into
    something it then computes wrongly. As arguments, the weights cannot be folded."""
    from vae_mnist import evaluation

    vae = build_vae(TINY)
    prior = vae.prior_part
    set_rbm_weights(prior, numpy(prior.bias1), numpy(prior.bias2), np.full((3, 4), value))
    prior.prepare_evaluation(log_partition="exact")
    images = (np.random.default_rng(0).random((40, 784)) < 0.5).astype("float32")
    eager = evaluation.importance_weighted_log_likelihood(vae, images, 200, seed=4)
    monkeypatch.setattr(evaluation, "COMPILE_FROM_DECODED_VALUES", 0)
    first = evaluation.importance_weighted_log_likelihood(vae, images, 200, seed=4)
    for _ in range(2):
        compiled = evaluation.importance_weighted_log_likelihood(vae, images, 200, seed=4)
        np.testing.assert_array_equal(compiled, first)
    # The same noise compiled or not; TensorFlow's XLA rounds its logarithms differently, so
    # the two agree there on average (as in test_evaluation's comparison of the two).
    difference = first - eager
    noise = np.std(difference) / math.sqrt(len(difference))
    assert abs(np.mean(difference)) <= 4 * noise + 1e-3, difference


def test_save_load_gives_identical_outputs_and_state(tmp_path):
    vae = build_vae(TINY)
    prior = vae.prior_part
    rng = np.random.default_rng(0)
    coupling = rng.normal(0, 1, (3, 4))
    set_rbm_weights(prior, numpy(prior.bias1), numpy(prior.bias2), coupling)
    prior.chain_first.assign((rng.random((6, 3)) < 0.5).astype("float32"))
    images = rng.random((5, 784)).astype("float32")
    save_model(vae, tmp_path / "vae.keras")
    loaded = load_model(tmp_path / "vae.keras")
    for name in ("bias1", "bias2", "coupling", "chain_first", "chain_second", "log_partition"):
        np.testing.assert_array_equal(
            numpy(getattr(loaded.prior_part, name)), numpy(getattr(prior, name))
        )
    assert loaded.prior_part.get_config() == prior.get_config()
    assert loaded.posterior_part.get_config() == vae.posterior_part.get_config()
    # Both seed generators are in the same saved state, so even the noisy outputs agree.
    outputs, loaded_outputs = vae(images, training=False), loaded(images, training=False)
    for key in ("logits", "z", "reconstruction"):
        np.testing.assert_allclose(numpy(loaded_outputs[key]), numpy(outputs[key]), atol=1e-6)
    parameters = {"logits": outputs["logits"]}
    np.testing.assert_allclose(
        kl_of(loaded.posterior_part, loaded.prior_part, parameters),
        kl_of(vae.posterior_part, prior, parameters),
        rtol=1e-6,
    )


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    """Interrupts training once the first epoch is committed, as Ctrl-C would."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


class _ChainsAtStart(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.first = numpy(self.model.prior_part.chain_first)
        self.coupling = numpy(self.model.prior_part.coupling)


def test_chains_survive_checkpoint_and_resume_and_the_prior_learns(tmp_path):
    arrays = make_arrays(train=200, test=50)
    data = ((arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"]))
    folder = tmp_path / "run"
    initial = build_vae(TINY.replace(epochs=2))
    initial_chains = numpy(initial.prior_part.chain_first)
    initial_coupling = numpy(initial.prior_part.coupling)
    with pytest.raises(KeyboardInterrupt):
        train(TINY.replace(epochs=2), data, folder, verbose=0, callbacks=[_StopAfterFirstEpoch()])
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "training" and info["completed_epochs"] == 1
    checkpoint = keras.saving.load_model(folder / info["checkpoint"])
    saved_chains = numpy(checkpoint.prior_part.chain_first)
    # The chains moved in epoch 1 and the RBM's parameters learned.
    assert not np.array_equal(saved_chains, initial_chains) or not np.array_equal(
        numpy(checkpoint.prior_part.chain_second), numpy(initial.prior_part.chain_second)
    )
    assert not np.allclose(numpy(checkpoint.prior_part.coupling), initial_coupling)
    start = _ChainsAtStart()
    result = train(TINY.replace(epochs=2), data, folder, verbose=0, callbacks=[start])
    # The resumed run began from the saved chains, not from fresh ones, and finished.
    np.testing.assert_array_equal(start.first, saved_chains)
    np.testing.assert_allclose(start.coupling, numpy(checkpoint.prior_part.coupling))
    assert result["completed_epochs"] == 2
    assert all(math.isfinite(row["loss"]) for row in result["history"])
    final = load_model(folder / "vae.keras")
    assert set(np.unique(numpy(final.prior_part.chain_first))) <= {0.0, 1.0}


@pytest.fixture(scope="module")
def rbm_run(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny trained RBM run (one epoch) and its data, made through the command line."""
    root = tmp_path_factory.mktemp("dvae")
    data = root / "tiny.npz"
    np.savez(data, **make_arrays(train=200, test=60))
    folder = root / "run"
    result = run_command(
        "train", "--data", str(data), "--out", str(folder), "--epochs", "1", "--quiet", *TINY_FLAGS
    )
    assert result.returncode == 0, result.stderr
    return folder, data


def test_evaluate_writes_log_partition(rbm_run):
    folder, data = rbm_run
    result = run_command(
        "evaluate", "--run", str(folder), "--data", str(data), "--samples", "4", "--quiet"
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["log_partition_method"] == "exact"
    assert metrics["log_partition_standard_error"] == 0.0
    vae = load_model(folder / "vae.keras")
    expected = exact_log_partition(
        numpy(vae.prior_part.bias1), numpy(vae.prior_part.bias2), numpy(vae.prior_part.coupling)
    )
    assert math.isclose(metrics["log_partition"], expected, rel_tol=1e-9)
    assert len(metrics["unit_usage"]) == 7
    assert math.isfinite(metrics["negative_elbo"]) and math.isfinite(
        metrics["iwae_negative_log_likelihood"]
    )
    # K = 4 importance samples can only tighten the single-sample bound in expectation; with
    # these few images allow some noise.
    assert metrics["iwae_negative_log_likelihood"] < metrics["negative_elbo"] + 5.0
    assert "log Z" in result.stdout


def test_plot_all_draws_the_rbm_figures(rbm_run, tmp_path):
    folder, data = rbm_run
    out = tmp_path / "figures"
    result = run_command(
        "plot", "all", "--run", str(folder), "--data", str(data), "--out", str(out), "--index", "3"
    )
    assert result.returncode == 0, result.stderr
    for name in (
        "coupling.png",
        "samples.png",
        "reconstructions.png",
        "codes_3.png",
        "class_usage.png",
        "latent_scatter.png",
        "training_curves.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "manifold.png").exists()


def test_coupling_figure_refused_for_a_gaussian_run(tmp_path):
    config = RunConfig().replace(hidden_layers=[16])
    folder = tmp_path / "gaussian"
    folder.mkdir()
    save_model(build_vae(config), folder / "vae.keras")
    config.save(folder / "config.json")
    out = tmp_path / "figures"
    result = run_command("plot", "coupling", "--run", str(folder), "--out", str(out))
    assert result.returncode != 0
    assert "'coupling' needs a learned prior structure" in result.stderr
    assert "standard_normal prior" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--halves", "0,4"), "--halves"),
        (("--halves", "3,-1"), "--halves"),
        (("--sharpness", "0"), "--sharpness"),
        (("--beta", "0"), "--beta"),
        (("--beta", "-2"), "--beta"),
        (("--chains", "0"), "--chains"),
        (("--halves", "3"), "--halves: expected 2 positive whole numbers separated by commas"),
        (("--halves", "3,4"), "halves 3 + 4 need 7 binary units"),
        (("--gibbs-sweeps", "0"), "--gibbs-sweeps"),
        (("--gibbs-sweeps", "1.5"), "--gibbs-sweeps"),
        (("--log-partition-gradient", "sampled"), "--log-partition-gradient"),
        (
            ("--units", "40", "--halves", "20,20", "--log-partition-gradient", "exact"),
            "log_partition_gradient exact enumerates",
        ),
    ],
)
def test_train_refuses_bad_rbm_settings(tmp_path, flags, message):
    folder = tmp_path / "run"
    result = run_command("train", "--preset", "dvae2017-small", "--out", str(folder), *flags)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not folder.exists()


@pytest.mark.parametrize(
    ("settings", "method", "message"),
    [
        ({"units": 43, "halves": (21, 22)}, "exact", "21 units: more than 20"),
        # The prior, not the command line, knows its methods: one check, with the choices.
        ({}, "banana", "unknown --log-partition 'banana' (choose from auto, exact, ais)"),
        ({}, "", "unknown --log-partition ''"),
        (
            {"posterior": "gaussian", "prior": "standard_normal"},
            "ais",
            "--log-partition applies to a prior with a partition function",
        ),
    ],
)
def test_evaluate_refuses_a_log_partition_it_cannot_have(tmp_path, settings, method, message):
    config = TINY.replace(**settings)
    folder = tmp_path / "run"
    folder.mkdir()
    save_model(build_vae(config), folder / "vae.keras")
    config.save(folder / "config.json")
    before = folder_state(folder)
    result = run_command("evaluate", "--run", str(folder), "--log-partition", method)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert folder_state(folder) == before


def test_evaluate_refuses_an_unknown_log_partition_before_loading_the_model(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    # A model file that would fail to load: the method is refused first, from the config.
    (folder / "vae.keras").write_bytes(b"not a model")
    TINY.save(folder / "config.json")
    result = run_command("evaluate", "--run", str(folder), "--log-partition", "banana")
    assert result.returncode != 0
    assert "unknown --log-partition 'banana'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("settings", "weight"),
    [
        ({}, 1.0),
        ({"kl_weight": 0.5}, 0.5),
        ({"kl_weight": 0.5, "kl_warmup_epochs": 4}, 0.0),
        # The importance-weighted bound takes the KL whole: each log-weight holds log Z once.
        ({"posterior": "bernoulli", "relaxation": "gumbolt", "objective": "iwae"}, 1.0),
    ],
)
def test_the_kl_weight_weighs_the_chains_gradient_of_log_z_as_the_rest_of_the_kl(
    monkeypatch, settings, weight
):
    """The chains' term of log Z's gradient reaches the loss beside the per-image KL; a β or a
    warm-up (0 in its first epoch) weighs it as the KL, or the RBM's gradient loses its balance
    between the posterior's energy and the model's."""
    config = TINY.replace(log_partition_gradient="chains", **settings)
    vae = build_vae(config)
    images = (np.random.default_rng(3).random((4, 784)) < 0.3).astype("float32")
    outputs = vae(images, training=True)
    # The term is zero in value; give it a value to see its weight in the loss.
    assert float(numpy(vae.prior.part.auxiliary_loss())) == 0.0
    loss = float(numpy(vae.compute_loss(images, y_pred=outputs)))
    monkeypatch.setattr(RBMPrior, "auxiliary_loss", lambda prior: ops.convert_to_tensor(2.0))
    shifted = float(numpy(vae.compute_loss(images, y_pred=outputs)))
    assert shifted - loss == pytest.approx(2.0 * weight, abs=1e-4)
