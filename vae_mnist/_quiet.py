"""Starting TensorFlow without its start-up chatter on standard error."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile


def start_tensorflow_quietly() -> None:
    """Import TensorFlow, where installed, with the native standard error captured.

    TensorFlow's C++ side writes CUDA probing and oneDNN notes straight to file descriptor 2
    before any Python setting can stop it (TF_CPP_MIN_LOG_LEVEL no longer covers them), which
    buries this project's one-line error messages. Keras imports TensorFlow on every backend
    where it is installed, so starting it here first, and probing for GPUs while the noise is
    captured, keeps the noise out. What was captured is replayed only if the import fails.
    Setting VAE_MNIST_VERBOSE_IMPORT=1 shows it.
    """
    if (
        "tensorflow" in sys.modules
        or os.environ.get("VAE_MNIST_VERBOSE_IMPORT") == "1"
        or importlib.util.find_spec("tensorflow") is None
    ):
        return
    try:
        saved = os.dup(2)
    except OSError:  # No usable standard error: nothing to protect.
        return
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
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
