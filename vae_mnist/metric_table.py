"""The table of a run's evaluated numbers (``metrics.json``), as `evaluate` prints it,
`compare` sets runs side by side in it and the explore page shows it.

Kept apart from `vae_mnist.evaluation`, which needs Keras: `compare` reads no model and must
answer without starting a backend.
"""

from __future__ import annotations

from typing import Any

# The table's rows, as (label, metrics.json key, format); a sub-term's label is indented.
TABLE_ROWS = (
    ("negative ELBO (nats)", "negative_elbo", "{:.2f}"),
    ("  reconstruction", "reconstruction", "{:.2f}"),
    ("  KL", "kl", "{:.2f}"),
    ("-log p(x), IWAE (nats)", "iwae_negative_log_likelihood", "{:.2f}"),
    ("kNN accuracy on the latent", "knn_accuracy", "{:.4f}"),
    ("active latent units", "active_units", "{}"),
    ("classes used per variable (mean)", "mean_classes_used", "{:.2f}"),
    ("log Z of the prior (nats)", "log_partition", "{:.3f}"),
)


def _code_size(metrics: dict[str, Any]) -> Any:
    # Metrics written by version 2 name the code's size latent_dim.
    return metrics.get("code_size", metrics.get("latent_dim"))


def format_metric(key: str, template: str, metrics: dict[str, Any]) -> str:
    """One row's value as the table shows it: active units out of the code's size (``2 of 2``,
    as README's tables give them), every other value by its template."""
    text = template.format(metrics[key])
    code_size = _code_size(metrics)
    if key == "active_units" and isinstance(code_size, int):
        text += f" of {code_size}"
    return text


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """``(label, value as text)`` for each row of `TABLE_ROWS` that the metrics hold: the
    table of `evaluate`, `compare` and the explore page. (A ``metrics.json`` is read with its
    numbers checked, `vae_mnist.runs.read_metrics`.)"""
    return [
        (label, format_metric(key, template, metrics))
        for label, key, template in TABLE_ROWS
        if key in metrics
    ]


def format_table(metrics: dict[str, Any]) -> str:
    """The metrics as an aligned text table: the rows that the metrics hold."""
    rows = metric_rows(metrics)
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {text}" for label, text in rows]
    if "log_partition_method" in metrics:
        # An estimate gives its standard error; an exact value has none (0).
        error = metrics.get("log_partition_standard_error")
        lines.append(
            f"(log Z by {metrics['log_partition_method']}"
            + (f", standard error {error:.3f})" if error else ")")
        )
    lines.append(
        f"({metrics['test_images']} test images, K={metrics['iwae_samples']}, "
        f"k={metrics['knn_neighbours']}, a code of {_code_size(metrics)} values)"
    )
    return "\n".join(lines)
