"""The figures: each function takes arrays or models and a path, saves the figure, returns.

Figures are made as `matplotlib.figure.Figure` objects, not through pyplot, so they need no
screen, keep no state between calls and leave the process's matplotlib backend alone (a
notebook's inline figures included).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.colors
import matplotlib.ticker
import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from vae_mnist.backend import to_numpy
from vae_mnist.files import atomic_path
from vae_mnist.gaussian import standard_normal_quantiles
from vae_mnist.runs import LEADING_HISTORY_COLUMNS

if TYPE_CHECKING:  # Keras is imported where a figure needs a model, not with this module.
    import keras

IMAGE_SIDE = 28
DOTS_PER_INCH = 100
# A figure path without a suffix is written as PNG.
DEFAULT_FIGURE_SUFFIX = ".png"


def figure_path(path: str | Path) -> Path:
    """The file a figure named `path` is written to: `path`, with ``.png`` where it has no suffix.

    Raises:
        ValueError: matplotlib cannot write the format that the suffix names.
    """
    path = Path(path)
    if not path.suffix:
        return path.with_name(path.name + DEFAULT_FIGURE_SUFFIX)
    if path.suffix[1:].lower() not in FigureCanvasBase.get_supported_filetypes():
        raise ValueError(
            f"{path}: matplotlib cannot write {path.suffix} files; name the figure .png, .pdf "
            "or .svg"
        )
    return path


def _save(figure: Figure, path: str | Path) -> Path:
    """Write `figure` to `figure_path(path)`."""
    path = figure_path(path)
    _whole_pixels(figure)
    with atomic_path(path) as temporary:
        # The format given outright: matplotlib then writes exactly the temporary name.
        figure.savefig(temporary, dpi=DOTS_PER_INCH, format=path.suffix[1:].lower())
    return path


def _whole_pixels(figure: Figure) -> None:
    """Set `figure`'s size a quarter of a pixel past the nearest whole number of pixels.

    matplotlib before 3.11 truncates a figure's size times its resolution to whole pixels and
    later versions round it, so a size such as 2.3 inches at 100 dots per inch (229.99999... in
    floating point) gave 229 rows on one and 230 on the other; a quarter of a pixel past the
    whole number gives the same pixels on every version.
    """
    width, height = figure.get_size_inches()
    figure.set_size_inches(
        (round(width * DOTS_PER_INCH) + 0.25) / DOTS_PER_INCH,
        (round(height * DOTS_PER_INCH) + 0.25) / DOTS_PER_INCH,
    )


def predict(model: keras.Model, inputs: np.ndarray) -> np.ndarray:
    """Run `model` over all `inputs` in one batched call and return numpy.

    A direct call rather than `Model.predict`: for one batch it skips building a data pipeline
    and tracing a graph, which would cost more than the arithmetic of a figure's few thousand
    images.
    """
    return to_numpy(model(np.asarray(inputs, np.float32), training=False))


def manifold_points(
    n: int = 15,
    dimensions: tuple[int, int] = (0, 1),
    code_size: int = 2,
    quantiles: Callable[[np.ndarray], np.ndarray] = standard_normal_quantiles,
    low: float = 0.05,
    high: float = 0.95,
) -> np.ndarray:
    """Latent points of the blog's manifold: the prior's inverse CDF of an even grid.

    Args:
        quantiles: each dimension's inverse CDF, ``(count, code_size)`` probabilities to
            values of that shape (a prior's `quantiles`; the blog's N(0, I) by default).

    Returns:
        Shape ``(n*n, code_size)``, row-major over an ``n × n`` grid: z[dimensions[0]] rises
        left to right along the columns and z[dimensions[1]] top to bottom along the rows, as
        the 2017 example laid it out; the other dimensions stay at the prior's median.
    """
    walked = list(dimensions)
    probabilities = np.full((n, code_size), 0.5)
    # (n,) -> (n, 1): the same probability in both walked dimensions of a row.
    probabilities[:, walked] = np.linspace(low, high, n)[:, None]
    values = np.asarray(quantiles(probabilities), np.float32)  # (n, code_size)
    across, down = np.meshgrid(values[:, walked[0]], values[:, walked[1]])  # each (n, n)
    points = np.repeat(values[:1], n * n, axis=0)  # the medians, (n*n, code_size)
    points[:, walked[0]] = across.ravel()
    points[:, walked[1]] = down.ravel()
    return points


def manifold_grid(n: int = 15, low: float = 0.05, high: float = 0.95) -> np.ndarray:
    """The blog's grid over N(0, I) as ``(n, n, 2)``: ``[row, column] -> (z0, z1)``
    (`manifold_points` walks any prior's quantiles and dimensions)."""
    return manifold_points(n, low=low, high=high).reshape(n, n, 2)  # (n*n, 2) -> (n, n, 2)


def tile_images(images: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Lay ``rows * columns`` flat 784-pixel images out as one ``(rows*28, columns*28)`` image."""
    # (rows*columns, 784) -> (rows, columns, 28, 28) -> (rows, 28, columns, 28)
    grid = images.reshape(rows, columns, IMAGE_SIDE, IMAGE_SIDE).transpose(0, 2, 1, 3)
    return grid.reshape(rows * IMAGE_SIDE, columns * IMAGE_SIDE)  # -> (rows*28, columns*28)


def decode_manifold(
    decoder: keras.Model,
    n: int = 15,
    dimensions: tuple[int, int] = (0, 1),
    code_size: int = 2,
    quantiles: Callable[[np.ndarray], np.ndarray] = standard_normal_quantiles,
) -> np.ndarray:
    """Decode the n × n manifold grid (`manifold_points`) in one call; return the tiled
    ``(n*28, n*28)`` image."""
    points = manifold_points(n, dimensions, code_size, quantiles)
    decoded = predict(decoder, points)  # (n*n, code_size) -> (n*n, 784)
    return tile_images(decoded, n, n)


def principal_components(points: np.ndarray, count: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The centred `points` on their first `count` principal axes, and each axis' variance share.

    Returns:
        ``(projected (n, count), explained (count,))``, explained as fractions of the total.
    """
    centred = points.astype(np.float64) - points.mean(axis=0)
    # The right singular vectors are the principal axes, in order of variance.
    _, singular_values, axes = np.linalg.svd(centred, full_matrices=False)
    variances = singular_values**2
    explained = variances[:count] / max(float(variances.sum()), np.finfo(float).tiny)
    return centred @ axes[:count].T, explained


def planar_view(points: np.ndarray, name: str = "z") -> tuple[np.ndarray, tuple[str, str]]:
    """Two coordinates per point to draw, and the axes' names.

    Two-dimensional points are drawn as they are (``z[0]``, ``z[1]``); others on their first
    two principal components, the axes named so with their share of the variance.
    """
    if points.shape[1] == 2:
        return points, (f"{name}[0]", f"{name}[1]")
    projected, explained = principal_components(points)
    return projected, tuple(  # type: ignore[return-value]
        f"principal component {axis + 1} of {name} ({100 * share:.0f}% of variance)"
        for axis, share in enumerate(explained)
    )


def plot_latent_scatter(
    points: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    axis_names: tuple[str, str] = ("z[0]", "z[1]"),
    class_names: Sequence[str] | None = None,
) -> Path:
    """The test set's latent points coloured by class, 6 × 6 inches, with a colour bar.

    The colour bar names the classes where `class_names` is given (Fashion-MNIST's).
    """
    figure = Figure(figsize=(6, 6))
    axis = figure.subplots()
    scatter = axis.scatter(points[:, 0], points[:, 1], c=labels, cmap="viridis", s=4)
    bar = figure.colorbar(scatter, ax=axis)
    if class_names is not None:
        bar.set_ticks(range(len(class_names)), labels=list(class_names))
    axis.set_xlabel(axis_names[0])
    axis.set_ylabel(axis_names[1])
    return _save(figure, path)


def plot_manifold(
    decoder: keras.Model,
    path: str | Path,
    n: int = 15,
    dimensions: tuple[int, int] = (0, 1),
    code_size: int = 2,
    quantiles: Callable[[np.ndarray], np.ndarray] = standard_normal_quantiles,
    most_active: bool = True,
) -> Path:
    """The blog's manifold: n × n decoded digits over the prior's quantiles, 10 × 10 inches.

    With more than two latent dimensions it walks `dimensions`, named in the title, the
    others at the prior's median; `most_active` says whether they were chosen as the two most
    active (measured on the test set) or are the first two.
    """
    figure = Figure(figsize=(10, 10))
    axis = figure.subplots()
    axis.imshow(decode_manifold(decoder, n, dimensions, code_size, quantiles), cmap="Greys_r")
    axis.axis("off")
    if code_size != 2:
        axis.set_title(manifold_title(dimensions, code_size, most_active))
    return _save(figure, path)


def manifold_title(dimensions: tuple[int, int], code_size: int, most_active: bool) -> str:
    """The manifold's title for a latent of more than two dimensions: which two it walks, and
    how they were chosen."""
    chosen = "the two most active" if most_active else "the first two"
    return (
        f"z[{dimensions[0]}] across, z[{dimensions[1]}] down ({chosen} of {code_size} "
        "dimensions); the others at the prior's median"
    )


def plot_decoded_beside_original(
    original: np.ndarray,
    decoded: np.ndarray,
    z: np.ndarray,
    path: str | Path,
    title: str,
    code_text: str | None = None,
) -> Path:
    """One decoded digit beside the original it came from (or alone where there is none).

    The decoded panel names its z, or `code_text` where given (a discrete code's classes),
    wrapped to the panel's width.
    """
    name = f"decoded from z = {_format_z(z)}" if code_text is None else f"decoded from {code_text}"
    panels = [("original", original), (textwrap.fill(name, 40), decoded)]
    panels = [(name, image) for name, image in panels if image is not None]
    figure = Figure(figsize=(3 * len(panels), 3.4))
    axes = figure.subplots(1, len(panels), squeeze=False)
    for axis, (name, image) in zip(axes[0], panels, strict=True):
        # (784,) -> (28, 28)
        axis.imshow(np.reshape(image, (IMAGE_SIDE, IMAGE_SIDE)), cmap="Greys_r", vmin=0, vmax=1)
        axis.set_title(name, fontsize=9)
        axis.axis("off")
    figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path)


# A decoded panel's title lists at most this many coordinates of its z, so that a latent of 100
# dimensions does not squeeze the digits under a title of twenty lines (the command prints z).
TITLED_COORDINATES = 8


def _format_z(z: np.ndarray) -> str:
    values = np.ravel(z)
    shown = ", ".join(f"{value:.2f}" for value in values[:TITLED_COORDINATES])
    if len(values) > TITLED_COORDINATES:
        return f"({shown}, … {len(values)} dimensions)"
    return f"({shown})"


def plot_reconstructions(
    originals: np.ndarray, reconstructions: np.ndarray, path: str | Path
) -> Path:
    """A row of originals over a row of their reconstructions."""
    count = len(originals)
    figure = Figure(figsize=(count, 2.3))
    axis = figure.subplots()
    image = np.concatenate(
        [tile_images(originals, 1, count), tile_images(reconstructions, 1, count)]
    )
    axis.imshow(image, cmap="Greys_r", vmin=0, vmax=1)
    axis.set_yticks([IMAGE_SIDE / 2, 3 * IMAGE_SIDE / 2], ["original", "reconstructed"])
    axis.set_xticks([])
    return _save(figure, path)


def plot_samples(decoded: np.ndarray, path: str | Path, rows: int) -> Path:
    """A grid of digits decoded from points drawn from the prior."""
    columns = len(decoded) // rows
    figure = Figure(figsize=(columns * 0.6, rows * 0.6))
    axis = figure.subplots()
    axis.imshow(tile_images(decoded[: rows * columns], rows, columns), cmap="Greys_r")
    axis.axis("off")
    return _save(figure, path)


def plot_interpolation(decoded: np.ndarray, path: str | Path, title: str) -> Path:
    """The decoded digits along a straight path in latent space, in one row."""
    count = len(decoded)
    figure = Figure(figsize=(count * 0.8, 1.3))
    axis = figure.subplots()
    axis.imshow(tile_images(decoded, 1, count), cmap="Greys_r", vmin=0, vmax=1)
    axis.axis("off")
    axis.set_title(title, fontsize=9)
    return _save(figure, path)


def _panel_title(title: str) -> str:
    """A title wrapped to one panel of a row of three curves, about 45 characters a line, so
    that a long loss name does not run into the next panel's title."""
    return textwrap.fill(title, width=45)


# Up to this many epochs a curve marks each epoch's point: a run of one epoch is one point,
# which a line alone does not draw.
MARKED_EPOCHS = 20


def _epoch_style(epochs: np.ndarray) -> dict[str, Any]:
    """Line settings for a curve over `epochs`: a marker at each point of a short run."""
    return {"marker": "o", "markersize": 4} if len(epochs) <= MARKED_EPOCHS else {}


def _label_epochs(axis, epochs: np.ndarray) -> None:
    """The x axis named and ticked in whole epochs (a 2-epoch run has no epoch 1.5).

    A short run's axis reaches half an epoch past its ends, so that a single epoch's point
    sits under a tick of its own instead of in an axis a tenth of an epoch wide.
    """
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1))
    if 0 < len(epochs) <= MARKED_EPOCHS:
        axis.set_xlim(np.min(epochs) - 0.5, np.max(epochs) + 0.5)


