"""The family of VAEs: presets, the configuration, binarized data, optimizers, refusals."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import folder_state, make_arrays, run_command

from vae_mnist import optimizers
from vae_mnist.config import ConfigError, RunConfig
from vae_mnist.data import (
    TEST_BINARIZATION_SEED,
    MNISTData,
    binarize,
    model_inputs,
    prepare_images,
)
from vae_mnist.flags import flat_settings
from vae_mnist.likelihoods import GaussianLikelihood
from vae_mnist.model import build_vae, load_model
from vae_mnist.networks import ConvNetwork, MLPNetwork
from vae_mnist.presets import load_preset, preset_config, preset_names
from vae_mnist.settings import make_part
from vae_mnist.training import train

GAUSSIAN_PRESETS = (
    "keras2017",
    "aevb2013",
    "aevb2013-gaussian",
    "svae2018",
    "iwae2015",
    "conv-fashion",
)


class _OddSizedData(MNISTData):
    """Images of 780 pixels, which no square image has: for the conv network's refusal."""

    pixels = 780


def tiny_data(train_count: int = 120, test_count: int = 40):
    arrays = make_arrays(train=train_count, test=test_count)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def test_keras2017_is_the_default_configuration():
    assert preset_config("keras2017") == RunConfig()
    assert RunConfig().preset == "keras2017"


def test_every_preset_documents_its_paper_and_differences():
    assert set(GAUSSIAN_PRESETS) <= set(preset_names())
    for name in preset_names():
        preset = load_preset(name)
        assert preset.description and preset.paper and preset.differs, name
        assert preset.config.preset == name


def test_the_presets_hold_the_papers_settings():
    aevb = preset_config("aevb2013")
    assert aevb.network.hidden_layers == (500,) and aevb.network.activation == "tanh"
    assert aevb.posterior.dimension == 20 and aevb.optimizer.kind == "adagrad"
    assert aevb.training.batch_size == 100 and aevb.optimizer.weight_decay > 0
    assert preset_config("aevb2013-gaussian").likelihood.kind == "gaussian"
    svae = preset_config("svae2018", dimension=10)
    assert svae.network.hidden_layers == (256, 128) and svae.posterior.dimension == 10
    assert svae.data.binarize == "dynamic" and svae.training.batch_size == 64
    iwae = preset_config("iwae2015")
    assert iwae.network.hidden_layers == (200, 200) and iwae.posterior.dimension == 50
    assert iwae.optimizer.optimizer_epsilon == 1e-4 and iwae.training.batch_size == 20
    assert iwae.optimizer.learning_rate_schedule == "iwae"
    conv = preset_config("conv-fashion")
    assert conv.network.kind == "conv" and conv.data.kind == "fashion_mnist"


@pytest.mark.parametrize("name", GAUSSIAN_PRESETS)
def test_every_preset_builds_saves_reloads_and_trains_a_step(tmp_path, name):
    config = preset_config(name, epochs=1, batch_size=40)
    vae = build_vae(config)
    images = prepare_images(tiny_data()[0][0])
    path = tmp_path / "vae.keras"
    vae.save(path)
    reloaded = load_model(path)
    # One call each: every call advances the latent's seed state.
    original, again = vae(images[:8]), reloaded(images[:8])
    for key, value in original.items():
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(again[key]),
            keras.ops.convert_to_numpy(value),
            rtol=1e-5,
            atol=1e-6,
        )
    info = train(config, tiny_data(), tmp_path / "run", verbose=0)
    assert np.isfinite(info["history"][-1]["loss"])
    assert RunConfig.load(tmp_path / "run" / "config.json") == config


