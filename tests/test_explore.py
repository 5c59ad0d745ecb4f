"""`vae-mnist explore`: its answers against the decoder, its refusals, and the page in Chromium.

The server's answers are checked against the run's decoder called here, as `plot decode` calls
it; malformed requests against a server in a thread, which must go on serving; the command's
one-line errors in-process; the command itself in a subprocess (Ctrl-C, nothing written). The
browser tests (marked ``browser``) drive Debian's headless ``chromium`` through its
``chromedriver`` with Selenium, and skip where either is missing; nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import folder_state, make_arrays

from vae_mnist import plotting
from vae_mnist.cli import main
from vae_mnist.commands.explore import HOST_VARIABLE, choose_host
from vae_mnist.config import RunConfig
from vae_mnist.data import model_inputs
from vae_mnist.explore.explorer import Explorer
from vae_mnist.explore.server import ExploreServer, is_loopback
from vae_mnist.model import build_vae
from vae_mnist.runs import RunError, RunPaths, TrainedRun, load_trained_run
from vae_mnist.settings import make_part
from vae_mnist.training import train

# One grey level: the page draws each pixel as round(255 · value).
PIXEL_TOLERANCE = 1 / 255
TRAIN_IMAGES, TEST_IMAGES = 200, 40
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Where the browser tests also save their screenshots (the README's come from here).
SCREENSHOT_VARIABLE = "VAE_MNIST_EXPLORE_SCREENSHOTS"
PAGE_RUNS_VARIABLE = "VAE_MNIST_EXPLORE_RUNS"


def tiny_data():
    arrays = make_arrays(train=TRAIN_IMAGES, test=TEST_IMAGES)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def tiny_config(**changes) -> RunConfig:
    # Tiny models: compiling with XLA would cost more than the steps it speeds up.
    return RunConfig().replace(
        hidden_layers=[16], batch_size=50, epochs=1, jit_compile=False, **changes
    )


# The other kinds of page: a wider Gaussian latent, categorical codes, an RBM prior's bits.
RUN_KINDS = {
    "wide": dict(dimension=4),
    "categorical": dict(
        posterior="categorical", prior="uniform", variables=3, categories=4, binarize="static"
    ),
    "rbm": dict(
        posterior="spike_exponential",
        prior="rbm",
        units=6,
        halves=[3, 3],
        chains=10,
        binarize="static",
        optimizer="adam",
    ),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, trained_run, session_npz) -> dict[str, tuple[Path, Path]]:
    """The session's 2-D Gaussian run, and one run of each other kind trained here, each with
    its data file."""
    folder = tmp_path_factory.mktemp("explore-runs")
    data = folder / "tiny.npz"
    np.savez(data, **make_arrays(train=TRAIN_IMAGES, test=TEST_IMAGES))
    found = {"gaussian": (trained_run, session_npz)}
    for name, changes in RUN_KINDS.items():
        train(tiny_config(**changes), tiny_data(), folder / name, verbose=0)
        found[name] = (folder / name, data)
    return found


def explorer_of(folder: Path, data_path: Path) -> Explorer:
    run = load_trained_run(folder)
    data = run.config.data.load(data_path)
    _, images = model_inputs(data, run.config.data.binarize, run.config.training.seed)
    return Explorer(run, images, data[1][1])


class Served:
    """An `ExploreServer` for one run in a thread of this process, and the run's decoder."""

    def __init__(self, explorer: Explorer) -> None:
        self.explorer = explorer
        self.server = ExploreServer(("127.0.0.1", 0), explorer)
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def decoded(self, code: np.ndarray) -> np.ndarray:
        """The decoder's images for decoder inputs ``(n, code_size)``, as `plot decode` makes
        them."""
        return plotting.predict(self.explorer.run.vae.image_decoder(), code)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_each(found: dict[str, tuple[Path, Path]]):
    servers = {name: Served(explorer_of(*run)) for name, run in found.items()}
    yield servers
    for server in servers.values():
        server.close()


@pytest.fixture(scope="module")
def served(runs):
    """A server per run kind, started once for the module."""
    yield from serve_each(runs)


@pytest.fixture(scope="module")
def page_runs(request) -> dict[str, tuple[Path, Path]]:
    """The runs that the browser tests open: the tiny ones, or with $VAE_MNIST_EXPLORE_RUNS
    the trained runs of that folder, one per kind (gaussian, wide, categorical, rbm), on
    $VAE_MNIST_DATA; so the README's screenshots were taken."""
    folder = os.environ.get(PAGE_RUNS_VARIABLE)
    if not folder:
        return request.getfixturevalue("runs")
    data = os.environ.get("VAE_MNIST_DATA")
    if not data:
        pytest.skip(f"${PAGE_RUNS_VARIABLE} needs $VAE_MNIST_DATA, the runs' data")
    return {name: (Path(folder) / name, Path(data)) for name in ("gaussian", *RUN_KINDS)}


@pytest.fixture(scope="module")
def page_served(request, page_runs):
    """Servers for the browser tests: the module's, unless other runs are to be opened."""
    if os.environ.get(PAGE_RUNS_VARIABLE):
        yield from serve_each(page_runs)
    else:
        yield request.getfixturevalue("served")


