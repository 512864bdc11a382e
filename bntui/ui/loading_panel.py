"""The loading panel: what is loading and how far it is, over the panes while the app
has no session yet (or while a new dataset loads behind the current one); and, when the
first dataset could not be loaded, the one line that says why.

It shows the app's `load_status` and `load_error` (bound, see `BINDS`) and nothing else: the
loads themselves run in `bntui.ui.loader`.  Any key or a click closes the error line.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import var
from textual.widgets import ProgressBar, Static

from bntui.ui.live import LiveView
from bntui.ui.loader import Loading

SHOW_AFTER = 0.25  # seconds a load runs before the panel shows (a quick one never flashes)


class LoadingPanel(LiveView, Vertical):
    """A line of text and a progress bar (by rows read, or moving while nothing can be
    counted)."""

    BINDS = ("load_status", "load_error")
    # (not `loading`: that is Textual's own reactive, which covers a widget with dots)
    load_status: var[Loading | None] = var(None, init=False)
    load_error: var[str] = var("", init=False)

    class Closed(Message):
        """The learner clicked the error line away."""

    def compose(self) -> ComposeResult:
        yield Static(id="loading-text")
        yield ProgressBar(id="loading-bar", total=1, show_eta=False)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._since = 0.0  # when the load on show began

    def on_mount(self) -> None:
        self.query_one(ProgressBar).update(total=1, progress=0)
        self.display = False

    def watch_load_status(self, old: Loading | None, new: Loading | None) -> None:
        if new is not None and (old is None or old.load != new.load):
            self._since = time.monotonic()  # a load begins: shown if it lasts
            self.set_timer(SHOW_AFTER, self.draw)
        self.draw()

    def watch_load_error(self) -> None:
        self.draw()

    def draw(self) -> None:
        loading, error = self.load_status, self.load_error
        bar = self.query_one(ProgressBar)
        text = self.query_one("#loading-text", Static)
        if loading is not None and time.monotonic() - self._since < SHOW_AFTER * 0.95:
            return
        self.display = loading is not None or bool(error)
        self.set_class(loading is None and bool(error), "-error")
        if loading is not None:
            text.update(Text(loading.text()))
            bar.display = True
            fraction = loading.fraction
            # a bar that cannot count moves instead (Textual animates an unknown total)
            bar.update(total=None if fraction is None else 1.0,
                       progress=0.0 if fraction is None else fraction)
            return
        bar.update(total=1, progress=1)  # a known total: the animation's timer stops
        bar.display = False
        if error:
            text.update(Text("✗ " + error, style="bold red"))

    def on_click(self) -> None:
        if self.load_status is None:
            self.post_message(self.Closed())
