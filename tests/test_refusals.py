"""Bad input found by an audit of every command: each a one-line error, nothing changed.

The command-line cases run `main` in this process; the run-folder cases damage a copy of the
session's tiny finished run.
"""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import folder_state, make_arrays

from vae_mnist.cli import main


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    return error


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["train", "--out", ""], "--out: expected a path or a name, got an empty one"),
        (["train", "--preset", ""], "--preset: expected a path or a name"),
        (["plot", "curves", "--run", ""], "--run: expected a path or a name"),
        (["compare", ""], "RUN: expected a path or a name"),
        (["evaluate", "--data", ""], "--data: expected a path or a name"),
        (
            ["train", "--optimizer-epsilon", "1e300"],
            (
                "--optimizer-epsilon: expected a number within float32's range (±3.4e38), "
                "got '1e300'"
            ),
        ),
        (["train", "--kl-weight", "1e300"], "--kl-weight: expected a number within float32"),
        # argparse takes a negative number for a value only where it is written without an exponent.
        (["plot", "decode", "--z", "1", "-" + "9" * 40], "--z: expected a number within float32"),
        (["train", "--stage-learning-rates", "1e39"], "expected positive numbers separated by"),
    ],
)
def test_the_command_line_refuses_values_that_would_pass_unseen(arguments, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(arguments)
    assert stopped.value.code == 2
    assert message in one_line_error(capsys)


def test_plot_names_the_flag_of_an_index_out_of_range_and_leaves_no_folder(
    trained_run, session_npz, tmp_path, capsys
):
    out = tmp_path / "new" / "figures"
    for flag in ("--from", "--to"):
        arguments = ["plot", "interpolation", "--run", str(trained_run), flag, "600"]
        assert main([*arguments, "--data", str(session_npz), "--out", str(out)]) == 1
        assert f"{flag} 600 is outside the test set (0..99)" in one_line_error(capsys)
    # A test set of five images fails the default --index 7 9, which the user did not type.
    small = tmp_path / "five.npz"
    np.savez(small, **make_arrays(train=10, test=5))
    arguments = ["plot", "all", "--run", str(trained_run), "--data", str(small)]
    assert main([*arguments, "--out", str(out)]) == 1
    assert "--index 7 is outside the test set (0..4) (the default; give --index within it)" in (
        one_line_error(capsys)
    )
    assert main([*arguments, "--out", str(out), "--index", "8"]) == 1
    assert one_line_error(capsys).endswith("--index 8 is outside the test set (0..4)")
    # A data set that fails to load leaves no folder made for the figures.
    arguments = ["plot", "latent", "--run", str(trained_run), "--out", str(out)]
    assert main([*arguments, "--data", str(tmp_path / "missing.npz")]) == 1
    one_line_error(capsys)
    assert not (tmp_path / "new").exists()


def test_compare_refuses_a_folder_as_its_figure(trained_run, tmp_path, capsys):
    kept = tmp_path / "folder.png"
    kept.write_bytes(b"someone's file")
    assert main(["compare", str(trained_run), "--out", f"{tmp_path / 'folder'}/"]) == 1
    assert "is a folder: name the figure's file in it" in one_line_error(capsys)
    (tmp_path / "folder").mkdir()
    assert main(["compare", str(trained_run), "--out", str(tmp_path / "folder")]) == 1
    one_line_error(capsys)
    assert kept.read_bytes() == b"someone's file"


def test_explore_refuses_a_host_name_the_socket_cannot_encode(trained_run, capsys):
    assert main(["explore", "--run", str(trained_run), "--host", "ü" * 70]) == 1
    assert "is not a host name or address" in one_line_error(capsys)


def test_tensorboard_refuses_a_file_in_place_of_its_folder(session_npz, tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "tensorboard").write_text("keep")
    arguments = ["train", "--data", str(session_npz), "--out", str(folder), "--tensorboard"]
    assert main([*arguments, "--epochs", "1", "--quiet"]) == 1
    assert "is a file, where --tensorboard writes its logs" in one_line_error(capsys)
    assert folder_state(folder) == {"tensorboard": b"keep"}


def damaged_copy(run: Path, tmp_path: Path, file: str, change) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    path = copy / file
    path.write_text(change(path.read_text()))
    return copy


def without_epoch_seconds(text: str) -> str:
    info = json.loads(text)
    del info["epoch_seconds"]
    return json.dumps(info)


def seconds_as_words(text: str) -> str:
    return json.dumps({**json.loads(text), "epoch_seconds": ["a"]})


def history_of_words(text: str) -> str:
    info = json.loads(text)
    info["history"][0]["val_loss"] = "abc"
    return json.dumps(info)


def history_without_epochs(text: str) -> str:
    return json.dumps({**json.loads(text), "history": []})


def history_with_an_epoch_twice(text: str) -> str:
    info = json.loads(text)
    info["history"] = [info["history"][0], info["history"][0]]
    return json.dumps(info)


def history_csv_cut_short(text: str) -> str:
    return text[: text.rindex(",")]


def history_csv_with_an_epoch_twice(text: str) -> str:
    lines = text.splitlines()
    return "\n".join([lines[0], lines[1], lines[1]]) + "\n"


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        ("run.json", history_without_epochs, "its history does not hold epochs 1 to 2"),
        ("run.json", lambda text: '{"status": ' + "9" * 5000 + "}", "unreadable progress record"),
        ("run.json", history_with_an_epoch_twice, "its history does not hold epochs 1 to 2"),
        ("history.csv", history_csv_cut_short, "values, but the header names"),
        ("history.csv", history_csv_with_an_epoch_twice, "row 2 is epoch 1, where the history"),
        ("run.json", without_epoch_seconds, "epoch_seconds is not a list of seconds"),
        ("run.json", seconds_as_words, "epoch_seconds is not a list of seconds"),
        ("run.json", history_of_words, "history holds a value that is not a number"),
        (
            "history.csv",
            lambda text: text.replace("\n1,", "\n,", 1),
            "epoch nan of row 1 is not a count of epochs",
        ),
    ],
)
def test_a_damaged_run_record_is_one_line_and_nothing_changes(
    trained_run, session_npz, tmp_path, capsys, file, change, message
):
    copy = damaged_copy(trained_run, tmp_path, file, change)
    before = folder_state(copy)
    command = (
        ["plot", "curves", "--run", str(copy)]
        if file == "history.csv"
        else ["train", "--data", str(session_npz), "--out", str(copy), "--extend", "--epochs", "3"]
    )
    assert main(command) == 1
    assert message in one_line_error(capsys)
    assert folder_state(copy) == before


