"""`vae-mnist train`: the run's configuration from a preset, the flags and any unfinished run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vae_mnist.config import DEFAULT_PRESET, RunConfig
from vae_mnist.errors import UsageError
from vae_mnist.files import check_can_create_folder, removed_if_left_empty
from vae_mnist.flags import ALIASES, kind_choices, setting_flags
from vae_mnist.presets import preset_config
from vae_mnist.runs import (
    RunPaths,
    epochs_text,
    is_finished,
    is_unfinished,
    read_run_info,
    read_saved_config,
)


def flag_changes(arguments: argparse.Namespace) -> dict:
    """The kinds and settings that the command line gives, by flag name."""
    names = [*kind_choices(), *setting_flags(), *ALIASES]
    values = {name: getattr(arguments, name) for name in names}
    return {name: value for name, value in values.items() if value is not None}


def resolve_config(arguments: argparse.Namespace, folder: Path) -> tuple[RunConfig, int]:
    """The configuration to train with, and the epochs an unfinished run already finished.

    A new run starts from its preset (``keras2017`` unless ``--preset`` names another) and the
    flags; an unfinished run (or a finished one with ``--extend``) starts from its saved
    settings, and `train` decides whether the flags let it continue
    (`vae_mnist.training.decide_resume`).
    """
    changes = flag_changes(arguments)
    paths, info = RunPaths(folder), None
    if not (arguments.restart or arguments.overwrite) and folder.is_dir():
        info = read_run_info(paths)
    if not (is_unfinished(info) or (arguments.extend and is_finished(info))):
        return preset_config(arguments.preset or DEFAULT_PRESET, **changes), 0
    saved = read_saved_config(paths)
    base = preset_config(arguments.preset) if arguments.preset else saved
    return base.replace(**changes), info["completed_epochs"]


def run(arguments: argparse.Namespace, program: str) -> None:
    folder = Path(arguments.out)
    # Refuse an unusable folder before the data load, and create nothing until the data is good.
    check_can_create_folder(folder)
    with removed_if_left_empty(folder):
        _train(arguments, program, folder)


def _train(arguments: argparse.Namespace, program: str, folder: Path) -> None:
    config, completed = resolve_config(arguments, folder)
    from vae_mnist.monitoring import tensorboard_callbacks
    from vae_mnist.training import decide_resume, train

    # Every refusal of the folder (a finished run, other settings of an unfinished one) comes
    # before the data load, which may be a download; `train` decides the same again.
    paths = RunPaths(folder)
    if arguments.tensorboard and paths.tensorboard.exists() and not paths.tensorboard.is_dir():
        raise UsageError(
            f"{paths.tensorboard} is a file, where --tensorboard writes its logs: move it"
        )
    resumed = decide_resume(paths, config, arguments.overwrite, arguments.restart, arguments.extend)
    data = config.data.load(arguments.data)
    # Say "continuing" only where the run will continue.
    if completed and resumed:
        action = (
            f"extending the run in {folder} after epoch {completed} "
            f"to epoch {config.training.epochs}"
            if arguments.extend
            else f"continuing the unfinished run in {folder} after epoch {completed}"
        )
        print(f"{program}: {action}", file=sys.stderr)

    result = train(
        config,
        data,
        folder,
        overwrite=arguments.overwrite,
        restart=arguments.restart,
        extend=arguments.extend,
        verbose=0 if arguments.quiet else "auto",
        callbacks=tensorboard_callbacks(folder, config) if arguments.tensorboard else None,
    )
    # A run recorded by hand (or by another program) may lack a validation loss.
    last = result["history"][-1] if result["history"] else {}
    validation = f" (val_loss {last['val_loss']:.2f})" if "val_loss" in last else ""
    print(
        f"{program}: trained {epochs_text(result['completed_epochs'])} into {folder}{validation}"
        if result["history"]
        else f"{program}: nothing to train in {folder}"
    )
    if arguments.tensorboard:
        print(
            f"{program}: TensorBoard logs in {paths.tensorboard} "
            f"(see them with: tensorboard --logdir {folder.parent})"
        )
