"""Models saved by vae-mnist 1 and 2: rebuilt from their run's configuration, weights moved over.

Versions 1 and 2 saved the VAE with its layers' own configurations, and one ``latent`` layer
that held both the posterior's and the prior's variables. Their weight files name the
networks' variables by the same paths as today's (``encoder/layers/dense/vars/0``), and the
latent's as ``latent/vars/N``: today's posterior's variables, then the prior's, in that order
(a discrete posterior's step counter; an RBM prior's biases, coupling, chains and log Z). So
the model is built again from the run's (converted) configuration, and the old weights are
written into a weight file of today's paths and loaded from there, optimizer state included.
"""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from vae_mnist.config import RunConfig

if TYPE_CHECKING:
    import keras

LEGACY_LATENT = re.compile(r"^latent/vars/(\d+)$")


def is_legacy_vae(path: str | Path) -> bool:
    """Whether `path` holds a VAE saved by version 1 or 2."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    # A config.json nested past Python's recursion limit is not a version 2 model either.
    except (OSError, KeyError, ValueError, RecursionError, zipfile.BadZipFile):
        return False
    if not isinstance(config, dict):
        return False  # A damaged archive; loading the model reports it.
    inner = config.get("config", {})
    return (
        isinstance(inner, dict)
        and config.get("class_name") == "VAE"
        and ("latent" in inner or "intermediate_dim" in inner)
    )


def _read_weights(file) -> dict[str, np.ndarray]:
    weights: dict[str, np.ndarray] = {}

    def keep(name, item):
        if isinstance(item, h5py.Dataset):
            weights[name] = item[()]

    with h5py.File(file, "r") as store:
        store.visititems(keep)
    return weights


def _latent_values(old: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The old latent layer's variables, in their order."""
    indices = sorted(int(LEGACY_LATENT.match(path)[1]) for path in old if LEGACY_LATENT.match(path))
    return [old[f"latent/vars/{index}"] for index in indices]


def _part_variables(vae) -> list:
    """Today's posterior's variables, then the prior's, as the old latent layer held them."""
    return [
        variable
        for layer in (vae.posterior, vae.prior)
        for variable in layer.weights
        if "seed_generator" not in variable.path
    ]


def load_legacy_vae(path: str | Path, config: RunConfig) -> keras.Model:
    """The VAE of `config` with the weights (and optimizer state) of the old file at `path`."""
    from vae_mnist.model import ModelFileError, build_vae
    from vae_mnist.training import compile_vae

    with zipfile.ZipFile(path) as archive:
        old = _read_weights(archive.open("model.weights.h5"))
    vae = build_vae(config)
    if any(name.startswith("optimizer/") for name in old):
        compile_vae(vae, config, steps_per_epoch=1)
        vae.optimizer.build(vae.trainable_variables)
    latent = _latent_values(old)
    targets = _part_variables(vae)
    network_paths = [path for path in old if not LEGACY_LATENT.match(path)]
    with tempfile.TemporaryDirectory() as folder:
        current = Path(folder) / "current.weights.h5"
        vae.save_weights(current)
        missing = [path for path in network_paths if path not in _read_weights(current)]
        if missing or len(latent) != len(targets):
            what = missing[0] if missing else f"{len(latent)} latent variables"
            raise ModelFileError(
                f"{path}: not a model of its run's configuration (it holds {what}, which the "
                "model does not)"
            )
        merged = Path(folder) / "merged.weights.h5"
        with h5py.File(current, "r") as source, h5py.File(merged, "w") as target:
            source.visititems(lambda name, item: _copy(name, item, target))
            for name in network_paths:
                target[name][...] = old[name]
        vae.load_weights(merged)
    for variable, value in zip(targets, latent, strict=True):
        variable.assign(value)
    for layer in (vae.posterior, vae.prior):
        layer.part.variables_loaded()
    return vae


def _copy(name: str, item, target) -> None:
    if isinstance(item, h5py.Dataset):
        target.create_dataset(name, data=item[()])
    else:
        group = target.require_group(name)
        for key, value in item.attrs.items():
            group.attrs[key] = value
