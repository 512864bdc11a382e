"""Export this walkthrough: the stepper's pass as a Markdown or HTML handout, with every
gradient checked, written where the learner says.

A small dialog like the session's save dialog: a format, a path, inline errors.  The work
(a gradient check if the pass has none yet, the handout, the atomic write) runs in a
thread; what went wrong stays in the dialog, and the app's session is never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select, Static

from bntui.engine.errors import BntuiError
from bntui.ui.form import Note

FORMS = (("Markdown (.md)", "md"), ("HTML page (.html)", "html"))


def with_suffix(path: str, form: str) -> str:
    """`path` with the suffix of `form` when it has the other form's suffix (or none)."""
    p = PurePath(path)
    if p.suffix.lower() in ("", ".md", ".html", ".htm"):
        return str(p.with_suffix(f".{form}"))
    return path


class ExportScreen(ModalScreen[str | None]):
    """Asks for a format and a path; `job(path, form)` writes the handout (in a thread)
    and returns what to tell the learner, or raises BntuiError."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, default: str, job: Callable[[str, str], str]) -> None:
        super().__init__()
        self.default, self.job = default, job

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box"):
            yield Static("Export this walkthrough: every step of the stepper's pass, with "
                         "its gradient checks, as a handout (a check runs first if the pass "
                         "has none).")
            yield Select(FORMS, id="form", value="md", allow_blank=False)
            yield Input(with_suffix(self.default, "md"), id="path")
            yield Note()
            with Horizontal(id="export-buttons"):
                yield Button("Export", id="go", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()  # the app does not auto-focus

    @on(Select.Changed, "#form")
    def form_changed(self, event: Select.Changed) -> None:
        field = self.query_one("#path", Input)
        field.value = with_suffix(field.value, str(event.value))

    @on(Button.Pressed, "#go")
    @on(Input.Submitted)
    def go(self) -> None:
        path = self.query_one("#path", Input).value.strip()
        note = self.query_one(Note)
        if not path:
            note.error("type a file name")
            return
        note.update("checking the gradients and writing the handout…")
        self.query_one("#go", Button).disabled = True
        self._write(path, str(self.query_one("#form", Select).value))

    class Outcome(Message):
        """The thread's answer: what was written, or (`ok` False) what went wrong."""

        def __init__(self, ok: bool, text: str) -> None:
            super().__init__()
            self.ok, self.text = ok, text

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def _write(self, path: str, form: str) -> None:
        try:
            self.post_message(self.Outcome(True, self.job(path, form)))
        except BntuiError as exc:
            self.post_message(self.Outcome(False, str(exc)))
        except Exception as exc:  # a bug: say so here, keep the app running
            self.post_message(self.Outcome(False, f"internal error: {type(exc).__name__}: "
                                           f"{exc}"))

    @on(Outcome)
    def _outcome(self, event: Outcome) -> None:
        if event.ok:
            self.dismiss(event.text)
            return
        self.query_one(Note).error(event.text)
        self.query_one("#go", Button).disabled = False

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
