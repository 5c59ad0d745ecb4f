"""The command line end to end, and the one-line errors of every kind of bad input."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPOSITORY, folder_state, make_arrays, run_command, write_idx

from vae_mnist.cli import main
from vae_mnist.figures import TEST_SET_FIGURES

FIXTURES = Path(__file__).resolve().parent / "fixtures"

FIGURE_SIZES = {
    "latent_scatter.png": (600, 600),
    "manifold.png": (1000, 1000),
    "decode_7.png": (600, 340),
    "decode_9.png": (600, 340),
    "reconstructions.png": (1000, 230),
    "samples.png": (600, 600),
    "interpolation.png": (800, 130),
    "training_curves.png": (1300, 380),
    "latent_density.png": (600, 600),
}


def png_size(path: Path) -> tuple[int, int]:
    content = path.read_bytes()
    assert content[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert content[12:16] == b"IHDR"
    return struct.unpack(">II", content[16:24])


def gif_frames_and_size(path: Path) -> tuple[int, tuple[int, int]]:
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "GIF"
        return image.n_frames, image.size


def test_scripts_end_to_end(tmp_path, session_npz):
    run_folder, figures = tmp_path / "run", tmp_path / "figures"
    trained = run_command(
        "--data",
        str(session_npz),
        "--epochs",
        "1",
        "--out",
        str(run_folder),
        "--snapshot-every",
        "1",
        script="train.py",
    )
    assert trained.returncode == 0, trained.stderr
    # Standard output is a pipe here, not a terminal: a plain line per epoch, no bar.
    assert trained.stdout.startswith("epoch 1/1: loss ")
    assert not any(character in trained.stdout for character in "\r\b\x1b")
    for name in (
        "vae.keras",
        "encoder.keras",
        "decoder.keras",
        "config.json",
        "history.csv",
        "run.json",
    ):
        assert (run_folder / name).is_file(), name
    header, row = (run_folder / "history.csv").read_text().splitlines()
    assert header == (
        "epoch,loss,reconstruction_loss,kl_loss,val_loss,val_reconstruction_loss,val_kl_loss"
    )
    # Epochs are numbered from 1, as the progress bar and every message count them.
    assert row.startswith("1,")
    plotted = run_command(
        "all",
        "--run",
        str(run_folder),
        "--data",
        str(session_npz),
        "--out",
        str(figures),
        script="plot.py",
    )
    assert plotted.returncode == 0, plotted.stderr
    assert "test image 7 (a " in plotted.stdout and "z = [" in plotted.stdout
    # The animation's bar over its snapshots, off a terminal: one plain line, as evaluate's.
    assert "2/2" in plotted.stdout
    assert not any(character in plotted.stdout for character in "\r\b\x1b")
    for name, size in FIGURE_SIZES.items():
        assert png_size(figures / name) == size, name
    frames, size = gif_frames_and_size(figures / "manifold.gif")
    # 14 pixels above the digits hold the epoch's label.
    assert frames == 2 and size == (15 * 28, 15 * 28 + 14)


def test_plot_single_kinds_and_options(trained_run, session_npz, tmp_path):
    out = tmp_path / "figures"

    def plot(kind: str, *options: str) -> int:
        folders = ["--run", str(trained_run), "--out", str(out)]
        reads_data = kind in TEST_SET_FIGURES and "--z" not in options
        data = ["--data", str(session_npz)] if reads_data else []
        return main(["plot", kind, *folders, *data, *options])

    assert plot("manifold", "--n", "4") == 0
    assert png_size(out / "manifold.png") == (1000, 1000)
    assert plot("decode", "--z", "1.69", "0.28") == 0
    assert png_size(out / "decode_z_1.69_0.28.png") == (300, 340)
    assert plot("decode", "--index", "3") == 0
    assert (out / "decode_3.png").is_file()
    assert plot("interpolation", "--from", "4", "--to", "5", "--steps", "6") == 0
    assert png_size(out / "interpolation.png") == (480, 130)


MODEL_CHECK = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    import vae_mnist.model  # registers the VAE and its layers with Keras

    folder, out = sys.argv[1], sys.argv[2]
    images = np.random.default_rng(0).random((6, 784)).astype("float32")
    z = np.random.default_rng(1).standard_normal((6, 2)).astype("float32")
    vae = keras.saving.load_model(folder + "/vae.keras")
    encoder = keras.saving.load_model(folder + "/encoder.keras")
    decoder = keras.saving.load_model(folder + "/decoder.keras")
    np.savez(out, z_mean=keras.ops.convert_to_numpy(encoder(images)),
             decoded=keras.ops.convert_to_numpy(decoder(z)),
             vae=keras.ops.convert_to_numpy(vae(images)["reconstruction"]),
             vae_z_mean=keras.ops.convert_to_numpy(vae.encoder(images)[0]),
             vae_decoded=keras.ops.convert_to_numpy(vae.decoder(z)))
    """
)


