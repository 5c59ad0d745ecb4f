"""The optimizers, as parts: Keras' RMSprop, Adam and Adagrad with a learning-rate schedule."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from vae_mnist.backend import keras
from vae_mnist.settings import ConfigError, Part, register, setting

# Burda et al. (2015) train 3^i epochs at learning rate 1e-3 · 10^(-i/7), for i = 0..7.
IWAE_SCHEDULE_STAGES = 8
LEARNING_RATE_SCHEDULES = ("constant", "iwae", "stages")


@dataclasses.dataclass(frozen=True)
class Optimizer(Part):
    """The base of the optimizer kinds: a Keras optimizer class and its shared settings."""

    family: ClassVar[str] = "optimizer"
    required_attributes: ClassVar[tuple[str, ...]] = ("keras_class",)
    keras_class: ClassVar[str]

    learning_rate: float = setting(1e-3, "the optimizer's learning rate", positive=True)
    optimizer_epsilon: float = setting(
        1e-7, "the optimizer's epsilon (Keras' default 1e-7)", positive=True
    )
    weight_decay: float = setting(
        0.0, "decoupled weight decay per step (the paper's N(0, I) prior on the weights)"
    )
    gradient_clip_norm: float = setting(
        0.0, "rescale each step's gradient to at most this global norm (0: no clipping)"
    )
    learning_rate_schedule: str = setting(
        "constant",
        "constant; iwae: Burda et al.'s 3^i epochs at learning_rate * 10^(-i/7), i = 0..7; or "
        "stages: learning_rate until the first of stage_epochs, then each of "
        "stage_learning_rates in turn",
        choices=LEARNING_RATE_SCHEDULES,
    )
    stage_epochs: tuple[int, ...] = setting(
        (),
        "the stages schedule: the epoch counts after which each later stage begins, e.g. 200,500",
        may_be_empty=True,
    )
    stage_learning_rates: tuple[float, ...] = setting(
        (),
        "the stages schedule: the learning rate of each later stage, e.g. 3e-4,1e-4",
        may_be_empty=True,
    )

    def check(self) -> None:
        staged = self.learning_rate_schedule == "stages"
        if not staged and (self.stage_epochs or self.stage_learning_rates):
            raise ConfigError(
                "stage_epochs and stage_learning_rates are settings of the stages "
                f"learning_rate_schedule, and this run's is {self.learning_rate_schedule}"
            )
        if staged and not self.stage_epochs:
            raise ConfigError("the stages learning_rate_schedule needs stage_epochs, e.g. 200,500")
        if len(self.stage_epochs) != len(self.stage_learning_rates):
            raise ConfigError(
                f"stage_epochs ({len(self.stage_epochs)}) and stage_learning_rates "
                f"({len(self.stage_learning_rates)}) must have one value per later stage"
            )
        if list(self.stage_epochs) != sorted(set(self.stage_epochs)):
            raise ConfigError(f"stage_epochs must increase, got {list(self.stage_epochs)}")

    def schedule(self, steps_per_epoch: int) -> Any:
        """The learning rate, or its schedule by optimizer step.

        ``iwae``: stage i (i = 0..7) lasts 3^i epochs at ``learning_rate · 10^(-i/7)``; the last
        rate holds after the 3,280 epochs of the schedule. ``stages``: ``learning_rate`` for the
        first ``stage_epochs[0]`` epochs, then ``stage_learning_rates[i]`` from epoch
        ``stage_epochs[i]`` on.
        """
        if self.learning_rate_schedule == "constant":
            return self.learning_rate
        if self.learning_rate_schedule == "stages":
            epochs, values = self.stage_epochs, [self.learning_rate, *self.stage_learning_rates]
        else:
            epochs = [
                sum(3**i for i in range(stage + 1)) for stage in range(IWAE_SCHEDULE_STAGES - 1)
            ]
            values = [
                self.learning_rate * 10.0 ** (-stage / 7.0) for stage in range(IWAE_SCHEDULE_STAGES)
            ]
        # Keras' piecewise schedule keeps a value up to and including its boundary, and the
        # optimizer reads it at the count of steps already taken: so a stage that begins after
        # `epoch` epochs has its boundary at that epoch's last step.
        boundaries = [epoch * steps_per_epoch - 1 for epoch in epochs]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)

    def build(self, steps_per_epoch: int) -> Any:
        """The Keras optimizer, with its learning rate (or schedule), decay and clipping."""
        return getattr(keras.optimizers, self.keras_class)(
            learning_rate=self.schedule(steps_per_epoch),
            epsilon=self.optimizer_epsilon,
            # None, not 0.0: Keras then leaves the decay out of the update altogether.
            weight_decay=self.weight_decay or None,
            global_clipnorm=self.gradient_clip_norm or None,
        )

    @property
    def resumes_with_new_learning_rate(self) -> bool:
        """A resumed run may take a new constant learning rate (to go on more gently)."""
        return self.learning_rate_schedule == "constant"


def backend_neutral_optimizers() -> dict[str, type]:
    """Keras' optimizer classes by name, for loading a model saved on any backend.

    On PyTorch, Keras builds each optimizer as a PyTorch-only subclass of the same name and
    saves the model naming that subclass's module, which imports torch and updates only torch
    tensors. Loading such a file with these classes gives the backend's own optimizer instead,
    with the same variables, so a run trained on PyTorch continues on JAX or TensorFlow and
    loads where PyTorch is not installed.
    """
    return {
        name: value
        for name, value in vars(keras.optimizers).items()
        if isinstance(value, type) and issubclass(value, keras.optimizers.Optimizer)
    }


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
