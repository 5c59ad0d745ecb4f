"""The optimizers, as parts: Keras' RMSprop, Adam and Adagrad with a learning-rate schedule."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from vae_mnist.backend import keras
from vae_mnist.settings import Part, register, setting

# Burda et al. (2015) train 3^i epochs at learning rate 1e-3 · 10^(-i/7), for i = 0..7.
IWAE_SCHEDULE_STAGES = 8
LEARNING_RATE_SCHEDULES = ("constant", "iwae")


@dataclasses.dataclass(frozen=True)
class Optimizer(Part):
    """The base of the optimizer kinds: a Keras optimizer class and its shared settings."""

    family: ClassVar[str] = "optimizer"
    keras_class: ClassVar[str]

    learning_rate: float = setting(1e-3, "the optimizer's learning rate", positive=True)
    optimizer_epsilon: float = setting(
        1e-7, "the optimizer's epsilon (Keras' default 1e-7)", positive=True
    )
    weight_decay: float = setting(
        0.0, "decoupled weight decay per step (the paper's N(0, I) prior on the weights)"
    )
    learning_rate_schedule: str = setting(
        "constant",
        "constant, or iwae: Burda et al.'s 3^i epochs at learning_rate * 10^(-i/7), i = 0..7",
        choices=LEARNING_RATE_SCHEDULES,
    )

    def schedule(self, steps_per_epoch: int) -> Any:
        """The learning rate, or its schedule by optimizer step.

        ``iwae``: stage i (i = 0..7) lasts 3^i epochs at ``learning_rate · 10^(-i/7)``; the last
        rate holds after the 3,280 epochs of the schedule.
        """
        if self.learning_rate_schedule == "constant":
            return self.learning_rate
        boundaries, epochs = [], 0
        for stage in range(IWAE_SCHEDULE_STAGES - 1):
            epochs += 3**stage
            boundaries.append(epochs * steps_per_epoch)
        values = [
            self.learning_rate * 10.0 ** (-stage / 7.0) for stage in range(IWAE_SCHEDULE_STAGES)
        ]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)

    def build(self, steps_per_epoch: int) -> Any:
        """The Keras optimizer, with its learning rate (or schedule) and decay."""
        return getattr(keras.optimizers, self.keras_class)(
            learning_rate=self.schedule(steps_per_epoch),
            epsilon=self.optimizer_epsilon,
            # None, not 0.0: Keras then leaves the decay out of the update altogether.
            weight_decay=self.weight_decay or None,
        )

    @property
    def resumes_with_new_learning_rate(self) -> bool:
        """A resumed run may take a new constant learning rate (to go on more gently)."""
        return self.learning_rate_schedule == "constant"


@register
@dataclasses.dataclass(frozen=True)
class RMSprop(Optimizer):
    kind: ClassVar[str] = "rmsprop"
    keras_class: ClassVar[str] = "RMSprop"
    description: ClassVar[str] = "RMSprop (Tieleman & Hinton 2012), the 2017 example's"


@register
@dataclasses.dataclass(frozen=True)
class Adam(Optimizer):
    kind: ClassVar[str] = "adam"
    keras_class: ClassVar[str] = "Adam"
    description: ClassVar[str] = "Adam (Kingma & Ba 2015)"


@register
@dataclasses.dataclass(frozen=True)
class Adagrad(Optimizer):
    kind: ClassVar[str] = "adagrad"
    keras_class: ClassVar[str] = "Adagrad"
    description: ClassVar[str] = "Adagrad (Duchi et al. 2011), Kingma & Welling's"
