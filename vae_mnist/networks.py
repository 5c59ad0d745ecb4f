"""The encoder and decoder networks: functional Keras models built from a few sizes.

Both networks take and give flat vectors, so every latent and likelihood plugs into every
architecture. The encoder ends in one Dense head per parameter of the latent posterior (for the
Gaussian, ``z_mean`` and ``z_log_var``); the decoder ends in one head per parameter of the
likelihood (for the Bernoulli, the pixel ``probabilities``). The parts name their heads; these
builders only lay the layers out.

- ``mlp``: Dense hidden layers, the 2017 example's network (one layer of 256 ReLU units); the
  decoder mirrors the encoder's hidden layers.
- ``conv``: the keras.io VAE example's network: two stride-2 Conv2D layers of 32 and 64 filters
  and a Dense layer; the decoder mirrors it with Conv2DTranspose layers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import keras
from keras import layers

from vae_mnist.config import ConfigError

# name -> (units, activation or None), in the order the model outputs them.
Heads = Mapping[str, tuple[int, str | None]]
CONV_FILTERS = (32, 64)
CONV_KERNEL = 3


def image_side(original_dim: int) -> int:
    """The side of a square image of `original_dim` pixels, which the conv network needs."""
    side = math.isqrt(original_dim)
    if side * side != original_dim or side % 4:
        raise ConfigError(
            f"the conv architecture needs square images whose side is a multiple of 4, and "
            f"original_dim {original_dim} is not one"
        )
    return side


def build_encoder(
    heads: Heads,
    original_dim: int = 784,
    hidden_layers: Sequence[int] = (256,),
    activation: str = "relu",
    architecture: str = "mlp",
) -> keras.Model:
    """x ``(batch, original_dim)`` → one output per head, each ``(batch, units)``."""
    images = keras.Input(shape=(original_dim,), name="images")
    if architecture == "mlp":
        hidden = images
        for number, units in enumerate(hidden_layers, start=1):
            hidden = layers.Dense(units, activation=activation, name=f"encoder_hidden_{number}")(
                hidden
            )
    elif architecture == "conv":
        side = image_side(original_dim)
        # (batch, side*side) -> (batch, side, side, 1)
        hidden = layers.Reshape((side, side, 1), name="encoder_image")(images)
        for number, filters in enumerate(CONV_FILTERS, start=1):
            hidden = layers.Conv2D(
                filters,
                CONV_KERNEL,
                strides=2,
                padding="same",
                activation=activation,
                name=f"encoder_conv_{number}",
            )(hidden)
        hidden = layers.Flatten(name="encoder_flatten")(hidden)
        for number, units in enumerate(hidden_layers, start=1):
            hidden = layers.Dense(units, activation=activation, name=f"encoder_hidden_{number}")(
                hidden
            )
    else:
        raise ConfigError(f"unknown architecture {architecture!r} (choose from mlp, conv)")
    outputs = [
        layers.Dense(units, activation=head_activation, name=name)(hidden)
        for name, (units, head_activation) in heads.items()
    ]
    return keras.Model(images, outputs, name="encoder")


def build_decoder(
    heads: Heads,
    code_size: int = 2,
    original_dim: int = 784,
    hidden_layers: Sequence[int] = (256,),
    activation: str = "relu",
    architecture: str = "mlp",
) -> keras.Model:
    """z ``(batch, code_size)`` → one output per head, each ``(batch, original_dim)``.

    The first head is the decoded image (the pixel probabilities or the mean).
    """
    code = keras.Input(shape=(code_size,), name="z")
    mirrored = list(reversed(hidden_layers))
    if architecture == "mlp":
        hidden = code
        for number, units in enumerate(mirrored, start=1):
            hidden = layers.Dense(units, activation=activation, name=f"decoder_hidden_{number}")(
                hidden
            )
        outputs = [
            layers.Dense(units, activation=head_activation, name=name)(hidden)
            for name, (units, head_activation) in heads.items()
        ]
    elif architecture == "conv":
        side = image_side(original_dim)
        smallest = side // 4
        hidden = code
        for number, units in enumerate(mirrored, start=1):
            hidden = layers.Dense(units, activation=activation, name=f"decoder_hidden_{number}")(
                hidden
            )
        hidden = layers.Dense(
            smallest * smallest * CONV_FILTERS[-1], activation=activation, name="decoder_expand"
        )(hidden)
        # (batch, s*s*64) -> (batch, s, s, 64), s = side / 4
        hidden = layers.Reshape((smallest, smallest, CONV_FILTERS[-1]), name="decoder_image")(
            hidden
        )
        for number, filters in enumerate(reversed(CONV_FILTERS), start=1):
            hidden = layers.Conv2DTranspose(
                filters,
                CONV_KERNEL,
                strides=2,
                padding="same",
                activation=activation,
                name=f"decoder_deconv_{number}",
            )(hidden)
        outputs = []
        for name, (units, head_activation) in heads.items():
            if units != original_dim:
                raise ConfigError(f"a conv decoder head must have {original_dim} units")
            pixels = layers.Conv2DTranspose(
                1, CONV_KERNEL, padding="same", activation=head_activation, name=f"{name}_map"
            )(hidden)
            # (batch, side, side, 1) -> (batch, side*side)
            outputs.append(layers.Reshape((original_dim,), name=name)(pixels))
    else:
        raise ConfigError(f"unknown architecture {architecture!r} (choose from mlp, conv)")
    return keras.Model(code, outputs, name="decoder")
