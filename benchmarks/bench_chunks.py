"""Compiled chunks against Keras' step loop (JAX or TensorFlow): CPU and wall seconds per epoch.

Each measurement trains one preset with `vae_mnist.training.train` in a fresh process, with
`compiled_chunks` on or off, the two alternating; it prints, per epoch after the first, the
process's CPU time (user and system, all threads) and the wall time. On a machine shared with
other work the wall time depends on the scheduler's share, while the CPU time measures the
work itself; on an idle machine the two tell the same story.

    python benchmarks/bench_chunks.py --data ../shared/data/mnist.npz --backend tensorflow \\
        --presets keras2017,iwae2015 --epochs 4 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _worker(preset: str, chunks: bool, epochs: int, data_path: str | None) -> dict:
    import keras

    from vae_mnist.presets import preset_config
    from vae_mnist.training import train

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.marks = [(time.process_time(), time.perf_counter())]

        def on_epoch_end(self, epoch, logs=None):
            self.marks.append((time.process_time(), time.perf_counter()))

    config = preset_config(preset).replace(epochs=epochs, compiled_chunks=chunks)
    data = config.data.load(data_path)
    clock = Clock()
    with tempfile.TemporaryDirectory() as folder:
        info = train(config, data, folder, verbose=0, callbacks=[clock])
    pairs = list(zip(clock.marks, clock.marks[1:], strict=False))[1:]
    return {
        "cpu": statistics.median(end[0] - start[0] for start, end in pairs),
        "wall": statistics.median(end[1] - start[1] for start, end in pairs),
        "val_loss": info["history"][-1]["val_loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="keras2017", help="comma-separated presets")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per training (default: 4)")
    parser.add_argument("--repeats", type=int, default=2, help="pairs per preset (default: 2)")
    parser.add_argument("--data", help="local MNIST .npz or IDX folder")
    parser.add_argument(
        "--backend", choices=("jax", "tensorflow"), default="jax", help="(default: jax)"
    )
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is not timed)")
    if arguments.worker:
        preset, chunks = arguments.worker[0], arguments.worker[1] == "chunks"
        print(json.dumps(_worker(preset, chunks, arguments.epochs, arguments.data)))
        return
    print(f"command: python benchmarks/bench_chunks.py {' '.join(sys.argv[1:])}")
    print(f"backend: {arguments.backend}")
    print(f"{'preset':<24}{'path':<8}{'cpu s/epoch':>13}{'wall s/epoch':>14}{'val_loss':>11}")
    options = ["--epochs", str(arguments.epochs)]
    options += ["--data", arguments.data] if arguments.data else []
    for preset in arguments.presets.split(","):
        for _ in range(arguments.repeats):
            for path in ("loop", "chunks"):
                command = [sys.executable, __file__, "--worker", preset, path, *options]
                result = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    env={**os.environ, "KERAS_BACKEND": arguments.backend},
                )
                if result.returncode != 0:
                    raise SystemExit(f"{preset} {path} failed:\n{result.stderr[-2000:]}")
                row = json.loads(result.stdout.strip().splitlines()[-1])
                print(
                    f"{preset:<24}{path:<8}{row['cpu']:>13.2f}{row['wall']:>14.2f}"
                    f"{row['val_loss']:>11.4f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
