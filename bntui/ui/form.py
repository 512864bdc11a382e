"""Shared pieces of the settings panes: the pane base class (the session pushed down by
the app), an inline message line and value parsing."""

from __future__ import annotations

import math

from rich.text import Text
from textual.containers import VerticalScroll
from textual.reactive import var
from textual.widgets import Static

from bntui.engine.errors import BntuiError
from bntui.engine.session import Session
from bntui.ui.live import LiveView, when_live


class Note(Static):
    """One line under a form: red for a mistake, green when applied; it takes no room
    while it has nothing to say."""

    DEFAULT_CSS = """
    Note { height: auto; margin: 1 0 0 0; }
    Note.-empty { display: none; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="-empty")

    def update(self, content: object = "") -> None:  # type: ignore[override]
        super().update(content)  # type: ignore[arg-type]
        self.set_class(not str(content), "-empty")

    def error(self, message: str) -> None:
        self.update(Text("✗ " + message, style="bold red"))

    def ok(self, message: str) -> None:
        self.update(Text("✓ " + message, style="green"))

    def clear(self) -> None:
        self.update("")


class FormPane(LiveView, VerticalScroll):
    """A settings pane: it shows the app's session (bound from the app, `BINDS`) and has a
    `Note` that the app writes the outcome of a change into."""

    BINDS: tuple[str, ...] = ("session",)
    session: var[Session | None] = var(None, init=False)

    def watch_session(self, session: Session | None) -> None:
        if session is not None:
            self.load(session)

    def load(self, session: Session) -> None:
        """Show the session's settings (each pane its own)."""
        raise NotImplementedError

    def remember(self, *ids: str) -> None:
        """Note what `load` put in these fields, to tell later what the learner edited."""
        self._loaded = {i: str(self.query_one(f"#{i}").value) for i in ids}  # type: ignore[attr-defined]

    def edited(self, field: str) -> str | None:
        """The field's value if the learner changed it since `load`, else None: an
        untouched field must not carry an old setting into a new dataset or optimizer."""
        value = str(self.query_one(f"#{field}").value)  # type: ignore[attr-defined]
        return None if value == getattr(self, "_loaded", {}).get(field) else value

    # the app writes the outcome of a change here (when it ends, the app may be closing)
    @when_live
    def show_error(self, message: str) -> None:
        self.query_one(Note).error(message)

    @when_live
    def show_ok(self, message: str) -> None:
        self.query_one(Note).ok(message)


def exact(x: float) -> str:
    """A float as text that parses back to the same float (no rounding to 6 digits)."""
    return repr(float(x)) if x != int(x) or abs(x) >= 1e16 else str(int(x))


def parse_number(text: str, what: str, *, integer: bool = False, low: float | None = None,
                 positive: bool = False, below: float | None = None,
                 optional: bool = False) -> float | int | None:
    """Parse a form field or raise BntuiError naming the field."""
    text = text.strip()
    if not text:
        if optional:
            return None
        raise BntuiError(f"{what} is empty")
    try:
        value: float | int = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise BntuiError(f"{what} must be {kind} (got '{text}')") from None
    if not math.isfinite(value):
        raise BntuiError(f"{what} must be finite (got '{text}')")
    if positive and value <= 0:
        raise BntuiError(f"{what} must be positive (got '{text}')")
    if low is not None and value < low:
        raise BntuiError(f"{what} must be at least {low:g} (got '{text}')")
    if below is not None and value >= below:
        raise BntuiError(f"{what} must be below {below:g} (got '{text}')")
    return value
