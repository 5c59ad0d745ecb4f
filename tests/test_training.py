"""Runs that survive interruption, refuse to clobber, stop on NaN, and repeat under a seed."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import folder_state, make_arrays, run_command

from vae_mnist import RunConfig, load_model
from vae_mnist.errors import ModelFileError, RunError, TrainingDivergedError
from vae_mnist.model import save_model
from vae_mnist.runs import library_versions
from vae_mnist.training import execution_settings, train

SMALL = RunConfig().replace(hidden_layers=(32,), batch_size=50, epochs=2)


def history_epochs(folder: Path) -> list[int]:
    with open(folder / "history.csv", newline="") as stream:
        return [int(row["epoch"]) for row in csv.DictReader(stream)]


def _wait_for_epochs(folder: Path, count: int, process: subprocess.Popen, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        history = folder / "history.csv"
        if history.exists() and len(history.read_text().splitlines()) > count:
            return
        time.sleep(0.05)
    # A training left running would slow every test after this one.
    process.kill()
    process.wait()
    raise AssertionError("training made no progress")


@pytest.fixture(scope="module")
def slow_npz(tmp_path_factory) -> Path:
    """Enough data that an epoch lasts long enough to be interrupted in the middle."""
    path = tmp_path_factory.mktemp("data") / "medium.npz"
    np.savez(path, **make_arrays(train=6000, test=500))
    return path


# One step per call, and the default of 100 (on JAX and TensorFlow, a compiled chunk of 100
# steps per call).
@pytest.mark.parametrize(
    "how, steps",
    [
        (signal.SIGKILL, 1),
        (signal.SIGTERM, 1),
        (signal.SIGINT, 1),
        (signal.SIGKILL, 100),
        (signal.SIGINT, 100),
    ],
)
def test_interrupted_run_continues_where_it_stopped(tmp_path, slow_npz, how, steps):
    folder = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "vae_mnist.cli",
        "train",
        "--data",
        str(slow_npz),
        "--out",
        str(folder),
        "--epochs",
        "8",
        "--quiet",
        "--steps-per-execution",
        str(steps),
        "--batch-size",
        "10",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_epochs(folder, 1, process)
    process.send_signal(how)
    _, stderr = process.communicate(timeout=60)
    if how in (signal.SIGTERM, signal.SIGINT):
        assert process.returncode == 130
        assert "interrupted; every finished epoch is kept" in stderr
        assert "Traceback" not in stderr
    else:
        assert process.returncode == -signal.SIGKILL
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "training" and 1 <= info["completed_epochs"] < 8
    assert history_epochs(folder) == list(range(1, info["completed_epochs"] + 1))
    assert (folder / info["checkpoint"]).is_file()

    # The timeout only guards against a hang: on a loaded 2-core machine the 7 remaining
    # epochs of one step per call have taken more than 300 s.
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert f"continuing the unfinished run in {folder} after epoch" in resumed.stderr
    assert history_epochs(folder) == list(range(1, 9))
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "finished" and info["completed_epochs"] == 8
    assert not (folder / "checkpoint").exists()
    assert not list(folder.glob(".tmp-*"))
    load_model(folder / "vae.keras")


class _InterruptAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def _unfinished_run(folder: Path, extend: bool = False) -> None:
    """A run of 3 epochs interrupted after its first (with `extend`, its first new one)."""
    with pytest.raises(KeyboardInterrupt):
        train(
            SMALL.replace(epochs=3),
            _data(),
            folder,
            verbose=0,
            extend=extend,
            callbacks=[_InterruptAfterFirstEpoch()],
        )


def _data():
    arrays = make_arrays(train=300, test=100)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, session_npz):
    folder = tmp_path / "run"
    _unfinished_run(folder)
    info = json.loads((folder / "run.json").read_text())
    checkpoint = folder / info["checkpoint"]
    saved = checkpoint.read_bytes()
    result = run_command(
        "train",
        "--data",
        str(session_npz),
        "--out",
        str(folder),
        "--learning-rate",
        "100",
        "--quiet",
    )
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "the loss became nan in epoch 2" in message or "the loss became inf" in message
    assert f"the last good checkpoint (epoch 1) is kept in {checkpoint}" in message
    assert checkpoint.read_bytes() == saved
    assert history_epochs(folder) == [1]
    assert np.isfinite(load_model(checkpoint).decoder.weights[0].numpy()).all()


def test_divergence_in_the_first_epoch(tmp_path):
    with pytest.raises(TrainingDivergedError, match="in epoch 1; .*no epoch had finished"):
        train(SMALL.replace(learning_rate=100.0), _data(), tmp_path / "run", verbose=0)


def test_finished_run_is_not_overwritten_without_asking(tmp_path):
    folder = tmp_path / "run"
    train(SMALL.replace(epochs=1), _data(), folder, verbose=0)
    before = folder_state(folder)
    with pytest.raises(
        RunError, match=r"finished run; replace it \(--overwrite, or overwrite=True"
    ):
        train(SMALL.replace(epochs=1), _data(), folder, verbose=0)
    assert folder_state(folder) == before
    (folder / "metrics.json").write_text("{}")
    train(SMALL.replace(epochs=1, seed=4), _data(), folder, verbose=0, overwrite=True)
    assert not (folder / "metrics.json").exists(), "metrics of the replaced model must go"
    assert json.loads((folder / "run.json").read_text())["seed"] == 4


def test_unfinished_run_with_other_settings_needs_restart(tmp_path):
    folder = tmp_path / "run"
    _unfinished_run(folder)
    with pytest.raises(RunError, match="other settings: dimension 2 .saved. against 3.*--restart"):
        train(SMALL.replace(epochs=3, dimension=3), _data(), folder, verbose=0)
    info = train(SMALL.replace(epochs=1, dimension=3), _data(), folder, verbose=0, restart=True)
    assert info["completed_epochs"] == 1 and history_epochs(folder) == [1]


# Extending a finished run: the papers' schedules in stages, and a lower learning rate at the end.


def test_extending_a_finished_run_matches_resuming_an_interrupted_one(tmp_path):
    finished = tmp_path / "finished"
    train(SMALL.replace(epochs=1), _data(), finished, verbose=0)
    (finished / "metrics.json").write_text("{}")
    info = train(SMALL.replace(epochs=3), _data(), finished, verbose=0, extend=True)
    assert info["status"] == "finished" and history_epochs(finished) == [1, 2, 3]
    assert not (finished / "checkpoint").exists()
    assert not (finished / "metrics.json").exists(), "metrics of the replaced model must go"
    # An interrupted run continues from the model saved after its epoch 1, reseeded there:
    # so does the extension, from the finished model of the same epoch.
    interrupted = tmp_path / "interrupted"
    _unfinished_run(interrupted)
    resumed = train(SMALL.replace(epochs=3), _data(), interrupted, verbose=0)
    assert info["history"] == resumed["history"]
    assert load_model(finished / "vae.keras").count_params() > 0


def test_extending_may_lower_the_learning_rate(tmp_path):
    folder = tmp_path / "run"
    train(SMALL.replace(epochs=1), _data(), folder, verbose=0)
    train(SMALL.replace(epochs=2, learning_rate=1e-4), _data(), folder, verbose=0, extend=True)
    vae = load_model(folder / "vae.keras")
    assert float(vae.optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    assert json.loads((folder / "config.json").read_text())["optimizer"]["learning_rate"] == 1e-4


def test_a_staged_schedule_survives_an_interruption_and_ends_at_its_last_rate(tmp_path):
    staged = SMALL.replace(
        epochs=3,
        learning_rate_schedule="stages",
        stage_epochs=(1, 2),
        stage_learning_rates=(3e-4, 1e-4),
    )
    folder = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(staged, _data(), folder, verbose=0, callbacks=[_InterruptAfterFirstEpoch()])
    info = train(staged, _data(), folder, verbose=0)
    assert info["status"] == "finished" and history_epochs(folder) == [1, 2, 3]
    optimizer = load_model(folder / "vae.keras").optimizer
    # 300 images in batches of 50: 18 steps, so the saved schedule is past both boundaries.
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 18
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "schedule",
    [
        {"learning_rate_schedule": "iwae"},
        {"learning_rate_schedule": "stages", "stage_epochs": (1,), "stage_learning_rates": (3e-4,)},
    ],
)
def test_a_scheduled_run_refuses_a_new_learning_rate_when_extended(tmp_path, schedule):
    # Its optimizer keeps the saved schedule, so the new rate would be written and never used.
    scheduled = SMALL.replace(epochs=1, **schedule)
    folder = tmp_path / "run"
    train(scheduled, _data(), folder, verbose=0)
    before = folder_state(folder)
    with pytest.raises(RunError, match=r"learning_rate 0.001 .saved. against 0.0001; .*schedule"):
        train(scheduled.replace(epochs=2, learning_rate=1e-4), _data(), folder, extend=True)
    assert folder_state(folder) == before
    info = train(scheduled.replace(epochs=2), _data(), folder, verbose=0, extend=True)
    assert info["completed_epochs"] == 2


def test_an_interrupted_extension_keeps_the_finished_model_and_continues(tmp_path):
    folder = tmp_path / "run"
    train(SMALL.replace(epochs=1), _data(), folder, verbose=0)
    finished_model = (folder / "vae.keras").read_bytes()
    _unfinished_run(folder, extend=True)
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "training" and info["completed_epochs"] == 2
    assert (folder / "vae.keras").read_bytes() == finished_model
    assert (folder / info["checkpoint"]).is_file()
    # Not back to fewer epochs than it trained: that would replace the finished model.
    before = folder_state(folder)
    for extend in (False, True):
        with pytest.raises(RunError, match=r"has trained 2 epochs; continue it with --epochs 2"):
            train(SMALL.replace(epochs=1), _data(), folder, verbose=0, extend=extend)
        assert folder_state(folder) == before
    info = train(SMALL.replace(epochs=3), _data(), folder, verbose=0, extend=True)
    assert info["completed_epochs"] == 3 and history_epochs(folder) == [1, 2, 3]


class _InterruptAtFirstStep(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        raise KeyboardInterrupt


def test_an_extension_stopped_before_its_first_epoch_can_go_back_to_the_finished_run(tmp_path):
    folder = tmp_path / "run"
    train(SMALL.replace(epochs=1), _data(), folder, verbose=0)
    (folder / "metrics.json").write_text('{"negative_elbo": 1.0}')
    before = folder_state(folder)
    with pytest.raises(KeyboardInterrupt):
        train(SMALL, _data(), folder, verbose=0, extend=True, callbacks=[_InterruptAtFirstStep()])
    # Resumed at the epochs it had, it trains nothing: the finished model and its metrics stay.
    info = train(SMALL.replace(epochs=1), _data(), folder, verbose=0)
    assert info["status"] == "finished" and history_epochs(folder) == [1]
    after = folder_state(folder)
    for name in ("vae.keras", "encoder.keras", "decoder.keras", "metrics.json"):
        assert after[name] == before[name], name


@pytest.mark.parametrize(
    "changes, options, message",
    [
        ({"epochs": 1}, {}, r"finished run of 1 epoch; --extend needs --epochs above 1"),
        ({"epochs": 2, "dimension": 3}, {}, r"other settings: dimension 2 .saved. against 3"),
        ({"epochs": 2}, {"overwrite": True}, r"cannot be combined with --overwrite or --restart"),
        ({"epochs": 2}, {"restart": True}, r"cannot be combined with --overwrite or --restart"),
    ],
)
def test_extend_refuses_what_it_cannot_do_and_changes_nothing(tmp_path, changes, options, message):
    folder = tmp_path / "run"
    train(SMALL.replace(epochs=1), _data(), folder, verbose=0)
    before = folder_state(folder)
    with pytest.raises(RunError, match=message):
        train(SMALL.replace(**changes), _data(), folder, verbose=0, extend=True, **options)
    assert folder_state(folder) == before


@pytest.mark.parametrize(
    ("record", "problem"),
    [("[1, 2]", "not a JSON object"), ('{"completed_epochs": 1}', "no status")],
)
def test_a_progress_record_without_a_status_is_named_so(tmp_path, record, problem):
    from vae_mnist.runs import RunPaths, read_run_info

    tmp_path.joinpath("run.json").write_text(record)
    with pytest.raises(RunError, match=re.escape(f"not a vae-mnist progress record ({problem})")):
        read_run_info(RunPaths(tmp_path))


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"status": "interrupted"}, "status 'interrupted'"),
        ({"status": 5}, "status 5"),
        ({"completed_epochs": -3}, "completed_epochs -3"),
        ({"completed_epochs": "abc"}, "completed_epochs 'abc'"),
        ({"history": [0]}, "history is not a list of epochs"),
        ({"checkpoint": 5}, "checkpoint 5"),
        ({"checkpoint": "../../etc/passwd"}, "checkpoint '../../etc/passwd'"),
        ({"continued": "elsewhere"}, "continued is not a list"),
        ({"continued": [{}]}, "continued is not a list"),
        ({"history": [{"loss": 1.0}]}, "history is not a list of epochs"),
        # Read as "nothing to continue", this one let the finished model be trained over.
        ({"status": "training"}, "an unfinished run with 1 epoch finished and no checkpoint"),
        # No list of 10^30 epochs is made to compare the history with.
        ({"completed_epochs": 10**30}, "does not hold epochs 1 to 10000000000000000000000"),
    ],
)
def test_a_progress_record_that_says_something_else_stops_training(tmp_path, changes, problem):
    from vae_mnist.runs import RunPaths, read_run_info

    folder = tmp_path / "run"
    train(SMALL.replace(epochs=1), _data(), folder, verbose=0)
    info = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**info, **changes}))
    before = folder_state(folder)
    with pytest.raises(RunError, match=re.escape(problem)):
        read_run_info(RunPaths(folder))
    # A record that does not say "finished" must not let the finished model be replaced.
    for options in ({}, {"extend": True}):
        with pytest.raises(RunError, match="not a vae-mnist progress record"):
            train(SMALL.replace(epochs=2, hidden_layers=(8,)), _data(), folder, **options)
    assert folder_state(folder) == before
    # Replacing the run on purpose needs nothing of the record.
    info = train(SMALL.replace(epochs=1), _data(), folder, verbose=0, overwrite=True)
    assert info["status"] == "finished"


def test_bad_data_is_refused_before_a_finished_run_is_touched(tmp_path):
    from vae_mnist.errors import ConfigError, DataError

    folder = tmp_path / "run"
    train(SMALL.replace(epochs=1), _data(), folder, verbose=0)
    before = folder_state(folder)
    (x_train, y_train), test = _data()
    bad = {
        "no images": (((x_train[:0], y_train[:0]), test), "x_train is empty"),
        "other sizes": (((x_train[:, :20, :20], y_train), test), "expected (n, 28, 28)"),
        "scaled already": (((x_train / 255.0, y_train), test), "expected integers (uint8)"),
        "fewer labels": (((x_train, y_train[:-1]), test), "but y_train has"),
        "one split": ((x_train, y_train), "expected ((x_train, y_train), (x_test, y_test))"),
        "nothing": (None, "expected ((x_train, y_train), (x_test, y_test))"),
    }
    for case, (data, message) in bad.items():
        with pytest.raises(DataError, match=re.escape(message)):
            train(SMALL.replace(epochs=1), data, folder, verbose=0, overwrite=True)
        assert folder_state(folder) == before, case
    with pytest.raises(ConfigError, match="config must be a RunConfig, got str"):
        train("keras2017", _data(), folder, verbose=0, overwrite=True)
    with pytest.raises(RunError, match="out_dir is empty"):
        train(SMALL, _data(), "", verbose=0)
    assert folder_state(folder) == before


@pytest.mark.parametrize("name", ["history.csv", "metrics.json", "decoder.keras"])
def test_a_folder_with_a_runs_files_but_no_record_is_not_trained_into_unasked(tmp_path, name):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / name).write_text("someone's own file\n")
    before = folder_state(folder)
    with pytest.raises(RunError, match=rf"holds {re.escape(name)} but no run.json; replace"):
        train(SMALL.replace(epochs=1), _data(), folder, verbose=0)
    assert folder_state(folder) == before
    info = train(SMALL.replace(epochs=1), _data(), folder, verbose=0, overwrite=True)
    assert info["status"] == "finished"


def test_a_config_json_left_alone_by_a_failed_start_is_trained_over(tmp_path):
    # A new run writes config.json just before run.json; a failure between them leaves it alone.
    folder = tmp_path / "run"
    folder.mkdir()
    SMALL.save(folder / "config.json")
    info = train(SMALL.replace(epochs=1), _data(), folder, verbose=0)
    assert info["status"] == "finished"


def test_extend_needs_a_run(tmp_path):
    with pytest.raises(RunError, match="holds no trained run to extend"):
        train(SMALL, _data(), tmp_path / "run", verbose=0, extend=True)
    assert not (tmp_path / "run").exists(), "a refusal creates no folder"


def test_extend_through_the_command_line(tmp_path, session_npz):
    folder = tmp_path / "run"
    common = ["--data", str(session_npz), "--out", str(folder), "--hidden-layers", "32", "--quiet"]
    assert run_command("train", *common, "--epochs", "1").returncode == 0
    again = run_command("train", *common, "--epochs", "2")
    assert again.returncode != 0 and "holds a finished run" in again.stderr
    extended = run_command("train", *common, "--epochs", "2", "--extend")
    assert extended.returncode == 0, extended.stderr
    assert f"extending the run in {folder} after epoch 1 to epoch 2" in extended.stderr
    assert history_epochs(folder) == [1, 2]
    nothing = run_command("train", *common[:2], "--out", str(tmp_path / "none"), "--extend")
    assert nothing.returncode != 0 and "Traceback" not in nothing.stderr
    assert nothing.stderr.strip().splitlines()[-1].endswith("holds no trained run to extend")
    assert not (tmp_path / "none").exists()


def test_same_seed_same_history_and_decoded_images(tmp_path):
    results = []
    for name in ("first", "second"):
        folder = tmp_path / name
        train(SMALL, _data(), folder, verbose=0)
        decoder = load_model(folder / "decoder.keras")
        z = np.linspace(-2, 2, 10, dtype="float32").reshape(5, 2)
        results.append(
            ((folder / "history.csv").read_text(), keras.ops.convert_to_numpy(decoder(z)))
        )
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])
    other = train(SMALL.replace(seed=1), _data(), tmp_path / "other", verbose=0)
    assert other["history"][-1]["loss"] != float(results[0][0].splitlines()[-1].split(",")[1])


def test_seed_and_versions_are_recorded(tmp_path):
    info = train(SMALL.replace(epochs=1, seed=11), _data(), tmp_path / "run", verbose=0)
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())
    assert recorded["seed"] == 11 == info["seed"]
    for library in ("python", "keras", "numpy", "backend"):
        assert recorded["versions"][library]
    assert "config" not in recorded, "the configuration is stored once, in config.json"
    assert RunConfig.load(tmp_path / "run" / "config.json") == SMALL.replace(epochs=1, seed=11)


class _RecordExecution(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.settings = (self.model.steps_per_execution, bool(self.model.jit_compile))


def test_a_run_continues_on_another_backend_with_this_backends_settings(tmp_path):
    folder = tmp_path / "run"
    train(SMALL.replace(epochs=1), _data(), folder, verbose=0)
    # Make the run look saved by another backend: its model compiled with other execution
    # settings (PyTorch refuses more than one step per execution), its record with other
    # versions.
    vae = load_model(folder / "vae.keras")
    vae.compile(optimizer=vae.optimizer, steps_per_execution=5, jit_compile=False)
    save_model(vae, folder / "vae.keras")
    info = json.loads((folder / "run.json").read_text())
    started_with = {**info["versions"], "backend": "another"}
    (folder / "run.json").write_text(json.dumps({**info, "versions": started_with}))
    recorder = _RecordExecution()
    train(SMALL, _data(), folder, verbose=0, extend=True, callbacks=[recorder])
    steps_per_epoch = 300 // SMALL.training.batch_size
    assert recorder.settings == execution_settings(SMALL, steps_per_epoch)
    recorded = json.loads((folder / "run.json").read_text())
    assert recorded["versions"] == started_with
    assert recorded["continued"] == [{"after_epoch": 1, "versions": library_versions()}]
    # Continuing again with the same versions adds nothing.
    train(SMALL.replace(epochs=3), _data(), folder, verbose=0, extend=True)
    assert json.loads((folder / "run.json").read_text())["continued"] == recorded["continued"]


def _as_saved_by_pytorch(model_file: Path) -> None:
    """Rewrite a saved VAE's optimizer entry as Keras writes it on PyTorch: naming the
    PyTorch-only subclass's module, which imports torch and updates only torch tensors."""
    with zipfile.ZipFile(model_file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    optimizer = config["compile_config"]["optimizer"]
    optimizer["module"] = "keras.src.backend.torch.optimizers.torch_rmsprop"
    optimizer["registered_name"] = optimizer["class_name"]
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(model_file, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def test_a_run_trained_on_pytorch_loads_and_continues_on_every_backend(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    train(SMALL.replace(epochs=1), _data(), folder, verbose=0)
    saved = load_model(folder / "vae.keras").optimizer
    _as_saved_by_pytorch(folder / "vae.keras")
    if keras.backend.backend() != "torch":
        # As where PyTorch is not installed: nothing here may need it.
        monkeypatch.setitem(sys.modules, "torch", None)
    loaded = load_model(folder / "vae.keras").optimizer
    assert isinstance(loaded, keras.optimizers.RMSprop)
    assert len(loaded.variables) == len(saved.variables)
    for mine, theirs in zip(loaded.variables, saved.variables, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs)
        )
    info = train(SMALL, _data(), folder, verbose=0, extend=True)
    assert info["completed_epochs"] == 2 and np.isfinite(info["history"][-1]["val_loss"])


def test_a_saved_model_names_the_backend_neutral_optimizer(tmp_path):
    folder = tmp_path / "run"
    train(SMALL.replace(epochs=1), _data(), folder, verbose=0)
    with zipfile.ZipFile(folder / "vae.keras") as archive:
        optimizer = json.loads(archive.read("config.json"))["compile_config"]["optimizer"]
    # On PyTorch, Keras would name `keras.src.backend.torch.optimizers.torch_rmsprop`.
    assert (optimizer["module"], optimizer["class_name"]) == ("keras.optimizers", "RMSprop")
    reloaded = keras.saving.load_model(folder / "vae.keras", safe_mode=True)
    assert isinstance(reloaded.optimizer, keras.optimizers.RMSprop)


def test_a_run_continued_with_the_same_versions_records_no_continuation(tmp_path):
    folder = tmp_path / "run"
    _unfinished_run(folder)
    train(SMALL.replace(epochs=3), _data(), folder, verbose=0)
    assert "continued" not in json.loads((folder / "run.json").read_text())


def test_lambda_layer_file_is_refused_not_run(tmp_path):
    marker = tmp_path / "ran"
    inputs = keras.Input(shape=(2,))
    outputs = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    path = tmp_path / "stranger.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ModelFileError, match="refused, it holds a Lambda layer"):
        load_model(path)
    assert not marker.exists()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    from vae_mnist.files import atomic_path

    target = tmp_path / "history.csv"
    target.write_text("good")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("crash in the middle")
    assert target.read_text() == "good"
    assert os.listdir(tmp_path) == ["history.csv"]


def test_atomic_write_leaves_nothing_when_the_writer_adds_its_own_suffix(tmp_path):
    from vae_mnist.files import atomic_path

    target = tmp_path / "figure"
    # numpy.save, like matplotlib, adds a suffix to a name without the one it expects.
    with pytest.raises(FileNotFoundError, match=f"{target} was not written"):
        with atomic_path(target) as temporary:
            np.save(temporary, np.zeros(3))
            assert temporary.with_name(temporary.name + ".npy").is_file()
    assert os.listdir(tmp_path) == []


def test_a_failed_checkpoint_write_keeps_the_last_good_one(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    real_save = keras.Model.save

    def disk_full_at_epoch_two(self, path, *arguments, **options):
        if "epoch-0002" in str(path):
            raise OSError(28, "No space left on device", str(path))
        return real_save(self, path, *arguments, **options)

    monkeypatch.setattr(keras.Model, "save", disk_full_at_epoch_two)
    with pytest.raises(OSError, match="No space left"):
        train(SMALL.replace(epochs=3), _data(), folder, verbose=0)
    info = json.loads((folder / "run.json").read_text())
    assert info["completed_epochs"] == 1 and info["checkpoint"] == "checkpoint/epoch-0001.keras"
    assert history_epochs(folder) == [1]
    assert [path.name for path in (folder / "checkpoint").iterdir()] == ["epoch-0001.keras"]
    load_model(folder / info["checkpoint"])

    monkeypatch.setattr(keras.Model, "save", real_save)
    finished = train(SMALL.replace(epochs=3), _data(), folder, verbose=0)
    assert finished["status"] == "finished" and history_epochs(folder) == [1, 2, 3]


# Epoch numbers: from 1 in history.csv, as the progress bar and the messages count them. Runs
# saved by version 2.0.0 and earlier numbered them from 0 and are read as numbered from 1.

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OLD_RUNS = sorted(path.name for path in FIXTURES.glob("run_v*"))


@pytest.mark.parametrize("name", OLD_RUNS)
def test_an_old_history_numbered_from_0_reads_from_1(name):
    from vae_mnist.runs import RunPaths, read_history, read_run_info

    paths = RunPaths(FIXTURES / name)
    assert (paths.history.read_text().splitlines()[1]).startswith("0,")
    history = read_history(paths.history)
    count = len(history["loss"])
    np.testing.assert_array_equal(history["epoch"], np.arange(1, count + 1))
    info = read_run_info(paths)
    assert [row["epoch"] for row in info["history"]] == list(range(1, count + 1))
    np.testing.assert_array_equal([row["loss"] for row in info["history"]], history["loss"])


# A history.csv that cannot be read as numbers under its header is one line naming the file.
BAD_HISTORIES = {
    "a value not a number": (b"epoch,loss,val_loss\n1,abc,3\n", "line 2: loss is 'abc', not a"),
    "a row of extra values": (b"epoch,loss,val_loss\n1,2,3,4,5\n", "line 2 has 5 values, but"),
    "not UTF-8": (b"epoch,loss,val_loss\n1,\xff\xfe,3\n", "not UTF-8 text"),
    "no epoch column": (b"loss,val_loss\n1,2\n", "no epoch column"),
    "a column named twice": (b"epoch,loss,loss\n1,2,3\n", "the header names loss more than once"),
}


@pytest.mark.parametrize("case", sorted(BAD_HISTORIES))
def test_a_malformed_history_is_a_run_error_naming_the_file(tmp_path, case):
    from vae_mnist.runs import read_history

    content, message = BAD_HISTORIES[case]
    path = tmp_path / "history.csv"
    path.write_bytes(content)
    with pytest.raises(RunError, match=re.escape(message)) as caught:
        read_history(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_a_history_reads_an_empty_cell_as_not_a_number_and_refuses_a_short_row(tmp_path):
    from vae_mnist.runs import EmptyHistoryError, RunError, read_history

    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n1,2,\n\n2,1,\n")
    history = read_history(path)
    np.testing.assert_array_equal(history["epoch"], [1, 2])
    np.testing.assert_array_equal(history["val_loss"], [np.nan, np.nan])
    # Training writes every cell of a row; a shorter one is a file cut short.
    path.write_text("epoch,loss,val_loss\n1,2,3\n2,1")
    with pytest.raises(RunError, match="line 3 has 2 values, but the header names 3 columns"):
        read_history(path)
    path.write_text("epoch,loss,val_loss\n")
    with pytest.raises(EmptyHistoryError, match="no finished epoch"):
        read_history(path)


def test_a_history_saved_with_a_byte_order_mark_reads_as_without(tmp_path):
    from vae_mnist.runs import read_history

    # A spreadsheet saves a CSV with the mark, which would read as part of "epoch".
    path = tmp_path / "history.csv"
    path.write_bytes(b"\xef\xbb\xbfepoch,loss,val_loss\n1,2,3\n")
    history = read_history(path)
    assert list(history) == ["epoch", "loss", "val_loss"]
    np.testing.assert_array_equal(history["loss"], [2])


@pytest.fixture
def drawn_figures(monkeypatch):
    """The figures that plotting saves, kept instead of written."""
    from vae_mnist import plotting

    figures = []
    monkeypatch.setattr(plotting, "_save", lambda figure, path: figures.append(figure))
    return figures


def _terms_history(epochs: int) -> dict[str, np.ndarray]:
    """A history of the three terms, training and validation, over `epochs` epochs."""
    history = {"epoch": np.arange(1, epochs + 1, dtype=float)}
    for name in ("loss", "reconstruction_loss", "kl_loss"):
        history[name] = history["val_" + name] = np.linspace(170.0, 160.0, epochs)
    return history


def test_the_curves_of_an_old_run_start_at_epoch_1(drawn_figures, tmp_path):
    from vae_mnist import plotting
    from vae_mnist.runs import read_history

    history = read_history(FIXTURES / "run_v1" / "history.csv")
    plotting.plot_training_curves(history, tmp_path / "curves.png")
    plotting.plot_validation_curves({"old": history}, tmp_path / "compare.png")
    assert len(drawn_figures) == 2
    for figure in drawn_figures:
        x_values = figure.axes[0].lines[0].get_xdata()
        np.testing.assert_array_equal(x_values, np.arange(1, len(history["loss"]) + 1))


def test_the_curves_draw_every_value_that_training_alone_logs(drawn_figures, tmp_path):
    from vae_mnist import plotting
    from vae_mnist.model import build_vae

    history = _terms_history(3)
    # A relaxed posterior's temperature and a warm-up's KL weight, named by the model's parts;
    # a value of a kind of one's own without a title, by its column.
    history |= {"temperature": np.ones(3), "kl_weight": np.ones(3), "my_value": np.ones(3)}
    config = RunConfig().replace(
        posterior="bernoulli", prior="uniform", units=4, hidden_layers=(4,), kl_warmup_epochs=2
    )
    titles = build_vae(config).logged_titles
    plotting.plot_training_curves(history, tmp_path / "curves.png", titles=titles)
    panels = [axis.get_title() for axis in drawn_figures[0].axes]
    assert panels[3:] == [
        "relaxation temperature τ (epoch mean)",
        "KL weight β during the warm-up (epoch mean)",
        "my_value (epoch mean)",
    ]


def test_the_curves_of_a_history_with_many_columns_stay_a_readable_figure(drawn_figures, tmp_path):
    from vae_mnist import plotting

    history = _terms_history(3)
    # A history edited by hand to hold 300 more columns drew a figure 131,300 pixels wide;
    # the parts' own values come first, wherever their columns stand.
    history |= {f"extra{index}": np.ones(3) for index in range(300)}
    history["temperature"] = np.ones(3)
    titles = {"temperature": "relaxation temperature τ"}
    plotting.plot_training_curves(history, tmp_path / "curves.png", titles=titles)
    figure = drawn_figures[0]
    panels = [axis.get_title() for axis in figure.axes]
    assert len(panels) == 3 + plotting.MOST_LOGGED_PANELS
    assert panels[3:5] == ["relaxation temperature τ (epoch mean)", "extra0 (epoch mean)"]
    width, height = figure.get_size_inches()
    assert width <= 13 and height <= 3.8 * 4
    assert figure.get_suptitle().startswith("292 more logged columns not drawn: extra8, extra9")


@pytest.mark.parametrize("epochs", [1, 2])
def test_the_curves_of_a_short_run_mark_each_epoch_on_whole_epoch_ticks(
    drawn_figures, tmp_path, epochs
):
    from vae_mnist import plotting

    history = _terms_history(epochs)
    plotting.plot_training_curves(history, tmp_path / "curves.png")
    plotting.plot_validation_curves({"short": history}, tmp_path / "compare.png")
    assert len(drawn_figures) == 2
    for figure in drawn_figures:
        for axis in figure.axes:
            # A single point is drawn only by a marker; a line alone leaves the panel empty.
            assert all(line.get_marker() == "o" for line in axis.get_lines())
            low, high = axis.get_xlim()
            ticks = [tick for tick in axis.get_xticks() if low <= tick <= high]
            assert set(range(1, epochs + 1)) <= set(ticks)
            assert all(float(tick).is_integer() for tick in ticks), ticks


def test_resuming_an_old_unfinished_run_numbers_all_its_epochs_from_1(tmp_path):
    import shutil

    folder = Path(shutil.copytree(FIXTURES / "run_v2_unfinished", tmp_path / "run"))
    saved = json.loads((folder / "run.json").read_text())
    config = RunConfig.from_dict(saved["config"]).replace(epochs=2)
    info = train(config, _data(), folder, verbose=0)
    assert [row["epoch"] for row in info["history"]] == [1, 2]
    assert info["history"][0]["loss"] == saved["history"][0]["loss"]
    assert history_epochs(folder) == [1, 2]
    assert [row["epoch"] for row in json.loads((folder / "run.json").read_text())["history"]] == [
        1,
        2,
    ]


# Ctrl-C in the middle of an epoch stops there: no validation of the cut epoch.


class _CountValidations(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.validations = 0

    def on_test_begin(self, logs=None):
        self.validations += 1


class _SignalAt(keras.callbacks.Callback):
    """Sends this process Ctrl-C after a step of one epoch, or as that epoch's validation starts."""

    def __init__(self, epoch: int, step: int | None):
        super().__init__()
        self.epoch, self.step, self.current = epoch, step, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch + 1 == self.step:
            os.kill(os.getpid(), signal.SIGINT)

    def on_test_begin(self, logs=None):
        if self.current == self.epoch and self.step is None:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("interactive", [False, True])
def test_ctrl_c_mid_epoch_stops_at_once_without_validating(
    tmp_path, capsys, monkeypatch, interactive
):
    from vae_mnist import progress

    monkeypatch.setattr(progress, "is_interactive", lambda stream=None: interactive)
    folder = tmp_path / "run"
    # 300 images in batches of 50: 6 steps an epoch, one step per execution.
    config = SMALL.replace(epochs=3, steps_per_execution=1)
    validations = _CountValidations()
    with pytest.raises(KeyboardInterrupt) as stopped:
        train(config, _data(), folder, callbacks=[validations, _SignalAt(epoch=1, step=2)])
    message = "stopped at step 3 of 6 in epoch 2; that epoch is discarded"
    assert str(stopped.value) == message
    assert type(stopped.value) is KeyboardInterrupt
    # Only the first epoch was validated; the signal came after the second epoch's step 2, and
    # the epoch recorder, called before it, stops at the next step.
    assert validations.validations == 1
    captured = capsys.readouterr()
    assert captured.err == message + "\n"
    if interactive:
        # The bar drawn at the step where it stopped, and its line ended.
        assert captured.out.endswith("\n")
        assert "3/6" in captured.out.rstrip("\n").rsplit("\n", 1)[-1]
    else:
        assert captured.out.startswith("epoch 1/3: loss ")
        assert captured.out.count("\n") == 1
    info = json.loads((folder / "run.json").read_text())
    assert info["completed_epochs"] == 1 and history_epochs(folder) == [1]


def test_ctrl_c_while_an_epoch_is_validated_keeps_that_epoch(tmp_path, capsys):
    folder = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt) as stopped:
        train(SMALL.replace(epochs=3), _data(), folder, verbose=0, callbacks=[_SignalAt(0, None)])
    assert str(stopped.value) == ""
    assert capsys.readouterr().err == ""
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "training" and info["completed_epochs"] == 1
    assert history_epochs(folder) == [1]


def test_ctrl_c_while_the_last_epoch_is_validated_lets_the_run_finish(tmp_path):
    folder = tmp_path / "run"
    info = train(SMALL, _data(), folder, verbose=0, callbacks=[_SignalAt(1, None)])
    assert info["status"] == "finished" and history_epochs(folder) == [1, 2]
    assert (folder / "vae.keras").is_file()


@pytest.mark.parametrize("batch_size", [50, 64])
def test_steps_per_execution_does_not_change_the_numbers(tmp_path, batch_size):
    # 300 images in batches of 50: 6 steps, so chunks of 4 leave a partial chunk of 2; in
    # batches of 64, the fifth batch has 44 images, in a chunk with full ones. On JAX and
    # TensorFlow a chunk is one compiled loop over its steps; it must give the step-by-step
    # numbers.
    histories = []
    for steps, chunks in ((1, False), (4, False), (4, True)):
        folder = tmp_path / f"steps_{steps}_{chunks}"
        config = SMALL.replace(
            steps_per_execution=steps, compiled_chunks=chunks, batch_size=batch_size
        )
        train(config, _data(), folder, verbose=0)
        histories.append((folder / "history.csv").read_text())
    assert histories[0] == histories[1] == histories[2]


def test_ctrl_c_stops_at_the_end_of_a_chunk(tmp_path, capsys):
    folder = tmp_path / "run"
    config = SMALL.replace(epochs=3, steps_per_execution=4, compiled_chunks=True)
    with pytest.raises(KeyboardInterrupt) as stopped:
        train(config, _data(), folder, verbose=0, callbacks=[_SignalAt(epoch=1, step=4)])
    # The signal comes after the first chunk (steps 1 to 4); the recorder, called before it,
    # stops within the next, partial chunk (at its end where the backend runs it as one call),
    # counted to the epoch's 6 steps, never past them.
    message = str(stopped.value)
    assert message.endswith(" of 6 in epoch 2; that epoch is discarded")
    assert 4 < int(message.split()[3]) <= 6
    assert json.loads((folder / "run.json").read_text())["completed_epochs"] == 1


def test_the_default_run_trains_in_compiled_chunks_on_jax_and_tensorflow():
    from vae_mnist.chunks import compiles_chunks
    from vae_mnist.model import build_vae
    from vae_mnist.training import compile_vae

    config = RunConfig()
    assert config.training.compiled_chunks
    vae = build_vae(config)
    compile_vae(vae, config, steps_per_epoch=600)
    assert compiles_chunks(vae) == (keras.backend.backend() in ("jax", "tensorflow"))
    vae = build_vae(config.replace(compiled_chunks=False))
    compile_vae(vae, config.replace(compiled_chunks=False), steps_per_epoch=600)
    assert not compiles_chunks(vae)
    # The convolutional network trains in Keras' loop: XLA's CPU convolutions inside a
    # compiled loop were many times slower.
    conv = config.replace(network="conv")
    vae = build_vae(conv)
    compile_vae(vae, conv, steps_per_epoch=600)
    assert conv.training.compiled_chunks and not compiles_chunks(vae)
