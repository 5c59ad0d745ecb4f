"""What the explore page asks of a trained run: its description, decodings, test images.

An `Explorer` holds one run's model and test set and answers in JSON-ready values. It asks the
run's parts what they offer, never which kind they are: a ``continuous`` posterior is set by a
point ``z`` (the plane and the sliders), a posterior with ``codes`` by one class per variable
(the selectors and toggles), a prior that offers ``sample`` draws a code for the page. Every
decoding goes through the run's decoder as `vae-mnist plot decode` does (``--z``, ``--code``,
``--index``), so an image on the page is that command's image.

Requests are checked here, each refusal a `RequestError` carrying the HTTP status to answer.
The model is called under a lock, so a threaded server may share one `Explorer`.
"""

from __future__ import annotations

import math
import re
import threading
from typing import Any

import numpy as np

from vae_mnist import plotting
from vae_mnist.backend import to_numpy
from vae_mnist.data import IMAGE_SIDE
from vae_mnist.explore.server import RequestError, clipped
from vae_mnist.latent import posterior_mean_variances
from vae_mnist.metric_table import metric_rows
from vae_mnist.runs import TrainedRun, read_metrics
from vae_mnist.settings import LARGEST_SEED

# The blog's two nines: test images 7 and 9, marked on the plane.
MARKED_TEST_IMAGES = (7, 9)
# The plane and the sliders span at least the prior's bulk, ±3 standard deviations...
PRIOR_SPAN = 3.0
# ...and the test set's codes with this share of their range to spare on each side.
RANGE_MARGIN = 0.05
# The scatter's coordinates are sent to this many decimals: far finer than a screen pixel.
SCATTER_DECIMALS = 3
# Prior samples averaged for the mean of a prior that does not know its own.
PRIOR_MEAN_SAMPLES = 10_000
# The largest seed of a prior sample that the page may ask for.
LARGEST_PRIOR_SEED = LARGEST_SEED


def _pixels(image: np.ndarray) -> list[float]:
    """An image's pixel values as a flat list of floats (float32 values, exactly)."""
    return [float(value) for value in np.ravel(np.asarray(image, np.float32))]


def _value_range(values: np.ndarray) -> list[float]:
    """A control's span: the test codes' range with a margin, and at least ±`PRIOR_SPAN`."""
    low, high = float(np.min(values)), float(np.max(values))
    margin = RANGE_MARGIN * (high - low)
    return [round(min(-PRIOR_SPAN, low - margin), 2), round(max(PRIOR_SPAN, high + margin), 2)]


