"""A yes/no question before something the learner may not want: building a network whose
training step (or gradient check) this machine will take very long over."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmScreen(ModalScreen[bool]):
    """`question` with a button for `verb` and one to cancel; dismissed with the answer
    (Escape and `n` cancel, `y` confirms)."""

    BINDINGS = [Binding("escape,n", "cancel", "cancel"), Binding("y", "confirm", "yes")]

    def __init__(self, question: str, verb: str) -> None:
        super().__init__()
        self.question, self.verb = question, verb

    @classmethod
    def slow_build(cls, warning: str) -> ConfirmScreen:
        """The question before building a network `budget.Estimate.warning` calls slow."""
        return cls(f"{warning[0].upper()}{warning[1:]}. Build it anyway? (a step cannot be "
                   "paused once it has started; quitting can stop it)", "Build it")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, markup=False)
            with Horizontal():
                yield Button(self.verb, id="confirm", variant="warning")
                yield Button("Cancel", id="cancel", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()  # the safe answer is the default

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)
