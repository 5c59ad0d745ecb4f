"""The blog walkthrough notebook runs from top to bottom on a short run (issue 12)."""

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


@pytest.mark.slow
def test_the_blog_notebook_runs_on_a_short_run(tmp_path, monkeypatch):
    data = tmp_path / "tiny.npz"
    np.savez(data, **make_arrays(train=200, test=50))
    run_folder = tmp_path / "run"
    # The kernel inherits this environment: the data, a one-epoch run, and this checkout.
    monkeypatch.setenv("JUPYTER_PATH", str(write_kernel_spec(tmp_path / "jupyter")))
    monkeypatch.setenv("VAE_MNIST_DATA", str(data))
    monkeypatch.setenv("VAE_MNIST_NOTEBOOK_RUN", str(run_folder))
    monkeypatch.setenv("VAE_MNIST_NOTEBOOK_EPOCHS", "1")
    monkeypatch.setenv("PYTHONPATH", str(REPOSITORY))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name=KERNEL_NAME,
        timeout=600,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # Raises CellExecutionError, naming the cell, where a cell fails.

    assert (run_folder / "decoder.keras").is_file()
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    text = "".join(output.get("text", "") for output in outputs)
    assert "z_sample[9] = [" in text and "y_test[9] = " in text
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    # The curves, the scatter, the two decoded nines and the manifold.
    assert len(images) == 4
    assert not any(output.get("name") == "stderr" for output in outputs), [
        output.get("text") for output in outputs if output.get("name") == "stderr"
    ]