def request(
    url: str, body: bytes | str | None = None, method: str | None = None, headers=None
) -> tuple[int, dict]:
    """Status and JSON answer of one request (a 4xx as well as a 200)."""
    data = body.encode() if isinstance(body, str) else body
    call = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(call, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post(url: str, content) -> tuple[int, dict]:
    return request(url, json.dumps(content), headers={"Content-Type": "application/json"})


# -- what the parts tell the page --------------------------------------------------------------


@pytest.mark.parametrize(
    "section, layout",
    [
        ({"kind": "gaussian", "dimension": 5}, {"dimensions": 5}),
        ({"kind": "categorical", "variables": 3, "categories": 4}, {"variables": 3, "classes": 4}),
        ({"kind": "bernoulli", "units": 6}, {"variables": 6, "classes": 2}),
        ({"kind": "spike_exponential", "units": 7}, {"variables": 7, "classes": 2}),
    ],
)
def test_each_posterior_lays_out_its_code_for_the_controls(section, layout):
    posterior = make_part("posterior", section)
    assert posterior.code_layout() == layout
    if posterior.offers("codes"):
        # A code drawn from a prior gives back its classes.
        classes = np.random.default_rng(0).integers(0, layout["classes"], (5, layout["variables"]))
        np.testing.assert_array_equal(
            posterior.classes_of_code(posterior.code_of(classes)), classes
        )


def test_the_controls_start_at_the_prior_mean(served, tmp_path):
    _, info = request(served["wide"].url + "/api/info")
    assert info["continuous"]["prior_mean"] == [0, 0, 0, 0]
    # A VampPrior's mean is that of its mixture, not 0: against its samples' average.
    config = tiny_config(prior="vamp", pseudo_inputs=5, dimension=3)
    vae = build_vae(config)
    # The pseudo-inputs spread over [0, 1], so the components differ.
    pseudo_inputs = vae.prior.pseudo_input_weights
    pseudo_inputs.assign(np.random.default_rng(0).random(pseudo_inputs.shape).astype("float32"))
    images = make_arrays(train=1, test=20)["x_test"].reshape(20, -1) / 255
    run = TrainedRun(RunPaths(tmp_path / "unsaved"), config, vae)
    explorer = Explorer(run, images.astype("float32"), np.zeros(20, int))
    mean = explorer.description["continuous"]["prior_mean"]
    samples = vae.prior_part.sample(20_000, seed=1)
    np.testing.assert_allclose(mean, samples.mean(axis=0), atol=0.05)
    assert np.max(np.abs(mean)) > 0.05


# -- the answers, against the decoder -----------------------------------------------------------


def test_info_tells_the_page_what_the_parts_offer(served):
    status, info = request(served["gaussian"].url + "/api/info")
    assert status == 200
    assert info["posterior"]["capabilities"] == ["continuous", "density"]
    assert info["posterior"]["layout"] == {"dimensions": 2}
    assert "sample" in info["prior"]["capabilities"]
    assert info["epochs"] == 2 and info["preset"] == "keras2017" and info["metrics"] is None
    assert info["marked"] == [7, 9] and info["test_count"] == 100
    plane = info["continuous"]["plane"]
    assert plane["dimensions"] == [0, 1]
    z_mean = served["gaussian"].explorer.modes
    np.testing.assert_allclose(plane["points"], z_mean, atol=5e-4)
    for low, high in info["continuous"]["ranges"]:
        assert low <= -3 and high >= 3
    _, categorical = request(served["categorical"].url + "/api/info")
    assert categorical["posterior"]["layout"] == {"variables": 3, "classes": 4}
    assert "continuous" not in categorical and "codes" in categorical["posterior"]["capabilities"]


def test_the_header_holds_the_evaluated_numbers(trained_run, session_npz, tmp_path):
    folder = tmp_path / "evaluated"
    shutil.copytree(trained_run, folder)
    metrics = {"negative_elbo": 160.123, "kl": 5.5, "knn_accuracy": 0.5, "iwae_samples": 1000}
    metrics |= {"active_units": 2, "code_size": 2}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    rows = explorer_of(folder, session_npz).description["metrics"]
    assert rows == [
        ["negative ELBO (nats)", "160.12"],
        ["KL", "5.50"],
        ["kNN accuracy on the latent", "0.5000"],
        ["active latent units", "2 of 2"],
        ["importance samples K", "1000"],
    ]


def test_metrics_not_a_json_object_are_a_run_error(trained_run, session_npz, tmp_path):
    folder = tmp_path / "evaluated"
    shutil.copytree(trained_run, folder)
    (folder / "metrics.json").write_text("[1, 2]")
    with pytest.raises(RunError, match="metrics.json: not a vae-mnist metrics record"):
        explorer_of(folder, session_npz)


def test_a_wide_latent_orders_its_sliders_by_activity_and_planes_the_two_most_active(served):
    explorer = served["wide"].explorer
    _, info = request(served["wide"].url + "/api/info")
    variances = np.var(explorer.modes.astype(np.float64), axis=0)
    assert info["continuous"]["order"] == list(np.argsort(-variances, kind="stable"))
    assert info["continuous"]["plane"]["dimensions"] == sorted(info["continuous"]["order"][:2])
    np.testing.assert_allclose(info["continuous"]["activity"], variances, rtol=1e-6)


@pytest.mark.parametrize("z", [[1.69, 0.28], [-2.5, 3.0], [0, 0]])
def test_a_decoded_point_is_the_decoders_image_for_it(served, z):
    status, answer = post(served["gaussian"].url + "/api/decode", {"z": z})
    assert status == 200
    expected = served["gaussian"].decoded(np.array([z], np.float32))[0]
    np.testing.assert_array_equal(np.array(answer["image"], np.float32), expected)


def test_a_decoded_code_is_the_decoders_image_for_its_classes(served):
    categorical = served["categorical"]
    code = [3, 0, 2]
    status, answer = post(categorical.url + "/api/decode", {"code": code})
    assert status == 200
    expected = categorical.decoded(categorical.explorer.posterior.code_of(np.array([code])))[0]
    np.testing.assert_array_equal(np.array(answer["image"], np.float32), expected)


@pytest.mark.parametrize("kind", ["gaussian", "categorical", "rbm"])
def test_a_test_image_comes_with_its_reconstruction_and_code(served, kind):
    explorer = served[kind].explorer
    status, answer = request(served[kind].url + "/api/test/7")
    assert status == 200 and answer["index"] == 7
    assert answer["label"] == int(explorer.labels[7])
    np.testing.assert_array_equal(np.array(answer["image"], np.float32), explorer.images[7])
    mode = explorer.modes[[7]]
    expected = served[kind].decoded(mode)[0]
    np.testing.assert_array_equal(np.array(answer["reconstruction"], np.float32), expected)
    if kind == "gaussian":
        np.testing.assert_array_equal(np.array(answer["z"], np.float32), mode[0])
    else:
        # The code's classes give back the decoder input that was reconstructed.
        code = explorer.posterior.code_of(np.array([answer["code"]]))
        np.testing.assert_array_equal(code, mode)
    status, random_answer = request(served[kind].url + "/api/test/random")
    assert status == 200 and 0 <= random_answer["index"] < len(explorer.images)


def test_an_rbm_prior_sample_is_a_gibbs_sample_decoded(served):
    rbm = served["rbm"]
    status, answer = post(rbm.url + "/api/prior_sample", {"seed": 5})
    assert status == 200 and answer["seed"] == 5
    code = np.array([answer["code"]])
    assert code.shape == (1, 6) and set(np.unique(code)) <= {0, 1}
    # The prior's own sampler under the same seed gives the bits; the model decodes them as it
    # decodes any prior sample, smoothed (ζ ~ r(ζ|z): zero where a bit is off).
    vae = rbm.explorer.run.vae
    np.testing.assert_array_equal(rbm.explorer.posterior.code_of(code), vae.prior_part.sample(1, 5))
    decoder_input = vae.sample_codes(1, 5)
    np.testing.assert_array_equal(decoder_input > 0, code == 1)
    np.testing.assert_array_equal(
        np.array(answer["image"], np.float32), rbm.decoded(decoder_input)[0]
    )
    assert post(rbm.url + "/api/prior_sample", {"seed": 5})[1]["code"] == answer["code"]


# -- malformed requests: a 4xx answer each, and the server goes on --------------------------------

MALFORMED = {
    "point of the wrong length": ("POST", "/api/decode", '{"z": [1.0]}', 400, "2 numbers"),
    "point of text": ("POST", "/api/decode", '{"z": ["a", "b"]}', 400, "finite numbers"),
    "point of NaN": ("POST", "/api/decode", '{"z": [NaN, 1]}', 400, "not JSON"),
    "point of booleans": ("POST", "/api/decode", '{"z": [true, false]}', 400, "finite numbers"),
    "point too large": ("POST", "/api/decode", '{"z": [1e400, 0]}', 400, "finite numbers"),
    "point beyond float32": ("POST", "/api/decode", '{"z": [1e39, 0]}', 400, "finite numbers"),
    "point of a huge integer": (
        "POST",
        "/api/decode",
        '{"z": [' + "9" * 400 + ", 0]}",
        400,
        "finite",
    ),
    "prior sample not an object": ("POST", "/api/prior_sample", "[]", 400, "JSON object"),
    "code to a continuous latent": ("POST", "/api/decode", '{"code": [1, 2]}', 400, '"z"'),
    "not JSON": ("POST", "/api/decode", "z=1,2", 400, "not JSON"),
    "not an object": ("POST", "/api/decode", "[1, 2]", 400, "JSON object"),
    "index out of range": ("GET", "/api/test/100", None, 404, "0..99"),
    "negative index": ("GET", "/api/test/-1", None, 400, "an index"),
    "index not a number": ("GET", "/api/test/seven", None, 400, "an index"),
    "unknown path": ("GET", "/etc/passwd", None, 404, "nothing at"),
    "unknown api": ("POST", "/api/train", "{}", 404, "nothing to post"),
    "path climbing out": ("GET", "/../pyproject.toml", None, 404, "nothing at"),
    "another method": ("PUT", "/api/decode", '{"z": [0, 0]}', 405, "not served"),
    "another method where nothing is": ("DELETE", "/nothing", None, 404, "nothing at"),
    "a seed not a number": ("POST", "/api/prior_sample", '{"seed": "x"}', 400, "whole number"),
    "a seed misspelt": ("POST", "/api/prior_sample", '{"seeds": 1}', 400, 'not "seeds"'),
    "a body too large": ("POST", "/api/decode", " " * 300_000, 413, "too large"),
    # A field the run's latent does not read is refused, not ignored.
    "a point and a code": ("POST", "/api/decode", '{"z": [0, 0], "code": [1]}', 400, 'not "code"'),
    "decoding by GET": ("GET", "/api/decode", None, 405, "(POST is)"),
    "info by POST": ("POST", "/api/info", "{}", 405, "(GET is)"),
    # A long value is cut where the error says so.
    "a long text clipped": ("POST", "/api/decode", '{"z": ["' + "a" * 300 + '", 0]}', 400, "…"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_request_gets_a_4xx_and_the_server_keeps_serving(served, name):
    method, path, body, status, message = MALFORMED[name]
    url = served["gaussian"].url
    answered, answer = request(url + path, body, method=method)
    assert answered == status and message in answer["error"]
    assert "\n" not in answer["error"]
    assert request(url + "/api/info")[0] == 200
    assert post(url + "/api/decode", {"z": [0.5, 0.5]})[0] == 200


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("GET", "/api/decode", "POST"),
        ("POST", "/api/info", "GET, HEAD"),
        ("PUT", "/api/decode", "POST"),
        ("DELETE", "/api/info", "GET, HEAD"),
        ("PATCH", "/api/test/7", "GET, HEAD"),
    ],
)
def test_a_405_names_the_methods_its_path_serves(served, method, path, allowed):
    call = urllib.request.Request(served["gaussian"].url + path, data=b"{}", method=method)
    if method == "GET":
        call = urllib.request.Request(served["gaussian"].url + path, method=method)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(call, timeout=30)
    assert refused.value.code == 405 and refused.value.headers["Allow"] == allowed


@pytest.mark.parametrize(
    "request_line", [b"GARBAGE", b"GET /api/info HTTP/9.9", b"BREW /api/info HTTP/1.1"]
)
def test_a_request_the_standard_library_refuses_gets_a_json_error(served, request_line):
    url = served["gaussian"].url
    answer = raw_answer(url, request_line + b"\r\nHost: 127.0.0.1\r\n\r\n")
    body = answer.split(b"\r\n\r\n", 1)[-1]
    error = json.loads(body)["error"]
    assert error and "\n" not in error and b"<html" not in answer.lower()
    # A status line, where the request line had a version to answer in, is a 4xx.
    if answer.startswith(b"HTTP/"):
        assert answer.split()[1].startswith(b"4"), answer[:40]
    if request_line.startswith(b"BREW"):
        assert b"\r\nAllow: GET, HEAD\r\n" in answer
    assert request(url + "/api/info")[0] == 200


def raw_answer(url: str, request_bytes: bytes) -> bytes:
    """The whole answer of the server at `url` to a request written byte for byte (headers
    that urllib would write for itself, or refuse to)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request_bytes)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def raw_post_to_decode(url: str, length_headers: bytes) -> bytes:
    """The whole answer to a POST of a small body to /api/decode, written byte for byte with
    the Content-Length header lines given (which urllib would write for itself)."""
    return raw_answer(
        url,
        b"POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + length_headers
        + b"Connection: close\r\n\r\n"
        + b'{"z": [1, 2]}',
    )


# b"\xb2" is "²" in Latin-1, the headers' encoding: a digit to str.isdigit, not to int.
@pytest.mark.parametrize("length", [b"\xb2", b"-3", b"x"])
def test_a_content_length_that_is_not_a_count_gets_a_400_naming_it(served, length):
    url = served["gaussian"].url
    answer = raw_post_to_decode(url, b"Content-Length: " + length + b"\r\n")
    assert answer.split()[1] == b"400", answer[:60]
    assert "is not a count of bytes" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    # A POST with no length at all is told the header it lacks.
    answer = raw_post_to_decode(url, b"")
    assert answer.split()[1] == b"411", answer[:60]
    assert request(url + "/api/info")[0] == 200


@pytest.mark.parametrize(
    "headers, named",
    [
        (b"Content-Length: 13\r\nContent-Length: 2\r\n", b"two different Content-Lengths"),
        # Beside a Content-Length, the length was read and the encoding ignored.
        (b"Transfer-Encoding: chunked\r\nContent-Length: 13\r\n", b"Transfer-Encoding"),
    ],
)
def test_a_body_whose_end_is_in_doubt_gets_a_400(served, headers, named):
    url = served["gaussian"].url
    answer = raw_post_to_decode(url, headers)
    assert answer.split()[1] == b"400", answer[:60]
    assert named in answer
    assert request(url + "/api/info")[0] == 200


def test_a_number_of_thousands_of_digits_gets_a_400_in_the_pages_words(served):
    url = served["gaussian"].url
    call = urllib.request.Request(
        url + "/api/prior_sample",
        data=b'{"seed": ' + b"9" * 5000 + b"}",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(call, timeout=30)
    error = json.loads(refused.value.read())["error"]
    assert refused.value.code == 400
    assert "a whole number of 5000 digits" in error and "sys." not in error
    assert request(url + "/api/info")[0] == 200


def test_a_decoding_that_is_not_finite_is_refused(served, monkeypatch):
    gaussian = served["gaussian"]

    def overflowing(inputs, training=False):
        return np.full((len(inputs), 784), np.nan, np.float32)

    monkeypatch.setattr(gaussian.explorer, "generator", overflowing)
    status, answer = post(gaussian.url + "/api/decode", {"z": [3e38, -3e38]})
    assert status == 400 and "no finite image" in answer["error"]


@pytest.mark.parametrize(
    "code, message",
    [([1, 2], "3 classes"), ([0, 4, 0], "classes 0..3"), ([0, 1.5, 0], "classes 0..3")],
)
def test_a_malformed_code_gets_a_400(served, code, message):
    status, answer = post(served["categorical"].url + "/api/decode", {"code": code})
    assert status == 400 and message in answer["error"]


def test_requests_naming_another_host_are_refused(served):
    url = served["gaussian"].url + "/api/info"
    status, answer = request(
        url, headers={"Host": f"attacker.example:{served['gaussian'].server.port}"}
    )
    assert status == 403 and "loopback" in answer["error"]
    assert request(url, headers={"Host": "localhost"})[0] == 200
    # A header that is not a host and port is malformed, not a host to look up.
    ports = ("localhost:65536", "localhost:99999999999999999999")
    for header in ("[::1", "localhost:http", "[::1]x", *ports):
        status, answer = request(url, headers={"Host": header})
        assert status == 400 and "the Host header" in answer["error"], header
    # Two Host headers could name two hosts, a loopback one first: HTTP/1.1 answers 400.
    answer = raw_answer(
        served["gaussian"].url,
        b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: attacker.example\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 400") and b"2 Host headers" in answer
    assert request(url, headers={"Host": "localhost"})[0] == 200


def test_the_page_and_its_files_are_served_with_a_self_only_policy(served):
    with urllib.request.urlopen(served["gaussian"].url + "/", timeout=30) as response:
        page = response.read().decode()
        policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert 'src="page.js"' in page and 'href="page.css"' in page
    # Nothing from elsewhere: no address of another host in the page or its files.
    for path in ("/page.js", "/page.css"):
        with urllib.request.urlopen(served["gaussian"].url + path, timeout=30) as response:
            text = response.read().decode()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


# -- the command: its one-line errors, Ctrl-C, and a run folder left as it was ------------------


def test_a_missing_or_untrained_run_folder_is_one_line(tmp_path, capsys):
    assert main(["explore", "--run", str(tmp_path / "absent")]) == 1
    assert capsys.readouterr().err.strip().endswith("absent: no such run folder")
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    (untrained / "config.json").write_text('{"preset": "keras2017"}')
    assert main(["explore", "--run", str(untrained)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "holds no trained model" in error


def test_a_port_in_use_is_one_line(trained_run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["explore", "--run", str(trained_run), "--port", str(port)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"port {port} on 127.0.0.1 is in use" in error


def test_an_address_that_cannot_be_served_is_one_line_without_the_warning(trained_run, capsys):
    assert main(["explore", "--run", str(trained_run), "--host", "256.1.1.1"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "cannot serve on 256.1.1.1" in error
    assert "warning" not in error


@pytest.mark.parametrize("port", ["http", "80.5", "-1", "65536"])
def test_a_port_that_is_not_a_port_number_is_a_usage_error(port, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["explore", "--port", port])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "expected a port number 0..65535" in error


def test_a_host_other_than_loopback_needs_to_be_typed(trained_run, monkeypatch, capsys):
    monkeypatch.setenv(HOST_VARIABLE, "0.0.0.0")
    assert main(["explore", "--run", str(trained_run)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "not a loopback address; to serve" in error
    assert "--host 0.0.0.0" in error
    # Typed, it is taken; here the missing run folder stops it first, in one line.
    assert main(["explore", "--host", "0.0.0.0", "--run", "absent-run"]) == 1
    (refusal,) = capsys.readouterr().err.splitlines()
    assert "no such run folder" in refusal
    # Served, it is warned of once the address is bound.
    from vae_mnist.commands import explore as explore_command

    def interrupted(server, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(explore_command, "_load_explorer", lambda folder, data: None)
    monkeypatch.setattr(ExploreServer, "serve_forever", interrupted)
    assert main(["explore", "--host", "0.0.0.0", "--port", "0", "--run", str(trained_run)]) == 0
    (warning,) = capsys.readouterr().err.splitlines()
    assert "warning: serving on 0.0.0.0, which other machines may reach" in warning
    assert main(["explore", "--host", "", "--run", str(trained_run)]) == 1
    assert "--host needs an address" in capsys.readouterr().err


def test_the_refusals_come_before_any_backend_starts(tmp_path, trained_run):
    # A port in use is refused before the run loads, as a missing folder is: at once.
    script = (
        "import socket, sys\n"
        "from vae_mnist.cli import main\n"
        "taken = socket.socket(); taken.bind(('127.0.0.1', 0)); taken.listen()\n"
        "port = str(taken.getsockname()[1])\n"
        "codes = [main(['explore', '--run', sys.argv[1]]),\n"
        "         main(['explore', '--run', sys.argv[2], '--port', port])]\n"
        "print(codes, 'keras' in sys.modules, 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "absent"), str(trained_run)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip() == "[1, 1] False False", result.stderr
    assert "no such run folder" in result.stderr and "is in use" in result.stderr


def test_loopback_hosts_and_others():
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.2", "example.com", "", "[::1", "::1]"):
        assert not is_loopback(host), host
    assert choose_host(None, {}) == "127.0.0.1"
    assert choose_host(None, {HOST_VARIABLE: "::1"}) == "::1"
    assert choose_host("192.168.1.2", {HOST_VARIABLE: "::1"}) == "192.168.1.2"


def test_an_ipv6_loopback_server_serves_the_page_and_waits_for_its_run():
    try:
        server = ExploreServer(("::1", 0))
    except OSError as error:
        pytest.skip(f"no IPv6 loopback here ({error.strerror})")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with urllib.request.urlopen(f"http://[::1]:{server.port}/", timeout=30) as response:
            assert response.status == 200 and b"page.js" in response.read()
        status, answer = request(f"http://[::1]:{server.port}/api/info")
        assert status == 503 and "still loading" in answer["error"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_client_that_goes_away_is_not_a_traceback(capsys):
    server = ExploreServer(("127.0.0.1", 0))
    try:
        for error in (ConnectionResetError(104, "reset by peer"), BrokenPipeError(32, "pipe")):
            try:
                raise error
            except ConnectionError:
                server.handle_error(None, ("127.0.0.1", 1))
        assert capsys.readouterr().err == ""
        # Anything else is a bug worth its traceback.
        try:
            raise ValueError("a bug")
        except ValueError:
            server.handle_error(None, ("127.0.0.1", 1))
        assert "ValueError: a bug" in capsys.readouterr().err
    finally:
        server.server_close()


def start_command(run: Path, data: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """`vae-mnist explore` in a subprocess, and the address it prints once it serves."""
    env = {key: value for key, value in os.environ.items() if key != "VAE_MNIST_DATA"}
    process = subprocess.Popen(
        [sys.executable, "-m", "vae_mnist.cli", "explore", "--run", str(run), "--data", str(data)]
        + list(extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Python leaves Ctrl-C ignored where it starts ignored, as under a background job's
        # shell; the command must see it as a terminal sends it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    line = process.stdout.readline()
    if not line.startswith("serving "):
        process.kill()
        raise AssertionError(f"no address: {line!r} {process.stderr.read()[-2000:]}")
    return process, line.split(" at ", 1)[1].split()[0]


def stop_command(process: subprocess.Popen) -> tuple[int, str, str]:
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr


def modification_times(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*")}


def test_the_command_serves_stops_on_ctrl_c_and_writes_nothing(trained_run, session_npz):
    before, times = folder_state(trained_run), modification_times(trained_run)
    process, address = start_command(trained_run, session_npz)
    try:
        assert address.startswith("http://127.0.0.1:")
        assert request(address + "api/info")[0] == 200
        assert post(address + "api/decode", {"z": [1.0, -1.0]})[0] == 200
        assert request(address + "api/test/9")[0] == 200
        assert post(address + "api/decode", {"z": [1.0]})[0] == 400
    finally:
        returncode, stdout, stderr = stop_command(process)
    assert returncode == 0 and stdout.strip() == "stopped"
    assert "Traceback" not in stderr
    assert folder_state(trained_run) == before and modification_times(trained_run) == times


# -- the page in a real browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, driven by Debian's chromedriver; skipped where either is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            pytest.skip(f"{path} is missing (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    # Never let Selenium Manager look for (or download) a browser or a driver.
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


PAGE_STATE = (
    "const canvas = document.getElementById('decoded');"
    "const data = canvas.getContext('2d').getImageData(0, 0, 28, 28).data;"
    "return {settled: window.explore.settled, shown: window.explore.shown,"
    " decodes: window.explore.decodes,"
    " grey: Array.from(data).filter((_, index) => index % 4 === 0),"
    " error: document.getElementById('error').textContent};"
)


def settled_after(driver, decodes: int, condition=lambda page: True) -> dict:
    """Wait until the page has drawn more than `decodes` decodings, shows the code its controls
    hold, and meets `condition`; then the request drawn and the decoded canvas's grey levels,
    read at once."""
    from selenium.webdriver.support.ui import WebDriverWait

    found = {}

    def ready(driver) -> bool:
        page = driver.execute_script(PAGE_STATE)
        if page["settled"] and page["decodes"] > decodes and condition(page):
            found.update(page)
            return True
        return False

    WebDriverWait(driver, 30).until(ready)
    return found


def text_becomes(driver, element_id: str, condition) -> bool:
    """Wait (as `settled_after`, up to 30 s) until the element's text meets `condition`."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, 30).until(
            lambda driver: condition(driver.find_element("id", element_id).text)
        )
    except TimeoutException:
        return False
    return True


