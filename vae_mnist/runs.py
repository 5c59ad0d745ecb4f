"""The run folder's format: which file holds what, and how each is read and written.

A run folder holds, once training finishes::

    config.json     the RunConfig: the preset, one section per part, training
    run.json        progress, seed, library versions (and those of any continuation), timings
    history.csv     one row per finished epoch, numbered from 1 (written as each epoch ends)
    vae.keras       the whole VAE, every part
    encoder.keras   x -> the first head: z_mean for the Gaussian latent (the blog's ``encoder``)
    decoder.keras   z -> the decoded image (the blog's ``generator``)
    metrics.json    (after ``evaluate``) the test-set numbers

While training it also holds ``checkpoint/epoch-NNNN.keras``, the compiled VAE with its optimizer
state after the last finished epoch, which ``run.json`` names; and with ``--snapshot-every N``,
``snapshots/decoder-epoch-NNNN.keras``; with ``--tensorboard``, TensorBoard's event files
under ``tensorboard/``. Every file is written to a temporary name and renamed
into place, and ``run.json`` is renamed last, so whatever kills the process, the folder names
one consistent finished epoch to continue from.

Runs saved by version 2.0.0 and earlier numbered the epochs of ``history.csv`` and
``run.json`` from 0; they are read as numbered from 1, as everything else counts them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from vae_mnist.backend import keras
from vae_mnist.config import RunConfig
from vae_mnist.errors import JSON_READ_ERRORS, ConfigError, ModelFileError, RunError
from vae_mnist.files import atomic_write_text, read_text
from vae_mnist.flags import flat_settings
from vae_mnist.settings import check_number, setting_text

# The loss terms come first in history.csv, in this order; other logged values follow.
LEADING_HISTORY_COLUMNS = ("loss", "reconstruction_loss", "kl_loss")


@dataclass(frozen=True)
class RunPaths:
    """Where each file of a run lives."""

    folder: Path

    @property
    def config(self) -> Path:
        return self.folder / "config.json"

    @property
    def run_info(self) -> Path:
        return self.folder / "run.json"

    @property
    def history(self) -> Path:
        return self.folder / "history.csv"

    @property
    def vae(self) -> Path:
        return self.folder / "vae.keras"

    @property
    def encoder(self) -> Path:
        return self.folder / "encoder.keras"

    @property
    def decoder(self) -> Path:
        return self.folder / "decoder.keras"

    @property
    def metrics(self) -> Path:
        return self.folder / "metrics.json"

    def written_files(self) -> tuple[Path, ...]:
        """The files a run writes that hold its results, besides run.json and vae.keras, which
        say whose they are. Not config.json: a new run writes it just before run.json, so a
        folder may hold it alone after a failure between the two, and it holds no result."""
        return (self.history, self.encoder, self.decoder, self.metrics)

    def run_folders(self) -> tuple[Path, ...]:
        """The folders a run fills as it trains, which a new run clears: checkpoints, decoder
        snapshots and TensorBoard curves."""
        return (self.checkpoints, self.snapshots, self.tensorboard)

    @property
    def checkpoints(self) -> Path:
        return self.folder / "checkpoint"

    def checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch-{epoch:04d}.keras"

    @property
    def snapshots(self) -> Path:
        return self.folder / "snapshots"

    def snapshot(self, epoch: int) -> Path:
        return self.snapshots / f"decoder-epoch-{epoch:04d}.keras"

    def snapshot_epochs(self) -> list[tuple[int, Path]]:
        """``(epoch, decoder file)`` of each snapshot that training saved, by epoch."""
        found = []
        for path in self.snapshots.glob("decoder-epoch-*.keras"):
            number = path.stem.rsplit("-", 1)[1]
            if number.isdigit():
                found.append((int(number), path))
        return sorted(found)

    @property
    def figures(self) -> Path:
        """Where `plot` writes a run's figures unless told otherwise."""
        return self.folder / "figures"

    @property
    def tensorboard(self) -> Path:
        return self.folder / "tensorboard"


def library_versions() -> dict[str, str]:
    """The versions that decide whether a run can be repeated bit for bit."""
    versions = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "numpy": np.__version__,
        "backend": keras.backend.backend(),
    }
    backend_module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(
        versions["backend"]
    )
    if backend_module:
        with contextlib.suppress(ImportError, AttributeError):
            versions[backend_module] = __import__(backend_module).__version__
    versions["machine"] = f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores"
    return versions


