"""The `vae-mnist` command line: parsing only; each command's glue is in `vae_mnist.commands`.

Every expected failure (bad data, bad flags, a refused model file, an interrupted run) ends
with one line on standard error and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from vae_mnist import __version__
from vae_mnist.errors import REPORTED, ConfigError, out_of_memory_message
from vae_mnist.figures import FIGURES
from vae_mnist.flags import (
    ALIASES,
    check_kind,
    kind_choices,
    option,
    resumable_flags,
    setting_flags,
)
from vae_mnist.settings import (
    EMPTY_LIST_TEXT,
    LARGEST_SEED,
    check_number,
    check_value,
    describe_list,
    describe_number,
    field_type,
    setting_checks,
)

PROGRAM = "vae-mnist"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# What a shell reports for a process stopped by SIGPIPE: its reader (`| head`) went away.
EXIT_BROKEN_PIPE = 141
COMMANDS = ("train", "plot", "evaluate", "compare", "presets", "explore")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the command, with a pointer to help.

    Abbreviated flags are refused (``--epoch`` is not ``--epochs``), so a typo never silently
    means another flag.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _kind(flag: str):
    """An argparse type for a kind flag, refusing an unknown kind with the registry's line.

    argparse's own `choices` would say "invalid choice" without naming `$VAE_MNIST_KINDS`,
    the way to bring a kind of one's own.
    """

    def parse(text: str) -> str:
        try:
            return check_kind(flag, text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _number(number_type: type, **checks):
    """An argparse type for a number of `number_type` (int or float) within `checks` (`setting`'s
    ``positive``, ``signed``, ``minimum``, ``maximum``), checked by the settings' own
    `check_number`; a refusal names what it wanted (`describe_number`)."""
    type_name = number_type.__name__

    def parse(text: str):
        try:
            value = float(text)
        except ValueError:
            value = text
        try:
            return check_number(text, type_name, checks, value)
        except ConfigError:
            wanted = describe_number(type_name, checks, value)
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None

    return parse


def _comma_list(parse, wanted: str):
    """An argparse type for numbers separated by commas, each read by `parse`: ``3,1,4`` →
    ``(3, 1, 4)``; one bad item refuses the list, naming what it wanted."""

    def parse_list(text: str) -> tuple:
        try:
            return tuple(parse(item) for item in text.split(","))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"expected {wanted} separated by commas, got {text!r}"
            ) from None

    return parse_list


def _setting_list(field):
    """An argparse type for a list setting, ``16,16``, checked by the settings' `check_value`."""
    wanted = f"{describe_list(field_type(field), field.metadata)} separated by commas"
    if field.metadata.get("may_be_empty"):
        wanted += f", or {EMPTY_LIST_TEXT}"

    def parse_list(text: str) -> tuple:
        try:
            items = [] if text == EMPTY_LIST_TEXT else [float(item) for item in text.split(",")]
            return check_value(text, field, items)
        except (ValueError, ConfigError):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None

    return parse_list


# Where `train` writes a run, and where the other commands read one, unless told otherwise.
DEFAULT_RUN_FOLDER = "runs/default"
# The most digits a figure puts along a side: 100 digits are 2,800 pixels.
LARGEST_FIGURE_SIDE = 100
_seed = _number(int, minimum=0, maximum=LARGEST_SEED)
_class_list = _comma_list(_number(int, minimum=0), "class numbers (0, 1, ...)")


def _not_empty(text: str) -> str:
    """A path or a name: an empty one would mean the current folder (or the default preset)
    without a word."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path or a name, got an empty one")
    return text


class _JoinedLists(argparse.Action):
    """Joins the lists of a flag that takes one or more comma-separated lists, so that
    ``--code 3,1,4``, ``--code 3 1 4`` and ``--code 3,1 4`` give the same code."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, tuple(item for value in values for item in value))


