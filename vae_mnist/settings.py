"""Parts that own their settings: the registry of kinds, and the one check of every value.

A run is composed of parts of seven families: ``data``, ``network``, ``posterior``, ``prior``,
``likelihood``, ``objective`` and ``optimizer``. Each family has kinds (the ``gaussian``
posterior, the ``rbm`` prior, ...), and each kind is a small class, registered with `register`,
whose dataclass fields are its settings::

    @register
    @dataclasses.dataclass(frozen=True)
    class LaplacePosterior(Posterior):
        kind: ClassVar[str] = "laplace"
        dimension: int = setting(2, "dimensions of the latent space z", positive=True)

Its configuration is its own section of ``config.json``, ``{"kind": "laplace", "dimension":
2}`` (`Part.get_config`), and each field is a command-line flag (``--dimension``) that the
command line refuses for kinds that do not have it. Every value is checked here, once, when a
part is made, by `check_value`; a kind adds checks between its own fields in `Part.check`.

Kinds from outside the package come from the modules named in ``$VAE_MNIST_KINDS`` and from
installed packages' ``vae_mnist.kinds`` entry points, imported before the first kind is looked
up. This module does not import Keras, so the command line can read every kind's settings at
once (a module of one's own keeps that by reaching Keras through `vae_mnist.backend`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import math
import numbers
import os
import re
import sys
import sysconfig
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vae_mnist.errors import ConfigError, UsageError  # noqa: F401  (raised by the parts)

if TYPE_CHECKING:  # typing.Self is Python 3.11's, and the package runs on 3.10.
    from typing import Self

FAMILIES = ("data", "network", "posterior", "prior", "likelihood", "objective", "optimizer")
# The largest seed: PyTorch's generators take 32-bit signed seeds, and a run adds offsets to
# its seed (a layer's, an epoch count, evaluation's next draw), which must stay within them.
LARGEST_SEED = 2**30 - 1
# The largest whole-number setting (a size or a count) but where a setting names its own.
LARGEST_COUNT = 2**31 - 1
# The largest number setting: float32's largest, the type the models compute in.
LARGEST_FLOAT = 3.4028234663852886e38
# From here on a number rounds to infinity in float32: its largest plus half its last step
# (2**128 - 2**103), so a number printed as float32's largest (3.4028235e38) is still taken.
FLOAT32_OVERFLOW = 3.4028235677973366e38


# The checks `setting` takes, which `check_value` applies.
SETTING_CHECKS = frozenset(
    {"positive", "signed", "choices", "minimum", "maximum", "length", "may_be_empty"}
)
# The types a setting may have, as `field_type` names them: one flag each on the command line.
SETTING_TYPES = ("bool", "str", "int", "float", "list", "numbers")
# A kind's name is one word of the command line (not one argparse reads as a flag) and of
# config.json.
KIND_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def setting(default: Any, help_text: str, **checks: Any) -> Any:
    """A dataclass field that is a setting: its default, its one help string and its checks.

    ``positive=True`` refuses zero and negatives, ``signed=True`` allows negatives,
    ``choices=(...)`` lists the allowed words, ``minimum=N`` and ``maximum=N`` bound a number,
    ``length=N`` fixes the length of a list and ``may_be_empty=True`` allows an empty one.
    """
    unknown = sorted(set(checks) - SETTING_CHECKS)
    if unknown:
        raise TypeError(
            f"setting() has no check {', '.join(unknown)} (its checks: "
            f"{', '.join(sorted(SETTING_CHECKS))})"
        )
    metadata = {"help": help_text, **checks}
    if isinstance(default, tuple):
        return dataclasses.field(default_factory=lambda: default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_type(field: dataclasses.Field) -> str:
    """``bool``, ``str``, ``int``, ``float``, ``list`` (of positive whole numbers) or
    ``numbers`` (a list of positive numbers)."""
    # A type written out (`int | None` without postponed annotations) may have no name.
    value_type = (
        field.type if isinstance(field.type, str) else getattr(field.type, "__name__", None)
    )
    value_type = value_type or str(field.type)
    if value_type.startswith("tuple"):
        return "numbers" if "float" in value_type else "list"
    return value_type


def default_of(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


# How the command line and the messages write an empty list setting (`--hidden-layers none`).
EMPTY_LIST_TEXT = "none"


def setting_text(value: Any) -> str:
    """A setting's value as its flag takes it: a list ``16,16``, an empty one ``none``."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value) or EMPTY_LIST_TEXT
    return str(value)


