"""The stepper: one step of the recorded trace at a time — where it is in the network,
its formula, a one-line explanation, the tensor as a colour-scaled grid with its shape and
statistics, and its relative errors once gradients are checked.

Everything shown comes from the engine's `Trace`; this module only lays it out.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from bntui.engine.network import Network
from bntui.engine.trace import Trace, TraceStep
from bntui.numbers import fmt as fmt_cell
from bntui.ui.tensor_grid import TensorGrid

GOOD, OK = 1e-7, 1e-4


def error_style(err: float | None) -> str:
    """Green below 1e-7, yellow below 1e-4, red above."""
    if err is None:
        return "grey50"
    return "green" if err < GOOD else "yellow" if err < OK else "bold red"


def network_map(network: Network, step: TraceStep | None) -> Text:
    """A one-line map of the blocks with the current layer and tensor highlighted."""
    t = Text()
    here = step.layer if step is not None else None
    on_input = step is not None and step.kind == "input"
    t.append(" X ", style="reverse bold" if on_input else "bold")
    for block in network.blocks:
        t.append(" → ")
        parts = ["Dense"]
        if block.bn is not None:
            parts.append("BN")
        if not block.is_output:
            parts.append(block.act.label)
        label = f" {block.index}: {'·'.join(parts)} ({block.dense.fan_out}) "
        style = "reverse bold cyan" if here == block.index and not on_input else "cyan"
        t.append(label, style=style)
    t.append(" → ")
    t.append(" softmax·CE ", style="reverse bold magenta" if step is not None
             and step.layer is None else "magenta")
    return t


class StepperPane(Vertical):
    """Shows `trace.steps[index]`; the app moves the index and swaps traces."""

    DEFAULT_CSS = """
    /* fixed heights: a new step repaints these lines without a new layout */
    StepperPane { padding: 0 1; }
    StepperPane > Static { width: 1fr; }
    StepperPane #map { height: 2; }
    StepperPane #where { height: 2; }
    StepperPane #formula { height: 2; color: $accent; text-style: bold; }
    StepperPane #why { height: 1; color: $text-muted; }
    StepperPane #stats { height: 1; }
    StepperPane #errors { height: 3; }
    StepperPane TensorGrid { border: round $primary-darken-2; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="map")
        yield Static(id="where")
        yield Static(id="formula")
        yield Static(id="why")
        yield Static(id="stats")
        yield Static(id="errors")
        yield TensorGrid(id="grid")

    def show(self, network: Network, trace: Trace, index: int, note: str = "") -> None:
        step = trace.steps[index]
        self.query_one("#map", Static).update(network_map(network, step))
        shape = "×".join(str(d) for d in step.shape) or "scalar"
        where = Text()
        where.append(f"step {index + 1}/{len(trace)} ", style="bold")
        where.append(f"· {step.phase} ", style="bold green" if step.phase == "forward"
                     else "bold yellow")
        where.append(f"· {step.where} · {step.kind} · ")
        where.append(step.name, style="bold reverse")
        where.append(f"  ({shape})  ")
        mode = "training mode (batch statistics)" if trace.training else "eval mode"
        where.append(f"{mode}, {trace.batch_size} samples", style="grey50")
        self.query_one("#where", Static).update(where)
        self.query_one("#formula", Static).update(Text(step.formula))
        self.query_one("#why", Static).update(Text(step.explanation))
        st = step.stats()
        stats = Text()
        for key in ("min", "mean", "max", "std"):
            stats.append(f"{key} ", style="grey50")
            stats.append(f"{fmt_cell(st[key])}   ")
        self.query_one("#stats", Static).update(stats)
        errs = Text()
        if step.phase == "backward" and step.checks:
            errs.append("relative error  ", style="grey50")
            for key in ("numerical", "autograd"):
                if key in step.checks:
                    v = step.checks[key]
                    errs.append(f"vs {key} ")
                    errs.append("—" if v is None else f"{v:.2e}", style=error_style(v))
                    errs.append("   ")
            for n in step.notes:
                errs.append(f"\n{n}", style="italic grey62")
        elif step.phase == "backward":
            errs.append("press g to check this gradient numerically and with autograd",
                        style="grey50")
        if note:
            errs.append(("\n" if errs.plain else "") + note, style="italic yellow")
        self.query_one("#errors", Static).update(errs)
        self.query_one(TensorGrid).set_tensor(step.value)
