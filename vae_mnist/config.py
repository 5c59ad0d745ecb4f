"""The configuration of a run: one section per part, and the training's own settings.

A run saves it as ``config.json``, nested by part; a part's settings appear only in its own
section (`vae_mnist.settings`)::

    {"version": 3, "preset": "keras2017",
     "data": {"kind": "mnist", "binarize": "none"},
     "network": {"kind": "mlp", "hidden_layers": [256], "activation": "relu"},
     "posterior": {"kind": "gaussian", "dimension": 2, "epsilon_std": 1.0},
     "prior": {"kind": "standard_normal"},
     "likelihood": {"kind": "bernoulli"},
     "objective": {"kind": "elbo", "kl_weight": 1.0, "kl_warmup_epochs": 0},
     "optimizer": {"kind": "rmsprop", "learning_rate": 0.001, ...},
     "training": {"batch_size": 100, "epochs": 50, ...}}

A model of more than one stochastic layer adds ``"upper_layers"``: a list of ``{"network":
{...}, "posterior": {...}}``, each a layer z_{i+1} above z_i with q(z_{i+1}|z_i) and a
conditional prior p(z_i|z_{i+1}) from its network; the ``prior`` section is then the top
layer's. The defaults are the 2017 Keras example's (the ``keras2017`` preset). Configurations
of versions 1 and 2 (one flat object; sections data, model, training) are read and converted.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from vae_mnist.data import MNISTData
from vae_mnist.errors import JSON_READ_ERRORS
from vae_mnist.files import atomic_write_text, read_text
from vae_mnist.gaussian import GaussianPosterior, StandardNormalPrior
from vae_mnist.likelihoods import BernoulliLikelihood
from vae_mnist.networks import MLPNetwork
from vae_mnist.objectives import ELBOObjective
from vae_mnist.optimizers import RMSprop
from vae_mnist.settings import (
    LARGEST_SEED,
    ConfigError,
    Part,
    Settings,
    UsageError,
    make_part,
    setting,
)

__all__ = ["ConfigError", "RunConfig", "TrainingConfig", "UpperLayer", "UsageError"]

VERSION = 3
DEFAULT_PRESET = "keras2017"
# The parts' sections of config.json, in order; each is the family of its part.
PART_SECTIONS = ("data", "network", "posterior", "prior", "likelihood", "objective", "optimizer")


@dataclasses.dataclass(frozen=True)
class TrainingConfig(Settings):
    """How the model is fitted: the settings that belong to no part."""

    batch_size: int = setting(100, "images per training step", positive=True)
    epochs: int = setting(50, "passes over the training set", positive=True)
    shuffle: bool = setting(True, "shuffle the training set every epoch")
    seed: int = setting(
        0,
        "seed of every random draw (weights, noise, shuffling, binarization)",
        maximum=LARGEST_SEED,
    )
    steps_per_execution: int = setting(
        100, "training steps run per call into the compiled graph (speed only)", positive=True
    )
    jit_compile: bool = setting(True, "compile the training step with XLA (speed only)")
    compiled_chunks: bool = setting(
        True,
        "JAX and TensorFlow, dense networks: run each call's steps as one compiled program, not "
        "Keras' step loop (speed only; the same numbers)",
    )
    snapshot_every: int = setting(
        0, "save a decoder snapshot every N epochs for the manifold animation (0: none)"
    )


@dataclasses.dataclass(frozen=True)
class UpperLayer:
    """A stochastic layer above another: q(z_{i+1}|z_i) and p(z_i|z_{i+1}) from `network`."""

    network: Part
    posterior: Part

    def get_config(self) -> dict[str, Any]:
        return {"network": self.network.get_config(), "posterior": self.posterior.get_config()}

    @classmethod
    def from_config(cls, values: Any) -> UpperLayer:
        if not isinstance(values, dict) or set(values) != {"network", "posterior"}:
            raise ConfigError(
                f"an upper layer is an object of a network and a posterior, got {values!r}"
            )
        return cls(
            make_part("network", values["network"]), make_part("posterior", values["posterior"])
        )


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of a run: its parts, its training, and the preset it began from.

    The defaults reproduce the MLP variational autoencoder of the 2017 Keras example
    (``variational_autoencoder.py``) that the blog walk-through ran.
    """

    data: Part = dataclasses.field(default_factory=MNISTData)
    network: Part = dataclasses.field(default_factory=MLPNetwork)
    posterior: Part = dataclasses.field(default_factory=GaussianPosterior)
    prior: Part = dataclasses.field(default_factory=StandardNormalPrior)
    likelihood: Part = dataclasses.field(default_factory=BernoulliLikelihood)
    objective: Part = dataclasses.field(default_factory=ELBOObjective)
    optimizer: Part = dataclasses.field(default_factory=RMSprop)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    upper_layers: tuple[UpperLayer, ...] = ()
    preset: str = DEFAULT_PRESET

    def __post_init__(self) -> None:
        """The sections' types, then the checks between parts, each in the part that knows it."""
        self._check_sections()
        self.network.check_data(self.data)
        self.likelihood.check_data(self.data)
        self.prior.check_posterior(self.top_posterior)
        self.prior.check_layers(len(self.posteriors))
        self.objective.check_parts(self.top_posterior, self.prior)
        for lower in self.posteriors[:-1]:
            if not (lower.offers("continuous") and lower.offers("density")):
                raise ConfigError(
                    f"a layer below another has a conditional Gaussian prior, so its posterior "
                    f"must be continuous with a density, and the {lower.kind} posterior is not"
                )
        # The top layer's KL term is the sample estimate log q - log p where no prior has it in
        # closed form, so its posterior needs log q of the training sample: a density, or binary
        # units whose log-probability extends to their relaxed sample (as GumBolt takes it), or
        # smoothed units in groups, whose KL given the sample is closed-form (expected_bits).
        top = self.top_posterior
        capable = ("density", "relaxed_bits", "expected_bits")
        if self.upper_layers and not any(top.offers(capability) for capability in capable):
            raise ConfigError(
                f"the top of a stack of layers needs a posterior with a density, relaxed "
                f"binary units or smoothed units in groups, and the {top.kind} posterior has "
                f"none of these"
            )

    def _check_sections(self) -> None:
        """Each section a part of its family (made in Python, a configuration may hold
        anything); `replace` takes a kind by its name."""
        for family in PART_SECTIONS:
            part = getattr(self, family)
            if not (isinstance(part, Part) and part.family == family):
                raise ConfigError(
                    f"{family} must be a {family} kind's part, got {part!r} (replace({family}="
                    f"'a_kind') chooses one by its name)"
                )
        if not isinstance(self.training, TrainingConfig):
            raise ConfigError(f"training must be a TrainingConfig, got {self.training!r}")
        layers = self.upper_layers
        if not (isinstance(layers, tuple) and all(isinstance(x, UpperLayer) for x in layers)):
            raise ConfigError(f"upper_layers must be a tuple of UpperLayer, got {layers!r}")
        if not isinstance(self.preset, str):
            raise ConfigError(f"preset must be a name, got {self.preset!r}")

    @property
    def posteriors(self) -> list[Part]:
        """The stochastic layers' posteriors, from the one next to x to the top."""
        return [self.posterior, *(layer.posterior for layer in self.upper_layers)]

    @property
    def top_posterior(self) -> Part:
        return self.posteriors[-1]

    def parts(self) -> list[Part]:
        """Every part: the sections' kinds, then the upper layers' posteriors."""
        return [
            *(getattr(self, name) for name in PART_SECTIONS),
            *(layer.posterior for layer in self.upper_layers),
        ]

    def sections(self) -> dict[str, Settings]:
        """The part sections and the training section, by name."""
        return {name: getattr(self, name) for name in (*PART_SECTIONS, "training")}

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {"version": VERSION, "preset": self.preset}
        values.update({name: section.get_config() for name, section in self.sections().items()})
        if self.upper_layers:
            values["upper_layers"] = [layer.get_config() for layer in self.upper_layers]
        return values

    @classmethod
    def from_dict(cls, values: Any) -> RunConfig:
        """A configuration of this version, or of versions 1 and 2, converted."""
        if not isinstance(values, dict):
            raise ConfigError("a configuration must be a JSON object")
        values = convert_old_versions(values)
        version = values.get("version", VERSION)
        if isinstance(version, bool) or version not in range(1, VERSION + 1):
            newer = isinstance(version, int) and version > VERSION
            hint = " (one written by a newer vae-mnist needs that version)" if newer else ""
            raise ConfigError(
                f"version {version!r}: this vae-mnist reads configurations of versions 1 to "
                f"{VERSION}{hint}"
            )
        unknown = sorted(
            set(values) - {"version", "preset", "training", "upper_layers", *PART_SECTIONS}
        )
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
        defaults = cls()
        parts = {
            name: make_part(name, values[name]) if name in values else getattr(defaults, name)
            for name in PART_SECTIONS
        }
        training = TrainingConfig.from_config(values.get("training", {}), "training")
        layers = values.get("upper_layers", [])
        if not isinstance(layers, list):
            raise ConfigError(f"upper_layers must be a list, got {layers!r}")
        preset = values.get("preset", DEFAULT_PRESET)
        upper = tuple(UpperLayer.from_config(layer) for layer in layers)
        return cls(**parts, training=training, upper_layers=upper, preset=preset)

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with settings changed by their flag names.

        ``config.replace(posterior="categorical", variables=30, epochs=3)``: a family's name
        switches that part's kind (keeping the settings the new kind shares with the old), and
        a setting's name changes it in the section whose kind has it.
        """
        from vae_mnist.flags import apply_changes

        return apply_changes(self, changes)

    def save(self, path: str | Path) -> None:
        """Write the configuration as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a configuration written by `save` (or by versions 1 and 2)."""
        try:
            values = json.loads(read_text(path))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except JSON_READ_ERRORS as error:
            raise ConfigError(f"{path}: not a readable JSON configuration ({error})") from None
        try:
            return cls.from_dict(values)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None


# -- configurations of earlier versions ----------------------------------------------------------

# Version 1 kept one flat object; these are where its keys went in version 2.
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
# Version 2's model defaults, which its saved sections may leave out.
_VERSION_2_MODEL_DEFAULTS = {
    "architecture": "mlp",
    "hidden_layers": [256],
    "activation": "relu",
    "latent": "gaussian",
    "latent_dim": 2,
    "epsilon_std": 1.0,
    "likelihood": "bernoulli",
    "gaussian_minimum_std": 1.0 / 255.0,
    "original_dim": 784,
    "categorical_variables": 20,
    "categories": 10,
    "straight_through": False,
    "temperature": 1.0,
    "temperature_min": 0.5,
    "temperature_rate": math.log(2.0) / 30_000,
    "rbm_units": [16, 16],
    "beta": 8.0,
    "rbm_chains": 100,
    "rbm_gibbs_sweeps": 1,
    "rbm_log_partition_gradient": "chains",
}
_VERSION_2_OPTIMIZER_KEYS = (
    "learning_rate",
    "optimizer_epsilon",
    "weight_decay",
    "learning_rate_schedule",
)


def convert_old_versions(values: dict[str, Any]) -> dict[str, Any]:
    """This version's form of a configuration of version 1 or 2; this version's unchanged."""
    if "intermediate_dim" in values or "epsilon_std" in values:
        values = _convert_version_1(values)
    if "model" in values:
        values = _convert_version_2(values)
    return values


def _convert_version_1(values: dict[str, Any]) -> dict[str, Any]:
    """The version-2 form of a version-1 flat configuration (the 2017 model, any sizes)."""
    values = dict(values)
    # Version 1 had no presets; a name is given to its file read as a preset file.
    preset = values.pop("preset", DEFAULT_PRESET)
    model = {key: values.pop(key) for key in _VERSION_1_MODEL_KEYS if key in values}
    if "intermediate_dim" in values:
        model["hidden_layers"] = [values.pop("intermediate_dim")]
    training = {key: values.pop(key) for key in _VERSION_1_TRAINING_KEYS if key in values}
    if values:
        raise ConfigError(f"unknown configuration keys: {', '.join(sorted(values))}")
    return {"preset": preset, "data": {}, "model": model, "training": training}


def _convert_version_2(values: dict[str, Any]) -> dict[str, Any]:
    """This version's form of a version-2 configuration (sections data, model, training)."""
    names = ("data", "model", "training")
    if not all(isinstance(values.get(key, {}), dict) for key in names):
        raise ConfigError("the data, model and training settings must be JSON objects")
    sections = {key: dict(values.get(key) or {}) for key in names}
    unknown = sorted(set(values) - {"preset", *sections})
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
    unknown_model = sorted(set(sections["model"]) - set(_VERSION_2_MODEL_DEFAULTS))
    if unknown_model:
        raise ConfigError(f"unknown model settings: {', '.join(unknown_model)}")
    model = {**_VERSION_2_MODEL_DEFAULTS, **sections["model"]}
    training = sections["training"]
    if model.pop("original_dim") != 784:
        raise ConfigError("only images of 784 pixels (28 x 28) are supported")
    data = sections["data"]
    converted = {
        "preset": values.get("preset", DEFAULT_PRESET),
        "data": {"kind": data.pop("dataset", "mnist"), **data},
        "network": {
            "kind": model["architecture"],
            "hidden_layers": model["hidden_layers"],
            "activation": model["activation"],
        },
        **_version_2_latent(model),
        "likelihood": {"kind": model["likelihood"]},
        "optimizer": {
            "kind": training.pop("optimizer", "rmsprop"),
            **{key: training.pop(key) for key in _VERSION_2_OPTIMIZER_KEYS if key in training},
        },
        "training": training,
    }
    if model["likelihood"] == "gaussian":
        converted["likelihood"]["minimum_std"] = model["gaussian_minimum_std"]
    return converted