def test_static_binarization_is_identical_across_runs_and_the_test_set_fixed():
    data = tiny_data()
    first_train, first_test = model_inputs(data, "static", seed=3)
    second_train, second_test = model_inputs(data, "static", seed=3)
    np.testing.assert_array_equal(first_train, second_train)
    assert set(np.unique(first_train)) == {0.0, 1.0}
    other_train, other_test = model_inputs(data, "static", seed=4)
    assert not np.array_equal(first_train, other_train)
    # Whatever the run's seed or binarization, the test set is binarized the same way.
    np.testing.assert_array_equal(first_test, other_test)
    np.testing.assert_array_equal(model_inputs(data, "dynamic", seed=9)[1], first_test)
    expected = binarize(prepare_images(data[1][0]), TEST_BINARIZATION_SEED)
    np.testing.assert_array_equal(first_test, expected)
    # Dynamic runs train on grayscale images, which the model binarizes at every step.
    dynamic_train, _ = model_inputs(data, "dynamic", seed=9)
    np.testing.assert_array_equal(dynamic_train, prepare_images(data[0][0]))
    assert len(np.unique(model_inputs(data, "none")[1])) > 2


def test_dynamically_binarized_training_repeats_under_a_seed(tmp_path):
    config = preset_config("svae2018", hidden_layers=(16, 8), epochs=1, batch_size=40)
    first = train(config, tiny_data(), tmp_path / "first", verbose=0)
    second = train(config, tiny_data(), tmp_path / "second", verbose=0)
    assert first["history"] == second["history"]
    other = train(config.replace(seed=1), tiny_data(), tmp_path / "other", verbose=0)
    assert other["history"] != first["history"]


def test_gradient_clipping_bounds_the_gradient_the_update_sees():
    def first_step(**settings):
        # With a large epsilon RMSprop's step grows with the gradient, so it shows the clipping.
        optimizer = optimizers.RMSprop(learning_rate=1.0, optimizer_epsilon=1.0, **settings)
        variable = keras.Variable([0.0, 0.0])
        optimizer.build(10).apply([keras.ops.convert_to_tensor([600.0, 800.0])], [variable])
        return keras.ops.convert_to_numpy(variable)

    unclipped, clipped = first_step(), first_step(gradient_clip_norm=0.5)
    # The gradient (600, 800) has norm 1,000; clipped it is (0.3, 0.4), and RMSprop's first
    # step is g / sqrt(0.1 g^2 + epsilon).
    expected = [-g / (0.1 * g * g + 1.0) ** 0.5 for g in (0.3, 0.4)]
    np.testing.assert_allclose(clipped, expected, rtol=1e-4)
    assert np.all(np.abs(unclipped) > 3.0)
    assert optimizers.Adam().build(10).global_clipnorm is None
    with pytest.raises(ConfigError, match="gradient_clip_norm must not be negative"):
        RunConfig().replace(gradient_clip_norm=-1.0)


def test_optimizers_and_the_iwae_schedule():
    part = optimizers.Adam(learning_rate=1e-3, optimizer_epsilon=1e-4)
    adam = part.build(steps_per_epoch=10)
    assert isinstance(adam, keras.optimizers.Adam) and adam.epsilon == 1e-4
    assert adam.weight_decay is None
    decayed = optimizers.Adagrad(weight_decay=0.01).build(10)
    assert isinstance(decayed, keras.optimizers.Adagrad) and decayed.weight_decay == 0.01
    # The configuration's optimizer is the part that builds it.
    chosen = RunConfig().replace(optimizer="adam", optimizer_epsilon=1e-4).optimizer
    assert chosen == part and isinstance(RunConfig().optimizer.build(10), keras.optimizers.RMSprop)
    schedule = optimizers.RMSprop(learning_rate_schedule="iwae").schedule(steps_per_epoch=10)
    rate = lambda step: float(keras.ops.convert_to_numpy(schedule(step)))  # noqa: E731
    # Stage i lasts 3^i epochs: 1, 3, 9, ... at 1e-3 · 10^(-i/7).
    assert rate(0) == pytest.approx(1e-3) and rate(9) == pytest.approx(1e-3)
    assert rate(11) == pytest.approx(1e-3 * 10 ** (-1 / 7))
    assert rate(41) == pytest.approx(1e-3 * 10 ** (-2 / 7))
    assert rate(10**7) == pytest.approx(1e-3 * 10 ** (-1))