def test_a_version_2_configuration_with_sizes_that_are_not_numbers(tmp_path, capsys):
    preset = tmp_path / "old.json"
    preset.write_text(json.dumps({"model": {"latent": "rbm", "rbm_units": ["16", "16"]}}))
    assert main(["presets", str(preset)]) == 1
    assert "rbm_units needs two whole sizes, one per half" in one_line_error(capsys)


def encrypted(path: Path, target: Path) -> Path:
    """`path`'s zip archive with every member marked encrypted (bit 0 of its flags)."""
    content = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = content.find(signature)
        while start != -1:
            content[start + offset] |= 1
            start = content.find(signature, start + 4)
    target.write_bytes(bytes(content))
    return target


def test_an_encrypted_npz_is_one_line(tmp_path, capsys):
    plain = tmp_path / "plain.npz"
    np.savez(plain, **make_arrays(train=20, test=10))
    data = encrypted(plain, tmp_path / "encrypted.npz")
    with zipfile.ZipFile(data) as archive:
        assert archive.infolist()[0].flag_bits & 1
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run")]) == 1
    assert "not a readable .npz file" in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_an_idx_header_whose_sizes_overflow_is_one_line(tmp_path):
    from vae_mnist.data import read_idx
    from vae_mnist.errors import DataError

    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 2**28, 2**28, 2**28) + b"\x00" * 10)
    with pytest.raises(DataError, match=r"promises 19342813113834066795298816 values"):
        read_idx(path)


def test_a_damaged_model_of_version_2_is_one_line(tmp_path, capsys):
    from conftest import REPOSITORY

    copy = tmp_path / "run"
    shutil.copytree(REPOSITORY / "tests" / "fixtures" / "run_v2_gaussian", copy)
    archive_path = copy / "vae.keras"
    with zipfile.ZipFile(archive_path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(archive_path, "w") as archive:
        for name, content in members.items():
            if name != "model.weights.h5":
                archive.writestr(name, content)
    assert main(["plot", "curves", "--run", str(copy), "--out", str(tmp_path / "figures")]) == 1
    error = one_line_error(capsys)
    assert f"{archive_path}: a damaged model of version 2 (KeyError" in error


def test_a_version_1_configuration_reads_as_a_preset_file(capsys):
    from conftest import REPOSITORY

    old = REPOSITORY / "tests" / "fixtures" / "run_v1" / "config.json"
    assert main(["presets", str(old)]) == 0
    assert str(old) in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    [["plot", "latent"], ["evaluate", "--samples", "2"]],
)
def test_plot_and_evaluate_refuse_a_damaged_progress_record(
    trained_run, session_npz, tmp_path, capsys, command
):
    """Every command reads run.json, not only those that train or compare."""
    copy = damaged_copy(trained_run, tmp_path, "run.json", lambda text: '{"status": "done"}')
    before = folder_state(copy)
    assert main([*command, "--run", str(copy), "--data", str(session_npz)]) == 1
    assert "not a vae-mnist progress record (status 'done'" in one_line_error(capsys)
    assert folder_state(copy) == before


