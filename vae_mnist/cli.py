"""The `vae-mnist` command: train, plot, evaluate.

Every expected failure (bad data, bad flags, a refused model file, an interrupted run) ends
with one line on standard error and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence

from vae_mnist import __version__
from vae_mnist.config import ConfigError, UsageError, VAEConfig
from vae_mnist.data import DataError, load_mnist
from vae_mnist.files import check_writable_folder
from vae_mnist.model import ModelFileError
from vae_mnist.training import RunError, RunPaths, TrainingDivergedError, read_run_info, train

PROGRAM = "vae-mnist"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
PLOT_KINDS = (
    "latent",
    "manifold",
    "decode",
    "reconstructions",
    "samples",
    "interpolation",
    "curves",
    "density",
    "animation",
    "all",
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are a single line, like every other error here."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _number(kind: type, positive: bool = False, minimum: float | None = None):
    """An argparse type that names what it wanted when the text is not such a number."""
    article = "a positive " if positive else ("a non-negative " if minimum == 0 else "a ")
    wanted = article + ("whole number" if kind is int else "number")

    def parse(text: str):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not math.isfinite(value) or (kind is int and not value.is_integer()):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        if (positive and value <= 0) or (minimum is not None and value < minimum):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return kind(value)

    return parse


def _add_data_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="a local MNIST: a Keras-layout .npz or a folder of the four IDX files (default: "
        "$VAE_MNIST_DATA, else download through Keras)",
    )


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    defaults = VAEConfig()
    for field in dataclasses.fields(VAEConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        help_text = f"{field.metadata['help']} (default: {default})"
        if field.type == "bool":
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            kind = int if field.type == "int" else float
            parser.add_argument(
                flag,
                type=_number(kind, positive=field.metadata.get("positive", False), minimum=0),
                default=None,
                metavar="N" if kind is int else "X",
                help=help_text,
            )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROGRAM,
        description="Train the 2017 Keras MNIST variational autoencoder and draw its figures.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser("train", help="train the VAE into a run folder")
    _add_data_flag(train)
    train.add_argument(
        "--out", default="runs/default", metavar="DIR", help="run folder (default: runs/default)"
    )
    train.add_argument(
        "--overwrite", action="store_true", help="replace a finished run in the run folder"
    )
    train.add_argument(
        "--restart",
        action="store_true",
        help="start an unfinished run over instead of continuing it",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_flags(train)

    plot = commands.add_parser("plot", help="draw figures from a trained run")
    plot.add_argument("kind", choices=PLOT_KINDS, help="which figure ('all': every one)")
    plot.add_argument(
        "--run", default="runs/default", metavar="DIR", help="run folder (default: runs/default)"
    )
    plot.add_argument(
        "--out", default="figures", metavar="DIR", help="figure folder (default: figures)"
    )
    _add_data_flag(plot)
    plot.add_argument(
        "--n",
        type=_number(int, positive=True),
        default=15,
        help="digits per side of the manifold (default: 15)",
    )
    plot.add_argument(
        "--index",
        type=_number(int, minimum=0),
        nargs="+",
        default=[7, 9],
        metavar="I",
        help="test images whose z_mean 'decode' decodes (default: 7 9, the blog's two nines)",
    )
    plot.add_argument(
        "--z",
        type=_number(float),
        nargs="+",
        metavar="X",
        help="decode this latent point instead of test images (one number per dimension)",
    )
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
        type=_number(int, positive=True),
        default=10,
        help="digits along the interpolation (default: 10)",
    )
    plot.add_argument(
        "--seed", type=_number(int, minimum=0), default=0, help="seed of the prior samples"
    )

    evaluate = commands.add_parser("evaluate", help="measure a trained run on the test set")
    evaluate.add_argument(
        "--run", default="runs/default", metavar="DIR", help="run folder (default: runs/default)"
    )
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
        help="neighbours of the kNN classifier on z_mean (default: 5)",
    )
    evaluate.add_argument(
        "--seed", type=_number(int, minimum=0), default=0, help="seed of the importance samples"
    )
    return parser


def _train(arguments: argparse.Namespace) -> None:
    changes = {
        field.name: getattr(arguments, field.name)
        for field in dataclasses.fields(VAEConfig)
        if getattr(arguments, field.name) is not None
    }
    out = check_writable_folder(arguments.out)
    # A resumed run keeps its own settings unless the command line changes them.
    info = None if (arguments.restart or arguments.overwrite) else read_run_info(RunPaths(out))
    base = VAEConfig()
    if info is not None and info.get("status") == "training":
        base = VAEConfig.from_dict(info["config"])
        if info.get("completed_epochs"):
            print(
                f"{PROGRAM}: continuing the unfinished run in {out} after epoch "
                f"{info['completed_epochs']}",
                file=sys.stderr,
            )
    config = base.replace(**changes)
    data = load_mnist(arguments.data)
    result = train(
        config,
        data,
        out,
        overwrite=arguments.overwrite,
        restart=arguments.restart,
        verbose=0 if arguments.quiet else "auto",
    )
    print(
        f"{PROGRAM}: trained {result['completed_epochs']} epochs into {out} "
        f"(val_loss {result['history'][-1]['val_loss']:.2f})"
        if result["history"]
        else f"{PROGRAM}: nothing to train in {out}"
    )


def _plot(arguments: argparse.Namespace) -> None:
    # Matplotlib loads only for the commands that draw.
    from vae_mnist import figures

    figures.make_figures(arguments)


def _evaluate(arguments: argparse.Namespace) -> None:
    from vae_mnist import evaluation

    evaluation.evaluate_command(arguments)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    arguments = build_parser().parse_args(argv)
    handlers = {"train": _train, "plot": _plot, "evaluate": _evaluate}
    try:
        handlers[arguments.command](arguments)
    except KeyboardInterrupt:
        print(
            f"{PROGRAM}: interrupted; every finished epoch is kept, run the same command "
            "again to continue",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except (
        ConfigError,
        DataError,
        ModelFileError,
        RunError,
        TrainingDivergedError,
        UsageError,
        # A full disk or a read-only folder: the atomic writes have kept every earlier file.
        OSError,
    ) as error:
        print(f"{PROGRAM} {arguments.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def run() -> None:
    """The console entry point."""
    sys.exit(main())


def script_main(command: str) -> None:
    """Entry point of the thin scripts in ``scripts/``: `command` plus the script's arguments."""
    sys.exit(main([command, *sys.argv[1:]]))


if __name__ == "__main__":
    run()
