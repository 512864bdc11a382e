"""The web server behind `bntui serve`: textual-serve's `Server` and `AppService`, hardened.

`bntui.cli.serve` says what changes and why; this module holds the code that needs aiohttp
and textual-serve, which `serve` imports only when it is asked to serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import shlex
import signal
import sys
from asyncio.subprocess import PIPE, Process
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server

from bntui.cli.serve import (
    DEFAULT_COLUMNS,
    DEFAULT_ROWS,
    MAX_COLUMNS,
    MAX_ROWS,
    QUIT_GRACE,
    SHUTDOWN_GRACE,
    TERM_GRACE,
    TITLE,
    _loopback_ip,
    clamp_size,
    drop_foreign_links,
)

log = logging.getLogger("bntui.serve")

# Runs in the page before textual-serve's script: when the server closes the websocket with
# a reason (every session in use, the server stopping), the page's "Session ended." dialog
# says that reason instead.
SHOW_CLOSE_REASON = """<script>
(() => {
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("close", (event) => {
        const message = document.querySelector(".closed-dialog .message");
        if (event.reason && message) message.textContent = event.reason;
      });
    }
  };
})();
</script>
"""


def _parent_death_signal() -> Callable[[], None] | None:
    """A function for a child to run before exec: SIGKILL it when the server dies (Linux's
    PR_SET_PDEATHSIG), so a server killed without a chance to clean up leaves no app behind.

    libc is looked up here, in the parent: a forked child of a threaded process must not
    load libraries, only make the system call.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig, sigkill = 1, int(signal.SIGKILL)

    def die_with_parent() -> None:
        prctl(pr_set_pdeathsig, sigkill, 0, 0, 0)
        if os.getppid() != parent:  # the server died before the call
            os._exit(1)

    return die_with_parent


class OneLineFormatter(logging.Formatter):
    """Every record in one line: an exception is named, never traced back."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            message = f"{message} ({type(error).__name__}: {error})"
        return "bntui serve: " + " ".join(message.split())


async def _exited(process: Process, timeout: float) -> bool:
    """Whether `process` ends within `timeout` seconds."""
    if process.returncode is not None:
        return True
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except asyncio.TimeoutError:
        return False
    return True


class AppProcess(AppService):
    """One browser tab's app process: its terminal size clamped, and ended when it goes.

    The app runs without a shell, as the leader of a process group of its own (so ending
    it ends anything it started), and dies with the server.
    """

    def __init__(self, argv: list[str], **kwargs: Any) -> None:
        super().__init__(shlex.join(argv), **kwargs)
        self.argv = argv
        self._stopping: asyncio.Future[None] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def _open_app_process(self, width: int = DEFAULT_COLUMNS,
                                height: int = DEFAULT_ROWS) -> Process:
        environment = self._build_environment(width=width, height=height)
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=PIPE, stdout=PIPE, stderr=PIPE, env=environment,
            start_new_session=True, preexec_fn=_DIE_WITH_PARENT)
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    async def start(self, width: int, height: int) -> None:
        await super().start(clamp_size(width, DEFAULT_COLUMNS, MAX_COLUMNS),
                            clamp_size(height, DEFAULT_ROWS, MAX_ROWS))

    async def set_terminal_size(self, width: int, height: int) -> None:
        await super().set_terminal_size(clamp_size(width, DEFAULT_COLUMNS, MAX_COLUMNS),
                                        clamp_size(height, DEFAULT_ROWS, MAX_ROWS))

    async def run(self) -> None:
        """Relay the app's output; when the app ends by itself (it quit, crashed or never
        started), close the websocket so that the session ends too."""
        await super().run()
        if self._stopping is None:
            with contextlib.suppress(Exception):
                await self.remote_close()

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the app's process group (the app and anything it started)."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, sig)

    async def stop(self, grace: float = QUIT_GRACE) -> None:
        """End the app: ask it to quit, SIGTERM it after `grace` seconds, SIGKILL it
        `TERM_GRACE` seconds later.  Calling it again waits for the same end, and the end
        goes on if the caller is cancelled."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(grace))
        await asyncio.shield(self._stopping)

    async def _stop(self, grace: float) -> None:
        with contextlib.suppress(Exception):
            await self._download_manager.cancel_app_downloads(
                app_service_id=self.app_service_id)
        process = self._process
        if process is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace
            if process.returncode is None and self._stdin is not None:
                with contextlib.suppress(Exception):  # a full pipe must not hold it up
                    await asyncio.wait_for(self.send_meta({"type": "quit"}), grace)
            if not await _exited(process, max(0.0, deadline - loop.time())):
                log.info("an app did not quit within %g s: SIGTERM", grace)
                self.signal_group(signal.SIGTERM)
                if not await _exited(process, TERM_GRACE):
                    log.info("an app did not end within %g s of SIGTERM: SIGKILL", TERM_GRACE)
                    self.signal_group(signal.SIGKILL)
                    await _exited(process, TERM_GRACE)
            self.signal_group(signal.SIGKILL)  # whatever the app left behind in its group
        if self._task is not None:
            # Its output ends with the process; wait_for cancels it if it does not.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, TERM_GRACE)
            self._task = None

    def kill(self) -> None:
        """End the app now, without waiting (the server's last act)."""
        if self.running:
            self.signal_group(signal.SIGKILL)