def test_a_metric_too_large_for_a_float_is_one_line(trained_run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    (copy / "metrics.json").write_text('{"negative_elbo": 1' + "0" * 400 + "}")
    assert main(["compare", str(copy)]) == 1
    assert "metrics.json: negative_elbo is 1000" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("file", "command"),
    [
        ("metrics.json", ["evaluate", "--samples", "2", "--run"]),
        ("metrics.json", ["train", "--extend", "--epochs", "3", "--out"]),
        ("history.csv", ["train", "--extend", "--epochs", "3", "--out"]),
    ],
)
def test_a_folder_where_a_run_writes_a_file_is_refused_before_the_work(
    trained_run, session_npz, tmp_path, capsys, file, command
):
    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    (copy / file).unlink(missing_ok=True)
    (copy / file).mkdir()
    before = folder_state(copy)
    assert main([*command, str(copy), "--data", str(session_npz)]) == 1
    assert one_line_error(capsys).endswith(
        f"{copy / file} is a folder, where a file of the run is written: move it"
    )
    assert folder_state(copy) == before


def test_a_configuration_of_a_newer_version_is_refused(trained_run, tmp_path, capsys):
    def newer(text: str) -> str:
        return json.dumps({**json.loads(text), "version": 99})

    copy = damaged_copy(trained_run, tmp_path, "config.json", newer)
    assert main(["compare", str(copy)]) == 1
    assert "version 99: this vae-mnist reads configurations of versions 1 to 3" in (
        one_line_error(capsys)
    )


@pytest.mark.parametrize(
    ("name", "file"), [("checkpoint", "epoch-0001.keras"), ("tensorboard", "events.out.mine")]
)
def test_a_new_run_keeps_a_folder_it_would_clear_but_did_not_write(
    name, file, session_npz, tmp_path, capsys
):
    folder = tmp_path / "run"
    (folder / name).mkdir(parents=True)
    (folder / name / file).write_bytes(b"someone's")
    before = folder_state(folder)
    arguments = ["train", "--data", str(session_npz), "--out", str(folder), "--epochs", "1"]
    assert main([*arguments, "--quiet"]) == 1
    assert f"holds {name} but no run.json" in one_line_error(capsys)
    assert folder_state(folder) == before


def test_a_run_stopped_before_its_first_epoch_starts_again_with_new_settings(
    session_npz, tmp_path, capsys
):
    """Out of memory in the first epoch leaves a record of nothing trained; the hint to choose
    smaller sizes must work in the same folder."""
    from vae_mnist.presets import preset_config
    from vae_mnist.runs import RunPaths, new_run_info, write_run_info

    paths = RunPaths(tmp_path / "run")
    paths.folder.mkdir()
    preset_config("keras2017", hidden_layers=(512,), dimension=3).save(paths.config)
    write_run_info(paths, new_run_info(seed=0))
    arguments = ["train", "--data", str(session_npz), "--out", str(paths.folder), "--epochs", "1"]
    assert main([*arguments, "--hidden-layers", "8", "--quiet"]) == 0
    saved = json.loads(paths.config.read_text())
    # The sizes given replace the saved ones; the saved settings are kept otherwise.
    assert saved["network"]["hidden_layers"] == [8] and saved["posterior"]["dimension"] == 3
    assert json.loads(paths.run_info.read_text())["status"] == "finished"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda path: path.write_bytes(b""), "not a .keras archive: empty, cut short"),
        (lambda path: path.write_bytes(path.read_bytes()[:1000]), "not a .keras archive"),
        (lambda path: (path.unlink(), path.mkdir()), "a folder, where a model file is expected"),
    ],
)
def test_a_model_file_that_is_no_archive_is_named_so(
    trained_run, tmp_path, capsys, damage, message
):
    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    damage(copy / "vae.keras")
    assert main(["plot", "latent", "--run", str(copy), "--out", str(tmp_path / "figures")]) == 1
    assert message in one_line_error(capsys)


def test_a_folder_given_as_a_preset_file_is_named_so(tmp_path, capsys):
    assert main(["presets", str(tmp_path)]) == 1
    assert "a folder, not a preset file" in one_line_error(capsys)
