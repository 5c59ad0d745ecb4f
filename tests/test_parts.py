"""Parts that own their settings: a kind added from outside the package, runs of version 2,
the flags and configurations the kinds make, the objectives, and two stochastic layers."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import REPOSITORY, folder_state, gaussian_log_density, make_arrays, run_command

import vae_mnist
from vae_mnist import RunConfig, register, setting
from vae_mnist import settings as settings_module
from vae_mnist.presets import preset_names

FIXTURES = REPOSITORY / "tests" / "fixtures"
FINISHED_V2 = sorted(
    path for path in FIXTURES.glob("run_v2_*") if (path / "expected_tensorflow.json").is_file()
)
# The fast settings of every run trained here.
FAST = {"hidden_layers": (8,), "batch_size": 40, "steps_per_execution": 1, "jit_compile": False}
LAPLACE_PRIOR = "standard_laplace"


def _write_npz(path: Path, train: int = 120, test: int = 40) -> Path:
    np.savez(path, **make_arrays(train=train, test=test))
    return path


def _data(train: int = 120, test: int = 40):
    arrays = make_arrays(train=train, test=test)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _numpy(value) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(value))


def _history(folder: Path) -> list[dict[str, str]]:
    with open(folder / "history.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def _evaluate(vae, config: RunConfig, data, samples: int = 10, neighbours: int = 3):
    from vae_mnist.data import model_inputs
    from vae_mnist.evaluation import evaluate_run

    train_images, test_images = model_inputs(data, config.data.binarize, config.training.seed)
    (_, train_labels), (_, test_labels) = data
    return evaluate_run(
        vae,
        train_images,
        train_labels,
        test_images,
        test_labels,
        samples=samples,
        neighbours=neighbours,
        seed=0,
    )


# -- adding a kind: a Laplace posterior and prior, from outside the package ---------------------


@pytest.fixture(scope="module")
def laplace_kinds():
    """The Laplace kinds, registered for this module's tests only (other modules list kinds)."""
    from laplace_kinds import define

    kinds = define()
    yield kinds
    for cls in kinds:
        settings_module._REGISTRY[cls.family].pop(cls.kind, None)


def _laplace_config(**changes) -> RunConfig:
    return RunConfig().replace(
        posterior="laplace", prior=LAPLACE_PRIOR, dimension=2, epochs=1, **FAST, **changes
    )


@pytest.fixture(scope="module")
def laplace_run(laplace_kinds, tmp_path_factory) -> tuple[Path, Path]:
    """A finished one-epoch run of the Laplace kinds, and its data file."""
    from vae_mnist.training import train

    folder = tmp_path_factory.mktemp("laplace") / "run"
    npz = _write_npz(folder.parent / "tiny.npz")
    config = _laplace_config()
    info = train(config, config.data.load(str(npz)), folder, verbose=0)
    assert info["status"] == "finished"
    return folder, npz


def test_a_kind_added_outside_the_package_refuses_what_it_cannot_pair_with(laplace_kinds):
    with pytest.raises(vae_mnist.ConfigError, match="needs a continuous posterior"):
        RunConfig().replace(posterior="categorical", prior=LAPLACE_PRIOR)


def test_a_kind_added_outside_the_package_trains_into_a_run(laplace_run):
    folder, _ = laplace_run
    saved = json.loads((folder / "config.json").read_text())
    assert saved["posterior"] == {"kind": "laplace", "dimension": 2}
    assert saved["prior"] == {"kind": LAPLACE_PRIOR}
    rows = _history(folder)
    assert len(rows) == 1
    assert all(math.isfinite(float(rows[0][key])) for key in ("loss", "kl_loss", "val_loss"))
    # The Monte-Carlo KL of the ELBO: a positive number of nats, not the analytic zero path.
    assert float(rows[0]["kl_loss"]) != 0.0


def test_a_kind_added_outside_the_package_evaluates(laplace_run):
    from vae_mnist.runs import load_trained_run

    folder, npz = laplace_run
    run = load_trained_run(folder)
    assert run.vae.posterior_part.kind == "laplace"
    metrics = _evaluate(run.vae, run.config, run.config.data.load(str(npz)), samples=20)
    elbo, iwae = metrics["negative_elbo"], metrics["iwae_negative_log_likelihood"]
    assert math.isfinite(elbo) and math.isfinite(iwae)
    assert metrics["code_size"] == 2
    # The IWAE bound is tighter than the ELBO, up to the Monte-Carlo noise of 40 images.
    assert iwae <= elbo + 1.0
    assert abs(iwae - elbo) < 0.05 * abs(elbo)


def test_a_kind_added_outside_the_package_plots(laplace_run, tmp_path, capsys):
    from vae_mnist import cli

    folder, npz = laplace_run
    out = tmp_path / "figures"
    status = cli.main(
        ["plot", "all", "--run", str(folder), "--data", str(npz), "--out", str(out), "--quiet"]
    )
    assert status == 0, capsys.readouterr().err
    written = {path.name for path in out.iterdir()}
    # Everything but what needs a prior's quantiles (the manifold), the N(0, I) prior (the
    # density) or discrete codes (the class usage).
    assert {
        "latent_scatter.png",
        "decode_7.png",
        "reconstructions.png",
        "samples.png",
        "interpolation.png",
        "training_curves.png",
    } <= written
    assert not {"manifold.png", "latent_density.png", "class_usage.png"} & written
    assert all((out / name).stat().st_size > 0 for name in written)


def test_a_kind_added_outside_the_package_reloads_in_safe_mode(laplace_run, tmp_path):
    from vae_mnist.model import load_model, save_model

    folder, _ = laplace_run
    images = make_arrays(train=1, test=16)["x_test"].reshape(16, -1).astype("float32") / 255.0
    vae = load_model(folder / "vae.keras")
    encoder = load_model(folder / "encoder.keras")
    parameters = vae.encode(images)
    assert set(parameters) == {"z_loc", "z_log_scale"}
    np.testing.assert_array_equal(_numpy(parameters["z_loc"]), _numpy(encoder(images)))
    save_model(vae, tmp_path / "again.keras")
    again = load_model(tmp_path / "again.keras")
    for name, value in again.encode(images).items():
        np.testing.assert_array_equal(_numpy(value), _numpy(parameters[name]))


