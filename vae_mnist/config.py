"""The typed configuration of a run, split by concern: data, model, training.

Every field is a command-line flag of the same name (``hidden_layers`` is ``--hidden-layers``),
so field names are unique across the three sections. The defaults are the 2017 Keras example's
(the ``keras2017`` preset). A run saves its configuration as ``config.json``::

    {"preset": "keras2017", "data": {...}, "model": {...}, "training": {...}}

Runs of version 1, whose ``config.json`` was one flat object, are read and converted.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, ClassVar

from vae_mnist.files import atomic_write_text

DATASETS = ("mnist", "fashion_mnist")
BINARIZATIONS = ("none", "dynamic", "static")
ARCHITECTURES = ("mlp", "conv")
ACTIVATIONS = ("relu", "tanh")
LATENTS = ("gaussian", "categorical", "bernoulli", "rbm")
LIKELIHOODS = ("bernoulli", "gaussian")
OPTIMIZERS = ("rmsprop", "adam", "adagrad")
LEARNING_RATE_SCHEDULES = ("constant", "iwae")
LOG_PARTITION_GRADIENTS = ("chains", "exact")
# The training step may enumerate an RBM half of up to this many units (2^16 states per step).
IN_GRAPH_EXACT_UNITS = 16
DEFAULT_PRESET = "keras2017"
# An RBM half is enumerated exactly for log Z up to this many units (2^20 states).
EXACT_LOG_PARTITION_UNITS = 20
# The Gaussian decoder's smallest standard deviation: one gray level of an 8-bit image. MNIST's
# border pixels are 0 in every training image, so an unbounded variance there shrinks towards
# zero, the training loss towards minus infinity, and the first test image with ink in such a
# pixel costs an infinite loss (seen in a 200-epoch aevb2013-gaussian run, which stopped on an
# infinite validation loss in epoch 8).
GAUSSIAN_MINIMUM_STD = 1.0 / 255.0


def ln_two_over(steps: int) -> float:
    """The rate r at which exp(-r * steps) = 1/2: the temperature halves in `steps` steps."""
    return math.log(2.0) / steps


class ConfigError(ValueError):
    """A configuration file or value that cannot be used."""


class UsageError(ValueError):
    """A command line that asks for something impossible (an index outside the data, say)."""


def _field(default: Any, help_text: str, **extra: Any) -> Any:
    """A dataclass field whose metadata carries its command-line help and its checks.

    ``positive=True`` refuses zero and negatives; ``choices=(...)`` lists the allowed words.
    """
    if isinstance(default, tuple):
        return dataclasses.field(
            default_factory=lambda: default, metadata={"help": help_text, **extra}
        )
    return dataclasses.field(default=default, metadata={"help": help_text, **extra})


def _check_value(field: dataclasses.Field, value: Any) -> Any:
    """Return `value` as the field's type, or raise `ConfigError` naming the field."""
    name, kind = field.name, field.type
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if kind == "str":
        choices = field.metadata.get("choices")
        if not isinstance(value, str) or (choices and value not in choices):
            raise ConfigError(f"unknown {name} {value!r} (choose from {', '.join(choices)})")
        return value
    if kind == "tuple[int, ...]":
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if not items or any(
            isinstance(item, bool)
            or not isinstance(item, (int, float))
            or not float(item).is_integer()
            or item <= 0
            for item in items
        ):
            raise ConfigError(f"{name} must be a list of positive whole numbers, got {value!r}")
        return tuple(int(item) for item in items)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    if kind == "int" and not float(value).is_integer():
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if field.metadata.get("positive") and value <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value!r}")
    return int(value) if kind == "int" else float(value)