def test_the_stages_schedule_holds_each_rate_from_its_epoch():
    part = optimizers.Adam(
        learning_rate=1e-3,
        learning_rate_schedule="stages",
        stage_epochs=(2, 5),
        stage_learning_rates=(3e-4, 1e-4),
    )
    schedule = part.schedule(steps_per_epoch=10)
    rate = lambda step: float(keras.ops.convert_to_numpy(schedule(step)))  # noqa: E731
    # Epochs 1-2 (steps 0-19) at 1e-3, epochs 3-5 at 3e-4, and 1e-4 from epoch 6 on.
    assert rate(0) == pytest.approx(1e-3) and rate(19) == pytest.approx(1e-3)
    assert rate(20) == pytest.approx(3e-4) and rate(49) == pytest.approx(3e-4)
    assert rate(50) == pytest.approx(1e-4) and rate(10**7) == pytest.approx(1e-4)
    assert part.get_config()["stage_learning_rates"] == [3e-4, 1e-4]
    assert not part.resumes_with_new_learning_rate


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"stage_epochs": (5,), "stage_learning_rates": (1e-4,)}, "this run's is constant"),
        ({"learning_rate_schedule": "stages"}, "needs stage_epochs"),
        (
            {"learning_rate_schedule": "stages", "stage_epochs": (5,)},
            r"stage_epochs \(1\) and stage_learning_rates \(0\)",
        ),
        (
            {
                "learning_rate_schedule": "stages",
                "stage_epochs": (5, 5),
                "stage_learning_rates": (1e-4, 1e-5),
            },
            "stage_epochs must increase",
        ),
        ({"stage_learning_rates": (1e-4, 0.0)}, "list of positive numbers"),
        ({"stage_learning_rates": ("fast",)}, "list of positive numbers"),
        ({"stage_epochs": (2.5,)}, "list of positive whole numbers"),
    ],
)
def test_the_stages_schedule_refuses_settings_that_do_not_fit(changes, message):
    with pytest.raises(ConfigError, match=message):
        optimizers.Adam(**changes)


