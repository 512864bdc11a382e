"""The layer-health lab: histograms of Z, Zbn and A for a chosen layer, saturated and dead
units, update-to-data ratios and the first tensor that turned NaN or infinite."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static
from textual_plotext import PlotextPlot

from bntui.engine.config import RunConfig
from bntui.engine.labs.health import DEFINITIONS, HealthReport, Histogram, run_health
from bntui.numbers import fmt
from bntui.ui.form import Note, parse_number
from bntui.ui.labs.computed import ComputedLab

COLORS = {"Z": "cyan", "Zbn": "orange", "A": "green"}


class HistPlot(PlotextPlot):
    """One tensor's histogram, drawn from the engine's edges and counts."""

    def replot(self, h: Histogram | None, title: str) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if h is None or not h.counts:
            plt.title(f"{title}: " + ("—" if h is None else "no finite value"))
            self.refresh()
            return
        edges = h.edges
        centers = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
        plt.bar(centers, h.counts, width=0.8, color=COLORS.get(h.name, "cyan"), marker="sd")
        ticks = [edges[0], (edges[0] + edges[-1]) / 2, edges[-1]]
        plt.xticks(ticks, [fmt(t) for t in ticks])
        plt.title(title + (f" ({h.nonfinite} non-finite)" if h.nonfinite else ""))
        self.refresh()


class HealthLab(ComputedLab):
    LAB_ID = "health"
    TITLE = "Layer health"
    BLURB = ("Train, then look inside: the spread of Z, Zbn and A per layer, sigmoid/tanh "
             "units stuck in their flat tails, ReLUs that never fire, how big one step is "
             "next to the weights (≈ 1e-3 is healthy) and where a NaN first appears.")

    DEFAULT_CSS = """
    HealthLab #health-bar { height: 3; }
    HealthLab #health-bar > Label { padding: 1 1 0 1; }
    HealthLab #health-steps { width: 10; padding: 0 1; }
    HealthLab #health-run { min-width: 7; }
    HealthLab #health-layer { width: 24; }
    HealthLab.narrow #health-layer { width: 1fr; }
    HealthLab.narrow #health-hists { height: 11; }
    HealthLab.narrow #health-tables { layout: vertical; }
    HealthLab #health-body { height: 1fr; }
    HealthLab #health-summary { height: auto; }
    HealthLab #health-hists { height: 13; }
    HealthLab HistPlot { width: 1fr; min-height: 8; }
    HealthLab #health-tables { height: auto; }
    HealthLab #health-layers { width: 1fr; height: auto; }
    HealthLab #health-updates { width: 1fr; height: auto; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal(id="health-bar"):
            yield Label("steps")
            yield Input("200", id="health-steps")
            yield Button("Run", id="health-run", variant="primary")
            yield Label("layer")
            yield Select([], id="health-layer", allow_blank=True, prompt="layer")
        yield Note()
        with VerticalScroll(id="health-body"):
            yield Static(id="health-summary")
            with Horizontal(id="health-hists"):
                for name in ("Z", "Zbn", "A"):
                    yield HistPlot(id=f"health-hist-{name}")
            with Horizontal(id="health-tables"):
                yield Static(id="health-layers")
                yield Static(id="health-updates")

    def job(self, config: RunConfig) -> Callable[[], HealthReport]:
        steps = parse_number(self.query_one("#health-steps", Input).value, "steps",
                             integer=True, low=0)
        return lambda: run_health(config, steps=int(steps))  # type: ignore[arg-type]

    @on(Button.Pressed, "#health-run")
    @on(Input.Submitted, "#health-steps")
    def rerun(self) -> None:
        self.start()

    def show(self, result: HealthReport) -> None:
        r = result
        sel = self.query_one("#health-layer", Select)
        old = sel.value
        sel.set_options([(f"{lay.layer} · {lay.activation}", lay.layer)
                         for lay in r.layers])
        indices = [lay.layer for lay in r.layers]
        sel.value = old if old in indices else indices[0]
        self._summary(r)
        self._tables(r)
        self.draw_layer()

    def _summary(self, r: HealthReport) -> None:
        t = Text()
        t.append(f"{r.network}", style="bold")
        t.append(f"  after {r.steps} steps of {r.optimizer}, {r.samples} training samples\n",
                 style="grey50")
        if r.stopped:
            t.append(r.stopped + "\n", style="yellow")
        nf = r.first_nonfinite
        if nf is None:
            t.append("✓ every tensor of a pass, and of one more step, is finite", style="green")
        else:
            t.append("✗ first non-finite tensor: " + nf.describe(), style="bold red")
        self.query_one("#health-summary", Static).update(t)

    def _tables(self, r: HealthReport) -> None:
        lt = Table(title="units", title_style="bold", box=None, padding=(0, 1))
        for col in ("layer", "act", "saturated", "stuck", "dead"):
            lt.add_column(col)
        for lay in r.layers:
            lt.add_row(
                str(lay.layer), lay.activation,
                "—" if lay.saturation is None else f"{100 * lay.saturation:.1f} %",
                "—" if lay.stuck_units is None else f"{len(lay.stuck_units)}/{lay.width}",
                "—" if lay.dead_units is None else Text(
                    f"{len(lay.dead_units)}/{lay.width}",
                    style="red" if lay.dead_units else ""),
            )
        defs = Text(f"\nsaturated: {DEFINITIONS['saturated']}\nstuck: {DEFINITIONS['stuck']}"
                    f"\ndead: {DEFINITIONS['dead']}", style="grey50")
        self.query_one("#health-layers", Static).update(Group(lt, defs))
        ut = Table(title="‖ΔW‖ / ‖W‖, one more step", title_style="bold", box=None,
                   padding=(0, 1))
        for col in ("param", "ratio", "verdict"):
            ut.add_column(col)
        styles = {"ok": "green", "large": "red", "small": "yellow", "non-finite": "bold red"}
        for u in r.updates:
            ut.add_row(u.key, "—" if u.ratio is None else fmt(u.ratio),
                       Text(u.verdict, style=styles.get(u.verdict, "grey50")))
        self.query_one("#health-updates", Static).update(ut)

    @on(Select.Changed, "#health-layer")
    def draw_layer(self) -> None:
        r: HealthReport | None = self.result
        value = self.query_one("#health-layer", Select).value
        if r is None or not isinstance(value, int):
            return
        lay = r.layer(value)
        for name in ("Z", "Zbn", "A"):
            plot = self.query_one(f"#health-hist-{name}", HistPlot)
            # the output block's A would be the logits again (softmax is in the loss);
            # without BatchNorm there is no Zbn
            plot.display = name in lay.hists
            if name in lay.hists:
                label = f"A = {lay.activation}({lay.pre_name})" if name == "A" else name
                plot.replot(lay.hists[name], f"layer {lay.layer}: {label}")
