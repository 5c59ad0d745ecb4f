"""`vae-mnist train`: the run's configuration from a preset, the flags and any unfinished run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vae_mnist.config import RunConfig, flag_fields
from vae_mnist.data import load_dataset
from vae_mnist.files import check_can_create_folder
from vae_mnist.monitoring import tensorboard_callbacks
from vae_mnist.presets import preset_config
from vae_mnist.runs import RunError, RunPaths, read_run_info
from vae_mnist.training import describe_differences, settings_that_differ, train


def flag_changes(arguments: argparse.Namespace) -> dict:
    """The settings that the command line gives, by name."""
    return {
        field.name: getattr(arguments, field.name)
        for _, field in flag_fields()
        if getattr(arguments, field.name, None) is not None
    }


def resolve_config(arguments: argparse.Namespace, folder: Path) -> tuple[RunConfig, int]:
    """The configuration to train with, and the epochs an unfinished run already finished.

    A new run starts from its preset (``keras2017`` unless ``--preset`` names another) and the
    flags; an unfinished run continues from its saved settings, which the flags may change only
    where a resumed run may (``--epochs``, ``--learning-rate``).
    """
    changes = flag_changes(arguments)
    info = None
    if not (arguments.restart or arguments.overwrite) and folder.is_dir():
        info = read_run_info(RunPaths(folder))
    if info is None or info.get("status") != "training":
        return preset_config(arguments.preset or "keras2017", **changes), 0
    saved = RunConfig.from_dict(info["config"])
    base = preset_config(arguments.preset) if arguments.preset else saved
    wanted = base.replace(**changes)
    differing = settings_that_differ(saved, wanted)
    if differing:
        raise RunError(
            f"{folder} holds an unfinished run with other settings: "
            f"{describe_differences(saved, wanted, differing)}; run it with the saved settings "
            "to continue, or pass --restart to start over"
        )
    return wanted, int(info.get("completed_epochs") or 0)


def run(arguments: argparse.Namespace, program: str) -> None:
    folder = Path(arguments.out)
    # Refuse an unusable folder before the data load, and create nothing until the data is good.
    check_can_create_folder(folder)
    config, completed = resolve_config(arguments, folder)
    data = load_dataset(config.data.dataset, arguments.data)
    if completed:
        print(
            f"{program}: continuing the unfinished run in {folder} after epoch {completed}",
            file=sys.stderr,
        )
    result = train(
        config,
        data,
        folder,
        overwrite=arguments.overwrite,
        restart=arguments.restart,
        verbose=0 if arguments.quiet else "auto",
        callbacks=tensorboard_callbacks(folder, config) if arguments.tensorboard else None,
    )
    print(
        f"{program}: trained {result['completed_epochs']} epochs into {folder} "
        f"(val_loss {result['history'][-1]['val_loss']:.2f})"
        if result["history"]
        else f"{program}: nothing to train in {folder}"
    )
    if arguments.tensorboard:
        print(
            f"{program}: TensorBoard logs in {folder / 'tensorboard'} "
            f"(see them with: tensorboard --logdir {folder.parent})"
        )
