"""The explore page's decode latency: the server's round trip against the decoder call inside it.

`vae-mnist explore` decodes the point under the pointer as it moves; the page asks for about 50
ms per update. For each preset and backend (a fresh process each), this serves an untrained
model of the preset (the latency does not depend on the weights) on 127.0.0.1 in a thread, and
times, over the same random codes,

(a) the decoder call alone, as the server makes it (`plotting.predict` on one code), and
(b) the page's round trip: ``POST /api/decode`` on one kept-alive connection, as the browser
    sends it, the JSON answer of 784 pixels read and parsed,

after a warm-up of a few calls each. It prints the median and the 95th percentile of each in
milliseconds, and the round trip's median over the decoder's (what HTTP and JSON add).

    python benchmarks/bench_explore.py --backend all --presets keras2017,gumbel2017,dvae2017-small
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_train import add_backend_argument, chosen_backends, run_worker

WARM_UP = 20
# The budget for one update of the page, on 2 cores.
BUDGET_MS = 50.0


def _request(posterior, rng) -> dict:
    """A random decoding request, as the page sends it."""
    if posterior.offers("continuous"):
        return {"z": [round(float(value), 2) for value in rng.normal(size=posterior.code_size)]}
    layout = posterior.code_layout()
    return {
        "code": [int(value) for value in rng.integers(layout["classes"], size=layout["variables"])]
    }


def _worker(preset: str, requests: int) -> dict:
    """Time both paths in this process for `preset`; the measurements as JSON-ready numbers."""
    import keras
    import numpy as np

    from vae_mnist import plotting
    from vae_mnist.explore.explorer import Explorer
    from vae_mnist.explore.server import ExploreServer
    from vae_mnist.model import build_vae
    from vae_mnist.presets import preset_config
    from vae_mnist.runs import RunPaths, TrainedRun

    keras.utils.set_random_seed(1)
    config = preset_config(preset)
    vae = build_vae(config)
    rng = np.random.default_rng(0)
    # Stand-in test images: the scatter's encoding at start-up is not timed.
    images = rng.random((1000, config.data.pixels), dtype=np.float32)
    labels = rng.integers(0, 10, 1000)
    with tempfile.TemporaryDirectory() as folder:
        explorer = Explorer(TrainedRun(RunPaths(Path(folder)), config, vae), images, labels)
    server = ExploreServer(("127.0.0.1", 0), explorer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # The same requests for both paths.
    bodies = [_request(explorer.posterior, rng) for _ in range(requests + WARM_UP)]
    decoder_inputs = [_decoder_input(explorer, body) for body in bodies]

    decoder_times = []
    for position, code in enumerate(decoder_inputs):
        started = time.perf_counter()
        plotting.predict(explorer.generator, code)
        if position >= WARM_UP:
            decoder_times.append(time.perf_counter() - started)

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    round_trips = []
    for position, body in enumerate(bodies):
        payload = json.dumps(body)
        started = time.perf_counter()
        connection.request("POST", "/api/decode", payload, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        if position >= WARM_UP:
            round_trips.append(time.perf_counter() - started)
        if response.status != 200 or len(answer["image"]) != config.data.pixels:
            raise SystemExit(f"unexpected answer {response.status}: {str(answer)[:200]}")
    connection.close()
    server.shutdown()
    milliseconds = {
        "decoder": 1000 * np.array(decoder_times),
        "round_trip": 1000 * np.array(round_trips),
    }
    return {
        "backend": keras.backend.backend(),
        **{
            f"{name}_{statistic}": float(np.percentile(values, percentile))
            for name, values in milliseconds.items()
            for statistic, percentile in (("median", 50), ("p95", 95))
        },
    }


def _decoder_input(explorer, body: dict):
    import numpy as np

    if "z" in body:
        return np.array([body["z"]], np.float32)
    return explorer.posterior.code_of(np.array([body["code"]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_backend_argument(parser)
    parser.add_argument(
        "--presets", default="keras2017", help="comma-separated presets (default: keras2017)"
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="timed decodings per path (default: 200)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.requests < 1:
        parser.error("--requests must be positive")
    if arguments.worker:
        print(json.dumps(_worker(arguments.worker, arguments.requests)))
        return
    backends = chosen_backends(arguments)
    print(f"command: python benchmarks/bench_explore.py {' '.join(sys.argv[1:])}")
    header = (
        f"{'preset':<12}{'backend':<12}{'decoder ms':>12}{'p95':>8}"
        f"{'round trip ms':>15}{'p95':>8}{'ratio':>8}"
    )
    print(header)
    print("-" * len(header))
    for preset in arguments.presets.split(","):
        for backend in backends:
            result = run_worker(__file__, backend, preset, ["--requests", str(arguments.requests)])
            print(
                f"{preset:<12}{backend:<12}{result['decoder_median']:>12.2f}"
                f"{result['decoder_p95']:>8.2f}{result['round_trip_median']:>15.2f}"
                f"{result['round_trip_p95']:>8.2f}"
                f"{result['round_trip_median'] / result['decoder_median']:>7.1f}x"
            )
    print(f"(the page's budget for an update: {BUDGET_MS:.0f} ms)")


if __name__ == "__main__":
    main()
