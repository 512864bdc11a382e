"""The optimizer-race lab: every optimizer's loss on one plot, and an inspector of each
one's state (velocity, G, s, m, v, m̂, v̂, bias factors) for a chosen parameter."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static
from textual_plotext import PlotextPlot

from bntui.engine.config import RunConfig
from bntui.engine.labs.race import SLOT_LABELS, Racer, RaceResult, parse_optimizers, race
from bntui.numbers import fmt
from bntui.ui.form import Note, parse_number
from bntui.ui.labs.computed import ComputedLab
from bntui.ui.plots import LINE, Chart, log_ticks, set_legend, thin


def rgb(name: str) -> str:
    """The racer's colour as a Rich style."""
    r, g, b = COLORS.get(name, (230, 230, 230))
    return f"rgb({r},{g},{b})"


COLORS = {"sgd": (150, 150, 150), "momentum": (86, 156, 250), "nesterov": (70, 215, 215),
          "adagrad": (196, 120, 235), "rmsprop": (250, 196, 60), "adam": (235, 87, 87)}


def race_title(result: RaceResult) -> str:
    """Update u computes its batch loss, then changes the weights: the loss of update u is
    the one it started from, and after the last update t = steps."""
    return f"batch loss at each update 1 … {result.steps} (same start)"


class RacePlot(PlotextPlot):
    """The batch loss of every racer against the update, on a log10 axis (log10 of the
    loss is plotted and the ticks labelled, as `plots.log_ticks` explains)."""

    def replot(self, result: RaceResult) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        log = all(min(r.loss) > 0 for r in result.racers if r.loss)
        shown: list[float] = []
        for r in result.racers:
            if r.loss:
                xs, ys = thin(list(r.steps), r.loss)  # r.steps: the update each loss is of
                if log:
                    ys = [math.log10(v) for v in ys]
                plt.plot(xs, ys, color=COLORS.get(r.optimizer, (230, 230, 230)), marker=LINE)
                shown += ys
        if log and shown:
            log_ticks(self, shown)
        set_legend(self, race_title(result) + (" · log scale" if log else ""),
                   [(r.optimizer, COLORS.get(r.optimizer, (230, 230, 230)))
                    for r in result.racers if r.loss])
        plt.xlabel("update")
        self.refresh()


def state_text(racer: Racer, key: str) -> Text:
    """The optimizer's state for one parameter: each slot's stats and first entries."""
    t = Text()
    t.append(f"{racer.describe}", style="bold")
    t.append(f"   state after t = {racer.session.optimizer.t} updates\n", style="grey50")
    t.append(f"{racer.formula}\n\n", style="cyan")
    state = racer.state(key)
    if not state:
        t.append("plain SGD keeps no state: the step is −η·g itself", style="grey50")
        return t
    scalars = [(n, v) for n, v in state.items() if not isinstance(v, np.ndarray) or v.ndim == 0]
    if scalars:
        t.append("   ".join(f"{SLOT_LABELS.get(n, n)} = {fmt(float(v))}" for n, v in scalars)
                 + "\n", style="bold")
    for name, value in state.items():
        label = SLOT_LABELS.get(name, name)
        if isinstance(value, np.ndarray) and value.ndim > 0:
            v = value.astype(np.float64)
            t.append(f"{label:<3}", style="bold")
            t.append(f" {'×'.join(map(str, v.shape))}  rms {fmt(float(np.sqrt(np.mean(v * v))))}\n")
            t.append(f"    range {fmt(float(v.min()))} … {fmt(float(v.max()))}\n")
            t.append("    " + " ".join(fmt(float(x)) for x in v.reshape(-1)[:4])
                     + (" …" if v.size > 4 else "") + "\n", style="grey70")
    if "m_hat" in state:
        t.append("\nm̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ): early on the bias factors are "
                 "small and lift m and v back to the gradient's own scale.", style="grey50")
    return t


