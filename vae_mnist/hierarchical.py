"""A hierarchical approximating posterior over binary units (after Rolfe 2017, section 3).

The kind ``hierarchical_bernoulli``: the N units fall into G equal groups, and each group is
conditioned on the groups before it, ``q(z|x) = Π_g q(z_g | x, ζ_<g)``, with

    q(z_g,i = 1 | x, ζ_<g) = sigmoid(a_g,i(x) + Σ_{j in groups before g} V_ji ζ_j),

where a(x) are the encoder's N logits and V a learned coupling of the units, used only from a
group to the groups after it (a strictly block-triangular mask), zero at the start, so the
posterior starts factorial. In training each group is drawn by the binary Concrete relaxation
given the relaxed ζ of the groups before it (as `bernoulli`, at its annealed temperature);
outside training the groups are drawn as exact bits given the bits before them.

The posterior is not factorial, so no prior has its KL in closed form: the model takes the
sample estimate ``log q(z|x) - log p(z)``, and with the RBM prior's GumBolt relaxation each
group's Bernoulli log-probability is evaluated at ζ (``relaxed_bits``). Rolfe conditions each
group through a neural network of x and ζ_<g; here the condition is linear in ζ_<g, added to
the encoder's logits, and with ``conditional_units`` H > 0 also a network of ζ_<g: one hidden
layer of H ReLU units, masked as in MADE (Germain et al. 2015) so that each group sees only the
groups before it, its output added to the logits (zero at the start). With
``conditional_reads_input`` that hidden layer reads the encoder's logits a(x) as well (unmasked,
since x is given to every group), so that, as in Rolfe's, the condition is a network of x and
ζ_<g together rather than a function of ζ_<g added to one of x.

The kinds ``hierarchical_overlapping_exponential`` and ``hierarchical_power_function`` group
DVAE++'s and DVAE#'s smoothed units the same way (Vahdat et al. 2018, with Rolfe's hierarchy):
each group's bits z_g ~ q(z_g | x, ζ_<g), each smoothed by the overlapping exponentials (or
power functions) r(ζ|z), the next group conditioned on ζ. Given the whole sample ζ the bits are
independent, ``E[z_i | ζ] = sigmoid(l_i + log r(ζ_i|1) - log r(ζ_i|0))`` (for the
exponentials ``sigmoid(l_i + β(2ζ_i - 1))``), so a prior whose
energy is linear in each unit takes its KL as ``-Σ_g H(q(z_g | x, ζ_<g)) + E(E[z|ζ]) + log Z``,
exact in expectation and differentiable through ζ (``expected_bits``). The last group's ζ
conditions nothing, so its bits' expectation q itself stands in for E[z|ζ] there, with less
variance (as DVAE++ does). Outside training, evaluation draws (z, ζ) group by group and weighs
z by ``log q(z|x, ζ) = Σ_g log q(z_g | x, ζ_<g)``, the decoder seeing that ζ, so that each
(z, ζ) is a draw of training's own q(z, ζ | x) and the weight ``log p(x|ζ) + log p(z) -
log q(z | x, ζ)`` (r(ζ|z) cancels) bounds the model that training fits. (A fresh
ζ' ~ r(ζ'|z) for the decoder gives a valid but looser bound: it loses how ζ placed the later
groups.)

The kind ``hierarchical_spike_exponential`` groups Rolfe's own spike-and-exponential units the
same way. There ζ > 0 only where the bit is set, so ``E[z_i | ζ]`` is the bit itself, a step
with no pathwise gradient; the KL's gradient through it comes from the jump at the step,
weighed over the unset bits (Rolfe 2017, Eq. 12; `HierarchicalSpikeExponentialPosterior`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from vae_mnist import noise
from vae_mnist.backend import keras, ops, to_numpy
from vae_mnist.discrete import (
    BernoulliPosterior,
    OverlappingExponentialPosterior,
    PowerFunctionPosterior,
    SpikeExponentialPosterior,
)
from vae_mnist.latent import FactorialBernoulli, TensorLike
from vae_mnist.relaxations import (
    bernoulli_bits,
    bernoulli_log_probability,
    binary_concrete_sample,
)
from vae_mnist.settings import ConfigError, register, setting


def group_mask(units: int, groups: int) -> np.ndarray:
    """``(units, units)`` float32: 1 where unit j's group comes before unit i's (row j, column
    i), so ``code @ (V · mask)`` gives each unit the weighted sum of the earlier groups only."""
    group = np.arange(units) // (units // groups)
    return (group[:, None] < group[None, :]).astype("float32")


def made_masks(units: int, groups: int, hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """The masks of a one-hidden-layer network from a code to its groups' logits, in which a
    group's outputs depend on the earlier groups only: ``(units, hidden)`` and ``(hidden,
    units)`` float32.

    Hidden unit h takes the degree m = h mod (G - 1); it reads the units of groups 0 to m and
    feeds those of groups m + 1 and later, so every path into group g starts in a group < g.
    """
    group = np.arange(units) // (units // groups)
    degree = np.arange(hidden) % max(groups - 1, 1)
    reads = group[:, None] <= degree[None, :]
    feeds = degree[:, None] < group[None, :]
    return reads.astype("float32"), feeds.astype("float32")


def conditional_units_setting() -> Any:
    """The hierarchical kinds' `conditional_units` setting (a field of each)."""
    return setting(
        0,
        "hidden ReLU units of a network of the earlier groups added to "
        "each group's logits (0: the linear condition alone)",
        minimum=0,
    )