def test_replace_routes_flat_settings_to_their_sections():
    config = RunConfig().replace(dimension=5, batch_size=7, binarize="static", preset="x")
    assert config.posterior.dimension == 5 and config.training.batch_size == 7
    assert config.data.binarize == "static" and config.preset == "x"
    assert flat_settings(config)["hidden_layers"] == [256]
    assert RunConfig.from_dict(config.to_dict()) == config
    # A family's name switches its kind; the new kind's settings then go to it.
    discrete = RunConfig().replace(posterior="categorical", prior="uniform", variables=3)
    assert discrete.posterior.kind == "categorical" and discrete.posterior.variables == 3
    assert discrete.prior.kind == "uniform" and RunConfig.from_dict(discrete.to_dict()) == discrete


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # From Python too, the line names how to bring a kind of one's own.
        (
            lambda: RunConfig().replace(dataset="cifar"),
            r"unknown dataset 'cifar' \(choose from mnist, .*VAE_MNIST_KINDS",
        ),
        (lambda: make_part("data", {"kind": "cifar"}), "unknown data 'cifar'"),
        (lambda: MNISTData(binarize="sometimes"), "unknown binarize 'sometimes'"),
        (lambda: RunConfig().replace(network="resnet"), "unknown network 'resnet'"),
        (lambda: RunConfig().replace(likelihood="poisson"), "unknown likelihood 'poisson'"),
        (lambda: RunConfig().replace(optimizer="sgd"), "unknown optimizer 'sgd'"),
        (lambda: MLPNetwork(hidden_layers=(256, 0)), "positive whole numbers"),
        (lambda: MLPNetwork(hidden_layers=(2.5,)), "positive whole numbers"),
        (
            lambda: RunConfig(MNISTData(binarize="dynamic"), likelihood=GaussianLikelihood()),
            "a gaussian likelihood models grayscale pixels",
        ),
        (
            lambda: RunConfig(data=_OddSizedData(), network=ConvNetwork()),
            "needs square images",
        ),
        (
            lambda: RunConfig.from_dict({"network": {"kind": "mlp", "depth": 3}}),
            "the mlp network has no setting depth",
        ),
        # A configuration of version 2 is converted, and refused the same way.
        (lambda: RunConfig.from_dict({"model": {"depth": 3}}), "unknown model settings: depth"),
        (
            lambda: RunConfig().replace(variables=3),
            "--variables is a setting of the categorical posterior",
        ),
    ],
)
def test_bad_configurations_name_the_value_and_the_choices(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--preset", "vae2099"], "unknown preset 'vae2099' (choose from "),
        (["--network", "resnet"], "--network: unknown network 'resnet' (choose from mlp, conv;"),
        (["--likelihood", "poisson"], "unknown likelihood 'poisson'"),
        (
            ["--optimizer", "sgd"],
            "unknown optimizer 'sgd' (choose from rmsprop, adam, adagrad;",
        ),
        (["--dataset", "cifar"], "--dataset: unknown dataset 'cifar'"),
        # An unknown kind says where a kind of one's own is named, as in a config.json.
        (["--posterior", "laplace"], "kind of your own: name its module in $VAE_MNIST_KINDS)"),
        (["--binarize", "sometimes"], "invalid choice: 'sometimes'"),
        (["--hidden-layers", "256,-1"], "expected positive whole numbers separated by commas"),
        (["--decoder-layers", "linear"], "--decoder-layers: invalid choice: 'linear'"),
        (
            ["--network", "conv", "--decoder-layers", "none"],
            "--decoder-layers is a setting of the mlp network, and this run's network is conv",
        ),
        (["--hidden-layers", "256,abc"], "expected positive whole numbers separated by commas"),
        # A list that may be empty says how to write the empty one; one that may not, does not.
        (["--hidden-layers", ""], "separated by commas, or none, got ''"),
        (["--halves", "none"], "expected 2 positive whole numbers separated by commas, got"),
        (["--likelihood", "gaussian", "--binarize", "static"], "models grayscale pixels"),
        (
            ["--posterior", "categorical"],
            "the standard_normal prior needs a continuous posterior",
        ),
        (["--variables", "3"], "this run's posterior is gaussian"),
        (["--minimum-std", "0"], "--minimum-std: expected a positive number"),
        (["--minimum-std", "abc"], "--minimum-std: expected a positive number"),
        (
            ["--learning-rate-schedule", "stages", "--stage-epochs", "2"],
            "stage_epochs (1) and stage_learning_rates (0) must have one value per later stage",
        ),
        (
            ["--stage-epochs", "2", "--stage-learning-rates", "1e-4"],
            "settings of the stages learning_rate_schedule, and this run's is constant",
        ),
        (["--stage-learning-rates", "1e-4,0"], "expected positive numbers separated by commas"),
    ],
)
def test_bad_choices_on_the_command_line_are_one_line(tmp_path, session_npz, arguments, message):
    out = tmp_path / "run"
    result = run_command("train", "--data", str(session_npz), "--out", str(out), *arguments)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_a_preset_with_overrides_is_recorded_and_resumes(tmp_path, session_npz):
    out = tmp_path / "run"
    common = ["--data", str(session_npz), "--out", str(out), "--quiet"]
    first = run_command(
        "train", "--preset", "svae2018", "--dimension", "3", "--epochs", "1", *common
    )
    assert first.returncode == 0, first.stderr
    saved = json.loads((out / "config.json").read_text())
    assert saved["preset"] == "svae2018" and saved["posterior"]["dimension"] == 3
    assert saved["data"]["binarize"] == "dynamic" and saved["training"]["batch_size"] == 64
    # A finished run continues with more epochs only when asked to replace it; an unfinished one
    # (simulated by marking it so) continues with its own settings, no preset needed.
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished"
    before = folder_state(out)
    refused = run_command("train", "--epochs", "2", *common)
    assert refused.returncode != 0 and "holds a finished run" in refused.stderr
    assert folder_state(out) == before


