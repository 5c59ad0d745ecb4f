"""The `plot` command: loads a trained run and the test set, then draws the asked figures."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from vae_mnist import plotting
from vae_mnist.config import UsageError, VAEConfig
from vae_mnist.files import check_writable_folder
from vae_mnist.model import ModelFileError, load_model
from vae_mnist.training import RunPaths

NEEDS_TEST_SET = {"latent", "decode", "reconstructions", "interpolation", "density", "all"}
# Figures that lay the latent space out on a plane, so they need exactly two dimensions.
PLANAR_KINDS = ("latent", "manifold", "density", "animation")
RECONSTRUCTION_COUNT = 10
SAMPLE_ROWS = 10


@dataclass
class TrainedRun:
    """The blog's two models of a finished run, and its configuration."""

    paths: RunPaths
    config: VAEConfig
    encoder: keras.Model  # x -> z_mean
    decoder: keras.Model  # z -> x̂


def load_trained_run(folder: str | Path) -> TrainedRun:
    """Load ``encoder.keras``, ``decoder.keras`` and ``config.json`` of a run folder."""
    paths = RunPaths(Path(folder))
    if not paths.folder.is_dir():
        raise ModelFileError(f"{paths.folder}: no such run folder")
    if not paths.decoder.exists() or not paths.encoder.exists():
        raise ModelFileError(
            f"{paths.folder} holds no trained model (no encoder.keras and decoder.keras); "
            "train into it first"
        )
    config = VAEConfig.load(paths.config)
    return TrainedRun(paths, config, load_model(paths.encoder), load_model(paths.decoder))


def _check_index(index: int, count: int) -> int:
    if not 0 <= index < count:
        raise UsageError(f"--index {index} is outside the test set (0..{count - 1})")
    return index


def _z_name(z: np.ndarray) -> str:
    # Keep the name to characters every file system accepts.
    return "decode_z_" + "_".join(re.sub(r"[^0-9.\-]", "", f"{value:.2f}") for value in z)


def make_figures(arguments: argparse.Namespace) -> list[Path]:
    """Draw the figures that the `plot` command asks for; return their paths."""
    kind = arguments.kind
    run = load_trained_run(arguments.run)
    out = check_writable_folder(arguments.out)
    if arguments.z is not None and len(arguments.z) != run.config.latent_dim:
        raise UsageError(
            f"--z needs {run.config.latent_dim} numbers (one per latent dimension), "
            f"got {len(arguments.z)}"
        )
    planar = run.config.latent_dim == 2
    if kind in PLANAR_KINDS and not planar:
        raise UsageError(
            f"'{kind}' draws a 2-D latent space, and this run's has {run.config.latent_dim} "
            "dimensions"
        )
    if kind == "all" and not planar:
        print(f"a {run.config.latent_dim}-D latent space: no {', '.join(PLANAR_KINDS)} figures")

    def wanted(name: str) -> bool:
        return kind == name or (kind == "all" and (planar or name not in PLANAR_KINDS))

    images = labels = None
    if kind in NEEDS_TEST_SET and not (kind == "decode" and arguments.z is not None):
        from vae_mnist.data import load_mnist, prepare_images

        _, (test_images, labels) = load_mnist(arguments.data)
        images = prepare_images(test_images)
        for index in list(arguments.index if kind in ("decode", "all") else []) + (
            [arguments.from_index, arguments.to_index] if kind in ("interpolation", "all") else []
        ):
            _check_index(index, len(images))

    written: list[Path] = []
    z_mean = None
    if images is not None:
        # The whole test set in one call: the scatter, the density and the decodes share it.
        z_mean = plotting.predict(run.encoder, images)

    if wanted("latent"):
        written.append(plotting.plot_latent_scatter(z_mean, labels, out / "latent_scatter.png"))
    if wanted("manifold"):
        written.append(plotting.plot_manifold(run.decoder, out / "manifold.png", n=arguments.n))
    if wanted("decode"):
        written.extend(_decode(run, arguments, images, labels, z_mean, out))
    if wanted("reconstructions"):
        chosen = np.arange(min(RECONSTRUCTION_COUNT, len(images)))
        decoded = plotting.predict(run.decoder, z_mean[chosen])
        written.append(
            plotting.plot_reconstructions(images[chosen], decoded, out / "reconstructions.png")
        )
    if wanted("samples"):
        rng = np.random.default_rng(arguments.seed)
        z = rng.standard_normal((SAMPLE_ROWS * SAMPLE_ROWS, run.config.latent_dim))
        decoded = plotting.predict(run.decoder, z.astype(np.float32))
        written.append(plotting.plot_samples(decoded, out / "samples.png", rows=SAMPLE_ROWS))
    if wanted("interpolation"):
        start, end = z_mean[arguments.from_index], z_mean[arguments.to_index]
        weights = np.linspace(0.0, 1.0, arguments.steps, dtype=np.float32)[:, None]
        path_points = (1.0 - weights) * start + weights * end  # (steps, latent_dim)
        decoded = plotting.predict(run.decoder, path_points)
        title = (
            f"test image {arguments.from_index} (a {labels[arguments.from_index]}) to "
            f"test image {arguments.to_index} (a {labels[arguments.to_index]})"
        )
        written.append(plotting.plot_interpolation(decoded, out / "interpolation.png", title))
    if wanted("curves"):
        if not run.paths.history.exists():
            raise ModelFileError(f"{run.paths.history}: no training history in the run")
        history = plotting.read_history(run.paths.history)
        written.append(plotting.plot_training_curves(history, out / "training_curves.png"))
    if wanted("density"):
        written.append(plotting.plot_latent_density(z_mean, out / "latent_density.png"))
    if wanted("animation"):
        animation = _animation(run, arguments, out, required=kind == "animation")
        written.extend(animation)
    for path in written:
        print(f"wrote {path}")
    return written


