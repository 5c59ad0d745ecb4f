"""What training and evaluation show as they run: the bar on a terminal, plain lines elsewhere.

Keras' progress bar redraws itself with carriage returns, backspaces and ANSI colour codes, and
Keras 3 does so wherever standard output goes (it counts every POSIX system as a terminal), which
fills a log file with control characters. So on a terminal or in a notebook training shows Keras'
bar, and anywhere else it writes one plain line per finished epoch; evaluation likewise shows its
bar, or one line when it is done.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from vae_mnist.backend import keras
from vae_mnist.runs import history_columns


def is_interactive(stream: TextIO | None = None) -> bool:
    """Whether `stream` (standard output by default) shows a redrawn bar: a terminal or notebook."""
    stream = sys.stdout if stream is None else stream
    # A notebook's kernel, not merely an imported ipykernel module (a test may import it).
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def shown_logs(model: keras.Model, logs: dict[str, Any] | None) -> dict[str, Any]:
    """`logs` without the validation copies of values that describe training only.

    A discrete latent's temperature is the same number under validation; Keras logs it twice.
    """
    hidden = {f"val_{name}" for name in getattr(model, "training_only_metrics", ())}
    return {name: value for name, value in (logs or {}).items() if name not in hidden}


def format_value(name: str, value: float) -> str:
    """Two decimals for a loss (nats per image); four significant digits for another value (τ)."""
    return f"{float(value):.2f}" if name.endswith("loss") else f"{float(value):.4g}"


class EpochBar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, shown whatever verbosity `fit` was given, without training-only
    validation values, and able to end its line when training stops in the middle of an epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.line_open = False

    def set_params(self, params):
        # `fit` runs silent (verbose 0) so that it adds no bar of its own; this one shows.
        super().set_params({**params, "verbose": 1})

    def on_train_batch_end(self, batch, logs=None):
        self.line_open = True
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, shown_logs(self.model, logs))
        self.line_open = False

    def end_line(self, steps: int, logs: dict[str, Any] | None) -> None:
        """Draw the bar at the step where an epoch stopped before its end, and end its line.

        The epoch recorder stopped training before this bar saw that step, so it is drawn now.
        """
        if not self.line_open:
            return
        if self.progbar is not None:
            self.progbar.interval = 0.0  # Draw now, however soon after the last drawing.
        super().on_train_batch_end(steps - 1, logs)
        sys.stdout.write("\n")
        sys.stdout.flush()
        self.line_open = False


class EpochLines(keras.callbacks.Callback):
    """One plain line per finished epoch, for a log file or a pipe::

    epoch 3/50: loss 160.12, reconstruction_loss 155.71, kl_loss 4.41, val_loss 158.33, ... (2.1 s)
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream
        self.epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.epoch_started
        logs = shown_logs(self.model, logs)
        values = ", ".join(
            f"{name} {format_value(name, logs[name])}" for name in history_columns(list(logs))[1:]
        )
        epochs = self.params.get("epochs")
        print(
            f"epoch {epoch + 1}/{epochs}: {values} ({seconds:.1f} s)",
            file=self.stream or sys.stdout,
            flush=True,
        )


def training_progress(verbose: int | str) -> EpochBar | EpochLines | None:
    """The callback that shows training's progress for a verbosity as `train` takes it.

    0: nothing; 1 or ``"auto"``: Keras' bar on a terminal or in a notebook, one line per epoch
    elsewhere; 2: one line per epoch everywhere.
    """
    if verbose == 0:
        return None
    if verbose == 2 or not is_interactive():
        return EpochLines()
    return EpochBar()


def report_stop(
    progress: EpochBar | EpochLines | None, message: str, steps: int, logs: dict[str, Any] | None
) -> None:
    """Say on standard error where training stopped (after `steps` of an epoch, with `logs`),
    below a bar's line."""
    if isinstance(progress, EpochBar):
        progress.end_line(steps, logs)
    print(message, file=sys.stderr, flush=True)


class CountBar(keras.utils.Progbar):
    """Keras' progress bar over a count of items (images), whose time estimate leaves out a
    warm-up: the first call of a compiled function includes its compilation, which would
    inflate an estimate taken over it.

    Call `warmed_up(count)` once the warm-up's items are done, instead of `update`: the bar
    appears at the next update, with an estimate from the time and items since the warm-up.
    Off a terminal it writes one line when done (Keras' verbosity 2).
    """

    def __init__(self, target: int, unit_name: str = "image") -> None:
        super().__init__(target, unit_name=unit_name, verbose=1 if is_interactive() else 2)
        self.warm: tuple[float, int] | None = None

    def warmed_up(self, count: int) -> None:
        if count >= self.target:
            self.update(count)
            return
        self.warm = (time.time(), count)

    def _estimate_step_duration(self, current, now):
        if self.warm is not None and current > self.warm[1]:
            started, count = self.warm
            return (now - started) / (current - count)
        return super()._estimate_step_duration(current, now)