# The history.csv columns that the training curves draw: each term, training and validation.
TRAINING_CURVE_TERMS = LEADING_HISTORY_COLUMNS
TRAINING_CURVE_COLUMNS = (*TRAINING_CURVE_TERMS, *(f"val_{term}" for term in TRAINING_CURVE_TERMS))


def _term_titles(loss_name: str) -> tuple[str, ...]:
    """Each of `TRAINING_CURVE_TERMS`' panel titles: the loss by its objective's name."""
    return (loss_name, "reconstruction", "KL")


# A history edited by hand may hold any number of columns; the figure draws this many of the
# values training alone logs, the parts' own (those with titles) first, and names the rest.
MOST_LOGGED_PANELS = 9
# Panels in one row: the three terms and one logged value stay a single row, as most runs have.
CURVE_PANELS_PER_ROW = 3
# The height of one row of loss panels, in inches: room for a title, the curves and a legend.
CURVE_ROW_HEIGHT = 3.8


def plot_training_curves(
    history: dict[str, np.ndarray],
    path: str | Path,
    loss_name: str = "negative ELBO",
    titles: dict[str, str] | None = None,
) -> Path:
    """Loss, reconstruction and KL per epoch, training and validation.

    `loss_name` titles the loss's panel (the run's objective's `loss_name`). Every other
    column that training alone logs (a relaxation's temperature, a KL weight's warm-up) adds a
    panel of its mean over each epoch, titled by `titles` (the model's `logged_titles`) or
    by its column's name; past `MOST_LOGGED_PANELS` of them, the figure's title names the
    columns left out. More than four panels wrap into rows of three.
    """
    titles = titles or {}
    # Columns of training alone: no validation copy, and not the three terms.
    logged = [
        column
        for column in history
        if column != "epoch"
        and column not in TRAINING_CURVE_COLUMNS
        and not column.startswith("val_")
    ]
    # The parts' own values first (a stable sort keeps each group's order).
    logged.sort(key=lambda column: column not in titles)
    logged, left_out = logged[:MOST_LOGGED_PANELS], logged[MOST_LOGGED_PANELS:]
    terms = len(TRAINING_CURVE_TERMS)
    panels = terms + len(logged)
    columns = panels if panels <= CURVE_PANELS_PER_ROW + 1 else CURVE_PANELS_PER_ROW
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(13 * columns / CURVE_PANELS_PER_ROW, CURVE_ROW_HEIGHT * rows))
    axes = np.ravel(figure.subplots(rows, columns, squeeze=False))
    for axis in axes[panels:]:
        axis.remove()
    epochs = history["epoch"]
    for axis, key, title in zip(
        axes[:terms],
        TRAINING_CURVE_TERMS,
        _term_titles(loss_name),
        strict=True,
    ):
        axis.plot(epochs, history[key], label="training", **_epoch_style(epochs))
        axis.plot(epochs, history["val_" + key], label="validation", **_epoch_style(epochs))
        axis.set_title(_panel_title(f"{title} (nats per image)"))
        _label_epochs(axis, epochs)
        axis.legend()
    for axis, column in zip(axes[terms:panels], logged, strict=True):
        axis.plot(epochs, history[column], **_epoch_style(epochs))
        axis.set_title(_panel_title(f"{titles.get(column, column)} (epoch mean)"))
        _label_epochs(axis, epochs)
    if left_out:
        names = ", ".join(left_out[:3]) + (", ..." if len(left_out) > 3 else "")
        figure.suptitle(f"{len(left_out)} more logged columns not drawn: {names}")
    # Room at the top for that title: half an inch of the figure's height.
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (CURVE_ROW_HEIGHT * rows) if left_out else 1))
    return _save(figure, path)


