"""TensorBoard logs of a training run: every loss term per epoch, and the manifold as it forms.

`vae-mnist train --tensorboard` adds these callbacks; ``tensorboard --logdir runs`` shows every
run folder's logs. They are not a model setting, so they are not part of `RunConfig`: a run
trained with and without them is the same run. TensorFlow writes the event files on every
Keras backend (it is a dependency of this package).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Keras through the package, so that TensorFlow starts quietly (`vae_mnist._quiet`).
from vae_mnist.backend import keras
from vae_mnist.config import RunConfig
from vae_mnist.figures import parts_by_role, unmet_need
from vae_mnist.runs import RunPaths

# The manifold image is drawn every this many epochs, and after the last epoch.
MANIFOLD_IMAGE_EVERY = 5
MANIFOLD_IMAGE_SIDE = 15


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback, leaving out an epoch that was cut short.

    Ctrl-C or a diverging loss stops an epoch early (``model.stop_training``); that epoch is not
    recorded as finished, and a resumed run trains it again, so logging it would draw it twice.
    """

    def on_epoch_end(self, epoch, logs=None):
        if not self.model.stop_training:
            super().on_epoch_end(epoch, logs)


class ManifoldImage(keras.callbacks.Callback):
    """Writes the decoded manifold of a 2-D continuous latent as a TensorBoard image summary.

    The image (``n*28 × n*28`` grey levels) appears under the tag ``manifold`` in the
    ``manifold`` log folder, at step = epoch index, like Keras' own epoch scalars.
    """

    def __init__(
        self, log_dir: str | Path, every: int = MANIFOLD_IMAGE_EVERY, n: int = MANIFOLD_IMAGE_SIDE
    ):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.every = every
        self.n = n
        self.writer = None

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        self.writer = tf.summary.create_file_writer(str(self.log_dir / "manifold"))

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 == self.params.get("epochs")
        if self.model.stop_training or ((epoch + 1) % self.every and not last):
            return
        import tensorflow as tf

        from vae_mnist.plotting import decode_manifold

        quantiles = self.model.prior_part.quantiles
        image = decode_manifold(self.model.image_decoder(), self.n, quantiles=quantiles)
        # (n*28, n*28) -> (1, n*28, n*28, 1): one grey image, as tf.summary.image wants it.
        batch = np.clip(image, 0.0, 1.0)[None, :, :, None].astype(np.float32)
        with self.writer.as_default():
            tf.summary.image("manifold", batch, step=epoch)
        self.writer.flush()

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def tensorboard_callbacks(
    folder: str | Path, config: RunConfig, image_every: int = MANIFOLD_IMAGE_EVERY
) -> list[keras.callbacks.Callback]:
    """The callbacks that write a run's TensorBoard logs into ``folder/tensorboard``.

    Keras' TensorBoard callback writes each logged value (``loss``, ``reconstruction_loss``,
    ``kl_loss``, ...) per epoch into ``train/`` and ``validation/``, at step = epoch index, so a
    resumed run (which starts at its next epoch) continues the same curves. A one-layer 2-D
    continuous latent whose prior has quantiles (the Gaussian's) adds the manifold image every
    `image_every` epochs.
    """
    log_dir = RunPaths(Path(folder)).tensorboard
    callbacks: list[keras.callbacks.Callback] = [
        EpochTensorBoard(
            log_dir=str(log_dir), write_graph=False, update_freq="epoch", profile_batch=0
        )
    ]
    parts = parts_by_role(config.posterior, config.prior, stacked=bool(config.upper_layers))
    if unmet_need("manifold", parts) is None and config.posterior.code_size == 2:
        callbacks.append(ManifoldImage(log_dir, image_every, MANIFOLD_IMAGE_SIDE))
    return callbacks
