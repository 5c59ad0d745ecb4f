"""Importing Keras without TensorFlow's start-up chatter on standard error."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile


def import_keras_quietly() -> None:
    """Import Keras with the native standard error captured, and replay it only on failure.

    TensorFlow's C++ side writes CUDA probing and oneDNN notes straight to file descriptor 2
    before any Python setting can stop it (TF_CPP_MIN_LOG_LEVEL no longer covers them), which
    buries this project's one-line error messages. Setting VAE_MNIST_VERBOSE_IMPORT=1 shows them.
    """
    if "keras" in sys.modules or os.environ.get("VAE_MNIST_VERBOSE_IMPORT") == "1":
        return
    try:
        saved = os.dup(2)
    except OSError:  # No usable standard error: nothing to protect.
        return
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
            # Keras reaches for TensorFlow's data tools on every backend where it is installed,
            # and probing for GPUs is what prints the CUDA errors on machines without one:
            # do both now, while the noise is captured.
            if importlib.util.find_spec("tensorflow") is not None:
                import tensorflow

                tensorflow.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            with contextlib.suppress(OSError):
                os.dup2(saved, 2)
            os.close(saved)
