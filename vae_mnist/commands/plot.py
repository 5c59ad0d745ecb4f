"""`vae-mnist plot`: loads a trained run and its test set, then draws the asked figures.

Each figure asks the run's parts for what it needs (`vae_mnist.figures`): a discrete posterior
has the ``codes`` and ``usage`` figures, and ``decode --code`` decodes classes the user gives;
the figures that walk a continuous space with the prior's quantiles or draw it against the
N(0, I) prior (manifold, animation, density) are refused for it, and for a stack's first layer,
whose prior is conditional, and left out of ``all``. Its ``interpolation`` decodes the
straight path between two one-hot codes: mixtures of one-hots, points of the relaxation's
simplex such as training's relaxed samples are, so the decoder has seen their like.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vae_mnist import plotting
from vae_mnist.backend import to_numpy
from vae_mnist.errors import ModelFileError, UsageError
from vae_mnist.figures import (
    ACTIVITY_FIGURES,
    OPTION_FIGURES,
    TEST_SET_FIGURES,
    figure_parts,
    unmet_need,
    unread_option,
)
from vae_mnist.files import check_writable_folder, removed_if_left_empty
from vae_mnist.latent import posterior_mean_variances
from vae_mnist.model import load_model
from vae_mnist.progress import CountBar
from vae_mnist.runs import TrainedRun, load_trained_run, read_run_history

if TYPE_CHECKING:
    from vae_mnist.settings import Part

RECONSTRUCTION_COUNT = 10
SAMPLE_ROWS = 10


def _check_index(index: int, count: int, flag: str, given: bool) -> None:
    if not 0 <= index < count:
        # A test set smaller than the blog's (a local file of a few images) fails the
        # defaults, which the user never typed; the message says which flag to give.
        source = "" if given else f" (the default; give {flag} within it)"
        raise UsageError(f"{flag} {index} is outside the test set (0..{count - 1}){source}")


def format_point(z: np.ndarray) -> str:
    """A latent point as the user would type it: ``[1.69, 0.28]``."""
    return "[" + ", ".join(f"{value:.4g}" for value in np.ravel(z)) + "]"


def _file_name(prefix: str, text: str) -> str:
    """`prefix` and `text`, or `text`'s digest where it is long: a point of 100 dimensions or a
    code of 200 bits would exceed a file name's limit."""
    if len(text) > 80:
        text = hashlib.sha1(text.encode()).hexdigest()[:12]
    return prefix + text


def _z_name(z: np.ndarray) -> str:
    """The figure's name for the point `z`: each coordinate as the shortest decimal that reads
    back as the same float32, so two points the model decodes differently never share a file
    (rounded to two decimals, 0.001 and 0.004 did). Adding 0.0 turns −0 into 0."""
    coordinates = (
        np.format_float_positional(np.float32(value) + np.float32(0.0), trim="-")
        for value in np.ravel(z)
    )
    # Digits, a point and a minus sign only: characters every file system accepts.
    return _file_name("decode_z_", "_".join(coordinates))


def walked_dimensions(z_mean: np.ndarray | None, code_size: int) -> tuple[int, int]:
    """The two latent dimensions the manifold walks: the two most active, in index order.

    A 2-D latent space walks (0, 1), as the blog's manifold did; without the test set to
    measure activity, so do larger ones.
    """
    if code_size == 2 or z_mean is None:
        return (0, 1)
    most_active = np.argsort(posterior_mean_variances(z_mean))[::-1][:2]
    return tuple(sorted(int(dimension) for dimension in most_active))  # type: ignore[return-value]


