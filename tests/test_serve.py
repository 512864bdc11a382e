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
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual_serve", reason="textual-serve is not installed")

SERVER_START_TIMEOUT = 20.0
APP_TEXT_TIMEOUT = 20.0
KEY_TIMEOUT = 10.0


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


def serve_command(host: str, port: int, app_args: list[str] | None = None) -> list[str]:
    code = (f"from bntui.cli.serve import serve; "
            f"raise SystemExit(serve({host!r}, {port}, {app_args or []!r}))")
    return [sys.executable, "-c", code]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a running `serve('127.0.0.1', PORT, [])`."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(serve_command("127.0.0.1", port), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
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
        yield f"http://127.0.0.1:{port}"
    finally:
        kill_group(proc)
        output = log.read_text(errors="replace")
        assert "Traceback" not in output, output


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
