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

# The RBM latent is built only on demand, but a saved RBM model must load after a plain
# `import vae_mnist`, so its class is registered with Keras here.
from vae_mnist import rbm_latent  # noqa: E402, F401
from vae_mnist.config import (  # noqa: E402
    ConfigError,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainingConfig,
)
from vae_mnist.data import DataError, load_dataset, load_mnist, prepare_images  # noqa: E402
from vae_mnist.model import (  # noqa: E402
    VAE,
    ModelFileError,
    build_vae,
    compose_vae,
    load_model,
)

__version__ = "2.0.0"

__all__ = [
    "VAE",
    "ConfigError",
    "DataConfig",
    "DataError",
    "ModelConfig",
    "ModelFileError",
    "RunConfig",
    "TrainingConfig",
    "build_vae",
    "compose_vae",
    "load_dataset",
    "load_mnist",
    "load_model",
    "prepare_images",
]