def new_run_info(seed: int) -> dict[str, Any]:
    """The progress record of a run before its first epoch."""
    return {
        "status": "training",
        "seed": seed,
        "versions": library_versions(),
        "completed_epochs": 0,
        "checkpoint": None,
        "history": [],
        "epoch_seconds": [],
    }


def resumed_run_info(info: dict[str, Any]) -> dict[str, Any]:
    """The progress record `info` of an unfinished run, as training continues it: the failure
    of an earlier attempt forgotten and the versions that continue it noted."""
    # Records before version 3 also held the configuration, which config.json holds now.
    info = {key: value for key, value in info.items() if key not in ("config", "failed_epoch")}
    info["completed_epochs"] = int(info["completed_epochs"])
    record_continuation(info)
    return info


def extended_run_info(paths: RunPaths, info: dict[str, Any]) -> dict[str, Any]:
    """The progress record of a finished run that trains on to more epochs: unfinished again,
    continuing from the finished model."""
    return {**info, "status": "training", "checkpoint": paths.vae.name}


def record_epoch(
    paths: RunPaths, info: dict[str, Any], row: dict[str, float], seconds: float, checkpoint: Path
) -> str | None:
    """Note a finished epoch in `info` (its history row, its seconds, its checkpoint); return
    the checkpoint, relative to the folder, that the new one replaces (None where none)."""
    previous = info.get("checkpoint")
    info["history"].append(row)
    info["epoch_seconds"].append(seconds)
    info["completed_epochs"] = int(row["epoch"])
    info["checkpoint"] = str(checkpoint.relative_to(paths.folder))
    return previous if previous != info["checkpoint"] else None


def is_finished(info: dict[str, Any] | None) -> bool:
    """Whether a progress record (None where there is none) says its run finished."""
    return info is not None and info["status"] == "finished"


def is_unfinished(info: dict[str, Any] | None) -> bool:
    """Whether a progress record (None where there is none) says its run is still training."""
    return info is not None and info["status"] == "training"


def trained_backends(info: dict[str, Any] | None) -> str | None:
    """The backends a run trained on, its first then each continuation's (``"jax, then
    torch"``), or None where the record names none."""
    if not info:
        return None
    continued = info.get("continued")
    records = [info, *(continued if isinstance(continued, list) else [])]
    versions = [record.get("versions") for record in records if isinstance(record, dict)]
    names = [
        str(entry["backend"])
        for entry in versions
        if isinstance(entry, dict) and "backend" in entry
    ]
    return ", then ".join(dict.fromkeys(names)) or None


def has_nothing_to_continue(info: dict[str, Any]) -> bool:
    """Whether an unfinished run's record names no checkpoint: it stopped (or diverged) before
    its first epoch finished, so nothing of it can be continued or lost."""
    return is_unfinished(info) and info.get("checkpoint") is None


def record_failure(info: dict[str, Any], epoch: int) -> None:
    """Note in `info` the epoch (counted from 0) whose loss stopped being a number."""
    info["failed_epoch"] = epoch


def record_finished(info: dict[str, Any]) -> None:
    """Mark `info` finished, with the time its epochs took."""
    info["status"] = "finished"
    info["checkpoint"] = None
    info["train_seconds"] = float(sum(info["epoch_seconds"]))


def record_continuation(info: dict[str, Any]) -> None:
    """Note in the progress record `info` that training continues here with other versions.

    ``versions`` keeps the libraries the run started with; a run resumed or extended on another
    backend, library or machine appends ``{"after_epoch": N, "versions": ...}`` to
    ``continued``, so that the record says which epochs came from where.
    """
    continued = info.get("continued", [])
    versions = library_versions()
    latest = continued[-1]["versions"] if continued else info.get("versions")
    if versions != latest:
        entry = {"after_epoch": int(info["completed_epochs"]), "versions": versions}
        info["continued"] = [*continued, entry]


