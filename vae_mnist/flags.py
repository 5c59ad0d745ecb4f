"""Settings by their flag names: which flags exist, and how a change by name reaches its section.

Every setting of every kind is a flag of the same name (``hidden_layers`` is
``--hidden-layers``), and each family has a flag that chooses its kind (``--posterior
categorical``; the data set's is ``--dataset``). A setting's name means one thing in every kind
that has it, so one flag serves them all; a setting of a kind other than the run's is refused,
naming both. This module is the only place that maps names to sections.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vae_mnist.config import PART_SECTIONS, RunConfig, TrainingConfig
from vae_mnist.settings import (
    FAMILIES,
    ConfigError,
    all_settings,
    default_of,
    kind_of,
    kinds,
    setting_text,
)

# The flag that chooses each family's kind; `--data` is the data set's local path.
KIND_FLAGS = {family: family for family in FAMILIES} | {"data": "dataset"}
# The family whose kind each of those flags chooses.
FAMILY_OF_KIND_FLAG = {flag: family for family, flag in KIND_FLAGS.items()}
# Earlier names of settings, still accepted: version 2's `beta` of the RBM latent.
ALIASES = {"beta": "sharpness"}


@dataclasses.dataclass(frozen=True)
class Flag:
    """A setting as the command line shows it: the field, and the kinds that have it."""

    name: str
    owners: tuple[tuple[str, str], ...]  # (family, kind) pairs; ("training", "") for training
    fields: tuple[dataclasses.Field, ...]  # Each owner's own, in the same order.

    @property
    def field(self) -> dataclasses.Field:
        """The first kind's field, which sets the flag's type (`register` keeps the others'
        types the same)."""
        return self.fields[0]

    def help_text(self) -> str:
        """The setting's help, the kinds that have it and its default: one text where they
        share both (as the package's kinds do), else one for each help and default."""
        groups: dict[tuple[str, str], list[str]] = {}
        for (family, kind), field in zip(self.owners, self.fields, strict=True):
            key = (field.metadata["help"], setting_text(default_of(field)))
            groups.setdefault(key, []).append(_owner_text(family, kind))
        return " | ".join(
            f"{help_text} [{' / '.join(owners)}; default: {default}]"
            for (help_text, default), owners in groups.items()
        )


def _owner_text(family: str, kind: str) -> str:
    return family if family == "training" else f"the {kind} {family}"


def setting_flags() -> dict[str, Flag]:
    """Every setting's flag by name, training's included, in the order of the families."""
    fields: dict[str, list[dataclasses.Field]] = {}
    owners: dict[str, list[tuple[str, str]]] = {}
    for family, cls, field in all_settings():
        fields.setdefault(field.name, []).append(field)
        owners.setdefault(field.name, []).append((family, cls.kind))
    for field in dataclasses.fields(TrainingConfig):
        fields[field.name] = [field]
        owners[field.name] = [("training", "")]
    return {name: Flag(name, tuple(owners[name]), tuple(fields[name])) for name in fields}


def option(name: str) -> str:
    """A setting's command-line option: ``hidden_layers`` is ``--hidden-layers``."""
    return f"--{name.replace('_', '-')}"


def resumable_flags() -> tuple[str, ...]:
    """The settings of any kind that a continued run may change, by flag name, in order."""
    names = {
        name
        for family in FAMILIES
        for cls in kinds(family).values()
        for name in cls.resumable_settings
    }
    return tuple(sorted(names))


def kind_choices() -> dict[str, tuple[str, ...]]:
    """Each kind flag's choices, by flag name."""
    return {flag: tuple(kinds(family)) for family, flag in KIND_FLAGS.items()}


def check_kind(flag: str, name: str) -> str:
    """`name` if it is a registered kind of the family that `flag` chooses.

    Raises `ConfigError` naming the choices and where a kind of one's own is named, the same
    line a configuration file with that kind gets.
    """
    kind_of(FAMILY_OF_KIND_FLAG[flag], name, flag)
    return name


def apply_changes(config: RunConfig, changes: dict[str, Any]) -> RunConfig:
    """`config` with kinds and settings changed by flag name (see `RunConfig.replace`)."""
    values = config.to_dict()
    # The name each setting was given by (an old name, say), for the messages.
    given: dict[str, str] = {}
    for name in changes:
        setting = ALIASES.get(name, name)
        if setting in given:
            raise ConfigError(
                f"{option(given[setting])} and {option(name)} are one setting: give one"
            )
        given[setting] = name
    changes = {setting: changes[name] for setting, name in given.items()}
    if "preset" in changes:
        values["preset"] = changes.pop("preset")
    for flag in [name for name in changes if name in FAMILY_OF_KIND_FLAG]:
        _switch_kind(values, FAMILY_OF_KIND_FLAG[flag], changes.pop(flag))
    for name, value in changes.items():
        section = _settings_holding(values, name, given[name])
        section[name] = list(value) if isinstance(value, tuple) else value
    return RunConfig.from_dict(values)


def _switch_kind(values: dict[str, Any], family: str, kind: Any) -> None:
    """Change a section's kind, keeping the settings that the new kind has too."""
    cls = kind_of(family, kind, KIND_FLAGS[family])
    if values[family]["kind"] == kind:
        return
    names = {field.name for field in cls.settings()}
    kept = {name: value for name, value in values[family].items() if name in names}
    values[family] = {"kind": kind, **kept}


def _has_setting(family: str, section: dict[str, Any], name: str) -> bool:
    return name in {field.name for field in kinds(family)[section["kind"]].settings()}


def _settings_holding(
    values: dict[str, Any], name: str, given: str | None = None
) -> dict[str, Any]:
    """The section of `values` whose kind has the setting `name`: the training's, the first
    layer's parts', or else the one part of an upper layer that has it; `ConfigError` naming
    the kinds that have it otherwise, and the setting by the name it was `given` (an old
    name) where that is not `name`."""
    given = given or name
    if name in {field.name for field in dataclasses.fields(TrainingConfig)}:
        return values["training"]
    holding = [section for section in PART_SECTIONS if _has_setting(section, values[section], name)]
    if len(holding) > 1:
        # Kinds of one's own may share a setting's name across families.
        parts = " and ".join(f"{values[section]['kind']} {section}" for section in holding)
        raise ConfigError(
            f"{option(given)} is a setting of this run's {parts}, which a flag cannot tell "
            "apart: set it in their sections of a preset file"
        )
    if holding:
        return values[holding[0]]
    # An upper layer's network and posterior are sections of the same families.
    upper = [
        layer[family]
        for layer in values.get("upper_layers", [])
        for family in ("network", "posterior")
        if _has_setting(family, layer[family], name)
    ]
    if len(upper) == 1:
        return upper[0]
    flag = setting_flags().get(name)
    if flag is None:
        raise ConfigError(f"unknown setting {given!r}")
    if upper:
        raise ConfigError(
            f"{option(given)} is a setting of {len(upper)} of this run's upper layers' parts, "
            "which a flag cannot tell apart: set it in upper_layers of a preset file"
        )
    kinds_by_family: dict[str, list[str]] = {}
    for family, kind in flag.owners:
        kinds_by_family.setdefault(family, []).append(kind)
    owners = " and of ".join(
        _kinds_phrase(family, kinds) for family, kinds in kinds_by_family.items()
    )
    chosen = " and ".join(f"{family} is {values[family]['kind']}" for family in kinds_by_family)
    raise ConfigError(f"{option(given)} is a setting of {owners}, and this run's {chosen}")


def _kinds_phrase(family: str, kinds: list[str]) -> str:
    """``the gaussian posterior``, or ``the a, b and c posteriors`` for several kinds."""
    if len(kinds) == 1:
        return f"the {kinds[0]} {family}"
    plural = family if family == "data" else f"{family}s"
    return f"the {', '.join(kinds[:-1])} and {kinds[-1]} {plural}"


def flat_settings(config: RunConfig) -> dict[str, Any]:
    """Every setting of `config` by flag name: each family's kind, then its kind's settings.

    Only the settings of the chosen kinds appear, so two runs of different kinds differ in the
    kind and in the settings each has, never in settings that neither uses.
    """
    flat: dict[str, Any] = {}
    for section, values in config.to_dict().items():
        if section in PART_SECTIONS:
            values = dict(values)
            flat[KIND_FLAGS[section]] = values.pop("kind")
            flat.update(values)
        elif section == "training":
            flat.update(values)
    if config.upper_layers:
        flat["upper_layers"] = [layer.get_config() for layer in config.upper_layers]
    return flat