def conditional_reads_input_setting() -> Any:
    """The hierarchical kinds' `conditional_reads_input` setting (a field of each)."""
    return setting(
        False,
        "the network of the earlier groups also reads the encoder's logits of every unit, so "
        "that each group's condition depends on x and the earlier groups together (Rolfe's)",
    )


def groups_setting() -> Any:
    """The hierarchical kinds' one `groups` setting (a field of each)."""
    return setting(
        2,
        "groups of units, each conditioned on those before",
        positive=True,
    )


class GroupedUnits:
    """What the hierarchical kinds share: the groups, the learned coupling V of each unit to
    the earlier groups' units, the conditional logits, and drawing group by group."""

    def check(self) -> None:
        super().check()
        if self.units % self.groups:
            raise ConfigError(
                f"the {self.kind} posterior's {self.units} units do not split into "
                f"{self.groups} equal groups"
            )
        if self.conditional_reads_input and not self.conditional_units:
            raise ConfigError(
                f"the {self.kind} posterior's conditional_reads_input needs a network of the "
                "earlier groups to read into: give conditional_units above 0"
            )

    def create_state(self, host: Any, seed: int | None) -> None:
        super().create_state(host, seed)
        host.group_coupling = host.add_weight(
            shape=(self.units, self.units), initializer="zeros", name="group_coupling"
        )
        self.attach(group_coupling=host.group_coupling, mask=group_mask(self.units, self.groups))
        if self.conditional_units:
            reads, feeds = made_masks(self.units, self.groups, self.conditional_units)
            host.conditional_hidden = host.add_weight(
                shape=(self.units, self.conditional_units),
                initializer=keras.initializers.GlorotUniform(seed=seed),
                name="conditional_hidden",
            )
            host.conditional_hidden_bias = host.add_weight(
                shape=(self.conditional_units,), initializer="zeros", name="conditional_hidden_bias"
            )
            # Zero at the start, so the posterior starts as the linear one (factorial).
            host.conditional_output = host.add_weight(
                shape=(self.conditional_units, self.units),
                initializer="zeros",
                name="conditional_output",
            )
            self.attach(
                conditional_hidden=host.conditional_hidden,
                conditional_hidden_bias=host.conditional_hidden_bias,
                conditional_output=host.conditional_output,
                conditional_masks=(reads, feeds),
            )
        if self.conditional_units and self.conditional_reads_input:
            # Unmasked: x is given to every group, so any unit's logit a(x) may feed any group.
            host.conditional_input = host.add_weight(
                shape=(self.units, self.conditional_units),
                initializer=keras.initializers.GlorotUniform(
                    seed=None if seed is None else seed + 1
                ),
                name="conditional_input",
            )
            self.attach(conditional_input=host.conditional_input)

    @property
    def group_size(self) -> int:
        return self.units // self.groups

    def conditional_logits(
        self, parameters: dict, code: TensorLike, input_term: TensorLike | None = None
    ) -> TensorLike:
        """Each unit's logit given the code's earlier groups, ``(..., N)`` for a code
        ``(..., N)``: ``a(x) + code @ (V · mask)``. A group's logits do not depend on its own
        or later groups, so one product serves every group of a complete code. With
        `conditional_reads_input`, x's `input_term` ``(batch, H)`` is formed here unless the
        caller, drawing group by group, gives it."""
        coupling = ops.convert_to_tensor(self.group_coupling)
        # The mask as a tensor: PyTorch does not multiply a tensor that needs gradients by a
        # numpy array.
        coupling = coupling * ops.convert_to_tensor(self.mask, dtype=coupling.dtype)
        encoder_logits = ops.convert_to_tensor(parameters["logits"])
        code = ops.cast(code, encoder_logits.dtype)
        if self.conditional_reads_input and input_term is None:
            input_term = self._input_term(encoder_logits)
        if len(ops.shape(code)) == 3:
            # (batch, N) -> (batch, 1, N) and (batch, H) -> (batch, 1, H), to broadcast over
            # the samples.
            encoder_logits = ops.expand_dims(encoder_logits, 1)
            if input_term is not None:
                input_term = ops.expand_dims(input_term, 1)
        logits = encoder_logits + ops.matmul(code, coupling)
        if self.conditional_units:
            logits = logits + self._conditional_network(code, input_term)
        return logits

    def _input_term(self, encoder_logits: TensorLike) -> TensorLike:
        """What x adds to the conditional network's hidden layer with
        `conditional_reads_input`, ``a(x) @ W_in``, ``(batch, H)`` for logits ``(batch, N)``:
        the same for every group, so a code drawn group by group forms it once."""
        return ops.matmul(encoder_logits, ops.convert_to_tensor(self.conditional_input))

    def _conditional_network(self, code: TensorLike, input_term: TensorLike | None) -> TensorLike:
        """The masked network's logits ``(..., N)`` from the code ``(..., N)``, plus, with
        `conditional_reads_input`, x's `input_term` in its hidden layer, shaped to broadcast
        with the code's product."""
        reads, feeds = (
            ops.convert_to_tensor(mask, dtype=code.dtype) for mask in self.conditional_masks
        )
        pre_activation = ops.matmul(
            code, ops.convert_to_tensor(self.conditional_hidden) * reads
        ) + ops.convert_to_tensor(self.conditional_hidden_bias)
        if input_term is not None:
            pre_activation = pre_activation + input_term
        hidden = ops.relu(pre_activation)
        return ops.matmul(hidden, ops.convert_to_tensor(self.conditional_output) * feeds)

    def _draw_in_order(
        self, parameters: dict, shape: tuple, draw: Callable[[TensorLike, slice], TensorLike]
    ) -> TensorLike:
        """A code ``shape`` drawn group by group, `draw(logits of group g, its columns)` given
        the groups already drawn (the later ones held at zero, which their mask ignores); the
        first group, which reads no code, from its own logits."""
        size, groups = self.group_size, []
        # Numpy parameters too (evaluation's), as tensors: PyTorch mixes no numpy arrays.
        parameters = {"logits": ops.convert_to_tensor(parameters["logits"])}
        input_term = (
            self._input_term(parameters["logits"]) if self.conditional_reads_input else None
        )
        dtype = parameters["logits"].dtype
        first = slice(0, size)
        groups.append(draw(self._first_group_logits(parameters["logits"], shape), first))
        for index in range(1, self.groups):
            rest = ops.zeros((*shape[:-1], self.units - index * size), dtype=dtype)
            code = ops.concatenate([*groups, rest], axis=-1)
            columns = slice(index * size, (index + 1) * size)
            logits = self.conditional_logits(parameters, code, input_term)
            groups.append(draw(logits[..., columns], columns))
        return ops.concatenate(groups, axis=-1)

    def _first_group_logits(self, logits: TensorLike, shape: tuple) -> TensorLike:
        """The first group's logits, a(x) alone, broadcast to ``(*shape[:-1], group size)``.

        Its masks give it nothing from the code, so the products with an all-zero code that
        `conditional_logits` would form add exact zeros; left in, XLA works out the product of
        a whole evaluation chunk's zero codes while compiling the estimate, and warns that it
        takes long."""
        logits = logits[..., : self.group_size]
        if len(shape) == 3:
            # (batch, size) -> (batch, 1, size), to broadcast over the samples.
            logits = ops.expand_dims(logits, 1)
        return ops.broadcast_to(logits, (*shape[:-1], self.group_size))

    def mode(self, parameters: dict) -> TensorLike:
        """Each group's more probable bits given the earlier groups' mode, ``(batch, N)``."""

        def draw(logits: TensorLike, columns: slice) -> TensorLike:
            return ops.cast(ops.greater(logits, 0.0), logits.dtype)

        return self._draw_in_order(parameters, tuple(ops.shape(parameters["logits"])), draw)

    def representation(self, parameters: dict) -> TensorLike:
        """q(z_i = 1 | x, mode of the earlier groups) of every unit, ``(batch, N)``."""
        return ops.sigmoid(self.conditional_logits(parameters, self.mode(parameters)))

    def classes_of(self, parameters: dict[str, np.ndarray]) -> np.ndarray:
        logits = {"logits": ops.convert_to_tensor(np.asarray(parameters["logits"], "float32"))}
        return to_numpy(self.mode(logits)).astype(np.int64)


