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

And what a client asks for is bounded, so that no page (nor a script posing as one) can
exhaust the machine:

* the terminal size a client asks for, in the websocket's query string
  (``/ws?width=W&height=H``) or in a later "resize" message, is clamped to 1..`MAX_COLUMNS`
  columns and 1..`MAX_ROWS` rows (500 × 200, more than a 4K screen shows in a small font);
  a value that is not a number counts as 80 columns or 24 rows.  Unclamped, one client
  asking for 20000 × 20000 grew its app to 2.8 GB in 41 s;
* at most `max_sessions` apps run at once (`--max-sessions`, `DEFAULT_MAX_SESSIONS` = 8;
  each takes about 80 MB): a websocket beyond that is closed at once with code 1013 and
  the reason "All N sessions are in use ...", which the page shows in place of
  "Session ended.";
* a session's app ends with its websocket, whether the page closed it, the client
  vanished (a heartbeat every 15 s notices) or the app failed to start: the app is asked
  to quit, SIGTERMed after `QUIT_GRACE` seconds and SIGKILLed `TERM_GRACE` seconds later.
  It runs as a process group of its own (ending it ends anything it started) and, on
  Linux, is SIGKILLed by the kernel should the server die without ending it.  Ctrl+C (or
  SIGTERM) ends every app before the server exits;
* malformed websocket messages are skipped, and the log is one line per event with no
  tracebacks;
* the "open http://..." line is printed once the port is bound, so a port in use gives
  only its error line.

The server itself (aiohttp and textual-serve code) is in `bntui.cli.serve_server`.
"""

from __future__ import annotations

import errno
import ipaddress
import math
import re
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
TITLE = "bntui"

MAX_COLUMNS = 500
"""The widest terminal a client may ask for (columns)."""
MAX_ROWS = 200
"""The tallest terminal a client may ask for (rows)."""
DEFAULT_COLUMNS = 80
DEFAULT_ROWS = 24
DEFAULT_MAX_SESSIONS = 8
"""Apps running at once, unless `--max-sessions` says otherwise."""
QUIT_GRACE = 3.0
"""Seconds an app has to quit, once its client is gone, before it is SIGTERMed."""
TERM_GRACE = 2.0
"""Seconds a SIGTERMed app has before it is SIGKILLed."""
SHUTDOWN_GRACE = 1.0
"""Seconds every app has to quit when the server stops, before it is SIGTERMed."""

# A <link> element and its href (textual-serve's page links a CDN web font).
_LINK = re.compile(r"""<link\b[^>]*?\bhref\s*=\s*["']([^"']*)["'][^>]*>\s*""", re.IGNORECASE)


def drop_foreign_links(page: str, own_host: str) -> str:
    """`page` without the <link> elements that point at a host other than `own_host`."""

    def keep(match: re.Match[str]) -> str:
        netloc = urlsplit(match.group(1)).netloc
        return match.group(0) if not netloc or netloc.lower() == own_host.lower() else ""

    return _LINK.sub(keep, page)


def app_argv(app_args: list[str]) -> list[str]:
    """The command run for each browser tab: the app, in this Python."""
    return [sys.executable, "-m", "bntui", *app_args]


def clamp_size(value: object, default: int, maximum: int) -> int:
    """A terminal dimension a client asked for, as a whole number in 1..`maximum`;
    `default` if `value` is not a finite number (text such as "80" counts)."""
    number: int | float
    if isinstance(value, bool):
        return default
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return default
    else:
        return default
    if isinstance(number, float):
        if not math.isfinite(number):
            return default
        number = int(number)
    return max(1, min(maximum, number))


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


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          app_args: list[str] | None = None,
          max_sessions: int = DEFAULT_MAX_SESSIONS) -> int:
    """Serve the app at http://host:port until Ctrl+C; the exit status.

    `app_args` are the app's own run flags (e.g. ``["--preset", "seed-digits"]``), given to
    every app process; at most `max_sessions` of them run at once.  A port in use or a
    host that cannot be bound gives one line on stderr and status 2.
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
    if max_sessions < 1:
        print(f"bntui serve: error: --max-sessions must be at least 1 (got {max_sessions})",
              file=sys.stderr)
        return 2
    loopback_only = is_loopback(host)
    try:
        from bntui.cli.serve_server import BntuiServer
    except ImportError as exc:
        print(f"bntui serve: error: needs textual-serve ({exc})", file=sys.stderr)
        return 2
    server = BntuiServer(app_argv(app_args), host=host, port=port,
                         public_url=url_for(host, port), loopback_only=loopback_only,
                         max_sessions=max_sessions)
    if not loopback_only:
        print(f"bntui serve: warning: serving on {host}: anyone on your network can open it",
              file=sys.stderr)

    def listening() -> None:
        print(f"bntui serve: open {url_for(host, port)} in a web browser "
              f"(at most {max_sessions} at once; Ctrl+C stops)", flush=True)

    try:
        server.run(listening)
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
