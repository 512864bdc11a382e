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

from bntui.engine import batchnorm, dense, loss
from bntui.ui.keys import help_rows
from bntui.ui.registry import PANES


def glossary_rows() -> list[tuple[str, str, str]]:
    """(name, meaning, formula) for every tensor of one block and of the loss, in the order
    of the pass.  The one place the glossary is built: meanings and formulas are the
    engine's text where the engine has them."""
    bn_f, bn_m = batchnorm.FORMULAS, batchnorm.EXPLANATIONS
    return [
        ("X", "the input of the block: the batch, one row per sample", "X, (m, D)"),
        ("Z", "the Dense layer's output: each unit's weighted sum of the inputs",
         dense.FORMULAS["Z"]),
        *[(n, bn_m[n], bn_f[n]) for n in ("mu", "Z0", "var", "std", "Znorm", "Zbn")],
        ("A", "the activation's output, element by element", "A = f(Zbn)"),
        ("P", loss.EXPLANATIONS["P"], loss.FORMULAS["P"]),
        ("loss", loss.EXPLANATIONS["loss"], loss.FORMULAS["loss"]),
        ("dlogits", loss.EXPLANATIONS["dlogits"], loss.FORMULAS["dlogits"]),
        ("dA", "the gradient arriving from the layer above", "dA = dX of the next layer"),
        ("dZbn", "through the activation: times its local slope", "dZbn = dA · f′(Zbn)"),
        *[(n, bn_m[n], bn_f[n]) for n in ("dbeta", "dgamma", "dZnorm", "dstd", "dvar", "dZ0",
                                          "dmu", "dZ")],
        ("dZ (compact)", "the same dZ, in one formula", bn_f["dZ_compact"]),
        ("dW", "each weight's gradient: its input times its output's gradient, summed",
         dense.FORMULAS["dW"]),
        ("db", "the bias's gradient, summed over the batch (zero before BatchNorm)",
         dense.FORMULAS["db"]),
        ("dX", "the gradient passed down to the layer below", dense.FORMULAS["dX"]),
    ]


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
        gl = Table(title="glossary (one BatchNorm block; m = batch size)", title_style="bold",
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
