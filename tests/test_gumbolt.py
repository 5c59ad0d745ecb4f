"""GumBolt (Khoshaman & Amin 2018) and the larger RBM priors: the relaxed energy, its gradient,
AIS and the persistent chains against exact values, the log Z that training logs, the presets
and their twins."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
from conftest import gaussian_log_density, make_arrays, set_rbm_weights
from keras import ops
from test_dvae import run_command
from test_relaxations import gradients

from vae_mnist import rbm_prior
from vae_mnist.config import RunConfig
from vae_mnist.discrete import BernoulliPosterior, SpikeExponentialPosterior
from vae_mnist.errors import RunError
from vae_mnist.model import PartLayer, build_vae, load_model, save_model
from vae_mnist.rbm import (
    annealed_importance_sampling_log_partition,
    bernoulli_entropy,
    enumerated_log_partition,
    exact_log_partition,
    rbm_energy,
)
from vae_mnist.rbm_prior import RBMPrior
from vae_mnist.relaxations import binary_concrete_sample
from vae_mnist.settings import ConfigError
from vae_mnist.training import settings_that_differ, train

GUMBOLT = RunConfig().replace(
    posterior="bernoulli",
    units=7,
    prior="rbm",
    halves=(3, 4),
    chains=6,
    relaxation="gumbolt",
    hidden_layers=[16],
    binarize="dynamic",
    optimizer="adam",
    batch_size=50,
    epochs=1,
    steps_per_execution=2,
    # XLA's compile time outweighs its gain on a model this small.
    jit_compile=False,
)
# Runs of the presets in tests: AIS short enough for a test, still with a standard error.
SHORT_AIS = {"ais_runs": 20, "ais_steps": 200}


def numpy(value) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(value), dtype=np.float64)


def data_of(train: int = 100, test: int = 40):
    arrays = make_arrays(train=train, test=test)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def gumbolt_parts(
    first: int = 2, second: int = 3, seed: int = 0, **prior_settings
) -> tuple[BernoulliPosterior, RBMPrior]:
    """A bernoulli posterior and a GumBolt RBM prior over it with random weights, hosted as in
    the model."""
    posterior = PartLayer(BernoulliPosterior(units=first + second), seed)
    settings = dict(halves=(first, second), chains=4, relaxation="gumbolt", **prior_settings)
    prior = PartLayer(RBMPrior(**settings), seed, posterior.part).part
    rng = np.random.default_rng(seed)
    set_rbm_weights(
        prior,
        rng.normal(0.0, 1.0, first),
        rng.normal(0.0, 1.0, second),
        rng.normal(0.0, 1.0, (first, second)),
    )
    return posterior.part, prior


def concrete_moments(logits: np.ndarray, temperature: float, grid: int = 400_000):
    """E[ζ], E[ζ²] and ∂E[ζ]/∂l of the binary Concrete ζ = σ((l + log u - log(1 - u)) / τ), by
    quadrature over an even grid of u, per logit (float64)."""
    u = (np.arange(grid) + 0.5) / grid
    noise = np.log(u) - np.log1p(-u)
    zeta = 1.0 / (1.0 + np.exp(-(logits[:, None] + noise) / temperature))
    slope = zeta * (1.0 - zeta) / temperature
    return zeta.mean(1), (zeta**2).mean(1), slope.mean(1)


# -- the relaxed sample and its gradient ---------------------------------------------------------


def test_the_relaxed_sample_has_the_moments_of_the_binary_concrete():
    """The training sample of the GumBolt posterior: P(ζ > ½) = σ(l), and E[ζ], E[ζ²] as the
    quadrature of its distribution gives them, within five standard errors."""
    temperature, samples = 0.7, 100_000
    logits = np.array([-2.0, -0.3, 0.0, 1.1, 3.0], "float32")
    posterior = PartLayer(BernoulliPosterior(units=5, temperature=temperature), 3).part
    parameters = {"logits": ops.convert_to_tensor(np.tile(logits, (samples, 1)))}
    zeta = numpy(posterior.sample(parameters, training=True))
    assert np.all((zeta >= 0.0) & (zeta <= 1.0))
    mean, second_moment, _ = concrete_moments(logits.astype(np.float64), temperature)
    error = np.sqrt((second_moment - mean**2) / samples)
    np.testing.assert_array_less(np.abs(zeta.mean(0) - mean), 5 * error)
    squared_error = np.sqrt(np.var(zeta**2, axis=0) / samples)
    np.testing.assert_array_less(np.abs((zeta**2).mean(0) - second_moment), 5 * squared_error)
    above = (zeta > 0.5).mean(0)
    probability = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    np.testing.assert_array_less(
        np.abs(above - probability), 5 * np.sqrt(probability * (1 - probability) / samples)
    )


def test_the_pathwise_gradient_of_the_relaxed_energy_is_that_of_its_expectation():
    """∂/∂l of the mean of E(ζ) over samples, by automatic differentiation through the sample,
    against the exact ∂E_ζ[E(ζ)]/∂l: E(ζ) is linear in each unit and the units independent, so
    E_ζ[E(ζ)] = E(m) with m = E[ζ], and ∂/∂l_i = (∂E/∂ζ_i at m) · ∂m_i/∂l_i (quadrature)."""
    temperature, samples = 0.6, 40_000
    rng = np.random.default_rng(5)
    bias1, bias2 = rng.normal(0, 1, 2), rng.normal(0, 1, 3)
    coupling = rng.normal(0, 1.5, (2, 3))
    logits = rng.normal(0, 1.5, 5).astype("float32")
    weights = [value.astype("float32") for value in (bias1, bias2, coupling)]

    def mean_energy(shared_logits):
        # (units,) -> (samples, units): every row the same logits, the noise fixed by an int seed.
        tiled = ops.tile(ops.expand_dims(shared_logits, 0), (samples, 1))
        zeta = binary_concrete_sample(tiled, temperature, seed=11)
        return ops.mean(rbm_energy(zeta[:, :2], zeta[:, 2:], *weights))

    (gradient,) = gradients(mean_energy, logits)
    mean, _, slope = concrete_moments(logits.astype(np.float64), temperature)
    # ∂E/∂ζ1 = -a1 - W m2 and ∂E/∂ζ2 = -a2 - Wᵀ m1, at the means.
    energy_slope = np.concatenate([-bias1 - coupling @ mean[2:], -bias2 - coupling.T @ mean[:2]])
    exact = energy_slope * slope
    # Each sample's own gradient, from the same noise, gives the standard error.
    tiled = np.tile(logits, (samples, 1))
    zeta = numpy(binary_concrete_sample(tiled, temperature, seed=11))
    per_sample_slope = np.concatenate(
        [-bias1 - zeta[:, 2:] @ coupling.T, -bias2 - zeta[:, :2] @ coupling], axis=1
    )
    per_sample = per_sample_slope * zeta * (1.0 - zeta) / temperature
    np.testing.assert_allclose(gradient, per_sample.mean(0), rtol=1e-3, atol=1e-5)
    standard_error = per_sample.std(0) / math.sqrt(samples)
    np.testing.assert_array_less(np.abs(gradient - exact), 5 * standard_error + 1e-6)


def test_the_gumbolt_term_at_exact_bits_is_the_discrete_one():
    """At ζ = bits the proxy is exact: log q̃ + E + log Z = log q(z|x) - log p(z), and the
    ELBO's form -H(q) + E(z) + log Z has the closed-form KL as its mean over q."""
    posterior, prior = gumbolt_parts(seed=2)
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 1.5, (4, 5)).astype("float32")
    parameters = {"logits": ops.convert_to_tensor(logits)}
    bits = (rng.random((4, 5)) < 0.5).astype("float32")
    per_sample = numpy(prior.relaxed_divergence(bits, parameters, sample_estimate=True))
    expected = numpy(posterior.log_density(bits, parameters)) - numpy(prior.log_density(bits))
    np.testing.assert_allclose(per_sample, expected, rtol=1e-5, atol=1e-4)
    # Every code, weighted by q: the mean of the ELBO's form is the closed-form KL.
    codes = np.array([[(index >> unit) & 1 for unit in range(5)] for index in range(32)], "f4")
    closed_form = numpy(prior.kl_divergence(posterior.distribution(parameters)))
    for row in range(4):
        one = {"logits": ops.convert_to_tensor(np.tile(logits[row], (32, 1)))}
        terms = numpy(prior.relaxed_divergence(codes, one, sample_estimate=False))
        log_q = numpy(posterior.log_density(codes, one))
        assert float(np.sum(np.exp(log_q) * terms)) == pytest.approx(closed_form[row], abs=1e-4)
    entropy = numpy(bernoulli_entropy(logits))
    assert np.all(entropy > 0)