class Explorer:
    """One trained run and its test set, answering the explore page's questions.

    `images` are the test images as the model sees them, ``(n, pixels)`` float32, and `labels`
    their classes. The test set's codes are computed once here, in memory.
    """

    def __init__(self, run: TrainedRun, images: np.ndarray, labels: np.ndarray) -> None:
        self.run = run
        self.images = np.asarray(images, np.float32)
        self.labels = np.asarray(labels)
        self.posterior = run.vae.posterior_part
        self.prior = run.vae.prior_part
        self.generator = run.vae.image_decoder()
        self.lock = threading.Lock()
        with self.lock:
            # The whole test set in one call, as `plot` encodes it.
            self.parameters = {
                name: to_numpy(value) for name, value in run.vae.encode(self.images).items()
            }
            self.modes = to_numpy(self.posterior.mode(self.parameters))
        self.description = self._describe()

    # -- what the page is told once ------------------------------------------------------------

    def _describe(self) -> dict[str, Any]:
        config, paths = self.run.config, self.run.paths
        progress = self.run.info or {}
        metrics = read_metrics(paths)
        class_names = config.data.class_names
        description: dict[str, Any] = {
            "run": str(paths.folder),
            "preset": config.preset,
            "dataset": config.data.kind,
            "epochs": progress.get("completed_epochs"),
            "metrics": _metric_rows(metrics) if metrics else None,
            "side": IMAGE_SIDE,
            "posterior": _part_description(self.posterior, layout=True),
            "prior": _part_description(self.prior),
            "class_names": list(class_names),
            "test_count": len(self.images),
            "marked": [index for index in MARKED_TEST_IMAGES if index < len(self.images)],
            "decode_command": f"vae-mnist plot decode --run {paths.folder}",
        }
        if self.posterior.offers("continuous"):
            description["continuous"] = self._continuous_description()
        return description

    def _continuous_description(self) -> dict[str, Any]:
        """The sliders' order and spans, and the plane with the test set's scatter."""
        z_mean = self.modes
        activity = posterior_mean_variances(z_mean)
        # Most active first; a stable sort keeps equally active dimensions in index order.
        order = [int(dimension) for dimension in np.argsort(-activity, kind="stable")]
        described: dict[str, Any] = {
            "prior_mean": [round(float(value), 2) for value in self._prior_mean()],
            "order": order,
            "activity": [float(value) for value in activity],
            "ranges": [_value_range(z_mean[:, dimension]) for dimension in range(z_mean.shape[1])],
            "plane": None,
        }
        if z_mean.shape[1] >= 2:
            # The two most active dimensions, in index order: the manifold's axes.
            plane = sorted(order[:2])
            described["plane"] = {
                "dimensions": plane,
                "points": np.round(z_mean[:, plane], SCATTER_DECIMALS).tolist(),
                "labels": [int(label) for label in self.labels],
            }
        return described

    def _prior_mean(self) -> np.ndarray:
        """Where the sliders start: the mean of the decoder's input under the model's prior.

        The prior part's own mean where it knows it and is the decoder's input's prior (one
        stochastic layer); else the average of prior samples, passed down the layers.
        """
        mean = self.prior.mean() if not self.run.vae.upper_layers else None
        if mean is not None:
            return mean
        if self.prior.offers("sample"):
            with self.lock:
                samples = self.run.vae.sample_codes(PRIOR_MEAN_SAMPLES, 0)
            return np.mean(np.asarray(samples, np.float64), axis=0)
        return np.zeros(self.posterior.code_size)

    # -- what the page asks as the user moves ------------------------------------------------

    def decode(self, request: Any) -> dict[str, Any]:
        """Decode ``{"z": [...]}`` (a continuous posterior) or ``{"code": [...]}`` (classes of a
        discrete one); answer the decoded image's pixels."""
        if not isinstance(request, dict):
            raise RequestError('a decoding request is a JSON object: {"z": [...]} or {"code": ...}')
        if self.posterior.offers("continuous"):
            _check_fields(request, "z", "continuous")
            code = self._checked_point(request)
        elif self.posterior.offers("codes"):
            _check_fields(request, "code", "discrete")
            code = self.posterior.code_of(self._checked_classes(request))
        else:
            raise RequestError(f"the {self.posterior.kind} posterior offers no controls", 404)
        return {"image": _pixels(self._decode(code)[0])}

    def _checked_point(self, request: dict) -> np.ndarray:
        values = request.get("z")
        size = self.posterior.code_size
        if not isinstance(values, list) or len(values) != size:
            raise RequestError(f'"z" must be a list of {size} numbers, one per dimension')
        if not all(_is_number(value) for value in values):
            raise RequestError(clipped(f'"z" must hold finite numbers, got {values!r}'))
        # As `plot decode --z` reads its numbers: float32, where 1e39 is no longer finite.
        with np.errstate(over="ignore"):
            point = np.array([[float(value) for value in values]], dtype=np.float32)
        if not np.all(np.isfinite(point)):
            raise RequestError(clipped(f'"z" must hold finite numbers, got {values!r}'))
        return point  # (1, code_size)

    def _checked_classes(self, request: dict) -> np.ndarray:
        values = request.get("code")
        count, classes = self.posterior.variable_count, self.posterior.classes
        if not isinstance(values, list) or len(values) != count:
            raise RequestError(f'"code" must be a list of {count} classes, one per variable')
        if not all(_is_whole(value) and 0 <= value < classes for value in values):
            raise RequestError(
                clipped(f'"code" must hold classes 0..{classes - 1}, got {values!r}')
            )
        return np.array([values], dtype=np.int64)  # (1, variables)

    def test_image(self, text: str) -> dict[str, Any]:
        """Test image `text` (an index, or ``random``): the image, its reconstruction from its
        most probable code (as `plot decode --index` makes it), and that code."""
        count = len(self.images)
        if text == "random":
            index = int(np.random.default_rng().integers(count))
        elif re.fullmatch(r"[0-9]{1,9}", text):
            index = int(text)
        else:
            raise RequestError(f"a test image is an index 0..{count - 1} or 'random', got {text!r}")
        if index >= count:
            raise RequestError(f"no test image {index}: the test set has 0..{count - 1}", 404)
        answer = {
            "index": index,
            "label": int(self.labels[index]),
            "image": _pixels(self.images[index]),
            "reconstruction": _pixels(self._decode(self.modes[[index]])[0]),
        }
        return {**answer, **self._placed(self.modes[[index]])}

    def prior_sample(self, request: Any) -> dict[str, Any]:
        """A code drawn from the model's prior (``{"seed": N}``, or a fresh seed), and its image.

        An RBM prior draws it by block Gibbs sampling; a layered model passes it down through
        its conditional priors, as `plot samples` draws.
        """
        if not self.prior.offers("sample"):
            raise RequestError(f"the {self.prior.kind} prior offers no samples", 404)
        if not isinstance(request, dict):
            raise RequestError('a prior sample request is a JSON object: {"seed": N} or {}')
        others = sorted(str(name) for name in request if name != "seed")
        if others:
            named = ", ".join(f'"{name}"' for name in others)
            raise RequestError(
                clipped(f'a prior sample request gives "seed" or nothing, not {named}')
            )
        seed = request.get("seed")
        if seed is None:
            seed = int(np.random.default_rng().integers(LARGEST_PRIOR_SEED))
        if not (_is_whole(seed) and 0 <= seed <= LARGEST_PRIOR_SEED):
            raise RequestError(f'"seed" must be a whole number 0..{LARGEST_PRIOR_SEED}')
        vae = self.run.vae
        with self.lock:
            # One draw of the prior: what the decoder sees (a smoothed code's ζ), and what the
            # controls show (the drawn bits), where the model has one layer.
            drawn = self.prior.sample(1, seed)
            code = np.asarray(vae.decoder_codes(drawn, seed), np.float32)
        shown = code if vae.upper_layers else np.asarray(drawn, np.float32)
        return {"seed": seed, "image": _pixels(self._decode(code)[0]), **self._placed(shown)}

    def _placed(self, code: np.ndarray) -> dict[str, Any]:
        """A decoder input ``(1, code_size)`` as the controls hold it: ``z`` or ``code``."""
        if self.posterior.offers("codes"):
            return {"code": [int(value) for value in self.posterior.classes_of_code(code)[0]]}
        return {"z": [float(value) for value in code[0]]}

    def _decode(self, code: np.ndarray) -> np.ndarray:
        with self.lock:
            image = plotting.predict(self.generator, code)
        if not np.all(np.isfinite(image)):
            # A point so far out that the decoder's arithmetic overflows.
            raise RequestError("the decoder gives no finite image for this code")
        return image


def _check_fields(request: dict, field: str, latent: str) -> None:
    """A decoding request names the one field its run's latent reads (``z`` for a continuous
    latent, ``code`` for a discrete one); another field is refused, not ignored."""
    others = sorted(str(name) for name in request if name != field)
    if others:
        named = ", ".join(f'"{name}"' for name in others)
        raise RequestError(
            clipped(
                f'this run\'s latent is {latent}: a decoding request gives "{field}", not {named}'
            )
        )


def _is_number(value: Any) -> bool:
    """A JSON number that is finite as a float (a 400-digit integer is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _part_description(part: Any, layout: bool = False) -> dict[str, Any]:
    described = {
        "kind": part.kind,
        "description": part.description,
        "capabilities": sorted(part.offered_capabilities()),
    }
    if layout:
        described["layout"] = part.code_layout()
    return described


def _metric_rows(metrics: dict[str, Any]) -> list[list[str]]:
    """The evaluate command's table as ``[label, value]`` rows, the rows the metrics hold."""
    rows = [[label.strip(), text] for label, text in metric_rows(metrics)]
    if rows and isinstance(metrics.get("iwae_samples"), int):
        rows.append(["importance samples K", str(metrics["iwae_samples"])])
    return rows