def test_the_presets_command_shows_the_presets_and_files_it_is_given(tmp_path):
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"description": "my own", "paper": "mine, 2026"}))
    result = run_command("presets", "--verbose", str(mine), "iwae2015")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [str(mine), "my", "own"] and "paper: mine, 2026" in lines[1]
    assert [line.split()[0] for line in lines if line and not line.startswith(" ")] == [
        str(mine),
        "iwae2015",
        "train",
    ]
    missing = run_command("presets", "iwae2015", str(tmp_path / "none.json"))
    assert (missing.returncode, missing.stdout) == (1, "")
    assert (
        missing.stderr
        == f"vae-mnist presets: error: preset file {tmp_path}/none.json: no such file\n"
    )
    # An empty name is no preset: not the current folder read as a preset file.
    empty = run_command("presets", "")
    assert empty.returncode == 2 and "expected a path or a name, got an empty one" in empty.stderr


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs a device file")
def test_a_preset_path_that_is_no_regular_file_is_named_so():
    from vae_mnist.presets import load_preset

    # It is there: "no such file" said otherwise.
    with pytest.raises(ConfigError, match="preset file /dev/null: not a regular file"):
        load_preset("/dev/null")


@pytest.mark.parametrize("description", [5, None, ["a"], {"a": [1]}])
def test_a_preset_whose_words_are_not_text_is_refused(tmp_path, description):
    from vae_mnist.presets import load_preset

    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"description": description, "prior": {"kind": "standard_normal"}}))
    # Printed by `presets` as Python's repr of the value once.
    with pytest.raises(ConfigError, match=r"mine.json: its description is not text \(a JSON \w+\)"):
        load_preset(str(path))


def test_an_edited_copy_of_a_package_preset_keeps_its_path_as_its_name(tmp_path):
    from vae_mnist.presets import PRESET_FOLDER

    copy = tmp_path / "keras2017.json"
    shutil.copyfile(PRESET_FOLDER / "iwae2015.json", copy)
    assert load_preset(str(copy)).config.preset == str(copy)
    mine = tmp_path / "mine.json"
    shutil.copyfile(PRESET_FOLDER / "iwae2015.json", mine)
    assert load_preset(str(mine)).config.preset == "mine"


def test_a_reader_that_goes_away_is_no_error():
    # `vae-mnist presets --verbose | head -1`: the reader closes the pipe after one line.
    command = [sys.executable, "-m", "vae_mnist.cli", "presets", "--verbose"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.readline()
    process.stdout.close()
    assert process.wait(timeout=120) == 141
    assert process.stderr.read() == b""


def test_the_presets_command_lists_every_preset():
    result = run_command("presets")
    assert result.returncode == 0, result.stderr
    for name in preset_names():
        assert any(line.startswith(name + " ") for line in result.stdout.splitlines()), name
    assert sum("(default)" in line for line in result.stdout.splitlines()) == 1
    assert result.stdout.startswith("aevb2013 ") and "\nkeras2017 (default)  " in result.stdout
    verbose = run_command("presets", "--verbose")
    assert "Hyperspherical Variational Auto-Encoders" in verbose.stdout
    # The settings one a line, indented under their section.
    lines = verbose.stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("keras2017"))) + 3
    assert lines[start].strip() == "settings:"
    settings = lines[start + 1 : lines.index("", start)]
    config = load_preset("keras2017").config.to_dict()
    sections = {name: value for name, value in config.items() if isinstance(value, dict)}
    assert len(settings) == len(sections) + sum(len(value) for value in sections.values())
    assert settings[0].strip() == "data:"
    assert "  kind: mnist" in settings[1] and not any("version" in line for line in settings)
    assert any(line.endswith("  hidden_layers: [256]") for line in settings)
    assert max(len(line) for line in settings) < 100