# The code grid wraps its variables into side-by-side blocks of at most this many rows, so a
# latent of 200 binary units stays a readable shape.
CODE_GRID_ROWS = 25
CODE_GRID_GAP = 6


def plot_code_grid(
    decoded: np.ndarray, chosen: np.ndarray, classes: int, path: str | Path, title: str
) -> Path:
    """A discrete code's neighbourhood: row i, column k decodes the code with variable i set to k.

    Args:
        decoded: ``(variables * classes, 784)``, variable-major (all classes of variable 0 first).
        chosen: ``(variables,)``, the code's own class of each variable, framed in red.
        classes: K, the columns of each block.
        path: the file to write.
        title: the figure's title.

    More than `CODE_GRID_ROWS` variables are laid out in blocks side by side, each block's
    variables running down, separated by a white gap.
    """
    variables = len(chosen)
    rows = min(variables, CODE_GRID_ROWS)
    blocks = -(-variables // rows)
    block_width = classes * IMAGE_SIDE + CODE_GRID_GAP
    canvas = np.ones((rows * IMAGE_SIDE, blocks * block_width - CODE_GRID_GAP), np.float32)
    # (variables*classes, 784) -> (variables, classes, 28, 28)
    digits = decoded.reshape(variables, classes, IMAGE_SIDE, IMAGE_SIDE)
    width = max(4.0, canvas.shape[1] / 50)
    figure = Figure(figsize=(width, canvas.shape[0] / 50 + 0.8))
    axis = figure.add_subplot()
    for variable in range(variables):
        block, row = divmod(variable, rows)
        for value in range(classes):
            top, left = row * IMAGE_SIDE, block * block_width + value * IMAGE_SIDE
            canvas[top : top + IMAGE_SIDE, left : left + IMAGE_SIDE] = digits[variable, value]
        left = block * block_width + int(chosen[variable]) * IMAGE_SIDE
        axis.add_patch(
            Rectangle(
                (left - 0.5, row * IMAGE_SIDE - 0.5),
                IMAGE_SIDE,
                IMAGE_SIDE,
                fill=False,
                edgecolor="red",
                linewidth=1.0,
                # A frame on the grid's edge is drawn whole, not cut at the axes' border.
                clip_on=False,
            )
        )
    axis.imshow(canvas, cmap="Greys_r", vmin=0, vmax=1)
    if blocks == 1:
        axis.set_xticks(IMAGE_SIDE * (np.arange(classes) + 0.5), [str(k) for k in range(classes)])
        axis.set_yticks(
            IMAGE_SIDE * (np.arange(variables) + 0.5), [str(i) for i in range(variables)]
        )
        axis.set_xlabel("class k")
        axis.set_ylabel("variable i")
    else:
        _label_code_blocks(axis, variables, classes, rows, block_width)
    # A grid of few blocks is narrower than its title: wrap the title to the figure's width,
    # about 12 characters an inch at this size.
    axis.set_title(textwrap.fill(title, width=int(width * 12)), fontsize=9)
    return _save(figure, path)


def _label_code_blocks(axis, variables: int, classes: int, rows: int, block_width: int) -> None:
    """Ticks for a code grid in blocks: each block's classes below, its variables above, and
    every fifth row counted from the block's first variable."""
    blocks = -(-variables // rows)
    lefts = block_width * np.arange(blocks)
    # (blocks, classes) -> (blocks * classes,) centres, block-major as the canvas runs.
    centres = (lefts[:, None] + IMAGE_SIDE * (np.arange(classes) + 0.5)).ravel()
    axis.set_xticks(centres, [str(k) for _ in range(blocks) for k in range(classes)])
    axis.set_xlabel("class k")
    shown_rows = np.arange(0, rows, 5)
    axis.set_yticks(IMAGE_SIDE * (shown_rows + 0.5), [f"+{row}" for row in shown_rows])
    axis.set_ylabel("variable: the block's first + row")
    top = axis.secondary_xaxis("top")
    top.set_xticks(
        lefts + classes * IMAGE_SIDE / 2,
        [f"{block * rows}..{min(variables, (block + 1) * rows) - 1}" for block in range(blocks)],
    )
    top.tick_params(labelsize=7, length=0)


def plot_class_usage(usage: np.ndarray, path: str | Path) -> Path:
    """How often each class of each variable is the most probable one, as a share of images.

    Args:
        usage: ``(variables, classes)`` counts of images.
        path: the file to write.
    """
    variables, classes = usage.shape
    shares = usage / max(1, int(usage[0].sum()))
    width = max(4.0, 0.45 * classes + 2)
    figure = Figure(figsize=(width, min(30.0, 0.3 * variables + 1.5)))
    axis = figure.subplots()
    # The colour scale spans 0 to the largest share, so an even usage still shows its texture.
    image = axis.imshow(shares, cmap="viridis", aspect="auto", vmin=0, interpolation="nearest")
    figure.colorbar(image, ax=axis, label="share of test images")
    axis.set_xticks(range(classes))
    if variables <= 50:
        axis.set_yticks(range(variables))
    axis.set_xlabel("class k")
    axis.set_ylabel("variable i")
    used = np.sum(usage > 0, axis=1)
    title = f"most probable class over the test set ({mean_text(used)} of {classes} used)"
    # Wrapped to the axes' width (the colour bar takes the rest), about 8 characters an inch,
    # so that the narrow figure of two classes keeps the whole title.
    axis.set_title(textwrap.fill(title, width=int(width * 8)))
    figure.tight_layout()
    return _save(figure, path)


def mean_text(counts: np.ndarray) -> str:
    """The mean of whole-number `counts`: whole where it is whole (``10``), else one decimal
    (``7.4``), or two where one would round to a whole number it is not (``9.98``)."""
    mean = float(np.mean(counts))
    if mean.is_integer():
        return f"{mean:.0f}"
    text = f"{mean:.1f}"
    return f"{mean:.2f}" if text.endswith(".0") else text


def plot_coupling(
    coupling: np.ndarray, bias1: np.ndarray, bias2: np.ndarray, path: str | Path
) -> Path:
    """An RBM prior's learned coupling W ``(n1, n2)`` as an image, with both halves' biases.

    A diverging colour map centred on zero: red couples two units to be on together, blue
    keeps them apart. The biases are drawn as a column (a1, left) and a row (a2, top).
    """
    first_units, second_units = coupling.shape
    limit = max(
        float(np.max(np.abs(coupling))),
        float(np.max(np.abs(bias1))),
        float(np.max(np.abs(bias2))),
        1e-6,
    )
    figure = Figure(figsize=(2.5 + 0.25 * second_units, 2.5 + 0.25 * first_units))
    axes = figure.subplots(
        2,
        2,
        gridspec_kw={"width_ratios": [1, second_units], "height_ratios": [1, first_units]},
    )
    style = dict(cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    axes[0, 0].axis("off")
    axes[0, 1].imshow(bias2[None, :], **style)  # (second,) -> (1, second): a row
    axes[0, 1].set_title("bias a2 (top), bias a1 (left), coupling W", fontsize=9)
    axes[1, 0].imshow(bias1[:, None], **style)  # (first,) -> (first, 1): a column
    image = axes[1, 1].imshow(coupling, **style)
    for axis in (axes[0, 1], axes[1, 0], axes[1, 1]):
        axis.set_xticks([])
        axis.set_yticks([])
    axes[1, 1].set_xlabel(f"second half z2 ({second_units} units)")
    axes[1, 0].set_ylabel(f"first half z1 ({first_units} units)")
    figure.colorbar(image, ax=axes[:, 1].tolist(), shrink=0.8)
    return _save(figure, path)


def plot_latent_density(
    z_mean: np.ndarray,
    path: str | Path,
    extent: float = 4.0,
    axis_names: tuple[str, str] = ("z[0]", "z[1]"),
) -> Path:
    """Where the test set's z_mean lies, against contours of the N(0, I) prior.

    The view spans at least ``±extent`` and widens to hold every point. Principal components
    of an N(0, I) sample are N(0, I) too, so the contours hold for a projected view as well.
    """
    extent = max(extent, float(np.max(np.abs(z_mean[:, :2]))) * 1.05)
    figure = Figure(figsize=(6, 6))
    axis = figure.subplots()
    # A logarithmic colour scale, so the sparse tails show as well as the dense centre.
    *_, image = axis.hist2d(
        z_mean[:, 0],
        z_mean[:, 1],
        bins=80,
        range=[[-extent, extent]] * 2,
        cmap="Blues",
        norm=matplotlib.colors.LogNorm(),
    )
    figure.colorbar(image, ax=axis, label="test images per bin")
    grid = np.linspace(-extent, extent, 200)
    z0, z1 = np.meshgrid(grid, grid)
    prior_density = np.exp(-0.5 * (z0**2 + z1**2)) / (2 * np.pi)
    # Contours at the prior's 1, 2 and 3 standard-deviation levels.
    levels = sorted(np.exp(-0.5 * np.array([3.0, 2.0, 1.0]) ** 2) / (2 * np.pi))
    contours = axis.contour(z0, z1, prior_density, levels=levels, colors="darkred")
    axis.clabel(contours, fmt={level: f"{s}σ" for level, s in zip(levels, (3, 2, 1), strict=True)})
    axis.set_xlabel(axis_names[0])
    axis.set_ylabel(axis_names[1])
    # Equal scales, so the prior's contours are the circles they are.
    axis.set_aspect("equal")
    axis.set_title("test-set z_mean against the N(0, I) prior")
    return _save(figure, path)


# Pixels above an animation's digits for its "epoch N" label (PIL's default font is 11 high).
ANIMATION_LABEL_STRIP = 14


def choose_frames(count: int, limit: int = 24) -> list[int]:
    """At most `limit` of `count` frame positions, denser early where the manifold changes most."""
    if count <= limit:
        return list(range(count))
    positions = np.unique(np.round(np.geomspace(1, count, limit)).astype(int) - 1)
    return sorted({0, count - 1, *positions.tolist()})


def save_manifold_animation(
    frames: list[np.ndarray], epochs: list[int], path: str | Path, seconds_per_frame: float = 0.3
) -> Path:
    """An animated GIF of manifold images (each ``(n*28, n*28)`` in [0, 1]) over the epochs."""
    from PIL import Image, ImageDraw

    pictures = []
    for frame, epoch in zip(frames, epochs, strict=True):
        pixels = np.clip(frame * 255.0, 0, 255).astype(np.uint8)
        # A black strip above the digits holds the label, which would otherwise cover the
        # top-left digit: (n*28, n*28) -> (n*28 + strip, n*28).
        pixels = np.pad(pixels, ((ANIMATION_LABEL_STRIP, 0), (0, 0)))
        picture = Image.fromarray(pixels, mode="L").convert("P")
        ImageDraw.Draw(picture).text((4, 1), f"epoch {epoch}", fill=255)
        pictures.append(picture)
    with atomic_path(path) as temporary:
        pictures[0].save(
            temporary,
            format="GIF",
            save_all=True,
            append_images=pictures[1:],
            duration=int(seconds_per_frame * 1000),
            loop=0,
        )
    return Path(path)


def plot_validation_curves(
    histories: dict[str, dict[str, np.ndarray]], path: str | Path, loss_name: str = "negative ELBO"
) -> Path:
    """Several runs' validation loss, reconstruction and KL per epoch, overlaid, one line a run.

    Args:
        histories: run name → its ``history.csv`` columns (`vae_mnist.runs.read_history`).
        loss_name: what the runs' loss is (their objectives' `loss_name`, where they share one).
    """
    terms = [
        (f"val_{term}", title)
        for term, title in zip(TRAINING_CURVE_TERMS, _term_titles(loss_name), strict=True)
    ]
    figure = Figure(figsize=(13, CURVE_ROW_HEIGHT))
    axes = figure.subplots(1, len(terms))
    every_epoch = np.unique(np.concatenate([history["epoch"] for history in histories.values()]))
    for axis, (key, title) in zip(axes, terms, strict=True):
        for name, history in histories.items():
            if key in history:
                epochs = history["epoch"]
                axis.plot(epochs, history[key], label=name, **_epoch_style(epochs))
        axis.set_title(_panel_title(f"validation {title} (nats per image)"))
        _label_epochs(axis, every_epoch)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)
