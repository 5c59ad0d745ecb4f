"""`vae-mnist explore`: a live page of a trained run's latent space, served on this machine.

As ``tensorboard --logdir`` does, it binds a loopback address by default, on a free port unless
``--port`` names one, prints the page's address and serves until Ctrl-C. An address other
machines can reach is served only when typed as ``--host``; ``$VAE_MNIST_EXPLORE_HOST`` may
choose among loopback addresses alone. The port is taken before the run loads, so a port in use
is refused at once; the run folder is only read.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from vae_mnist.errors import UsageError
from vae_mnist.runs import check_trained_run, load_trained_run

if TYPE_CHECKING:
    from vae_mnist.explore.server import ExploreServer

DEFAULT_HOST = "127.0.0.1"
HOST_VARIABLE = "VAE_MNIST_EXPLORE_HOST"


def choose_host(given: str | None, environment: Mapping[str, str]) -> str:
    """The address to serve on: `given` (``--host``) as typed, else a loopback default."""
    from vae_mnist.explore.server import is_loopback

    if given is not None:
        if not given.strip():
            # An empty address would bind every interface.
            raise UsageError("--host needs an address or a host name, got an empty one")
        return given
    host = environment.get(HOST_VARIABLE) or DEFAULT_HOST
    if not is_loopback(host):
        raise UsageError(
            f"${HOST_VARIABLE} names {host}, which is not a loopback address; to serve the page "
            f"to other machines, type --host {host}"
        )
    return host


def page_address(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def open_server(host: str, port: int) -> ExploreServer:
    """An `ExploreServer` bound to (host, port), or a one-line `UsageError` saying why not."""
    from vae_mnist.explore.server import ExploreServer

    try:
        return ExploreServer((host, port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {host} is in use: choose another with --port, or leave --port "
                "out for a free one"
            ) from None
        if error.errno == errno.EACCES:
            raise UsageError(f"port {port} on {host} needs privileges: choose another") from None
        reason = error.strerror or str(error)
        raise UsageError(f"cannot serve on {host} port {port}: {reason}") from None
    except (TypeError, UnicodeError):
        # The socket module cannot encode the name (too long a label, or not text).
        raise UsageError(f"--host {host!r} is not a host name or address") from None


def run(arguments: argparse.Namespace, program: str) -> None:
    from vae_mnist.explore.server import is_loopback

    host = choose_host(arguments.host, os.environ)
    paths = check_trained_run(arguments.run)
    server = open_server(host, arguments.port)
    # Warned once the address is bound, so an address that cannot be served is one line.
    if not is_loopback(host):
        print(
            f"{program} explore: warning: serving on {host}, which other machines may reach; "
            "the page has no password",
            file=sys.stderr,
        )
    try:
        server.explorer = _load_explorer(paths.folder, arguments.data)
        address = page_address(host, server.port)
        print(f"serving {paths.folder} at {address} (Ctrl-C stops)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()


def _load_explorer(folder, data_path: str | None):
    """The run's model and its test set as the model sees them, in an `Explorer`."""
    from vae_mnist.explore.explorer import Explorer

    run = load_trained_run(folder)
    config = run.config
    data = config.data.load(data_path)
    _, test_images = config.data.model_inputs(data, config.training.seed)
    (_, _), (_, test_labels) = data
    return Explorer(run, test_images, test_labels)
