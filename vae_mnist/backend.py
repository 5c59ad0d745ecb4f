"""Keras, imported on first use.

Importing Keras starts its backend, which takes seconds, and the command line
must answer `--help`, a usage error or `presets` at once. So the parts' modules, which the
command line reads for their settings, reach Keras through these stand-ins: ``ops.exp(x)`` and
``keras.random.SeedGenerator(seed)`` import Keras the first time they are used, and are the real
functions and classes from then on.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np


class LazyModule:
    """A module that is imported when one of its attributes is first read."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module = None

    def __getattr__(self, attribute: str) -> Any:
        # Only attributes the stand-in lacks come here; after the first, the module is kept.
        if self._module is None:
            from vae_mnist._quiet import start_tensorflow_quietly

            start_tensorflow_quietly()  # at once where TensorFlow has started already
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


keras = LazyModule("keras")
ops = LazyModule("keras.ops")


def to_numpy(value: Any) -> np.ndarray:
    """A tensor of any backend (or an array, or a number) as a NumPy array."""
    return np.asarray(ops.convert_to_numpy(value))