def test_gumbolt_training_relaxes_the_energy_and_validation_takes_exact_bits():
    vae = build_vae(GUMBOLT)
    assert vae.prior_part.offers("relaxed_energy")
    assert not build_vae(GUMBOLT.replace(relaxation="closed_form")).prior_part.offers(
        "relaxed_energy"
    )
    # What the explore page is told the prior offers is what `offers` answers.
    assert "relaxed_energy" in vae.prior_part.offered_capabilities()
    images = np.random.default_rng(0).random((6, 784)).astype("float32")
    outputs = vae(images, training=True)
    zeta = numpy(outputs["z"])
    # The decoder saw the relaxed sample, and the KL is the prior's term at that sample.
    assert np.any((zeta > 0.01) & (zeta < 0.99))
    parameters = {"logits": outputs["logits"]}
    expected = vae.prior_part.relaxed_divergence(outputs["z"], parameters, sample_estimate=False)
    np.testing.assert_allclose(numpy(vae.kl_terms(outputs)), numpy(expected), rtol=1e-6)
    validation = vae(images, training=False)
    assert "relaxed_kl" not in validation
    assert set(np.unique(numpy(validation["z"]))) <= {0.0, 1.0}
    closed_form = vae.prior_part.kl_divergence(vae.posterior_part.distribution(validation))
    np.testing.assert_allclose(numpy(vae.kl_terms(validation)), numpy(closed_form), rtol=1e-6)


