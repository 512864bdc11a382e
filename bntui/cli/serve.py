"""`bntui serve`: the app in a web browser, through textual-serve.

A small web server (127.0.0.1:8000 unless told otherwise) serves one page; every browser
tab that opens it gets its own app process (`python -m bntui ...` in this same Python),
driven over a websocket.  A teacher can put it on a projector, or, with `--host 0.0.0.0`,
let a class open it.

Three changes to textual-serve's stock server, all through its public methods:

* the page asks for nothing but this server: textual-serve's page links a web font on a
  font CDN, which in a classroom without internet would hold the page up (the terminal
  falls back to the local monospace font, as it does when the CDN is unreachable);
* the page's script and websocket addresses follow the address the browser used, so a
  server bound to 0.0.0.0 works for everyone who opens it by the machine's name or address;
* a websocket opened by a page of another site is refused (it could otherwise drive the
  app, which can save and open files), and so is a request for a loopback-only server that
  names a host other than a loopback address (DNS rebinding).
"""

from __future__ import annotations

import errno
import ipaddress
import re
import shlex
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
TITLE = "bntui"

# A <link> element and its href (textual-serve's page links a CDN web font).
_LINK = re.compile(r"""<link\b[^>]*?\bhref\s*=\s*["']([^"']*)["'][^>]*>\s*""", re.IGNORECASE)


def drop_foreign_links(page: str, own_host: str) -> str:
    """`page` without the <link> elements that point at a host other than `own_host`."""

    def keep(match: re.Match[str]) -> str:
        netloc = urlsplit(match.group(1)).netloc
        return match.group(0) if not netloc or netloc.lower() == own_host.lower() else ""

    return _LINK.sub(keep, page)


def app_command(app_args: list[str]) -> str:
    """The shell command textual-serve runs for each browser tab: the app, in this Python."""
    return shlex.join([sys.executable, "-m", "bntui", *app_args])


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) only ever means this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return True  # it cannot be bound either: binding says so, without a warning first
    return bool(infos) and all(_loopback_ip(info[4][0]) for info in infos)


def _loopback_ip(address: Any) -> bool:
    try:
        return ipaddress.ip_address(str(address).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def url_for(host: str, port: int) -> str:
    """The address to open in a browser on this machine."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _make_server(host: str, port: int, app_args: list[str], loopback_only: bool) -> Any:
    """textual-serve's Server for the app, with the changes the module docstring lists."""
    from aiohttp import web
    from textual_serve.server import Server

    class BntuiServer(Server):
        async def on_startup(self, app: web.Application) -> None:
            """`serve` prints its own line; textual-serve's banner would repeat it."""

        def _host_allowed(self, request: web.Request) -> bool:
            if not loopback_only:
                return True
            name = (urlsplit(f"//{request.host}").hostname or "").lower()
            return name in ("localhost", host.lower()) or _loopback_ip(name)

        async def handle_index(self, request: web.Request) -> web.StreamResponse:
            if not self._host_allowed(request):
                raise web.HTTPForbidden(text="bntui serve: unexpected Host header")
            # The page's URLs are built from public_url with no await in between, so
            # setting it per request is safe on the single event loop.
            self.public_url = f"{request.scheme}://{request.host}"
            response = await super().handle_index(request)
            if isinstance(response, web.Response) and response.text is not None:
                response.text = drop_foreign_links(response.text, request.host)
            return response

        async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
            origin = request.headers.get("Origin")
            if not self._host_allowed(request) or (
                origin is not None and urlsplit(origin).netloc.lower() != request.host.lower()
            ):
                raise web.HTTPForbidden(text="bntui serve: cross-site websocket refused")
            return await super().handle_websocket(request)

    return BntuiServer(app_command(app_args), host=host, port=port, title=TITLE,
                       public_url=url_for(host, port))


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          app_args: list[str] | None = None) -> int:
    """Serve the app at http://host:port until Ctrl+C; the exit status.

    `app_args` are the app's own run flags (e.g. ``["--preset", "seed-digits"]``), given to
    every app process.  A port in use or a host that cannot be bound gives one line on
    stderr and status 2.
    """
    app_args = list(app_args or [])
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # an IPv6 address as written in a URL
    if not host:
        print("bntui serve: error: --host must not be empty", file=sys.stderr)
        return 2
    if not 1 <= port <= 65535:
        print(f"bntui serve: error: --port must be between 1 and 65535 (got {port})",
              file=sys.stderr)
        return 2
    loopback_only = is_loopback(host)
    try:
        server = _make_server(host, port, app_args, loopback_only)
    except ImportError as exc:
        print(f"bntui serve: error: needs textual-serve ({exc})", file=sys.stderr)
        return 2
    if not loopback_only:
        print(f"bntui serve: warning: serving on {host}: anyone on your network can open it",
              file=sys.stderr)
    print(f"bntui serve: open {url_for(host, port)} in a web browser (Ctrl+C stops)",
          flush=True)
    try:
        server.serve()
    except OSError as exc:
        if isinstance(exc, socket.gaierror):
            reason = f"cannot resolve host '{host}' ({exc.strerror or exc})"
        elif exc.errno == errno.EADDRINUSE:
            reason = "the port is already in use (choose another with --port)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            reason = "this machine has no such address"
        elif exc.errno == errno.EACCES:
            reason = "permission denied (ports below 1024 need privileges)"
        else:
            reason = exc.strerror or str(exc)
        print(f"bntui serve: error: cannot serve on {host}:{port}: {reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
