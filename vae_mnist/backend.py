"""Keras, imported on first use.

Importing Keras starts its backend (TensorFlow takes about five seconds), and the command line
must answer `--help`, a usage error or `presets` at once. So the parts' modules, which the
command line reads for their settings, reach Keras through these stand-ins: ``ops.exp(x)`` and
``keras.random.SeedGenerator(seed)`` import Keras the first time they are used, and are the real
functions and classes from then on.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """A module that is imported when one of its attributes is first read."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


keras = LazyModule("keras")
ops = LazyModule("keras.ops")
