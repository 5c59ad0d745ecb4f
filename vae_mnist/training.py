"""Training into a run folder that survives interruption and can be resumed.

A run folder holds, once training finishes::

    config.json     the VAEConfig
    run.json        progress, seed, library versions, timings
    history.csv     one row per finished epoch (written as each epoch ends)
    vae.keras       the whole VAE
    encoder.keras   x -> z_mean (the blog's ``encoder``)
    decoder.keras   z -> x̂ (the blog's ``generator``)

While training it also holds ``checkpoint/epoch-NNNN.keras``, the compiled VAE with its optimizer
state after the last finished epoch, which ``run.json`` names. Every file is written to a
temporary name and renamed into place, and ``run.json`` is renamed last, so whatever kills the
process, the folder names one consistent finished epoch to continue from.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import platform
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from vae_mnist.config import VAEConfig
from vae_mnist.data import prepare_images
from vae_mnist.files import atomic_write_text, check_writable_folder, remove_stale_temporaries
from vae_mnist.model import build_mean_encoder, build_vae, save_model

HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "reconstruction_loss",
    "kl_loss",
    "val_loss",
    "val_reconstruction_loss",
    "val_kl_loss",
)


class RunError(RuntimeError):
    """A run folder that cannot be trained into as asked."""


class TrainingDivergedError(RuntimeError):
    """The loss stopped being a finite number."""


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

    @property
    def checkpoints(self) -> Path:
        return self.folder / "checkpoint"

    @property
    def snapshots(self) -> Path:
        return self.folder / "snapshots"

    def snapshot(self, epoch: int) -> Path:
        return self.snapshots / f"decoder-epoch-{epoch:04d}.keras"


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


def read_run_info(paths: RunPaths) -> dict[str, Any] | None:
    """The progress record of a run folder, or None where there is none."""
    if not paths.run_info.exists():
        return None
    try:
        info = json.loads(paths.run_info.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(f"{paths.run_info}: unreadable progress record ({error})") from None
    if not isinstance(info, dict) or "status" not in info:
        raise RunError(f"{paths.run_info}: not a vae-mnist progress record")
    return info


def history_csv_text(rows: list[dict[str, float]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: row[column] for column in HISTORY_COLUMNS})
    return buffer.getvalue()


def compile_vae(vae: keras.Model, config: VAEConfig, steps_per_epoch: int | None = None) -> None:
    """Compile with RMSprop and the fastest execution settings the backend supports.

    Several steps per execution and XLA compilation pay off on TensorFlow and JAX (see
    ``benchmarks/bench_train.py``). Keras' PyTorch backend accepts only one step per execution,
    and its `torch.compile` path costs more than it saves for a model this small, so both are
    turned off there. Never run more steps per execution than an epoch has.
    """
    steps_per_execution = config.steps_per_execution
    jit_compile = config.jit_compile
    if keras.backend.backend() == "torch":
        steps_per_execution, jit_compile = 1, False
    if steps_per_epoch:
        steps_per_execution = max(1, min(steps_per_execution, steps_per_epoch))
    vae.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=config.learning_rate),
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )


class _EpochRecorder(keras.callbacks.Callback):
    """Commits each finished epoch to the run folder, and stops on a non-finite loss."""

    def __init__(
        self, paths: RunPaths, info: dict[str, Any], config: VAEConfig, stop: _StopRequest
    ):
        super().__init__()
        self.stop = stop
        self.paths = paths
        self.info = info
        self.config = config
        self.diverged: str | None = None
        self.epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # Called once per execution of `steps_per_execution` steps, so this costs little and
        # stops a diverging or interrupted run within one execution, not at the epoch's end.
        if self.stop.requested:
            self.model.stop_training = True
            return
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged = f"{float(loss)}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.stop.requested:
            # The epoch was cut short: it must not be recorded as finished.
            self.model.stop_training = True
            return
        logs = {key: float(value) for key, value in (logs or {}).items()}
        bad = [key for key, value in logs.items() if not math.isfinite(value)]
        if self.diverged or bad:
            self.diverged = self.diverged or f"{logs[bad[0]]} ({bad[0]})"
            self.info["failed_epoch"] = epoch
            self.model.stop_training = True
            return
        seconds = time.perf_counter() - self.epoch_started
        row = {"epoch": epoch, **{column: logs[column] for column in HISTORY_COLUMNS[1:]}}
        checkpoint = self.paths.checkpoints / f"epoch-{epoch + 1:04d}.keras"
        save_model(self.model, checkpoint)
        if self.config.snapshot_every and (epoch + 1) % self.config.snapshot_every == 0:
            save_model(self.model.decoder, self.paths.snapshot(epoch + 1))
        self.info["history"].append(row)
        self.info["epoch_seconds"].append(seconds)
        self.info["completed_epochs"] = epoch + 1
        previous = self.info.get("checkpoint")
        self.info["checkpoint"] = str(checkpoint.relative_to(self.paths.folder))
        # run.json is the commit point: until it names the new checkpoint, the old one rules.
        _write_run_info(self.paths, self.info)
        atomic_write_text(self.paths.history, history_csv_text(self.info["history"]))
        if previous and previous != self.info["checkpoint"]:
            with contextlib.suppress(FileNotFoundError):
                (self.paths.folder / previous).unlink()


def _write_run_info(paths: RunPaths, info: dict[str, Any]) -> None:
    atomic_write_text(paths.run_info, json.dumps(info, indent=2) + "\n")


class _StopRequest:
    """Turns Ctrl-C and SIGTERM into a request that training honours at the next step.

    Raising from a signal handler could land inside Keras' own code, which may swallow it;
    a flag that the epoch recorder reads cannot be lost. A second signal stops at once.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextlib.contextmanager
    def installed(self):
        try:
            previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        except ValueError:  # Not the main thread: leave signals alone.
            yield self
            return
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def _same_setup(saved: VAEConfig, wanted: VAEConfig) -> bool:
    # The epoch count may change between sessions, and so may the learning rate (to continue
    # more gently after a divergence); everything else must match to continue.
    return saved.replace(epochs=wanted.epochs, learning_rate=wanted.learning_rate) == wanted


