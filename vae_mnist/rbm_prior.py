"""Rolfe's Boltzmann prior (Discrete VAEs, ICLR 2017): a learned RBM over binary units.

The kind ``rbm``: the code's units split into two halves, ``p(z) = exp(-E(z)) / Z`` with
``E(z) = -a1·z1 - a2·z2 - z1ᵀ W z2``, whose biases and coupling are weights learned with the
rest of the VAE. It pairs with a binary posterior (``spike_exponential``, Rolfe's smoothing, or
``bernoulli``). How training relaxes the prior's term is its ``relaxation``:

- ``closed_form`` (Rolfe 2017): for a factorial q, ``KL(q ‖ p) = -H(q) + E_q[E(z)] + log Z``,
  the entropy and the expected energy in closed form, whatever the decoder sees;
- ``gumbolt`` (Khoshaman & Amin 2018): the energy at the posterior's relaxed sample ζ (a
  posterior that offers ``relaxed_bits``: the binary Concrete of ``bernoulli``),
  ``-H(q) + E(ζ) + log Z`` for the ELBO and ``log q̃(ζ|x) + E(ζ) + log Z`` per sample for the
  importance-weighted objective, with the discrete log Z. Validation and evaluation take exact
  bits either way.
- ``mean_field`` (DVAE#, Vahdat, Andriyash & Macready 2018): the prior relaxed to a density over
  the smoothed sample ζ (a posterior that offers ``smoothed_density``: DVAE++'s or DVAE#'s
  smoothing), ``p(ζ) = Σ_z p(z) r(ζ|z)``. With ``g = log r(ζ|1) - log r(ζ|0)`` per unit the sum
  is an RBM's partition function with its biases shifted by g::

      log p(ζ) = Σ_i log r(ζ_i|0) + log Z(a + g) - log Z(a),

  and log Z(a + g), a sum over 2^N states for every sample, is bounded below by mean-field
  (`vae_mnist.rbm.mean_field_log_partition`, ``mean_field_iterations`` sweeps), so the
  per-sample term ``log q(ζ|x) - log p(ζ)`` gives a bound on the model's likelihood, for the
  ELBO and the importance-weighted objective alike. The model is the smoothing's own (the
  decoder reads ζ ~ r(ζ|z)), so evaluation's exact bits measure the model this trains.

The gradient of log Z, ``E_p[-∂E/∂θ]``, comes from persistent block Gibbs chains of the prior
(non-trainable variables advanced `gibbs_sweeps` sweeps per training step and saved with the
model, so a resumed run keeps them), or, with ``log_partition_gradient`` ``exact`` (or
``auto``) and a half small enough to enumerate in every step, from the enumerated log Z itself.

Which log Z the loss *shows* (its value carries no gradient, except with the exact gradient):
with the exact gradient, the log Z of the current parameters, enumerated inside the step;
otherwise the value in the variable ``log_partition``, which a callback refreshes at the start
of every epoch and before every validation, so the logged loss and KL are the negative ELBO
and the KL at every size. The refresh enumerates in numpy where the smaller half has at most
`IN_GRAPH_EXACT_UNITS` units, and otherwise runs annealed importance sampling (`ais_runs` runs
of `ais_refresh_steps` steps): the value carries no gradient, so a shorter annealing than
evaluation's `ais_steps` serves it, its error far below the epoch-to-epoch noise of the logged
loss. Evaluation calls `prepare_evaluation` first, which computes log Z in numpy (exactly where
the smaller half has at most `EXACT_LOG_PARTITION_UNITS` units, else by AIS of `ais_steps`
steps, with its standard error) and uses that value from then on.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from vae_mnist.backend import keras, ops, to_numpy
from vae_mnist.latent import FactorialBernoulli, Posterior, Prior, TensorLike, require_posterior
from vae_mnist.rbm import (
    annealed_importance_sampling_log_partition,
    bernoulli_entropy,
    enumerated_log_partition,
    exact_log_partition,
    expected_rbm_energy,
    gibbs_sample_numpy,
    gibbs_step,
    mean_field_log_partition,
    rbm_energy,
)
from vae_mnist.settings import ConfigError, UsageError, register, setting

# The training step, or the refresh of its logged log Z, may enumerate an RBM half of up to
# this many units (2^16 states).
IN_GRAPH_EXACT_UNITS = 16
# An RBM half is enumerated exactly for log Z up to this many units (2^20 states).
EXACT_LOG_PARTITION_UNITS = 20
# The largest half: Rolfe's and Khoshaman & Amin's largest RBMs have 2 x 128 units.
MAX_HALF_UNITS = 128
# Block Gibbs sweeps from random states before a prior sample is decoded, for figures.
PRIOR_SAMPLE_GIBBS_STEPS = 1000
LOG_PARTITION_METHODS = ("auto", "exact", "ais")
# The coupling W starts from N(0, 0.01²); the biases start at zero.
COUPLING_SCALE = 0.01
# In a run's first epoch the logged log Z is refreshed after every call into the training
# steps that ends at least this many steps after the last refresh: each call of the compiled
# chunks, and every 100th of PyTorch's one-step calls.
FIRST_EPOCH_REFRESH_STEPS = 100


@register
@dataclasses.dataclass(frozen=True)
class RBMPrior(Prior):
    """A restricted Boltzmann machine over the posterior's binary units (see the module)."""

    kind: ClassVar[str] = "rbm"
    description: ClassVar[str] = "a learned RBM over binary units (Rolfe 2017)"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"sample", "structure", "partition_function"}
    )

    halves: tuple[int, ...] = setting(
        (16, 16), "binary units of the RBM's two halves (e.g. 16,16)", length=2
    )
    chains: int = setting(
        100, "persistent Gibbs chains that estimate the gradient of log Z", positive=True
    )
    gibbs_sweeps: int = setting(
        1, "block Gibbs sweeps of the chains per training step", positive=True
    )
    log_partition_gradient: str = setting(
        "chains",
        "the gradient of log Z from the persistent chains, or exact (enumerated "
        f"inside the step; a half of at most {IN_GRAPH_EXACT_UNITS} units), or auto (exact "
        "where it can be, chains otherwise)",
        choices=("chains", "exact", "auto"),
    )
    relaxation: str = setting(
        "closed_form",
        "the RBM's term in training, closed_form (E_q[E(z)] for a factorial q, Rolfe "
        "2017), gumbolt (the energy at the posterior's relaxed sample, Khoshaman & Amin "
        "2018; a bernoulli posterior; trains with --objective iwae too) or mean_field (the "
        "prior's density of the smoothed sample, its sum over states by mean-field, DVAE# "
        "2018; overlapping smoothings; trains with --objective iwae too)",
        choices=("closed_form", "gumbolt", "mean_field"),
    )
    mean_field_iterations: int = setting(
        10,
        "fixed-point sweeps of the mean-field bound that the mean_field relaxation "
        "takes for each sample",
        positive=True,
    )
    ais_runs: int = setting(100, "annealed importance sampling runs for log Z", minimum=2)
    ais_steps: int = setting(10_000, "annealing steps of each AIS run for log Z", positive=True)
    ais_refresh_steps: int = setting(
        1_000,
        "annealing steps of the AIS estimate of log Z that training's logged loss "
        "uses, refreshed each epoch (evaluation uses --ais-steps)",
        positive=True,
    )

    def check(self) -> None:
        if max(self.halves) > MAX_HALF_UNITS:
            raise ConfigError(
                f"halves {self.halves[0]},{self.halves[1]}: a half has at most "
                f"{MAX_HALF_UNITS} units"
            )
        if self.log_partition_gradient == "exact" and not self.enumerable:
            raise ConfigError(
                f"log_partition_gradient exact enumerates the smaller RBM half in every step, "
                f"which has {min(self.halves)} units: more than {IN_GRAPH_EXACT_UNITS}; use chains"
            )

    @property
    def enumerable(self) -> bool:
        """Whether log Z is cheap to enumerate: the smaller half has at most
        `IN_GRAPH_EXACT_UNITS` units."""
        return min(self.halves) <= IN_GRAPH_EXACT_UNITS

    @property
    def exact_gradient(self) -> bool:
        """Whether log Z's gradient is the enumerated one (else the persistent chains')."""
        if self.log_partition_gradient == "auto":
            return self.enumerable
        return self.log_partition_gradient == "exact"

    def offered_capabilities(self) -> frozenset[str]:
        # The relaxation is a setting, so these capabilities are the instance's.
        offered = set(self.capabilities)
        if self.relaxation in ("gumbolt", "mean_field"):
            offered.add("relaxed_energy")
        if self.relaxation == "mean_field":
            offered.add("smoothed_density")
        return frozenset(offered)

    def check_posterior(self, posterior: Posterior) -> None:
        require_posterior(self, posterior, "codes", "a binary posterior")
        hierarchical = posterior.offers("hierarchical") and not posterior.offers("expected_bits")
        if self.relaxation == "closed_form" and hierarchical:
            raise ConfigError(
                f"the rbm prior's relaxation closed_form needs a factorial posterior, and the "
                f"{posterior.kind} posterior is hierarchical (use --relaxation gumbolt)"
            )
        if self.relaxation == "mean_field" and not posterior.offers("smoothed_density"):
            raise ConfigError(
                f"the rbm prior's relaxation mean_field needs the density of the smoothed "
                f"sample, which the {posterior.kind} posterior does not give (use --posterior "
                "power_function or overlapping_exponential, or their hierarchical kinds)"
            )
        if self.relaxation == "gumbolt" and not posterior.offers("relaxed_bits"):
            raise ConfigError(
                f"the rbm prior's relaxation gumbolt evaluates its energy at relaxed bits, "
                f"which the {posterior.kind} posterior does not give (use --posterior "
                "bernoulli, or --relaxation closed_form)"
            )
        if posterior.classes != 2 or posterior.code_size != sum(self.halves):
            raise ConfigError(
                f"the rbm prior's halves {self.halves[0]} + {self.halves[1]} need "
                f"{sum(self.halves)} binary units, and the {posterior.kind} posterior has "
                f"{posterior.code_size} {'units' if posterior.classes == 2 else 'code values'}"
            )

    @property
    def first_units(self) -> int:
        return self.halves[0]

    @property
    def second_units(self) -> int:
        return self.halves[1]

    def create_state(self, host: Any, seed: int | None, posterior: Posterior) -> None:
        super().create_state(host, seed, posterior)
        add = host.add_weight
        bias1 = add(shape=(self.first_units,), initializer="zeros", name="bias1")
        bias2 = add(shape=(self.second_units,), initializer="zeros", name="bias2")
        coupling = add(
            shape=tuple(self.halves),
            initializer=keras.initializers.RandomNormal(stddev=COUPLING_SCALE, seed=seed),
            name="coupling",
        )
        # The chains start from uniformly random states, drawn under the seed.
        rng = np.random.default_rng(seed)
        states = [
            (rng.random((self.chains, units)) < 0.5).astype("float32") for units in self.halves
        ]
        chain_first, chain_second = (
            add(
                shape=state.shape,
                initializer=lambda shape, dtype=None, state=state: state,
                name=name,
                trainable=False,
            )
            for state, name in zip(states, ("chain_first", "chain_second"), strict=True)
        )
        log_partition = add(
            shape=(),
            initializer=keras.initializers.Constant(sum(self.halves) * math.log(2.0)),
            name="log_partition",
            trainable=False,
        )
        # The chains draw from the posterior's noise stream, before its own draw in each step,
        # so runs repeat those of version 2, whose one latent layer drew both.
        self.attach(
            bias1=bias1,
            bias2=bias2,
            coupling=coupling,
            chain_first=chain_first,
            chain_second=chain_second,
            log_partition=log_partition,
            seed_generator=posterior.seed_generator,
            evaluation_log_partition=None,
        )

    def _halves_of(self, values: TensorLike) -> tuple[TensorLike, TensorLike]:
        """``(..., n1 + n2)`` → ``(..., n1)`` and ``(..., n2)``."""
        return values[..., : self.first_units], values[..., self.first_units :]

    def _weights(self) -> tuple[TensorLike, TensorLike, TensorLike]:
        return self.bias1, self.bias2, self.coupling

    def training_update(self) -> None:
        """Advance the persistent chains by `gibbs_sweeps` block Gibbs sweeps."""
        first, second = self.chain_first, self.chain_second
        # A Python loop: the sweep count is a constant, so the compiled step unrolls it.
        for _ in range(self.gibbs_sweeps):
            first, second = gibbs_step(first, second, *self._weights(), self.seed_generator)
        self.chain_first.assign(first)
        self.chain_second.assign(second)

    def current_log_partition(self) -> TensorLike:
        """The log Z that the KL term and log p(z) add (see the module)."""
        if self.evaluation_log_partition is not None:
            return ops.convert_to_tensor(self.evaluation_log_partition, dtype=self.bias1.dtype)
        if self.exact_gradient:
            return enumerated_log_partition(*self._weights())
        return ops.convert_to_tensor(self.log_partition)

    def kl_divergence(self, distribution: Any) -> TensorLike | None:
        """``KL(q ‖ p) = -H(q) + E_q[E(z)] + log Z`` per row, ``(batch,)`` nats, for a factorial q.

        E_q[E(z)] is E at the bits' expectations: sigmoid(logits) for a factorial q, or, for a
        hierarchical one, E[z | ζ] given its training sample, whose expectation over ζ is
        E_q[E(z)] (the units are independent given ζ, and E is linear in each unit). The
        gradient of log Z is not here but in `auxiliary_loss`.
        """
        if not isinstance(distribution, FactorialBernoulli):
            return None
        logits = distribution.logits
        expectations = distribution.expectations
        if expectations is None:
            expectations = ops.sigmoid(logits)
        first, second = self._halves_of(expectations)
        expected_energy = expected_rbm_energy(first, second, *self._weights())
        if distribution.boundary_weights is not None:
            expected_energy = expected_energy + self._boundary_term(distribution, first, second)
        return -bernoulli_entropy(logits) + expected_energy + self.current_log_partition()

    def _boundary_term(
        self, distribution: FactorialBernoulli, first: TensorLike, second: TensorLike
    ) -> TensorLike:
        """Zero in value; its gradient is that of the bits' steps in the sampling noise.

        A bit z_i = 1[ρ_i > 1 - q_i] moves its step as q_i moves, and at the step the energy
        jumps by its slope ``∂E/∂z_i = -a_i - (W z_other)_i`` (E is linear in z_i), evaluated
        where ζ_i = 0, as for an unset bit. So ``∂E_q[E]/∂φ`` gains ``E[(1 - z_i)/(1 - q_i)
        ∂E/∂z_i] ∂q_i/∂φ``: the boundary weights times the slope, without gradient, times
        ``q - stop_gradient(q)`` (Rolfe 2017, Eq. 12).
        """
        bias1, bias2, coupling = self._weights()
        # (batch, n2) @ (n2, n1) -> (batch, n1), and (batch, n1) @ (n1, n2) -> (batch, n2):
        # each half's slope given the other half.
        slope = ops.concatenate(
            [
                -bias1 - ops.matmul(second, ops.transpose(coupling)),
                -bias2 - ops.matmul(first, coupling),
            ],
            axis=-1,
        )
        probabilities = ops.sigmoid(distribution.logits)
        weight = ops.stop_gradient(distribution.boundary_weights * slope)
        return ops.sum(weight * (probabilities - ops.stop_gradient(probabilities)), axis=-1)

    def relaxed_divergence(
        self, zeta: TensorLike, parameters: dict, sample_estimate: bool
    ) -> TensorLike:
        """The KL term at the posterior's relaxed training sample ζ, ``(batch,)`` nats.

        With the ``mean_field`` relaxation, DVAE#'s ``log q(ζ|x) - log p(ζ)`` (see the module),
        for either objective. With ``gumbolt``, GumBolt's: with ``sample_estimate`` (each
        sample's weight, for the importance-weighted bound), or for a posterior that is not
        factorial (a hierarchical one, whose logits l depend on the earlier groups' ζ)::

            log q̃(ζ|x) + E(ζ) + log Z,   log q̃(ζ|x) = Σ_u [ζ_u l_u - softplus(l_u)],

        and otherwise (the ELBO) the entropy in closed form, ``-H(q) + E(ζ) + log Z``. Both
        tend to the discrete terms as ζ tends to the bits; log Z is the discrete one, its
        gradient from the chains (`auxiliary_loss`) or the enumeration.
        """
        if self.relaxation == "mean_field":
            return self.posterior.smoothed_log_ratio(zeta, parameters, self)
        first, second = self._halves_of(zeta)
        energy = rbm_energy(first, second, *self._weights())
        distribution = self.posterior.distribution(parameters)
        if sample_estimate or not isinstance(distribution, FactorialBernoulli):
            log_q = self.posterior.relaxed_log_probability(zeta, parameters)
        else:
            log_q = -bernoulli_entropy(distribution.logits)
        return log_q + energy + self.current_log_partition()

    def smoothed_log_density(self, log_odds: TensorLike) -> TensorLike:
        """``log p(ζ) - Σ_i log r(ζ_i|0) ≥ MF(a + g) - log Z`` for the smoothing's log-odds g
        ``(..., n1 + n2)`` → ``(...)``, the mean-field bound on log Z(a + g) (see the module)."""
        shift_first, shift_second = self._halves_of(log_odds)
        bias1, bias2, coupling = self._weights()
        shifted = mean_field_log_partition(
            bias1 + shift_first, bias2 + shift_second, coupling, self.mean_field_iterations
        )
        return shifted - self.current_log_partition()

    def auxiliary_loss(self) -> TensorLike:
        """A term of value zero whose gradient is that of log Z: ``E_p[-∂E/∂θ]``.

        ``-mean over chains of E(z_chain)``, the chains' states held fixed, has the gradient
        ``-mean ∂E/∂θ``, a Monte-Carlo estimate of ``∂ log Z / ∂θ``; the same value is subtracted
        without gradient, so the logged loss stays the negative ELBO. With the exact gradient
        the KL term's log Z carries it, and this term is zero.
        """
        if self.exact_gradient:
            return ops.zeros((), dtype=self.bias1.dtype)
        first = ops.stop_gradient(ops.convert_to_tensor(self.chain_first))
        second = ops.stop_gradient(ops.convert_to_tensor(self.chain_second))
        surrogate = -ops.mean(rbm_energy(first, second, *self._weights()))
        return surrogate - ops.stop_gradient(surrogate)

    def log_density(self, z: TensorLike) -> TensorLike:
        """``log p(z) = -E(z) - log Z``, z ``(..., n1 + n2)`` → ``(...)``."""
        first, second = self._halves_of(z)
        return -rbm_energy(first, second, *self._weights()) - self.current_log_partition()

    def numpy_weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The biases a1, a2 and the coupling W as numpy arrays."""
        return tuple(to_numpy(weight) for weight in self._weights())  # type: ignore[return-value]

    def structure(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the coupling figure draws: the biases a1, a2 and the coupling W."""
        return self.numpy_weights()

    def sample(self, count: int, seed: int) -> np.ndarray:
        """Binary z ``(count, n1 + n2)`` by block Gibbs sampling, numpy float32.

        Each of `count` independent chains runs `PRIOR_SAMPLE_GIBBS_STEPS` sweeps from a random
        state. The model decodes them through the posterior's `decoder_input`, so a smoothed
        posterior's decoder sees ζ ~ r(ζ | z), not the bits (`VAE.sample_codes`).
        """
        first, second = gibbs_sample_numpy(
            *self.numpy_weights(), count, PRIOR_SAMPLE_GIBBS_STEPS, np.random.default_rng(seed)
        )
        return np.concatenate([first, second], axis=1)

    def exact_log_partition_possible(self) -> bool:
        return min(self.halves) <= EXACT_LOG_PARTITION_UNITS

    def check_evaluation(self, log_partition: str = "auto", **options: Any) -> None:
        """Refuse, before anything is computed, a log Z that cannot be had."""
        if log_partition not in LOG_PARTITION_METHODS:
            raise UsageError(
                f"unknown --log-partition {log_partition!r} "
                f"(choose from {', '.join(LOG_PARTITION_METHODS)})"
            )
        if log_partition == "exact" and not self.exact_log_partition_possible():
            raise UsageError(
                f"--log-partition exact enumerates the smaller half of the RBM, which has "
                f"{min(self.halves)} units: more than {EXACT_LOG_PARTITION_UNITS}; use "
                "--log-partition ais or auto"
            )

    def annealed_log_partition(
        self, seed: Any = 0, steps: int | None = None
    ) -> tuple[float, float]:
        """log Z of the current parameters by AIS (`ais_runs` runs of `steps` steps, by
        default `ais_steps`), and its standard error, in numpy."""
        return annealed_importance_sampling_log_partition(
            *self.numpy_weights(),
            chains=self.ais_runs,
            steps=self.ais_steps if steps is None else steps,
            rng=np.random.default_rng(seed),
        )

    def refreshed_log_partition(self, seed: Any) -> float:
        """The logged log Z of the current parameters, in numpy: enumerated where the smaller
        half has at most `IN_GRAPH_EXACT_UNITS` units, else by AIS of `ais_refresh_steps`."""
        if self.enumerable:
            return exact_log_partition(*self.numpy_weights())
        return self.annealed_log_partition(seed, steps=self.ais_refresh_steps)[0]

    def variables_loaded(self) -> None:
        """A small RBM's logged log Z, enumerated, for a model saved before the refresh was
        its source (until then its step enumerated the value, and the variable kept the
        starting (n1 + n2) log 2). Exact and cheap, so every load may do it."""
        if not self.exact_gradient and self.enumerable:
            self.log_partition.assign(self.refreshed_log_partition(0))

    def callbacks(self) -> list:
        """Where the step does not enumerate log Z, a callback that refreshes the logged one."""
        return [] if self.exact_gradient else [_log_partition_refresh(self)]

    def prepare_evaluation(self, log_partition: str = "auto", seed: int = 0, **options) -> dict:
        """Compute log Z in numpy and use it from now on; return it as metrics.

        ``exact`` enumerates the smaller half, ``ais`` runs annealed importance sampling
        (`ais_runs` runs of `ais_steps` steps), ``auto`` is exact where possible.
        """
        self.check_evaluation(log_partition)
        weights = self.numpy_weights()
        if log_partition == "exact" or (
            log_partition == "auto" and self.exact_log_partition_possible()
        ):
            value = exact_log_partition(*weights, max_enumerated_units=EXACT_LOG_PARTITION_UNITS)
            method, error = "exact", 0.0
        else:
            value, error = self.annealed_log_partition(seed)
            method = "ais"
        self.attach(evaluation_log_partition=float(value))
        self.log_partition.assign(float(value))
        return {
            "log_partition": float(value),
            "log_partition_method": method,
            "log_partition_standard_error": float(error),
        }


