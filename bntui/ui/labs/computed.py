"""A lab whose results come from one engine call run in a thread: the shared plumbing of
the health, race and h-sweep labs (a run button, an inline Note, a stale-result guard)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bntui.engine.config import RunConfig
from bntui.engine.errors import BntuiError
from bntui.ui.form import Note
from bntui.ui.labs import LabView


class ComputedLab(LabView):
    """Subclasses implement `job(config) -> Callable[[], result]` (reading their own fields
    on the UI thread; a BntuiError there is shown inline) and `show(result)`."""

    def __init__(self) -> None:
        super().__init__()
        self.config: RunConfig | None = None
        self.result: Any = None
        self._token = 0

    NARROW = 70  # below this many columns the lab stacks its parts (class "narrow")

    def on_resize(self) -> None:
        self.set_class(self.size.width < self.NARROW, "narrow")

    def load(self, config: RunConfig) -> None:
        self.config = config
        self.start()

    def job(self, config: RunConfig) -> Callable[[], Any]:
        raise NotImplementedError

    def show(self, result: Any) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Read the fields and run the engine in a thread; bad input stays inline."""
        if self.config is None:
            return
        self.ready = False
        self._token += 1
        note = self.query_one(Note)
        try:
            work = self.job(self.config)
        except BntuiError as exc:
            note.error(str(exc))
            self.ready = True
            return
        note.update("computing …")
        token = self._token
        self.in_thread(work, lambda result: self._done(token, result),
                       lambda message: self._failed(token, message))

    def _failed(self, token: int, message: str) -> None:
        if token != self._token:
            return
        self.query_one(Note).error(message)
        self.ready = True

    def _done(self, token: int, result: Any) -> None:
        if token != self._token:
            return
        self.result = result
        self.query_one(Note).clear()
        try:
            self.show(result)
        finally:
            self.ready = True  # never leave a waiting test or script hanging