class RaceLab(ComputedLab):
    LAB_ID = "race"
    NARROW = 100  # the list of optimizers needs a line of its own below this
    TITLE = "Optimizer race"
    BLURB = ("The same network, the same first weights and the same batches, trained once "
             "per optimizer. Compare the loss curves, then open each optimizer's state: "
             "momentum's velocity, Adam's m, v and its bias correction.")

    DEFAULT_CSS = """
    RaceLab #race-bar { height: auto; }
    RaceLab #race-bar Label { padding: 1 1 0 1; }
    RaceLab #race-which { width: 1fr; height: auto; }
    RaceLab #race-how { width: auto; height: auto; }
    RaceLab #race-opts { width: 1fr; max-width: 50; }
    RaceLab.narrow #race-bar { layout: vertical; }
    RaceLab.narrow #race-which, RaceLab.narrow #race-how { width: 1fr; }
    RaceLab.narrow #race-opts { max-width: 100%; }
    RaceLab #race-run { min-width: 10; }
    RaceLab #race-steps { width: 10; padding: 0 1; }
    RaceLab #race-body { height: 1fr; }
    RaceLab #race-body > Chart { width: 1fr; min-height: 10; }
    RaceLab #race-side { width: 44; height: 1fr; }
    RaceLab #race-rank { height: auto; }
    RaceLab #race-pick { height: 3; }
    RaceLab #race-pick > Select { width: 1fr; }
    RaceLab #race-state-box { height: 1fr; }
    RaceLab.narrow #race-body { layout: vertical; overflow-y: auto; }
    RaceLab.narrow #race-body > Chart { height: 14; }
    RaceLab.narrow #race-side { width: 1fr; height: auto; }
    RaceLab.narrow #race-state-box { height: auto; }
    RaceLab.narrow #race-run { min-width: 8; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal(id="race-bar"):  # two groups: side by side, stacked when narrow
            with Horizontal(id="race-which"):
                yield Label("optimizers")
                yield Input("sgd,momentum,nesterov,adagrad,rmsprop,adam", id="race-opts")
            with Horizontal(id="race-how"):
                yield Label("steps")
                yield Input("200", id="race-steps")
                yield Button("Race", id="race-run", variant="primary")
        yield Note()
        with Horizontal(id="race-body"):
            yield Chart(RacePlot(id="race-plot"))
            with Vertical(id="race-side"):
                yield Static(id="race-rank")
                with Horizontal(id="race-pick"):
                    yield Select([], id="race-opt", allow_blank=True, prompt="optimizer")
                    yield Select([], id="race-param", allow_blank=True, prompt="parameter")
                with VerticalScroll(id="race-state-box"):
                    yield Static(id="race-state")

    def job(self, config: RunConfig) -> Callable[[], RaceResult]:
        names = parse_optimizers(self.query_one("#race-opts", Input).value)
        steps = parse_number(self.query_one("#race-steps", Input).value, "steps",
                             integer=True, low=1)
        return lambda: race(config, names, steps=int(steps))  # type: ignore[arg-type]

    @on(Button.Pressed, "#race-run")
    @on(Input.Submitted, "#race-bar Input")
    def rerun(self) -> None:
        self.start()

    def show(self, result: RaceResult) -> None:
        self.query_one(RacePlot).replot(result)
        t = Text()
        t.append(f"{result.network}, batch {result.batch_size}\n", style="grey50")
        t.append(f"rank by the loss at update {result.steps}\n", style="grey50")
        for k, r in enumerate(result.ranking()):
            t.append(f"{k + 1}. ", style="bold")
            t.append(f"{r.optimizer:<9}", style=rgb(r.optimizer))
            loss = "—" if r.final_loss is None else fmt(r.final_loss)
            t.append(f" lr {fmt(r.lr):<7} loss {loss}")
            t.append("  stopped (NaN)\n" if r.stopped else "\n", style="red")
        self.query_one("#race-rank", Static).update(t)
        opt_sel = self.query_one("#race-opt", Select)
        par_sel = self.query_one("#race-param", Select)
        old_opt, old_par = opt_sel.value, par_sel.value
        names = [r.optimizer for r in result.racers]
        opt_sel.set_options([(n, n) for n in names])
        par_sel.set_options([(k, k) for k in result.param_keys])
        opt_sel.value = old_opt if old_opt in names else (
            "adam" if "adam" in names else names[0])
        par_sel.value = old_par if old_par in result.param_keys else result.param_keys[0]
        self.draw_state()

    @on(Select.Changed, "#race-opt")
    @on(Select.Changed, "#race-param")
    def draw_state(self) -> None:
        result: RaceResult | None = self.result
        name = self.query_one("#race-opt", Select).value
        key = self.query_one("#race-param", Select).value
        if result is None or not isinstance(name, str) or not isinstance(key, str):
            return
        if key not in result.param_keys or name not in [r.optimizer for r in result.racers]:
            return
        self.query_one("#race-state", Static).update(state_text(result.racer(name), key))
