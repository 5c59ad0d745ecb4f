"""The encoder and decoder networks: functional Keras models built from a few sizes.

Both networks take and give flat vectors, so every latent and likelihood plugs into every
architecture. The encoder ends in one Dense head per parameter of the latent posterior (for the
Gaussian, ``z_mean`` and ``z_log_var``); the decoder ends in one head per parameter of the
likelihood (for the Bernoulli, the pixel ``probabilities``). The parts name their heads; the
network kinds only lay the layers out.

- ``mlp``: Dense hidden layers, the 2017 example's network (one layer of 256 ReLU units); the
  decoder mirrors the encoder's hidden layers, or has none (``decoder_layers``).
- ``conv``: the keras.io VAE example's network: two stride-2 Conv2D layers of 32 and 64 filters
  and a Dense layer; the decoder mirrors it with Conv2DTranspose layers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from vae_mnist.backend import keras
from vae_mnist.settings import ConfigError, Part, kind_of, register, setting

# name -> (units, activation or None), in the order the model outputs them.
Heads = Mapping[str, tuple[int, str | None]]
CONV_FILTERS = (32, 64)
CONV_KERNEL = 3
ACTIVATIONS = ("relu", "tanh")
DECODER_LAYERS = ("mirrored", "none")


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
    """x → one output per head, as the network kind `architecture` lays it out
    (`Network.build_encoder`; kept for code written against earlier versions)."""
    kind = kind_of("network", architecture)
    network = kind(hidden_layers=tuple(hidden_layers), activation=activation)
    return network.build_encoder(heads, original_dim)


def build_decoder(
    heads: Heads,
    code_size: int = 2,
    original_dim: int = 784,
    hidden_layers: Sequence[int] = (256,),
    activation: str = "relu",
    architecture: str = "mlp",
) -> keras.Model:
    """z → one output per head, as the network kind `architecture` lays it out
    (`Network.build_decoder`; kept for code written against earlier versions)."""
    kind = kind_of("network", architecture)
    network = kind(hidden_layers=tuple(hidden_layers), activation=activation)
    return network.build_decoder(heads, code_size, original_dim)


def _dense_stack(hidden: Any, sizes: Sequence[int], activation: str, prefix: str) -> Any:
    """`hidden` through Dense layers of `sizes`, named ``{prefix}_hidden_1``, ...."""
    for number, units in enumerate(sizes, start=1):
        layer = keras.layers.Dense(units, activation=activation, name=f"{prefix}_hidden_{number}")
        hidden = layer(hidden)
    return hidden


def _dense_heads(hidden: Any, heads: Heads) -> list:
    return [
        keras.layers.Dense(units, activation=activation, name=name)(hidden)
        for name, (units, activation) in heads.items()
    ]


@dataclasses.dataclass(frozen=True)
class Network(Part):
    """The base of the network kinds: the encoder (x → the posterior's heads) and the decoder
    (z → the likelihood's heads), both on flat vectors.

    ``build_encoder(heads, pixels)`` and ``build_decoder(heads, code_size, pixels)``: the two
    Keras models, which the base lays out from ``hidden_layers`` and ``activation`` around what
    a kind adds: ``encoder_features(images, pixels)`` before the encoder's dense layers (the
    images themselves by default), ``decoder_hidden_layers()`` for the decoder's sizes (the
    encoder's in reverse order by default) and ``decoder_heads(hidden, heads, pixels)`` after
    the decoder's dense layers (a Dense layer per head by default); ``check_data(data)``: refuse
    images it cannot take.
    """

    family: ClassVar[str] = "network"
    # ``compiled_chunks``: its steps run faster as one compiled loop (`vae_mnist.chunks`).
    capabilities: ClassVar[frozenset[str]] = frozenset({"compiled_chunks"})

    # An empty list (`none` on the command line, a preset file's []) is allowed: the heads then
    # read their input directly, a linear network, the weakest a conditional prior p(z1|z2)
    # can have (README asks how much of the code's density an RBM adds beneath such a network).
    hidden_layers: tuple[int, ...] = setting(
        (256,),
        "units of the hidden layers, encoder order (comma list, e.g. 256,128; none, or [] in a "
        "preset file: no hidden layer, a linear network)",
        may_be_empty=True,
    )
    activation: str = setting("relu", "activation of the hidden layers", choices=ACTIVATIONS)

    def check_data(self, data: Any) -> None:
        """Every image size is fine by default."""

    def build_encoder(self, heads: Heads, pixels: int) -> keras.Model:
        """x ``(batch, pixels)`` → one output per head, each ``(batch, units)``."""
        images = keras.Input(shape=(pixels,), name="images")
        features = self.encoder_features(images, pixels)
        hidden = _dense_stack(features, self.hidden_layers, self.activation, "encoder")
        return keras.Model(images, _dense_heads(hidden, heads), name="encoder")

    def build_decoder(self, heads: Heads, code_size: int, pixels: int) -> keras.Model:
        """z ``(batch, code_size)`` → one output per head, each ``(batch, units)``; the first
        head is the decoded image (the pixel probabilities or the mean)."""
        code = keras.Input(shape=(code_size,), name="z")
        hidden = _dense_stack(code, self.decoder_hidden_layers(), self.activation, "decoder")
        return keras.Model(code, self.decoder_heads(hidden, heads, pixels), name="decoder")

    def decoder_hidden_layers(self) -> tuple[int, ...]:
        """The decoder's hidden layers: the encoder's, in reverse order."""
        return tuple(reversed(self.hidden_layers))

    def encoder_features(self, images: Any, pixels: int) -> Any:
        """What the encoder's dense layers read: the images themselves."""
        return images

    def decoder_heads(self, hidden: Any, heads: Heads, pixels: int) -> list:
        """The decoder's outputs from its last dense layer: a Dense layer per head."""
        return _dense_heads(hidden, heads)


@register
@dataclasses.dataclass(frozen=True)
class MLPNetwork(Network):
    """Dense hidden layers, the 2017 example's network; the decoder mirrors the encoder."""

    kind: ClassVar[str] = "mlp"
    description: ClassVar[str] = "dense hidden layers, the decoder mirrored or linear"

    # Rolfe (2017) gives his image decoder p(x|ζ) no hidden layer, to leave the shaping of the
    # pixels to the latent layers: `none` builds that decoder beside an encoder of any depth.
    decoder_layers: str = setting(
        "mirrored",
        "the decoder's hidden layers: mirrored (the encoder's, in reverse order) or none (the "
        "heads read the code: a linear decoder, as Rolfe's p(x|ζ))",
        choices=DECODER_LAYERS,
    )

    def decoder_hidden_layers(self) -> tuple[int, ...]:
        """The encoder's hidden layers in reverse order, or none."""
        return () if self.decoder_layers == "none" else super().decoder_hidden_layers()


@register
@dataclasses.dataclass(frozen=True)
class ConvNetwork(Network):
    """The keras.io example's two stride-2 convolutions before the dense layers, mirrored."""

    kind: ClassVar[str] = "conv"
    description: ClassVar[str] = "two stride-2 convolutions (32, 64), then dense layers"
    # Inside a compiled loop, XLA's CPU convolutions ran many times slower than step by step
    # (README, Speed), so this network trains in Keras' loop.
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def check_data(self, data: Any) -> None:
        image_side(data.pixels)

    def encoder_features(self, images: Any, pixels: int) -> Any:
        """The convolutions over the image, flattened for the dense layers."""
        layers = keras.layers
        side = image_side(pixels)
        # (batch, side*side) -> (batch, side, side, 1)
        hidden = layers.Reshape((side, side, 1), name="encoder_image")(images)
        for number, filters in enumerate(CONV_FILTERS, start=1):
            hidden = layers.Conv2D(
                filters,
                CONV_KERNEL,
                strides=2,
                padding="same",
                activation=self.activation,
                name=f"encoder_conv_{number}",
            )(hidden)
        return layers.Flatten(name="encoder_flatten")(hidden)

    def decoder_heads(self, hidden: Any, heads: Heads, pixels: int) -> list:
        """The dense layers' output expanded to a quarter-size image, then the transposed
        convolutions back to full size, a last one per head."""
        layers = keras.layers
        side = image_side(pixels)
        smallest = side // 4
        expand = smallest * smallest * CONV_FILTERS[-1]
        hidden = layers.Dense(expand, activation=self.activation, name="decoder_expand")(hidden)
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
                activation=self.activation,
                name=f"decoder_deconv_{number}",
            )(hidden)
        outputs = []
        for name, (units, activation) in heads.items():
            if units != pixels:
                raise ConfigError(f"a conv decoder head must have {pixels} units")
            image = layers.Conv2DTranspose(
                1, CONV_KERNEL, padding="same", activation=activation, name=f"{name}_map"
            )(hidden)
            # (batch, side, side, 1) -> (batch, side*side)
            outputs.append(layers.Reshape((pixels,), name=name)(image))
        return outputs
