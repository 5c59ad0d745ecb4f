"""The objectives: what training minimises, as parts, and the bounds as pure functions.

Kinds:

- ``elbo``: the negative ELBO, ``mean_x [-log p(x|z) + w · KL(q(z|x) ‖ p(z))]`` with one sample
  of z per image, the KL weight w of a β-VAE (Higgins et al. 2017; w = 1 is the ELBO), and a
  linear warm-up (Sønderby et al. 2016): w rises from 0 to its value over the first
  ``kl_warmup_epochs`` epochs, ``w_e = kl_weight · min(1, e / N)`` in epoch e = 0, 1, ...
- ``iwae``: the importance-weighted bound of Burda, Grosse & Salakhutdinov (2015) with K
  samples per image.

history.csv logs the objective as ``loss`` and the ELBO's terms beside it
(``reconstruction_loss``, ``kl_loss``), so runs of different objectives stay comparable.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from vae_mnist.backend import keras, ops
from vae_mnist.settings import ConfigError, Part, register, setting

TensorLike = Any


def log_mean_exp(values: TensorLike, axis: int = -1) -> TensorLike:
    """``log (1/K) Σ_k exp(v_k)`` along `axis`: ``logsumexp(v) - log K``, stable for any v."""
    count = ops.shape(values)[axis]
    return ops.logsumexp(values, axis=axis) - math.log(count)


def negative_elbo(reconstruction: TensorLike, kl: TensorLike, kl_weight: Any = None) -> TensorLike:
    """``mean_b [r_b + w · kl_b]``: the batch's mean of the per-image terms ``(batch,)``.

    Without a weight the sum is not scaled at all (w = 1), so the 2017 example's loss is
    computed exactly as it was.
    """
    if kl_weight is None:
        return ops.mean(reconstruction + kl)
    return ops.mean(reconstruction + kl_weight * kl)


def negative_iwae_bound(log_weights: TensorLike) -> TensorLike:
    """``-mean_b log (1/K) Σ_k w_bk`` from log-weights ``(batch, K)``:
    ``log w = log p(x|z_k) + log p(z_k) - log q(z_k|x)``; with K = 1 it is the negative ELBO."""
    return -ops.mean(log_mean_exp(log_weights, axis=1))


class Objective(Part):
    """The base of the objective kinds.

    ``loss(reconstruction, kl)``: the batch's loss from the per-image reconstruction term and
    KL (or ``loss(log_weights)``, from the (batch, samples) log-weights, where
    ``needs_log_weights``): the one method a kind must have. ``importance_samples``: samples of
    z per image that the loss needs (1 for the ELBO); ``needs_log_weights``: whether it takes
    the per-sample log-weights (the model then computes log q(z|x) and log p(z) of each sample)
    or the ELBO's terms; ``check_parts(posterior, prior)``: refuse a posterior or prior it cannot
    train; ``callbacks()``: Keras callbacks it needs during training; ``logged_values()``:
    values it logs per epoch; ``weighted_kl(term)``: a term of the KL that reaches the loss on
    its own (a prior's `auxiliary_loss`), weighed as the loss weighs the KL (a kind that weighs
    the KL must weigh this too); ``loss_name``: what its loss is, for the figures of a run's
    history.
    """

    family: ClassVar[str] = "objective"
    required_methods: ClassVar[tuple[str, ...]] = ("loss",)
    needs_log_weights: ClassVar[bool] = False
    # What the training curves call each logged value (its name, where it has no title).
    logged_titles: ClassVar[dict[str, str]] = {}
    importance_samples: int = 1

    def create_state(self, host: Any, seed: int | None) -> None:
        """No variables by default."""

    def check_parts(self, posterior: Any, prior: Any) -> None:
        """Every posterior and prior is fine by default."""

    def callbacks(self) -> list:
        return []

    def logged_values(self) -> dict[str, TensorLike]:
        return {}

    @property
    def logged_metrics(self) -> tuple[str, ...]:
        return ()

    def weighted_kl(self, term: TensorLike) -> TensorLike:
        """`term` as it is by default: a bound that takes the KL whole (the importance-weighted
        one, whose log-weights each hold the KL once, so a term beside them reaches every weight
        alike)."""
        return term

    @property
    def loss_name(self) -> str:
        """What the loss is, in a few words, for the figures' titles."""
        return "loss"