def read_run_info(paths: RunPaths) -> dict[str, Any] | None:
    """The progress record of a run folder, or None where there is none."""
    if not paths.run_info.exists():
        return None
    try:
        info = json.loads(read_text(paths.run_info))
    except JSON_READ_ERRORS as error:
        raise RunError(f"{paths.run_info}: unreadable progress record ({error})") from None
    if not isinstance(info, dict):
        raise RunError(f"{paths.run_info}: not a vae-mnist progress record (not a JSON object)")
    if "status" not in info:
        raise RunError(f"{paths.run_info}: not a vae-mnist progress record (no status)")
    problem = _progress_record_problem(info)
    if problem:
        # What the record says decides whether a finished model may be replaced: a record
        # that says something else must stop every command, not read as "not finished".
        raise RunError(f"{paths.run_info}: not a vae-mnist progress record ({problem})")
    history = info.setdefault("history", [])
    if history and history[0].get("epoch") == 0:
        # Numbered from 0 by version 2.0.0 or earlier; a resumed run rewrites it from 1.
        info["history"] = [{**row, "epoch": row["epoch"] + 1} for row in history]
    epochs = [row["epoch"] for row in info["history"]]
    # The lengths first: the count may be any whole number, too large for a list of epochs.
    if len(epochs) != info["completed_epochs"] or epochs != list(range(1, len(epochs) + 1)):
        # A continued run writes history.csv again from this record, so it must hold each
        # finished epoch once, in order.
        raise RunError(
            f"{paths.run_info}: not a vae-mnist progress record (its history does not hold "
            f"epochs 1 to {info['completed_epochs']}, the epochs it says are finished)"
        )
    return info


RUN_STATUSES = ("training", "finished")


def _progress_record_problem(info: dict[str, Any]) -> str | None:
    """What is wrong with a progress record's fields, or None where they are as written."""
    status, completed = info["status"], info.get("completed_epochs")
    if status not in RUN_STATUSES:
        return f"status {status!r}, where a run is {' or '.join(map(repr, RUN_STATUSES))}"
    if isinstance(completed, bool) or not isinstance(completed, int) or completed < 0:
        return f"completed_epochs {completed!r}, where a count of epochs is expected"
    checkpoint = info.get("checkpoint")
    if checkpoint is not None and not _is_inside_the_folder(checkpoint):
        return f"checkpoint {checkpoint!r}, where a file of the run folder is expected"
    if status == "training" and completed and checkpoint is None:
        # Training names a checkpoint from its first finished epoch on: read as "nothing to
        # continue", such a record would let a finished model be trained over unasked.
        return f"an unfinished run with {epochs_text(completed)} finished and no checkpoint"
    history = info.get("history", [])
    if not isinstance(history, list) or not all(
        isinstance(row, dict) and _is_number(row.get("epoch")) for row in history
    ):
        return "history is not a list of epochs"
    # What an epoch logged is numbers (a loss may be NaN, written by json as NaN).
    if not all(_is_number(value) for row in history for value in row.values()):
        return "history holds a value that is not a number"
    seconds = info.get("epoch_seconds")
    if not isinstance(seconds, list) or not all(_is_number(value) for value in seconds):
        return "epoch_seconds is not a list of seconds"
    continued = info.get("continued", [])
    if not isinstance(continued, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("versions"), dict) for entry in continued
    ):
        return "continued is not a list of continuations"
    return None


def _is_inside_the_folder(name: Any) -> bool:
    """Whether `name` is a relative path that stays inside the run folder."""
    if not isinstance(name, str) or not name:
        return False
    # Either separator: a record written on Windows names its checkpoint with backslashes.
    path = PurePosixPath(name.replace("\\", "/"))
    return not path.is_absolute() and ".." not in path.parts


def check_files_can_be_written(files: tuple[Path, ...]) -> None:
    """Refuse, before any work, where a folder stands in the place of a file to be written
    (the write would fail only after the work, and lose it)."""
    for path in files:
        if path.is_dir():
            raise RunError(f"{path} is a folder, where a file of the run is written: move it")


def read_saved_config(paths: RunPaths) -> RunConfig:
    """The run's configuration from ``config.json`` (of any version, converted)."""
    return RunConfig.load(paths.config)


def config_in_model(model_file: Path) -> RunConfig | None:
    """The configuration the model in `model_file` (a run's ``vae.keras`` or a checkpoint) was
    saved with, read from the archive's own ``config.json`` without loading the model; None
    where there is no readable model of a version that embeds one (the commands that load the
    model report those)."""
    import zipfile

    try:
        with zipfile.ZipFile(model_file) as archive:
            saved = json.loads(archive.read("config.json"))
        return RunConfig.from_dict(saved["config"]["config"])
    except Exception:  # A damaged archive fails in many ways; loading the model reports it.
        return None


# A resumed run may change its epoch count, besides each part's own `resumable_settings`, and
# its learning rate (to continue more gently after a divergence) where the optimizer takes a
# new one. Everything else must match to continue.
RESUMABLE_CHANGES = ("epochs",)


