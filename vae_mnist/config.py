"""The one typed configuration of a run, whose defaults are the 2017 Keras example's."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from vae_mnist.files import atomic_write_text


class ConfigError(ValueError):
    """A configuration file or value that cannot be used."""


class UsageError(ValueError):
    """A command line that asks for something impossible (an index outside the data, say)."""


def _field(default: Any, help_text: str, **extra: Any) -> Any:
    """A dataclass field whose metadata carries its command-line help."""
    return dataclasses.field(default=default, metadata={"help": help_text, **extra})


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Every setting of the model and its training.

    The defaults reproduce the MLP variational autoencoder of the 2017 Keras example
    (``variational_autoencoder.py``) that the blog walk-through ran.
    """

    original_dim: int = _field(784, "pixels per image (28 x 28, flattened)", positive=True)
    intermediate_dim: int = _field(256, "units of the hidden Dense layer", positive=True)
    latent_dim: int = _field(2, "dimensions of the latent space z", positive=True)
    epsilon_std: float = _field(1.0, "standard deviation of the sampling noise", positive=True)
    batch_size: int = _field(100, "images per training step", positive=True)
    epochs: int = _field(50, "passes over the training set", positive=True)
    learning_rate: float = _field(1e-3, "RMSprop learning rate", positive=True)
    shuffle: bool = _field(True, "shuffle the training set every epoch")
    seed: int = _field(0, "seed of every random draw (weights, noise, shuffling)")
    steps_per_execution: int = _field(
        100, "training steps run per call into the compiled graph (speed only)", positive=True
    )
    jit_compile: bool = _field(True, "compile the training step with XLA (speed only)")
    snapshot_every: int = _field(
        0, "save a decoder snapshot every N epochs for the manifold animation (0: none)"
    )

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            expected = bool if field.type == "bool" else (int if field.type == "int" else float)
            if expected is bool:
                if not isinstance(value, bool):
                    raise ConfigError(f"{field.name} must be true or false, got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{field.name} must be a number, got {value!r}")
            if expected is int and not float(value).is_integer():
                raise ConfigError(f"{field.name} must be a whole number, got {value!r}")
            if expected is float and not (value == value and abs(value) != float("inf")):
                raise ConfigError(f"{field.name} must be finite, got {value!r}")
            if field.metadata.get("positive") and value <= 0:
                raise ConfigError(f"{field.name} must be positive, got {value!r}")
            if value < 0:
                raise ConfigError(f"{field.name} must not be negative, got {value!r}")
            object.__setattr__(self, field.name, expected(value))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> VAEConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
        return cls(**values)

    def save(self, path: str | Path) -> None:
        """Write the configuration as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> VAEConfig:
        """Read a configuration written by `save`."""
        try:
            values = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"{path}: not a readable JSON configuration ({error})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        try:
            return cls.from_dict(values)
        except (TypeError, ConfigError) as error:
            raise ConfigError(f"{path}: {error}") from None

    def replace(self, **changes: Any) -> VAEConfig:
        return dataclasses.replace(self, **changes)
