"""Driving the app from Pilot tests: wait for the session and the lazily mounted panes, send
keys without waiting for an idle screen, wait for a training run to end, read a widget's
text."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable

from rich.console import Console
from rich.text import Text
from textual import events
from textual.pilot import Pilot
from textual.widget import Widget

import bntui.ui.loader as loader_module
from bntui.engine import RunConfig
from bntui.ui.app import BntuiApp
from bntui.ui.registry import PANES


async def settle(app: BntuiApp, pilot: Pilot) -> None:
    """Wait until the session is installed and every pane of the registry is mounted."""
    kinds = [spec.make for spec in PANES]
    for _ in range(300):
        if app.session is not None and all(app.query(k) for k in kinds):  # type: ignore[arg-type]
            break
        await pilot.pause(0.02)
    assert app.session is not None, "the app never installed a session"
    await pilot.pause()


async def until(condition: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll `condition` on the app's event loop; False if it never held."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.01)
    return True


def send_key(app: BntuiApp, key: str) -> None:
    """Queue one key press as the terminal driver would, without waiting for idle."""
    char = {"space": " ", "question_mark": "?"}.get(key, key if len(key) == 1 else None)
    event = events.Key(key, char)
    event.set_sender(app)
    app.post_message(event)


async def idle_training(app: BntuiApp, pilot: Pilot, runs: int = 1,
                        timeout: float = 20.0) -> None:
    """Wait until `runs` training runs at least have started, and the last one has ended
    and the app has drawn its end."""
    assert await until(lambda: app.run_id >= runs and not app.playing
                       and app.ended_run == app.run_id, timeout), "training never ended"
    await pilot.pause(0.05)


def text(widget: Widget) -> str:
    """A widget's text as shown (tables included), without styles."""
    content = getattr(widget, "content", None)
    if content is None or isinstance(content, str | Text):
        return str(widget.render())
    console = Console(width=max(40, widget.size.width or 200), record=True, file=io.StringIO())
    console.print(content)
    return console.export_text()


def chrome_problems(app: BntuiApp) -> list[str]:
    """What is wrong with the tabs and the footer at the app's size: a tab cut or not
    showing its label, `?` or `q` missing from the footer."""
    from textual.widgets._footer import FooterKey
    from textual.widgets._tabs import Tab

    width = app.size.width
    problems = []
    tabs = list(app.query(Tab))
    if len(tabs) != len(PANES):
        problems.append(f"{len(tabs)} tabs for {len(PANES)} panes")
    for tab, spec in zip(tabs, PANES, strict=False):
        if tab.region.right > width or tab.region.width == 0:
            problems.append(f"tab {spec.key} is cut ({tab.region})")
        if tab.label_text != spec.label(width):
            problems.append(f"tab {spec.key} reads {tab.label_text!r}")
    keys = {k.key: k for k in app.query(FooterKey)}
    for key in ("question_mark", "q"):
        k = keys.get(key)
        if k is None or k.region.width == 0 or k.region.right > width:
            problems.append(f"the footer does not show {key}")
    return problems


# a dataset load held back, and a CSV big enough to take a while ---------------------------
class HeldLoads:
    """`build_dataset` in the loader, held back for the datasets named in `held` until
    `release()`."""

    def __init__(self, *held: str) -> None:
        self.held = set(held)
        self.go = threading.Event()
        self.started: list[str] = []
        self._real = loader_module.build_dataset

    def __call__(self, cfg: RunConfig, progress=None):  # type: ignore[no-untyped-def]
        self.started.append(cfg.dataset)
        if cfg.dataset in self.held:
            self.go.wait(30)
        return self._real(cfg, progress)

    def release(self) -> None:
        self.go.set()
