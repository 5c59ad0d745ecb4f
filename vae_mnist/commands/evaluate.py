"""`vae-mnist evaluate`: the test-set numbers of a run, printed and written to metrics.json."""

from __future__ import annotations

import argparse
from typing import Any

from vae_mnist.config import EXACT_LOG_PARTITION_UNITS, UsageError
from vae_mnist.data import load_dataset, model_inputs
from vae_mnist.evaluation import evaluate_run, format_table
from vae_mnist.runs import load_trained_run, write_metrics


def run(arguments: argparse.Namespace, program: str) -> dict[str, Any]:
    trained = load_trained_run(arguments.run)
    config = trained.config
    log_partition = getattr(arguments, "log_partition", "auto")
    check_log_partition(trained.vae.latent, log_partition)
    data = load_dataset(config.data.dataset, arguments.data)
    train_images, test_images = model_inputs(data, config.data.binarize, config.training.seed)
    (_, train_labels), (_, test_labels) = data
    metrics = evaluate_run(
        trained.vae,
        train_images,
        train_labels,
        test_images,
        test_labels,
        samples=arguments.samples,
        neighbours=arguments.neighbours,
        seed=arguments.seed,
        progress=not arguments.quiet,
        log_partition=log_partition,
    )
    metrics = {
        "preset": config.preset,
        "dataset": config.data.dataset,
        "binarize": config.data.binarize,
        **metrics,
    }
    write_metrics(trained.paths, metrics)
    print(format_table(metrics))
    print(f"wrote {trained.paths.metrics}")
    return metrics


def check_log_partition(latent: Any, method: str) -> None:
    """Refuse, before anything is computed or written, an exact log Z that cannot be had."""
    if method == "exact" and hasattr(latent, "exact_log_partition_possible"):
        if not latent.exact_log_partition_possible():
            raise UsageError(
                f"--log-partition exact enumerates the smaller half of the RBM, which has "
                f"{min(latent.first_units, latent.second_units)} units: more than "
                f"{EXACT_LOG_PARTITION_UNITS}; use --log-partition ais or auto"
            )
