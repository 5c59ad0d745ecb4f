"""What learners and researchers use: TensorBoard logs, `compare`, progress bars, figure
folders, and the rough edges a new user found (issue 12), each with a test."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import REPOSITORY, folder_state, make_arrays

from vae_mnist import RunConfig
from vae_mnist.cli import main, parse_arguments
from vae_mnist.data import load_dataset
from vae_mnist.monitoring import tensorboard_callbacks
from vae_mnist.presets import preset_config
from vae_mnist.runs import (
    RunError,
    RunPaths,
    new_run_info,
    read_run_info,
    write_metrics,
    write_run_info,
)
from vae_mnist.training import train

PROGRESS_BAR = "━"


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, **make_arrays(train=200, test=50))
    return path


@pytest.fixture
def run_copy(tmp_path, trained_run) -> Path:
    """A private copy of the shared tiny run, for commands that write into it."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


class _InterruptAfterFirstEpoch(keras.callbacks.Callback):
    """Sends this process Ctrl-C once the first epoch is saved, as a user would press it."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)


def unfinished_run(folder: Path, npz: Path, callbacks=()) -> Path:
    """A run of 2 epochs interrupted after its first: status 'training', one epoch done."""
    config = preset_config("keras2017", epochs=2, batch_size=100)
    with pytest.raises(KeyboardInterrupt):
        train(
            config,
            load_dataset("mnist", npz),
            folder,
            verbose=0,
            callbacks=[*callbacks, _InterruptAfterFirstEpoch()],
        )
    info = read_run_info(RunPaths(folder))
    assert info["status"] == "training" and info["completed_epochs"] == 1
    return folder


def event_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files under `folder`: tag -> [(step, value), ...]."""
    import tensorflow as tf

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    number = float(tf.make_ndarray(value.tensor))
                    tag = f"{path.parent.name}/{value.tag}"
                    scalars.setdefault(tag, []).append((event.step, number))
    return scalars


def event_tags(folder: Path) -> set[str]:
    import tensorflow as tf

    return {
        f"{path.parent.name}/{value.tag}"
        for path in folder.rglob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
    }


# TensorBoard


def test_tensorboard_logs_every_loss_term_and_the_manifold(tmp_path, tiny_npz, capsys):
    folder = tmp_path / "run"
    status = main(
        ["train", "--data", str(tiny_npz), "--epochs", "2", "--out", str(folder)]
        + ["--tensorboard", "--quiet"]
    )
    assert status == 0
    assert "tensorboard --logdir" in capsys.readouterr().out
    scalars = event_scalars(folder / "tensorboard")
    for part in ("train", "validation"):
        for term in ("loss", "reconstruction_loss", "kl_loss"):
            assert [step for step, _ in scalars[f"{part}/epoch_{term}"]] == [0, 1], (part, term)
    history = np.genfromtxt(folder / "history.csv", delimiter=",", names=True)
    np.testing.assert_allclose(
        [value for _, value in scalars["validation/epoch_loss"]], history["val_loss"], rtol=1e-5
    )
    # The 2-D Gaussian latent adds the manifold after the last epoch.
    assert "manifold/manifold" in event_tags(folder / "tensorboard")


def test_a_resumed_run_continues_the_same_tensorboard_logs(tmp_path, tiny_npz):
    folder = tmp_path / "run"
    config = preset_config("keras2017", epochs=2, batch_size=100)
    unfinished_run(folder, tiny_npz, tensorboard_callbacks(folder, config))
    assert [step for step, _ in event_scalars(folder / "tensorboard")["train/epoch_loss"]] == [0]
    data = load_dataset("mnist", tiny_npz)
    train(config, data, folder, verbose=0, callbacks=tensorboard_callbacks(folder, config))
    scalars = event_scalars(folder / "tensorboard")
    # Epoch 0 from the first process, epoch 1 from the resumed one; none twice.
    assert sorted(step for step, _ in scalars["train/epoch_loss"]) == [0, 1]
    assert sorted(step for step, _ in scalars["validation/epoch_kl_loss"]) == [0, 1]


def test_a_run_without_the_flag_writes_no_tensorboard_logs(trained_run):
    assert not (trained_run / "tensorboard").exists()


# compare


