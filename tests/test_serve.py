"""`bntui serve`: the app in a web browser through textual-serve.

A real server runs as a subprocess on a free loopback port.  Plain HTTP checks the page
(status 200, the title, nothing fetched from another host) and the refusals (a cross-site
websocket, a foreign Host header, a port in use).  Debian's headless Chromium then opens the
page, driven over the DevTools protocol through a pipe (`--remote-debugging-pipe`: no debug
port, no extra package): the app must show its stepper ("step 1/") and answer the key "n"
("step 2/").

The terminal in the page is xterm.js drawing on a canvas, so the screen's text is read from
xterm's buffer.  textual-serve keeps its xterm `Terminal` to itself; a script that runs
before the page's own catches it when textual-serve's code stores it (`this.terminal = ...`).

The limits on what a client may ask for are checked with bounded clients: raw websocket
handshakes on plain sockets, left open to hold a session or closed to end it, and the
server's child processes read from /proc (the size each app was given is in its
environment).  Malformed messages and clamped resizes are checked on the message loop
itself, without a server.

Every process started here (the server, the app processes it spawns, Chromium and its
helpers) runs in a process group of its own, killed whole at the end.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual_serve", reason="textual-serve is not installed")

SERVER_START_TIMEOUT = 20.0
APP_TEXT_TIMEOUT = 20.0
KEY_TIMEOUT = 10.0
APP_END_TIMEOUT = 15.0  # QUIT_GRACE + TERM_GRACE, and room for a loaded machine


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_group(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the process group `proc` leads, then SIGKILL whatever is left of it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)


def serve_command(host: str, port: int, app_args: list[str] | None = None,
                  max_sessions: int | None = None) -> list[str]:
    extra = "" if max_sessions is None else f", max_sessions={max_sessions}"
    code = (f"from bntui.cli.serve import serve; "
            f"raise SystemExit(serve({host!r}, {port}, {app_args or []!r}{extra}))")
    return [sys.executable, "-c", code]


@contextlib.contextmanager
def running_server(log: Path, max_sessions: int | None = None
                   ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The base URL and the process of a running `serve('127.0.0.1', PORT, [], ...)`;
    its output (stdout and stderr) goes to `log`, which must hold no traceback."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(serve_command("127.0.0.1", port, max_sessions=max_sessions),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer within {SERVER_START_TIMEOUT:.0f} s:\n"
                            f"{log.read_text()}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            kill_group(proc)
        output = log.read_text(errors="replace")
        assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a running `serve('127.0.0.1', PORT, [])`."""
    with running_server(tmp_path_factory.mktemp("serve") / "server.log") as (url, _):
        yield url


# the page over plain HTTP -------------------------------------------------------------


def test_the_page_loads_with_the_title_and_only_local_urls(server: str) -> None:
    with urllib.request.urlopen(server + "/", timeout=10) as response:
        assert response.status == 200
        page = response.read().decode()
    assert "<div>bntui</div>" in page
    urls = re.findall(r"""(?:src|href|data-session-websocket-url)\s*=\s*["']([^"']+)""", page)
    host = server.removeprefix("http://")
    assert any(u.endswith("/static/js/textual.js") for u in urls)
    assert any(u.endswith("/static/css/xterm.css") for u in urls)
    for url in urls:
        assert re.match(rf"(https?|wss?)://{re.escape(host)}/", url), url
    assert "googleapis" not in page  # textual-serve's page links a CDN web font; not here


def upgrade_status(server: str, headers: dict[str, str]) -> int:
    host, port = server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/ws?width=80&height=24", headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(), **headers})
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_websocket_from_another_site_is_refused(server: str) -> None:
    assert upgrade_status(server, {"Origin": "http://evil.example"}) == 403