def readme_module_of_kinds() -> str:
    """The module of "Adding a latent kind" in README.md: its first Python block."""
    text = (REPOSITORY / "README.md").read_text()
    section = text.split("\n## Adding a latent kind\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_a_kind_of_ones_own_trains_and_evaluates_from_the_command_line(tmp_path):
    """README's module of kinds, as written there, in $VAE_MNIST_KINDS."""
    npz = _write_npz(tmp_path / "tiny.npz")
    folder = str(tmp_path / "run")
    module = tmp_path / "laplace.py"
    module.write_text(readme_module_of_kinds())
    kinds = {"VAE_MNIST_KINDS": str(module)}
    trained = run_command(
        *("train", "--posterior", "laplace", "--prior", LAPLACE_PRIOR, "--epochs", "1"),
        *("--hidden-layers", "8", "--batch-size", "40", "--data", str(npz), "--out", folder),
        environment=kinds,
    )
    assert trained.returncode == 0, trained.stderr
    # Training starts TensorFlow (the module reaches Keras through vae_mnist.backend), which
    # must still start quietly.
    assert "absl" not in trained.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["posterior"]["kind"] == (
        "laplace"
    )
    evaluate = ("evaluate", "--run", folder, "--data", str(npz), "--samples", "5", "--quiet")
    evaluated = run_command(*evaluate, environment=kinds)
    assert evaluated.returncode == 0, evaluated.stderr
    assert (tmp_path / "run" / "metrics.json").is_file()
    plot = ("plot", "all", "--run", folder, "--data", str(npz), "--quiet")
    plotted = run_command(*plot, "--out", str(tmp_path / "figures"), environment=kinds)
    assert plotted.returncode == 0, plotted.stderr
    assert (tmp_path / "figures" / "latent_scatter.png").is_file()
    # Without its module the run's kind is unknown: one line, which says where to name it.
    (tmp_path / "run" / "metrics.json").unlink()
    refused = run_command(*evaluate)
    assert refused.returncode == 1
    assert "unknown posterior 'laplace'" in refused.stderr and "$VAE_MNIST_KINDS" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("no_such_module_of_kinds", "ModuleNotFoundError"),
        ("{folder}/missing.py", "FileNotFoundError"),
        ("{folder}/broken.py", "RuntimeError: a bug of its own"),
    ],
)
def test_a_module_of_kinds_that_does_not_import_is_one_line(
    value, message, tmp_path, monkeypatch, capsys
):
    from vae_mnist import cli

    (tmp_path / "broken.py").write_text("raise RuntimeError('a bug of its own')\n")
    value = value.format(folder=tmp_path)
    monkeypatch.setenv("VAE_MNIST_KINDS", f"{value}, ")
    assert cli.main(["presets"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"vae-mnist: error: VAE_MNIST_KINDS: cannot import {value!r} (")
    assert message in error and error.count("\n") == 1
    assert "vae_mnist_kinds_broken" not in __import__("sys").modules


def test_a_file_of_kinds_has_a_module_name_of_its_own(tmp_path):
    import sys

    first, second = tmp_path / "json.py", tmp_path / "elsewhere" / "json.py"
    second.parent.mkdir()
    first.write_text("LOADED = 'first'\n")
    second.write_text("LOADED = 'second'\n")
    before = set(sys.modules)
    try:
        # The same file twice, and once more later, runs once.
        settings_module._load_named_kinds(f"{first},{second},{first}")
        settings_module._load_named_kinds(f"{second}, {first}")
        added = {name: sys.modules[name] for name in set(sys.modules) - before}
        assert sorted(module.LOADED for module in added.values()) == ["first", "second"]
        assert sys.modules["json"].dumps({}) == "{}"
    finally:
        for name in set(sys.modules) - before:
            del sys.modules[name]


def _kind_with_a_setting(name: str) -> type:
    from vae_mnist.gaussian import StandardNormalPrior

    fields = [(name, float, setting(1.0, "a setting of its own", positive=True))]
    cls = dataclasses.make_dataclass(
        "ClashPrior", fields, bases=(StandardNormalPrior,), frozen=True
    )
    cls.kind = "clash"
    return cls


@pytest.mark.parametrize("name", ["beta", "seed", "out", "help", "command", "kind", "prior"])
def test_a_setting_named_as_another_flag_is_refused_when_registered(name):
    with pytest.raises(ValueError) as refused:
        register(_kind_with_a_setting(name))
    assert str(refused.value) == (
        f"the clash prior's setting {name!r} has a name the command line uses already "
        f"(--{name}): give it another name"
    )
    assert "clash" not in settings_module._REGISTRY["prior"]


def _likelihood_kind(kind: str, *fields) -> type:
    """A likelihood of one's own (the Bernoulli's arithmetic) with the given settings."""
    from vae_mnist.likelihoods import BernoulliLikelihood

    cls = dataclasses.make_dataclass(
        "MyLikelihood", list(fields), bases=(BernoulliLikelihood,), frozen=True
    )
    cls.kind = kind
    cls.__module__ = "my_lab.kinds"  # From outside the package, as a user's module is.
    return cls


@pytest.fixture
def registered():
    """Kinds a test registers, taken away afterwards (other tests list every kind)."""
    added: list[type] = []
    yield added
    for cls in added:
        settings_module._REGISTRY[cls.family].pop(cls.kind, None)


def test_a_kind_of_ones_own_may_not_take_a_name_of_the_packages_own():
    from vae_mnist.likelihoods import BernoulliLikelihood

    with pytest.raises(ValueError) as refused:
        register(_likelihood_kind("bernoulli"))
    assert str(refused.value) == (
        "MyLikelihood takes the name of the package's own bernoulli likelihood: give it another "
        "name"
    )
    assert settings_module._REGISTRY["likelihood"]["bernoulli"] is BernoulliLikelihood


@pytest.mark.parametrize(
    "field, message",
    [
        (
            ("kl_weight", str, setting("linear", "a schedule's name", choices=("linear",))),
            "the annealed likelihood's setting 'kl_weight' is not what the elbo objective's "
            "setting of that name is (one of linear against a non-negative number), and one flag "
            "serves both",
        ),
        (
            ("categories", int, setting(10, "classes per variable", positive=True)),
            "(a positive whole number against a whole number of at least 2)",
        ),
        (
            ("activation", str, setting("relu", "an activation", choices=("relu", "gelu"))),
            "(one of relu, gelu against one of relu, tanh)",
        ),
        (
            ("free_nats", float, 3.0),
            "the annealed likelihood's field 'free_nats' is not a setting: declare it with "
            "setting(default, help_text), or make it a ClassVar",
        ),
    ],
)
def test_a_setting_that_means_another_thing_is_refused_when_registered(field, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        register(_likelihood_kind("annealed", field))
    assert "annealed" not in settings_module._REGISTRY["likelihood"]


def test_a_setting_of_no_flags_type_a_misspelt_check_or_an_odd_name_is_refused():
    with pytest.raises(TypeError, match="setting\\(\\) has no check positiv \\(its checks: "):
        vae_mnist.setting(2, "units", positiv=True)
    counts = ("counts", dict, vae_mnist.setting(None, "counts by name"))
    with pytest.raises(ValueError, match="'counts' is of type dict, where a setting is one of"):
        register(_likelihood_kind("counted", counts))
    optional = ("most", int | None, vae_mnist.setting(None, "an optional count"))
    with pytest.raises(ValueError, match=re.escape("'most' is of type int | None, where a")):
        register(_likelihood_kind("bounded", optional))
    for name in ("my kind", "--x"):
        with pytest.raises(ValueError, match=f"kind '{name}' is not one word of letters"):
            register(_likelihood_kind(name))
    refused = {"counted", "bounded", "my kind", "--x"}
    assert not refused & set(settings_module._REGISTRY["likelihood"])


def test_what_is_not_a_kind_is_refused_when_registered():
    from vae_mnist.likelihoods import BernoulliLikelihood

    class Undecorated(BernoulliLikelihood):
        kind = "undecorated"

    nameless = dataclasses.make_dataclass("Nameless", [], bases=(vae_mnist.Likelihood,))
    unnamed_data = dataclasses.make_dataclass("Cifar", [], bases=(vae_mnist.Data,), frozen=True)
    unnamed_data.kind = "cifar"
    # README's first sketch of a kind: a sample and a density, but nothing for the evaluation
    # (an exact sample) or the figures (a representation, a mode).
    sketch = dataclasses.make_dataclass(
        "Sketch",
        [],
        bases=(vae_mnist.Posterior,),
        namespace={"head_sizes": lambda self: {}, "code_size": 2, "sample": lambda self: None},
        frozen=True,
    )
    sketch.kind = "sketch"
    unnamed_likelihood = dataclasses.make_dataclass(
        "Poisson", [], bases=(vae_mnist.Likelihood,), frozen=True
    )
    unnamed_likelihood.kind = "poisson"
    refusals = {
        unnamed_data: "Cifar lacks display_name, environment_variable, keras_dataset, "
        "class_names, which every data kind names: give it each as a ClassVar",
        sketch: "Sketch lacks sample_exact, representation, mode, which every posterior kind "
        "defines (vae_mnist.Posterior's documentation says what each does)",
        unnamed_likelihood: "Poisson lacks heads, which every likelihood kind names",
        Undecorated: "Undecorated is not a dataclass: put @dataclasses.dataclass(frozen=True) "
        "under @register",
        nameless: "Nameless has no name: give it kind: ClassVar[str] = 'a_name'",
        dict: "dict is not a kind: register a subclass of a family's base class",
    }
    for cls, message in refusals.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            register(cls)
    assert "undecorated" not in settings_module._REGISTRY["likelihood"]
    assert "sketch" not in settings_module._REGISTRY["posterior"]


def test_a_setting_shared_by_two_families_is_one_flag_a_run_with_both_cannot_use(registered):
    from vae_mnist.flags import setting_flags

    help_text = "a tempering of the likelihood of its own"
    temperature = ("temperature", float, setting(2.0, help_text, positive=True))
    registered.append(register(_likelihood_kind("tempered", temperature)))
    config = RunConfig().replace(likelihood="tempered", temperature=0.5)
    assert config.likelihood.temperature == 0.5
    gumbel = config.replace(posterior="categorical", prior="uniform")
    with pytest.raises(vae_mnist.ConfigError) as refused:
        gumbel.replace(temperature=0.25)
    assert str(refused.value) == (
        "--temperature is a setting of this run's categorical posterior and tempered "
        "likelihood, which a flag cannot tell apart: set it in their sections of a preset file"
    )
    # The flag's help gives each meaning with its kinds and default.
    shown = setting_flags()["temperature"].help_text()
    assert shown.endswith(f" | {help_text} [the tempered likelihood; default: 2.0]")
    assert shown.startswith("the relaxation's starting temperature [the categorical posterior")
    assert shown.count("default:") == 2


def test_a_module_of_kinds_that_fails_names_its_line(tmp_path, monkeypatch, capsys):
    from vae_mnist import cli

    module = tmp_path / "broken.py"
    module.write_text("import math\n\nLIMIT = math.sqrt(-1)\n")
    monkeypatch.setenv("VAE_MNIST_KINDS", str(module))
    assert cli.main(["presets"]) == 1
    assert capsys.readouterr().err == (
        f"vae-mnist: error: VAE_MNIST_KINDS: cannot import {str(module)!r} (ValueError: math "
        f"domain error at {module}:3)\n"
    )


def test_the_reserved_setting_names_cover_every_other_flag_of_train():
    from vae_mnist.cli import build_parser
    from vae_mnist.flags import setting_flags

    parser = build_parser()
    kind_settings = {
        name for name, flag in setting_flags().items() if flag.owners[0][0] != "training"
    }
    others = {action.dest for action in parser.commands["train"]._actions} - kind_settings
    others |= {action.dest for action in parser._actions}
    assert others <= settings_module.RESERVED_SETTING_NAMES
    assert not kind_settings & settings_module.RESERVED_SETTING_NAMES


def test_a_module_with_a_setting_named_as_another_flag_is_one_line(tmp_path, monkeypatch, capsys):
    from vae_mnist import cli

    module = tmp_path / "clash.py"
    module.write_text(
        "import dataclasses\n"
        "from typing import ClassVar\n"
        "from vae_mnist import register, setting\n"
        "from vae_mnist.gaussian import StandardNormalPrior\n\n"
        "@register\n"
        "@dataclasses.dataclass(frozen=True)\n"
        "class ClashPrior(StandardNormalPrior):\n"
        "    kind: ClassVar[str] = 'clash'\n"
        "    out: float = setting(1.0, 'a setting of its own')\n"
    )
    monkeypatch.setenv("VAE_MNIST_KINDS", str(module))
    assert cli.main(["presets"]) == 1
    assert capsys.readouterr().err == (
        f"vae-mnist: error: VAE_MNIST_KINDS: cannot import {str(module)!r} (ValueError: the "
        "clash prior's setting 'out' has a name the command line uses already (--out): give it "
        f"another name at {module}:6)\n"
    )
    assert "clash" not in settings_module._REGISTRY["prior"]


def test_an_installed_module_of_kinds_that_does_not_import_is_a_warning(monkeypatch, capsys):
    import importlib.metadata

    entry_point = importlib.metadata.EntryPoint(
        name="lab-kinds", value="no_such_module_of_kinds:register", group="vae_mnist.kinds"
    )
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [entry_point])
    # A broken package must not stop every command: its kinds are left out, with one line.
    settings_module._load_installed_kinds.__wrapped__()
    warning = capsys.readouterr().err
    assert warning.startswith(
        "vae-mnist: warning: the vae_mnist.kinds entry point 'lab-kinds' of an installed "
        "package: cannot import 'no_such_module_of_kinds' (ModuleNotFoundError"
    )
    assert warning.endswith("; its kinds are left out\n") and warning.count("\n") == 1


# -- runs of version 2 ----------------------------------------------------------------------------


def test_there_are_version_2_fixtures():
    assert {path.name for path in FINISHED_V2} >= {"run_v2_gaussian", "run_v2_rbm"}


@pytest.mark.parametrize("fixture", FINISHED_V2, ids=lambda path: path.name)
def test_a_version_2_run_loads_and_evaluates_as_it_did(fixture):
    from vae_mnist.runs import load_trained_run

    # Version 2 evaluated each fixture on every backend: the noise differs between backends.
    backend = keras.backend.backend()
    expected = json.loads((fixture / f"expected_{backend}.json").read_text())
    run = load_trained_run(fixture)
    assert run.config.to_dict()["version"] == 3
    metrics = _evaluate(run.vae, run.config, _data())
    assert metrics["negative_elbo"] == pytest.approx(expected["negative_elbo"], abs=1e-3)
    assert metrics["iwae_negative_log_likelihood"] == pytest.approx(
        expected["iwae_negative_log_likelihood"], abs=1e-3
    )


@pytest.mark.parametrize("fixture", FINISHED_V2, ids=lambda path: path.name)
def test_a_version_2_run_plots_from_a_copy(fixture, tmp_path, capsys):
    from vae_mnist import cli

    before = folder_state(fixture)
    copy = tmp_path / fixture.name
    shutil.copytree(fixture, copy)
    npz = _write_npz(tmp_path / "tiny.npz")
    status = cli.main(["plot", "all", "--run", str(copy), "--data", str(npz), "--quiet"])
    assert status == 0, capsys.readouterr().err
    figures = {path.name for path in (copy / "figures").iterdir()}
    assert {"latent_scatter.png", "reconstructions.png", "samples.png"} <= figures
    assert folder_state(fixture) == before


def test_an_unfinished_version_2_run_continues(tmp_path):
    copy = tmp_path / "unfinished"
    shutil.copytree(FIXTURES / "run_v2_unfinished", copy)
    npz = _write_npz(tmp_path / "tiny.npz")
    result = run_command(
        "train", "--out", str(copy), "--epochs", "3", "--data", str(npz), "--quiet"
    )
    assert result.returncode == 0, result.stderr
    assert f"continuing the unfinished run in {copy} after epoch 1" in result.stderr
    assert f"trained 3 epochs into {copy}" in result.stdout
    assert [int(row["epoch"]) for row in _history(copy)] == [1, 2, 3]
    info = json.loads((copy / "run.json").read_text())
    assert info["status"] == "finished" and info["completed_epochs"] == 3
    assert json.loads((copy / "config.json").read_text())["version"] == 3


def test_a_version_2_rbm_loads_with_the_log_z_of_its_weights():
    from vae_mnist.rbm import exact_log_partition
    from vae_mnist.runs import load_trained_run

    prior = load_trained_run(FIXTURES / "run_v2_rbm").vae.prior_part
    exact = exact_log_partition(*prior.numpy_weights())
    assert float(_numpy(prior.log_partition)) == pytest.approx(exact, rel=1e-6)


def test_a_version_2_rbm_configuration_converts():
    config = RunConfig.load(FIXTURES / "run_v2_rbm" / "config.json")
    assert config.posterior.get_config() == {
        "kind": "spike_exponential",
        "units": 5,
        "sharpness": 8.0,
    }
    assert config.prior.kind == "rbm"
    assert config.prior.halves == (3, 2)
    assert config.prior.chains == 4
    assert config.network.hidden_layers == (8,)
    assert config.data.binarize == "dynamic"
    assert config.training.batch_size == 40
    assert RunConfig.from_dict(config.to_dict()) == config


# -- flags and configurations -------------------------------------------------------------------


def test_a_setting_of_another_kind_is_refused_in_one_line(tmp_path, capsys):
    from vae_mnist import cli

    out = tmp_path / "run"
    status = cli.main(["train", "--out", str(out), "--variables", "5", "--epochs", "1"])
    error = capsys.readouterr().err
    assert status in (cli.EXIT_ERROR, cli.EXIT_USAGE)
    assert error.count("\n") == 1 and "error:" in error
    assert "--variables" in error and "categorical posterior" in error and "gaussian" in error
    assert not out.exists()


def test_the_constructor_checks_each_sections_type():
    refusals = {
        "posterior must be a posterior kind's part, got 'gaussian'": {"posterior": "gaussian"},
        "data must be a data kind's part, got RMSprop(": {"data": RunConfig().optimizer},
        "training must be a TrainingConfig, got None": {"training": None},
        "upper_layers must be a tuple of UpperLayer, got [1]": {"upper_layers": [1]},
        "preset must be a name, got None": {"preset": None},
    }
    for message, values in refusals.items():
        with pytest.raises(vae_mnist.ConfigError, match=re.escape(message)):
            RunConfig(**values)


def test_numpy_numbers_are_numbers_and_a_kind_is_a_name():
    config = RunConfig().replace(
        epochs=np.int64(3), learning_rate=np.float32(0.5), hidden_layers=(np.int64(8),)
    )
    assert config.training.epochs == 3 and type(config.training.epochs) is int
    assert config.optimizer.learning_rate == 0.5 and config.network.hidden_layers == (8,)
    with pytest.raises(vae_mnist.ConfigError, match="epochs must be a number, got np.True_"):
        RunConfig().replace(epochs=np.bool_(True))
    for kind in (["gaussian"], {"kind": "gaussian"}):
        with pytest.raises(vae_mnist.ConfigError, match=re.escape(f"unknown posterior {kind!r}")):
            RunConfig().replace(posterior=kind)


def test_a_setting_of_another_kind_is_refused_from_python():
    with pytest.raises(vae_mnist.ConfigError, match="--sharpness .* spike_exponential"):
        RunConfig().replace(sharpness=3.0)


def test_beta_is_the_sharpness_of_a_spike_exponential_posterior(tmp_path):
    from vae_mnist.cli import parse_arguments
    from vae_mnist.commands.train import resolve_config

    arguments = parse_arguments(
        [
            "train",
            "--out",
            str(tmp_path / "run"),
            "--posterior",
            "spike_exponential",
            "--units",
            "5",
            "--prior",
            "rbm",
            "--halves",
            "3,2",
            "--beta",
            "5",
        ]
    )
    config, completed = resolve_config(arguments, tmp_path / "run")
    assert completed == 0
    assert config.posterior.kind == "spike_exponential"
    assert config.posterior.sharpness == 5.0
    assert RunConfig().replace(
        posterior="spike_exponential", units=5, prior="rbm", halves=(3, 2), beta=5
    ) == config.replace(preset="keras2017")


def test_the_old_name_beta_is_named_in_its_refusals(tmp_path, capsys):
    from vae_mnist import cli

    out = str(tmp_path / "run")
    # The default Gaussian posterior has no sharpness: the message names the flag typed.
    assert cli.main(["train", "--beta", "3", "--out", out]) == cli.EXIT_ERROR
    error = capsys.readouterr().err
    assert "--beta is a setting of the spike_exponential, overlapping_exponential" in error
    assert "posteriors, and this run's posterior is gaussian" in error
    arguments = ["train", "--posterior", "spike_exponential", "--units", "4", "--out", out]
    assert cli.main([*arguments, "--beta", "3", "--sharpness", "4"]) == cli.EXIT_ERROR
    assert "--sharpness and --beta are one setting: give one" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_every_setting_belongs_to_one_family():
    from vae_mnist.flags import setting_flags

    flags = setting_flags()
    assert {"dimension", "hidden_layers", "sharpness", "halves", "epochs"} <= set(flags)
    for name, flag in flags.items():
        families = {family for family, _ in flag.owners}
        assert len(families) == 1, (name, flag.owners)


def test_a_setting_shared_by_kinds_has_one_help():
    helps: dict[tuple[str, str], set[str]] = {}
    for family, cls, field in settings_module.all_settings():
        if cls.__module__.startswith("vae_mnist."):
            helps.setdefault((family, field.name), set()).add(field.metadata["help"])
    assert ("posterior", "units") in helps  # bernoulli and spike_exponential share it
    different = {key: texts for key, texts in helps.items() if len(texts) > 1}
    assert not different


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_survives_config_json(name, tmp_path):
    from vae_mnist.presets import load_preset

    config = load_preset(name).config
    assert RunConfig.from_dict(config.to_dict()) == config
    config.save(tmp_path / "config.json")
    assert RunConfig.load(tmp_path / "config.json") == config


def test_a_preset_file_given_by_its_path(tmp_path):
    from vae_mnist.cli import parse_arguments
    from vae_mnist.commands.train import resolve_config
    from vae_mnist.presets import PRESET_FOLDER, load_preset

    mine = tmp_path / "mine.json"
    shutil.copyfile(PRESET_FOLDER / "iwae2015.json", mine)
    arguments = parse_arguments(["train", "--preset", str(mine), "--out", str(tmp_path / "r")])
    config, _ = resolve_config(arguments, tmp_path / "r")
    assert config.preset == "mine"
    assert config.optimizer.kind == "adam" and config.posterior.dimension == 50
    assert config.replace(preset="iwae2015") == load_preset("iwae2015").config


def test_files_edited_by_hand_read_with_a_byte_order_mark(tmp_path):
    from vae_mnist.presets import PRESET_FOLDER, load_preset

    # A Windows editor saves UTF-8 with the mark, which JSON's reader refuses as text.
    mark = b"\xef\xbb\xbf"
    mine = tmp_path / "mine.json"
    mine.write_bytes(mark + (PRESET_FOLDER / "iwae2015.json").read_bytes())
    preset = load_preset(str(mine))
    assert preset.config.replace(preset="iwae2015") == load_preset("iwae2015").config
    saved = tmp_path / "config.json"
    preset.config.save(saved)
    saved.write_bytes(mark + saved.read_bytes())
    assert RunConfig.load(saved) == preset.config


@pytest.mark.parametrize("problem", ["missing", "malformed", "not an object"])
def test_a_bad_preset_file_is_one_line_naming_it(problem, tmp_path, capsys):
    from vae_mnist import cli

    path = tmp_path / "preset.json"
    if problem == "malformed":
        path.write_text('{"network": {"kind": "mlp",\n')
    elif problem == "not an object":
        path.write_text("[1, 2]\n")
    out = tmp_path / "run"
    status = cli.main(["train", "--preset", str(path), "--out", str(out), "--epochs", "1"])
    error = capsys.readouterr().err
    assert status == cli.EXIT_ERROR
    assert error.count("\n") == 1 and "error:" in error and str(path) in error
    assert not out.exists()


# -- objectives ---------------------------------------------------------------------------------


def _same_weights(config: RunConfig, other: RunConfig):
    from vae_mnist.model import build_vae

    first, second = build_vae(config), build_vae(other)
    second.set_weights(first.get_weights())
    return first, second


def _images(count: int = 16) -> np.ndarray:
    return make_arrays(train=1, test=count)["x_test"].reshape(count, -1).astype("float32") / 255.0


def test_the_iwae_objective_with_one_sample_is_the_elbo(laplace_kinds):
    # No analytic KL for the Laplace pair, so both objectives see the same Monte-Carlo terms.
    config = _laplace_config()
    elbo_vae, iwae_vae = _same_weights(
        config, config.replace(objective="iwae", importance_samples=1)
    )
    images = _images()
    elbo_outputs = elbo_vae(images, training=False)
    iwae_outputs = iwae_vae(images, training=False)
    np.testing.assert_array_equal(_numpy(elbo_outputs["z"]), _numpy(iwae_outputs["z"]))
    elbo = float(_numpy(elbo_vae.compute_loss(images, y_pred=elbo_outputs, training=False)))
    iwae = float(_numpy(iwae_vae.compute_loss(images, y_pred=iwae_outputs, training=False)))
    assert math.isfinite(elbo)
    assert iwae == pytest.approx(elbo, rel=1e-6)


def test_the_iwae_objective_with_one_sample_is_the_monte_carlo_elbo_of_a_gaussian():
    from vae_mnist.objectives import negative_elbo

    config = RunConfig().replace(**FAST)
    elbo_vae, iwae_vae = _same_weights(
        config, config.replace(objective="iwae", importance_samples=1)
    )
    images = _images()
    outputs = elbo_vae(images, training=False)
    iwae_outputs = iwae_vae(images, training=False)
    iwae = float(_numpy(iwae_vae.compute_loss(images, y_pred=iwae_outputs, training=False)))
    decoded = {name: outputs[name] for name in elbo_vae.likelihood_heads}
    reconstruction = elbo_vae.likelihood.negative_log_likelihood(outputs["targets"], decoded)
    sampled_kl = elbo_vae.kl_terms(outputs, analytic=False)
    assert iwae == pytest.approx(float(_numpy(negative_elbo(reconstruction, sampled_kl))), rel=1e-6)
    # The ELBO objective itself takes the Gaussian's KL in closed form: another number.
    elbo = float(_numpy(elbo_vae.compute_loss(images, y_pred=outputs, training=False)))
    assert elbo != iwae and abs(elbo - iwae) < 0.05 * abs(elbo)


def test_more_importance_samples_tighten_the_bound():
    import keras

    from vae_mnist.model import build_vae
    from vae_mnist.objectives import log_mean_exp

    vae = build_vae(RunConfig().replace(**FAST))
    log_weights = _numpy(vae.log_weights(_images(), 50, keras.random.SeedGenerator(0)))
    assert log_weights.shape == (16, 50)
    bound = _numpy(log_mean_exp(log_weights, axis=1))
    single = log_weights.mean(axis=1)
    assert np.all(bound >= single)
    assert bound.mean() > single.mean()


def test_log_mean_exp_is_numpys():
    from vae_mnist.objectives import log_mean_exp

    rng = np.random.default_rng(0)
    values = rng.normal(size=(4, 7)) * 30.0
    expected = np.log(np.mean(np.exp(values.astype(np.float64)), axis=1))
    np.testing.assert_allclose(_numpy(log_mean_exp(values, axis=1)), expected, rtol=1e-6)
    np.testing.assert_allclose(_numpy(log_mean_exp(values.T, axis=0)), expected, rtol=1e-6)
    # Stable where exp overflows: the mean of equal values is that value.
    assert float(_numpy(log_mean_exp(np.full((3,), 1000.0)))) == pytest.approx(1000.0)


def test_the_kl_warm_up_schedule():
    from vae_mnist.objectives import ELBOObjective

    objective = ELBOObjective(kl_weight=0.5, kl_warmup_epochs=4)
    assert [objective.weight_at_epoch(epoch) for epoch in (0, 1, 4, 6)] == [0, 0.125, 0.5, 0.5]
    assert ELBOObjective(kl_weight=0.5).weight_at_epoch(0) == 0.5


def test_the_kl_warm_up_is_logged_and_continues_after_a_resume(tmp_path):
    import keras

    from vae_mnist.training import train

    class StopAfterTwoEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    config = RunConfig().replace(kl_weight=0.5, kl_warmup_epochs=4, epochs=3, **FAST)
    folder = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(config, _data(), folder, verbose=0, callbacks=[StopAfterTwoEpochs()])
    assert [float(row["kl_weight"]) for row in _history(folder)] == [0.0, 0.125]
    assert json.loads((folder / "run.json").read_text())["status"] == "training"
    info = train(config, _data(), folder, verbose=0)
    assert info["completed_epochs"] == 3
    rows = _history(folder)
    assert [float(row["kl_weight"]) for row in rows] == [0.0, 0.125, 0.25]
    assert "val_kl_weight" not in rows[0]


# -- two stochastic layers, from the configuration alone ----------------------------------------


TWO_LAYERS = {
    "network": {"kind": "mlp", "hidden_layers": [8], "activation": "relu"},
    "posterior": {"kind": "gaussian", "dimension": 4},
    "upper_layers": [
        {
            "network": {"kind": "mlp", "hidden_layers": [8], "activation": "tanh"},
            "posterior": {"kind": "gaussian", "dimension": 2},
        }
    ],
    "training": {"epochs": 1, "batch_size": 40, "steps_per_execution": 1, "jit_compile": False},
}


def test_two_stochastic_layers_train_evaluate_and_reload(tmp_path):
    import keras

    from vae_mnist.model import load_model, save_model
    from vae_mnist.training import train

    config = RunConfig.from_dict(TWO_LAYERS)
    assert len(config.upper_layers) == 1 and config.top_posterior.dimension == 2
    assert RunConfig.from_dict(config.to_dict()) == config
    folder = tmp_path / "run"
    data = _data()
    info = train(config, data, folder, verbose=0)
    assert math.isfinite(info["history"][0]["loss"])

    vae = load_model(folder / "vae.keras")
    assert len(vae.upper_layers) == 1
    metrics = _evaluate(vae, config, data)
    assert math.isfinite(metrics["negative_elbo"])
    assert math.isfinite(metrics["iwae_negative_log_likelihood"])

    images = _images(8)
    log_weights = _numpy(vae.log_weights(images, 5, keras.random.SeedGenerator(3)))
    assert log_weights.shape == (8, 5) and np.all(np.isfinite(log_weights))
    save_model(vae, tmp_path / "again.keras")
    again = load_model(tmp_path / "again.keras")
    np.testing.assert_array_equal(
        _numpy(again.log_weights(images, 5, keras.random.SeedGenerator(3))), log_weights
    )


def test_two_layer_log_weights_are_the_hand_computed_sum(monkeypatch):
    """log p(x|z₁) + log p(z₁|z₂) + log p(z₂) - log q(z₁|x) - log q(z₂|z₁), by hand in numpy,
    with the posterior's noise at zero so that every z is its layer's mean."""
    import keras

    from vae_mnist import gaussian
    from vae_mnist.model import build_vae

    monkeypatch.setattr(gaussian.noise, "normal", lambda shape, **_: keras.ops.zeros(shape))
    vae = build_vae(RunConfig.from_dict(TWO_LAYERS))
    images = (_images(6) > 0.5).astype("float32")
    log_weights = _numpy(vae.log_weights(images, 1, keras.random.SeedGenerator(0)))[:, 0]

    mean_1, log_var_1 = (_numpy(value) for value in vae.encoder(images))
    upper = vae.upper_layers[0]
    mean_2, log_var_2 = (_numpy(value) for value in upper.encoder(mean_1))
    prior_mean, prior_log_var = (_numpy(value) for value in upper.prior_network(mean_2))
    probabilities = np.clip(_numpy(vae.decoder(mean_1)).astype(np.float64), 1e-7, 1 - 1e-7)
    log_likelihood = np.sum(
        images * np.log(probabilities) + (1 - images) * np.log(1 - probabilities), axis=1
    )
    zeros = np.zeros_like(mean_2)
    expected = (
        log_likelihood
        + gaussian_log_density(mean_1, prior_mean, prior_log_var)
        + gaussian_log_density(mean_2, zeros, zeros)
        - gaussian_log_density(mean_1, mean_1, log_var_1)
        - gaussian_log_density(mean_2, mean_2, log_var_2)
    )
    np.testing.assert_allclose(log_weights, expected, rtol=1e-4, atol=1e-3)


def test_the_iwae_objective_has_a_finite_gradient():
    import keras

    from vae_mnist.model import build_vae

    config = RunConfig().replace(objective="iwae", importance_samples=5, **FAST)
    vae = build_vae(config)
    images = keras.ops.convert_to_tensor(_images(8))
    weights = vae.trainable_weights
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = vae.compute_loss(images, y_pred=vae(images, training=True))
        gradients = tape.gradient(loss, weights)
    elif keras.backend.backend() == "torch":
        loss = vae.compute_loss(images, y_pred=vae(images, training=True))
        loss.backward()
        gradients = [weight.value.grad for weight in weights]
    else:
        import jax

        def loss_of(trainable):
            # Inside a stateless scope the trackers' updates stay in the scope.
            with keras.StatelessScope(state_mapping=list(zip(weights, trainable, strict=True))):
                return vae.compute_loss(images, y_pred=vae(images, training=True))

        gradients = jax.grad(loss_of)([weight.value for weight in weights])
    assert len(gradients) == len(weights)
    for gradient in gradients:
        assert gradient is not None and np.all(np.isfinite(_numpy(gradient)))
    assert any(np.any(_numpy(gradient) != 0) for gradient in gradients)


def test_a_stack_draws_its_top_layer_latent_space(tmp_path):
    folder = tmp_path / "run"
    preset = tmp_path / "two_layers.json"
    preset.write_text(json.dumps(TWO_LAYERS))
    data = _write_npz(tmp_path / "mnist.npz")
    train_result = run_command(
        "train", "--preset", str(preset), "--data", str(data), "--out", str(folder), "--quiet"
    )
    assert train_result.returncode == 0, train_result.stderr
    result = run_command(
        "plot", "latent", "--run", str(folder), "--data", str(data), "--out", str(tmp_path / "f")
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "f" / "latent_scatter.png").is_file()
    assert (tmp_path / "f" / "latent_scatter_top.png").is_file()
    assert "latent_scatter_top.png" in result.stdout


# -- the VampPrior and the presets of the records --------------------------------------------


def train(*arguments, **options):
    from vae_mnist.training import train as train_run

    return train_run(*arguments, **options)


def _vamp_vae(pseudo_inputs: int = 5):
    from vae_mnist.model import build_vae

    config = RunConfig().replace(
        hidden_layers=(8,), dimension=3, prior="vamp", pseudo_inputs=pseudo_inputs, seed=2
    )
    return config, build_vae(config)


def test_the_vamp_prior_is_the_mixture_of_the_posteriors_at_its_pseudo_inputs():
    from vae_mnist.model import build_vae

    config, vae = _vamp_vae()
    prior = vae.prior_part
    pseudo = np.clip(keras.ops.convert_to_numpy(prior.weights), 0.0, 1.0)
    mean, log_var = (keras.ops.convert_to_numpy(head) for head in vae.encoder(pseudo))
    z = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    # log N(z; μ_k, σ_k²) for every pair, by hand: (6, 1, 3) against (1, 5, 3).
    squared = (z[:, None, :] - mean[None]) ** 2 / np.exp(log_var[None])
    log_normal = -0.5 * np.sum(np.log(2 * np.pi) + log_var[None] + squared, axis=-1)
    expected = np.log(np.mean(np.exp(log_normal.astype(np.float64)), axis=1))
    got = keras.ops.convert_to_numpy(prior.log_density(keras.ops.convert_to_tensor(z)))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # Its pseudo-inputs start near 0.05 and are weights that training moves.
    assert abs(float(np.mean(keras.ops.convert_to_numpy(prior.weights))) - 0.05) < 0.01
    assert any(variable is prior.weights for variable in vae.trainable_variables)
    # Its pseudo-inputs pass through the encoder at every step, work that a floor counts.
    assert prior.encoded_images_per_step() == 5
    standard = build_vae(config.replace(prior="standard_normal")).prior_part
    assert standard.encoded_images_per_step() == 0


@pytest.mark.parametrize("narrowest", [1.0, 0.05])
def test_the_gaussian_pairwise_density_matches_the_broadcast_one(narrowest):
    from vae_mnist.latent import gaussian_pairwise_log_density

    # Trained posteriors' scales: means within a few units, deviations down to `narrowest`, and
    # codes near the components (where the expanded square cancels most).
    rng = np.random.default_rng(5)
    mean = rng.uniform(-3, 3, (50, 40))
    log_var = 2 * np.log(rng.uniform(narrowest, 1.0, (50, 40)))
    z = mean[:20] + np.exp(0.5 * log_var[:20]) * rng.standard_normal((20, 40))
    squared = (z[:, None, :] - mean[None]) ** 2 / np.exp(log_var[None])
    expected = -0.5 * np.sum(np.log(2 * np.pi) + log_var[None] + squared, axis=-1)
    got = keras.ops.convert_to_numpy(
        gaussian_pairwise_log_density(*(value.astype(np.float32) for value in (z, mean, log_var)))
    )
    assert got.shape == (20, 50)
    # Rounding in float32 only: far below a nat where it decides anything (the near pairs).
    near = np.arange(20), np.arange(20)
    np.testing.assert_allclose(got[near], expected[near], atol=2e-3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-3)


def test_the_vamp_prior_trains_saves_reloads_and_samples(tmp_path):
    from vae_mnist.model import load_model, save_model

    config, _ = _vamp_vae()
    data = _data()
    info = train(config.replace(epochs=1, batch_size=40), data, tmp_path / "run", verbose=0)
    assert math.isfinite(info["history"][-1]["val_kl_loss"])
    vae = load_model(tmp_path / "run" / "vae.keras")
    codes = vae.sample_codes(7, seed=3)
    assert codes.shape == (7, 3) and np.all(np.isfinite(codes))
    save_model(vae, tmp_path / "again.keras")
    again = load_model(tmp_path / "again.keras")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(again.prior_part.weights),
        keras.ops.convert_to_numpy(vae.prior_part.weights),
    )


def test_the_vamp_prior_refuses_a_stack_and_a_posterior_without_density():
    from vae_mnist.errors import ConfigError

    with pytest.raises(ConfigError, match="vamp prior needs a posterior with a density"):
        RunConfig().replace(posterior="categorical", prior="vamp")
    stacked = RunConfig().to_dict()
    stacked["prior"] = {"kind": "vamp", "pseudo_inputs": 3}
    stacked["upper_layers"] = [
        {
            "network": {"kind": "mlp", "hidden_layers": [4], "activation": "tanh"},
            "posterior": {"kind": "gaussian", "dimension": 2},
        }
    ]
    from vae_mnist.model import build_vae

    with pytest.raises(ConfigError, match="one stochastic layer"):
        build_vae(RunConfig.from_dict(stacked))


@pytest.mark.parametrize(
    "name",
    [
        "iwae2015-k5",
        "iwae2015-k50",
        "iwae2015-2layer",
        "iwae2015-2layer-k50",
        "vampprior2018",
        "vampprior2018-standard",
    ],
)
def test_the_presets_of_the_records_build_train_a_step_and_evaluate(name, tmp_path):
    from vae_mnist.evaluation import evaluate_run
    from vae_mnist.model import load_model
    from vae_mnist.presets import preset_config

    config = preset_config(name, epochs=1, batch_size=60, steps_per_execution=1)
    data = _data(train=60, test=20)
    train(config, data, tmp_path / "run", verbose=0)
    vae = load_model(tmp_path / "run" / "vae.keras")
    from vae_mnist.data import model_inputs

    images = model_inputs(data, config.data.binarize, config.training.seed)
    metrics = evaluate_run(
        vae, images[0], data[0][1], images[1], data[1][1], samples=4, neighbours=3
    )
    assert math.isfinite(metrics["negative_elbo"])
    assert math.isfinite(metrics["iwae_negative_log_likelihood"])