def test_compare_puts_two_runs_side_by_side_and_draws_their_curves(
    tmp_path, trained_run, tiny_npz, capsys
):
    wide = tmp_path / "wide"
    assert (
        main(
            ["train", "--data", str(tiny_npz), "--epochs", "1", "--dimension", "3"]
            + ["--out", str(wide), "--quiet"]
        )
        == 0
    )
    write_metrics(RunPaths(wide), {"negative_elbo": 123.456, "knn_accuracy": 0.5})
    capsys.readouterr()
    figure = tmp_path / "compare" / "curves.png"
    assert main(["compare", str(trained_run), str(wide), "--out", str(figure)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == [trained_run.name, "wide"]
    latent_row = next(line for line in lines if line.startswith("dimension"))
    assert latent_row.split()[1:] == ["2", "3"]
    epochs_row = next(line for line in lines if line.startswith("epochs trained"))
    assert epochs_row.split()[-2:] == ["2", "1"]
    assert next(line for line in lines if line.startswith("final val_loss")).count(".") == 2
    assert next(line for line in lines if line.startswith("negative ELBO")).split()[-2:] == [
        "-",
        "123.46",
    ]
    # Settings shared by both runs are not listed.
    assert not any(line.startswith("batch_size") for line in lines)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {figure}" in out


def test_compare_warns_where_config_json_was_edited_to_disagree_with_the_model(
    tmp_path, trained_run, capsys
):
    edited = Path(shutil.copytree(trained_run, tmp_path / "edited"))
    legacy = sorted((REPOSITORY / "tests" / "fixtures").glob("run_v*"))
    # Unedited runs, this version's and every earlier one's, get no warning.
    assert main(["compare", str(trained_run), *map(str, legacy)]) == 0
    assert "warning" not in capsys.readouterr().err
    config = json.loads((edited / "config.json").read_text())
    config["posterior"]["dimension"] = 5
    (edited / "config.json").write_text(json.dumps(config))
    assert main(["compare", str(trained_run), str(edited)]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"vae-mnist compare: warning: {edited / 'vae.keras'} was saved with other settings than "
        f"{edited / 'config.json'} gives: dimension 2 (saved) against 5; restore the run's own "
        "config.json, or train into another folder (the table shows config.json; plot, "
        "evaluate and train refuse the run until the two agree)"
    ]
    assert next(line for line in captured.out.splitlines() if line.startswith("dimension"))


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--extend", "--epochs", "5", "--quiet"],
        ["evaluate", "--samples", "2"],
        ["plot", "latent"],
    ],
)
def test_a_model_that_config_json_does_not_describe_is_refused_before_it_is_used(
    tmp_path, trained_run, session_npz, capsys, command
):
    """A vae.keras of other settings than config.json (one copied in, or the configuration
    edited by hand) would be trained, measured or drawn as the model config.json describes."""
    edited = Path(shutil.copytree(trained_run, tmp_path / "edited"))
    config = json.loads((edited / "config.json").read_text())
    config["posterior"]["dimension"] = 5
    (edited / "config.json").write_text(json.dumps(config))
    before = folder_state(edited)
    folder = ["--out" if command[0] == "train" else "--run", str(edited)]
    data = [] if command[0] == "plot" else ["--data", str(session_npz)]
    assert main([*command, *folder, *data]) != 0
    assert capsys.readouterr().err.strip() == (
        f"vae-mnist {command[0]}: error: {edited / 'vae.keras'} was saved with other settings "
        f"than {edited / 'config.json'} gives: dimension 2 (saved) against 5; restore the run's "
        "own config.json, or train into another folder"
    )
    assert folder_state(edited) == before


