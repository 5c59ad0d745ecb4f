"""Training on the real MNIST, where a local copy is given (VAE_MNIST_DATA)."""

from __future__ import annotations

import os

import pytest

from vae_mnist import RunConfig, load_mnist
from vae_mnist.training import train

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not os.environ.get("VAE_MNIST_DATA"), reason="VAE_MNIST_DATA is not set")
def test_one_epoch_on_full_mnist_reaches_the_expected_loss(tmp_path):
    data = load_mnist()
    (x_train, y_train), (x_test, y_test) = data
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert list(y_test[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    info = train(RunConfig().replace(epochs=1, seed=1), data, tmp_path / "run", verbose=0)
    last = info["history"][-1]
    # Version 1 gave 172.35 on one machine and 172.33 on another: the default run is unchanged.
    assert last["val_loss"] == pytest.approx(172.35, abs=0.1)
    assert last["val_loss"] == pytest.approx(
        last["val_reconstruction_loss"] + last["val_kl_loss"], rel=1e-4
    )