def check_value(name: str, field: dataclasses.Field, value: Any) -> Any:
    """`value` as the field's type, or `ConfigError` naming the setting and what it must be."""
    value_type, checks = field_type(field), field.metadata
    if value_type == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if value_type == "str":
        choices = checks.get("choices")
        if not isinstance(value, str) or (choices and value not in choices):
            wanted = f" (choose from {', '.join(choices)})" if choices else ""
            raise ConfigError(f"unknown {name} {value!r}{wanted}")
        return value
    if value_type in ("list", "numbers"):
        return _check_list(name, value, value_type == "list", checks)
    return check_number(name, value_type, checks, value)


def check_number(name: str, value_type: str, checks: Any, value: Any) -> Any:
    """`value` as a number of `value_type` (``int`` or ``float``) within `checks` (`setting`'s
    ``positive``, ``signed``, ``minimum`` and ``maximum``), or `ConfigError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    # NumPy's numbers (an epoch count taken from an array) as Python's.
    value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if not _is_finite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    if value_type == "int" and not float(value).is_integer():
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if checks.get("positive") and value <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")
    if not checks.get("signed") and value < 0:
        raise ConfigError(f"{name} must not be negative, got {value!r}")
    if "minimum" in checks and value < checks["minimum"]:
        raise ConfigError(f"{name} must be at least {checks['minimum']}, got {value!r}")
    outside = _outside_range(value_type, checks, value)
    if outside:
        raise ConfigError(f"{name} must be {outside}, got {value!r}")
    return int(value) if value_type == "int" else float(value)


def _largest(value_type: str, checks: Any) -> float:
    # A count past 32 bits is no size a model or a loop can have, and the backends refuse it
    # with a traceback of their own.
    return checks.get("maximum", LARGEST_COUNT if value_type == "int" else LARGEST_FLOAT)


def _outside_range(value_type: str, checks: Any, value: float) -> str | None:
    """What a finite `value` must be where it lies past the largest of `checks` (a setting's
    own, or float32's), or, for a signed setting, past float32's most negative; in words, or
    None where it lies within."""
    largest = _largest(value_type, checks)
    past_float32 = abs(value) >= FLOAT32_OVERFLOW and (value > 0 or checks.get("signed"))
    if past_float32 and (largest == LARGEST_FLOAT or value < 0):
        return "a number within float32's range (±3.4e38)"
    if largest != LARGEST_FLOAT and value > largest:
        return f"at most {largest}"
    return None


def describe_number(value_type: str, checks: Any, value: Any = None) -> str:
    """What `check_number` asks of a number of `value_type` within `checks`, in words (``a positive
    whole number``), or, where `value` fails only its range, ``at most N`` (or float32's
    range).

    The largest a setting names itself is stated; the 32-bit bound of every count is not,
    since no one reaches it but by mistake.
    """
    if (
        isinstance(value, (int, float))
        and math.isfinite(value)
        and (value_type != "int" or float(value).is_integer())
    ):
        outside = _outside_range(value_type, checks, value)
        if outside:
            return outside
    noun = "whole number" if value_type == "int" else "number"
    if isinstance(value, float) and not math.isfinite(value):
        noun = f"finite {noun}"
    minimum, maximum = checks.get("minimum"), checks.get("maximum")
    if minimum not in (None, 0):
        if maximum is not None:
            return f"a {noun} from {minimum} to {maximum}"
        return f"a {noun} of at least {minimum}"
    if checks.get("positive"):
        article = "a positive "
    elif checks.get("signed"):
        article = "a "
    else:
        article = "a non-negative "
    return f"{article}{noun}" + (f" of at most {maximum}" if maximum is not None else "")


def describe_list(value_type: str, checks: Any) -> str:
    """What `check_value` asks of a list setting (`field_type` ``list`` or ``numbers``) given
    on the command line, in words."""
    noun = _list_items(value_type == "list")
    length = checks.get("length")
    return f"{length} {noun}" if length is not None else noun


def _list_items(whole: bool) -> str:
    return "positive whole numbers" if whole else "positive numbers"


def _check_list(name: str, value: Any, whole: bool, checks: dict[str, Any]) -> tuple:
    """`value` as a tuple of positive numbers (whole ones where `whole`), or `ConfigError`."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if any(
        isinstance(item, bool)
        or not isinstance(item, numbers.Real)
        or not _is_finite(item)
        or (whole and not float(item).is_integer())
        or item <= 0
        or _outside_range("int" if whole else "float", {}, item) is not None
        for item in items
    ) or not (items or checks.get("may_be_empty")):
        raise ConfigError(f"{name} must be a list of {_list_items(whole)}, got {value!r}")
    length = checks.get("length")
    if length is not None and len(items) != length:
        raise ConfigError(f"{name} needs {length} numbers, got {len(items)} ({value!r})")
    return tuple(int(item) if whole else float(item) for item in items)


