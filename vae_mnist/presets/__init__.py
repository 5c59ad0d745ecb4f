"""Named presets: published setups kept as small JSON files beside this module.

Each file holds a one-line ``description``, the ``paper`` it comes from, what ``differs`` from
that paper here, and its configuration, one section per part as in a run's ``config.json``.
`preset_config` turns one into a `RunConfig`; flags override it. A preset may also be a file of
the user's, named by its path (as keras-hub's ``from_preset`` takes a path).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vae_mnist.config import DEFAULT_PRESET, ConfigError, RunConfig
from vae_mnist.errors import JSON_READ_ERRORS
from vae_mnist.files import read_text

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


def _preset_file(name: str) -> tuple[str, Path]:
    """The preset's name and file: one of the package's, or a JSON file at the path `name`,
    named by its file's name (``mine`` for ``lab/mine.json``)."""
    names = preset_names()
    if name in names:
        return name, PRESET_FOLDER / f"{name}.json"
    path = Path(name)
    if path.suffix == ".json" or path.exists() or "/" in name:
        if path.is_dir():
            raise ConfigError(f"preset file {path}: a folder, not a preset file")
        if not path.exists():
            raise ConfigError(f"preset file {path}: no such file")
        if not path.is_file():
            raise ConfigError(f"preset file {path}: not a regular file (a device, a pipe)")
        # A copy of a package preset, edited, keeps its path as its name, so that runs of the
        # two are told apart (in `compare`, say).
        return (name if path.stem in names else path.stem), path
    raise ConfigError(
        f"unknown preset {name!r} (choose from {', '.join(names)}, or give a path to a preset file)"
    )


def _json_type(value: Any) -> str:
    """What JSON calls the type of a value it was read into."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {int: "number", float: "number", list: "array", dict: "object"}.get(type(value), "value")


def load_preset(name: str) -> Preset:
    """The preset called `name`, or the preset file at the path `name`; one-line errors."""
    preset_name, path = _preset_file(name)
    try:
        values: Any = json.loads(read_text(path))
    except JSON_READ_ERRORS as error:
        raise ConfigError(f"preset file {path}: not readable JSON ({error})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"preset file {path}: not a JSON object")
    descriptive = {key: values.pop(key, "") for key in DESCRIPTIVE_KEYS}
    for key, text in descriptive.items():
        if not isinstance(text, str):
            raise ConfigError(
                f"preset file {path}: its {key} is not text (a JSON {_json_type(text)})"
            )
    try:
        config = RunConfig.from_dict({**values, "preset": preset_name})
    except ConfigError as error:
        raise ConfigError(f"preset {preset_name} ({path}): {error}") from None
    return Preset(name=preset_name, config=config, **descriptive)


def preset_config(name: str = DEFAULT_PRESET, **changes: Any) -> RunConfig:
    """The preset's configuration with settings changed by flag name (``dimension=5``)."""
    return load_preset(name).config.replace(**changes)