def test_saved_models_reload_in_fresh_processes_with_safe_mode(trained_run, tmp_path):
    outputs = []
    for attempt in range(2):
        out = tmp_path / f"outputs{attempt}.npz"
        result = subprocess.run(
            [sys.executable, "-c", MODEL_CHECK, str(trained_run), str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(dict(np.load(out, allow_pickle=False)))
    for key in outputs[0]:
        np.testing.assert_array_equal(outputs[0][key], outputs[1][key])
    np.testing.assert_allclose(outputs[0]["z_mean"], outputs[0]["vae_z_mean"], rtol=1e-6)
    np.testing.assert_allclose(outputs[0]["decoded"], outputs[0]["vae_decoded"], rtol=1e-6)


def test_help_lists_every_flag_with_help():
    result = run_command("train", "--help")
    assert result.returncode == 0
    for flag in (
        "--data",
        "--epochs",
        "--batch-size",
        "--seed",
        "--out",
        "--network",
        "--posterior",
        "--prior",
        "--likelihood",
        "--objective",
        "--optimizer",
        "--dimension",
        "--units",
        "--halves",
        "--learning-rate",
        "--hidden-layers",
        "--epsilon-std",
        "--overwrite",
        "--restart",
        "--snapshot-every",
    ):
        assert flag in result.stdout


# Bad input: one line on standard error, a non-zero exit, no traceback, nothing changed.


def assert_one_line_error(capsys, status, pattern: str):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert status not in (0, None)
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    import re

    assert re.search(pattern, lines[0]), lines[0]


def call(arguments: list[str]) -> int:
    """Run `main`, turning argparse's SystemExit into its status."""
    try:
        return main(arguments)
    except SystemExit as exit:
        return exit.code


@pytest.fixture
def finished_run(trained_run, tmp_path) -> Path:
    folder = tmp_path / "finished"
    shutil.copytree(trained_run, folder)
    return folder


def bad_npz(tmp_path: Path, **changes) -> Path:
    arrays = make_arrays(train=20, test=10)
    arrays.update(changes)
    path = tmp_path / "bad.npz"
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


BAD_DATA = {
    "missing file": (lambda tmp: tmp / "absent.npz", r"absent\.npz: no such file"),
    "truncated npz": (
        lambda tmp: _write(tmp / "cut.npz", bad_npz(tmp).read_bytes()[:300]),
        r"cut\.npz: not a readable \.npz file",
    ),
    "non-zip npz": (lambda tmp: _write(tmp / "x.npz", b"hello"), r"not a zip archive"),
    "missing keys": (lambda tmp: bad_npz(tmp, x_test=None), r"missing the arrays x_test"),
    "wrong shapes": (
        lambda tmp: bad_npz(tmp, x_train=np.zeros((20, 28, 27), np.uint8)),
        r"x_train has shape \(20, 28, 27\)",
    ),
    "wrong dtype": (
        lambda tmp: bad_npz(tmp, x_train=np.zeros((20, 28, 28), np.float64)),
        r"x_train has dtype float64",
    ),
    "pixels out of range": (
        lambda tmp: bad_npz(tmp, x_test=np.full((10, 28, 28), 256, np.uint16)),
        r"pixel values in 256\.\.256, expected 0\.\.255",
    ),
    "labels out of range": (
        lambda tmp: bad_npz(tmp, y_train=np.full(20, 12, np.int64)),
        r"y_train in 12\.\.12: expected class numbers 0\.\.9",
    ),
    "lengths differ": (
        lambda tmp: bad_npz(tmp, y_test=np.zeros(9, np.uint8)),
        r"x_test has 10 images but y_test has 9 labels",
    ),
    "pickled objects": (
        lambda tmp: bad_npz(tmp, y_test=np.array([object()] * 10, dtype=object)),
        r"pickled objects, which are refused",
    ),
    "idx bad magic": (lambda tmp: _idx_folder(tmp, magic=True), r"bad IDX magic number"),
    "idx too few bytes": (lambda tmp: _idx_folder(tmp, cut=True), r"the file holds"),
}


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _idx_folder(tmp: Path, magic: bool = False, cut: bool = False) -> Path:
    from vae_mnist.data import IDX_FILE_STEMS

    folder = tmp / "idx"
    folder.mkdir()
    arrays = make_arrays(train=20, test=10)
    for key, stem in IDX_FILE_STEMS.items():
        path = write_idx(folder / stem, arrays[key])
        if key == "x_train" and magic:
            path.write_bytes(b"\x00\x00\x08\x07" + path.read_bytes()[4:])
        if key == "y_test" and cut:
            path.write_bytes(path.read_bytes()[:-3])
    return folder


@pytest.mark.parametrize("case", sorted(BAD_DATA))
@pytest.mark.parametrize("command", ["train", "plot"])
def test_bad_data_is_refused_and_nothing_changes(case, command, finished_run, tmp_path, capsys):
    make, pattern = BAD_DATA[case]
    data = make(tmp_path)
    figures = finished_run / "figures"
    figures.mkdir()
    (figures / "latent_scatter.png").write_bytes(b"an earlier figure")
    before = folder_state(finished_run)
    if command == "train":
        arguments = [
            "train",
            "--data",
            str(data),
            "--out",
            str(finished_run),
            "--overwrite",
            "--epochs",
            "1",
            "--quiet",
        ]
    else:
        arguments = [
            "plot",
            "all",
            "--data",
            str(data),
            "--run",
            str(finished_run),
            "--out",
            str(figures),
        ]
    assert_one_line_error(capsys, call(arguments), pattern)
    assert folder_state(finished_run) == before


BAD_FLAGS = {
    "epochs zero": (["train", "--epochs", "0"], r"--epochs: expected a positive whole number"),
    "epochs negative": (["train", "--epochs", "-3"], r"expected a positive whole number"),
    "epochs fraction": (["train", "--epochs", "2.5"], r"expected a positive whole number"),
    "epochs word": (["train", "--epochs", "ten"], r"got 'ten'"),
    "batch size zero": (["train", "--batch-size", "0"], r"--batch-size: expected a positive"),
    "batch size word": (["train", "--batch-size", "big"], r"--batch-size: .*'big'"),
    "learning rate nan": (["train", "--learning-rate", "nan"], r"--learning-rate: expected"),
    "z word": (["plot", "decode", "--z", "1.0", "abc"], r"--z: expected a number, got 'abc'"),
    "z beyond float32": (["plot", "decode", "--z", "1e39", "1"], r"--z: .*float32.*'1e39'"),
    "z just beyond float32": (["plot", "decode", "--z", "3.41e38", "1"], r"float32.*'3.41e38'"),
    "z infinite": (["plot", "decode", "--z", "1", "1e999"], r"--z: expected a finite number"),
    "learning rate infinite": (
        ["train", "--learning-rate", "inf"],
        r"--learning-rate: expected a positive finite number, got 'inf'",
    ),
    # A sign is what a negative seed gets wrong, however large it is.
    "seed far below zero": (
        ["train", "--seed", "-" + "9" * 41],
        r"--seed: expected a non-negative whole number of at most 1073741823",
    ),
    "n zero": (["plot", "manifold", "--n", "0"], r"--n: expected a positive whole number"),
    "unknown kind": (["plot", "everything"], r"invalid choice: 'everything'"),
    # Seeds stay within PyTorch's 32-bit signed ones; sizes past 31 bits no backend builds.
    "seed too large": (["train", "--seed", "1073741824"], r"--seed: expected at most 1073741823"),
    "samples seed too large": (["plot", "samples", "--seed", "1e30"], r"at most 1073741823"),
    "dimension too large": (
        ["train", "--dimension", "1e30"],
        r"--dimension: expected at most 2147483647, got '1e30'",
    ),
    "manifold too large": (["plot", "manifold", "--n", "101"], r"--n: expected at most 100"),
    # An interpolation has two ends, so one step would draw a single digit under its title.
    "steps one": (
        ["plot", "interpolation", "--steps", "1"],
        r"--steps: expected a whole number from 2 to 100, got '1'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_flags(case, finished_run, capsys):
    arguments, pattern = BAD_FLAGS[case]
    before = folder_state(finished_run)
    folder_flag = (
        ["--out", str(finished_run)]
        if arguments[0] == "train"
        else ["--run", str(finished_run), "--out", str(finished_run / "figures")]
    )
    assert_one_line_error(capsys, call([*arguments, *folder_flag]), pattern)
    assert folder_state(finished_run) == before


def test_plot_refusals(finished_run, session_npz, tmp_path, capsys):
    before = folder_state(finished_run)
    base = ["--run", str(finished_run), "--out", str(tmp_path / "f"), "--data", str(session_npz)]
    cases = [
        (
            ["plot", "decode", "--z", "1", "2", "3", *base[:4]],
            r"--z needs 2 numbers \(one per latent dimension\), got 3",
        ),
        (
            ["plot", "decode", "--index", "100", *base],
            r"--index 100 is outside the test set \(0\.\.99\)",
        ),
        (["plot", "all", "--run", str(tmp_path / "empty")], r"no such run folder"),
    ]
    (tmp_path / "no-model").mkdir()
    cases.append(
        (["plot", "latent", "--run", str(tmp_path / "no-model")], r"holds no trained model")
    )
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    cases.append(
        (
            ["plot", "manifold", "--run", str(finished_run), "--out", str(blocker / "f")],
            r"cannot write to the folder .*a-file/f: .*a-file is a file",
        )
    )
    # The file itself as the folder: named so, as train and compare name it, not "File exists".
    cases.append(
        (
            ["plot", "manifold", "--run", str(finished_run), "--out", str(blocker)],
            r"cannot write to the folder .*a-file: .*a-file is a file",
        )
    )
    # A file named as the run was "no such run folder", though it is there.
    cases.append((["plot", "all", "--run", str(blocker)], r"a-file is a file, not a run folder"))
    cases.append(
        (["compare", str(finished_run), str(blocker)], r"a-file is a file, not a run folder")
    )
    # A run stopped before it finished is told to continue, not to train into its folder.
    unfinished = FIXTURES / "run_v2_unfinished"
    cases.append(
        (
            ["evaluate", "--run", str(unfinished)],
            r"holds no trained model \(no vae\.keras\); it holds an unfinished run \(1 epoch "
            r"done\): continue training it",
        )
    )
    for arguments, pattern in cases:
        assert_one_line_error(capsys, call(arguments), pattern)
    assert folder_state(finished_run) == before


def test_missing_and_corrupt_model_files(finished_run, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(finished_run, broken)
    (broken / "vae.keras").write_bytes(b"PK\x03\x04 not really a zip")
    before = folder_state(broken)
    assert_one_line_error(
        capsys,
        call(["plot", "manifold", "--run", str(broken), "--out", str(tmp_path / "f")]),
        r"vae\.keras: not a readable Keras model",
    )
    assert folder_state(broken) == before
    # An archive whose config.json is JSON, but no object: a traceback once.
    with zipfile.ZipFile(finished_run / "vae.keras") as source:
        members = {item.filename: source.read(item) for item in source.infolist()}
    for config in (b"[]", b"5", b"null"):
        with zipfile.ZipFile(broken / "vae.keras", "w") as archive:
            for name, content in members.items():
                archive.writestr(name, config if name == "config.json" else content)
        assert_one_line_error(
            capsys,
            call(["plot", "samples", "--run", str(broken), "--out", str(tmp_path / "f")]),
            r"vae\.keras: not a readable Keras model",
        )
    # A Keras model, but not a VAE: it loads, and has none of a VAE's parts.
    import keras

    inputs = keras.Input((784,))
    keras.Model(inputs, keras.layers.Dense(3)(inputs)).save(broken / "vae.keras")
    before = folder_state(broken)
    for command in (["plot", "samples"], ["evaluate"]):
        assert_one_line_error(
            capsys,
            call([*command, "--run", str(broken)]),
            r"vae\.keras: a Keras model, but not a vae-mnist VAE",
        )
    assert folder_state(broken) == before
    (broken / "vae.keras").unlink()
    before = folder_state(broken)
    assert_one_line_error(
        capsys,
        call(["evaluate", "--run", str(broken)]),
        r"holds no trained model \(no vae\.keras\)",
    )
    assert folder_state(broken) == before


def test_unwritable_run_folder(tmp_path, session_npz, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    status = call(["train", "--data", str(session_npz), "--out", str(blocker / "run")])
    assert_one_line_error(capsys, status, r"cannot write to the folder")
    assert blocker.read_text() == "in the way"


def test_errors_in_a_fresh_process_have_no_traceback(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"junk")
    result = run_command("train", "--data", str(tmp_path / "x.npz"), "--out", str(tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("vae-mnist train: error: ")
    result = run_command("train", "--epochs", "-1")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "vae-mnist train: error: argument --epochs: expected a positive whole number, got '-1' "
        "(see vae-mnist train --help)"
    )


def test_repository_layout():
    for name in (
        "README.md",
        "pyproject.toml",
        ".ci/run",
        "scripts/train.py",
        "scripts/plot.py",
        "scripts/evaluate.py",
    ):
        assert (REPOSITORY / name).is_file(), name


def test_plots_of_a_five_dimensional_latent_space(tmp_path, session_npz, capsys):
    from vae_mnist import RunConfig, load_mnist
    from vae_mnist.training import train

    run = tmp_path / "run5"
    config = RunConfig().replace(dimension=5, hidden_layers=(32,), epochs=1, snapshot_every=1)
    train(config, load_mnist(session_npz), run, verbose=0)
    out = tmp_path / "figures"
    assert (
        call(["plot", "all", "--run", str(run), "--data", str(session_npz), "--out", str(out)]) == 0
    )
    for name, size in FIGURE_SIZES.items():
        assert png_size(out / name) == size, name
    assert gif_frames_and_size(out / "manifold.gif")[0] == 2
    assert (
        call(
            ["plot", "decode", "--run", str(run), "--out", str(out), "--z", "0", "1", "2", "3", "4"]
        )
        == 0
    )
    assert "z = [0, 1, 2, 3, 4]" in capsys.readouterr().out
    assert_one_line_error(
        capsys,
        call(["plot", "decode", "--run", str(run), "--out", str(out), "--z", "0", "1"]),
        r"--z needs 5 numbers \(one per latent dimension\), got 2",
    )


def test_principal_components_and_the_walked_dimensions():
    from vae_mnist.commands.plot import walked_dimensions
    from vae_mnist.plotting import planar_view, principal_components

    rng = np.random.default_rng(0)
    points = rng.standard_normal((2000, 5)) * np.array([0.1, 3.0, 0.2, 1.0, 0.05])
    projected, explained = principal_components(points)
    assert projected.shape == (2000, 2)
    assert explained[0] == pytest.approx(9 / 10.0 + 0.0, abs=0.03)
    np.testing.assert_allclose(np.var(projected, axis=0), [9.0, 1.0], rtol=0.1)
    view, names = planar_view(points, "z_mean")
    assert names[0].startswith("principal component 1 of z_mean (")
    assert planar_view(points[:, :2])[1] == ("z[0]", "z[1]")
    assert walked_dimensions(points, 5) == (1, 3)
    assert walked_dimensions(points[:, :2], 2) == (0, 1)


def test_the_manifold_title_says_how_its_dimensions_were_chosen():
    from vae_mnist.plotting import manifold_title

    # `plot manifold` alone reads no test set, so it walks the first two and must not call them
    # the most active.
    assert "(the first two of 5 dimensions)" in manifold_title((0, 1), 5, most_active=False)
    assert "(the two most active of 5 dimensions)" in manifold_title((1, 3), 5, most_active=True)


def test_a_long_latent_point_gets_a_short_file_name_and_title():
    from vae_mnist.commands.plot import _z_name
    from vae_mnist.plotting import _format_z

    assert _z_name(np.array([1.69, -0.28])) == "decode_z_1.69_-0.28"
    long_name = _z_name(np.full(100, -1.25))
    assert long_name.startswith("decode_z_") and len(long_name) == len("decode_z_") + 12
    assert _z_name(np.full(100, -1.25)) == long_name != _z_name(np.full(100, 1.25))
    assert _format_z(np.array([0.5, 1.0])) == "(0.50, 1.00)"
    assert _format_z(np.zeros(100)) == "(" + "0.00, " * 8 + "… 100 dimensions)"


def test_points_that_decode_differently_never_share_a_figure():
    from vae_mnist.commands.plot import _z_name

    # Rounded to two decimals both were decode_z_0.00_0.00, and the second replaced the first.
    assert _z_name(np.array([0.001, 0.0])) == "decode_z_0.001_0"
    assert _z_name(np.array([0.004, 0.0])) == "decode_z_0.004_0"
    # Points the same in float32, which the model decodes alike, do share one; −0 is 0.
    assert _z_name(np.array([-0.0, 1e-50])) == _z_name(np.array([0.0, 0.0])) == "decode_z_0_0"


def test_a_runs_snapshots_are_read_by_their_epochs(tmp_path):
    from vae_mnist.runs import RunPaths

    paths = RunPaths(tmp_path)
    assert paths.snapshot_epochs() == []
    paths.snapshots.mkdir()
    for epoch in (10, 2):
        paths.snapshot(epoch).write_bytes(b"")
    # A file of one's own beside them, named almost alike, is not a snapshot.
    (paths.snapshots / "decoder-epoch-best.keras").write_bytes(b"")
    assert paths.snapshot_epochs() == [(2, paths.snapshot(2)), (10, paths.snapshot(10))]


def test_the_manifold_walks_the_priors_own_quantiles():
    from statistics import NormalDist

    from vae_mnist.plotting import manifold_points

    # The blog's grid: N(0, 1)'s inverse CDF of 0.05 .. 0.95, z0 across, z1 down.
    blog = np.array([NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, 4)], np.float32)
    points = manifold_points(4).reshape(4, 4, 2)  # (n*n, 2) -> (row, column, 2)
    np.testing.assert_array_equal(points[0, :, 0], blog)
    np.testing.assert_array_equal(points[:, 0, 1], blog)

    # A prior of its own: each dimension's quantiles shifted by the dimension's number.
    def quantiles(probabilities: np.ndarray) -> np.ndarray:
        assert probabilities.shape == (3, 5)
        return probabilities + np.arange(5)

    points = manifold_points(3, (1, 3), 5, quantiles)
    grid = np.linspace(0.05, 0.95, 3)
    np.testing.assert_allclose(points[:3, 1], grid + 1)  # the first row, across
    np.testing.assert_allclose(points[::3, 3], grid + 3)  # the first column, down
    np.testing.assert_allclose(points[:, [0, 2, 4]], np.tile([0.5, 2.5, 4.5], (9, 1)))


def test_the_walked_figures_ask_for_the_prior_of_the_code_they_draw():
    from types import SimpleNamespace

    from vae_mnist.figures import figure_parts, unmet_need

    class Part:
        def __init__(self, family: str, kind: str, *capabilities: str) -> None:
            self.family, self.kind, self.capabilities = family, kind, capabilities

        def offers(self, capability: str) -> bool:
            return capability in self.capabilities

    posterior = Part("posterior", "laplace", "continuous")
    laplace = Part("prior", "standard_laplace", "sample", "quantiles")
    parts = figure_parts(
        SimpleNamespace(posterior_part=posterior, prior_part=laplace, upper_layers=[])
    )
    assert unmet_need("manifold", parts) is None
    assert unmet_need("density", parts) == (
        "'density' needs an N(0, I) prior to draw, which this run's standard_laplace prior is not"
    )
    # A stack's first layer has a prior conditional on the layer above, whatever the top's.
    normal = Part("prior", "standard_normal", "sample", "quantiles", "isotropic_normal")
    stack = SimpleNamespace(posterior_part=posterior, prior_part=normal, upper_layers=[object()])
    parts = figure_parts(stack)
    assert unmet_need("manifold", parts) == (
        "'manifold' needs a prior with quantiles to walk, which this run's conditional p(z₁|z₂) "
        "prior is not"
    )
    assert unmet_need("density", parts) is not None and unmet_need("samples", parts) is None


def test_the_figures_leave_the_processs_matplotlib_backend_alone():
    code = "import vae_mnist.plotting, matplotlib; print(matplotlib.get_backend())"
    environment = {**os.environ, "MPLBACKEND": "svg"}
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120
    )
    assert shown.stdout.strip() == "svg", shown.stderr


@pytest.mark.parametrize("inches", [2.3, 0.3 * 3 + 1.5, 3.4, 6.0, 2.345])
def test_a_figures_pixels_are_the_same_whether_matplotlib_truncates_or_rounds(inches):
    """matplotlib before 3.11 truncates inches times dots per inch and later versions round
    it: the saved size must give the same pixels either way."""
    from matplotlib.figure import Figure

    from vae_mnist.plotting import DOTS_PER_INCH, _whole_pixels

    figure = Figure(figsize=(inches, inches))
    _whole_pixels(figure)
    for side in figure.get_size_inches() * DOTS_PER_INCH:
        assert int(side) == round(side) == round(inches * DOTS_PER_INCH)


def test_a_full_disk_is_one_line_and_keeps_the_run(finished_run, session_npz, monkeypatch, capsys):
    import vae_mnist.runs

    before = folder_state(finished_run)

    def full_disk(path, text):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(vae_mnist.runs, "atomic_write_text", full_disk)
    status = call(
        ["evaluate", "--run", str(finished_run), "--data", str(session_npz), "--samples", "2"]
    )
    assert_one_line_error(capsys, status, r"No space left on device")
    assert folder_state(finished_run) == before


def test_parsing_help_presets_and_compare_do_not_start_a_backend(tmp_path):
    """Keras starts its backend when imported (TensorFlow takes seconds): the commands that
    need no model must answer without it."""
    script = (
        "import sys\n"
        "from vae_mnist import cli\n"
        "cli.build_parser().format_help()\n"
        "cli.parse_arguments(['train', '--epochs', '3', '--posterior', 'categorical'])\n"
        "for command in (['presets'], ['compare', sys.argv[1]]):\n"
        "    cli.main(command)\n"
        "print('keras' in sys.modules, 'tensorflow' in sys.modules)\n"
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"preset": "keras2017"}')
    result = subprocess.run(
        [sys.executable, "-c", script, str(run)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False False"


def test_every_command_has_its_script():
    from vae_mnist.cli import COMMANDS

    scripts = sorted(path.stem for path in (REPOSITORY / "scripts").glob("*.py"))
    assert scripts == sorted(COMMANDS)
    listed = run_command(script="presets.py")
    assert listed.returncode == 0, listed.stderr
    assert "keras2017 (default)" in listed.stdout
    helped = run_command("--help", script="compare.py")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: vae-mnist compare ")


def test_a_narrow_code_grid_keeps_its_title_inside_the_figure(tmp_path, monkeypatch):
    from vae_mnist import plotting

    inside = []

    def measure_then_save(figure, path):
        figure.canvas.draw()
        title = figure.axes[0].title.get_window_extent()
        inside.append(title.x0 >= 0 and title.x1 <= figure.bbox.x1)
        return original(figure, path)

    original = plotting._save
    monkeypatch.setattr(plotting, "_save", measure_then_save)
    # 64 binary variables: three blocks of 25, a figure narrower than a one-line title.
    decoded = np.zeros((64 * 2, 784), np.float32)
    title = "test image 9 (a 9): its most probable code (framed), variable i set to class k"
    path = plotting.plot_code_grid(decoded, np.zeros(64, int), 2, tmp_path / "codes.png", title)
    assert path.exists() and inside == [True]


def test_a_number_that_float32_rounds_to_its_largest_is_taken():
    """Numpy prints float32's largest as 3.4028235e38, a little above it, which rounds back."""
    from vae_mnist.cli import _number

    assert _number(float, signed=True)("3.4028235e38") == 3.4028235e38
    assert _number(float, signed=True)("-3.4028235e38") == -3.4028235e38


def test_a_list_item_that_float32_rounds_to_its_largest_is_taken():
    from vae_mnist.optimizers import Adam
    from vae_mnist.settings import ConfigError

    def staged(epochs, rates):
        return Adam(
            learning_rate_schedule="stages", stage_epochs=epochs, stage_learning_rates=rates
        )

    assert staged((5,), (3.4028235e38,)).stage_learning_rates == (3.4028235e38,)
    with pytest.raises(ConfigError, match="list of positive numbers"):
        staged((5,), (3.41e38,))
    with pytest.raises(ConfigError, match="list of positive whole numbers"):
        staged((2**31,), (1e-4,))
    # A whole number of hundreds of digits, as a JSON file may hold: refused, not a traceback,
    # in a list and alone.
    with pytest.raises(ConfigError, match="list of positive whole numbers"):
        staged((10**400,), (1e-4,))
    with pytest.raises(ConfigError, match="optimizer_epsilon must be finite"):
        Adam(optimizer_epsilon=10**400)


def test_a_code_grid_in_blocks_labels_its_classes_and_each_blocks_variables(monkeypatch, tmp_path):
    from vae_mnist import plotting

    seen = {}

    def read_then_save(figure, path):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        # Drawn as saved, so the secondary axis stands where the file shows it.
        FigureCanvasAgg(figure).draw()
        axis = figure.axes[0]
        (top,) = axis.child_axes
        seen["classes"] = [label.get_text() for label in axis.get_xticklabels()]
        seen["rows"] = [label.get_text() for label in axis.get_yticklabels()]
        seen["blocks"] = [label.get_text() for label in top.get_xticklabels()]
        # The title sits above the blocks' labels, not on them.
        highest = max(label.get_window_extent().y1 for label in top.get_xticklabels())
        seen["title clear"] = axis.title.get_window_extent().y0 >= highest
        return original(figure, path)

    original = plotting._save
    monkeypatch.setattr(plotting, "_save", read_then_save)
    decoded = np.zeros((64 * 2, 784), np.float32)
    plotting.plot_code_grid(decoded, np.zeros(64, int), 2, tmp_path / "codes.png", "codes")
    assert seen == {
        "classes": ["0", "1"] * 3,
        "rows": ["+0", "+5", "+10", "+15", "+20"],
        "blocks": ["0..24", "25..49", "50..63"],
        "title clear": True,
    }


def test_a_test_images_class_is_named_with_its_article():
    from vae_mnist.commands.plot import _label

    labels = np.array([7, 8, 9, 0])
    assert [_label(labels, index, None) for index in range(3)] == ["a 7", "an 8", "a 9"]
    fashion = ["T-shirt/top"] * 9 + ["Ankle boot"]
    assert _label(labels, 0, ["Bag"] * 10) == "a Bag"
    assert _label(np.array([9]), 0, fashion) == "an Ankle boot"


def test_running_out_of_memory_is_one_line(monkeypatch, capsys):
    from vae_mnist.commands import presets

    class ResourceExhaustedError(Exception):
        pass

    def exhausted(arguments, program):
        raise ResourceExhaustedError("OOM when allocating tensor with shape[256,1000000000]\nmore")

    monkeypatch.setattr(presets, "run", exhausted)
    assert_one_line_error(capsys, call(["presets"]), r"ran out of memory \(OOM when allocating")

    # Anything else is a bug, and keeps its traceback.
    def broken(arguments, program):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(presets, "run", broken)
    with pytest.raises(ZeroDivisionError):
        call(["presets"])


def test_a_failed_new_run_leaves_no_empty_folder(session_npz, tmp_path, monkeypatch, capsys):
    from vae_mnist import training
    from vae_mnist.files import check_writable_folder

    class ResourceExhaustedError(Exception):
        pass

    def exhausted(config, data, folder, **options):
        check_writable_folder(folder)  # As train() does, before it builds the model.
        raise ResourceExhaustedError("OOM when allocating tensor with shape[256,1000000000]")

    monkeypatch.setattr(training, "train", exhausted)
    existing = tmp_path / "existing"
    existing.mkdir()
    arguments = ["train", "--data", str(session_npz), "--quiet", "--out"]
    for folder in (tmp_path / "new" / "runs" / "run", existing):
        assert_one_line_error(capsys, call([*arguments, str(folder)]), "ran out of memory")
    # The folders this command made are gone; the one that was there stays.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["existing"]
    assert existing.is_dir() and not any(existing.iterdir())


def test_a_closed_pipe_stops_a_working_command_with_one_line(monkeypatch, capsys):
    from vae_mnist import cli
    from vae_mnist.commands import compare, presets

    def closed(arguments, program):
        raise BrokenPipeError(32, "Broken pipe")

    # Standard output stays pytest's here: only the exit's path is under test.
    monkeypatch.setattr(cli, "_stop_writing_to_stdout", lambda: None)
    monkeypatch.setattr(presets, "run", closed)
    monkeypatch.setattr(compare, "run", closed)
    assert call(["presets"]) == cli.EXIT_BROKEN_PIPE
    assert capsys.readouterr().err == ""
    assert call(["compare", "a", "b"]) == cli.EXIT_BROKEN_PIPE
    assert capsys.readouterr().err == (
        "vae-mnist compare: stopped: its output's reader went away (a closed pipe); what was "
        "saved before is kept\n"
    )


@pytest.mark.parametrize(
    "error, expected",
    [
        (MemoryError(), True),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 80 GB"), True),
        (RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 4e12 bytes"), True),
        (ValueError("a plain bug"), False),
    ],
)
def test_out_of_memory_errors_are_told_apart(error, expected):
    from vae_mnist.errors import out_of_memory_message

    message = out_of_memory_message(error)
    assert (message is not None) == expected
    if expected:
        assert message.startswith("ran out of memory") and "\n" not in message


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["curves", "--z", "1", "2"], "--z does not apply to 'curves' (it is an option of decode)"),
        (["samples", "--index", "3"], "--index does not apply to 'samples'"),
        (["manifold", "--steps=4"], "--steps does not apply to 'manifold'"),
        (["decode", "--z", "1", "2", "--index", "3"], "'decode' decodes one thing"),
        # A figure of the model alone reads no data: a file named for it went unread.
        (["samples", "--data", "elsewhere.npz"], "--data does not apply to 'samples'"),
        (
            ["decode", "--z", "1", "2", "--data", "x.npz"],
            "--data does not apply to 'decode' with --z",
        ),
    ],
)
def test_an_option_the_figure_does_not_read_is_refused(finished_run, capsys, arguments, message):
    before = folder_state(finished_run)
    status = call(["plot", *arguments, "--run", str(finished_run)])
    assert_one_line_error(capsys, status, re.escape(message))
    assert folder_state(finished_run) == before


@pytest.mark.parametrize(
    "figure, options",
    [
        ("all", {"--index", "--n", "--seed", "--from", "--to", "--steps", "--run", "--out"}),
        ("codes", {"--index"}),
        ("decode", {"--code"}),
        ("decode", {"--z"}),
        ("animation", {"--n", "--quiet"}),
        ("samples", {"--seed"}),
        ("reconstructions", {"--data"}),
    ],
)
def test_the_options_a_figure_reads_are_let_through(figure, options):
    from vae_mnist.figures import unread_option

    assert unread_option(figure, options) is None


def test_train_refuses_the_folder_before_loading_any_data(finished_run, monkeypatch, capsys):
    from vae_mnist.data import MNISTData

    def load(self, path=None):
        raise AssertionError("the data was loaded (perhaps downloaded) before the refusal")

    monkeypatch.setattr(MNISTData, "load", load)
    before = folder_state(finished_run)
    cases = [
        (["--epochs", "2"], r"holds a finished run"),
        (["--extend", "--epochs", "2", "--dataset", "fashion_mnist"], r"other settings: dataset"),
    ]
    for flags, pattern in cases:
        assert_one_line_error(capsys, call(["train", "--out", str(finished_run), *flags]), pattern)
    assert folder_state(finished_run) == before


def test_a_figures_name_after_a_list_option_is_the_figure():
    from vae_mnist.cli import parse_arguments

    cases = {
        ("plot", "--z", "-1", "0.5", "decode", "--run", "x"): ("decode", "x", [-1.0, 0.5], [7, 9]),
        ("plot", "--index", "1", "2", "codes"): ("codes", "runs/default", None, [1, 2]),
        # A run folder named like a figure stays the run folder.
        ("plot", "--run", "decode", "manifold"): ("manifold", "decode", None, [7, 9]),
    }
    for tokens, (figure, run, z, index) in cases.items():
        arguments = parse_arguments(list(tokens))
        assert (arguments.figure, arguments.run, arguments.z, arguments.index) == (
            figure,
            run,
            z,
            index,
        )


def test_an_empty_list_setting_is_written_none_on_the_command_line():
    from vae_mnist.cli import parse_arguments

    # `none`, as `compare`, `--help` and the refusals write an empty list, is an empty list.
    assert parse_arguments(["train", "--hidden-layers", "none"]).hidden_layers == ()
    assert parse_arguments(["train", "--hidden-layers", "64,32"]).hidden_layers == (64, 32)


def test_plot_manifold_walks_the_most_active_dimensions_of_the_test_set_it_is_given(
    session_npz, tmp_path, monkeypatch
):
    from vae_mnist import plotting
    from vae_mnist.backend import to_numpy
    from vae_mnist.runs import load_trained_run

    run = tmp_path / "wide"
    train = ["train", "--data", str(session_npz), "--dimension", "4", "--epochs", "1"]
    assert main([*train, "--hidden-layers", "16", "--out", str(run), "--quiet"]) == 0
    walked = []
    monkeypatch.setattr(
        plotting,
        "plot_manifold",
        lambda *arguments, **options: walked.append((arguments[3], options["most_active"])),
    )
    plot = ["plot", "manifold", "--run", str(run), "--out", str(tmp_path / "figures")]
    assert main(plot) == 0
    assert main([*plot, "--data", str(session_npz)]) == 0
    with np.load(session_npz) as data:
        images = data["x_test"].reshape(-1, 784).astype("float32") / 255
    z_mean = to_numpy(load_trained_run(run).vae.encode(images)["z_mean"])
    most_active = tuple(sorted(np.argsort(np.var(z_mean, axis=0))[-2:].tolist()))
    # Without the test set the first two, and the title must not call them the most active.
    assert walked == [((0, 1), False), (most_active, True)]
