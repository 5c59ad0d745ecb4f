"""The explore page's web server: the page's own files, and a JSON API over an `Explorer`.

    GET  /                   the page (``page.html``, ``page.js``, ``page.css`` beside it)
    GET  /api/info           the run: its parts' capabilities, layout, scatter, header numbers
    POST /api/decode         ``{"z": [...]}`` or ``{"code": [...]}`` -> ``{"image": [...]}``
    GET  /api/test/<index>   a test image (or ``random``), its reconstruction and its code
    POST /api/prior_sample   ``{"seed": N}`` or ``{}`` -> a prior sample's code and image

Every file the page uses is served from here and its Content-Security-Policy allows nothing
else, so the page works with no network. A malformed request gets a 4xx answer with a one-line
``{"error": ...}``, and the server goes on serving. Nothing is written anywhere.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vae_mnist.explore.explorer import Explorer

# The page's files, by path: (file in the package's static folder, content type).
STATIC_FILES = {
    "/": ("page.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
}
# The largest request body read: a code of thousands of numbers fits many times over.
LARGEST_BODY = 256 * 1024
SECURITY_HEADERS = {
    # Scripts, styles and requests only from this server: the page fetches nothing elsewhere.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
LOOPBACK_NAMES = ("localhost",)
# A TCP port is 16 bits.
LARGEST_PORT = 65535


# The methods that GET's paths serve (POST's are POSTED_PATHS); a 405 names its path's.
GOT_METHODS = "GET, HEAD"
# What a POST may ask, by path: the `Explorer` method that answers it.
POSTED_PATHS = {"/api/decode": "decode", "/api/prior_sample": "prior_sample"}


def clipped(text: str, limit: int = 200) -> str:
    """`text` cut to at most `limit` characters, an ellipsis saying where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RequestError(ValueError):
    """A request the page (or anyone) sent that cannot be answered; `status` is its HTTP code."""

    def __init__(self, message: str, status: int = 400, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        # A 405's methods that the path does serve, for its Allow header.
        self.allow = allow


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is loopback."""
    bracketed = host.startswith("[") and host.endswith("]")
    name = (host[1:-1] if bracketed else host).lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_of(headers: list[str]) -> str:
    """The host name of a request's one ``Host`` header: ``127.0.0.1:8080`` and
    ``[::1]:8080`` alike; a header that is neither (``[::1``, ``localhost:http``, a port past
    65535), or more than one, is a 400 (HTTP/1.1 asks it: two could name two hosts)."""
    if len(headers) > 1:
        raise RequestError(f"{len(headers)} Host headers: a request names one host")
    header = headers[0] if headers else ""
    match = re.fullmatch(r"(\[[^\]]*\]|[^:\[\]]*)(?::(\d{1,5}))?", header.strip())
    if match is None or int(match.group(2) or 0) > LARGEST_PORT:
        raise RequestError(clipped(f"the Host header {header!r} is not a host and port"))
    return match.group(1)


def _read_static(name: str) -> bytes:
    return (resources.files("vae_mnist.explore") / "static" / name).read_bytes()


class ExploreServer(ThreadingHTTPServer):
    """A threaded HTTP server for one `Explorer`, set once the run is loaded.

    Bound to a loopback address it answers only requests that name a loopback host, so a web
    page elsewhere cannot reach it through a name that resolves to this machine.
    """

    daemon_threads = True
    # Refuse a port in use rather than share it (the standard library's default is to reuse).
    allow_reuse_address = False

    def __init__(self, address: tuple[str, int], explorer: Explorer | None = None) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, ExploreHandler)
        self.explorer = explorer
        self.loopback_only = is_loopback(address[0])
        self.static = {
            path: (_read_static(name), content_type)
            for path, (name, content_type) in STATIC_FILES.items()
        }

    @property
    def port(self) -> int:
        return self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away before its answer was written is routine (a page closed, a
        `curl | head`), not worth the standard library's traceback; anything else keeps it."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class ExploreHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests (see the module)."""

    server: ExploreServer
    server_version = "vae-mnist-explore"
    # Keep-alive: the page's decodings reuse one connection, which saves a handshake each.
    protocol_version = "HTTP/1.1"
    # Seconds a connection may stay silent before it is closed (the page opens another).
    timeout = 120

    def setup(self) -> None:
        super().setup()
        # Send each small answer at once: with Nagle's algorithm, the answer's body would wait
        # for the acknowledgement of its headers, which the client delays (delayed ACK).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        self._answer(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self._post)

    def _refuse_method(self) -> None:
        self._answer(self._not_allowed)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method  # noqa: N815

    def _not_allowed(self) -> tuple[int, Any]:
        path = self.path.split("?", 1)[0]
        allowed = self._served_at(path)
        if allowed is None:
            raise RequestError(f"nothing at {clipped(path, 100)}", 404)
        raise RequestError(self._not_served(path, allowed), 405, allow=allowed)

    def _not_served(self, path: str, allowed: str) -> str:
        served = "GET is" if allowed == GOT_METHODS else f"{allowed} is"
        return f"{clipped(str(self.command), 40)} is not served at {clipped(path, 100)} ({served})"

    def _served_at(self, path: str) -> str | None:
        """The methods `path` serves, as a 405's Allow header names them; None where nothing
        is served there."""
        if path in POSTED_PATHS:
            return "POST"
        return GOT_METHODS if self._is_got(path) else None

    def _is_got(self, path: str) -> bool:
        """Whether `path` is one that GET serves (the page's files, the info, a test image)."""
        return path in self.server.static or path == "/api/info" or path.startswith("/api/test/")

    def _get(self) -> tuple[int, Any]:
        path = self.path.split("?", 1)[0]
        if path in self.server.static:
            return HTTPStatus.OK, self.server.static[path]
        if path == "/api/info":
            return HTTPStatus.OK, self._explorer().description
        if path.startswith("/api/test/"):
            return HTTPStatus.OK, self._explorer().test_image(path.removeprefix("/api/test/"))
        if path in POSTED_PATHS:
            raise RequestError(self._not_served(path, "POST"), 405, "POST")
        raise RequestError(f"nothing at {clipped(path, 100)}", 404)

    def _post(self) -> tuple[int, Any]:
        path = self.path.split("?", 1)[0]
        if path not in POSTED_PATHS:
            if self._is_got(path):
                raise RequestError(self._not_served(path, GOT_METHODS), 405, GOT_METHODS)
            raise RequestError(f"nothing to post to at {clipped(path, 100)}", 404)
        return HTTPStatus.OK, getattr(self._explorer(), POSTED_PATHS[path])(self._json_body())

    def _explorer(self) -> Explorer:
        if self.server.explorer is None:
            raise RequestError("the run is still loading; try again in a moment", 503)
        return self.server.explorer

    def _json_body(self) -> Any:
        if self.headers.get_all("Transfer-Encoding"):
            # A body in chunks is not read here, and beside a Content-Length it leaves the
            # body's end in doubt (RFC 9112, section 6.3): refused (and the connection closed).
            raise RequestError("a body sent in a Transfer-Encoding: send it with a Content-Length")
        lengths = set(self.headers.get_all("Content-Length") or [])
        if len(lengths) > 1:
            # Two lengths leave the body's end in doubt (RFC 9110, section 8.6).
            raise RequestError("a request with two different Content-Lengths")
        length_text = next(iter(lengths), None)
        if length_text is None:
            raise RequestError("a POST needs a Content-Length", 411)
        # isascii too: str.isdigit() takes "²", which int() does not.
        if not (length_text.isascii() and length_text.isdigit()):
            raise RequestError(clipped(f"Content-Length {length_text!r} is not a count of bytes"))
        length = int(length_text)
        if length > LARGEST_BODY:
            raise RequestError(f"a request body of {length} bytes is too large", 413)
        body = self.rfile.read(length)
        try:
            return json.loads(body, parse_constant=_refuse_constant, parse_int=_whole_number)
        except (ValueError, RecursionError) as error:
            raise RequestError(clipped(f"the request body is not JSON ({error})")) from None

    def _answer(self, route) -> None:
        """Answer by `route`, every refusal as a 4xx JSON error, anything else as a 500."""
        allow = None
        try:
            host = _host_of(self.headers.get_all("Host") or [])
            if self.server.loopback_only and not is_loopback(host):
                raise RequestError("this server answers requests for a loopback host only", 403)
            status, content = route()
        except RequestError as error:
            status, content = error.status, {"error": str(error)}
            allow = error.allow
        except Exception as error:  # A bug must not stop the server: answer it, and report it.
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            print(
                f"vae-mnist explore: {self.command} {self.path[:100]}: {message}", file=sys.stderr
            )
            status, content = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": message}
        if isinstance(content, tuple):
            body, content_type = content
        else:
            body, content_type = json.dumps(content, allow_nan=False).encode(), "application/json"
        self._send(status, body, content_type, allow)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (a malformed request line, headers too long, a
        method no handler names) as the API's one-line JSON error, not its HTML page."""
        allow = None
        if code == HTTPStatus.NOT_IMPLEMENTED:
            # A method no handler names (TRACE, BREW): refused as the methods it does name are.
            path = self.path.split("?", 1)[0]
            allow = self._served_at(path)
            if allow is None:
                code, message = HTTPStatus.NOT_FOUND, f"nothing at {clipped(path, 100)}"
            else:
                code, message = HTTPStatus.METHOD_NOT_ALLOWED, self._not_served(path, allow)
        text = message or self.responses.get(code, ("error",))[0]
        body = json.dumps({"error": clipped(text)}).encode()
        self._send(code, body, "application/json", allow)

    def _send(self, status: int, body: bytes, content_type: str, allow: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if allow:
            self.send_header("Allow", allow)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        if status >= 400:
            # A refused request may have left part of its body unread: start afresh.
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the library's name)
        """Quiet: a page that decodes as the pointer moves would fill the terminal."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


# No number the page sends has more digits than this; far longer ones would reach Python's own
# limit on converting digits, whose message names an interpreter setting.
LONGEST_WHOLE_NUMBER = 400


def _whole_number(text: str) -> int:
    if len(text.lstrip("-")) > LONGEST_WHOLE_NUMBER:
        raise ValueError(f"a whole number of {len(text)} digits")
    return int(text)