def test_compare_names_the_backends_where_runs_trained_on_different_ones(
    tmp_path, trained_run, capsys
):
    backends = {"one": ("tensorflow", []), "two": ("jax", ["torch"]), "three": ("tensorflow", [])}
    for name, (first, later) in backends.items():
        folder = Path(shutil.copytree(trained_run, tmp_path / name))
        info = json.loads((folder / "run.json").read_text())
        info["versions"]["backend"] = first
        info["continued"] = [{"after_epoch": 1, "versions": {"backend": b}} for b in later]
        (folder / "run.json").write_text(json.dumps(info))
    figure = str(tmp_path / "curves.png")
    assert main(["compare", str(tmp_path / "one"), str(tmp_path / "two"), "--out", figure]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert next(line for line in lines if line.startswith("settings")).split()[1:] == [
        "identical",
        "identical",
    ]
    backend_row = next(line for line in lines if line.startswith("backend"))
    assert backend_row.split(None, 1)[1].split() == ["tensorflow", "jax,", "then", "torch"]
    # The same backend is not worth a row.
    assert main(["compare", str(tmp_path / "one"), str(tmp_path / "three"), "--out", figure]) == 0
    assert not any(line.startswith("backend") for line in capsys.readouterr().out.splitlines())


def test_the_curves_name_the_loss_each_run_trained(
    tmp_path, trained_run, tiny_npz, monkeypatch, capsys
):
    from vae_mnist import plotting

    iwae_run = tmp_path / "iwae"
    flags = ["--objective", "iwae", "--importance-samples", "3", "--epochs", "1"]
    assert main(["train", "--data", str(tiny_npz), *flags, "--out", str(iwae_run), "--quiet"]) == 0
    titles = []

    def save(figure, path):
        # Long titles are wrapped to their panel.
        titles.append(figure.axes[0].get_title().replace("\n", " "))
        return Path(path)

    monkeypatch.setattr(plotting, "_save", save)
    for run in (trained_run, iwae_run):
        out = tmp_path / "figures" / run.name
        assert main(["plot", "curves", "--run", str(run), "--out", str(out), "--quiet"]) == 0
    assert main(["compare", str(iwae_run), "--out", str(tmp_path / "one.png")]) == 0
    assert main(["compare", str(trained_run), str(iwae_run), "--out", str(tmp_path / "two")]) == 0
    capsys.readouterr()
    assert titles == [
        "negative ELBO (nats per image)",
        "negative IWAE bound, K = 3 (nats per image)",
        "validation negative IWAE bound, K = 3 (nats per image)",
        "validation loss (nats per image)",
    ]


@pytest.mark.parametrize(
    "settings, name",
    [
        ({}, "negative ELBO"),
        ({"kl_weight": 4.0}, "reconstruction + 4·KL"),
        ({"kl_warmup_epochs": 10}, "reconstruction + β·KL, β → 1"),
        ({"kl_weight": 0.5, "kl_warmup_epochs": 10}, "reconstruction + β·KL, β → 0.5"),
    ],
)
def test_the_elbo_objective_names_its_loss_with_its_weight(settings, name):
    assert RunConfig().replace(**settings).objective.loss_name == name


def test_compare_lists_a_stacked_layers_settings_one_row_each():
    from vae_mnist.commands.compare import RunSummary, differing_settings

    def summary(name, config):
        return RunSummary(name=name, config=config, status="finished", history=None, metrics=None)

    stacked = preset_config("gumbolt2018-continuous")
    colder = preset_config("gumbolt2018-continuous", temperature_min=0.1)
    rows = differing_settings([summary("a", stacked), summary("b", colder)])
    assert rows == [("upper_layers[0].posterior.temperature_min", ["0.5", "0.1"])]
    # Against a run of one layer, each of the stack's settings is a short row of its own.
    rows = differing_settings([summary("a", stacked), summary("b", preset_config("keras2017"))])
    assert ("upper_layers[0].network.hidden_layers", ["200,200", "-"]) in rows
    assert max(len(text) for _, texts in rows for text in texts) < 30


def test_compare_refuses_a_run_whose_history_was_removed(tmp_path, trained_run, capsys):
    folder = Path(shutil.copytree(trained_run, tmp_path / "run"))
    (folder / "history.csv").unlink()
    # It was shown as a run of 0 epochs, where its record counts 2.
    assert main(["compare", str(folder)]) == 1
    assert "history.csv: cannot be read" in capsys.readouterr().err


def test_compare_names_a_missing_run_folder_in_one_line(tmp_path, trained_run, capsys):
    missing = tmp_path / "nowhere"
    assert main(["compare", str(trained_run), str(missing), "--out", str(tmp_path / "f.png")]) == 1
    error = capsys.readouterr().err
    assert error == f"vae-mnist compare: error: {missing}: no such run folder\n"
    assert not (tmp_path / "f.png").exists()


def test_compare_writes_a_figure_named_without_a_suffix_as_png(
    tmp_path, trained_run, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(trained_run), "--out", "comparison"]) == 0
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote comparison.png\n" in capsys.readouterr().out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["comparison.png"]


