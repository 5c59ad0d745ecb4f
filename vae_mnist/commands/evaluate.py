"""`vae-mnist evaluate`: the test-set numbers of a run, printed and written to metrics.json."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from vae_mnist.evaluation import evaluate_run
from vae_mnist.files import check_writable_folder
from vae_mnist.metric_table import format_table
from vae_mnist.runs import check_files_can_be_written, load_trained_run, write_metrics


def run(arguments: argparse.Namespace, program: str) -> dict[str, Any]:
    log_partition = arguments.log_partition
    # Refused from the run's configuration, before its model is loaded.
    trained = load_trained_run(
        arguments.run,
        check_config=lambda config: config.prior.check_evaluation(log_partition=log_partition),
    )
    # Checked before the evaluation, which a failed write at its end would lose.
    check_writable_folder(trained.paths.folder)
    check_files_can_be_written((trained.paths.metrics,))
    config = trained.config
    data = config.data.load(arguments.data)
    train_images, test_images = config.data.model_inputs(data, config.training.seed)
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
        "dataset": config.data.kind,
        "binarize": config.data.binarize,
        **metrics,
    }
    write_metrics(trained.paths, metrics)
    print(format_table(metrics))
    print(f"wrote {trained.paths.metrics}")
    warn_of_non_finite(metrics, program)
    return metrics


def warn_of_non_finite(metrics: dict[str, Any], program: str) -> None:
    """One line on standard error naming the numbers that are NaN or infinite, which a table
    of many numbers would let pass unseen (a sample with an infinite log-weight, say)."""
    broken = [
        f"{name} ({value})"
        for name, value in metrics.items()
        if isinstance(value, float) and not math.isfinite(value)
    ]
    if broken:
        print(
            f"{program} evaluate: warning: not finite: {', '.join(broken)} (an infinite "
            "sample, or weights that are no longer numbers)",
            file=sys.stderr,
        )