def settings_that_differ(saved: RunConfig, wanted: RunConfig) -> list[str]:
    """The settings by flag name, other than the ones a resumed run may change, that differ."""
    saved_values, wanted_values = _compared_settings(saved), _compared_settings(wanted)
    names = list(dict.fromkeys([*saved_values, *wanted_values]))
    # A part of another kind differs in its kind, which is never resumable.
    resumable = {
        *RESUMABLE_CHANGES,
        *(name for part in wanted.parts() for name in part.resumable_settings),
    }
    # A scheduled run's optimizer keeps the schedule it was saved with, so a new learning rate
    # would be written into config.json without ever being used.
    if wanted.optimizer.resumes_with_new_learning_rate:
        resumable.add("learning_rate")
    return [
        name
        for name in names
        if name not in resumable and saved_values.get(name) != wanted_values.get(name)
    ]


def _compared_settings(config: RunConfig) -> dict[str, Any]:
    """Every setting by flag name; the upper layers' one by one (`_fixed_upper_settings`)."""
    values = flat_settings(config)
    values.pop("upper_layers", None)
    return {**values, **_fixed_upper_settings(config)}


def _fixed_upper_settings(config: RunConfig) -> dict[str, Any]:
    """The upper layers' settings other than their parts' resumable ones, each named by its
    layer (the first upper layer is layer 2): ``layer 2's groups``, ``layer 2's posterior``."""
    flat: dict[str, Any] = {}
    for number, layer in enumerate(config.upper_layers, start=2):
        for family, part in (("network", layer.network), ("posterior", layer.posterior)):
            for name, value in part.get_config().items():
                if name not in part.resumable_settings:
                    flat[f"layer {number}'s {family if name == 'kind' else name}"] = value
    return flat


def describe_differences(saved: RunConfig, wanted: RunConfig, names: list[str]) -> str:
    """``batch_size 100 (saved) against 50`` for each name, joined by commas."""
    saved_values, wanted_values = _compared_settings(saved), _compared_settings(wanted)
    return ", ".join(
        f"{name} {setting_text(saved_values.get(name, '-'))} (saved) against "
        f"{setting_text(wanted_values.get(name, '-'))}"
        for name in names
    )


def check_model_agrees(paths: RunPaths, config: RunConfig, model_file: Path) -> None:
    """Refuse a model file saved with other settings than `config`, the run's ``config.json``
    (a file copied in, or a configuration edited by hand): a command would use one model and
    describe it as another."""
    modelled = config_in_model(model_file)
    if modelled is None:
        # No configuration inside (a model of version 2 or earlier, or an unreadable file,
        # which loading it reports).
        return
    differing = settings_that_differ(modelled, config)
    if differing:
        # The first few name the problem; a model of another kind differs in dozens.
        shown = describe_differences(modelled, config, differing[:3])
        more = f", and {len(differing) - 3} more" if len(differing) > 3 else ""
        raise RunError(
            f"{model_file} was saved with other settings than {paths.config} gives: "
            f"{shown}{more}; restore the run's own config.json, or train into another folder"
        )


def write_run_info(paths: RunPaths, info: dict[str, Any]) -> None:
    atomic_write_text(paths.run_info, json.dumps(info, indent=2) + "\n")


def write_progress(paths: RunPaths, info: dict[str, Any]) -> None:
    """Write the progress record `info`, then the history it holds as history.csv."""
    # run.json is the commit point: until it names a new checkpoint, the old one rules, and a
    # history.csv ahead of it would describe epochs the record does not have.
    write_run_info(paths, info)
    atomic_write_text(paths.history, history_csv_text(info["history"]))


def history_columns(logged: list[str]) -> list[str]:
    """The columns of history.csv for an epoch's logged names: the terms, then validation."""
    training = [name for name in logged if not name.startswith("val_")]
    ordered = [name for name in LEADING_HISTORY_COLUMNS if name in training]
    ordered += sorted(name for name in training if name not in LEADING_HISTORY_COLUMNS)
    validation = [f"val_{name}" for name in ordered if f"val_{name}" in logged]
    return ["epoch", *ordered, *validation]


def history_csv_text(rows: list[dict[str, float]]) -> str:
    buffer = io.StringIO()
    columns = list(rows[0]) if rows else ["epoch", *LEADING_HISTORY_COLUMNS]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: row.get(column, "") for column in columns})
    return buffer.getvalue()