def test_compare_refuses_a_figure_format_matplotlib_cannot_write_before_any_work(
    tmp_path, trained_run, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(trained_run), "--out", "curves.v2"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "vae-mnist compare: error: --out curves.v2: matplotlib cannot write .v2 files; name "
        "the figure .png, .pdf or .svg\n"
    )
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_compare_refuses_a_folder_that_takes_no_file_before_any_work(trained_run, capsys):
    # The permission bits allow root to write to /proc, which takes no new file: the table
    # was printed, then the write failed naming a temporary file.
    for figure, folder in (("/proc/curves.png", "/proc"), ("/proc/new/c.png", "/proc/new")):
        assert main(["compare", str(trained_run), "--out", figure]) == 1
        captured = capsys.readouterr()
        assert captured.err.startswith(
            f"vae-mnist compare: error: cannot write to the folder {folder}:"
        )
        assert captured.out == ""


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_file_that_cannot_be_made_is_named_not_its_temporary():
    from vae_mnist.files import atomic_path

    with pytest.raises(OSError, match="^cannot write /proc/x.png: "):
        with atomic_path("/proc/x.png"):
            pass


@pytest.mark.parametrize("name", ["curves.pdf", "curves.SVG"])
def test_compare_writes_the_format_its_suffix_names(tmp_path, trained_run, name):
    figure = tmp_path / name
    assert main(["compare", str(trained_run), "--out", str(figure)]) == 0
    start = figure.read_bytes()[:300]
    assert start.startswith(b"%PDF") if name.endswith(".pdf") else b"<svg" in start.lower()
    assert [path.name for path in tmp_path.iterdir()] == [name]