def _log_partition_refresh(prior: RBMPrior) -> Any:
    """A Keras callback that sets the prior's ``log_partition`` to the current parameters' log Z
    (`RBMPrior.refreshed_log_partition`) at the start of each epoch and before each
    validation, so that the loss and KL that training logs use a log Z at most one epoch old
    (the step enumerates it only where its gradient needs it); in a run's first epoch, also
    every `FIRST_EPOCH_REFRESH_STEPS` steps. It skips a refresh where no training step ran
    since the last (an epoch's start right after the previous validation). Each estimate is
    seeded by the epoch and the step, so runs repeat."""

    class LogPartitionRefresh(keras.callbacks.Callback):
        epoch = 0
        stale = True
        # The first epoch's steps that ran before its last refresh.
        steps_refreshed = 0

        def refresh(self, stream: int) -> None:
            if self.stale:
                prior.log_partition.assign(prior.refreshed_log_partition((self.epoch, stream)))
                self.stale = False

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.refresh(0)

        def on_train_batch_end(self, batch, logs=None):
            self.stale = True
            # From W = 0 the coupling grows fastest in the first epoch, and a log Z as old as
            # the epoch's start would show a KL far below zero there; later epochs move it
            # little.
            if self.epoch == 0 and batch + 1 - self.steps_refreshed >= FIRST_EPOCH_REFRESH_STEPS:
                self.steps_refreshed = batch + 1
                # On JAX the steps keep the model's state apart from its variables until the
                # epoch ends; writing it back first lets the refresh read the weights these
                # steps reached (the next steps then start from the variables, log Z included).
                if hasattr(self._model, "jax_state_sync"):
                    self._model.jax_state_sync()
                self.refresh(2 + batch)

        def on_test_begin(self, logs=None):
            self.refresh(1)

    return LogPartitionRefresh()