def _decode(
    run: TrainedRun,
    arguments: argparse.Namespace,
    images: np.ndarray | None,
    labels: np.ndarray | None,
    z_mean: np.ndarray | None,
    out: Path,
) -> list[Path]:
    """Decode test images' z_mean (or a given z) and save each beside its original."""
    if arguments.z is not None and arguments.kind == "decode":
        z = np.array([arguments.z], dtype=np.float32)  # (1, latent_dim)
        decoded = plotting.predict(run.decoder, z)
        print(f"z = {z[0].tolist()}")
        name = _z_name(z[0])
        return [
            plotting.plot_decoded_beside_original(
                None, decoded[0], z[0], out / f"{name}.png", "decoded from a chosen point"
            )
        ]
    indices = list(arguments.index)
    chosen = z_mean[indices]  # (len(indices), latent_dim)
    decoded = plotting.predict(run.decoder, chosen)
    written = []
    for position, index in enumerate(indices):
        print(f"test image {index} (a {labels[index]}): z = {chosen[position].tolist()}")
        written.append(
            plotting.plot_decoded_beside_original(
                images[index],
                decoded[position],
                chosen[position],
                out / f"decode_{index}.png",
                f"test image {index} (a {labels[index]})",
            )
        )
    return written


def _animation(
    run: TrainedRun, arguments: argparse.Namespace, out: Path, required: bool
) -> list[Path]:
    """The manifold as it formed, from the decoder snapshots that training saved."""
    snapshots = sorted(run.paths.snapshots.glob("decoder-epoch-*.keras"))
    if not snapshots:
        if required:
            raise ModelFileError(
                f"{run.paths.snapshots}: no decoder snapshots; train with --snapshot-every N"
            )
        print("no decoder snapshots in the run (train with --snapshot-every N): no manifold.gif")
        return []
    frames, epochs = [], []
    snapshots = [snapshots[position] for position in plotting.choose_frames(len(snapshots))]
    for snapshot in snapshots:
        frames.append(plotting.decode_manifold(load_model(snapshot), arguments.n))
        epochs.append(int(snapshot.stem.rsplit("-", 1)[1]))
    return [plotting.save_manifold_animation(frames, epochs, out / "manifold.gif")]
