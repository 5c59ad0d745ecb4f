"""Shared fixtures: small MNIST-shaped data sets written by the tests themselves."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPOSITORY = Path(__file__).resolve().parent.parent


def make_arrays(train: int = 300, test: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """Random digit-like data: blobs whose position depends on the label, so it can be learnt."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in (("train", train), ("test", test)):
        labels = rng.integers(0, 10, count).astype(np.uint8)
        images = rng.integers(0, 40, (count, 28, 28)).astype(np.uint8)
        for index, label in enumerate(labels):
            row, column = 4 + 2 * (label % 5), 4 + 8 * (label // 5)
            images[index, row : row + 10, column : column + 10] = 255
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels
    return arrays


def gaussian_log_density(z, mean, log_var):
    """log N(z; mean, exp(log_var)) summed over the last axis, in numpy: the tests' reference."""
    return -0.5 * np.sum(np.log(2 * np.pi) + log_var + (z - mean) ** 2 / np.exp(log_var), axis=-1)


def set_rbm_weights(prior, bias1, bias2, coupling) -> None:
    """Give an RBM prior these weights, and refresh its logged log Z as training's callback
    does after the weights move (the step enumerates it only for the exact gradient)."""
    weights = (prior.bias1, prior.bias2, prior.coupling)
    for weight, value in zip(weights, (bias1, bias2, coupling), strict=True):
        weight.assign(np.asarray(value, "float32"))
    prior.log_partition.assign(prior.refreshed_log_partition(0))


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", size) for size in array.shape
    )
    content = header + array.astype(np.uint8).tobytes()
    if compress:
        import gzip

        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as stream:
            stream.write(content)
    else:
        path.write_bytes(content)
    return path


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    return make_arrays()


@pytest.fixture
def npz_file(tmp_path, arrays) -> Path:
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="session")
def session_npz(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, **make_arrays(train=400, test=100))
    return path


def run_command(
    *arguments: str,
    script: str | None = None,
    environment: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """Run `vae-mnist` (or one of the thin scripts) in a fresh Python process.

    The data variable is removed unless given, so no test reaches for a download or for the
    full data set by accident.
    """
    env = {key: value for key, value in os.environ.items() if key != "VAE_MNIST_DATA"}
    env.update(environment or {})
    command = (
        [sys.executable, str(REPOSITORY / "scripts" / script)]
        if script
        else [sys.executable, "-m", "vae_mnist.cli"]
    )
    return subprocess.run(
        [*command, *arguments], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, session_npz) -> Path:
    """One tiny finished run, trained in a subprocess, shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("runs") / "tiny"
    result = run_command(
        "train",
        "--data",
        str(session_npz),
        "--epochs",
        "2",
        "--out",
        str(folder),
        "--snapshot-every",
        "1",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    return folder


def folder_state(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its content, to show that nothing changed."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