def test_gumbolt_trains_with_the_importance_weighted_objective(tmp_path):
    config = GUMBOLT.replace(objective="iwae", importance_samples=3)
    vae = build_vae(config)
    images = np.random.default_rng(1).random((4, 784)).astype("float32")
    outputs = vae(images, training=True)
    # Each of the 4 × 3 samples has its own weight: log q̃(ζ|x) + E(ζ) + log Z.
    parameters = {"logits": outputs["logits"]}
    expected = vae.prior_part.relaxed_divergence(outputs["z"], parameters, sample_estimate=True)
    np.testing.assert_allclose(numpy(outputs["relaxed_kl"]), numpy(expected), rtol=1e-6)
    assert numpy(outputs["relaxed_kl"]).shape == (12,)
    result = train(config, data_of(), tmp_path / "run", verbose=0)
    assert all(math.isfinite(row["loss"]) for row in result["history"])
    # Without GumBolt the RBM prior gives no weight to a relaxed sample.
    with pytest.raises(ConfigError, match="iwae objective weighs samples"):
        config.replace(relaxation="closed_form")


# -- the log partition function: AIS, the chains, the logged value --------------------------------


@pytest.mark.parametrize("coupling_scale", [0.3, 1.0])
def test_annealed_importance_sampling_agrees_with_exact_within_its_standard_error(
    coupling_scale,
):
    rng = np.random.default_rng(21)
    bias1, bias2 = rng.normal(0, 0.5, 9), rng.normal(0, 0.5, 30)
    coupling = rng.normal(0, coupling_scale, (9, 30))
    exact = exact_log_partition(bias1, bias2, coupling)
    estimate, error = annealed_importance_sampling_log_partition(
        bias1, bias2, coupling, chains=200, steps=1000, rng=np.random.default_rng(22)
    )
    assert 0.0 < error < 0.1
    assert abs(estimate - exact) < 4 * error + 1e-3


def test_the_persistent_chains_give_the_gradient_of_log_z():
    """The chains' surrogate, after the chains have mixed, has E_p[-∂E/∂θ] = ∂ log Z/∂θ as its
    gradient: against the enumerated log Z's gradient, within five standard errors."""
    chains = 4000
    posterior = PartLayer(BernoulliPosterior(units=7), 7).part
    prior = PartLayer(RBMPrior(halves=(3, 4), chains=chains), 7, posterior).part
    rng = np.random.default_rng(8)
    weights = [
        rng.normal(0, 0.8, 3).astype("float32"),
        rng.normal(0, 0.8, 4).astype("float32"),
        rng.normal(0, 1.2, (3, 4)).astype("float32"),
    ]
    for variable, value in zip((prior.bias1, prior.bias2, prior.coupling), weights, strict=True):
        variable.assign(value)
    for _ in range(30):
        prior.training_update()
    variables = (prior.bias1, prior.bias2, prior.coupling)

    def surrogate(bias1, bias2, coupling):
        mapping = list(zip(variables, (bias1, bias2, coupling), strict=True))
        with keras.StatelessScope(state_mapping=mapping):
            return prior.auxiliary_loss()

    chain_gradients = gradients(surrogate, *weights)
    exact_gradients = gradients(enumerated_log_partition, *weights)
    z1, z2 = numpy(prior.chain_first), numpy(prior.chain_second)
    # Each chain's own -∂E/∂θ: z1, z2 and z1 z2ᵀ; their spread gives the standard errors.
    per_chain = [z1, z2, np.einsum("ci,cj->cij", z1, z2)]
    for chain_gradient, exact_gradient, values in zip(
        chain_gradients, exact_gradients, per_chain, strict=True
    ):
        np.testing.assert_allclose(chain_gradient, values.mean(0), rtol=1e-4, atol=1e-5)
        standard_error = values.std(0) / math.sqrt(chains)
        assert np.all(np.abs(chain_gradient - exact_gradient) < 5 * standard_error + 1e-3)


