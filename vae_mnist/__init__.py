"""vae-mnist: the 2017 Keras MNIST variational autoencoder, on Keras 3, and its family.

Importing the package is instant: Keras (and its backend) is imported when a model is first
built or loaded. The public names below are imported on first use, and importing
`vae_mnist.model` registers the VAE with Keras, so saved models load with safe mode on.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# TensorFlow logs CUDA probing and oneDNN notes at start-up; users of a CPU example should not
# have to read them. An explicit setting of the user's wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "3.0.0"

# Each public name and the module it comes from.
_PUBLIC = {
    "ConfigError": "vae_mnist.settings",
    "UsageError": "vae_mnist.settings",
    "Part": "vae_mnist.settings",
    "register": "vae_mnist.settings",
    "setting": "vae_mnist.settings",
    "Posterior": "vae_mnist.latent",
    "Prior": "vae_mnist.latent",
    "require_posterior": "vae_mnist.latent",
    "Network": "vae_mnist.networks",
    "Likelihood": "vae_mnist.likelihoods",
    "Objective": "vae_mnist.objectives",
    "Optimizer": "vae_mnist.optimizers",
    "Data": "vae_mnist.data",
    "RunConfig": "vae_mnist.config",
    "TrainingConfig": "vae_mnist.config",
    "UpperLayer": "vae_mnist.config",
    "DataError": "vae_mnist.data",
    "load_dataset": "vae_mnist.data",
    "load_mnist": "vae_mnist.data",
    "prepare_images": "vae_mnist.data",
    "VAE": "vae_mnist.model",
    "ModelFileError": "vae_mnist.model",
    "build_vae": "vae_mnist.model",
    "load_model": "vae_mnist.model",
    "train": "vae_mnist.training",
    "evaluate_run": "vae_mnist.evaluation",
    "load_preset": "vae_mnist.presets",
    "preset_config": "vae_mnist.presets",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'vae_mnist' has no attribute {name!r}")
    module = _PUBLIC[name]
    if module == "vae_mnist.model":
        from vae_mnist._quiet import start_tensorflow_quietly

        start_tensorflow_quietly()
    return getattr(importlib.import_module(module), name)
