"""Training into a run folder that survives interruption and can be resumed.

The folder's format is `vae_mnist.runs`'s; this module fills it, one finished epoch at a time.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

# Keras through the package, so that TensorFlow starts quietly (`vae_mnist._quiet`).
from vae_mnist.backend import keras
from vae_mnist.config import RunConfig, TrainingConfig
from vae_mnist.data import check_data
from vae_mnist.errors import ConfigError, TrainingDivergedError
from vae_mnist.files import check_writable_folder, remove_stale_temporaries
from vae_mnist.model import build_vae, load_model, save_model
from vae_mnist.progress import EpochBar, EpochLines, report_stop, shown_logs, training_progress
from vae_mnist.runs import (
    RunError,
    RunPaths,
    check_files_can_be_written,
    check_model_agrees,
    describe_differences,
    epochs_text,
    extended_run_info,
    has_nothing_to_continue,
    history_columns,
    is_finished,
    is_unfinished,
    new_run_info,
    read_run_info,
    read_saved_config,
    record_epoch,
    record_failure,
    record_finished,
    resumed_run_info,
    settings_that_differ,
    write_progress,
    write_run_info,
)


def compile_vae(vae: keras.Model, config: RunConfig, steps_per_epoch: int) -> None:
    """Compile with the configured optimizer and the fastest settings the backend supports."""
    steps_per_execution, jit_compile = execution_settings(config, steps_per_epoch)
    vae.compile(
        optimizer=config.optimizer.build(steps_per_epoch),
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )


def execution_settings(config: RunConfig, steps_per_epoch: int) -> tuple[int, bool]:
    """How this backend runs the training steps: the steps per execution, and XLA or not.

    Several steps per execution and XLA compilation pay off on TensorFlow and JAX (see
    ``benchmarks/bench_train.py``). Keras' PyTorch backend accepts only one step per execution,
    and its `torch.compile` path costs more than it saves for a model this small, so both are
    turned off there. Never run more steps per execution than an epoch has.
    """
    steps_per_execution = config.training.steps_per_execution
    jit_compile = config.training.jit_compile
    if keras.backend.backend() == "torch":
        steps_per_execution, jit_compile = 1, False
    return min(steps_per_execution, steps_per_epoch), jit_compile


class _EpochRecorder(keras.callbacks.Callback):
    """Commits each finished epoch to the run folder, and stops on a non-finite loss."""

    def __init__(
        self, paths: RunPaths, info: dict[str, Any], training: TrainingConfig, stop: _StopRequest
    ):
        super().__init__()
        self.stop = stop
        self.paths = paths
        self.info = info
        self.training = training
        self.diverged: str | None = None
        self.epoch = 0
        self.epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        if self.stop.requested:  # Asked while the last epoch was validated or saved.
            raise _StopTraining(None)
        self.epoch = epoch
        self.epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # Called once per execution of `steps_per_execution` steps, so this costs little and
        # stops a diverging or interrupted run within one execution, not at the epoch's end.
        if self.stop.requested:
            # Keras numbers a chunk by its last step as if it were whole, so a partial last
            # chunk is counted to the epoch's end, not past it.
            total = self.params.get("steps")
            done = batch + 1 if total is None else min(batch + 1, total)
            # Raised, not `stop_training`: with that flag Keras still validates the cut epoch.
            raise _StopTraining(
                f"stopped at step {done} of {total} in epoch {self.epoch + 1}; "
                "that epoch is discarded",
                steps=done,
                logs=logs,
            )
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged = f"{float(loss)}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        # A stop asked for now came after the epoch's last step: the epoch is whole, and kept.
        logs = {key: float(value) for key, value in (logs or {}).items()}
        bad = [key for key, value in logs.items() if not math.isfinite(value)]
        if self.diverged or bad:
            self.diverged = self.diverged or f"{logs[bad[0]]} ({bad[0]})"
            record_failure(self.info, epoch)
            self.model.stop_training = True
            return
        seconds = time.perf_counter() - self.epoch_started
        # A value that only training has (a discrete latent's temperature) has no validation
        # counterpart worth a column.
        logs = shown_logs(self.model, logs)
        # Numbered from 1, as Keras' progress bar and every message count epochs.
        row = {"epoch": epoch + 1}
        row.update({name: logs[name] for name in history_columns(list(logs))[1:]})
        checkpoint = self.paths.checkpoint(epoch + 1)
        save_model(self.model, checkpoint)
        if self.training.snapshot_every and (epoch + 1) % self.training.snapshot_every == 0:
            save_model(self.model.image_decoder(), self.paths.snapshot(epoch + 1))
        previous = record_epoch(self.paths, self.info, row, seconds, checkpoint)
        write_progress(self.paths, self.info)
        # An extended run's first "checkpoint" is its finished model, which stays until the
        # longer run finishes.
        if previous and previous != self.paths.vae.name:
            with contextlib.suppress(FileNotFoundError):
                (self.paths.folder / previous).unlink()


class _StopTraining(KeyboardInterrupt):
    """Raised from the epoch recorder's hooks to stop where a stop was asked for.

    Keras' `fit` lets it through on TensorFlow, JAX and PyTorch (a KeyboardInterrupt, as
    Ctrl-C raised in a hook would be); `train` turns it into a plain one. The message says
    where an epoch was cut short, after `steps` steps with the last step's `logs`; it is None
    between epochs.
    """

    def __init__(self, message: str | None, steps: int = 0, logs: dict | None = None):
        super().__init__(message)
        self.message, self.steps, self.logs = message, steps, logs


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


def decide_resume(
    paths: RunPaths, config: RunConfig, overwrite: bool, restart: bool, extend: bool = False
) -> dict[str, Any] | None:
    """The progress record of the unfinished run to continue, or None to start afresh.

    The one place that decides: a finished run (or a model without a record) is replaced only
    with `overwrite`, and continued to more epochs only with `extend`; an unfinished run is
    continued when its saved settings match `config` but for what a resumed run may change,
    and started over with `restart` (or `overwrite`).
    """
    check_files_can_be_written((paths.config, paths.run_info, paths.vae, *paths.written_files()))
    # Replacing a run needs nothing of its record, so one that cannot be read is replaced too.
    info = None if overwrite else read_run_info(paths)
    if extend:
        return _extension(paths, config, info, overwrite or restart)
    if is_finished(info) and not overwrite:
        raise RunError(
            f"{paths.folder} holds a finished run; replace it (--overwrite, or overwrite=True "
            "from Python) or train into another folder"
        )
    if info is None and paths.vae.exists() and not overwrite:
        raise RunError(
            f"{paths.folder} already holds a model; replace it (--overwrite, or overwrite=True "
            "from Python) or train into another folder"
        )
    # A new run clears checkpoints, snapshots and TensorBoard curves, which without a record
    # are not its own.
    cleared = paths.run_folders()
    kept = [path.name for path in (*paths.written_files(), *cleared) if path.exists()]
    if info is None and kept and not overwrite:
        # Files of a run's names with no progress record: someone's own, or a run whose record
        # is gone. Either way not this run's to replace unasked.
        raise RunError(
            f"{paths.folder} holds {', '.join(kept)} but no run.json; replace them "
            "(--overwrite, or overwrite=True from Python) or train into another folder"
        )
    if not is_unfinished(info) or restart or overwrite:
        return None
    if has_nothing_to_continue(info):
        # Out of memory in its first epoch, say: it starts afresh with the settings given now.
        return None
    saved = _check_saved_settings(
        paths,
        config,
        "an unfinished run",
        "run it with the saved settings to continue, or start over (--restart, or restart=True "
        "from Python)",
    )
    _check_epochs_ahead(paths, config, info)
    check_model_agrees(paths, saved, paths.folder / info["checkpoint"])
    return info


def _check_epochs_ahead(paths: RunPaths, config: RunConfig, info: dict[str, Any]) -> None:
    """Refuse to continue an unfinished run to fewer epochs than it has trained.

    Finishing it there would save a model of more epochs than its configuration says (and, for
    an extension, replace the finished model it extends). An extension stopped before its first
    new epoch still holds the finished model as its checkpoint, so it may go back to its epochs.
    """
    completed = info["completed_epochs"]
    if config.training.epochs < completed:
        raise RunError(
            f"{paths.folder} holds an unfinished run that has trained {completed} epochs; "
            f"continue it with --epochs {completed} or more"
        )


def _check_saved_settings(paths: RunPaths, config: RunConfig, what: str, remedy: str) -> RunConfig:
    """The saved run's settings (``config.json``); refuse `config` where it differs from them in
    more than a resumed run may change."""
    saved = read_saved_config(paths)
    differing = settings_that_differ(saved, config)
    if "learning_rate" in differing:
        remedy += " (a run with a learning-rate schedule keeps the rates it was saved with)"
    if differing:
        raise RunError(
            f"{paths.folder} holds {what} with other settings: "
            f"{describe_differences(saved, config, differing)}; {remedy}"
        )
    return saved


def _extension(
    paths: RunPaths, config: RunConfig, info: dict[str, Any] | None, starting_over: bool
) -> dict[str, Any]:
    """The progress record that continues a finished run (or an interrupted extension of one)
    from its saved model and optimizer state to `config`'s larger epoch count."""
    if starting_over:
        raise RunError(
            "--extend continues a run, so it cannot be combined with --overwrite or --restart"
        )
    if info is None or has_nothing_to_continue(info):
        raise RunError(f"{paths.folder} holds no trained run to extend")
    saved = _check_saved_settings(paths, config, "a run", "extend it with the saved settings")
    checkpoint = info.get("checkpoint") or paths.vae.name
    check_model_agrees(paths, saved, paths.folder / checkpoint)
    if is_unfinished(info):
        _check_epochs_ahead(paths, config, info)
        return info
    completed = int(info["completed_epochs"])
    if config.training.epochs <= completed:
        raise RunError(
            f"{paths.folder} holds a finished run of {epochs_text(completed)}; --extend needs "
            f"--epochs above {completed}"
        )
    # The finished model is saved with its optimizer, so it is the checkpoint to continue from.
    return extended_run_info(paths, info)


