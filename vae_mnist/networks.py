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

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from vae_mnist.backend import keras
from vae_mnist.settings import ConfigError, Part, register, setting

# name -> (units, activation or None), in the order the model outputs them.
Heads = Mapping[str, tuple[int, str | None]]
CONV_FILTERS = (32, 64)
CONV_KERNEL = 3


def image_side(original_dim: int) -> int:
    """The side of a square image of `original_dim` pixels, which the conv network needs."""
    side = math.isqrt(original_dim)
    if side * side != original_dim or side % 4:
        raise ConfigError(
            f"the conv network needs square images whose side is a multiple of 4, and images "
            f"of {original_dim} pixels are not"
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
    layers = keras.layers
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
    layers = keras.layers
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


ACTIVATIONS = ("relu", "tanh")


@dataclasses.dataclass(frozen=True)
class Network(Part):
    """The base of the network kinds: the encoder (x → the posterior's heads) and the decoder
    (z → the likelihood's heads), both on flat vectors.

    ``build_encoder(heads, pixels)`` and ``build_decoder(heads, code_size, pixels)``: the two
    Keras models (the base builds them from ``hidden_layers``, ``activation`` and the kind's
    ``architecture``); ``check_data(data)``: refuse images it cannot take.
    """

    family: ClassVar[str] = "network"
    architecture: ClassVar[str]
    # ``compiled_chunks``: its steps run faster as one compiled loop (`vae_mnist.chunks`).
    capabilities: ClassVar[frozenset[str]] = frozenset({"compiled_chunks"})

    # An empty list (a preset file's []) is allowed: the heads then read their input directly, a
    # linear network, the weakest a conditional prior p(z1|z2) can have (README asks how much
    # of the code's density an RBM adds beneath such a network).
    hidden_layers: tuple[int, ...] = setting(
        (256,),
        "units of the hidden layers, encoder order (comma list, e.g. 256,128; [] in a preset "
        "file: none, a linear network)",
        may_be_empty=True,
    )
    activation: str = setting("relu", "activation of the hidden layers", choices=ACTIVATIONS)

    def check_data(self, data: Any) -> None:
        """Every image size is fine by default."""

    def _sizes(self, pixels: int) -> dict[str, Any]:
        return dict(
            original_dim=pixels,
            hidden_layers=self.hidden_layers,
            activation=self.activation,
            architecture=self.architecture,
        )

    def build_encoder(self, heads: Heads, pixels: int) -> keras.Model:
        return build_encoder(heads, **self._sizes(pixels))

    def build_decoder(self, heads: Heads, code_size: int, pixels: int) -> keras.Model:
        return build_decoder(heads, code_size=code_size, **self._sizes(pixels))


@register
@dataclasses.dataclass(frozen=True)
class MLPNetwork(Network):
    """Dense hidden layers, the 2017 example's network; the decoder mirrors the encoder."""

    kind: ClassVar[str] = "mlp"
    architecture: ClassVar[str] = "mlp"
    description: ClassVar[str] = "dense hidden layers, the decoder mirrored"


@register
@dataclasses.dataclass(frozen=True)
class ConvNetwork(Network):
    """The keras.io example's two stride-2 convolutions before the dense layers, mirrored."""

    kind: ClassVar[str] = "conv"
    architecture: ClassVar[str] = "conv"
    description: ClassVar[str] = "two stride-2 convolutions (32, 64), then dense layers"
    # Inside a compiled loop, XLA's CPU convolutions ran many times slower than step by step
    # (README, Speed), so this network trains in Keras' loop.
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def check_data(self, data: Any) -> None:
        image_side(data.pixels)