def _add_data_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=_not_empty,
        metavar="PATH",
        help="a local copy of the run's data set: a Keras-layout .npz or a folder of the four "
        "IDX files (default: $VAE_MNIST_DATA for MNIST, $VAE_MNIST_FASHION_DATA for "
        "Fashion-MNIST, else download through Keras)",
    )


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """A flag per family that chooses its kind, and one per setting of any kind.

    Unset flags keep the preset's (or the saved run's) value; a setting of a kind other than
    the run's is refused when the configuration is made (`vae_mnist.flags`).
    """
    for flag, choices in kind_choices().items():
        parser.add_argument(
            f"--{flag}",
            type=_kind(flag),
            default=None,
            metavar="KIND",
            help=f"the {flag} kind ({', '.join(choices)})",
        )
    flags = setting_flags()
    for name, flag in flags.items():
        _add_setting_flag(parser, option(name), name, flag)
    # Earlier names of settings, still accepted and hidden from the help.
    for old, name in ALIASES.items():
        _add_setting_flag(parser, option(old), old, flags[name], help_text=argparse.SUPPRESS)


def _add_setting_flag(
    parser: argparse.ArgumentParser, flag_text: str, name: str, flag, help_text: str | None = None
) -> None:
    field = flag.field
    if help_text is None:
        help_text = flag.help_text()
    value_type = field_type(field)
    if value_type == "bool":
        parser.add_argument(
            flag_text,
            dest=name,
            action=argparse.BooleanOptionalAction,
            default=None,
            help=help_text,
        )
    elif value_type == "str":
        choices = field.metadata.get("choices")
        parser.add_argument(flag_text, dest=name, choices=choices, default=None, help=help_text)
    elif value_type in ("list", "numbers"):
        metavar = "N,N" if value_type == "list" else "X,X"
        parser.add_argument(
            flag_text,
            dest=name,
            type=_setting_list(field),
            default=None,
            metavar=metavar,
            help=help_text,
        )
    else:
        checks = setting_checks(field)
        metavar = "N" if value_type == "int" else "X"
        parser.add_argument(
            flag_text,
            dest=name,
            type=_number(int if value_type == "int" else float, **checks),
            default=None,
            metavar=metavar,
            help=help_text,
        )


def _add_run_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run",
        type=_not_empty,
        default=DEFAULT_RUN_FOLDER,
        metavar="DIR",
        help=f"run folder (default: {DEFAULT_RUN_FOLDER})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROGRAM,
        description="Train variational autoencoders on MNIST, from the 2017 Keras example to "
        "the papers' setups, and draw and measure them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    helps = {
        "train": "train a VAE into a run folder",
        "plot": "draw figures from a trained run",
        "evaluate": "measure a trained run on the test set",
        "compare": "compare runs: settings that differ, losses, metrics, validation curves",
        "presets": "list the named presets",
        "explore": "serve a live page of a trained run's latent space on this machine",
    }
    adders = {
        "train": _add_train_flags,
        "plot": _add_plot_flags,
        "evaluate": _add_evaluate_flags,
        "compare": _add_compare_flags,
        "presets": _add_presets_flags,
        "explore": _add_explore_flags,
    }
    parser.commands = {}  # type: ignore[attr-defined]
    for name, add_flags in adders.items():
        command = commands.add_parser(name, help=helps[name])
        add_flags(command)
        parser.commands[name] = command  # type: ignore[attr-defined]
    return parser