def train(
    config: RunConfig,
    data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    restart: bool = False,
    extend: bool = False,
    verbose: int | str = "auto",
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> dict[str, Any]:
    """Train (or resume training of) the VAE into `out_dir`; return the run's progress record.

    Args:
        config: the model and training settings.
        data: ``((x_train, y_train), (x_test, y_test))`` as `load_dataset` returns them.
        out_dir: the run folder.
        overwrite: replace a finished run in `out_dir`.
        restart: discard an unfinished run in `out_dir` instead of continuing it.
        extend: continue the finished run in `out_dir` from its model and optimizer state to
            `config`'s larger epoch count (its model is replaced when the longer run finishes).
        verbose: 0 shows nothing; 1 or "auto" Keras' progress bar on a terminal or in a
            notebook, and one plain line per epoch elsewhere (a log file); 2 one line per epoch.
        callbacks: more Keras callbacks, called after the one that saves each epoch.

    Raises:
        RunError: the folder holds a finished run (and `overwrite` and `extend` are off), or
            a run with other settings (and `restart` is off), or `extend` finds nothing to
            extend.
        DataError: `data` is not MNIST-shaped uint8 images and labels (checked before the
            folder is touched).
        TrainingDivergedError: the loss became NaN or infinite.
        KeyboardInterrupt: Ctrl-C or SIGTERM; the folder keeps every finished epoch, and an
            epoch cut short is discarded (standard error says where it stopped). A signal
            that comes while the last epoch is validated lets the run finish.
    """
    # Checked before the folder is touched: bad data must not cost a finished run its record.
    if not isinstance(config, RunConfig):
        raise ConfigError(f"config must be a RunConfig, got {type(config).__name__}")
    if not str(out_dir):
        raise RunError("out_dir is empty: name the run folder ('.' for the current one)")
    data = check_data(data, "the data given to train")
    paths = RunPaths(Path(out_dir))
    # Decide before creating the folder, so that a refusal leaves nothing behind.
    info = decide_resume(paths, config, overwrite, restart, extend)
    check_writable_folder(paths.folder)
    remove_stale_temporaries(paths.folder)
    remove_stale_temporaries(paths.checkpoints)
    vae, info = _start(paths, config, info, len(data[0][0]))
    training = config.training
    x_train, x_test = config.data.model_inputs(data, training.seed)
    stop = _StopRequest()
    recorder = _EpochRecorder(paths, info, training, stop)
    progress = training_progress(verbose)
    if info["completed_epochs"] < training.epochs:
        every_callback = [
            *vae.prior.part.callbacks(),
            *vae.objective.part.callbacks(),
            recorder,
            *([progress] if progress else []),
            *(callbacks or []),
        ]
        with stop.installed():
            _fit(vae, x_train, x_test, training, info["completed_epochs"], every_callback, progress)
    if recorder.diverged is not None:
        raise _diverged(paths, info, recorder.diverged)
    _finish(paths, info, vae)
    return info


def _fit(
    vae: keras.Model,
    x_train: np.ndarray,
    x_test: np.ndarray,
    training: TrainingConfig,
    initial_epoch: int,
    callbacks: list[keras.callbacks.Callback],
    progress: EpochBar | EpochLines | None,
) -> None:
    """Keras' `fit` under `training`'s settings from `initial_epoch` on; a stop that a
    callback requested (Ctrl-C, SIGTERM) as `KeyboardInterrupt`, after `progress` says where
    it stopped."""
    try:
        vae.fit(
            x_train,
            batch_size=training.batch_size,
            epochs=training.epochs,
            initial_epoch=initial_epoch,
            shuffle=training.shuffle,
            validation_data=x_test,
            validation_batch_size=training.batch_size,
            callbacks=callbacks,
            # The progress callback shows progress; Keras' own bar would add a second.
            verbose=0,
        )
    except _StopTraining as stopped:
        # The folder names the last finished epoch: a cut one was never recorded.
        if stopped.message:
            report_stop(progress, stopped.message, stopped.steps, stopped.logs)
            raise KeyboardInterrupt(stopped.message) from None
        raise KeyboardInterrupt from None


def _start(
    paths: RunPaths, config: RunConfig, info: dict[str, Any] | None, train_images: int
) -> tuple[keras.Model, dict[str, Any]]:
    """The model to train (built, or the unfinished run's checkpoint) and the progress record,
    with the folder made consistent with them."""
    training = config.training
    steps_per_epoch = math.ceil(train_images / training.batch_size)
    if info is None:
        info = new_run_info(training.seed)
        _clear_earlier_run(paths)
        keras.utils.set_random_seed(training.seed)
        vae = build_vae(config)
        compile_vae(vae, config, steps_per_epoch)
    else:
        info = resumed_run_info(info)
        # A resumed run reseeds from its position, so its shuffling is repeatable too.
        keras.utils.set_random_seed(training.seed + info["completed_epochs"])
        vae = _resumed_model(paths, config, info["checkpoint"], steps_per_epoch)
    config.save(paths.config)
    write_progress(paths, info)
    if training.snapshot_every and info["completed_epochs"] == 0:
        save_model(vae.image_decoder(), paths.snapshot(0))
    return vae, info


def _clear_earlier_run(paths: RunPaths) -> None:
    """Remove what a new run must not continue: an old run's checkpoints, snapshots and
    TensorBoard curves."""
    for folder in paths.run_folders():
        shutil.rmtree(folder, ignore_errors=True)


def _resumed_model(
    paths: RunPaths, config: RunConfig, checkpoint: str, steps_per_epoch: int
) -> keras.Model:
    """The unfinished run's checkpoint, compiled for this run's settings."""
    vae = load_model(paths.folder / checkpoint, config)
    vae.continue_with(config)
    # The checkpoint carries the settings of the backend that saved it, which may not be this
    # one (a run trained on JAX and continued on PyTorch).
    vae.steps_per_execution, vae.jit_compile = execution_settings(config, steps_per_epoch)
    if config.optimizer.resumes_with_new_learning_rate:
        vae.optimizer.learning_rate.assign(config.optimizer.learning_rate)
    return vae


def _diverged(paths: RunPaths, info: dict[str, Any], value: str) -> TrainingDivergedError:
    last_good = info["completed_epochs"]
    kept = (
        f"the last good checkpoint (epoch {last_good}) is kept in "
        f"{paths.folder / info['checkpoint']}"
        if info.get("checkpoint")
        else "no epoch had finished, so there is no checkpoint"
    )
    return TrainingDivergedError(
        f"the loss became {value} in epoch {info['failed_epoch'] + 1}; "
        f"training stopped, {kept} (try a smaller --learning-rate)"
    )


def _finish(paths: RunPaths, info: dict[str, Any], vae: keras.Model) -> None:
    """Save the trained model's three files and mark the run finished."""
    # An interrupted extension resumed at the epochs it started from has trained nothing since
    # the finished model, which it keeps, with the metrics that describe it.
    if info["checkpoint"] != paths.vae.name:
        save_model(vae, paths.vae)
        save_model(vae.first_head_encoder(), paths.encoder)
        save_model(vae.image_decoder(), paths.decoder)
        # Metrics measured on a model this run replaced would now describe the wrong model.
        with contextlib.suppress(FileNotFoundError):
            paths.metrics.unlink()
    record_finished(info)
    write_run_info(paths, info)
    shutil.rmtree(paths.checkpoints, ignore_errors=True)
