"""`vae-mnist presets`: every preset with its one-line description (``--verbose``: all of it)."""

from __future__ import annotations

import argparse
import json

from vae_mnist.presets import load_preset, preset_names


def run(arguments: argparse.Namespace, program: str) -> None:
    names = preset_names()
    width = max(len(name) for name in names)
    for name in names:
        preset = load_preset(name)
        print(f"{name:<{width}}  {preset.description}")
        if arguments.verbose:
            print(f"{'':<{width}}  paper: {preset.paper}")
            print(f"{'':<{width}}  differs: {preset.differs}")
            print(f"{'':<{width}}  settings: {json.dumps(preset.config.to_dict())}")
    print(f"\ntrain one with: {program} train --preset NAME (flags override its settings)")