@register
@dataclasses.dataclass(frozen=True)
class HierarchicalBernoulliPosterior(GroupedUnits, BernoulliPosterior):
    """Binary units in groups, each conditioned on the groups before it (see the module)."""

    kind: ClassVar[str] = "hierarchical_bernoulli"
    description: ClassVar[str] = "binary units in groups, each conditioned on those before"
    capabilities: ClassVar[frozenset[str]] = frozenset({"codes", "relaxed_bits", "hierarchical"})

    groups: int = groups_setting()
    conditional_units: int = conditional_units_setting()
    conditional_reads_input: bool = conditional_reads_input_setting()

    def relaxed_sample(self, parameters: dict, temperature: TensorLike) -> TensorLike:
        """ζ ``(batch, N)``: each group's binary Concrete given the earlier groups' ζ."""

        def draw(logits: TensorLike, columns: slice) -> TensorLike:
            return binary_concrete_sample(
                logits, temperature, self.seed_generator, self.straight_through
            )

        return self._draw_in_order(parameters, tuple(ops.shape(parameters["logits"])), draw)

    def sample_exact(self, parameters: dict, samples: int, seed: Any) -> tuple[Any, Any]:
        """Exact bits z ~ q(z|x) ``(batch, samples, N)``, group by group, and log q(z|x)."""
        batch = ops.shape(parameters["logits"])[0]
        shape = (batch, samples, self.units)
        # One draw for every group: an int seed gives each call the same noise.
        uniform = noise.uniform(shape, dtype=parameters["logits"].dtype, seed=seed)

        def draw(logits: TensorLike, columns: slice) -> TensorLike:
            return bernoulli_bits(uniform[..., columns], logits)

        bits = self._draw_in_order(parameters, shape, draw)
        return bits, self.log_density(bits, parameters)

    def distribution(self, parameters: dict) -> None:
        """None: the posterior is not factorial, so no prior has its KL in closed form."""
        return None

    def log_density(self, z: TensorLike, parameters: dict) -> TensorLike:
        """``log q(z|x) = Σ_g Σ_i [z_gi l_gi - softplus(l_gi)]``, l given z's earlier groups;
        z ``(batch, N)`` or ``(batch, samples, N)`` → its leading shape."""
        return bernoulli_log_probability(z, self.conditional_logits(parameters, z))

    def relaxed_log_probability(self, zeta: TensorLike, parameters: dict) -> TensorLike:
        """GumBolt's proxy: `log_density`'s formula, linear in each bit, at the relaxed ζ."""
        return self.log_density(zeta, parameters)