def test_the_logged_log_z_is_refreshed_unless_the_step_enumerates_it_for_its_gradient():
    assert build_vae(GUMBOLT.replace(log_partition_gradient="exact")).prior_part.callbacks() == []
    # A half of at most 16 units with the chains' gradient: the refresh enumerates in numpy.
    small = build_vae(GUMBOLT).prior_part
    (callback,) = small.callbacks()
    set_rbm_weights(small, [0.5, -1.0, 2.0], [1.0, 0.0, -0.5, 0.3], np.full((3, 4), 0.7))
    small.log_partition.assign(0.0)
    callback.on_epoch_begin(0)
    exact = exact_log_partition(*small.numpy_weights())
    assert float(numpy(small.log_partition)) == pytest.approx(exact, rel=1e-6)
    # A larger one: by AIS of `ais_refresh_steps` steps.
    config = GUMBOLT.replace(units=34, halves=(17, 17), ais_runs=50, ais_refresh_steps=300)
    vae = build_vae(config)
    prior = vae.prior_part
    (callback,) = prior.callbacks()
    rng = np.random.default_rng(4)
    prior.bias1.assign(rng.normal(0, 1, 17).astype("float32"))
    prior.bias2.assign(rng.normal(0, 1, 17).astype("float32"))
    prior.coupling.assign(rng.normal(0, 0.2, (17, 17)).astype("float32"))
    exact = exact_log_partition(*prior.numpy_weights())
    assert abs(float(numpy(prior.log_partition)) - exact) > 1.0
    # The refresh anneals over `ais_refresh_steps`, not evaluation's `ais_steps`.
    refreshed = prior.refreshed_log_partition(3)
    assert refreshed == prior.annealed_log_partition(3, steps=300)[0]
    assert refreshed != prior.annealed_log_partition(3)[0]
    callback.on_epoch_begin(0)
    assert float(numpy(prior.log_partition)) == pytest.approx(exact, abs=0.1)
    # No training step since: the validation that follows keeps the value.
    prior.log_partition.assign(0.0)
    callback.on_test_begin()
    assert float(numpy(prior.log_partition)) == 0.0
    callback.on_train_batch_end(0)
    callback.on_test_begin()
    assert float(numpy(prior.log_partition)) == pytest.approx(exact, abs=0.1)


def test_training_a_large_rbm_logs_the_kl_with_a_current_log_z(tmp_path):
    """With halves above the step's enumeration, train() refreshes log Z by AIS, so the saved
    model's log Z is that of its final weights, far from the initial (n1 + n2) log 2."""
    config = GUMBOLT.replace(
        units=34, halves=(17, 17), ais_runs=50, ais_refresh_steps=300, learning_rate=0.05, epochs=2
    )
    result = train(config, data_of(), tmp_path / "run", verbose=0)
    vae = load_model(tmp_path / "run" / "vae.keras")
    exact = exact_log_partition(*vae.prior_part.numpy_weights())
    # The weights moved log Z well away from where it started (by 0.26 on PyTorch, more on
    # the others), so the refreshed value below cannot be the initial one.
    assert abs(exact - 34 * math.log(2.0)) > 0.2
    assert float(numpy(vae.prior_part.log_partition)) == pytest.approx(exact, abs=0.05)
    assert all(math.isfinite(row["val_kl_loss"]) for row in result["history"])


def assert_reloads_to_the_same_outputs(vae, path) -> None:
    """`vae` saved to `path` reloads in safe mode with its configuration and its outputs."""
    images = np.random.default_rng(0).random((5, 784)).astype("float32")
    save_model(vae, path)
    loaded = load_model(path)
    assert loaded.run_config == vae.run_config
    before, after = vae(images, training=False), loaded(images, training=False)
    for key in (*vae.latent_heads, "z", "reconstruction"):
        np.testing.assert_allclose(numpy(after[key]), numpy(before[key]), atol=1e-6)


# -- the presets and their twins -------------------------------------------------------------