def _add_train_flags(train: argparse.ArgumentParser) -> None:
    train.add_argument(
        "--preset",
        type=_not_empty,
        metavar="NAME",
        help="start from a named preset, or a preset file's path (default: keras2017; "
        "`vae-mnist presets` lists them)",
    )
    _add_data_flag(train)
    train.add_argument(
        "--out",
        type=_not_empty,
        default=DEFAULT_RUN_FOLDER,
        metavar="DIR",
        help=f"run folder (default: {DEFAULT_RUN_FOLDER})",
    )
    train.add_argument(
        "--overwrite", action="store_true", help="replace a finished run in the run folder"
    )
    train.add_argument(
        "--restart",
        action="store_true",
        help="start an unfinished run over instead of continuing it",
    )
    train.add_argument(
        "--extend",
        action="store_true",
        help="continue a finished run from its model and optimizer state to a larger --epochs "
        "(--learning-rate may change too, under a constant schedule, and the kinds' schedule "
        "settings: "
        f"{', '.join(option(name) for name in resumable_flags())}); its model "
        "is replaced when the longer run finishes",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard logs into DIR/tensorboard (every loss term per epoch; the "
        "manifold image for a 2-D continuous latent); see them with `tensorboard --logdir runs`",
    )
    _add_config_flags(train)


def _add_plot_flags(plot: argparse.ArgumentParser) -> None:
    plot.add_argument("figure", choices=FIGURES, help="which figure ('all': every one)")
    _add_run_flag(plot)
    plot.add_argument(
        "--out",
        type=_not_empty,
        metavar="DIR",
        help="figure folder (default: the run folder's figures/, RUN/figures)",
    )
    _add_data_flag(plot)
    plot.add_argument(
        "--n",
        type=_number(int, positive=True, maximum=LARGEST_FIGURE_SIDE),
        default=15,
        help=f"digits per side of the manifold (at most {LARGEST_FIGURE_SIDE}; default: 15)",
    )
    plot.add_argument(
        "--index",
        type=_number(int, minimum=0),
        nargs="+",
        default=[7, 9],
        metavar="I",
        help="test images whose code 'decode' and 'codes' decode (default: 7 9, the blog's two "
        "nines)",
    )
    plot.add_argument(
        "--z",
        type=_number(float, signed=True),
        nargs="+",
        metavar="X",
        help="decode this latent point instead of test images (one number per dimension)",
    )
    plot.add_argument(
        "--code",
        type=_class_list,
        nargs="+",
        action=_JoinedLists,
        metavar="K,K,...",
        help="discrete latents: decode this code instead of test images, one class per "
        "variable, separated by commas or spaces (e.g. 3,1,4,...; bits 0 or 1 for a "
        "Bernoulli latent)",
    )
    _add_interpolation_flags(plot)
    plot.add_argument(
        "--seed", type=_seed, default=0, help="seed of the prior samples (default: 0)"
    )
    plot.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_interpolation_flags(plot: argparse.ArgumentParser) -> None:
    plot.add_argument(
        "--from",
        dest="from_index",
        type=_number(int, minimum=0),
        default=2,
        metavar="I",
        help="test image where the interpolation starts (default: 2, a one)",
    )
    plot.add_argument(
        "--to",
        dest="to_index",
        type=_number(int, minimum=0),
        default=0,
        metavar="I",
        help="test image where the interpolation ends (default: 0, a seven)",
    )
    plot.add_argument(
        "--steps",
        type=_number(int, minimum=2, maximum=LARGEST_FIGURE_SIDE),
        default=10,
        help="digits along the interpolation, both ends included "
        f"(2 to {LARGEST_FIGURE_SIDE}; default: 10)",
    )


def _add_evaluate_flags(evaluate: argparse.ArgumentParser) -> None:
    _add_run_flag(evaluate)
    _add_data_flag(evaluate)
    evaluate.add_argument(
        "--samples",
        type=_number(int, positive=True),
        default=1000,
        metavar="K",
        help="importance samples per image for log p(x) (default: 1000)",
    )
    evaluate.add_argument(
        "--neighbours",
        type=_number(int, positive=True),
        default=5,
        metavar="K",
        help="neighbours of the kNN classifier on the latent (default: 5)",
    )
    evaluate.add_argument(
        "--seed", type=_seed, default=0, help="seed of the Monte-Carlo draws (default: 0)"
    )
    evaluate.add_argument(
        "--log-partition",
        default="auto",
        metavar="METHOD",
        # Not checked here: the prior knows which methods it has and which its size allows
        # (`Prior.check_evaluation`, asked before the model loads).
        help="how an RBM prior's log Z is computed: exact (by enumerating the smaller half), "
        "ais (annealed importance sampling), or auto (exact where the half is small enough; "
        "default)",
    )
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_compare_flags(compare: argparse.ArgumentParser) -> None:
    compare.add_argument(
        "runs", nargs="+", type=_not_empty, metavar="RUN", help="run folders to compare"
    )
    compare.add_argument(
        "--out",
        type=_not_empty,
        metavar="FIG.png",
        help="also draw the runs' validation curves into this file",
    )


def _add_presets_flags(presets: argparse.ArgumentParser) -> None:
    presets.add_argument(
        "names",
        nargs="*",
        type=_not_empty,
        metavar="NAME",
        help="only these presets, or preset files of yours by their paths (default: every "
        "preset of the package)",
    )
    presets.add_argument(
        "--verbose", action="store_true", help="also each preset's paper, differences, settings"
    )


def _port(text: str) -> int:
    """A TCP port, 0..65535 (0: a free one)."""
    try:
        return _number(int, maximum=65535)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {text!r}") from None


def _add_explore_flags(explore: argparse.ArgumentParser) -> None:
    _add_run_flag(explore)
    _add_data_flag(explore)
    explore.add_argument(
        "--host",
        metavar="ADDRESS",
        help="the address to serve the page on; one that other machines reach is served only "
        "when given here (default: $VAE_MNIST_EXPLORE_HOST, a loopback address, else 127.0.0.1)",
    )
    explore.add_argument(
        "--port",
        type=_port,
        default=0,
        metavar="N",
        help="the port to serve the page on (default: a free one)",
    )


# The plot options that take one or more values.
_PLOT_LISTS = ("--index", "--z", "--code")


def _figure_out_of_lists(tokens: list[str]) -> list[str]:
    """`tokens` with a figure's name that follows the values of a list option (``plot --code
    3,1,4 decode``) put before them, where argparse would read it as one more value; a figure's
    name is never a number, so it cannot be meant as one."""
    if not tokens or tokens[0] != "plot":
        return tokens
    in_list = False
    for position, token in enumerate(tokens[1:], start=1):
        if token.startswith("--"):  # A negative number (-1) is a value, not an option.
            in_list = token in _PLOT_LISTS
        elif in_list and token in FIGURES:
            return ["plot", token, *tokens[1:position], *tokens[position + 1 :]]
    return tokens


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse, letting the command's own parser report flags it does not know."""
    parser = build_parser()
    tokens = _figure_out_of_lists(list(sys.argv[1:] if argv is None else argv))
    arguments, unknown = parser.parse_known_args(tokens)
    if unknown:
        parser.commands[arguments.command].error(  # type: ignore[attr-defined]
            f"unrecognized arguments: {' '.join(unknown)}"
        )
    # Which options were typed, not defaulted, so a command can refuse one that does not apply.
    arguments.given_options = {
        token.split("=", 1)[0] for token in tokens if token.startswith("--") and token != "--"
    }
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        arguments = parse_arguments(argv)
    except ConfigError as error:  # A module of kinds in $VAE_MNIST_KINDS that does not import.
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    command = importlib.import_module(f"vae_mnist.commands.{arguments.command}")
    try:
        command.run(arguments, PROGRAM)
        sys.stdout.flush()  # Here, where a reader that went away can still be told apart.
    except BrokenPipeError:
        # `vae-mnist presets | head -1`: the reader has what it wanted. A command that was
        # still working (training, say) says where it stopped.
        _stop_writing_to_stdout()
        if arguments.command != "presets":
            print(
                f"{PROGRAM} {arguments.command}: stopped: its output's reader went away "
                "(a closed pipe); what was saved before is kept",
                file=sys.stderr,
            )
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(
            f"{PROGRAM}: interrupted; every finished epoch is kept, run the same command "
            "again to continue",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    # OSError: a full disk or a read-only folder; the atomic writes have kept every earlier file.
    except (*REPORTED, OSError) as error:
        print(f"{PROGRAM} {arguments.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:
        message = out_of_memory_message(error)
        if message is None:
            raise
        print(f"{PROGRAM} {arguments.command}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _stop_writing_to_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's last flush of what a
    closed pipe did not take raises nothing."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run() -> None:
    """The console entry point."""
    sys.exit(main())


def script_main(command: str) -> None:
    """Entry point of the thin scripts in ``scripts/``: `command` plus the script's arguments."""
    sys.exit(main([command, *sys.argv[1:]]))


if __name__ == "__main__":
    run()
