"""`vae-mnist compare`: several runs side by side, and their validation curves overlaid.

The table has one column per run and one row per setting that differs between the runs, then
the final training and validation losses and the `evaluate` numbers where a run has them. No
model is loaded: everything comes from ``config.json``, ``run.json``, ``history.csv`` and
``metrics.json``, and a warning from the settings saved inside ``vae.keras`` (read from the
archive alone) where ``config.json`` was edited to disagree with the model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vae_mnist.config import RunConfig, UsageError
from vae_mnist.files import check_can_create_folder
from vae_mnist.flags import flat_settings
from vae_mnist.metric_table import TABLE_ROWS, metric_rows
from vae_mnist.runs import (
    EmptyHistoryError,
    RunError,
    RunPaths,
    check_model_agrees,
    check_run_folder,
    is_finished,
    read_metrics,
    read_run_history,
    read_run_info,
    read_saved_config,
    trained_backends,
)
from vae_mnist.settings import setting_text

# The history.csv columns whose final epoch's value is a row, `final COLUMN`.
LOSS_COLUMNS = ("loss", "val_loss", "val_reconstruction_loss", "val_kl_loss")
MISSING = "-"


@dataclass
class RunSummary:
    """What `compare` reads of one run folder."""

    name: str
    config: RunConfig
    status: str
    history: dict[str, np.ndarray] | None
    metrics: dict[str, Any] | None
    backends: str = MISSING  # "jax", or "jax, then torch" for a run continued on another
    # `check_model_agrees`' one-line refusal where config.json and the finished model
    # disagree; None where they agree.
    model_disagreement: str | None = None


def read_summary(folder: str | Path, name: str) -> RunSummary:
    """A run folder's settings, progress, history and metrics; one-line errors where unusable."""
    paths = RunPaths(Path(folder))
    check_run_folder(paths)
    if not paths.config.exists():
        raise RunError(f"{paths.folder}: not a run folder (no config.json)")
    config = read_saved_config(paths)
    info = read_run_info(paths)
    history = None
    # A run whose record counts finished epochs must have their history, as `plot` asks.
    if paths.history.exists() or (info is not None and info["completed_epochs"]):
        try:
            history = read_run_history(paths, info)
        except EmptyHistoryError:
            # Written before the first epoch finished: nothing to show yet. Any other RunError,
            # a history that cannot be read, is reported in one line.
            history = None
    status = info["status"] if info else "unknown"
    return RunSummary(
        name=name,
        config=config,
        status=status,
        history=history,
        metrics=read_metrics(paths),
        backends=trained_backends(info) or MISSING,
        model_disagreement=_model_disagreement(paths, config) if is_finished(info) else None,
    )


def _model_disagreement(paths: RunPaths, config: RunConfig) -> str | None:
    """Where a ``config.json`` edited by hand no longer describes the model in ``vae.keras``
    (which ``plot``, ``evaluate`` and ``train`` then refuse), in words; None where it does."""
    try:
        check_model_agrees(paths, config, paths.vae)
    except RunError as error:
        return str(error)
    return None


def run_names(folders: list[str]) -> list[str]:
    """Each run's column name: its folder's name, or the whole path where names collide."""
    names = [Path(folder).name or str(folder) for folder in folders]
    if len(set(names)) == len(names):
        return names
    return [str(folder) for folder in folders]


