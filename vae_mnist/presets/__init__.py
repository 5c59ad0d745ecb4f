"""Named presets: published setups kept as small JSON files beside this module.

Each file holds a one-line ``description``, the ``paper`` it comes from, what ``differs`` from
that paper here, and the settings it changes from the defaults, by section (``data``,
``model``, ``training``). `preset_config` turns one into a `RunConfig`; flags override it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vae_mnist.config import ConfigError, RunConfig

PRESET_FOLDER = Path(__file__).resolve().parent
DESCRIPTIVE_KEYS = ("description", "paper", "differs")


@dataclass(frozen=True)
class Preset:
    """A named, documented configuration."""

    name: str
    description: str
    paper: str
    differs: str
    config: RunConfig


def preset_names() -> list[str]:
    """Every preset's name, sorted."""
    return sorted(path.stem for path in PRESET_FOLDER.glob("*.json"))


def load_preset(name: str) -> Preset:
    """The preset called `name`; `ConfigError` naming the choices where there is none."""
    names = preset_names()
    if name not in names:
        raise ConfigError(f"unknown preset {name!r} (choose from {', '.join(names)})")
    path = PRESET_FOLDER / f"{name}.json"
    values: dict[str, Any] = json.loads(path.read_text())
    descriptive = {key: values.pop(key) for key in DESCRIPTIVE_KEYS}
    try:
        config = RunConfig.from_dict({"preset": name, **values})
    except ConfigError as error:
        raise ConfigError(f"preset {name}: {error}") from None
    return Preset(name=name, config=config, **descriptive)


def preset_config(name: str, **changes: Any) -> RunConfig:
    """The preset's configuration with flat settings changed (``latent_dim=5``)."""
    return load_preset(name).config.replace(**changes)
