"""Loading MNIST or Fashion-MNIST from a local file or through Keras, checking what was read,
and turning the images into the model's inputs and targets (scaled, flattened, binarized)."""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np

from vae_mnist.errors import DataError
from vae_mnist.settings import ConfigError, Part, kind_of, kinds, register, setting

DATA_ENVIRONMENT_VARIABLE = "VAE_MNIST_DATA"
# The test set of a binarized run is binarized once with this seed, whatever the run's seed,
# so that every binarized run is validated and evaluated on the same binary images.
TEST_BINARIZATION_SEED = 2013
IMAGE_SIDE = 28
NUMBER_OF_CLASSES = 10
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

# The four files of the original distribution, by the Keras key they fill.
IDX_FILE_STEMS = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
# The magic number of an IDX file: two zero bytes, the type code (0x08 for unsigned bytes)
# and the number of dimensions.
IDX_UNSIGNED_BYTE = 0x08

Split = tuple[np.ndarray, np.ndarray]
# What a model's inputs are, for the messages that refuse others.
MODEL_INPUTS = "the pixels / 255 that vae_mnist.data.model_inputs gives"


class CheckedData(tuple):
    """``((x_train, y_train), (x_test, y_test))`` that `validate_mnist` has passed, as
    `load_dataset` and `check_data` return it. What takes data checks it once: `check_data`
    returns such data as it is, and `model_inputs` scales its images without scanning them
    again. (Its images are uint8 arrays, so a pixel written into them in place stays in
    0..255.)"""

    __slots__ = ()


def load_dataset(
    dataset: str = "mnist", path: str | os.PathLike | None = None
) -> tuple[Split, Split]:
    """Return ``((x_train, y_train), (x_test, y_test))`` as ``keras.datasets`` does.

    Images are ``uint8`` arrays of shape ``(n, 28, 28)`` and labels ``uint8`` arrays of shape
    ``(n,)``. The source is, in order: `path`; the file or folder named by the data set's
    environment variable (``VAE_MNIST_DATA`` for MNIST, ``VAE_MNIST_FASHION_DATA`` for
    Fashion-MNIST); a download through Keras. A path may be a Keras-layout ``.npz`` file or a
    folder holding the four original IDX files, gzipped or not.
    """
    try:
        data = kind_of("data", dataset)()
    except ConfigError:
        raise DataError(
            f"unknown dataset {dataset!r} (choose from {', '.join(kinds('data'))})"
        ) from None
    return data.load(path)


def load_mnist(path: str | os.PathLike | None = None) -> tuple[Split, Split]:
    """MNIST, as `load_dataset("mnist", path)` gives it."""
    return load_dataset("mnist", path)


def prepare_images(images: np.ndarray) -> np.ndarray:
    """Scale uint8 images ``(n, height, width)`` to float32 in [0, 1] and flatten each.

    Raises:
        DataError: images that are not a stack of integer images in 0..255 (images scaled
            already would be scaled twice, a single image read as rows of pixels).
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise DataError(
            f"images of shape {images.shape}: expected a stack of images (n, height, width)"
        )
    if not np.issubdtype(images.dtype, np.integer):
        raise DataError(
            f"images of dtype {images.dtype}: expected integer pixels 0..255 (uint8), as "
            "load_dataset gives them; images scaled to [0, 1] need no preparing"
        )
    if images.size and (images.min() < 0 or images.max() > 255):
        raise DataError(f"pixel values in {images.min()}..{images.max()}: expected 0..255")
    return _scaled(images)


def _scaled(images: np.ndarray) -> np.ndarray:
    # (n, height, width) -> (n, height * width)
    return (images.astype(np.float32) / 255.0).reshape(len(images), -1)


def check_model_inputs(images: np.ndarray, what: str) -> np.ndarray:
    """`images` if they are a model's inputs, ``(n, pixels)`` floats in [0, 1] as
    `model_inputs` gives them, or a `DataError` naming `what` and the problem: pixels not yet
    scaled (integers, or floats up to 255) would be read as far brighter than any trained on."""
    images = np.asarray(images)
    if images.ndim != 2:
        raise DataError(f"{what} of shape {images.shape}: expected (n, pixels), {MODEL_INPUTS}")
    # By name, so that bfloat16 (ml_dtypes', not a NumPy floating type) is a float too.
    if "float" not in images.dtype.name:
        raise DataError(f"{what} of dtype {images.dtype}: expected floats, {MODEL_INPUTS}")
    if images.size and not np.isfinite(images).all():
        raise DataError(f"{what} hold values that are not numbers: expected {MODEL_INPUTS}")
    if images.size and (images.min() < 0 or images.max() > 1):
        raise DataError(
            f"{what} hold values in {images.min():.9g}..{images.max():.9g}: expected pixels in "
            f"[0, 1], {MODEL_INPUTS}"
        )
    return images


def check_labels(labels: np.ndarray, what: str, classes: int | None = None) -> np.ndarray:
    """`labels` if they are class numbers, one per image (integers from 0, and below `classes`
    where given), or a `DataError` naming `what` and the problem."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"{what} of shape {labels.shape}: expected one class number per image")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{what} of dtype {labels.dtype}: expected integer class numbers")
    # The neighbours' vote of evaluation counts each class by its number.
    if labels.size and (labels.min() < 0 or (classes and labels.max() >= classes)):
        expected = f"0..{classes - 1}" if classes else "from 0"
        raise DataError(
            f"{what} in {labels.min()}..{labels.max()}: expected class numbers {expected}"
        )
    return labels