_DIE_WITH_PARENT = _parent_death_signal()


class BntuiServer(Server):
    """textual-serve's Server with the changes the `bntui.cli.serve` docstring lists."""

    def __init__(self, argv: list[str], *, host: str, port: int, public_url: str,
                 loopback_only: bool, max_sessions: int) -> None:
        super().__init__(shlex.join(argv), host=host, port=port, title=TITLE,
                         public_url=public_url)
        self.argv = argv
        self.loopback_only = loopback_only
        self.max_sessions = max_sessions
        # Sessions open, opening or ending; counted before any await, so that clients
        # arriving together cannot all slip under the cap.
        self.slots = 0
        self.sessions: set[AppProcess] = set()
        self.websockets: set[web.WebSocketResponse] = set()

    # -- running ----------------------------------------------------------------------

    def initialize_logging(self) -> None:
        """One line per event on stderr, tracebacks never (textual-serve's own logging
        prints them, with the locals, for a malformed message)."""
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(OneLineFormatter())
        logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)

    def run(self, on_listening: Callable[[], None]) -> None:
        """Serve until SIGINT (Ctrl+C) or SIGTERM; `on_listening()` once the port is bound.

        An address that cannot be bound raises OSError, before `on_listening`.  Every app
        process has ended when this returns.
        """
        self.initialize_logging()
        try:
            asyncio.run(self._run(on_listening))
        finally:
            for session in list(self.sessions):
                session.kill()

    async def _run(self, on_listening: Callable[[], None]) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        runner = web.AppRunner(await self._make_app(), handle_signals=False, access_log=None,
                               shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
            on_listening()
            await stop.wait()
        finally:
            await runner.cleanup()

    async def on_startup(self, app: web.Application) -> None:
        """`serve` prints its own line; textual-serve's banner would repeat it."""

    async def on_shutdown(self, app: web.Application) -> None:
        """End every app (with `SHUTDOWN_GRACE` to quit) and tell every page why."""
        # The stops start first, so that a session whose websocket closes stops with
        # SHUTDOWN_GRACE too; a page that does not answer the close costs TERM_GRACE.
        stops = [asyncio.ensure_future(session.stop(SHUTDOWN_GRACE))
                 for session in list(self.sessions)]
        closes = [asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY,
                                            message=b"bntui serve has stopped."), TERM_GRACE)
                  for ws in list(self.websockets)]
        await asyncio.gather(*stops, *closes, return_exceptions=True)

    # -- requests ---------------------------------------------------------------------

    def _host_allowed(self, request: web.Request) -> bool:
        if not self.loopback_only:
            return True
        name = (urlsplit(f"//{request.host}").hostname or "").lower()
        return name in ("localhost", self.host.lower()) or _loopback_ip(name)

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        if not self._host_allowed(request):
            raise web.HTTPForbidden(text="bntui serve: unexpected Host header")
        # The page's URLs are built from public_url with no await in between, so
        # setting it per request is safe on the single event loop.
        self.public_url = f"{request.scheme}://{request.host}"
        response = await super().handle_index(request)
        if isinstance(response, web.Response) and response.text is not None:
            page = drop_foreign_links(response.text, request.host)
            response.text = page.replace("</head>", SHOW_CLOSE_REASON + "</head>", 1)
        return response

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not self._host_allowed(request) or (
            origin is not None and urlsplit(origin).netloc.lower() != request.host.lower()
        ):
            raise web.HTTPForbidden(text="bntui serve: cross-site websocket refused")
        if self.slots >= self.max_sessions:
            return await self._refuse(request)
        self.slots += 1
        try:
            return await self._session(request)
        finally:
            self.slots -= 1
            log.info("a session ended (%d of %d in use)", self.slots, self.max_sessions)

    async def _refuse(self, request: web.Request) -> web.WebSocketResponse:
        """Open the websocket only to close it with the reason, which the page shows."""
        reason = (f"All {self.max_sessions} sessions are in use: "
                  "close one, or try again later.")
        log.warning("refused a browser at %s: all %d sessions are in use",
                    request.remote, self.max_sessions)
        websocket = web.WebSocketResponse()
        await websocket.prepare(request)
        await websocket.close(code=WSCloseCode.TRY_AGAIN_LATER, message=reason.encode())
        return websocket

    async def _session(self, request: web.Request) -> web.WebSocketResponse:
        """One browser tab: its app process, driven over the websocket until either ends."""
        websocket = web.WebSocketResponse(heartbeat=15)
        width = clamp_size(request.query.get("width"), DEFAULT_COLUMNS, MAX_COLUMNS)
        height = clamp_size(request.query.get("height"), DEFAULT_ROWS, MAX_ROWS)
        session: AppProcess | None = None
        self.websockets.add(websocket)
        try:
            await websocket.prepare(request)
            session = AppProcess(self.argv, write_bytes=websocket.send_bytes,
                                 write_str=websocket.send_str, close=websocket.close,
                                 download_manager=self.download_manager, debug=self.debug)
            self.sessions.add(session)
            await session.start(width, height)
            log.info("a browser at %s opened a session, %d × %d (%d of %d in use)",
                     request.remote, width, height, self.slots, self.max_sessions)
            await self._process_messages(websocket, session)
        except Exception as error:  # one line in the log; the page shows "Session ended."
            log.warning("a session failed (%s: %s)", type(error).__name__, error)
        finally:
            self.websockets.discard(websocket)
            if session is not None:
                try:
                    await session.stop()
                finally:  # cancelled while stopping: `run` kills it at the very end
                    if not session.running:
                        self.sessions.discard(session)
            with contextlib.suppress(Exception):
                await websocket.close()
        return websocket

    async def _process_messages(self, websocket: web.WebSocketResponse,
                                app_service: AppService) -> None:
        """The page's messages to the app; anything malformed is skipped."""
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = json.loads(message.data)
            except (ValueError, RecursionError):
                continue
            if not isinstance(envelope, list) or not envelope:
                continue
            kind = envelope[0]
            data = envelope[1] if len(envelope) > 1 else None
            if kind == "stdin" and isinstance(data, str):
                await app_service.send_bytes(data.encode("utf-8", "replace"))
            elif kind == "resize" and isinstance(data, dict):
                await app_service.set_terminal_size(
                    clamp_size(data.get("width"), DEFAULT_COLUMNS, MAX_COLUMNS),
                    clamp_size(data.get("height"), DEFAULT_ROWS, MAX_ROWS))
            elif kind == "ping":
                await websocket.send_json(["pong", data])
            elif kind == "blur":
                await app_service.blur()
            elif kind == "focus":
                await app_service.focus()