def _leaves(name: str, value: Any) -> Iterator[tuple[str, Any]]:
    """``(dotted name, value)`` for each plain value of a setting: a stacked layer's parts
    (``upper_layers``) become rows of their own, ``upper_layers[0].posterior.units``, so that
    one differing number does not print the whole stack."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(f"{name}.{key}", item)
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for index, item in enumerate(value):
            yield from _leaves(f"{name}[{index}]", item)
    else:
        yield name, value


def differing_settings(summaries: list[RunSummary]) -> list[tuple[str, list[str]]]:
    """``(setting, one value per run)`` for every setting, preset included, not shared by all."""
    flats = [
        dict(
            leaf
            for name, value in {
                "preset": summary.config.preset,
                **flat_settings(summary.config),
            }.items()
            for leaf in _leaves(name, value)
        )
        for summary in summaries
    ]
    rows = []
    names = list(dict.fromkeys(name for flat in flats for name in flat))
    for name in names:
        values = [flat.get(name) for flat in flats]
        if len({json.dumps(value, sort_keys=True) for value in values}) > 1:
            # A setting of a kind the run does not use has no value there.
            texts = [MISSING if value is None else setting_text(value) for value in values]
            rows.append((name, texts))
    return rows


def comparison_rows(summaries: list[RunSummary]) -> list[tuple[str, list[str]]]:
    """The table's rows: differing settings, then progress and losses, then metrics."""
    rows = differing_settings(summaries)
    if len(summaries) > 1 and not rows:
        rows.append(("settings", ["identical"] * len(summaries)))
    # Not a setting, but the same settings give other numbers on another backend.
    if len({summary.backends for summary in summaries}) > 1:
        rows.append(("backend", [summary.backends for summary in summaries]))
    rows.append(("status", [summary.status for summary in summaries]))
    rows.append(
        (
            "epochs trained",
            [
                str(len(summary.history["epoch"])) if summary.history else "0"
                for summary in summaries
            ],
        )
    )
    for column in LOSS_COLUMNS:
        values = [
            f"{summary.history[column][-1]:.2f}"
            if summary.history and column in summary.history
            else MISSING
            for summary in summaries
        ]
        rows.append((f"final {column}", values))
    rows.extend(_metric_rows(summaries))
    if all(not summary.metrics for summary in summaries):
        rows.append(("test metrics", ["not evaluated"] * len(summaries)))
    return rows


def _metric_rows(summaries: list[RunSummary]) -> list[tuple[str, list[str]]]:
    """`evaluate`'s table, a column per run: the rows some run's metrics hold, then the
    importance samples each run's estimate drew."""
    metrics = [summary.metrics or {} for summary in summaries]
    texts = [dict(metric_rows(values)) for values in metrics]
    labels = [label for label, _, _ in TABLE_ROWS if any(label in text for text in texts)]
    rows = [(label, [text.get(label, MISSING) for text in texts]) for label in labels]
    if any("iwae_samples" in values for values in metrics):
        rows.append(
            (
                "importance samples K",
                [str(values.get("iwae_samples", MISSING)) for values in metrics],
            )
        )
    return rows


def shared_loss_name(summaries: list[RunSummary]) -> str:
    """The runs' objectives' one name for their loss; runs of different objectives share the
    panel under the plain name, "loss"."""
    names = {summary.config.objective.loss_name for summary in summaries}
    return names.pop() if len(names) == 1 else "loss"


def format_comparison(names: list[str], rows: list[tuple[str, list[str]]]) -> str:
    """An aligned text table: a header of run names, then one line per row."""
    label_width = max(len(label) for label, _ in rows)
    widths = [
        max(len(name), *(len(values[index]) for _, values in rows))
        for index, name in enumerate(names)
    ]
    header = (f"{name:>{width}}" for name, width in zip(names, widths, strict=True))
    lines = ["  ".join([" " * label_width, *header])]
    for label, values in rows:
        cells = (f"{value:>{width}}" for value, width in zip(values, widths, strict=True))
        lines.append("  ".join([f"{label:<{label_width}}", *cells]))
    return "\n".join(lines)


def run(arguments: argparse.Namespace, program: str) -> str:
    names = run_names(arguments.runs)
    summaries = [
        read_summary(folder, name) for folder, name in zip(arguments.runs, names, strict=True)
    ]
    figure = None
    if arguments.out is not None:
        from vae_mnist.plotting import figure_path

        # Refuse a figure that cannot be written before any work, and create nothing yet.
        if Path(arguments.out).is_dir() or arguments.out.endswith(("/", os.sep)):
            raise UsageError(
                f"--out {arguments.out} is a folder: name the figure's file in it (e.g. curves.png)"
            )
        try:
            figure = figure_path(arguments.out)
        except ValueError as error:
            raise UsageError(f"--out {error}") from None
        check_can_create_folder(figure.parent)
    for summary in summaries:
        if summary.model_disagreement:
            print(
                f"{program} compare: warning: {summary.model_disagreement} (the table shows "
                "config.json; plot, evaluate and train refuse the run until the two agree)",
                file=sys.stderr,
            )
    table = format_comparison(names, comparison_rows(summaries))
    print(table)
    if figure is not None:
        from vae_mnist.plotting import plot_validation_curves

        drawn = [summary for summary in summaries if summary.history is not None]
        if not drawn:
            raise RunError("no run has a finished epoch: no validation curves to draw")
        histories = {summary.name: summary.history for summary in drawn}
        loss_name = shared_loss_name(drawn)
        print(f"wrote {plot_validation_curves(histories, figure, loss_name=loss_name)}")
    return table
