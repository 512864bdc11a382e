"""The h-sweep lab: the numerical gradient's error against h on a log-log plot, float64
beside float32, with the bottom of each V marked."""

from __future__ import annotations

import math
from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Static
from textual_plotext import PlotextPlot

from bntui.engine.config import RunConfig
from bntui.engine.errors import BntuiError
from bntui.engine.labs.hsweep import DEFAULT_ARCH, HSweep, h_sweep
from bntui.ui.form import Note, parse_number
from bntui.ui.labs.computed import ComputedLab
from bntui.ui.plots import LINE, Chart, log_axis, set_legend

COLORS = {"float64": (86, 156, 250), "float32": (245, 140, 60)}


class SweepPlot(PlotextPlot):
    """Error against h, both axes logarithmic: log10 of both is plotted and the ticks
    labelled with the powers of ten (plotext's own log scale takes the log again at every
    render, see `plots.log_axis`)."""

    def replot(self, sweep: HSweep) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        shown: list[float] = []
        for dtype, errs in sweep.errors.items():
            pts = [(math.log10(h), math.log10(e)) for h, e in zip(sweep.hs, errs, strict=True)
                   if 0 < e < math.inf]
            plt.plot([x for x, _ in pts], [y for _, y in pts],
                     color=COLORS.get(dtype, "white"), marker=LINE)
            shown += [y for _, y in pts]
            h, e = sweep.best(dtype)
            if 0 < e < math.inf:
                plt.scatter([math.log10(h)], [math.log10(e)], color=COLORS.get(dtype, "white"),
                            marker="●")
        xs = [math.log10(h) for h in sweep.hs]
        plt.xticks(*log_axis(xs, most=7))
        if shown:
            plt.yticks(*log_axis(shown, most=7))
        set_legend(self, "max relative error of (L(w+h) − L(w−h)) / 2h against backprop",
                   [(dtype, COLORS.get(dtype, "white")) for dtype in sweep.errors])
        plt.xlabel("h")
        self.refresh()


class HSweepLab(ComputedLab):
    LAB_ID = "hsweep"
    TITLE = "The h sweep"
    BLURB = ("A centred difference has two errors: truncation, which falls like h², and "
             "rounding, which grows like u/h. On a log-log plot they make a V; float32's "
             "bottom sits higher and at a larger h than float64's.")

    DEFAULT_CSS = """
    HSweepLab #hs-bar { height: 3; }
    HSweepLab #hs-bar > Label { padding: 1 1 0 1; }
    HSweepLab #hs-arch { width: 1fr; max-width: 30; }
    HSweepLab #hs-rows { width: 9; padding: 0 1; }
    HSweepLab #hs-body { height: 1fr; }
    HSweepLab #hs-body > Chart { height: 1fr; min-height: 12; }
    HSweepLab #hs-run { min-width: 9; }
    HSweepLab #hs-summary { height: auto; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal(id="hs-bar"):
            yield Label("network")
            yield Input(DEFAULT_ARCH, id="hs-arch")
            yield Label("rows")
            yield Input("32", id="hs-rows")
            yield Button("Sweep", id="hs-run", variant="primary")
        yield Note()
        with VerticalScroll(id="hs-body"):
            yield Chart(SweepPlot(id="hs-plot"))
            yield Static(id="hs-summary")

    def job(self, config: RunConfig) -> Callable[[], HSweep]:
        arch = self.query_one("#hs-arch", Input).value.strip()
        if not arch:
            raise BntuiError("network is empty (e.g. 8:tanh,8:tanh,C)")
        rows = parse_number(self.query_one("#hs-rows", Input).value, "rows", integer=True,
                            low=2)
        cfg = config.with_overrides(arch=arch)
        from bntui.engine.arch import parse_arch

        parse_arch(arch)  # a bad spec is reported here, before the thread starts
        return lambda: h_sweep(cfg, samples=int(rows))  # type: ignore[arg-type]

    @on(Button.Pressed, "#hs-run")
    @on(Input.Submitted, "#hs-bar Input")
    def rerun(self) -> None:
        self.start()

    def show(self, result: HSweep) -> None:
        self.query_one(SweepPlot).replot(result)
        t = Text()
        t.append(f"{result.network} on {result.samples} rows of {result.dataset}, "
                 f"{result.entries} gradient entries\n", style="grey50")
        for dtype in result.errors:
            h, e = result.best(dtype)
            t.append(f"best h {dtype}: ", style="bold")
            t.append(f"{h:.1e}", style="bold rgb({},{},{})".format(*COLORS[dtype]))
            t.append(f"  error {e:.2e}   (∛(3u) predicts ≈ {result.predicted_best_h(dtype):.0e})\n")
        t.append("right of the bottom: truncation, slope ≈ 2; left: rounding, slope ≈ −1; "
                 "error 1: w ± h rounds to w, the difference is 0", style="grey50")
        for note in result.notes:
            t.append(f"\nnote: {note}", style="yellow")
        self.query_one("#hs-summary", Static).update(t)