def train(
    config: VAEConfig,
    data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    restart: bool = False,
    verbose: int | str = "auto",
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> dict[str, Any]:
    """Train (or resume training of) the VAE into `out_dir`; return the run's progress record.

    Args:
        config: the model and training settings.
        data: ``((x_train, y_train), (x_test, y_test))`` as `load_mnist` returns them.
        out_dir: the run folder.
        overwrite: replace a finished run in `out_dir`.
        restart: discard an unfinished run in `out_dir` instead of continuing it.
        verbose: Keras' verbosity (1 shows the progress bar).
        callbacks: more Keras callbacks, called after the one that saves each epoch.

    Raises:
        RunError: the folder holds a finished run (and `overwrite` is off), or an unfinished
            run with other settings (and `restart` is off).
        TrainingDivergedError: the loss became NaN or infinite.
        KeyboardInterrupt: Ctrl-C or SIGTERM; the folder keeps every finished epoch.
    """
    paths = RunPaths(check_writable_folder(out_dir))
    remove_stale_temporaries(paths.folder)
    remove_stale_temporaries(paths.checkpoints)
    info = read_run_info(paths)
    resume = False
    if info is not None and info["status"] == "finished" and not overwrite:
        raise RunError(
            f"{paths.folder} holds a finished run; pass --overwrite to replace it "
            "or --out to train into another folder"
        )
    if info is None and paths.vae.exists() and not overwrite:
        raise RunError(
            f"{paths.folder} already holds a model; pass --overwrite to replace it "
            "or --out to train into another folder"
        )
    if info is not None and info["status"] == "training" and not restart and not overwrite:
        saved = VAEConfig.from_dict(info["config"])
        if not _same_setup(saved, config):
            raise RunError(
                f"{paths.folder} holds an unfinished run with other settings; run it with "
                "the same settings to continue, or pass --restart to start over"
            )
        resume = info.get("checkpoint") is not None
    if not resume:
        info = {
            "status": "training",
            "config": config.to_dict(),
            "seed": config.seed,
            "versions": library_versions(),
            "completed_epochs": 0,
            "checkpoint": None,
            "history": [],
            "epoch_seconds": [],
        }
        shutil.rmtree(paths.checkpoints, ignore_errors=True)
        shutil.rmtree(paths.snapshots, ignore_errors=True)
    info["config"] = config.to_dict()
    info.pop("failed_epoch", None)
    completed = int(info["completed_epochs"])

    # A resumed run reseeds from its position, so its shuffling is repeatable too.
    keras.utils.set_random_seed(config.seed + completed)
    if resume:
        vae = keras.saving.load_model(paths.folder / info["checkpoint"], compile=True)
        vae.optimizer.learning_rate.assign(config.learning_rate)
    else:
        vae = build_vae(config)
        compile_vae(vae, config, math.ceil(len(data[0][0]) / config.batch_size))
    config.save(paths.config)
    _write_run_info(paths, info)
    atomic_write_text(paths.history, history_csv_text(info["history"]))
    if config.snapshot_every and completed == 0:
        save_model(vae.decoder, paths.snapshot(0))

    (x_train, _), (x_test, _) = data
    x_train, x_test = prepare_images(x_train), prepare_images(x_test)
    stop = _StopRequest()
    recorder = _EpochRecorder(paths, info, config, stop)
    if completed < config.epochs:
        with stop.installed():
            vae.fit(
                x_train,
                batch_size=config.batch_size,
                epochs=config.epochs,
                initial_epoch=completed,
                shuffle=config.shuffle,
                validation_data=x_test,
                validation_batch_size=config.batch_size,
                callbacks=[recorder, *(callbacks or [])],
                verbose=verbose,
            )
    if stop.requested:
        raise KeyboardInterrupt
    if recorder.diverged is not None:
        last_good = info["completed_epochs"]
        kept = (
            f"the last good checkpoint (epoch {last_good}) is kept in "
            f"{paths.folder / info['checkpoint']}"
            if info.get("checkpoint")
            else "no epoch had finished, so there is no checkpoint"
        )
        raise TrainingDivergedError(
            f"the loss became {recorder.diverged} in epoch {info['failed_epoch'] + 1}; "
            f"training stopped, {kept} (try a smaller --learning-rate)"
        )

    save_model(vae, paths.vae)
    save_model(build_mean_encoder(vae.encoder), paths.encoder)
    save_model(vae.decoder, paths.decoder)
    # Metrics measured on a model this run replaced would now describe the wrong model.
    with contextlib.suppress(FileNotFoundError):
        paths.metrics.unlink()
    info["status"] = "finished"
    info["checkpoint"] = None
    info["train_seconds"] = float(sum(info["epoch_seconds"]))
    _write_run_info(paths, info)
    shutil.rmtree(paths.checkpoints, ignore_errors=True)
    return info