class EmptyHistoryError(RunError):
    """A history.csv of its header alone: written before the first epoch finished."""


def read_history(path: str | Path) -> dict[str, np.ndarray]:
    """The columns of a ``history.csv`` as float arrays, the epochs numbered from 1.

    An empty cell reads as NaN. A file that cannot be read as numbers under its header, or
    whose rows are not epochs 1, 2, ... in order, is a `RunError` naming the file and the
    line; one with no finished epoch, `EmptyHistoryError`.
    """
    header, rows = _history_rows(path)
    if not rows:
        raise EmptyHistoryError(f"{path}: no finished epoch in the training history")
    if "epoch" not in header:
        raise RunError(f"{path}: no epoch column in the training history")
    columns = {key: np.array([row[key] for row in rows]) for key in header}
    epochs = columns["epoch"]
    # An epoch is a count, which the figures put on an axis (an empty cell reads as NaN).
    with np.errstate(invalid="ignore"):
        counts = np.isfinite(epochs) & (epochs >= 0) & (epochs == np.round(epochs))
    if not counts.all():
        row = int(np.argmin(counts))
        raise RunError(f"{path}: epoch {epochs[row]} of row {row + 1} is not a count of epochs")
    if columns["epoch"][0] == 0:
        # Numbered from 0 by version 2.0.0 or earlier.
        columns["epoch"] = columns["epoch"] + 1
    expected = np.arange(1, len(rows) + 1)
    if not np.array_equal(columns["epoch"], expected):
        row = int(np.argmax(columns["epoch"] != expected))
        raise RunError(
            f"{path}: row {row + 1} is epoch {columns['epoch'][row]:g}, where the history holds "
            "each finished epoch once, in order"
        )
    return columns


def read_run_history(paths: RunPaths, info: dict[str, Any] | None) -> dict[str, np.ndarray]:
    """A run's ``history.csv`` (`read_history`), holding as many epochs as its progress record
    `info` (from `read_run_info`; None for a run saved without one) says it finished.

    Training writes the history from the record after every epoch, so a history of other
    epochs was cut short or edited: a `RunError` saying so, rather than curves and counts
    that disagree with the run.
    """
    recorded = int(info["completed_epochs"]) if info is not None else None
    try:
        history = read_history(paths.history)
    except EmptyHistoryError:
        if not recorded:
            raise
        history = {"epoch": np.zeros(0)}
    held = len(history["epoch"])
    if recorded is not None and held != recorded:
        raise RunError(
            f"{paths.history}: holds {epochs_text(held)} where {paths.run_info.name} records "
            f"{epochs_text(recorded)} (cut short or edited)"
        )
    return history


def epochs_text(count: int) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{count} epoch" if count == 1 else f"{count} epochs"