def preset_round_trip(name: str, tmp_path, **changes) -> tuple[RunConfig, dict]:
    """A preset, shortened: it builds, saves and reloads to the same outputs, trains an epoch to
    a finite loss and evaluates to a finite -log p(x). Returns its config and the metrics."""
    from vae_mnist.data import model_inputs
    from vae_mnist.evaluation import evaluate_run
    from vae_mnist.presets import preset_config

    config = preset_config(
        name, epochs=1, batch_size=50, steps_per_execution=1, jit_compile=False, **changes
    )
    vae = build_vae(config)
    assert_reloads_to_the_same_outputs(vae, tmp_path / "vae.keras")
    data = data_of(train=100, test=20)
    result = train(config, data, tmp_path / "run", verbose=0)
    assert math.isfinite(result["history"][-1]["loss"])
    trained = load_model(tmp_path / "run" / "vae.keras")
    inputs = model_inputs(data, config.data.binarize, config.training.seed)
    metrics = evaluate_run(
        trained, inputs[0], data[0][1], inputs[1], data[1][1], samples=4, neighbours=3
    )
    assert math.isfinite(metrics["iwae_negative_log_likelihood"])
    return config, metrics


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("gumbolt2018", SHORT_AIS),
        ("gumbolt2018", {**SHORT_AIS, "objective": "iwae", "importance_samples": 2}),
        ("gumbolt2018-factorial", {}),
        ("dvae2017-small", SHORT_AIS),
        ("dvae2017-small-factorial", {}),
        ("dvaepp2018-factorial", {}),
        ("dvaesharp2018-factorial", {}),
        ("gumbolt2018-hierarchical-factorial", {}),
        ("dvaepp2018-hierarchical", SHORT_AIS),
        ("dvaepp2018-hierarchical-factorial", {}),
        ("dvaesharp2018-hierarchical", SHORT_AIS),
        ("dvaesharp2018-hierarchical-factorial", {}),
        ("dvae2017", SHORT_AIS),
        ("dvae2017-factorial", {}),
        ("gumbolt2018-continuous", SHORT_AIS),
        ("gumbolt2018-continuous-factorial", {}),
        ("gumbolt2018-continuous-factorial", {"objective": "iwae", "importance_samples": 2}),
    ],
)
def test_the_new_presets_build_save_reload_train_and_evaluate(name, changes, tmp_path):
    config, metrics = preset_round_trip(name, tmp_path, **changes)
    if config.prior.kind == "rbm":
        assert metrics["log_partition_method"] == "ais"
        assert 0.0 < metrics["log_partition_standard_error"] < 0.5


@pytest.mark.parametrize(
    "first, second",
    [
        ("dvae2017-small", "dvae2017-small-factorial"),
        ("gumbolt2018", "gumbolt2018-factorial"),
        ("dvaepp2018", "dvaepp2018-factorial"),
        ("dvaesharp2018", "dvaesharp2018-factorial"),
        ("gumbolt2018-hierarchical", "gumbolt2018-hierarchical-factorial"),
        ("dvaepp2018-hierarchical", "dvaepp2018-hierarchical-factorial"),
        ("dvaesharp2018-hierarchical", "dvaesharp2018-hierarchical-factorial"),
        ("dvae2017", "dvae2017-factorial"),
        ("gumbolt2018-continuous", "gumbolt2018-continuous-factorial"),
    ],
)
def test_each_twin_differs_from_its_preset_only_in_the_prior(first, second):
    from vae_mnist.presets import load_preset

    a, b = load_preset(first).config.to_dict(), load_preset(second).config.to_dict()
    differing = {section for section in {*a, *b} if a.get(section) != b.get(section)}
    assert differing == {"prior", "preset"}
    assert a["prior"]["kind"] == "rbm" and b["prior"]["kind"] == "uniform"
    # The same number of binary units under either prior, in the top layer.
    top = (b.get("upper_layers") or [b])[-1]["posterior"]
    assert sum(a["prior"]["halves"]) == top["units"]


def test_presets_verbose_names_each_ones_paper_and_what_differs():
    result = run_command("presets", "--verbose")
    assert result.returncode == 0
    for name, paper in (
        ("gumbolt2018", "Khoshaman & Amin"),
        ("gumbolt2018-factorial", "Khoshaman & Amin"),
        ("dvae2017-small-factorial", "Rolfe"),
        ("dvaepp2018-factorial", "Vahdat"),
        ("dvaesharp2018", "Vahdat"),
        ("dvaesharp2018-factorial", "Vahdat"),
        ("dvaesharp2018-hierarchical", "Vahdat"),
        ("dvae2017", "Rolfe"),
        ("dvae2017-factorial", "Rolfe"),
        ("gumbolt2018-continuous", "Rolfe"),
        ("gumbolt2018-continuous-factorial", "Rolfe"),
    ):
        block = result.stdout.split(f"\n{name} ", 1)[1].split("settings:", 1)[0]
        assert f"paper: {paper}" in block
        assert "differs:" in block and "prior" in block


# -- a continuous layer below the RBM (Rolfe's full model) ------------------------------------


def continuous_below_rbm(
    top_posterior: dict | None = None, relaxation: str = "gumbolt"
) -> RunConfig:
    """x → 3 Gaussian units → 4 binary units in 2 groups under a 2 + 2 RBM (GumBolt)."""
    config = GUMBOLT.replace(halves=(2, 2), units=4).to_dict()
    config["posterior"] = {"kind": "gaussian", "dimension": 3}
    config["prior"]["relaxation"] = relaxation
    config["upper_layers"] = [
        {
            "network": {"kind": "mlp", "hidden_layers": [6], "activation": "relu"},
            "posterior": top_posterior
            or {"kind": "hierarchical_bernoulli", "units": 4, "groups": 2},
        }
    ]
    return RunConfig.from_dict(config)


