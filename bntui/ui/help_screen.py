"""Help: every key (from `bntui.ui.keys`), every pane (from the registry), where to start,
and the glossary of tensor names with their meanings and formulas (the engine's own text).

The screen's scroll takes the keys as soon as it opens (↓, PageDown, End, …); `g` jumps to
the glossary, `w` starts the guided tour.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from bntui.engine import glossary
from bntui.ui.keys import help_rows
from bntui.ui.registry import PANES


def glossary_rows() -> list[tuple[str, str, str]]:
    """(name, meaning, formula) for every tensor of one block and of the loss, in the order
    of the pass: the engine's node records' own words (`bntui.engine.glossary`)."""
    return glossary.rows()


class HelpScreen(ModalScreen[str | None]):
    """Dismissed with None, or with "tour" when the learner asks for the tour."""

    AUTO_FOCUS = "#help-scroll"  # the scroll takes ↓, PageDown, End at once
    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "close"),
        Binding("g", "glossary", "glossary"),
        Binding("w", "tour", "tour"),
    ]

    def compose(self) -> ComposeResult:
        keys = Table(title="keys", title_style="bold", show_header=False, box=None,
                     padding=(0, 2, 0, 0), expand=False)
        for k, v in help_rows():
            keys.add_row(Text(k, style="bold cyan"), v)
        panes = Table(title="panes", title_style="bold", show_header=False, box=None,
                      padding=(0, 2, 0, 0))
        for p in PANES:
            panes.add_row(Text(p.key, style="bold cyan"), Text(p.title, style="bold"), p.about)
        gl = Table(title=glossary.TITLE, title_style="bold",
                   box=None, padding=(0, 2, 0, 0))
        gl.add_column("name", style="bold", no_wrap=True)
        gl.add_column("meaning", style="grey70", ratio=3)
        gl.add_column("formula", style="cyan", ratio=2)
        for name, meaning, formula in glossary_rows():
            gl.add_row(name, meaning, formula)
        with VerticalScroll(id="help-scroll"):
            yield Static(Text.assemble(
                ("Start here: ", "bold"), ("w", "bold cyan"),
                " takes the guided tour of one BatchNorm forward and backward; ",
                ("n", "bold cyan"), " and ", ("b", "bold cyan"),
                " step through the pass yourself.\n",
                ("↓ PageDown End", "bold cyan"), " scroll this help, ", ("g", "bold cyan"),
                " jumps to the glossary, ", ("escape", "bold cyan"), " closes it."),
                id="help-start")
            yield Static(keys, id="help-keys")
            yield Static(panes, id="help-panes")
            yield Static(gl, id="help-glossary")
            yield Static("BatchNorm follows torch.nn.BatchNorm1d: ε inside the root, "
                         "biased variance in training, unbiased running variance, eval "
                         "mode uses the running statistics.", id="help-note")

    def action_glossary(self) -> None:
        glossary = self.query_one("#help-glossary")
        self.query_one("#help-scroll", VerticalScroll).scroll_to_widget(
            glossary, top=True, animate=False)

    def action_tour(self) -> None:
        self.dismiss("tour")