def _history_rows(path: str | Path) -> tuple[list[str], list[dict[str, float]]]:
    """The header of a ``history.csv`` and its rows as numbers by column."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            reader = csv.reader(stream)
            header = next(reader, [])
            _check_history_header(path, header)
            # A blank line is no epoch; the csv module reads it as a row of no fields.
            rows = [
                _history_row(path, reader.line_num, header, fields) for fields in reader if fields
            ]
    except OSError as error:
        raise RunError(f"{path}: cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise RunError(f"{path}: not a training history (not UTF-8 text)") from None
    except csv.Error as error:
        raise RunError(f"{path}: not a training history ({error})") from None
    return header, rows


def _check_history_header(path: str | Path, header: list[str]) -> None:
    """Refuse a header that names a column twice: its rows would keep only one of the two
    values, silently."""
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise RunError(f"{path}: the header names {', '.join(repeated)} more than once")


def _history_row(
    path: str | Path, line: int, header: list[str], fields: list[str]
) -> dict[str, float]:
    """One row of a ``history.csv`` as numbers by column; an empty cell is NaN."""
    if len(fields) != len(header):
        # Training writes every column of every row (empty where an epoch did not log it), so
        # a shorter row is a file cut short.
        raise RunError(
            f"{path}: line {line} has {len(fields)} values, but the header names "
            f"{len(header)} columns"
        )
    row = {}
    for key, text in zip(header, fields, strict=True):
        try:
            row[key] = float(text or "nan")
        except ValueError:
            raise RunError(f"{path}: line {line}: {key} is {text!r}, not a number") from None
    return row


def write_metrics(paths: RunPaths, metrics: dict[str, Any]) -> None:
    atomic_write_text(paths.metrics, json.dumps(metrics, indent=2) + "\n")


# The keys of metrics.json that the tables show (evaluate's and explore's, compare's), each a
# number. Its other keys, lists (classes_used) and strings (log_partition_method) among them,
# are shown by no table and left as written.
NUMERIC_METRICS = frozenset(
    {
        "negative_elbo",
        "reconstruction",
        "kl",
        "iwae_negative_log_likelihood",
        "iwae_samples",
        "knn_accuracy",
        "active_units",
        "mean_classes_used",
        "log_partition",
    }
)


# The metrics that count something (samples, units): whole numbers, 0 or more.
COUNT_METRICS = frozenset({"iwae_samples", "active_units"})


def read_metrics(paths: RunPaths) -> dict[str, Any] | None:
    """The evaluate command's numbers, or None where the run was not evaluated.

    A file that is not a JSON object, whose `NUMERIC_METRICS` are not numbers, or whose
    `COUNT_METRICS` are not whole numbers of 0 or more, is a `RunError` naming the file (and
    the key).
    """
    if not paths.metrics.exists():
        return None
    try:
        metrics = json.loads(read_text(paths.metrics))
    except JSON_READ_ERRORS as error:
        raise RunError(f"{paths.metrics}: unreadable metrics ({error})") from None
    if not isinstance(metrics, dict):
        raise RunError(f"{paths.metrics}: not a vae-mnist metrics record (not a JSON object)")
    for key in sorted(NUMERIC_METRICS & metrics.keys()):
        if not _is_number(metrics[key]):
            raise RunError(f"{paths.metrics}: {key} is {json.dumps(metrics[key])}, not a number")
    for key in sorted(COUNT_METRICS & metrics.keys()):
        try:
            check_number(key, "int", {}, metrics[key])
        except ConfigError:
            raise RunError(
                f"{paths.metrics}: {key} is {json.dumps(metrics[key])}, not a count"
            ) from None
    return metrics


def _is_number(value: Any) -> bool:
    # JSON's true and false read as bool, which Python counts as an int; a whole number of
    # hundreds of digits reads as an int that no float holds.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


@dataclass
class TrainedRun:
    """A finished run: its files, its configuration, its whole VAE and its progress record
    (``run.json`` as `read_run_info` read it; None for a run saved without one)."""

    paths: RunPaths
    config: RunConfig
    vae: Any
    info: dict[str, Any] | None = None


def check_trained_run(folder: str | Path) -> RunPaths:
    """The paths of a run folder that holds a trained model, or `ModelFileError`; reads none."""
    paths = RunPaths(Path(folder))
    check_run_folder(paths, ModelFileError)
    if not paths.vae.exists():
        raise ModelFileError(
            f"{paths.folder} holds no trained model (no vae.keras); {_next_step(paths)}"
        )
    return paths


def check_run_folder(paths: RunPaths, error: type[Exception] = RunError) -> None:
    """`error` in one line unless `paths.folder` is a folder: missing, or a file."""
    if paths.folder.is_file():
        raise error(f"{paths.folder} is a file, not a run folder")
    if not paths.folder.is_dir():
        raise error(f"{paths.folder}: no such run folder")


def _next_step(paths: RunPaths) -> str:
    """What makes a run folder without a model hold one: finishing the run it holds, if any."""
    try:
        info = read_run_info(paths)
    except RunError:
        info = None
    if is_unfinished(info) and not has_nothing_to_continue(info):
        epochs = info["completed_epochs"]
        return f"it holds an unfinished run ({epochs_text(epochs)} done): continue training it"
    return "train into it first"


def load_trained_run(
    folder: str | Path, check_config: Callable[[RunConfig], None] | None = None
) -> TrainedRun:
    """Load ``config.json`` and ``vae.keras`` of a finished run folder (safe mode on);
    `check_config`, given, may refuse the configuration before the model is loaded."""
    paths = check_trained_run(folder)
    from vae_mnist.model import VAE, load_model

    # A progress record that says something else than a run's stops every command.
    info = read_run_info(paths)
    config = read_saved_config(paths)
    if check_config is not None:
        check_config(config)
    check_model_agrees(paths, config, paths.vae)
    vae = load_model(paths.vae, config)
    if not isinstance(vae, VAE):
        # A Keras model of another kind loads, but has none of the parts the commands ask.
        raise ModelFileError(f"{paths.vae}: a Keras model, but not a vae-mnist VAE")
    return TrainedRun(paths, config, vae, info)