SMOOTHED_TOP = {"kind": "hierarchical_power_function", "units": 4, "groups": 2, "sharpness": 5.0}


@pytest.mark.parametrize(
    ("top_posterior", "relaxation"), [(None, "gumbolt"), (SMOOTHED_TOP, "closed_form")]
)
def test_the_log_weights_below_an_rbm_are_the_hand_computed_sum(
    top_posterior, relaxation, monkeypatch
):
    """log p(x|z₁) + log p(z₁|z₂) - E(z₂) - log Z - log q(z₁|x) - log q(z₂|z₁), the RBM's terms
    and the Gaussians' by hand in numpy, with z₁ at its mean (no Gaussian noise) and the bits
    z₂ those the top posterior draws under the same seed. Smoothed units at the top condition
    p(z₁|·) on the ζ drawn with their bits, as in training, and the RBM weighs the bits."""
    from vae_mnist import gaussian

    monkeypatch.setattr(gaussian.noise, "normal", lambda shape, **_: ops.zeros(shape))
    vae = build_vae(continuous_below_rbm(top_posterior, relaxation))
    images = (np.random.default_rng(2).random((6, 784)) > 0.5).astype("float32")
    log_weights = numpy(vae.log_weights(images, 1, 7))[:, 0]

    mean_1, log_var_1 = (numpy(value) for value in vae.encoder(images))
    upper = vae.upper_layers[0]
    top = upper.posterior.part
    parameters = dict(zip(top.head_sizes(), [upper.encoder(mean_1.astype("float32"))], strict=True))
    bits, log_q_2, smoothed = top.exact_sample(parameters, 1, 7)
    bits, log_q_2 = numpy(bits)[:, 0], numpy(log_q_2)[:, 0]
    assert set(np.unique(bits)) <= {0.0, 1.0}
    condition = bits if smoothed is None else numpy(smoothed)[:, 0]
    assert (smoothed is None) == (top_posterior is None)
    prior_mean, prior_log_var = (
        numpy(value) for value in upper.prior_network(condition.astype("float32"))
    )
    bias1, bias2, coupling = vae.prior_part.numpy_weights()
    log_p_2 = (
        bits[:, :2] @ bias1
        + bits[:, 2:] @ bias2
        + np.sum((bits[:, :2] @ coupling) * bits[:, 2:], 1)
    ) - exact_log_partition(bias1, bias2, coupling)
    probabilities = np.clip(numpy(vae.decoder(mean_1.astype("float32"))), 1e-7, 1 - 1e-7)
    log_likelihood = np.sum(
        images * np.log(probabilities) + (1 - images) * np.log(1 - probabilities), axis=1
    )
    expected = (
        log_likelihood
        + gaussian_log_density(mean_1, prior_mean, prior_log_var)
        + log_p_2
        - gaussian_log_density(mean_1, mean_1, log_var_1)
        - log_q_2
    )
    np.testing.assert_allclose(log_weights, expected, rtol=1e-4, atol=1e-3)


def test_a_continuous_layer_below_the_rbm_trains_with_the_relaxed_energy(tmp_path):
    config = continuous_below_rbm()
    vae = build_vae(config)
    images = np.random.default_rng(0).random((8, 784)).astype("float32")
    outputs = vae(images, training=True)
    # The RBM's term comes from the top layer's relaxed sample, and the decoder reads z₁.
    assert "relaxed_kl" in outputs and outputs["z_2"].shape == (8, 4)
    assert not set(np.unique(numpy(outputs["z_2"]))) <= {0.0, 1.0}
    assert outputs["z"].shape == (8, 3)
    result = train(config, data_of(train=100, test=20), tmp_path / "run", verbose=0)
    assert all(math.isfinite(row["val_loss"]) for row in result["history"])
    assert_reloads_to_the_same_outputs(
        load_model(tmp_path / "run" / "vae.keras"), tmp_path / "again.keras"
    )