class SmoothedGroups(GroupedUnits):
    """Smoothed binary units in groups (see the module): each group's bits z_g given the ζ of
    the groups before it, smoothed by the kind's `smooth`; the KL for a prior from the
    conditional logits and the bits' expectations given the sample (`expected_bits`)."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"codes", "hierarchical", "expected_bits"})

    def sample(self, parameters: dict, training: bool | None = None) -> TensorLike:
        """ζ ``(batch, N)``: each group smoothed given the earlier groups' ζ, by the mixture's
        inverse CDF (in training and outside it, as the factorial kinds)."""
        logits = ops.convert_to_tensor(parameters["logits"])
        uniform = noise.uniform(ops.shape(logits), dtype=logits.dtype, seed=self.seed_generator)

        def draw(group_logits: TensorLike, columns: slice) -> TensorLike:
            return self.smooth(ops.sigmoid(group_logits), uniform[..., columns])

        return self._draw_in_order(parameters, tuple(ops.shape(logits)), draw)

    def distribution(self, parameters: dict) -> None:
        """None: q(z|x) alone is not factorial; `distribution_given` a sample is."""
        return None

    def unit_logits(self, parameters: dict, zeta: TensorLike) -> TensorLike:
        """Each unit's logit given the sample's earlier groups, for the density of ζ."""
        return self.conditional_logits(parameters, zeta)

    def expected_bits(self, logits: TensorLike, zeta: TensorLike) -> tuple[TensorLike, None]:
        """``E[z | ζ] = q r(ζ|1) / (q r(ζ|1) + (1 - q) r(ζ|0)) = sigmoid(l + g(ζ))``, with the
        smoothing's log-odds g: ``β(2ζ - 1)`` for the overlapping exponentials, ``(1/β - 1)
        (log(1 - ζ) - log ζ)`` for the power functions. Smooth in ζ inside (0, 1), so no
        boundary term (Rolfe's spike, whose bits are a step in ζ, has its own)."""
        logits = ops.convert_to_tensor(logits)
        return ops.sigmoid(logits + self.smoothing_log_odds(ops.cast(zeta, logits.dtype))), None

    def distribution_given(self, parameters: dict, z: TensorLike) -> FactorialBernoulli:
        """Each unit's logit given the sample's earlier groups, and its expected bit for a
        prior's KL: the kind's `expected_bits` in every group but the last, whose ζ conditions
        nothing, so that its bits' expectation q itself stands in, with less variance."""
        logits = self.conditional_logits(parameters, z)
        last = self.units - self.group_size
        earlier, boundary = self.expected_bits(logits[..., :last], z[..., :last])
        expectations = ops.concatenate([earlier, ops.sigmoid(logits[..., last:])], axis=-1)
        if boundary is not None:
            boundary = ops.concatenate([boundary, ops.zeros_like(logits[..., last:])], axis=-1)
        return FactorialBernoulli(logits, expectations, boundary)

    def sample_exact(self, parameters: dict, samples: int, seed: Any) -> tuple[Any, Any]:
        """`exact_sample`'s bits and log q(z | x, ζ)."""
        bits, log_q, _ = self.exact_sample(parameters, samples, seed)
        return bits, log_q

    def exact_sample(self, parameters: dict, samples: int, seed: Any) -> tuple[Any, Any, Any]:
        """Bits z ``(batch, samples, N)`` drawn group by group, each group given the smoothed ζ
        of the groups before it, ``log q(z | x, ζ) = Σ_g log q(z_g | x, ζ_<g)``, and that ζ
        ``(batch, samples, N)``, which the decoder sees: (z, ζ) is a draw of the training
        sample's joint q(z, ζ | x), so the weight is a bound of training's own model."""
        logits = ops.convert_to_tensor(parameters["logits"])
        batch = ops.shape(logits)[0]
        shape = (batch, samples, self.units)
        # One draw for the bits and one for their smoothing, side by side: (..., 2N).
        uniform = noise.uniform((*shape[:-1], 2 * self.units), dtype=logits.dtype, seed=seed)
        bits = []

        def draw(group_logits: TensorLike, columns: slice) -> TensorLike:
            group_bits = bernoulli_bits(uniform[..., columns], group_logits)
            bits.append(group_bits)
            smoothing = uniform[..., self.units :][..., columns]
            # The mixture's inverse CDF at q = the bit is r(ζ | z) itself.
            return self.smooth(group_bits, smoothing)

        zeta = self._draw_in_order(parameters, shape, draw)
        bits = ops.concatenate(bits, axis=-1)
        log_q = bernoulli_log_probability(bits, self.conditional_logits(parameters, zeta))
        return bits, log_q, zeta


@register
@dataclasses.dataclass(frozen=True)
class HierarchicalOverlappingExponentialPosterior(SmoothedGroups, OverlappingExponentialPosterior):
    """DVAE++'s smoothed units in groups, each conditioned on the ζ of those before (see the
    module)."""

    kind: ClassVar[str] = "hierarchical_overlapping_exponential"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"codes", "hierarchical", "expected_bits", "smoothed_density"}
    )
    description: ClassVar[str] = (
        "overlapping exponentials in groups, each conditioned on those before"
    )
    groups: int = groups_setting()
    conditional_units: int = conditional_units_setting()
    conditional_reads_input: bool = conditional_reads_input_setting()


