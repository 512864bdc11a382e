"""The derivation screen (key `d` in the stepper): the compact backward of a block's
normalization derived from its staged records, one step at a time, each step's largest
difference between its two sides on the stepper's batch (`bntui.engine.derive`)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from bntui.engine.derive import Derivation


def derivation_text(d: Derivation, head: str) -> Text:
    t = Text()
    t.append(f"The compact {d.title} backward, derived from the staged graph\n", style="bold")
    t.append(head + "\n\n", style="grey50")
    for s in d.steps:
        t.append(f"{s.tag}\n", style="bold cyan")
        t.append(f"  {s.formula}\n", style="bold")
        t.append(f"  because {s.why}\n", style="grey70")
        ok = s.relative < 1e-12
        t.append(f"  on this batch the two sides differ by at most {s.max_diff:.1e} "
                 f"(relative {s.relative:.1e})\n\n", style="green" if ok else "bold red")
    t.append("staged vs compact  ", style="bold cyan")
    t.append(f"the stepper's staged dZ and the compact code's differ by at most "
             f"{d.staged_vs_compact:.1e} (values up to {d.dz_scale:.3g})\n")
    t.append("\nescape / q / d: back to the stepper", style="grey50")
    return t


class DeriveScreen(ModalScreen[None]):
    """A derivation, scrollable; any of escape, q or d closes it."""

    AUTO_FOCUS = "#derive-scroll"
    BINDINGS = [Binding("escape,q,d", "dismiss", "close")]
    DEFAULT_CSS = """
    DeriveScreen { align: center middle; }
    DeriveScreen > VerticalScroll { width: 100%; max-width: 110; height: 100%;
        border: round $accent; background: $surface; padding: 0 1; }
    """

    def __init__(self, derivation: Derivation, head: str) -> None:
        super().__init__()
        self.derivation, self.head = derivation, head

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="derive-scroll"):
            yield Static(derivation_text(self.derivation, self.head), id="derive-text")