def check_data(data: object, source: str) -> tuple[Split, Split]:
    """`data` as `load_dataset` returns it, ``((x_train, y_train), (x_test, y_test))``, or a
    `DataError` naming what is wrong (`validate_mnist`'s checks)."""
    if isinstance(data, CheckedData):
        return data
    try:
        (x_train, y_train), (x_test, y_test) = data  # type: ignore[misc]
    except (TypeError, ValueError):
        raise DataError(
            f"{source}: expected ((x_train, y_train), (x_test, y_test)) as load_dataset gives, "
            f"got {type(data).__name__}"
        ) from None
    arrays = {}
    for key, value in zip(NPZ_KEYS, (x_train, y_train, x_test, y_test), strict=True):
        try:
            arrays[key] = np.asarray(value)
        except ValueError as error:  # Lists of rows of different lengths.
            raise DataError(f"{source}: {key} is not an array ({error})") from None
    validate_mnist(arrays, source)
    return _checked(arrays)


def _checked(arrays: dict[str, np.ndarray]) -> CheckedData:
    return CheckedData(
        ((arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"]))
    )


def binarize(images: np.ndarray, seed: int) -> np.ndarray:
    """One draw of every pixel from Bernoulli(x) under `seed`: float32 zeros and ones.

    Args:
        images: pixel intensities in [0, 1], any shape.
        seed: the seed of the draw; the same seed gives the same binary images.
    """
    uniform = np.random.default_rng(seed).random(images.shape, dtype=np.float32)
    return (uniform < images).astype(np.float32)


def model_inputs(
    data: tuple[Split, Split], binarization: str = "none", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The training and test images as the model sees them, ``(n, 784)`` float32 each.

    ``none`` keeps grayscale; ``static`` binarizes the training set once under `seed`;
    ``dynamic`` leaves the training set grayscale for the model to binarize at every step. The
    test set of a binarized run is binarized once under `TEST_BINARIZATION_SEED`.
    """
    (x_train, _), (x_test, _) = data
    # Data that validate_mnist passed holds integer pixels in 0..255 already.
    prepare = _scaled if isinstance(data, CheckedData) else prepare_images
    x_train, x_test = prepare(x_train), prepare(x_test)
    if binarization == "static":
        x_train = binarize(x_train, seed)
    if binarization != "none":
        x_test = binarize(x_test, TEST_BINARIZATION_SEED)
    return x_train, x_test


def read_mnist_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the four arrays from an ``.npz`` file or a folder of IDX files."""
    path = Path(path)
    if path.is_dir():
        return {key: _read_idx_from_folder(path, stem) for key, stem in IDX_FILE_STEMS.items()}
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return _read_npz(path)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    # numpy would try to unpickle anything that is not a zip archive; refuse it up front.
    try:
        with open(path, "rb") as stream:
            signature = stream.read(4)
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None
    if signature != b"PK\x03\x04":
        raise DataError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive.files]
            if missing:
                raise DataError(f"{path}: missing the arrays {', '.join(missing)}")
            return {key: _npz_array(path, key, archive[key]) for key in NPZ_KEYS}
    except DataError:
        raise
    except ValueError as error:
        if "allow_pickle" in str(error) or "Object arrays" in str(error):
            raise DataError(
                f"{path}: holds pickled objects, which are refused (arrays only)"
            ) from None
        raise DataError(f"{path}: not a readable .npz file ({error})") from None
    # A member whose compressed bytes are damaged fails in zlib, which raises its own error;
    # an encrypted member or an unknown compression method, zipfile's RuntimeError (or its
    # subclass NotImplementedError).
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError) as error:
        raise DataError(f"{path}: not a readable .npz file ({error})") from None
    except tokenize.TokenError:
        # An array's header cut short, which numpy's parser of Python literals reads to its end.
        raise DataError(
            f"{path}: not a readable .npz file (an array's header is cut short)"
        ) from None
    except MemoryError:
        # A damaged header may declare an array far larger than the file.
        raise DataError(
            f"{path}: not a readable .npz file (an array larger than memory holds: damaged, or "
            "too large for this machine)"
        ) from None


def _npz_array(path: Path, key: str, value: object) -> np.ndarray:
    # numpy hands back the raw bytes of a member not saved as .npy (no ".npy" in its name).
    if not isinstance(value, np.ndarray):
        raise DataError(f"{path}: {key} is stored as raw bytes, not as a numpy array (.npy)")
    return value


def _read_idx_from_folder(folder: Path, stem: str) -> np.ndarray:
    # Accept both spellings in circulation ("-idx3-ubyte" and ".idx3-ubyte"), gzipped or not.
    candidates = [stem, stem.replace("-idx", ".idx")]
    for name in candidates:
        for suffix in ("", ".gz"):
            candidate = folder / (name + suffix)
            if candidate.is_file():
                return read_idx(candidate, dimensions=3 if "images" in stem else 1)
    raise DataError(f"{folder}: no {stem} or {stem}.gz file (an IDX data folder needs all four)")


def read_idx(path: str | os.PathLike, dimensions: int | None = None) -> np.ndarray:
    """Read one IDX file of unsigned bytes (``.gz`` files are decompressed).

    Args:
        path: the file.
        dimensions: where given, the number of dimensions the magic number must announce
            (3 for images, 1 for labels).
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                content = stream.read()
        else:
            content = path.read_bytes()
    # Damaged compressed bytes inside a valid gzip header fail in zlib, not in gzip.
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataError(f"{path}: cannot be read ({error})") from None
    if len(content) < 4:
        raise DataError(f"{path}: too short for an IDX file ({len(content)} bytes)")
    zero_one, zero_two, type_code, announced = content[:4]
    wanted = {dimensions} if dimensions else {1, 3}
    if zero_one != 0 or zero_two != 0 or type_code != IDX_UNSIGNED_BYTE or announced not in wanted:
        expected = " or ".join(f"0x{0x800 + count:08x}" for count in sorted(wanted))
        raise DataError(f"{path}: bad IDX magic number 0x{content[:4].hex()} (expected {expected})")
    dimensions = announced
    header_size = 4 + 4 * dimensions
    if len(content) < header_size:
        raise DataError(f"{path}: too few bytes for the IDX header")
    shape = tuple(
        int.from_bytes(content[4 + 4 * axis : 8 + 4 * axis], "big") for axis in range(dimensions)
    )
    # In Python's integers: numpy's product of three large sizes wraps around to 0.
    expected = math.prod(shape)
    available = len(content) - header_size
    if available != expected:
        raise DataError(
            f"{path}: the header promises {expected} values of shape {shape} "
            f"but the file holds {available}"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)


def validate_mnist(arrays: dict[str, np.ndarray], source: str) -> None:
    """Raise `DataError` unless the arrays look like MNIST in the Keras layout."""
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
            raise DataError(f"{source}: x_{split} has shape {images.shape}, expected (n, 28, 28)")
        labels = check_labels(labels, f"{source}: y_{split}", NUMBER_OF_CLASSES)
        if len(images) != len(labels):
            raise DataError(
                f"{source}: x_{split} has {len(images)} images but y_{split} "
                f"has {len(labels)} labels"
            )
        if len(images) == 0:
            raise DataError(f"{source}: x_{split} is empty")
        if not np.issubdtype(images.dtype, np.integer):
            raise DataError(
                f"{source}: x_{split} has dtype {images.dtype}, expected integers (uint8)"
            )
        if images.min() < 0 or images.max() > 255:
            raise DataError(
                f"{source}: x_{split} has pixel values in {images.min()}..{images.max()}, "
                "expected 0..255"
            )
    for key in NPZ_KEYS:
        arrays[key] = arrays[key].astype(np.uint8, copy=False)


def _download_with_keras(data: Data) -> dict[str, np.ndarray]:
    import keras

    try:
        loaded = getattr(keras.datasets, data.keras_dataset).load_data()
        (x_train, y_train), (x_test, y_test) = loaded
    except Exception as error:  # Keras wraps every network failure in a plain Exception.
        raise DataError(
            f"could not download {data.display_name} through Keras (is there a network?): "
            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}. "
            f"Give a local copy with --data PATH or the environment variable "
            f"{data.environment_variable} (an .npz in the Keras layout or a folder "
            "of the four IDX files)"
        ) from None
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


# -- the data kinds ---------------------------------------------------------------------------

BINARIZATIONS = ("none", "dynamic", "static")


@dataclasses.dataclass(frozen=True)
class Data(Part):
    """The base of the data kinds: which images, and how their pixels become targets.

    ``load(path)``: ``((x_train, y_train), (x_test, y_test))``, uint8 images and their labels,
    from a local copy, the file its ``environment_variable`` names, or ``keras.datasets``'
    ``keras_dataset``; ``display_name`` names it in messages, ``class_names`` its labels
    (``legend_names`` where a figure's legend needs them); ``pixels``: the values per image.
    """

    family: ClassVar[str] = "data"
    required_attributes: ClassVar[tuple[str, ...]] = (
        "display_name",
        "environment_variable",
        "keras_dataset",
        "class_names",
    )
    pixels: ClassVar[int] = IMAGE_SIDE * IMAGE_SIDE
    display_name: ClassVar[str]
    environment_variable: ClassVar[str]
    keras_dataset: ClassVar[str]
    class_names: ClassVar[tuple[str, ...]]

    binarize: str = setting(
        "none",
        "pixels as grayscale targets (none), drawn from Bernoulli(x) at every step (dynamic), "
        "or drawn once under the seed (static)",
        choices=BINARIZATIONS,
    )

    @property
    def dataset(self) -> str:
        """The data set's name in `load_dataset`, its kind (kept for code written against
        earlier versions)."""
        return self.kind

    @property
    def binarized_each_step(self) -> bool:
        """Whether the model draws binary targets from the grayscale pixels at every step."""
        return self.binarize == "dynamic"

    @property
    def grayscale_targets(self) -> bool:
        """Whether the model's targets are the grayscale pixels themselves."""
        return self.binarize == "none"

    def model_inputs(self, data: tuple[Split, Split], seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The training and test images as a model of this data sees them: the module's
        `model_inputs` under this part's binarization."""
        return model_inputs(data, self.binarize, seed)

    @property
    def legend_names(self) -> tuple[str, ...] | None:
        """The classes' names for a figure's legend, or None where the labels name themselves
        (MNIST's digits 0..9)."""
        return self.class_names

    def load(self, path: str | os.PathLike | None = None) -> tuple[Split, Split]:
        if path is None:
            path = os.environ.get(self.environment_variable) or None
        arrays = _download_with_keras(self) if path is None else read_mnist_file(path)
        validate_mnist(arrays, source=str(path) if path is not None else "keras download")
        return _checked(arrays)


@register
@dataclasses.dataclass(frozen=True)
class MNISTData(Data):
    """LeCun et al.'s handwritten digits: 60,000 training and 10,000 test images."""

    kind: ClassVar[str] = "mnist"
    description: ClassVar[str] = "handwritten digits (LeCun et al. 1998)"
    display_name: ClassVar[str] = "MNIST"
    environment_variable: ClassVar[str] = DATA_ENVIRONMENT_VARIABLE
    keras_dataset: ClassVar[str] = "mnist"
    class_names: ClassVar[tuple[str, ...]] = tuple(str(digit) for digit in range(10))

    @property
    def legend_names(self) -> None:
        return None


@register
@dataclasses.dataclass(frozen=True)
class FashionMNISTData(Data):
    """Zalando's Fashion-MNIST: ten kinds of clothing, MNIST's sizes (Xiao et al. 2017)."""

    kind: ClassVar[str] = "fashion_mnist"
    description: ClassVar[str] = "clothing, MNIST's sizes (Xiao, Rasul & Vollgraf 2017)"
    display_name: ClassVar[str] = "Fashion-MNIST"
    environment_variable: ClassVar[str] = "VAE_MNIST_FASHION_DATA"
    keras_dataset: ClassVar[str] = "fashion_mnist"
    class_names: ClassVar[tuple[str, ...]] = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )
