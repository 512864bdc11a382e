"""Messages the panes post up to the app."""

from __future__ import annotations

from typing import Any

from textual.message import Message
from textual.widget import Widget


class ConfigChange(Message):
    """A pane asks for a new configuration: `changes` are RunConfig fields."""

    def __init__(self, changes: dict[str, Any], source: Widget) -> None:
        super().__init__()
        self.changes = changes
        self.source = source


class TrainRequest(Message):
    """A pane asks to train: `steps` steps, or `play` to start/stop continuous training."""

    def __init__(self, steps: int = 0, play: bool = False, reset: bool = False) -> None:
        super().__init__()
        self.steps = steps
        self.play = play
        self.reset = reset