def _is_finite(number: float) -> bool:
    # A whole number of hundreds of digits (in a JSON file) is finite, but no float holds it:
    # it counts as the infinity it rounds to, as 1e400 does.
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


class Settings:
    """A section of settings: its dataclass fields, each checked when the section is made."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = check_value(field.name, field, getattr(self, field.name))
            object.__setattr__(self, field.name, value)
        self.check()

    def check(self) -> None:
        """Checks between this section's own fields; `ConfigError` where they disagree."""

    def get_config(self) -> dict[str, Any]:
        """This section of ``config.json``: its settings by name."""
        values = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            values[field.name] = list(value) if isinstance(value, tuple) else value
        return values

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @classmethod
    def settings(cls) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls)  # type: ignore[arg-type]

    @classmethod
    def from_config(cls, section: Any, title: str) -> Self:
        """The section a configuration holds, with one-line errors naming what is wrong."""
        if not isinstance(section, dict):
            raise ConfigError(f"the {title} settings must be a JSON object, got {section!r}")
        known = {field.name for field in cls.settings()}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(
                f"the {title} has no setting {', '.join(unknown)} "
                f"(its settings: {', '.join(sorted(known)) or 'none'})"
            )
        return cls(**section)


class Part(Settings):
    """The base of every kind: its settings are its dataclass fields.

    Subclasses are frozen dataclasses with class attributes ``family`` (set by each family's
    base class), ``kind`` (the name in configurations and on the command line) and
    ``capabilities`` (what the part offers to the commands, which ask `offers` for these and
    never for the kind; `offered_capabilities` where a setting adds some). A field's value is
    checked when the part is made.
    """

    family: ClassVar[str]
    kind: ClassVar[str]
    description: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    # The settings a continued run (resumed, or extended with `train --extend`) may change, as
    # it may change the learning rate: a schedule's later stages, not the model's structure.
    resumable_settings: ClassVar[tuple[str, ...]] = ()
    # The class attributes every kind of a family names (a data set's name, say), and the
    # methods every kind of it defines (the family's base class has none of its own), which
    # `register` asks of a new kind, where a kind without one would fail in the middle of a
    # command.
    required_attributes: ClassVar[tuple[str, ...]] = ()
    required_methods: ClassVar[tuple[str, ...]] = ()

    def attach(self, **state: Any) -> None:
        """Keep references to the variables that the hosting layer made (the part is frozen)."""
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def offered_capabilities(self) -> frozenset[str]:
        """What this part offers: its kind's ``capabilities``, or more where a setting adds
        some (a kind whose capabilities depend on its settings overrides this)."""
        return self.capabilities

    def offers(self, capability: str) -> bool:
        return capability in self.offered_capabilities()

    def variables_loaded(self) -> None:
        """After a saved model's variables are loaded into this part's host: nothing by
        default (a part may bring state derived from its weights up to date)."""

    def continue_with(self, configured: Part) -> None:
        """Take `configured`'s values of the resumable settings: this part is the loaded
        model's, frozen and holding the model's variables, so it is changed in place."""
        for name in self.resumable_settings:
            object.__setattr__(self, name, getattr(configured, name))

    def get_config(self) -> dict[str, Any]:
        """This part's section of ``config.json``: its kind, then its settings."""
        return {"kind": self.kind, **super().get_config()}