@register
@dataclasses.dataclass(frozen=True)
class HierarchicalPowerFunctionPosterior(SmoothedGroups, PowerFunctionPosterior):
    """DVAE#'s power-function units in groups, each conditioned on the ζ of those before (see
    the module)."""

    kind: ClassVar[str] = "hierarchical_power_function"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"codes", "hierarchical", "expected_bits", "smoothed_density"}
    )
    description: ClassVar[str] = "power-function units in groups, each conditioned on those before"
    groups: int = groups_setting()
    conditional_units: int = conditional_units_setting()
    conditional_reads_input: bool = conditional_reads_input_setting()


@register
@dataclasses.dataclass(frozen=True)
class HierarchicalSpikeExponentialPosterior(SmoothedGroups, SpikeExponentialPosterior):
    """Rolfe's smoothed units in groups, each conditioned on the ζ of those before (see the
    module)."""

    kind: ClassVar[str] = "hierarchical_spike_exponential"
    description: ClassVar[str] = (
        "spike-and-exponential units in groups, each conditioned on those before (Rolfe 2017)"
    )
    groups: int = groups_setting()
    conditional_units: int = conditional_units_setting()
    conditional_reads_input: bool = conditional_reads_input_setting()

    def expected_bits(self, logits: TensorLike, zeta: TensorLike) -> tuple[TensorLike, TensorLike]:
        """``E[z | ζ]`` is the bit itself, 1 where ζ > 0: a step in the noise, with no pathwise
        gradient. Its expectation's gradient is the jump at the step, ∂q times the energy's
        change there, where ζ = 0 as for an unset bit; so the boundary weights
        ``(1 - z) / (1 - q)`` (without gradient) average it over the unset bits (Rolfe 2017,
        Eq. 12)."""
        bits = ops.cast(ops.greater(zeta, 0.0), logits.dtype)
        # q below 1 - 1e-3, so that a nearly certain unit's rare unset draw is not weighed
        # without bound.
        probabilities = ops.minimum(ops.sigmoid(logits), 1.0 - 1e-3)
        boundary = ops.stop_gradient((1.0 - bits) / (1.0 - probabilities))
        return bits, boundary
