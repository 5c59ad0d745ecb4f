"""The notebooks run from top to bottom on a short run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPOSITORY, make_arrays

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = REPOSITORY / "notebooks" / "blog_walkthrough.ipynb"
DISCRETE_NOTEBOOK = REPOSITORY / "notebooks" / "discrete_walkthrough.ipynb"
RBM_NOTEBOOK = REPOSITORY / "notebooks" / "rbm_prior_walkthrough.ipynb"
KERNEL_NAME = "vae-mnist-test"


def write_kernel_spec(folder: Path) -> Path:
    """A kernel spec that starts this very Python (the test's virtual environment)."""
    spec = folder / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "vae-mnist tests",
                "language": "python",
            }
        )
    )
    return folder


def execute_on_a_short_run(path: Path, tmp_path: Path, monkeypatch) -> tuple[Path, list]:
    """Run a notebook top to bottom on one epoch of tiny data; its run folder and outputs."""
    data = tmp_path / "tiny.npz"
    np.savez(data, **make_arrays(train=200, test=50))
    run_folder = tmp_path / "run"
    # The kernel inherits this environment: the data, a one-epoch run, and this checkout.
    monkeypatch.setenv("JUPYTER_PATH", str(write_kernel_spec(tmp_path / "jupyter")))
    monkeypatch.setenv("VAE_MNIST_DATA", str(data))
    monkeypatch.setenv("VAE_MNIST_NOTEBOOK_RUN", str(run_folder))
    monkeypatch.setenv("VAE_MNIST_NOTEBOOK_EPOCHS", "1")
    monkeypatch.setenv("PYTHONPATH", str(REPOSITORY))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name=KERNEL_NAME,
        timeout=600,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # Raises CellExecutionError, naming the cell, where a cell fails.
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    assert not any(output.get("name") == "stderr" for output in outputs), [
        output.get("text") for output in outputs if output.get("name") == "stderr"
    ]
    return run_folder, outputs


def images_and_text(outputs: list) -> tuple[int, str]:
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    return len(images), "".join(output.get("text", "") for output in outputs)


@pytest.mark.slow
def test_the_blog_notebook_runs_on_a_short_run(tmp_path, monkeypatch):
    run_folder, outputs = execute_on_a_short_run(NOTEBOOK, tmp_path, monkeypatch)
    assert (run_folder / "decoder.keras").is_file()
    images, text = images_and_text(outputs)
    assert "z_sample[9] = [" in text and "y_test[9] = " in text
    # The curves, the scatter, the two decoded nines and the manifold.
    assert images == 4


@pytest.mark.slow
def test_the_discrete_notebook_runs_on_a_short_run(tmp_path, monkeypatch):
    run_folder, outputs = execute_on_a_short_run(DISCRETE_NOTEBOOK, tmp_path, monkeypatch)
    assert (run_folder / "vae.keras").is_file()
    images, text = images_and_text(outputs)
    assert "code of test image 9: " in text and "y_test = " in text
    assert "classes used per variable: [" in text
    # Binarized images, the relaxation, the curves, the code grid, the usage, the samples.
    assert images == 6


@pytest.mark.slow
def test_the_rbm_prior_notebook_runs_on_a_short_run(tmp_path, monkeypatch):
    run_folder, outputs = execute_on_a_short_run(RBM_NOTEBOOK, tmp_path, monkeypatch)
    assert (run_folder / "vae.keras").is_file()
    images, text = images_and_text(outputs)
    assert "the probabilities sum to 1.000000" in text
    assert "the coupled pair is on together with probability 0.81" in text
    assert "log Z by AIS: " in text and "W[" in text
    assert "the pairs' correlations under prior and posterior agree" in text
    assert "units that vary in this image's code: " in text
    # The curves, the coupling, the Gibbs chains, the fit of the prior, the posterior's coupling.
    assert images == 5