_REGISTRY: dict[str, dict[str, type[Part]]] = {family: {} for family in FAMILIES}

# Names a setting may not have: each setting is a flag of `vae-mnist train` of its own name, and
# these are the command line's other names there (its own flags, the training settings, the
# families' kind flags, earlier names of settings); ``kind`` names the kind in config.json.
# `tests/test_parts.py` checks that this covers every flag of the command line.
RESERVED_SETTING_NAMES = frozenset(
    {
        *("command", "help", "version", "preset", "data", "out", "overwrite", "restart"),
        *("extend", "quiet", "tensorboard", "kind", "beta", "dataset", *FAMILIES),
        *("batch_size", "epochs", "shuffle", "seed", "steps_per_execution", "jit_compile"),
        *("compiled_chunks", "snapshot_every"),
    }
)


def register(cls: type[Part]) -> type[Part]:
    """Register a kind under its family, so configurations and the command line can name it.

    A kind registered again under the same name replaces the earlier one (a notebook may
    define it twice), but a kind from outside the package may not take a name of the package's
    own kinds, nor give a setting's name another type than the kinds that have it already
    (one flag serves every kind with a setting of that name). `ValueError` names the problem.
    """
    _check_kind_class(cls)
    if not _is_builtin(cls):
        # The package's kinds first, so that a name of theirs is seen as taken.
        for name in BUILTIN_KIND_MODULES:
            importlib.import_module(name)
    title = f"the {cls.kind} {cls.family}"
    replaced = _REGISTRY[cls.family].get(cls.kind)
    if replaced is not None and _is_builtin(replaced) != _is_builtin(cls):
        raise ValueError(
            f"{cls.__qualname__} takes the name of the package's own {cls.kind} "
            f"{cls.family}: give it another name"
        )
    for field in cls.settings():
        _check_setting(cls, field, title)
    _REGISTRY[cls.family][cls.kind] = cls
    return cls


def _is_builtin(cls: type) -> bool:
    return cls.__module__.startswith("vae_mnist.")


def _check_kind_class(cls: Any) -> None:
    """A kind is a dataclass under one of the families' base classes, with a name."""
    name = getattr(cls, "__name__", repr(cls))
    if (
        not isinstance(cls, type)
        or not issubclass(cls, Part)
        or getattr(cls, "family", None) not in _REGISTRY
    ):
        raise ValueError(
            f"{name} is not a kind: register a subclass of a family's base class "
            "(vae_mnist.Posterior, Prior, Likelihood, Objective, Network, Optimizer, ...)"
        )
    if not dataclasses.is_dataclass(cls) or "__dataclass_fields__" not in cls.__dict__:
        raise ValueError(
            f"{name} is not a dataclass: put @dataclasses.dataclass(frozen=True) under @register"
        )
    if not isinstance(getattr(cls, "kind", None), str) or not cls.kind:
        raise ValueError(f"{name} has no name: give it kind: ClassVar[str] = 'a_name'")
    if not KIND_NAME.fullmatch(cls.kind):
        raise ValueError(
            f"{name}'s kind {cls.kind!r} is not one word of letters, digits, '_', '-' and "
            "'.' (a word of the command line and of config.json)"
        )
    missing = [attribute for attribute in cls.required_attributes if not hasattr(cls, attribute)]
    if missing:
        raise ValueError(
            f"{name} lacks {', '.join(missing)}, which every {cls.family} kind names: give it "
            "each as a ClassVar"
        )
    missing = [method for method in cls.required_methods if not hasattr(cls, method)]
    if missing:
        base = next(klass for klass in cls.__mro__ if "family" in klass.__dict__)
        raise ValueError(
            f"{name} lacks {', '.join(missing)}, which every {cls.family} kind defines "
            f"(vae_mnist.{base.__name__}'s documentation says what each does)"
        )