def test_a_foreign_host_name_is_refused(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": f"rebound.example:{port}"})
        assert conn.getresponse().status == 403
    finally:
        conn.close()
    assert upgrade_status(server, {"Host": f"rebound.example:{port}",
                                   "Origin": f"http://rebound.example:{port}"}) == 403


# errors: one line and status 2 --------------------------------------------------------


def run_serve(host: str, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(serve_command(host, port), capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def test_a_port_in_use_is_one_line_and_status_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_serve("127.0.0.1", taken.getsockname()[1])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "already in use" in result.stderr
    assert result.stdout == ""  # no "open http://..." line for a server that never listened


def test_an_address_not_on_this_machine_warns_then_fails_with_status_2() -> None:
    result = run_serve("192.0.2.1", free_port())  # TEST-NET-1: never this machine's
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert "anyone on your network can open it" in lines[0]
    assert lines[1].startswith("bntui serve: error:")


def test_a_bad_port_is_one_line_and_status_2() -> None:
    result = run_serve("127.0.0.1", 70000)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "bntui serve: error: --port must be between 1 and 65535 (got 70000)")



# what a client may ask for: sizes, messages, sessions ---------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (120, 120), ("120", 120), (" 120 ", 120), (120.9, 120), ("120.5", 120),
    (20000, 500), ("20000", 500), (10**400, 500), (1e300, 500),
    (0, 1), (-7, 1), ("-3", 1),
    (None, 80), ("abc", 80), ("", 80), (True, 80), ([120], 80), ({"w": 1}, 80),
    (float("nan"), 80), ("inf", 80), ("1e999", 80),
])
def test_a_terminal_size_is_clamped_or_defaulted(value: object, expected: int) -> None:
    from bntui.cli.serve import MAX_COLUMNS, clamp_size

    assert MAX_COLUMNS == 500
    assert clamp_size(value, 80, MAX_COLUMNS) == expected


