"""Help: every key binding and the glossary of tensor names with their formulas (the
formulas are the engine's own text)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from bntui.engine import glossary

KEYS = [
    ("n / →", "next step of the pass"), ("b / ←", "previous step"),
    ("] / [", "next / previous layer"), ("home / end", "first / last step"),
    ("t", "one training step"), ("space", "play / pause training"),
    ("r", "reset the weights (same seed)"), ("g", "run the gradient check"),
    ("e", "stepper: training mode ↔ eval mode pass"),
    ("1 … 8", "switch pane (8: the labs)"),
    ("x", "exercise mode: each step's tensor hidden and asked"),
    ("ctrl+s / ctrl+o", "save / open the whole session"),
    ("escape", "leave a text field (keys go back to the app)"),
    ("?", "this help"), ("ctrl+p", "command palette"),
    ("q", "quit"),
]
def glossary_rows() -> list[tuple[str, str, str]]:
    """(name, meaning, formula) of every tensor: the engine's node records' own words."""
    return glossary.rows()


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; height: 90%; border: thick $accent;
                                  background: $surface; padding: 1 2; }
    """

    def compose(self) -> ComposeResult:
        keys = Table(title="keys", show_header=False, box=None, padding=(0, 2))
        for k, v in KEYS:
            keys.add_row(Text(k, style="bold cyan"), v)
        gl = Table(title="glossary (one BatchNorm block; m = batch size)", box=None,
                   padding=(0, 2))
        gl.add_column("name", style="bold")
        gl.add_column("formula", style="cyan")
        gl.add_column("meaning", style="grey70")
        for name, meaning, formula in glossary_rows():
            gl.add_row(name, formula, meaning)
        with VerticalScroll():
            yield Static(keys)
            yield Static(gl)
            yield Static("\nBatchNorm follows torch.nn.BatchNorm1d: ε inside the root, "
                         "biased variance in training, unbiased running variance, eval "
                         "mode uses the running statistics.  Esc closes this help.")
