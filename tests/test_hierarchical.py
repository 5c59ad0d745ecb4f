"""The hierarchical approximating posterior: a normalised q(z|x) that its exact sampler draws
from, GumBolt's proxy at the bits, the refusals, and its preset."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import set_rbm_weights
from keras import ops
from test_gumbolt import GUMBOLT, assert_reloads_to_the_same_outputs, data_of, numpy
from test_relaxations import gradients

from vae_mnist.discrete import SpikeExponentialPosterior
from vae_mnist.hierarchical import (
    HierarchicalBernoulliPosterior,
    HierarchicalOverlappingExponentialPosterior,
    HierarchicalPowerFunctionPosterior,
    HierarchicalSpikeExponentialPosterior,
    group_mask,
)
from vae_mnist.latent import FactorialBernoulli
from vae_mnist.model import PartLayer, build_vae, load_model
from vae_mnist.rbm_prior import RBMPrior
from vae_mnist.relaxations import bernoulli_log_probability
from vae_mnist.settings import ConfigError
from vae_mnist.training import train


def hierarchical_posterior(units: int = 4, groups: int = 2, seed: int = 0, scale: float = 2.0):
    """A hierarchical posterior whose coupling of the groups is strong and random."""
    posterior = PartLayer(HierarchicalBernoulliPosterior(units=units, groups=groups), seed).part
    rng = np.random.default_rng(seed)
    posterior.group_coupling.assign(rng.normal(0, scale, (units, units)).astype("float32"))
    return posterior


def every_code(units: int) -> np.ndarray:
    return np.array(list(itertools.product((0.0, 1.0), repeat=units)), dtype="float32")


def test_the_mask_lets_a_group_see_only_the_groups_before_it():
    mask = group_mask(6, 3)
    # Rows: the conditioning unit j; columns: the conditioned unit i.
    assert mask[0:2, 0:2].sum() == 0 and mask[0:2, 2:6].all()
    assert mask[2:4, 0:4].sum() == 0 and mask[2:4, 4:6].all()
    assert mask[4:6].sum() == 0


def test_q_is_normalised_and_the_exact_sampler_draws_from_it():
    posterior = hierarchical_posterior(seed=1)
    logits = np.array([[0.3, -1.0, 0.5, 1.2]], "float32")
    parameters = {"logits": ops.convert_to_tensor(logits)}
    codes = every_code(4)
    one = {"logits": ops.convert_to_tensor(np.tile(logits, (16, 1)))}
    probabilities = np.exp(numpy(posterior.log_density(codes, one)))
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    # Not factorial: the second group's marginal depends on the first group's bits.
    marginal = probabilities.reshape(4, 4)
    conditional = marginal / marginal.sum(axis=1, keepdims=True)
    assert np.abs(conditional[0] - conditional[3]).max() > 0.1
    samples = 40_000
    bits, log_q = posterior.sample_exact(parameters, samples, 5)
    bits, log_q = numpy(bits)[0], numpy(log_q)[0]
    indices = bits.astype(int) @ (2 ** np.arange(3, -1, -1))
    frequencies = np.bincount(indices, minlength=16) / samples
    assert 0.5 * np.abs(frequencies - probabilities).sum() < 0.02
    np.testing.assert_allclose(log_q, np.log(probabilities[indices]), rtol=1e-4, atol=1e-4)


def test_the_relaxed_sample_tends_to_the_exact_sampler_as_the_temperature_falls():
    posterior = PartLayer(
        HierarchicalBernoulliPosterior(units=4, groups=2, temperature=0.01, temperature_min=0.01),
        2,
    ).part
    posterior.group_coupling.assign(np.full((4, 4), 3.0, "float32"))
    logits = np.tile(np.array([[0.0, 0.0, -2.0, -2.0]], "float32"), (20_000, 1))
    zeta = numpy(posterior.sample({"logits": ops.convert_to_tensor(logits)}, training=True))
    assert np.mean(np.minimum(zeta, 1 - zeta) < 0.01) > 0.95
    bits = np.round(zeta)
    # The second group's units are on with sigmoid(-2 + 3 · (bits on in the first group)).
    for on in range(3):
        rows = bits[:, :2].sum(1) == on
        expected = 1.0 / (1.0 + math.exp(-(-2.0 + 3.0 * on)))
        assert bits[rows, 2:].mean() == pytest.approx(expected, abs=0.03)


def test_gumbolt_with_a_hierarchical_posterior_gives_the_discrete_term_at_bits():
    posterior = hierarchical_posterior(units=5 * 2, groups=2, seed=3)
    prior = PartLayer(RBMPrior(halves=(5, 5), chains=4, relaxation="gumbolt"), 3, posterior).part
    rng = np.random.default_rng(4)
    parameters = {"logits": ops.convert_to_tensor(rng.normal(0, 1, (3, 10)).astype("float32"))}
    bits = (rng.random((3, 10)) < 0.5).astype("float32")
    expected = numpy(posterior.log_density(bits, parameters)) - numpy(prior.log_density(bits))
    for sample_estimate in (True, False):
        term = prior.relaxed_divergence(bits, parameters, sample_estimate=sample_estimate)
        np.testing.assert_allclose(numpy(term), expected, rtol=1e-5, atol=1e-4)


def test_the_kl_from_a_small_rbm_matches_brute_force_over_every_code():
    """KL(q(z|x) || p(z)) as the model estimates it outside training (exact samples of the
    hierarchical q, log q - log p at each) against the sum over all 16 codes, with q and p
    written out here in numpy: q by the groups' sigmoids, p by the RBM's energy and its Z."""
    posterior = hierarchical_posterior(units=4, groups=2, seed=6)
    prior = PartLayer(RBMPrior(halves=(2, 2), chains=4, relaxation="gumbolt"), 6, posterior).part
    rng = np.random.default_rng(7)
    bias1, bias2, coupling = (
        rng.normal(0, 1.5, shape).astype("float32") for shape in (2, 2, (2, 2))
    )
    set_rbm_weights(prior, bias1, bias2, coupling)
    logits = np.array([[0.4, -0.8, 1.1, -0.3]], "float32")
    codes = every_code(4)
    # q by hand: the second group's logits gain V's rows of the first group's units that are on.
    group_coupling = numpy(posterior.group_coupling) * group_mask(4, 2)
    conditional = 1.0 / (1.0 + np.exp(-(logits + codes @ group_coupling)))
    q = np.prod(np.where(codes == 1.0, conditional, 1.0 - conditional), axis=1)
    negative_energy = codes[:, :2] @ bias1 + codes[:, 2:] @ bias2
    negative_energy += np.sum((codes[:, :2] @ coupling) * codes[:, 2:], axis=1)
    log_p = negative_energy - np.log(np.sum(np.exp(negative_energy)))
    brute_force = float(np.sum(q * (np.log(q) - log_p)))
    assert brute_force > 0.1
    samples = 40_000
    parameters = {"logits": ops.convert_to_tensor(logits)}
    bits, log_q = posterior.sample_exact(parameters, samples, 8)
    log_ratio = numpy(log_q)[0] - numpy(prior.log_density(bits))[0]
    standard_error = log_ratio.std() / math.sqrt(samples)
    assert abs(log_ratio.mean() - brute_force) < 4 * standard_error + 1e-3


def test_the_hierarchical_posterior_refuses_what_it_cannot_do():
    with pytest.raises(ConfigError, match="10 units do not split into 3 equal groups"):
        HierarchicalBernoulliPosterior(units=10, groups=3)
    with pytest.raises(ConfigError, match="closed_form needs a factorial posterior"):
        GUMBOLT.replace(posterior="hierarchical_bernoulli", groups=7, relaxation="closed_form")
    # Rolfe's spike gives the smoothed sample no density, so no importance weight.
    with pytest.raises(ConfigError, match="iwae objective weighs samples"):
        GUMBOLT.replace(
            posterior="hierarchical_spike_exponential", groups=1, prior="uniform"
        ).replace(objective="iwae")


def test_the_hierarchical_preset_builds_saves_reloads_trains_and_evaluates(tmp_path):
    from vae_mnist.data import model_inputs
    from vae_mnist.evaluation import evaluate_run
    from vae_mnist.presets import load_preset, preset_config

    config = preset_config(
        "gumbolt2018-hierarchical",
        epochs=1,
        batch_size=50,
        steps_per_execution=1,
        jit_compile=False,
        ais_runs=20,
        ais_steps=200,
    )
    a, b = load_preset("gumbolt2018").config.to_dict(), load_preset(config.preset).config.to_dict()
    assert {name for name in {*a, *b} if a[name] != b[name]} == {"posterior", "preset"}
    vae = build_vae(config)
    vae.posterior_part.group_coupling.assign(
        np.random.default_rng(0).normal(0, 1, (64, 64)).astype("float32")
    )
    assert_reloads_to_the_same_outputs(vae, tmp_path / "vae.keras")
    data = data_of(train=100, test=20)
    result = train(config, data, tmp_path / "run", verbose=0)
    assert math.isfinite(result["history"][-1]["loss"])
    trained = load_model(tmp_path / "run" / "vae.keras")
    # Training moved the coupling of the groups away from its zero start.
    assert np.abs(numpy(trained.posterior_part.group_coupling)).max() > 0.0
    inputs = model_inputs(data, config.data.binarize, config.training.seed)
    metrics = evaluate_run(
        trained, inputs[0], data[0][1], inputs[1], data[1][1], samples=4, neighbours=3
    )
    assert math.isfinite(metrics["iwae_negative_log_likelihood"])
    assert metrics["log_partition_method"] == "ais"


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--relaxation", "closed_form"), "closed_form needs a factorial posterior"),
        (("--groups", "5"), "64 units do not split into 5 equal groups"),
        (("--groups", "0"), "--groups"),
    ],
)
def test_train_refuses_a_bad_hierarchy_in_one_line(tmp_path, flags, message):
    from test_dvae import run_command

    folder = tmp_path / "run"
    result = run_command(
        "train", "--preset", "gumbolt2018-hierarchical", "--out", str(folder), *flags
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not folder.exists()


# -- DVAE++'s smoothing in groups: hierarchical_overlapping_exponential --------------------------


def overlapping_in_groups(units: int = 4, groups: int = 2, seed: int = 0, kind=None):
    kind = kind or HierarchicalOverlappingExponentialPosterior
    posterior = PartLayer(kind(units=units, groups=groups, sharpness=5.0), seed).part
    rng = np.random.default_rng(seed)
    posterior.group_coupling.assign(rng.normal(0, 2.0, (units, units)).astype("float32"))
    return posterior


def small_rbm(posterior, seed: int):
    prior = PartLayer(RBMPrior(halves=(2, 2), chains=4), seed, posterior).part
    rng = np.random.default_rng(seed)
    set_rbm_weights(prior, *(rng.normal(0, 1.5, shape) for shape in (2, 2, (2, 2))))
    return prior


def test_in_one_group_the_kl_is_the_factorial_closed_form():
    posterior = overlapping_in_groups(units=4, groups=1, seed=2)
    prior = small_rbm(posterior, 2)
    logits = ops.convert_to_tensor(np.array([[0.4, -0.8, 1.1, -0.3]] * 3, "float32"))
    zeta = posterior.sample({"logits": logits}, training=True)
    given = prior.kl_divergence(posterior.distribution_given({"logits": logits}, zeta))
    closed_form = prior.kl_divergence(FactorialBernoulli(logits))
    np.testing.assert_allclose(numpy(given), numpy(closed_form), rtol=1e-6)


def test_the_expected_bits_are_the_bits_posterior_given_the_smoothing():
    """E[z | ζ] = q r(ζ|1) / (q r(ζ|1) + (1 - q) r(ζ|0)), with r the overlapping exponentials."""
    posterior = overlapping_in_groups()
    logits = np.array([-1.5, 0.0, 0.7, 2.0], "float32")
    zeta = np.array([0.1, 0.5, 0.3, 0.95], "float32")
    beta, q = 5.0, 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    on, off = np.exp(beta * (zeta - 1.0)), np.exp(-beta * zeta)  # r(ζ|1), r(ζ|0) up to a factor
    expected = q * on / (q * on + (1.0 - q) * off)
    bits, boundary = posterior.expected_bits(logits, zeta)
    assert boundary is None
    np.testing.assert_allclose(numpy(bits), expected, rtol=1e-5)


def test_the_power_functions_expected_bits_are_the_bits_posterior_given_the_smoothing():
    """E[z | ζ] = q r(ζ|1) / (q r(ζ|1) + (1 - q) r(ζ|0)), r(ζ|0) = ζ^(1/β - 1) / β, at every
    ζ, including one that rounds to 1 in float32, where the gradient must stay finite."""
    posterior = overlapping_in_groups(kind=HierarchicalPowerFunctionPosterior)
    logits = np.array([-1.5, 0.0, 0.7, 2.0], "float32")
    zeta = np.array([0.1, 0.5, 0.3, 0.95], "float32")
    power, q = 1.0 / 5.0, 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    on, off = (1.0 - zeta) ** (power - 1.0), zeta ** (power - 1.0)
    expected = q * on / (q * on + (1.0 - q) * off)
    bits, boundary = posterior.expected_bits(logits, zeta)
    assert boundary is None
    np.testing.assert_allclose(numpy(bits), expected, rtol=1e-5)

    def total(values):
        return ops.sum(posterior.expected_bits(ops.convert_to_tensor(logits), values)[0])

    (gradient,) = gradients(total, np.array([0.0, 1e-9, 0.5, 1.0], "float32"))
    assert np.all(np.isfinite(gradient))


@pytest.mark.parametrize(
    "kind",
    [
        HierarchicalOverlappingExponentialPosterior,
        HierarchicalSpikeExponentialPosterior,
        HierarchicalPowerFunctionPosterior,
    ],
)
def test_the_training_kl_and_the_exact_samples_estimate_the_same_kl(kind):
    """Two unbiased estimates of KL(q(z, ζ|x) ‖ p(z) r(ζ|z)): the training step's (entropy and
    expected energy given each sample ζ) and evaluation's (log q(z|x, ζ) - log p(z) at exact
    samples). They agree within their standard errors, and both exceed zero."""
    posterior = overlapping_in_groups(seed=6, kind=kind)
    prior = small_rbm(posterior, 6)
    samples = 40_000
    logits = np.array([[0.4, -0.8, 1.1, -0.3]], "float32")
    batch = {"logits": ops.convert_to_tensor(np.repeat(logits, samples, axis=0))}
    zeta = posterior.sample(batch, training=True)
    training = numpy(prior.kl_divergence(posterior.distribution_given(batch, zeta)))
    bits, log_q = posterior.sample_exact({"logits": ops.convert_to_tensor(logits)}, samples, 8)
    exact = numpy(log_q)[0] - numpy(prior.log_density(bits))[0]
    error = math.hypot(training.std(), exact.std()) / math.sqrt(samples)
    assert exact.mean() > 0.05
    assert abs(training.mean() - exact.mean()) < 4 * error
    # The training estimate, analytic within each sample, has the smaller variance.
    assert training.std() < exact.std()


def test_exact_samples_follow_each_groups_conditional_on_the_smoothing():
    posterior = overlapping_in_groups(seed=3)
    logits = np.array([[0.3, -1.0, 0.5, 1.2]], "float32")
    bits, log_q = posterior.sample_exact({"logits": ops.convert_to_tensor(logits)}, 30_000, 4)
    bits, log_q = numpy(bits)[0], numpy(log_q)[0]
    # The first group sees nothing before it: its units are on with sigmoid(a).
    first = 1.0 / (1.0 + np.exp(-logits[0, :2]))
    np.testing.assert_allclose(bits[:, :2].mean(axis=0), first, atol=0.015)
    assert set(np.unique(bits)) <= {0.0, 1.0}
    assert np.all(log_q <= 0.0) and np.all(np.isfinite(log_q))


def test_the_rbm_takes_the_closed_form_kl_of_smoothed_groups_and_refuses_gumbolt():
    config = GUMBOLT.replace(
        posterior="hierarchical_overlapping_exponential", groups=7, relaxation="closed_form"
    )
    assert config.posterior.kind == "hierarchical_overlapping_exponential"
    with pytest.raises(ConfigError, match="does not give"):
        config.replace(relaxation="gumbolt")
    with pytest.raises(ConfigError, match="iwae objective weighs samples"):
        config.replace(objective="iwae")


def spike_and_exponential_kl(a1, a2, shift, bias1, bias2, coupling, beta, points=20_001):
    """KL(q(z, ζ|x) ‖ p(z) r(ζ|z)) of one unit in each of two groups and halves, by quadrature:
    z1 ~ Bernoulli(σ(a1)), ζ1 = 0 or ~ β e^(βζ)/(e^β - 1), z2 ~ Bernoulli(σ(a2 + shift·ζ1)),
    p(z) ∝ exp(b1 z1 + b2 z2 + w z1 z2). Given ζ1 the z2 terms are -H(q2) - q2 (b2 + w z1)."""

    def sigmoid(value):
        return 1.0 / (1.0 + np.exp(-value))

    def entropy(q):
        return -(q * np.log(q) + (1.0 - q) * np.log(1.0 - q))

    states = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    log_z = np.log(np.sum(np.exp(states @ [bias1, bias2] + coupling * states[:, 0] * states[:, 1])))
    zeta = np.linspace(0.0, 1.0, points)
    density = beta * np.exp(beta * zeta) / np.expm1(beta)
    q1, kl = sigmoid(a1), 0.0
    for z1, probability in ((0.0, 1.0 - q1), (1.0, q1)):
        if z1 == 0.0:
            q2 = sigmoid(a2)
            inner = -entropy(q2) - q2 * bias2
        else:
            q2 = sigmoid(a2 + shift * zeta)
            inner = np.trapezoid((-entropy(q2) - q2 * (bias2 + coupling)) * density, zeta)
        kl += probability * (np.log(probability) - bias1 * z1 + log_z + inner)
    return kl


@pytest.mark.parametrize("coupling", [3.0, -2.0])
def test_rolfes_gradient_of_the_kl_matches_the_exact_one(coupling):
    """The spike-and-exponential bits are steps in the noise: without the boundary term the
    pathwise gradient misses the step's move. With it (Rolfe's Eq. 12), the mean gradient of the
    training KL with respect to the encoder's logits is the exact KL's, by quadrature."""
    posterior = overlapping_in_groups(units=2, groups=2, kind=HierarchicalSpikeExponentialPosterior)
    shift = 1.5
    posterior.group_coupling.assign(np.array([[0.0, shift], [0.0, 0.0]], "float32"))
    prior = PartLayer(RBMPrior(halves=(1, 1), chains=4), 0, posterior).part
    bias1, bias2 = 0.3, -0.4
    set_rbm_weights(prior, [bias1], [bias2], [[coupling]])
    logits = np.array([0.2, -0.5], "float32")
    samples = 200_000
    uniform = np.random.default_rng(9).random((samples, 2)).astype("float32")

    def mean_kl(shared_logits):
        # (units,) -> (samples, units): every row the same logits, the noise fixed above.
        parameters = {"logits": ops.tile(ops.expand_dims(shared_logits, 0), (samples, 1))}

        def draw(group_logits, columns):
            noise = ops.convert_to_tensor(uniform[:, columns])
            return posterior.smooth(ops.sigmoid(group_logits), noise)

        zeta = posterior._draw_in_order(parameters, (samples, 2), draw)
        return ops.mean(prior.kl_divergence(posterior.distribution_given(parameters, zeta)))

    (gradient,) = gradients(mean_kl, logits)
    step = 1e-4
    exact = []
    for unit in range(2):
        moved = [logits.astype(np.float64) + sign * step * np.eye(2)[unit] for sign in (1, -1)]
        values = [spike_and_exponential_kl(*a, shift, bias1, bias2, coupling, 5.0) for a in moved]
        exact.append((values[0] - values[1]) / (2 * step))
    np.testing.assert_allclose(gradient, exact, atol=0.01)


@pytest.mark.parametrize(
    "kind",
    [
        HierarchicalOverlappingExponentialPosterior,
        HierarchicalSpikeExponentialPosterior,
        HierarchicalPowerFunctionPosterior,
    ],
)
def test_evaluation_decodes_the_smoothing_its_groups_were_conditioned_on(kind):
    """(z, ζ) from one draw of q(z, ζ | x): log q is the bits' given that ζ, and the decoder is
    given that same ζ (for the spike, ζ > 0 exactly where a bit is set)."""
    posterior = overlapping_in_groups(units=6, groups=3, seed=4, kind=kind)
    parameters = {
        "logits": ops.convert_to_tensor(np.array([[0.5, -1.0, 0.2, 1.5, -0.3, 0.0]] * 2, "float32"))
    }
    bits, log_q, zeta = (numpy(value) for value in posterior.exact_sample(parameters, 500, 3))
    assert bits.shape == zeta.shape == (2, 500, 6)
    conditional = posterior.conditional_logits(parameters, ops.convert_to_tensor(zeta))
    np.testing.assert_allclose(
        log_q, numpy(bernoulli_log_probability(bits, conditional)), rtol=1e-5, atol=1e-5
    )
    if kind is HierarchicalSpikeExponentialPosterior:
        np.testing.assert_array_equal(zeta > 0, bits == 1)
    same_bits, _ = posterior.sample_exact(parameters, 500, 3)
    np.testing.assert_array_equal(numpy(same_bits), bits)


# -- the conditioning network of the earlier groups (conditional_units) ----------------------


@pytest.mark.parametrize(
    "kind", [HierarchicalBernoulliPosterior, HierarchicalSpikeExponentialPosterior]
)
def test_the_conditioning_network_lets_each_group_see_only_the_groups_before_it(kind):
    units, groups = 6, 3
    posterior = PartLayer(kind(units=units, groups=groups, conditional_units=8), 0).part
    rng = np.random.default_rng(0)
    # The output layer starts at zero (the linear posterior); give it weights to test.
    posterior.conditional_output.assign(rng.normal(0, 1, (8, units)).astype("float32"))
    parameters = {"logits": ops.convert_to_tensor(np.zeros((1, units), "float32"))}
    code = rng.random((1, units)).astype("float32")
    before = numpy(posterior.conditional_logits(parameters, code))
    for group in range(groups):
        columns = slice(2 * group, 2 * group + 2)
        later = code.copy()
        later[:, 2 * group :] = rng.random((1, units - 2 * group))
        after = numpy(posterior.conditional_logits(parameters, later))
        # A group's logits ignore its own and the later groups' units ...
        np.testing.assert_allclose(after[:, columns], before[:, columns], atol=1e-6)
        if group < groups - 1:
            # ... and follow the units of the groups before the next one.
            later_columns = slice(2 * group + 2, units)
            assert np.abs(after[:, later_columns] - before[:, later_columns]).max() > 1e-3


def test_the_conditioning_network_starts_at_zero_and_reloads(tmp_path):
    config = GUMBOLT.replace(
        posterior="hierarchical_bernoulli", units=8, halves=(4, 4), groups=4, conditional_units=16
    )
    vae = build_vae(config)
    parameters = {"logits": ops.convert_to_tensor(np.zeros((2, 8), "float32"))}
    code = np.random.default_rng(0).random((2, 8)).astype("float32")
    # At the start the network adds nothing: the posterior is the linear one.
    np.testing.assert_allclose(numpy(vae.posterior_part.conditional_logits(parameters, code)), 0)
    vae.posterior_part.conditional_output.assign(
        np.random.default_rng(1).normal(0, 1, (16, 8)).astype("float32")
    )
    assert_reloads_to_the_same_outputs(vae, tmp_path / "vae.keras")
    data = data_of(train=100, test=20)
    result = train(config.replace(epochs=1), data, tmp_path / "run", verbose=0)
    assert math.isfinite(result["history"][-1]["loss"])
    trained = load_model(tmp_path / "run" / "vae.keras")
    # Training moved the network's output layer away from its zero start.
    assert np.abs(numpy(trained.posterior_part.conditional_output)).max() > 0.0


def test_conditional_units_are_refused_where_they_do_not_apply(tmp_path):
    from conftest import run_command

    result = run_command("train", "--conditional-units", "8", "--out", str(tmp_path / "run"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--conditional-units" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def posterior_reading_x(rng: np.random.Generator, scale: float = 1.0):
    """A posterior of 6 units in 3 groups whose network of 8 hidden units reads x, its output
    layer given weights of sd `scale` from `rng` (it starts at zero, the linear posterior)."""
    posterior = PartLayer(
        HierarchicalBernoulliPosterior(
            units=6, groups=3, conditional_units=8, conditional_reads_input=True
        ),
        0,
    ).part
    posterior.conditional_output.assign(rng.normal(0, scale, (8, 6)).astype("float32"))
    return posterior


def test_the_conditioning_network_that_reads_x_joins_x_and_the_earlier_groups():
    units = 6
    rng = np.random.default_rng(3)
    posterior = posterior_reading_x(rng)
    code = rng.random((1, units)).astype("float32")
    logits = rng.normal(0, 1, (1, units)).astype("float32")

    def network(input_logits: np.ndarray) -> np.ndarray:
        """The logits less a(x) itself: the network's part (the linear coupling is zero)."""
        parameters = {"logits": ops.convert_to_tensor(input_logits)}
        return numpy(posterior.conditional_logits(parameters, code)) - input_logits

    moved = logits.copy()
    moved[:, 5] += 3.0
    # A later group's condition moves with x where the additive network's would not ...
    assert np.abs(network(moved) - network(logits))[:, 2:].max() > 1e-3
    # ... and the first group, which no network feeds, still has a(x) alone.
    np.testing.assert_array_equal(network(moved)[:, :2], 0.0)
    # Its masks still hide a group's own and later groups' units from it.
    later = code.copy()
    later[:, 2:] = rng.random((1, units - 2))
    parameters = {"logits": ops.convert_to_tensor(logits)}
    before = numpy(posterior.conditional_logits(parameters, code))
    after = numpy(posterior.conditional_logits(parameters, later))
    np.testing.assert_allclose(after[:, 2:4], before[:, 2:4], atol=1e-6)
    # Over samples of the code, (batch, N) logits broadcast as (batch, 1, N).
    samples = np.stack([code, later], axis=1)
    np.testing.assert_allclose(
        numpy(posterior.conditional_logits(parameters, samples))[:, 1], after, atol=1e-6
    )