class _Section:
    """Checks and converts every field of a configuration section when it is made."""

    title: ClassVar[str]

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, field.name, _check_value(field, getattr(self, field.name)))

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in values.items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        known = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown {cls.title} settings: {', '.join(unknown)}")
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class DataConfig(_Section):
    """Which images, and how their pixels become targets."""

    title: ClassVar[str] = "data"

    dataset: str = _field("mnist", "the data set", choices=DATASETS)
    binarize: str = _field(
        "none",
        "pixels as grayscale targets (none), drawn from Bernoulli(x) at every step (dynamic), "
        "or drawn once under the seed (static)",
        choices=BINARIZATIONS,
    )


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Section):
    """The parts the VAE is composed of: networks, latent, likelihood."""

    title: ClassVar[str] = "model"

    architecture: str = _field("mlp", "encoder and decoder networks", choices=ARCHITECTURES)
    hidden_layers: tuple[int, ...] = _field(
        (256,), "units of the MLP's hidden layers, encoder order (comma list, e.g. 256,128)"
    )
    activation: str = _field("relu", "activation of the hidden layers", choices=ACTIVATIONS)
    latent: str = _field("gaussian", "the latent variable", choices=LATENTS)
    latent_dim: int = _field(2, "dimensions of the latent space z", positive=True)
    epsilon_std: float = _field(1.0, "standard deviation of the sampling noise", positive=True)
    likelihood: str = _field("bernoulli", "the decoder's likelihood p(x|z)", choices=LIKELIHOODS)
    gaussian_minimum_std: float = _field(
        GAUSSIAN_MINIMUM_STD,
        "gaussian likelihood: the smallest standard deviation of a pixel (one gray level)",
        positive=True,
    )
    original_dim: int = _field(784, "pixels per image (28 x 28, flattened)", positive=True)
    categorical_variables: int = _field(
        20, "categorical latent: the number of variables N", positive=True
    )
    categories: int = _field(10, "categorical latent: classes K of each variable", positive=True)
    straight_through: bool = _field(
        False, "discrete latents: one-hot forward pass, gradients through the relaxation"
    )
    temperature: float = _field(
        1.0, "discrete latents: the relaxation's starting temperature", positive=True
    )
    temperature_min: float = _field(0.5, "discrete latents: the temperature's floor", positive=True)
    temperature_rate: float = _field(
        ln_two_over(30_000),
        "discrete latents: r in temperature = max(min, start * exp(-r * step))",
    )
    rbm_units: tuple[int, ...] = _field(
        (16, 16), "rbm latent: binary units of the two halves (e.g. 16,16)"
    )
    beta: float = _field(
        8.0, "rbm latent: sharpness of the spike-and-exponential smoothing", positive=True
    )
    rbm_chains: int = _field(
        100, "rbm latent: persistent Gibbs chains that estimate the prior's gradient", positive=True
    )
    rbm_gibbs_sweeps: int = _field(
        1, "rbm latent: block Gibbs sweeps of the chains per training step", positive=True
    )
    rbm_log_partition_gradient: str = _field(
        "chains",
        "rbm latent: the gradient of log Z from the persistent chains, or exact (enumerated "
        f"inside the step; a half of at most {IN_GRAPH_EXACT_UNITS} units)",
        choices=LOG_PARTITION_GRADIENTS,
    )


@dataclasses.dataclass(frozen=True)
class TrainingConfig(_Section):
    """How the model is fitted."""

    title: ClassVar[str] = "training"

    optimizer: str = _field("rmsprop", "the optimizer", choices=OPTIMIZERS)
    learning_rate: float = _field(1e-3, "the optimizer's learning rate", positive=True)
    optimizer_epsilon: float = _field(
        1e-7, "the optimizer's epsilon (Keras' default 1e-7)", positive=True
    )
    weight_decay: float = _field(
        0.0, "decoupled weight decay per step (the paper's N(0, I) prior on the weights)"
    )
    learning_rate_schedule: str = _field(
        "constant",
        "constant, or iwae: Burda et al.'s 3^i epochs at learning_rate * 10^(-i/7), i = 0..7",
        choices=LEARNING_RATE_SCHEDULES,
    )
    batch_size: int = _field(100, "images per training step", positive=True)
    epochs: int = _field(50, "passes over the training set", positive=True)
    shuffle: bool = _field(True, "shuffle the training set every epoch")
    seed: int = _field(0, "seed of every random draw (weights, noise, shuffling, binarization)")
    steps_per_execution: int = _field(
        100, "training steps run per call into the compiled graph (speed only)", positive=True
    )
    jit_compile: bool = _field(True, "compile the training step with XLA (speed only)")
    snapshot_every: int = _field(
        0, "save a decoder snapshot every N epochs for the manifold animation (0: none)"
    )


SECTIONS: dict[str, type[_Section]] = {
    "data": DataConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
}


def flag_fields() -> list[tuple[str, dataclasses.Field]]:
    """Every ``(section, field)`` that the command line exposes as a flag."""
    return [
        (section, field)
        for section, kind in SECTIONS.items()
        for field in dataclasses.fields(kind)  # type: ignore[arg-type]
    ]