def _version_2_latent(model: dict[str, Any]) -> dict[str, Any]:
    """The posterior and prior sections of a version-2 ``latent`` and its fields."""
    schedule = {
        key: model[key]
        for key in ("straight_through", "temperature", "temperature_min", "temperature_rate")
    }
    latent = model["latent"]
    if latent == "gaussian":
        posterior = {"kind": "gaussian", "dimension": model["latent_dim"]}
        posterior["epsilon_std"] = model["epsilon_std"]
        return {"posterior": posterior, "prior": {"kind": "standard_normal"}}
    if latent == "categorical":
        posterior = {"kind": "categorical", "variables": model["categorical_variables"]}
        posterior.update(categories=model["categories"], **schedule)
        return {"posterior": posterior, "prior": {"kind": "uniform"}}
    if latent == "bernoulli":
        posterior = {"kind": "bernoulli", "units": model["latent_dim"], **schedule}
        return {"posterior": posterior, "prior": {"kind": "uniform"}}
    if latent == "rbm":
        units = model["rbm_units"]
        if not (
            isinstance(units, list)
            and len(units) == 2
            and all(isinstance(size, int) and not isinstance(size, bool) for size in units)
        ):
            raise ConfigError(f"rbm_units needs two whole sizes, one per half, got {units!r}")
        posterior = {"kind": "spike_exponential", "units": sum(units), "sharpness": model["beta"]}
        prior = {
            "kind": "rbm",
            "halves": units,
            "chains": model["rbm_chains"],
            "gibbs_sweeps": model["rbm_gibbs_sweeps"],
            "log_partition_gradient": model["rbm_log_partition_gradient"],
        }
        return {"posterior": posterior, "prior": prior}
    raise ConfigError(
        f"unknown latent {latent!r} (choose from gaussian, categorical, bernoulli, rbm)"
    )
