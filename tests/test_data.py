"""Loading MNIST from .npz files and IDX folders, and refusing every kind of bad file."""

from __future__ import annotations

import gzip
import io
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_arrays, write_idx

from vae_mnist.data import (
    IDX_FILE_STEMS,
    DataError,
    check_data,
    load_mnist,
    model_inputs,
    prepare_images,
    read_idx,
)


def _assert_keras_layout(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    for got, key in (
        (x_train, "x_train"),
        (y_train, "y_train"),
        (x_test, "x_test"),
        (y_test, "y_test"),
    ):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[key])


def test_npz(npz_file, arrays):
    _assert_keras_layout(load_mnist(npz_file), arrays)


def test_environment_variable(npz_file, arrays, monkeypatch):
    monkeypatch.setenv("VAE_MNIST_DATA", str(npz_file))
    _assert_keras_layout(load_mnist(), arrays)


def test_explicit_path_wins_over_the_environment(npz_file, arrays, monkeypatch, tmp_path):
    monkeypatch.setenv("VAE_MNIST_DATA", str(tmp_path / "missing.npz"))
    _assert_keras_layout(load_mnist(npz_file), arrays)


def test_data_is_checked_once_from_loading_to_the_model_inputs(npz_file, arrays, monkeypatch):
    import vae_mnist.data as data_module

    loaded = load_mnist(npz_file)
    # Loaded data is checked already: neither check_data nor model_inputs scans it again.
    monkeypatch.setattr(data_module, "validate_mnist", _never_called)
    monkeypatch.setattr(data_module, "prepare_images", _never_called)
    assert check_data(loaded, "loaded") is loaded
    train_images, test_images = model_inputs(loaded)
    np.testing.assert_array_equal(test_images * 255, arrays["x_test"].reshape(-1, 784))
    assert train_images.dtype == np.float32 and train_images.shape == (len(arrays["x_train"]), 784)
    # Data of the caller's own is checked, and scaled by prepare_images.
    monkeypatch.undo()
    own = ((arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"]))
    with pytest.raises(DataError, match="pixel values in 0..300"):
        model_inputs(((np.array([[[0, 300]]]), arrays["y_train"][:1]), own[1]))
    np.testing.assert_array_equal(model_inputs(own)[1], test_images)


def _never_called(*arguments):
    raise AssertionError("checked twice")


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dotted", [False, True])
def test_idx_folder(tmp_path, arrays, compress, dotted):
    for key, stem in IDX_FILE_STEMS.items():
        name = stem.replace("-idx", ".idx") if dotted else stem
        write_idx(tmp_path / name, arrays[key], compress=compress)
    _assert_keras_layout(load_mnist(tmp_path), arrays)


def test_prepare_images():
    images = np.array([[[0, 255], [51, 102]]], np.uint8)
    prepared = prepare_images(images)
    assert prepared.dtype == np.float32 and prepared.shape == (1, 4)
    np.testing.assert_allclose(prepared, [[0.0, 1.0, 0.2, 0.4]])
    # Images scaled twice, pixels past a byte, or one image read as a stack of rows would pass
    # unseen into training.
    refusals = {
        "expected integer pixels 0..255": images / 255.0,
        "pixel values in 0..300": np.array([[[0, 300]]]),
        "expected a stack of images (n, height, width)": images[0],
    }
    for message, bad in refusals.items():
        with pytest.raises(DataError, match=re.escape(message)):
            prepare_images(bad)


def test_download_failure_says_how_to_give_a_local_file(monkeypatch):
    import keras

    def offline():
        raise Exception("URL fetch failure on https://storage.googleapis.com: no network")

    monkeypatch.delenv("VAE_MNIST_DATA", raising=False)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DataError, match="could not download MNIST.*--data PATH.*VAE_MNIST_DATA"):
        load_mnist()


def _npz(tmp_path, **changes):
    arrays = make_arrays(train=20, test=10)
    arrays.update(changes)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


BAD_NPZ = {
    "missing key": (dict(y_test=None), "missing the arrays y_test"),
    "wrong image shape": (dict(x_train=np.zeros((20, 784), np.uint8)), "expected \\(n, 28, 28\\)"),
    "wrong label shape": (
        dict(y_train=np.zeros((20, 2), np.uint8)),
        "y_train of shape \\(20, 2\\): expected one class number per image",
    ),
    "float labels": (dict(y_train=np.zeros(20)), "y_train of dtype float64: expected integer"),
    "negative labels": (dict(y_test=np.full(10, -2, np.int16)), "in -2..-2: expected class"),
    "float images": (dict(x_test=np.zeros((10, 28, 28), np.float32)), "dtype float32"),
    "pixels above 255": (dict(x_train=np.full((20, 28, 28), 300, np.int32)), "expected 0..255"),
    "negative pixels": (dict(x_train=np.full((20, 28, 28), -1, np.int16)), "expected 0..255"),
    "labels above 9": (
        dict(y_test=np.full(10, 10, np.uint8)),
        "y_test in 10..10: expected class numbers 0..9",
    ),
    "lengths differ": (dict(y_train=np.zeros(19, np.uint8)), "20 images but y_train has 19"),
    "empty": (
        dict(x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, np.uint8)),
        "is empty",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_bad_npz_contents(tmp_path, case):
    changes, message = BAD_NPZ[case]
    with pytest.raises(DataError, match=message):
        load_mnist(_npz(tmp_path, **changes))


def test_pickled_object_array_is_refused(tmp_path):
    path = _npz(tmp_path, y_train=np.array([{"code": "run me"}] * 20, dtype=object))
    with pytest.raises(DataError, match="pickled objects, which are refused"):
        load_mnist(path)


def test_missing_truncated_and_non_zip_files(tmp_path, npz_file):
    with pytest.raises(DataError, match="no such file"):
        load_mnist(tmp_path / "nothing.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(npz_file.read_bytes()[:1000])
    with pytest.raises(DataError, match="not a readable .npz file"):
        load_mnist(truncated)
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    with pytest.raises(DataError, match="not a readable .npz file"):
        load_mnist(text)


def _damage_deflate(path: Path, start: int) -> None:
    """Set 100 bytes of deflate data from `start` to 0xff: a block of the reserved type 3,
    which zlib refuses ("invalid block type") whatever the data compressed to."""
    content = bytearray(path.read_bytes())
    content[start : start + 100] = b"\xff" * 100
    path.write_bytes(bytes(content))


def test_a_compressed_npz_with_damaged_data_is_one_line(tmp_path, arrays):
    path = tmp_path / "damaged.npz"
    np.savez_compressed(path, **arrays)
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo("x_train.npy")
    # The local header: 30 bytes, then the member's name and extra field, then its data.
    with open(path, "rb") as stream:
        stream.seek(member.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", stream.read(4))
    _damage_deflate(path, member.header_offset + 30 + name_length + extra_length)
    with pytest.raises(DataError, match="damaged.npz: not a readable .npz file .*invalid block"):
        load_mnist(path)


def test_an_npz_member_that_is_not_an_npy_array_is_refused(tmp_path, arrays):
    path = tmp_path / "raw.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train", b"hello")
        for key in ("y_train", "x_test", "y_test"):
            buffer = io.BytesIO()
            np.save(buffer, arrays[key])
            archive.writestr(f"{key}.npy", buffer.getvalue())
    with pytest.raises(DataError, match="raw.npz: x_train is stored as raw bytes, not as a numpy"):
        load_mnist(path)


# An .npy header for 10^13 images of 28 × 28 bytes.
HUGE_SHAPE_HEADER = b"{'descr': '|u1', 'fortran_order': False, 'shape': (10000000000000, 28, 28)}"


def _npy_with_header(text: bytes, declared: int) -> bytes:
    """An .npy member of format 1.0 whose header is `text`, `declared` bytes long by its
    length field."""
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", declared) + text


@pytest.mark.parametrize(
    "member, problem",
    [
        # A header cut short: numpy's parser of Python literals stops at the end of its input.
        (_npy_with_header(b"{'descr': garbage}\n", 16), "an array's header is cut short"),
        # A header that declares far more values than the file holds, or memory could.
        (
            _npy_with_header(HUGE_SHAPE_HEADER.ljust(117) + b"\n", 118),
            "an array larger than memory holds",
        ),
    ],
)
def test_an_npz_member_with_a_damaged_header_is_one_line(tmp_path, arrays, member, problem):
    path = tmp_path / "header.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", member)
        for key in ("y_train", "x_test", "y_test"):
            buffer = io.BytesIO()
            np.save(buffer, arrays[key])
            archive.writestr(f"{key}.npy", buffer.getvalue())
    with pytest.raises(DataError, match=f"header.npz: not a readable .npz file .*{problem}"):
        load_mnist(path)


def test_a_gzipped_idx_file_with_damaged_data_is_one_line(tmp_path, arrays):
    for key, stem in IDX_FILE_STEMS.items():
        write_idx(tmp_path / stem, arrays[key])
    images = tmp_path / "t10k-images-idx3-ubyte"
    damaged = tmp_path / "t10k-images-idx3-ubyte.gz"
    # gzip.compress writes no file name, so the deflate data starts after the 10-byte header.
    damaged.write_bytes(gzip.compress(images.read_bytes()))
    images.unlink()
    _damage_deflate(damaged, 10)
    with pytest.raises(DataError, match="idx3-ubyte.gz: cannot be read .*invalid block"):
        load_mnist(tmp_path)


def test_bad_idx_files(tmp_path, arrays):
    images = write_idx(tmp_path / "images", arrays["x_test"])
    content = images.read_bytes()
    (tmp_path / "magic").write_bytes(b"\x00\x00\x09\x03" + content[4:])
    with pytest.raises(
        DataError, match="bad IDX magic number 0x00000903 \\(expected 0x00000801 or 0x00000803\\)"
    ):
        read_idx(tmp_path / "magic")
    (tmp_path / "short").write_bytes(content[:-5])
    with pytest.raises(DataError, match="promises 78400 values .* holds 78395"):
        read_idx(tmp_path / "short")
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        read_idx(tmp_path / "tiny")
    (tmp_path / "broken.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot be read"):
        read_idx(tmp_path / "broken.gz")


def test_idx_folder_missing_a_file(tmp_path, arrays):
    for key, stem in list(IDX_FILE_STEMS.items())[:3]:
        write_idx(tmp_path / stem, arrays[key])
    with pytest.raises(DataError, match="no t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)