def _section_of(name: str) -> str:
    for section, field in flag_fields():
        if field.name == name:
            return section
    raise ConfigError(f"unknown setting {name!r}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of a run: its data, its model and its training, and the preset it began from.

    The defaults reproduce the MLP variational autoencoder of the 2017 Keras example
    (``variational_autoencoder.py``) that the blog walk-through ran.
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    preset: str = DEFAULT_PRESET

    def __post_init__(self) -> None:
        if self.model.likelihood == "gaussian" and self.data.binarize != "none":
            raise ConfigError(
                f"a gaussian likelihood models grayscale pixels, but binarize is "
                f"{self.data.binarize!r}; use --likelihood bernoulli or --binarize none"
            )
        model = self.model
        if model.latent == "categorical" and model.categories < 2:
            raise ConfigError(f"categories must be at least 2, got {model.categories}")
        if (
            model.latent in ("categorical", "bernoulli")
            and model.temperature_min > model.temperature
        ):
            raise ConfigError(
                f"temperature_min {model.temperature_min} is above the starting temperature "
                f"{model.temperature}"
            )
        if model.latent == "rbm" and len(model.rbm_units) != 2:
            raise ConfigError(
                f"rbm_units needs two sizes, one per half (e.g. 16,16), got {model.rbm_units}"
            )
        if (
            model.latent == "rbm"
            and model.rbm_log_partition_gradient == "exact"
            and min(model.rbm_units) > IN_GRAPH_EXACT_UNITS
        ):
            raise ConfigError(
                f"rbm_log_partition_gradient exact enumerates the smaller RBM half in every "
                f"step, which has {min(model.rbm_units)} units: more than "
                f"{IN_GRAPH_EXACT_UNITS}; use chains"
            )
        side = math.isqrt(self.model.original_dim)
        if self.model.architecture == "conv" and side * side != self.model.original_dim:
            raise ConfigError(
                f"the conv architecture needs square images, and original_dim "
                f"{self.model.original_dim} is not a square number"
            )

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with flat settings changed: ``config.replace(latent_dim=5, epochs=3)``."""
        sections = {name: getattr(self, name).to_dict() for name in SECTIONS}
        preset = changes.pop("preset", self.preset)
        for name, value in changes.items():
            sections[_section_of(name)][name] = value
        return RunConfig.from_dict({"preset": preset, **sections})

    def flat(self) -> dict[str, Any]:
        """Every setting by its flag name, in one mapping."""
        return {
            key: value for name in SECTIONS for key, value in getattr(self, name).to_dict().items()
        }

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, **{name: getattr(self, name).to_dict() for name in SECTIONS}}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        if not isinstance(values, dict):
            raise ConfigError("a configuration must be a JSON object")
        if "intermediate_dim" in values or "epsilon_std" in values:
            values = _convert_version_1(values)
        unknown = sorted(set(values) - {"preset", *SECTIONS})
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
        sections = {}
        for name, kind in SECTIONS.items():
            section = values.get(name, {})
            if not isinstance(section, dict):
                raise ConfigError(f"the {name} settings must be a JSON object")
            try:
                sections[name] = kind.from_dict(section)
            except TypeError as error:
                raise ConfigError(f"{name}: {error}") from None
        preset = values.get("preset", DEFAULT_PRESET)
        if not isinstance(preset, str):
            raise ConfigError(f"preset must be a name, got {preset!r}")
        return cls(preset=preset, **sections)

    def save(self, path: str | Path) -> None:
        """Write the configuration as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a configuration written by `save` (or by version 1)."""
        try:
            values = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"{path}: not a readable JSON configuration ({error})") from None
        try:
            return cls.from_dict(values)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None


# Version 1 kept one flat object; these are where its keys went.
_VERSION_1_MODEL_KEYS = ("original_dim", "latent_dim", "epsilon_std")
_VERSION_1_TRAINING_KEYS = (
    "batch_size",
    "epochs",
    "learning_rate",
    "shuffle",
    "seed",
    "steps_per_execution",
    "jit_compile",
    "snapshot_every",
)


def _convert_version_1(values: dict[str, Any]) -> dict[str, Any]:
    """The sectioned form of a version-1 flat configuration (the 2017 model, any sizes)."""
    values = dict(values)
    model = {key: values.pop(key) for key in _VERSION_1_MODEL_KEYS if key in values}
    if "intermediate_dim" in values:
        model["hidden_layers"] = [values.pop("intermediate_dim")]
    training = {key: values.pop(key) for key in _VERSION_1_TRAINING_KEYS if key in values}
    if values:
        raise ConfigError(f"unknown configuration keys: {', '.join(sorted(values))}")
    return {"preset": DEFAULT_PRESET, "data": {}, "model": model, "training": training}