class FakeApp:
    """What the message loop asks of an app, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def send_bytes(self, data: bytes) -> bool:
        self.calls.append(("stdin", data))
        return True

    async def set_terminal_size(self, width: int, height: int) -> None:
        self.calls.append(("resize", width, height))

    async def blur(self) -> None:
        self.calls.append(("blur",))

    async def focus(self) -> None:
        self.calls.append(("focus",))


class FakeWebSocket:
    """A websocket that delivers these text messages, then closes."""

    def __init__(self, texts: list[str]) -> None:
        from aiohttp import WSMsgType

        self.messages = [types.SimpleNamespace(type=WSMsgType.TEXT, data=t) for t in texts]
        self.messages.insert(0, types.SimpleNamespace(type=WSMsgType.BINARY, data=b"\0"))
        self.sent: list[Any] = []

    async def __aiter__(self) -> AsyncIterator[Any]:
        for message in self.messages:
            yield message

    async def send_json(self, data: Any) -> None:
        self.sent.append(data)


def make_server(max_sessions: int = 2) -> Any:
    from bntui.cli.serve_server import BntuiServer

    return BntuiServer([sys.executable, "-m", "bntui"], host="127.0.0.1", port=8000,
                       public_url="http://127.0.0.1:8000", loopback_only=True,
                       max_sessions=max_sessions)


async def test_malformed_messages_are_skipped_and_resizes_clamped() -> None:
    texts = ["not json", "[" * 100_000, "{}", "[]", "5", '"stdin"', '[5, "x"]',
             '["stdin"]', '["stdin", 5]', '["stdin", "n"]', '["stdin", "\\ud800"]',
             '["resize"]', '["resize", 5]', '["resize", {"width": 20000, "height": 20000}]',
             '["resize", {"width": "abc", "height": -4}]', '["resize", {"width": 1e999}]',
             '["resize", {"width": 100, "height": 30}]', '["ping", "1"]', '["blur"]',
             '["focus", 1, 2]', '["quit"]']
    app, websocket = FakeApp(), FakeWebSocket(texts)
    await make_server()._process_messages(websocket, app)
    assert app.calls == [("stdin", b"n"), ("stdin", b"?"), ("resize", 500, 200),
                         ("resize", 80, 1), ("resize", 80, 24), ("resize", 100, 30),
                         ("blur",), ("focus",)]
    assert websocket.sent == [["pong", "1"]]


async def test_an_app_process_clamps_the_size_it_is_told() -> None:
    from textual_serve.download_manager import DownloadManager

    from bntui.cli.serve_server import AppProcess

    async def nothing(*_: Any) -> None:
        return None

    app = AppProcess([sys.executable, "-c", "pass"], write_bytes=nothing, write_str=nothing,
                     close=nothing, download_manager=DownloadManager())
    sent: list[dict[str, Any]] = []

    async def send_meta(data: dict[str, Any]) -> bool:
        sent.append(data)
        return True

    app.send_meta = send_meta  # type: ignore[method-assign]
    await app.set_terminal_size(20000, 0)
    assert sent == [{"type": "resize", "width": 500, "height": 1}]


PROC = Path("/proc")
needs_proc = pytest.mark.skipif(not (PROC / "self" / "stat").exists(), reason="needs /proc")


def app_sizes(server_pid: int) -> dict[int, tuple[str | None, str | None]]:
    """The server's app processes (children running `-m bntui`): COLUMNS and ROWS each got."""
    apps: dict[int, tuple[str | None, str | None]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid != server_pid:
                continue
            if b"\0-m\0bntui" not in (entry / "cmdline").read_bytes():
                apps[int(entry.name)] = (None, None)  # forked, not yet the app
                continue
            env = dict(item.split("=", 1) for item in
                       (entry / "environ").read_text(errors="replace").split("\0") if "=" in item)
        except (OSError, IndexError, ValueError):
            continue
        apps[int(entry.name)] = (env.get("COLUMNS"), env.get("ROWS"))
    return apps


def wait_for_apps(server_pid: int, count: int, timeout: float = APP_END_TIMEOUT
                  ) -> dict[int, tuple[str | None, str | None]]:
    """The server's app processes, once there are `count` of them, all started."""
    deadline = time.monotonic() + timeout
    while True:
        apps = app_sizes(server_pid)
        if len(apps) == count and (None, None) not in apps.values():
            return apps
        if time.monotonic() > deadline:
            pytest.fail(f"{len(apps)} app processes after {timeout:.0f} s, not {count}: {apps}")
        time.sleep(0.1)


def open_websocket(server: str, query: str = "width=80&height=24") -> socket.socket:
    """A websocket handshake on a plain socket, left open: to the server, a page."""
    host, port = server.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws?{query} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(f"the server closed the connection: {head!r}")
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """The opcode and payload of the next (unmasked, unfragmented) frame from the server."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data

    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(exactly(2), "big")
    elif length == 127:
        length = int.from_bytes(exactly(8), "big")
    return first & 0x0F, exactly(length)


def close_code_and_reason(sock: socket.socket) -> tuple[int, str] | None:
    """The code and reason of the close frame the server sends first, if that is one."""
    opcode, payload = read_frame(sock)
    if opcode != 0x8:
        return None
    return int.from_bytes(payload[:2], "big"), payload[2:].decode()


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A running `serve(..., max_sessions=2)`: its base URL and process."""
    with running_server(tmp_path_factory.mktemp("serve") / "small.log", max_sessions=2) as both:
        yield both


@needs_proc
def test_a_huge_terminal_is_clamped_and_apps_end_with_their_clients(
        small_server: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, proc = small_server
    huge = open_websocket(url, "width=20000&height=20000")
    junk = open_websocket(url, "width=abc&height=-3")
    try:
        sizes = sorted(wait_for_apps(proc.pid, 2).values())
        assert sizes == [("500", "200"), ("80", "1")]
    finally:
        huge.close()  # no close frame: a page that vanished
        junk.close()
    wait_for_apps(proc.pid, 0)  # fails past APP_END_TIMEOUT


@needs_proc
def test_a_client_beyond_max_sessions_is_refused_until_one_leaves(
        small_server: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, proc = small_server
    held = [open_websocket(url), open_websocket(url)]
    try:
        wait_for_apps(proc.pid, 2)
        refused = open_websocket(url)
        with refused:
            code, reason = close_code_and_reason(refused) or (0, "")
        assert code == 1013
        assert reason.startswith("All 2 sessions are in use")
        assert len(app_sizes(proc.pid)) == 2  # no process for the refused one

        held.pop(0).close()
        wait_for_apps(proc.pid, 1)
        deadline = time.monotonic() + APP_END_TIMEOUT
        while True:  # the slot frees just after the app has ended
            held.append(open_websocket(url))
            held[-1].settimeout(0.5)
            try:
                refusal = close_code_and_reason(held[-1])
            except TimeoutError:
                break  # no close frame: accepted
            assert refusal is None or refusal[0] == 1013, refusal
            if refusal is None:
                break  # the app's first output: accepted
            held.pop().close()
            assert time.monotonic() < deadline, "no session slot freed"
            time.sleep(0.2)
        wait_for_apps(proc.pid, 2)
    finally:
        for sock in held:
            sock.close()
    wait_for_apps(proc.pid, 0)


@needs_proc
def test_ctrl_c_ends_every_app_before_the_server_exits(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with running_server(log, max_sessions=2) as (url, proc):
        clients = [open_websocket(url, "width=20000&height=20000"), open_websocket(url)]
        try:
            apps = wait_for_apps(proc.pid, 2)
            os.kill(proc.pid, signal.SIGINT)
            assert proc.wait(APP_END_TIMEOUT) == 0
        finally:
            for sock in clients:
                sock.close()
    left = [pid for pid in apps if (PROC / str(pid)).exists()
            and (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert left == [], left
    output = log.read_text()
    assert output.startswith("bntui serve: open http://127.0.0.1:"), output


# the app in headless Chromium ----------------------------------------------------------

CHROMIUM = os.environ.get("BNTUI_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")

# Runs before the page's scripts: keeps the xterm.js Terminal that textual-serve's code
# stores as `this.terminal`, and otherwise behaves as a plain property.
CATCH_TERMINAL = r"""
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "terminal",
      {value, writable: true, configurable: true, enumerable: true});
    try {
      if (!window.__bntuiTerminal && value && value.buffer && value.buffer.active)
        window.__bntuiTerminal = value;
    } catch (e) {}
  },
});
"""

SCREEN_TEXT = r"""(() => {
  const term = window.__bntuiTerminal;
  if (!term) return null;
  const buffer = term.buffer.active, rows = [];
  for (let i = 0; i < buffer.length; i++) {
    const line = buffer.getLine(i);
    rows.push(line ? line.translateToString(true) : "");
  }
  return rows.join("\n");
})()"""


# The text of the page's "Session ended." dialog, once the websocket has closed.
CLOSED_MESSAGE = r"""(() => document.body.classList.contains("-closed")
  ? document.querySelector(".closed-dialog .message").textContent : null)()"""


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Copies clear of fds 3 and 4 (so dup2 cannot clobber one with the other) and
        # closed on exec; the child dup2s them to 3 and 4, which stay open across exec.
        # close_fds=False: subprocess would close 3 and 4 after preexec_fn otherwise (only
        # non-inheritable descriptors exist besides them, and exec closes those).
        child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def pipes_to_3_and_4() -> None:
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        self.log = (profile.parent / "chromium.log").open("wb")
        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-default-apps", "--disable-extensions",
             "--mute-audio", f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "--window-size=1280,800", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            close_fds=False, preexec_fn=pipes_to_3_and_4,
            start_new_session=True)
        os.close(child_r)
        os.close(child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._to_browser)
        with contextlib.suppress(OSError):
            os.close(self._from_browser)
        kill_group(self.proc, grace=2.0)
        self.log.close()

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            if select.select([self._from_browser], [], [], left)[0]:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise EOFError("Chromium closed its DevTools pipe")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def open_page(self) -> str:
        """Attach to the first tab; its session id."""
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        return self.call("Target.attachToTarget",
                         {"targetId": page["targetId"], "flatten": True})["sessionId"]


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    browser = Chromium(CHROMIUM, tmp_path / "profile")
    try:
        yield browser
    finally:
        browser.close()


def wait_for_screen(browser: Chromium, session: str, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    screen: str | None = None
    while time.monotonic() < deadline:
        screen = browser.call("Runtime.evaluate",
                              {"expression": SCREEN_TEXT, "returnByValue": True},
                              session)["result"].get("value")
        if screen and text in screen:
            return screen
        time.sleep(0.1)
    if screen is None:
        pytest.fail("the page's xterm.js Terminal was never caught (did textual-serve's page "
                    "script change how it stores it?)")
    pytest.fail(f"{text!r} did not appear on the terminal within {timeout:.0f} s; "
                f"the screen:\n{screen}")


def test_the_app_answers_a_key_in_headless_chromium(server: str, chromium: Chromium) -> None:
    session = chromium.open_page()
    chromium.call("Page.enable", session=session)  # scripts for new documents need it
    chromium.call("Network.enable", session=session)
    chromium.call("Page.addScriptToEvaluateOnNewDocument", {"source": CATCH_TERMINAL}, session)
    chromium.call("Page.navigate", {"url": server + "/"}, session)

    screen = wait_for_screen(chromium, session, "step 1/", APP_TEXT_TIMEOUT)
    assert "bntui" in screen

    chromium.call("Runtime.evaluate", {"expression": "window.__bntuiTerminal.focus()"}, session)
    key = {"key": "n", "code": "KeyN", "windowsVirtualKeyCode": 78}
    chromium.call("Input.dispatchKeyEvent", {"type": "keyDown", "text": "n", **key}, session)
    chromium.call("Input.dispatchKeyEvent", {"type": "keyUp", **key}, session)
    screen = wait_for_screen(chromium, session, "step 2/", KEY_TIMEOUT)
    assert "step 1/" not in screen

    # everything the page asked for came from this server
    requested = [e["params"]["request"]["url"] for e in chromium.events
                 if e.get("method") == "Network.requestWillBeSent"]
    requested += [e["params"]["url"] for e in chromium.events
                  if e.get("method") == "Network.webSocketCreated"]
    host = server.removeprefix("http://")
    assert any(u.startswith(f"ws://{host}/ws") for u in requested), requested
    for url in requested:
        assert re.match(rf"(https?|wss?)://{re.escape(host)}/|data:", url), url


@needs_proc
def test_a_page_beyond_max_sessions_says_why_in_headless_chromium(
        small_server: tuple[str, subprocess.Popen[bytes]], chromium: Chromium) -> None:
    url, proc = small_server
    held = [open_websocket(url), open_websocket(url)]
    try:
        wait_for_apps(proc.pid, 2)
        session = chromium.open_page()
        chromium.call("Page.enable", session=session)
        chromium.call("Page.navigate", {"url": url + "/"}, session)
        deadline = time.monotonic() + APP_TEXT_TIMEOUT
        message = None
        while time.monotonic() < deadline:
            message = chromium.call("Runtime.evaluate", {"expression": CLOSED_MESSAGE,
                                                         "returnByValue": True},
                                    session)["result"].get("value")
            if message:
                break
            time.sleep(0.1)
        assert message == "All 2 sessions are in use: close one, or try again later."
        assert len(app_sizes(proc.pid)) == 2
    finally:
        for sock in held:
            sock.close()
    wait_for_apps(proc.pid, 0)
