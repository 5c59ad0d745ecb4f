"""vae-mnist: the 2017 Keras MNIST variational autoencoder, on Keras 3.

Importing the package registers its custom layers with Keras, so saved models load with
``keras.saving.load_model(path)`` and safe mode on.
"""

import os

# TensorFlow logs CUDA probing and oneDNN notes at start-up; users of a CPU example should not
# have to read them. An explicit setting of the user's wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from vae_mnist._quiet import start_tensorflow_quietly  # noqa: E402

start_tensorflow_quietly()

from vae_mnist.config import VAEConfig  # noqa: E402
from vae_mnist.data import DataError, load_mnist, prepare_images  # noqa: E402
from vae_mnist.losses import kl_divergence, reconstruction_loss  # noqa: E402
from vae_mnist.model import (  # noqa: E402
    VAE,
    ModelFileError,
    Sampling,
    build_decoder,
    build_encoder,
    build_mean_encoder,
    build_vae,
    load_model,
)

__version__ = "1.0.0"

__all__ = [
    "VAE",
    "DataError",
    "ModelFileError",
    "Sampling",
    "VAEConfig",
    "build_decoder",
    "build_encoder",
    "build_mean_encoder",
    "build_vae",
    "kl_divergence",
    "load_mnist",
    "load_model",
    "prepare_images",
    "reconstruction_loss",
]
