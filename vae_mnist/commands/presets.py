"""`vae-mnist presets`: every preset with its one-line description (``--verbose``: all of it)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vae_mnist.config import DEFAULT_PRESET
from vae_mnist.presets import load_preset, preset_names


def settings_lines(settings: dict[str, Any], margin: str) -> list[str]:
    """``name: value`` a line, each section's settings indented under its name.

    Values are written as JSON (lists on one line), strings without quotes.
    """
    lines = []
    for name, value in settings.items():
        if isinstance(value, dict):
            lines.append(f"{margin}{name}:")
            lines.extend(settings_lines(value, margin + "  "))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            lines.append(f"{margin}{name}: {text}")
    return lines


def run(arguments: argparse.Namespace, program: str) -> None:
    names = list(dict.fromkeys(arguments.names)) or preset_names()
    # Every preset read first, so that a bad name or file is one line before any output.
    presets = {name: load_preset(name) for name in names}
    labels = {name: f"{name} (default)" if name == DEFAULT_PRESET else name for name in names}
    width = max(len(label) for label in labels.values())
    margin = " " * (width + 2)
    for name, preset in presets.items():
        print(f"{labels[name]:<{width}}  {preset.description or '(no description)'}")
        if arguments.verbose:
            print(f"{margin}paper: {preset.paper}")
            print(f"{margin}differs: {preset.differs}")
            print(f"{margin}settings:")
            print("\n".join(settings_lines(_sections(preset), margin + "  ")) + "\n")
    print(f"\ntrain one with: {program} train --preset NAME (flags override its settings)")


def _sections(preset) -> dict[str, Any]:
    """The preset's parts and training, without the file format's version and its own name."""
    return {
        name: value
        for name, value in preset.config.to_dict().items()
        if name not in ("version", "preset")
    }