def open_page(driver, address: str) -> dict:
    driver.get(address)
    return settled_after(driver, 0)


def assert_page_shows_the_decoders_image(page: dict, expected: np.ndarray) -> None:
    assert page["error"] == ""
    grey = np.array(page["grey"], np.float64) / 255
    assert np.max(np.abs(grey - np.ravel(expected))) <= PIXEL_TOLERANCE


def save_screenshot(driver, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    folder = os.environ.get(SCREENSHOT_VARIABLE)
    if folder:
        from PIL import Image

        Path(folder).mkdir(parents=True, exist_ok=True)
        # A palette of 256 colours keeps the repository's copy small; the page has few more.
        with Image.open(path) as image:
            small = image.convert("RGB").quantize(256)
            small.save(Path(folder) / path.name, optimize=True)


@pytest.mark.browser
def test_the_pointer_over_the_plane_decodes_each_point_live(browser, page_runs, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    run, data = page_runs["gaussian"]
    process, address = start_command(run, data)
    try:
        page = open_page(browser, address)
        decoder = load_trained_run(run).vae.image_decoder()
        info = browser.execute_script("return window.explore.info")
        ranges = [info["continuous"]["ranges"][dimension] for dimension in (0, 1)]
        plane = browser.find_element("id", "plane")
        # All of it in view: the pointer's offsets count from the centre of its visible part.
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", plane)
        width = browser.execute_script("return arguments[0].getBoundingClientRect().width", plane)
        images = []
        for offset in ((-120, 80), (0, 0), (150, -130)):
            # One move, no steps between: the page then decodes the point under the pointer.
            ActionChains(browser, duration=0).move_to_element_with_offset(plane, *offset).perform()
            expected = [
                (low + high) / 2 + sign * pixels / width * (high - low)
                for pixels, (low, high), sign in zip(offset, ranges, (1, -1), strict=True)
            ]

            def under_the_pointer(page, expected=expected) -> bool:
                # Within two pixels (the canvas's border is one).
                return all(
                    abs(value - wanted) <= 2 * (high - low) / width + 0.005
                    for value, wanted, (low, high) in zip(
                        page["shown"]["z"], expected, ranges, strict=True
                    )
                )

            page = settled_after(browser, page["decodes"], under_the_pointer)
            z = page["shown"]["z"]
            expected_image = plotting.predict(decoder, np.array([z], np.float32))[0]
            assert_page_shows_the_decoders_image(page, expected_image)
            images.append(np.array(page["grey"]))
        assert not np.array_equal(images[0], images[2])
        # A click pins the point, and its command decodes exactly that point.
        ActionChains(browser).click().perform()
        page = settled_after(browser, page["decodes"] - 1)
        command = browser.find_element("id", "command").text
        assert command.startswith(f"vae-mnist plot decode --run {run} --z ")
        typed = [float(text) for text in command.split("--z ")[1].split()]
        assert typed == page["shown"]["z"]
        # The blog's nines: test images 7 and 9 shown, their reconstruction and code placed.
        browser.find_element("id", "test-index").clear()
        browser.find_element("id", "test-index").send_keys("9")
        browser.find_element("css selector", "#test-form button[type=submit]").click()
        page = settled_after(browser, page["decodes"])
        # The command line is written after its request answers: wait for it, as for a decode.
        assert text_becomes(browser, "test-command", lambda text: text.endswith("--index 9"))
        # Its class with the article it is said with ("a 9", "an 8").
        label = int(np.load(data)["y_test"][9])
        article = "an" if label == 8 else "a"
        caption = browser.find_element("id", "test-caption").text
        assert caption.startswith(f"test image 9 ({article} {label});"), caption
        names = browser.execute_script(
            "return ['8', '9', 'Ankle boot', 'Bag'].map((name) => withArticle(name))"
        )
        assert names == ["an 8", "a 9", "an Ankle boot", "a Bag"]
        save_screenshot(browser, tmp_path, "explore_gaussian")
    finally:
        returncode, _, stderr = stop_command(process)
    assert returncode == 0, stderr


# Holds the page's first request for a test image back by a second and a half, and says when
# its answer has been handed to the page.
HOLD_THE_FIRST_TEST_IMAGE = """
const pageFetch = window.fetch.bind(window);
window.heldAnswer = "none";
window.fetch = async (path, options) => {
  if (window.heldAnswer !== "none" || !String(path).includes("/api/test/")) {
    return pageFetch(path, options);
  }
  window.heldAnswer = "held";
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const response = await pageFetch(path, options);
  setTimeout(() => { window.heldAnswer = "answered"; }, 200);
  return response;
};
"""


@contextlib.contextmanager
def first_test_image_held(driver, url: str):
    """Open the page at `url` with its first request for a test image held back, and wait until
    it is; the function yielded waits until that answer has reached the page."""
    from selenium.webdriver.support.ui import WebDriverWait

    def wait_until_held_answer_is(state: str) -> None:
        WebDriverWait(driver, 30).until(
            lambda driver: driver.execute_script("return window.heldAnswer") == state
        )

    held = driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": HOLD_THE_FIRST_TEST_IMAGE}
    )
    try:
        driver.get(url)
        wait_until_held_answer_is("held")
        yield lambda: wait_until_held_answer_is("answered")
    finally:
        driver.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": held["identifier"]}
        )