def _check_setting(cls: type[Part], field: dataclasses.Field, title: str) -> None:
    """A setting's name is free, or means what it means in the kinds that have it already."""
    if field.name in RESERVED_SETTING_NAMES:
        raise ValueError(
            f"{title}'s setting {field.name!r} has a name the command line uses already "
            f"(--{field.name.replace('_', '-')}): give it another name"
        )
    if "help" not in field.metadata:
        raise ValueError(
            f"{title}'s field {field.name!r} is not a setting: declare it with "
            "setting(default, help_text), or make it a ClassVar"
        )
    if field_type(field) not in SETTING_TYPES:
        raise ValueError(
            f"{title}'s setting {field.name!r} is of type {field_type(field)}, where a setting is "
            "one of bool, str, int, float, tuple[int, ...] or tuple[float, ...]"
        )
    for family, kinds_of_family in _REGISTRY.items():
        for other in kinds_of_family.values():
            if (family, other.kind) == (cls.family, cls.kind):
                continue  # The kind this one replaces.
            same = {entry.name: entry for entry in dataclasses.fields(other)}.get(field.name)
            if same is not None and (
                field_type(same) != field_type(field)
                or setting_checks(same) != setting_checks(field)
            ):
                raise ValueError(
                    f"{title}'s setting {field.name!r} is not what the {other.kind} {family}'s "
                    f"setting of that name is ({_type_text(field)} against "
                    f"{_type_text(same)}), and one flag serves both: give it another name"
                )


def setting_checks(field: dataclasses.Field) -> dict[str, Any]:
    """A setting's checks: the metadata of `setting` but its help."""
    return {key: value for key, value in field.metadata.items() if key != "help"}


def _type_text(field: dataclasses.Field) -> str:
    value_type, checks = field_type(field), setting_checks(field)
    if checks.get("choices"):
        return f"one of {', '.join(checks['choices'])}"
    if value_type in ("int", "float"):
        return describe_number(value_type, checks)
    if value_type in ("list", "numbers"):
        return f"a list of {describe_list(value_type, checks)}"
    return f"a {value_type}"


def kinds(family: str) -> dict[str, type[Part]]:
    """Every registered kind of a family, by name."""
    _load_builtin_kinds()
    return dict(_REGISTRY[family])


def kind_of(family: str, name: Any, given_as: str | None = None) -> type[Part]:
    """The registered kind `name` of `family`, or a `ConfigError` naming the choices and how
    to bring a kind of one's own; `given_as` names the kind where a setting other than the
    family's name gave it (the flag ``dataset`` gives the data's kind)."""
    available = kinds(family)
    if not isinstance(name, str) or name not in available:
        raise ConfigError(
            f"unknown {given_as or family} {name!r} (choose from {', '.join(available)}; a "
            f"kind of your own: name its module in ${KIND_MODULES_VARIABLE})"
        )
    return available[name]


def make_part(family: str, section: Any) -> Part:
    """The part a configuration section describes: ``{"kind": ..., settings...}``."""
    if not isinstance(section, dict):
        raise ConfigError(f"the {family} settings must be a JSON object, got {section!r}")
    values = dict(section)
    cls = kind_of(family, values.pop("kind", None))
    return cls.from_config(values, f"{cls.kind} {family}")