@dataclasses.dataclass
class Figures:
    """What every figure of one `plot` command draws from: the run, its test set, its codes."""

    arguments: argparse.Namespace
    run: TrainedRun
    out: Path
    generator: Any
    images: np.ndarray | None = None
    labels: np.ndarray | None = None
    parameters: dict | None = None
    points: np.ndarray | None = None
    top_points: np.ndarray | None = None
    history: dict[str, np.ndarray] | None = None

    @property
    def posterior(self) -> Part:
        return self.run.vae.posterior_part

    @property
    def legend_names(self) -> tuple[str, ...] | None:
        """The classes' names for a legend, or None where the labels name themselves."""
        return self.run.config.data.legend_names

    @property
    def walks_most_active(self) -> bool:
        """Whether the manifold's dimensions are the most active ones: measured on the test
        set where it was read (``plot all``, or ``--data`` given), the first two otherwise."""
        return self.points is not None and self.posterior.offers("continuous")

    @property
    def dimensions(self) -> tuple[int, int]:
        walked = self.points if self.walks_most_active else None
        return walked_dimensions(walked, self.posterior.code_size)

    def chosen(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """The posterior parameters of the test images at `indices`, by head name."""
        return {name: value[indices] for name, value in self.parameters.items()}

    def modes(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The most probable codes of the test images at `indices`."""
        return to_numpy(self.posterior.mode(self.chosen(indices)))

    def label(self, index: int) -> str:
        return _label(self.labels, index, self.legend_names)


def make_figures(arguments: argparse.Namespace) -> list[Path]:
    """Draw the figures that the `plot` command asks for; return their paths."""
    figure = arguments.figure
    unread = unread_option(figure, arguments.given_options)
    if unread:
        raise UsageError(unread)
    # Only `decode` takes --z or --code (`unread_option`), and with one it reads no test image.
    reads_test_set = (figure in TEST_SET_FIGURES and not _given_code(arguments)) or (
        figure in ACTIVITY_FIGURES and "--data" in arguments.given_options
    )
    run = load_trained_run(arguments.run)
    parts = figure_parts(run.vae)
    check_given_code(arguments, parts["posterior"])
    need = None if figure == "all" else unmet_need(figure, parts)
    if need:
        raise UsageError(need)
    # A user's figures belong with the run they show; the README's reproduction command
    # passes --out figures to refresh the repository's committed figures.
    folder = arguments.out if arguments.out is not None else run.paths.figures
    drawn = [name for name in DRAWERS if figure in (name, "all") and not unmet_need(name, parts)]
    # A folder made for figures that then fail (a bad test set) is not left behind empty.
    with removed_if_left_empty(folder):
        out = check_writable_folder(folder)
        figures = Figures(arguments, run, out, run.vae.image_decoder())
        # Refused before any figure is written, not after the first few of `plot all`.
        _check_no_folder_takes_a_figures_name(out)
        if "curves" in drawn:
            figures.history = _read_curves_history(run)
        if reads_test_set:
            _read_test_set(figures)
        written: list[Path] = []
        for name in drawn:
            written.extend(DRAWERS[name](figures))
    for path in written:
        print(f"wrote {path}")
    return written


def _read_test_set(figures: Figures) -> None:
    """The run's test set, checked indices, and its posterior parameters in one call."""
    arguments, config = figures.arguments, figures.run.config
    data = config.data.load(arguments.data)
    _, figures.images = config.data.model_inputs(data, config.training.seed)
    figures.labels = data[1][1]
    figure = arguments.figure
    indices = (
        [("--index", index) for index in arguments.index]
        if figure in OPTION_FIGURES["--index"]
        else []
    )
    if figure in OPTION_FIGURES["--from"]:
        indices += [("--from", arguments.from_index), ("--to", arguments.to_index)]
    for flag, index in indices:
        _check_index(index, len(figures.images), flag, flag in arguments.given_options)
    # The whole test set in one call: the scatter, the density and the decodes share it.
    figures.parameters = _numpy_dict(figures.run.vae.encode(figures.images))
    figures.points = to_numpy(figures.posterior.representation(figures.parameters))
    if figures.run.vae.upper_layers:
        figures.top_points = to_numpy(figures.run.vae.layer_representations(figures.images)[-1])


def _latent(figures: Figures) -> list[Path]:
    continuous = figures.posterior.offers("continuous")
    view, axis_names = plotting.planar_view(figures.points, "z_mean" if continuous else "q(z|x)")
    if figures.posterior.code_size == 2 and continuous:
        axis_names = ("z[0]", "z[1]")
    path = figures.out / "latent_scatter.png"
    written = [
        plotting.plot_latent_scatter(view, figures.labels, path, axis_names, figures.legend_names)
    ]
    if figures.top_points is not None:
        # A stack's top layer: its plane where it has two dimensions, else its principal
        # components, named by the layer's number.
        top = f"z_{len(figures.run.vae.upper_layers) + 1}"
        view, axis_names = plotting.planar_view(figures.top_points, top)
        path = figures.out / "latent_scatter_top.png"
        written.append(
            plotting.plot_latent_scatter(
                view, figures.labels, path, axis_names, figures.legend_names
            )
        )
    return written


def _manifold(figures: Figures) -> list[Path]:
    size = figures.posterior.code_size
    path = figures.out / "manifold.png"
    n = figures.arguments.n
    quantiles = figures.run.vae.prior_part.quantiles
    return [
        plotting.plot_manifold(
            figures.generator,
            path,
            n,
            figures.dimensions,
            size,
            quantiles,
            most_active=figures.walks_most_active,
        )
    ]


def _reconstructions(figures: Figures) -> list[Path]:
    chosen = np.arange(min(RECONSTRUCTION_COUNT, len(figures.images)))
    decoded = plotting.predict(figures.generator, figures.modes(chosen))
    path = figures.out / "reconstructions.png"
    return [plotting.plot_reconstructions(figures.images[chosen], decoded, path)]


def _samples(figures: Figures) -> list[Path]:
    z = figures.run.vae.sample_codes(SAMPLE_ROWS * SAMPLE_ROWS, figures.arguments.seed)
    decoded = plotting.predict(figures.generator, z)
    return [plotting.plot_samples(decoded, figures.out / "samples.png", rows=SAMPLE_ROWS)]


def _interpolation(figures: Figures) -> list[Path]:
    arguments = figures.arguments
    start, end = figures.modes([arguments.from_index, arguments.to_index])
    weights = np.linspace(0.0, 1.0, arguments.steps, dtype=np.float32)[:, None]
    path_points = (1.0 - weights) * start + weights * end  # (steps, code_size)
    decoded = plotting.predict(figures.generator, path_points)
    title = (
        f"test image {arguments.from_index} ({figures.label(arguments.from_index)}) to "
        f"test image {arguments.to_index} ({figures.label(arguments.to_index)})"
    )
    return [plotting.plot_interpolation(decoded, figures.out / "interpolation.png", title)]


def _check_no_folder_takes_a_figures_name(out: Path) -> None:
    """Refuse a folder in `out` named as a figure is (``*.png``, ``*.gif``), where writing
    that figure would fail after the figures before it were written."""
    for entry in sorted(out.iterdir()):
        if entry.suffix in (".png", ".gif") and entry.is_dir():
            raise UsageError(f"{entry} is a folder, where plot writes a figure: move it")


def _read_curves_history(run: TrainedRun) -> dict[str, np.ndarray]:
    """The run's history, with every column the training curves draw."""
    history_path = run.paths.history
    if not history_path.exists():
        raise ModelFileError(f"{history_path}: no training history in the run")
    history = read_run_history(run.paths, run.info)
    # Refused before drawing, so that a history of other columns is one line, not a KeyError.
    missing = [column for column in plotting.TRAINING_CURVE_COLUMNS if column not in history]
    if missing:
        raise ModelFileError(
            f"{history_path}: the training history lacks {', '.join(missing)}, which the "
            "training curves draw"
        )
    return history


def _curves(figures: Figures) -> list[Path]:
    path = figures.out / "training_curves.png"
    loss_name = figures.run.config.objective.loss_name
    titles = figures.run.vae.logged_titles
    return [plotting.plot_training_curves(figures.history, path, loss_name, titles)]


def _density(figures: Figures) -> list[Path]:
    view, axis_names = plotting.planar_view(figures.points, "z_mean")
    if figures.posterior.code_size == 2:
        axis_names = ("z[0]", "z[1]")
    path = figures.out / "latent_density.png"
    return [plotting.plot_latent_density(view, path, axis_names=axis_names)]


def _code_grids(figures: Figures) -> list[Path]:
    return [_codes(figures, index) for index in figures.arguments.index]


def _usage(figures: Figures) -> list[Path]:
    usage = figures.posterior.class_usage(figures.parameters)
    return [plotting.plot_class_usage(usage, figures.out / "class_usage.png")]


def _coupling(figures: Figures) -> list[Path]:
    bias1, bias2, coupling = figures.run.vae.prior_part.structure()
    return [plotting.plot_coupling(coupling, bias1, bias2, figures.out / "coupling.png")]


def _given_code(arguments: argparse.Namespace) -> bool:
    """Whether the command gives a point (``--z``) or a code (``--code``) to decode."""
    return arguments.z is not None or arguments.code is not None


def check_given_code(arguments: argparse.Namespace, posterior: Part) -> None:
    """Refuse a ``--z`` or ``--code`` that the posterior cannot decode, in one line."""
    code = arguments.code
    if arguments.z is not None and not posterior.offers("continuous"):
        raise UsageError(
            f"--z decodes a point of a continuous latent, and this run's {posterior.kind} "
            "posterior is not one; give its classes with --code"
        )
    if code is not None and not posterior.offers("codes"):
        raise UsageError(
            f"--code gives the classes of a discrete latent, and this run's {posterior.kind} "
            "posterior is not one; give a latent point with --z"
        )
    if code is not None:
        check_code(code, posterior)
    if arguments.z is not None and len(arguments.z) != posterior.code_size:
        raise UsageError(
            f"--z needs {posterior.code_size} numbers (one per latent dimension), "
            f"got {len(arguments.z)}"
        )


def check_code(code: list[int], posterior: Part) -> None:
    """Refuse a ``--code`` with the wrong count of classes or a class out of range."""
    count, classes = posterior.variable_count, posterior.classes
    if len(code) != count:
        raise UsageError(f"--code needs {count} classes (one per latent variable), got {len(code)}")
    outside = [value for value in code if not 0 <= value < classes]
    if outside:
        raise UsageError(
            f"--code class {outside[0]} is out of range: each variable's class is 0..{classes - 1}"
        )


def format_code(classes: np.ndarray) -> str:
    """A discrete code's classes as the user would type them: ``3,1,4``."""
    return ",".join(str(int(value)) for value in np.ravel(classes))


def _code_name(classes: np.ndarray) -> str:
    return _file_name("decode_code_", format_code(classes).replace(",", "-"))


def _codes(figures: Figures, index: int) -> Path:
    """The code grid of test image `index`: its most probable code, each variable varied."""
    latent, generator, out = figures.posterior, figures.generator, figures.out
    label = figures.label(index)
    chosen = latent.classes_of(figures.chosen([index]))[0]
    variables, classes = latent.variable_count, latent.classes
    # (variables, classes, variables): row i, column k is the image's classes with i set to k.
    table = np.broadcast_to(chosen, (variables, classes, variables)).copy()
    table[np.arange(variables), :, np.arange(variables)] = np.arange(classes)
    # (variables, classes, variables) -> (variables*classes, variables): a code per row.
    decoded = plotting.predict(generator, latent.code_of(table.reshape(-1, variables)))
    title = (
        f"test image {index} ({label}): its most probable code (framed), variable i set to class k"
    )
    return plotting.plot_code_grid(decoded, chosen, classes, out / f"codes_{index}.png", title)


def _numpy_dict(values: dict) -> dict:
    return {name: to_numpy(value) for name, value in values.items()}


def _label(labels: np.ndarray, index: int, class_names) -> str:
    """Test image `index`'s class with its article: ``a 7``, ``an 8``, ``an Ankle boot``."""
    name = class_names[labels[index]] if class_names else str(labels[index])
    # Of the digits only 8 is said with a vowel first.
    return f"{'an' if name[0].lower() in 'aeiou8' else 'a'} {name}"


def _decode_given(latent, generator, arguments: argparse.Namespace, out: Path) -> list[Path]:
    """Decode the point ``--z`` or the code ``--code`` that the user gave."""
    code = arguments.code
    if code is not None:
        classes = np.array([code])
        decoded = plotting.predict(generator, latent.code_of(classes))
        print(f"code = {format_code(classes)}")
        return [
            plotting.plot_decoded_beside_original(
                None,
                decoded[0],
                classes[0],
                out / f"{_code_name(classes)}.png",
                "decoded from a chosen code",
                code_text=f"code {format_code(classes)}",
            )
        ]
    z = np.array([arguments.z], dtype=np.float32)  # (1, code_size)
    decoded = plotting.predict(generator, z)
    print(f"z = {format_point(np.array(arguments.z))}")
    return [
        plotting.plot_decoded_beside_original(
            None, decoded[0], z[0], out / f"{_z_name(z[0])}.png", "decoded from a chosen point"
        )
    ]


def _decode_figures(figures: Figures) -> list[Path]:
    """Decode test images' most probable code (or a given z or code) and save each beside its
    original."""
    latent, generator, arguments = figures.posterior, figures.generator, figures.arguments
    if _given_code(arguments):
        return _decode_given(latent, generator, arguments, figures.out)
    indices = list(arguments.index)
    chosen = figures.modes(indices)
    decoded = plotting.predict(generator, chosen)
    discrete = latent.offers("codes")
    modes = latent.classes_of(figures.chosen(indices)) if discrete else None
    written = []
    for position, index in enumerate(indices):
        label = figures.label(index)
        code_text = None
        if discrete:
            code_text = f"code {format_code(modes[position])}"
            print(f"test image {index} ({label}): {code_text}")
        else:
            print(f"test image {index} ({label}): z = {format_point(chosen[position])}")
        written.append(
            plotting.plot_decoded_beside_original(
                figures.images[index],
                decoded[position],
                chosen[position],
                figures.out / f"decode_{index}.png",
                f"test image {index} ({label})",
                code_text=code_text,
            )
        )
    return written


def _animation_figure(figures: Figures) -> list[Path]:
    """The manifold as it formed, from the decoder snapshots that training saved."""
    run, arguments, out = figures.run, figures.arguments, figures.out
    required = arguments.figure == "animation"
    snapshots = run.paths.snapshot_epochs()
    if not snapshots:
        if required:
            raise ModelFileError(
                f"{run.paths.snapshots}: no decoder snapshots; train with --snapshot-every N"
            )
        print("no decoder snapshots in the run (train with --snapshot-every N): no manifold.gif")
        return []
    frames = []
    snapshots = [snapshots[position] for position in plotting.choose_frames(len(snapshots))]
    # Loading each snapshot takes a moment; dozens of them take long enough to want a bar.
    bar = None if arguments.quiet else CountBar(len(snapshots), unit_name="snapshot")
    quantiles = run.vae.prior_part.quantiles
    for position, (_, snapshot) in enumerate(snapshots, start=1):
        decoder = load_model(snapshot)
        frames.append(
            plotting.decode_manifold(
                decoder, arguments.n, figures.dimensions, figures.posterior.code_size, quantiles
            )
        )
        if bar is not None:
            bar.update(position)
    epochs = [epoch for epoch, _ in snapshots]
    return [plotting.save_manifold_animation(frames, epochs, out / "manifold.gif")]


def run(arguments: argparse.Namespace, program: str) -> list[Path]:
    return make_figures(arguments)


# Each figure's drawing, in the order `plot all` draws them.
DRAWERS = {
    "latent": _latent,
    "manifold": _manifold,
    "decode": _decode_figures,
    "reconstructions": _reconstructions,
    "samples": _samples,
    "interpolation": _interpolation,
    "curves": _curves,
    "density": _density,
    "codes": _code_grids,
    "usage": _usage,
    "coupling": _coupling,
    "animation": _animation_figure,
}