@pytest.mark.browser
def test_an_index_typed_at_the_start_is_not_replaced_by_the_first_image(browser, page_served):
    """The page shows a test image as it starts; an index typed and shown before that answer
    arrives keeps its image, caption and command."""
    with first_test_image_held(browser, page_served["wide"].url + "/") as wait_for_the_answer:
        browser.find_element("id", "test-index").clear()
        browser.find_element("id", "test-index").send_keys("5")
        browser.find_element("css selector", "#test-form button[type=submit]").click()
        assert text_becomes(browser, "test-command", lambda text: text.endswith("--index 5"))
        wait_for_the_answer()
    assert browser.find_element("id", "test-index").get_attribute("value") == "5"
    assert browser.find_element("id", "test-caption").text.startswith("test image 5 (")
    assert browser.find_element("id", "test-command").text.endswith("--index 5")


@pytest.mark.browser
def test_a_code_set_at_the_start_is_not_replaced_by_the_first_images_code(browser, page_served):
    """A discrete run's page places its first test image's code; a code chosen by hand before
    that answer arrives stays in the controls."""
    from selenium.webdriver.support.ui import Select

    served = page_served["categorical"]
    info = request(served.url + "/api/info")[1]
    first = info["marked"][0] if info["marked"] else 0
    first_code = request(served.url + f"/api/test/{first}")[1]["code"]
    # A class for variable 0 that neither the first image's code nor the page's starting code
    # (all zeros, where choosing 0 again would change nothing) has.
    classes = info["posterior"]["layout"]["classes"]
    chosen = next(k for k in range(1, classes) if k != first_code[0])
    with first_test_image_held(browser, served.url + "/") as wait_for_the_answer:
        selector = browser.find_element("css selector", "#codes select[data-variable='0']")
        Select(selector).select_by_value(str(chosen))
        wait_for_the_answer()
    code = browser.execute_script("return state.code")
    assert code[0] == chosen and code[1:] == [0] * (len(code) - 1)
    assert browser.find_element("id", "test-caption").text.startswith(f"test image {first} (")