def test_compare_refuses_a_malformed_history_in_one_line(tmp_path, trained_run, capsys):
    folder = Path(shutil.copytree(trained_run, tmp_path / "run"))
    (folder / "history.csv").write_text("epoch,loss,val_loss\n1,abc,3\n")
    assert main(["compare", str(folder)]) == 1
    assert capsys.readouterr().err == (
        f"vae-mnist compare: error: {folder / 'history.csv'}: line 2: loss is 'abc', not a number\n"
    )
    # Whole rows cut away: run.json records two finished epochs.
    (folder / "history.csv").write_text("epoch,loss,val_loss\n1,2,3\n")
    assert main(["compare", str(folder)]) == 1
    assert capsys.readouterr().err == (
        f"vae-mnist compare: error: {folder / 'history.csv'}: holds 1 epoch where run.json "
        "records 2 epochs (cut short or edited)\n"
    )
    (folder / "history.csv").write_text("epoch,loss,val_loss\n")
    assert main(["compare", str(folder)]) == 1
    assert "holds 0 epochs where run.json records 2 epochs" in capsys.readouterr().err
    # A history of its header alone was written before the first epoch: nothing to show yet.
    write_run_info(RunPaths(folder), new_run_info(seed=0))
    assert main(["compare", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert next(line for line in lines if line.startswith("epochs trained")).split()[-1] == "0"


def test_plot_curves_refuses_a_history_without_the_columns_it_draws(tmp_path, trained_run, capsys):
    folder = Path(shutil.copytree(trained_run, tmp_path / "run"))
    (folder / "history.csv").write_text("epoch,val_loss\n1,2\n2,1\n")
    out = tmp_path / "figures"
    assert main(["plot", "curves", "--run", str(folder), "--out", str(out), "--quiet"]) == 1
    assert capsys.readouterr().err == (
        f"vae-mnist plot: error: {folder / 'history.csv'}: the training history lacks loss, "
        "reconstruction_loss, kl_loss, val_reconstruction_loss, val_kl_loss, which the training "
        "curves draw\n"
    )
    assert not (out / "training_curves.png").exists()
    # A history of the columns it draws but fewer epochs than the run finished, refused by
    # `plot all` before it draws the figures that come before the curves.
    full = (trained_run / "history.csv").read_text().splitlines()
    (folder / "history.csv").write_text("\n".join(full[:2]) + "\n")
    assert main(["plot", "all", "--run", str(folder), "--out", str(out), "--quiet"]) == 1
    assert "holds 1 epoch where run.json records 2 epochs" in capsys.readouterr().err
    assert not out.exists()


def test_plot_names_a_folder_where_a_figure_goes_before_drawing_any(
    tmp_path, trained_run, session_npz, capsys
):
    out = tmp_path / "figures"
    (out / "training_curves.png").mkdir(parents=True)
    arguments = ["plot", "all", "--run", str(trained_run), "--data", str(session_npz)]
    assert main([*arguments, "--out", str(out), "--quiet"]) == 1
    assert capsys.readouterr().err == (
        f"vae-mnist plot: error: {out / 'training_curves.png'} is a folder, where plot writes "
        "a figure: move it\n"
    )
    # `plot all` draws the latent scatter and others before the curves: none is written.
    assert [path.name for path in out.iterdir()] == ["training_curves.png"]


def test_read_metrics_refuses_a_record_not_an_object_or_a_shown_number_not_a_number(tmp_path):
    from vae_mnist.runs import read_metrics

    paths = RunPaths(tmp_path)
    paths.metrics.write_text("[1, 2]")
    with pytest.raises(RunError, match="metrics.json: not a vae-mnist metrics record"):
        read_metrics(paths)
    for value, shown in (('"abc"', '"abc"'), ("null", "null"), ("true", "true"), ("[1]", "[1]")):
        paths.metrics.write_text(f'{{"negative_elbo": 1.5, "knn_accuracy": {value}}}')
        with pytest.raises(RunError, match=re.escape(f"knn_accuracy is {shown}, not a number")):
            read_metrics(paths)
    # A count is a whole number, 0 or more (a measurement may be NaN: a diverged model's).
    for value in ("-3", "2.5", "NaN"):
        paths.metrics.write_text(f'{{"negative_elbo": 1.5, "iwae_samples": {value}}}')
        with pytest.raises(RunError, match=re.escape(f"iwae_samples is {value}, not a count")):
            read_metrics(paths)
    # What evaluate writes beside the numbers, lists and strings, and keys no table shows, pass.
    written = {"negative_elbo": 90, "active_units": 2, "log_partition": float("nan")}
    written |= {"classes_used": [3, 4], "log_partition_method": "ais", "preset": "keras2017"}
    write_metrics(paths, written)
    assert read_metrics(paths).keys() == written.keys()


def test_every_metric_a_table_shows_is_checked_to_be_a_number():
    from vae_mnist.metric_table import TABLE_ROWS
    from vae_mnist.runs import NUMERIC_METRICS

    # `compare` shows the same table, and the importance samples, K.
    assert {key for _, key, _ in TABLE_ROWS} | {"iwae_samples"} <= NUMERIC_METRICS


def test_compare_refuses_a_metric_not_a_number_in_one_line(tmp_path, trained_run, capsys):
    folder = Path(shutil.copytree(trained_run, tmp_path / "run"))
    (folder / "metrics.json").write_text('{"negative_elbo": "abc"}')
    assert main(["compare", str(folder)]) == 1
    assert capsys.readouterr().err == (
        f'vae-mnist compare: error: {folder / "metrics.json"}: negative_elbo is "abc", not a '
        "number\n"
    )


def test_compare_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty")]) == 1
    assert "not a run folder (no config.json)" in capsys.readouterr().err


# Progress bars and figure folders


@pytest.mark.parametrize("interactive", [True, False])
def test_evaluate_shows_labelled_progress_and_quiet_silences_it(
    run_copy, session_npz, capsys, monkeypatch, interactive
):
    from vae_mnist import progress

    monkeypatch.setattr(progress, "is_interactive", lambda stream=None: interactive)
    base = ["evaluate", "--run", str(run_copy), "--data", str(session_npz), "--samples", "2"]
    assert main(base) == 0
    shown = capsys.readouterr()
    label = "importance-weighted log p(x), K=2 samples per image:\n"
    assert shown.out.startswith(label) and "100/100" in shown.out
    if interactive:
        assert PROGRESS_BAR in shown.out
    else:
        # Off a terminal: one plain line when done, no bar redrawn with control characters.
        assert shown.out.splitlines()[1].startswith("100/100 - ")
        assert not any(character in shown.out for character in "\r\b\x1b")
    assert main([*base, "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert PROGRESS_BAR not in quiet.out + quiet.err and "importance" not in quiet.out
    assert "negative ELBO" in quiet.out


def test_the_evaluate_time_estimate_leaves_out_the_first_chunk(monkeypatch, capsys):
    import time

    from vae_mnist import progress

    monkeypatch.setattr(progress, "is_interactive", lambda stream=None: True)
    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    bar = progress.CountBar(1000)
    clock[0] += 10.0  # The first 100 images, compiling included.
    bar.warmed_up(100)
    assert capsys.readouterr().out == "", "no estimate before a chunk without compilation"
    clock[0] += 1.0  # The next 100 images: 10 ms an image, so 8 s for the last 800.
    bar.update(200)
    assert "\x1b[1m8s\x1b[0m 10ms/image" in capsys.readouterr().out


def _categorical_config():
    return RunConfig().replace(
        posterior="categorical",
        prior="uniform",
        variables=4,
        categories=3,
        hidden_layers=[16],
        batch_size=50,
        epochs=2,
        jit_compile=False,
    )


def test_training_into_a_log_writes_one_plain_line_per_epoch(tmp_path, capsys):
    arrays = make_arrays(train=200, test=50)
    data = (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
    train(_categorical_config(), data, tmp_path / "run")
    out = capsys.readouterr().out
    assert not any(character in out for character in "\r\b\x1b"), repr(out)
    lines = out.splitlines()
    assert len(lines) == 2
    number = r"-?\d+\.\d\d"
    for epoch, line in enumerate(lines, start=1):
        assert re.fullmatch(
            rf"epoch {epoch}/2: loss {number}, reconstruction_loss {number}, kl_loss {number}, "
            rf"temperature [\d.]+, val_loss {number}, val_reconstruction_loss {number}, "
            rf"val_kl_loss {number} \(\d+\.\d s\)",
            line,
        ), line


def test_training_on_a_terminal_shows_keras_bar_without_validation_temperature(
    tmp_path, capsys, monkeypatch
):
    from vae_mnist import progress

    monkeypatch.setattr(progress, "is_interactive", lambda stream=None: True)
    arrays = make_arrays(train=200, test=50)
    data = (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
    train(_categorical_config(), data, tmp_path / "run")
    out = capsys.readouterr().out
    assert PROGRESS_BAR in out and "Epoch 2/2" in out
    assert "- temperature: " in out and "- val_loss: " in out
    assert "val_temperature" not in out


def test_the_animation_shows_progress_and_quiet_silences_it(run_copy, capsys, monkeypatch):
    from vae_mnist import progress

    base = ["plot", "animation", "--run", str(run_copy), "--n", "3"]
    # Off a terminal (capsys's stream): one plain line when done.
    assert main(base) == 0
    shown = capsys.readouterr().out
    # Snapshots of epochs 0, 1 and 2.
    assert shown.startswith("3/3 - ") and PROGRESS_BAR not in shown
    assert not any(character in shown for character in "\r\b\x1b")
    monkeypatch.setattr(progress, "is_interactive", lambda stream=None: True)
    assert main(base) == 0
    shown = capsys.readouterr().out
    assert PROGRESS_BAR in shown and "3/3" in shown
    assert main([*base, "--quiet"]) == 0
    assert PROGRESS_BAR not in capsys.readouterr().out


def test_plot_writes_into_the_run_folder_by_default(run_copy, tmp_path, monkeypatch, capsys):
    working = tmp_path / "elsewhere"
    working.mkdir()
    monkeypatch.chdir(working)
    assert main(["plot", "manifold", "--run", str(run_copy), "--n", "3"]) == 0
    assert (run_copy / "figures" / "manifold.png").is_file()
    assert f"wrote {run_copy / 'figures' / 'manifold.png'}" in capsys.readouterr().out
    assert not (working / "figures").exists()
    assert main(["plot", "manifold", "--run", str(run_copy), "--n", "3", "--out", "figures"]) == 0
    assert (working / "figures" / "manifold.png").is_file()


# What a new user tripped on


@pytest.mark.parametrize("flag", ["--epoch", "--epohcs"])
def test_a_misspelt_or_abbreviated_flag_names_the_command_and_points_to_help(flag, capsys):
    with pytest.raises(SystemExit) as stopped:
        parse_arguments(["train", flag, "5"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error == (
        f"vae-mnist train: error: unrecognized arguments: {flag} 5 (see vae-mnist train --help)\n"
    )


def test_plot_decode_prints_the_point_as_typed(run_copy, tmp_path, capsys):
    arguments = ["plot", "decode", "--run", str(run_copy), "--z", "1.69", "0.28"]
    assert main([*arguments, "--out", str(tmp_path / "f")]) == 0
    assert "z = [1.69, 0.28]\n" in capsys.readouterr().out


def test_a_bad_data_path_leaves_no_run_folder(tmp_path, capsys):
    folder = tmp_path / "new" / "run"
    missing = tmp_path / "missing.npz"
    assert main(["train", "--data", str(missing), "--out", str(folder), "--quiet"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(missing) in error
    assert not (tmp_path / "new").exists()


def test_resuming_with_another_batch_size_names_it_and_does_not_say_continuing(
    tmp_path, tiny_npz, capsys
):
    folder = unfinished_run(tmp_path / "run", tiny_npz)
    before = folder_state(folder)
    arguments = ["train", "--data", str(tiny_npz), "--out", str(folder), "--quiet"]
    assert main([*arguments, "--epochs", "2", "--batch-size", "50"]) == 1
    captured = capsys.readouterr()
    assert "continuing" not in captured.out + captured.err
    assert "batch_size 100 (saved) against 50" in captured.err
    assert captured.err.count("\n") == 1
    assert folder_state(folder) == before


def test_train_from_python_names_the_python_argument(run_copy, session_npz):
    config = preset_config("keras2017", epochs=2)
    with pytest.raises(RunError, match=r"overwrite=True from Python"):
        train(config, load_dataset("mnist", session_npz), run_copy, verbose=0)


# The README's two snippets' imports: the package's pieces for experiments, and the model
# module before Keras for loading saved models (each then reads the backend).
README_IMPORTS = (
    "import vae_mnist\n"
    "import numpy as np\n"
    "from vae_mnist import plotting\n"
    "from vae_mnist.presets import preset_config\n"
    "from vae_mnist.training import train\n"
    "import keras\n",
    "import vae_mnist.model\nimport keras\n",
)


@pytest.mark.parametrize("imports", README_IMPORTS)
def test_the_readme_snippet_imports_print_nothing(imports):
    """The README's snippets import the package first; then nothing reaches standard error.

    (Keras imported before the package starts TensorFlow before any code of this package
    runs; the snippet's comment says so.)
    """
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TF_CPP_MIN_LOG_LEVEL", "VAE_MNIST_VERBOSE_IMPORT")
    }
    environment["PYTHONPATH"] = str(REPOSITORY)
    code = imports + "print(keras.backend.backend())\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.strip() in ("tensorflow", "jax", "torch")


def _heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation but hyphens and underscores
    dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_within_the_readme_names_one_of_its_headings():
    text = (REPOSITORY / "README.md").read_text()
    # Code blocks hold no headings or links, but shell comments that look like headings.
    prose = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    headings = re.findall(r"^#{1,6} (.+)$", prose, flags=re.MULTILINE)
    anchors = [_heading_anchor(heading) for heading in headings]
    assert len(set(anchors)) == len(anchors), "two headings share an anchor"
    links = re.findall(r"\]\(#([^)]+)\)", prose)
    assert len(links) > 20
    assert sorted(set(links) - set(anchors)) == []
    # The contents list names every section.
    sections = {_heading_anchor(h) for h in re.findall(r"^## (.+)$", prose, flags=re.MULTILINE)}
    assert sections - {"quick-start", "contents"} <= set(links)


@pytest.mark.parametrize(
    ("counts", "text"),
    [([10, 10, 10], "10"), ([7, 8], "7.5"), ([7, 7, 8], "7.3"), ([10] * 49 + [9], "9.98")],
)
def test_the_usage_title_shows_whole_means_as_whole_numbers(counts, text):
    from vae_mnist.plotting import mean_text

    assert mean_text(np.array(counts)) == text