@register
@dataclasses.dataclass(frozen=True)
class ELBOObjective(Objective):
    """The negative ELBO with a KL weight and an optional linear warm-up (see the module)."""

    kind: ClassVar[str] = "elbo"
    description: ClassVar[str] = "the evidence lower bound, one sample per image"
    logged_titles: ClassVar[dict[str, str]] = {"kl_weight": "KL weight β during the warm-up"}

    kl_weight: float = setting(1.0, "the weight of the KL term (a beta-VAE; 1 is the ELBO)")
    kl_warmup_epochs: int = setting(
        0, "epochs over which the KL weight rises linearly from 0 (0: none)"
    )

    @property
    def weighted(self) -> bool:
        return self.kl_weight != 1.0 or self.kl_warmup_epochs > 0

    def create_state(self, host: Any, seed: int | None) -> None:
        if not self.weighted:
            return
        start = self.weight_at_epoch(0)
        host.kl_scale = host.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(start),
            trainable=False,
            name="kl_scale",
        )
        self.attach(kl_scale=host.kl_scale)

    def weight_at_epoch(self, epoch: int) -> float:
        """The KL weight during epoch `epoch` (0-based): ``kl_weight · min(1, epoch / N)``."""
        if self.kl_warmup_epochs == 0:
            return self.kl_weight
        return self.kl_weight * min(1.0, epoch / self.kl_warmup_epochs)

    def loss(self, reconstruction: TensorLike, kl: TensorLike) -> TensorLike:
        return negative_elbo(reconstruction, kl, self.kl_scale if self.weighted else None)

    def weighted_kl(self, term: TensorLike) -> TensorLike:
        """`term` times the KL's current weight, where the KL is weighted."""
        return term * self.kl_scale if self.weighted else term

    @property
    def loss_name(self) -> str:
        """The negative ELBO, or the sum with the KL weighted where it is."""
        if self.kl_warmup_epochs:
            # Not the ELBO while β rises, whatever it rises to.
            return f"reconstruction + β·KL, β → {self.kl_weight:g}"
        if self.weighted:
            return f"reconstruction + {self.kl_weight:g}·KL"
        return "negative ELBO"

    def callbacks(self) -> list:
        return [_warmup_callback(self)] if self.kl_warmup_epochs else []

    @property
    def logged_metrics(self) -> tuple[str, ...]:
        return ("kl_weight",) if self.kl_warmup_epochs else ()

    def logged_values(self) -> dict[str, TensorLike]:
        return {"kl_weight": self.kl_scale} if self.kl_warmup_epochs else {}


@register
@dataclasses.dataclass(frozen=True)
class IWAEObjective(Objective):
    """The importance-weighted bound with K samples per image (Burda et al. 2015)."""

    kind: ClassVar[str] = "iwae"
    description: ClassVar[str] = "the importance-weighted bound, K samples per image"
    needs_log_weights: ClassVar[bool] = True

    importance_samples: int = setting(
        5, "K, the samples of z per image in the importance-weighted bound", positive=True
    )

    def check_parts(self, posterior: Any, prior: Any) -> None:
        if posterior.offers("density"):
            return
        if posterior.offers("relaxed_density") and prior.offers("relaxed_density"):
            return
        if posterior.offers("smoothed_density") and prior.offers("smoothed_density"):
            # DVAE#: the density of the smoothed sample under the prior relaxed to ζ.
            return
        if prior.offers("relaxed_energy"):
            # GumBolt: the prior weighs the relaxed sample by its proxy log-ratio.
            return
        if posterior.offers("relaxed_bits") and prior.offers("relaxed_bits"):
            # The same proxy with a prior whose log-probability holds at the relaxed bits
            # (a Boltzmann prior's factorial twin), so that the twin trains as its RBM does.
            return
        raise ConfigError(
            f"the iwae objective weighs samples by their density, which the {posterior.kind} "
            f"posterior with the {prior.kind} prior does not give; use --objective elbo"
        )

    def loss(self, log_weights: TensorLike) -> TensorLike:
        return negative_iwae_bound(log_weights)

    @property
    def loss_name(self) -> str:
        return f"negative IWAE bound, K = {self.importance_samples}"


def _warmup_callback(objective: ELBOObjective) -> Any:
    """A Keras callback that sets the KL weight at the start of every epoch (resumes too)."""

    class KLWarmup(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            objective.kl_scale.assign(objective.weight_at_epoch(epoch))

    return KLWarmup()