@pytest.mark.browser
def test_the_sliders_of_a_wide_latent_decode_as_they_move(browser, page_served, tmp_path):
    from selenium.webdriver.common.keys import Keys

    wide = page_served["wide"]
    page = open_page(browser, wide.url + "/")
    sliders = browser.find_elements("css selector", "#sliders input[type=range]")
    assert len(sliders) == wide.explorer.posterior.code_size > 2
    order = [int(slider.get_attribute("data-dimension")) for slider in sliders]
    assert order == browser.execute_script("return window.explore.info.continuous.order")
    last = sliders[-1]
    for _ in range(30):
        last.send_keys(Keys.ARROW_RIGHT)
    page = settled_after(
        browser, page["decodes"], lambda page: page["shown"]["z"][order[-1]] == 0.3
    )
    z = page["shown"]["z"]
    assert [value for position, value in enumerate(z) if position != order[-1]] == [0] * (
        len(z) - 1
    )
    assert_page_shows_the_decoders_image(page, wide.decoded(np.array([z], np.float32))[0])
    save_screenshot(browser, tmp_path, "explore_wide")


@pytest.mark.browser
def test_the_selectors_of_a_categorical_code_decode_as_they_change(browser, page_served, tmp_path):
    from selenium.webdriver.support.ui import Select

    categorical = page_served["categorical"]
    page = open_page(browser, categorical.url + "/")
    selectors = browser.find_elements("css selector", "#codes select")
    assert len(selectors) == categorical.explorer.posterior.variable_count
    classes = categorical.explorer.posterior.classes
    # The page starts from test image 7's code.
    assert page["shown"]["code"] == request(categorical.url + "/api/test/7")[1]["code"]
    images = []
    for variable in (0, 2):
        value = (page["shown"]["code"][variable] + 1) % classes
        Select(selectors[variable]).select_by_value(str(value))
        page = settled_after(
            browser,
            page["decodes"],
            lambda page, variable=variable, value=value: page["shown"]["code"][variable] == value,
        )
        code = page["shown"]["code"]
        expected = categorical.decoded(categorical.explorer.posterior.code_of(np.array([code])))
        assert_page_shows_the_decoders_image(page, expected[0])
        images.append(np.array(page["grey"]))
    assert not np.array_equal(images[0], images[1])
    assert browser.find_element("id", "command").text.endswith(f"--code {','.join(map(str, code))}")
    save_screenshot(browser, tmp_path, "explore_categorical")


@pytest.mark.browser
def test_an_rbm_page_toggles_units_and_draws_gibbs_samples(browser, page_served, tmp_path):
    rbm = page_served["rbm"]
    page = open_page(browser, rbm.url + "/")
    toggles = browser.find_elements("css selector", "#codes input[type=checkbox]")
    assert len(toggles) == rbm.explorer.posterior.variable_count
    flipped = 1 - page["shown"]["code"][4]
    toggles[4].click()
    page = settled_after(browser, page["decodes"], lambda page: page["shown"]["code"][4] == flipped)
    code = page["shown"]["code"]
    assert int(toggles[4].is_selected()) == flipped
    expected = rbm.decoded(rbm.explorer.posterior.code_of(np.array([code])))[0]
    assert_page_shows_the_decoders_image(page, expected)
    browser.find_element("id", "prior-sample").click()
    page = settled_after(browser, page["decodes"])
    code = page["shown"]["code"]
    checked = [int(toggle.is_selected()) for toggle in toggles]
    assert checked == code
    expected = rbm.decoded(rbm.explorer.posterior.code_of(np.array([code])))[0]
    assert_page_shows_the_decoders_image(page, expected)
    save_screenshot(browser, tmp_path, "explore_rbm")