def test_a_code_drawn_group_by_group_reads_x_as_the_whole_codes_logits_do():
    rng = np.random.default_rng(4)
    posterior = posterior_reading_x(rng, scale=2.0)
    parameters = {"logits": ops.convert_to_tensor(rng.normal(0, 1, (50, 6)).astype("float32"))}
    # The mode is drawn group by group with x's term formed once; each of its groups must be
    # the sign of the logits that the whole code gives, which form that term themselves.
    mode = numpy(posterior.mode(parameters))
    whole = numpy(posterior.conditional_logits(parameters, mode))
    np.testing.assert_array_equal(mode, (whole > 0).astype("float32"))
    # The network's share is not idle: the later groups' mode is not a(x)'s signs alone.
    assert np.any(mode[:, 2:] != (numpy(parameters["logits"])[:, 2:] > 0))


def test_a_run_whose_network_reads_x_trains_and_reloads(tmp_path):
    config = GUMBOLT.replace(
        posterior="hierarchical_bernoulli",
        units=8,
        halves=(4, 4),
        groups=4,
        conditional_units=16,
        conditional_reads_input=True,
    )
    vae = build_vae(config)
    vae.posterior_part.conditional_output.assign(
        np.random.default_rng(1).normal(0, 1, (16, 8)).astype("float32")
    )
    assert_reloads_to_the_same_outputs(vae, tmp_path / "vae.keras")
    result = train(
        config.replace(epochs=1), data_of(train=100, test=20), tmp_path / "run", verbose=0
    )
    assert math.isfinite(result["history"][-1]["loss"])
    trained = load_model(tmp_path / "run" / "vae.keras")
    assert trained.posterior_part.conditional_reads_input
    assert np.abs(numpy(trained.posterior_part.conditional_input)).max() > 0.0


