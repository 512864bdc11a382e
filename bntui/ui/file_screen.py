"""Save and open a whole session from the app: a small dialog that asks for a path and
shows what went wrong inline (the session the learner has is never touched by a failed
save or open)."""

from __future__ import annotations

from collections.abc import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from bntui.engine.errors import BntuiError
from bntui.ui.form import Note


class FileScreen(ModalScreen[str | None]):
    """Asks for a path; `action(path)` does the work and may raise BntuiError."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, title: str, verb: str, default: str,
                 action: Callable[[str], str]) -> None:
        super().__init__()
        self.title_text, self.verb, self.default, self.action = title, verb, default, action

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield Input(self.default, id="path")
            yield Note()
            with Horizontal():
                yield Button(self.verb, id="go", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()  # the app does not auto-focus

    @on(Button.Pressed, "#go")
    @on(Input.Submitted)
    def go(self) -> None:
        path = self.query_one("#path", Input).value.strip()
        if not path:
            self.query_one(Note).error("type a file name")
            return
        try:
            message = self.action(path)
        except BntuiError as exc:
            self.query_one(Note).error(str(exc))
            return
        self.dismiss(message)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