def test_each_twin_differs_only_in_what_it_compares():
    from vae_mnist.flags import flat_settings
    from vae_mnist.presets import preset_config

    def differing(first: str, second: str) -> set[str]:
        a, b = flat_settings(preset_config(first)), flat_settings(preset_config(second))
        return {name for name in {*a, *b} if a.get(name) != b.get(name)} - {"preset"}

    assert differing("vampprior2018", "vampprior2018-standard") == {"prior", "pseudo_inputs"}
    # The objective's kind, and the settings of each kind (the ELBO's weight and warm-up).
    objective = {"objective", "importance_samples", "kl_weight", "kl_warmup_epochs"}
    assert differing("iwae2015", "iwae2015-k5") == objective
    assert differing("iwae2015-2layer", "iwae2015-2layer-k50") == objective


def test_a_module_of_kinds_imported_by_name_is_not_imported_again_by_its_path(
    tmp_path, monkeypatch
):
    module = tmp_path / "own_kinds.py"
    module.write_text(
        "import dataclasses\n"
        "from typing import ClassVar\n"
        "from vae_mnist import register\n"
        "from vae_mnist.gaussian import StandardNormalPrior\n\n"
        "@register\n"
        "@dataclasses.dataclass(frozen=True)\n"
        "class OwnPrior(StandardNormalPrior):\n"
        "    kind: ClassVar[str] = 'own'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import own_kinds  # As a notebook would, before the command line's $VAE_MNIST_KINDS.

        settings_module._import_kind_module(str(module), "VAE_MNIST_KINDS")
        assert settings_module._REGISTRY["prior"]["own"] is own_kinds.OwnPrior
    finally:
        settings_module._REGISTRY["prior"].pop("own", None)
        sys.modules.pop("own_kinds", None)


def test_samples_drawn_with_other_noise_are_weighed_by_the_density_they_come_from():
    # The 2017 example's epsilon_std scales the sampling noise: z ~ N(μ, ε² σ²). The closed-form
    # KL keeps N(μ, σ²), as the example did; a sample's weight (an importance weight, a
    # Monte-Carlo KL) takes the density the sample was drawn from, so it stays a bound.
    from vae_mnist.model import build_vae
    from vae_mnist.presets import preset_config

    config = preset_config(epsilon_std=0.5, objective="iwae", importance_samples=2, **FAST)
    vae = build_vae(config)
    images = np.random.default_rng(0).random((3, 784)).astype("float32")
    outputs = vae(images, training=True)
    z, mean, log_var = (
        keras.ops.convert_to_numpy(outputs[name]).astype(np.float64)
        for name in ("z", "z_mean", "z_log_var")
    )
    variance = 0.25 * np.exp(log_var)
    log_q = -0.5 * np.sum(np.log(2 * np.pi * variance) + (z - mean) ** 2 / variance, axis=-1)
    log_p = -0.5 * np.sum(np.log(2 * np.pi) + z**2, axis=-1)
    kl = keras.ops.convert_to_numpy(vae.kl_terms(outputs, analytic=False))
    np.testing.assert_allclose(kl, log_q - log_p, rtol=1e-4, atol=1e-4)
    # The VampPrior and a stack train with it too.
    for preset, changes in [("keras2017", dict(prior="vamp")), ("iwae2015-2layer", {})]:
        assert preset_config(preset, epsilon_std=0.5, **changes).posterior.epsilon_std == 0.5