def test_the_factorial_twin_weighs_a_relaxed_sample_as_its_rbm_with_no_coupling():
    """Under the IWAE objective the twin's weight is GumBolt's, log q̃(ζ|x) + N log 2: what the
    RBM model, its other weights the same, gives at the twin's sample with zero biases and
    coupling (log Z = N log 2)."""
    rbm_config = continuous_below_rbm().replace(objective="iwae", importance_samples=3)
    twin_config = RunConfig.from_dict({**rbm_config.to_dict(), "prior": {"kind": "uniform"}})
    rbm, twin = build_vae(rbm_config), build_vae(twin_config)
    set_rbm_weights(rbm.prior_part, np.zeros(2), np.zeros(2), np.zeros((2, 2)))
    shared = ("encoder", "decoder", "upper_encoders", "upper_prior_networks", "upper_posteriors")
    for name in shared:
        for source, target in zip(
            keras.tree.flatten(getattr(twin, name)),
            keras.tree.flatten(getattr(rbm, name)),
            strict=True,
        ):
            target.set_weights(source.get_weights())
    images = (np.random.default_rng(3).random((4, 784)) > 0.5).astype("float32")
    outputs = twin(images, training=True)
    zeta = outputs["z_2"]
    assert zeta.shape == (12, 4) and not set(np.unique(numpy(zeta))) <= {0.0, 1.0}
    top_parameters = {
        name: outputs[f"layer_2/{name}"] for name in twin.top_posterior_part.head_sizes()
    }
    rbm_term = rbm.prior_part.relaxed_divergence(zeta, top_parameters, sample_estimate=True)
    np.testing.assert_allclose(
        numpy(twin.kl_terms(outputs, analytic=False)),
        numpy(rbm.kl_terms({**outputs, "relaxed_kl": rbm_term}, analytic=False)),
        rtol=1e-5,
    )
    # The weights differ from sample to sample: no closed form stands in.
    assert np.ptp(numpy(rbm_term)) > 0.1


def test_smoothed_units_in_groups_at_the_top_train_with_the_closed_form_kl(tmp_path):
    config = continuous_below_rbm(SMOOTHED_TOP, "closed_form")
    vae = build_vae(config)
    images = np.random.default_rng(0).random((8, 784)).astype("float32")
    outputs = vae(images, training=True)
    # No relaxed energy: the KL is the groups' entropies and the RBM at E[z|ζ].
    assert "relaxed_kl" not in outputs and outputs["z_2"].shape == (8, 4)
    assert np.all(np.isfinite(numpy(vae.kl_terms(outputs))))
    result = train(config, data_of(train=100, test=20), tmp_path / "run", verbose=0)
    assert all(math.isfinite(row["val_loss"]) for row in result["history"])
    assert_reloads_to_the_same_outputs(
        load_model(tmp_path / "run" / "vae.keras"), tmp_path / "again.keras"
    )


def test_the_top_of_a_stack_needs_a_density_or_relaxed_bits():
    with pytest.raises(ConfigError, match="top of a stack of layers needs a posterior with a "):
        continuous_below_rbm({"kind": "spike_exponential", "units": 4}, "closed_form")


def test_a_flag_sets_the_one_upper_layers_part_that_has_its_setting():
    config = continuous_below_rbm().replace(temperature_min=0.25, groups=4, dimension=5)
    top = config.upper_layers[0].posterior
    assert (top.temperature_min, top.groups) == (0.25, 4)
    # A setting that the first layer's part has stays the first layer's.
    assert (config.posterior.kind, config.posterior.dimension) == ("gaussian", 5)


def test_a_flag_that_two_upper_layers_have_is_refused():
    """No stack of today's kinds has two upper parts with a setting the first layer lacks, so
    the sections are given as `apply_changes` sees them."""
    from vae_mnist.flags import _settings_holding

    values = continuous_below_rbm().to_dict()
    values["upper_layers"] = values["upper_layers"] * 2
    with pytest.raises(ConfigError, match="setting of 2 of this run's upper"):
        _settings_holding(values, "temperature_min")
    assert _settings_holding(values, "dimension") is values["posterior"]


def test_an_extension_may_change_an_upper_layers_resumable_settings_only(tmp_path):
    config = continuous_below_rbm()
    folder = tmp_path / "run"
    train(config, data_of(train=100, test=20), folder, verbose=0)
    later = config.replace(epochs=2, temperature_min=0.25)
    assert settings_that_differ(config, later) == []
    assert settings_that_differ(config, config.replace(groups=4)) == ["layer 2's groups"]
    train(later, data_of(train=100, test=20), folder, verbose=0, extend=True)
    vae = load_model(folder / "vae.keras")
    assert vae.top_posterior_part.temperature_min == 0.25
    saved = json.loads((folder / "config.json").read_text())["upper_layers"][0]["posterior"]
    assert saved["temperature_min"] == 0.25
    with pytest.raises(RunError, match="layer 2's groups 2 .saved. against 4"):
        train(config.replace(epochs=3, groups=4), data_of(), folder, verbose=0, extend=True)


# -- one-line refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ("--relaxation", "spike"),
            "--relaxation: invalid choice: 'spike' "
            "(choose from 'closed_form', 'gumbolt', 'mean_field')",
        ),
        (("--posterior", "spike_exponential"), "does not give (use --posterior bernoulli"),
        (("--units", "300", "--halves", "150,150"), "a half has at most 128 units"),
        (("--units", "32", "--halves", "0,32"), "--halves"),
        (("--halves", "16"), "--halves: expected 2 positive whole numbers separated by commas"),
        (("--ais-runs", "0"), "--ais-runs: expected a whole number of at least 2, got '0'"),
        (("--ais-runs", "1"), "--ais-runs: expected a whole number of at least 2, got '1'"),
        (("--ais-steps", "0"), "--ais-steps: expected a positive whole number"),
        (("--ais-steps", "-5"), "--ais-steps"),
        (("--ais-refresh-steps", "0"), "--ais-refresh-steps: expected a positive whole number"),
        (("--log-partition-gradient", "sometimes"), "--log-partition-gradient"),
    ],
)
def test_train_refuses_bad_gumbolt_settings_in_one_line(tmp_path, flags, message):
    folder = tmp_path / "run"
    result = run_command("train", "--preset", "gumbolt2018", "--out", str(folder), *flags)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not folder.exists()