def test_reading_x_without_a_conditioning_network_is_refused(tmp_path):
    from conftest import run_command

    result = run_command(
        "train",
        "--preset",
        "gumbolt2018-hierarchical",
        "--conditional-reads-input",
        "--out",
        str(tmp_path / "run"),
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "conditional_units" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("samples", [None, 3])
def test_the_first_group_is_drawn_from_its_own_logits_as_the_full_product_gives_them(samples):
    units, groups = 6, 3
    posterior = PartLayer(
        HierarchicalBernoulliPosterior(units=units, groups=groups, conditional_units=8), 0
    ).part
    rng = np.random.default_rng(2)
    posterior.group_coupling.assign(rng.normal(0, 2, (units, units)).astype("float32"))
    posterior.conditional_hidden_bias.assign(rng.normal(0, 1, 8).astype("float32"))
    posterior.conditional_output.assign(rng.normal(0, 1, (8, units)).astype("float32"))
    logits = ops.convert_to_tensor(rng.normal(0, 1, (2, units)).astype("float32"))
    shape = (2, units) if samples is None else (2, samples, units)
    # The first group skips the products with the code, which its masks make exact zeros
    # whatever the code: its logits from a random code, bit for bit.
    code = rng.random(shape).astype("float32")
    full = numpy(posterior.conditional_logits({"logits": logits}, code))
    first = numpy(posterior._first_group_logits(logits, shape))
    assert first.shape == (*shape[:-1], units // groups)
    np.testing.assert_array_equal(first, full[..., : units // groups])
    # The later groups do read the code: (2, units) -> (2, 1, units) beside the samples.
    base = numpy(logits)[:, None] if samples else numpy(logits)
    assert np.abs(full - base)[..., units // groups :].min() > 0.0


@pytest.mark.parametrize(
    "posterior",
    [
        HierarchicalBernoulliPosterior(units=4, groups=2),
        HierarchicalSpikeExponentialPosterior(units=4, groups=2),
        SpikeExponentialPosterior(units=4),
    ],
    ids=lambda part: part.kind,
)
def test_an_exact_bit_far_less_likely_than_the_uniforms_grid_is_never_drawn(posterior, monkeypatch):
    # float32 uniforms lie on a grid of 2^-23 that holds 0: a draw of U = 0 must not give a bit
    # of probability σ(-30), about 1e-13, whose importance weight would then overstate p(x).
    from vae_mnist import noise

    monkeypatch.setattr(
        noise, "uniform", lambda shape, dtype="float32", seed=None, **_: ops.zeros(shape, dtype)
    )
    posterior = PartLayer(posterior, 0).part
    logits = ops.convert_to_tensor(np.full((3, 4), -30.0, "float32"))
    bits, log_q = posterior.sample_exact({"logits": logits}, 2, 0)
    assert numpy(bits).sum() == 0
    assert np.all(numpy(log_q) > -1e-6)  # log q of the all-zero code: log(1 - σ(-30)) each.
