"""The start panel: what bntui is and the three first keys, over the first screen.

It never stands in the way: any key closes it and still does what it does (the app lets
the key through), a click closes it, and it is not shown when the app was started with
flags — someone who typed `bntui --preset seed-digits` knows where they are going.  It
is not remembered across runs: the app writes no file the learner did not ask for, and
one key that also acts costs nothing.
"""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import Static

FIRST_KEYS = (
    ("n / b", "step through one forward and backward pass"),
    ("w", "guided tour of one BatchNorm layer (8 stops)"),
    ("?", "help: keys, panes, glossary (ctrl+p: actions)"),
)


def start_text() -> Text:
    t = Text()
    t.append("bntui", style="bold cyan")
    t.append(" teaches batch normalization and backpropagation\nby stepping through them: "
             "the stepper shows each operation\nof a small network — its formula, why, and "
             "the tensor.\n\n")
    for key, what in FIRST_KEYS:
        t.append(f"  {key:<7}", style="bold cyan")
        t.append(f"{what}\n")
    t.append("\nAny key closes this panel, and does what it says.", style="grey62")
    return t


class StartPanel(Static):
    """Shown over the first screen until a key or a click."""

    class Closed(Message):
        """The learner clicked the panel away."""

    def on_mount(self) -> None:
        self.update(start_text())

    def on_click(self) -> None:
        self.post_message(self.Closed())