def test_the_parts_refuse_bad_values():
    with pytest.raises(ConfigError, match="at most 128"):
        RBMPrior(halves=(129, 4))
    with pytest.raises(ConfigError, match="unknown relaxation 'gumbel'"):
        RBMPrior(relaxation="gumbel")
    posterior = PartLayer(SpikeExponentialPosterior(units=5), 0).part
    with pytest.raises(ConfigError, match="spike_exponential posterior does not give"):
        RBMPrior(halves=(2, 3), relaxation="gumbolt").check_posterior(posterior)
    # auto: the exact gradient where the step enumerates, the chains above.
    assert RBMPrior(halves=(16, 40), log_partition_gradient="auto").exact_gradient
    assert not RBMPrior(halves=(17, 40), log_partition_gradient="auto").exact_gradient


def test_a_gumbolt_run_writes_its_relaxation_to_config_json(tmp_path):
    result = run_command(
        "train",
        "--preset",
        "gumbolt2018",
        "--out",
        str(tmp_path / "run"),
        "--data",
        str(_tiny_npz(tmp_path)),
        "--epochs",
        "1",
        "--ais-runs",
        "10",
        "--ais-steps",
        "100",
        "--no-jit-compile",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["prior"]["relaxation"] == "gumbolt"
    assert config["posterior"]["kind"] == "bernoulli"
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(history) == 2


def _tiny_npz(folder):
    path = folder / "tiny.npz"
    np.savez(path, **make_arrays(train=100, test=30))
    return path


def test_the_largest_rbm_trains_a_step_and_estimates_its_log_z(tmp_path):
    """2 × 128 units: the chains' gradient (no enumeration), the AIS refresh, AIS in evaluation."""
    config = GUMBOLT.replace(
        units=256, halves=(128, 128), log_partition_gradient="auto", ais_runs=10, ais_steps=50
    )
    vae = build_vae(config)
    prior = vae.prior_part
    assert not prior.exact_gradient and len(prior.callbacks()) == 1
    assert not prior.exact_log_partition_possible()
    result = train(config, data_of(train=100, test=20), tmp_path / "run", verbose=0)
    assert math.isfinite(result["history"][-1]["val_loss"])
    trained = load_model(tmp_path / "run" / "vae.keras").prior_part
    metrics = trained.prepare_evaluation(log_partition="auto")
    assert metrics["log_partition_method"] == "ais"
    assert metrics["log_partition_standard_error"] > 0.0
    # Near W = 0 log Z is about 256 log 2 (the biases moved a little in training).
    assert abs(metrics["log_partition"] - 256 * math.log(2.0)) < 2.0


def test_the_first_epoch_refreshes_the_logged_log_z_after_each_call_into_the_steps(
    tmp_path, monkeypatch
):
    """From W = 0 the coupling moves fastest in the first epoch: there log Z is refreshed after
    each chunk of steps, from the weights those steps reached (on JAX too, whose steps keep the
    model's state apart from its variables), and in later epochs only at their start and before
    validation."""
    refreshes = []
    refreshed_log_partition = RBMPrior.refreshed_log_partition

    def recorded(prior, seed):
        refreshes.append((seed, np.concatenate([w.ravel() for w in prior.numpy_weights()])))
        return refreshed_log_partition(prior, seed)

    monkeypatch.setattr(RBMPrior, "refreshed_log_partition", recorded)
    # Every second step: 200 images in batches of 50 and two steps per call make two calls an
    # epoch (four on PyTorch, which takes one step per call).
    monkeypatch.setattr(rbm_prior, "FIRST_EPOCH_REFRESH_STEPS", 2)
    config = GUMBOLT.replace(learning_rate=0.05, epochs=2)
    train(config, data_of(train=200), tmp_path / "run", verbose=0)
    seeds = [seed for seed, _ in refreshes]
    # The first epoch's start, after its second and fourth steps, seeded by the step (the last
    # value serves the validation too), then the second epoch's validation.
    assert seeds == [(0, 0), (0, 2 + 1), (0, 2 + 3), (1, 1)]
    weights = [value for _, value in refreshes[:-1]]
    for before, after in zip(weights[:-1], weights[1:], strict=True):
        assert not np.array_equal(before, after)