class _InterruptAfterFirstEpoch(keras.callbacks.Callback):
    """Stops the process the way Ctrl-C would, once the first epoch is committed."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def test_a_resumed_non_default_run_continues(tmp_path):
    config = preset_config("iwae2015", hidden_layers=(16, 8), dimension=4, epochs=2, batch_size=40)
    folder = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(config, tiny_data(), folder, verbose=0, callbacks=[_InterruptAfterFirstEpoch()])
    interrupted = json.loads((folder / "run.json").read_text())
    assert interrupted["status"] == "training" and interrupted["completed_epochs"] == 1
    checkpoint = load_model(folder / interrupted["checkpoint"])
    assert isinstance(checkpoint.optimizer, keras.optimizers.Adam)
    steps_after_one_epoch = int(keras.ops.convert_to_numpy(checkpoint.optimizer.iterations))
    assert steps_after_one_epoch == 3

    finished = train(config, tiny_data(), folder, verbose=0)
    assert finished["status"] == "finished"
    assert [row["epoch"] for row in finished["history"]] == [1, 2]
    assert finished["history"][0] == interrupted["history"][0]
    assert RunConfig.load(folder / "config.json") == config
    assert load_model(folder / "vae.keras").binarization is not None


@pytest.mark.parametrize(
    "values, message",
    [
        ({"version": 3, "network": {"kind": ["mlp"]}}, "unknown network ['mlp']"),
        ({"version": 3, "prior": {"kind": {}}}, "unknown prior {}"),
        ({"model": {"architecture": {}}}, "unknown network {}"),
        ({"version": 2, "data": 1, "model": 2, "training": 3}, "must be JSON objects"),
        # Seeds stay within PyTorch's 32-bit signed ones; sizes past 31 bits no backend builds.
        ({"version": 3, "training": {"seed": 1e30}}, "seed must be at most 1073741823"),
        (
            {"version": 3, "posterior": {"kind": "gaussian", "dimension": 1e12}},
            "dimension must be at most 2147483647",
        ),
        ({"version": 3, "network": {"kind": "mlp", "hidden_layers": [1e11]}}, "hidden_layers"),
    ],
)
def test_a_configuration_of_the_wrong_shapes_is_a_config_error(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        RunConfig.from_dict(values)


def test_a_preset_file_nested_too_deep_is_one_line(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    out = tmp_path / "run"
    result = run_command("train", "--preset", str(deep), "--out", str(out))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"preset file {deep}: not readable JSON" in lines[0], lines
    assert not out.exists()


def test_the_largest_seed_trains_and_resumes_on_every_backend(tmp_path):
    """A run adds offsets to its seed (a layer's, the epochs trained, evaluation's next draw);
    at the largest seed they must stay within every backend's generator."""
    from vae_mnist.settings import LARGEST_SEED

    # Dynamic binarization and a second stochastic layer: both offset the seed.
    config = preset_config("iwae2015-2layer", seed=LARGEST_SEED, epochs=1, batch_size=40)
    info = train(config, tiny_data(), tmp_path / "run", verbose=0)
    assert np.isfinite(info["history"][-1]["loss"])
    # A run resumed after its last epoch of Burda et al.'s schedule, and evaluation's draws.
    keras.utils.set_random_seed(LARGEST_SEED + 3280)
    keras.random.uniform((2,), seed=keras.random.SeedGenerator(LARGEST_SEED + 1))