def all_settings() -> Iterator[tuple[str, type[Part], dataclasses.Field]]:
    """Every ``(family, kind, field)`` of every registered kind."""
    for family in FAMILIES:
        for cls in kinds(family).values():
            for field in cls.settings():
                yield family, cls, field


# The modules of the package's own kinds; importing one registers its kinds.
BUILTIN_KIND_MODULES = (
    "vae_mnist.data",
    "vae_mnist.networks",
    "vae_mnist.gaussian",
    "vae_mnist.discrete",
    "vae_mnist.hierarchical",
    "vae_mnist.rbm_prior",
    "vae_mnist.vamp",
    "vae_mnist.likelihoods",
    "vae_mnist.objectives",
    "vae_mnist.optimizers",
)


# Kinds from outside the package: the modules (or paths of ``.py`` files) named in this
# environment variable, separated by commas, and those that installed packages declare under
# this entry-point group. Each is imported once, before the first kind is looked up, so the
# command line offers their flags and loads the runs and models that use them.
KIND_MODULES_VARIABLE = "VAE_MNIST_KINDS"
KIND_ENTRY_POINT_GROUP = "vae_mnist.kinds"


def _load_builtin_kinds() -> None:
    for name in BUILTIN_KIND_MODULES:
        importlib.import_module(name)
    _load_installed_kinds()
    _load_named_kinds(os.environ.get(KIND_MODULES_VARIABLE, ""))


@functools.cache
def _load_installed_kinds() -> None:
    """Import the modules that installed packages declare; one that fails is a warning, not
    an error, so that a broken package cannot stop every command (a run of its kinds then
    names the kind it misses)."""
    for entry_point in importlib.metadata.entry_points(group=KIND_ENTRY_POINT_GROUP):
        package = getattr(entry_point.dist, "name", None) or "an installed package"
        source = f"the {KIND_ENTRY_POINT_GROUP} entry point {entry_point.name!r} of {package}"
        try:
            # The entry point names a module, whose import registers its kinds.
            _import_kind_module(entry_point.module, source)
        except ConfigError as error:
            print(f"vae-mnist: warning: {error}; its kinds are left out", file=sys.stderr)


@functools.cache
def _load_named_kinds(names: str) -> None:
    for name in (name.strip() for name in names.split(",")):
        if name:
            _import_kind_module(name, KIND_MODULES_VARIABLE)


def _import_kind_module(name: str, source: str) -> None:
    """Import a module of kinds by its name or the path of its file; one line if it fails."""
    try:
        if name.endswith(".py"):
            _import_file(Path(name).resolve())
        else:
            importlib.import_module(name)
    except Exception as error:  # Whatever a module of one's own raises, its kinds are missing.
        raise ConfigError(
            f"{source}: cannot import {name!r} ({type(error).__name__}: {error}"
            f"{_where_raised(error)})"
        ) from None


def _where_raised(error: BaseException) -> str:
    """`` at FILE:LINE``, the last line of the module's own code that the error passed
    through (not the import machinery's, Python's own modules', installed packages' nor this
    package's), or nothing."""
    installed = sysconfig.get_paths()
    not_theirs = (
        "<",
        str(Path(__file__).resolve().parent),
        *(installed[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")),
    )
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith(not_theirs)
    ]
    return f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def _imported_by_name(path: Path) -> bool:
    """Whether a module imported by its name (``import kinds``) is the file at `path`."""
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and file.endswith(path.name) and Path(file).resolve() == path:
            return True
    return False


def _import_file(path: Path) -> None:
    # A name of the file's own, so that a file called json.py, say, cannot replace a module in
    # use, nor a file of the same name in another folder replace this one.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    name = f"vae_mnist_kinds_{path.stem}_{digest}"
    if name in sys.modules or _imported_by_name(path):
        # Imported already, or being imported (it looks a kind up); a second copy of its
        # classes would replace the first in the registry, and a notebook's `import kinds`
        # would no longer name the classes that the runs use.
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"no such file {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import would: its dataclasses look it up by name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
