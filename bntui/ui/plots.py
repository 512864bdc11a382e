"""Line plots drawn with plotext through textual-plotext — loss and accuracy by step, and
the helpers every lab's plot uses — each under a one-line title and legend (`Chart`), so no
legend ever covers data.  Lines are drawn in braille dots, the thinnest marker there is.
The data come from the engine (the session's history, the labs' results).

The decision regions and the dataset preview are drawn cell by cell in
`bntui.ui.region_view`.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from bntui.engine.session import History

LINE = "braille"  # the thinnest marker: 2 × 4 dots a character
TRAIN_COLOR, VAL_COLOR = "cyan", "orange"
RICH_NAMES = {"orange": "dark_orange", "gray": "grey50", "grey": "grey50",
              "white": "grey93"}


def rich_color(color: str | tuple[int, int, int]) -> str:
    """A plotext colour (a name or RGB) as a Rich style."""
    if isinstance(color, tuple):
        return f"rgb({color[0]},{color[1]},{color[2]})"
    return RICH_NAMES.get(color, color)


class Legend(Static):
    """A plot's title and legend, on the line above it."""

    DEFAULT_CSS = """
    Legend { height: auto; max-height: 3; width: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.shown = Text()

    def show(self, text: Text) -> None:
        """Show `text` (only if it changed: an update lays the screen out again)."""
        if text != self.shown:
            self.shown = text
            self.update(text)


class Chart(Vertical):
    """A `Legend` line over a plot (the plot keeps its id: queries find it as before)."""

    DEFAULT_CSS = """
    Chart { height: 1fr; }
    Chart > PlotextPlot { height: 1fr; }
    """

    def __init__(self, plot: PlotextPlot, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.plot = plot

    def compose(self) -> ComposeResult:
        yield Legend()
        yield self.plot


def set_legend(plot: PlotextPlot, title: str,
               entries: list[tuple[str, str | tuple[int, int, int]]] = (),  # type: ignore[assignment]
               marker: str = "━") -> None:
    """Write `title` and the legend `entries` (label, plotext colour) on the line above
    `plot` (its `Chart`); a plot outside a Chart gets the title alone, in its frame."""
    chart = plot.parent
    if not isinstance(chart, Chart):
        plot.plt.title(title)
        return
    t = Text()
    t.append(title, style="bold")
    for label, color in entries:
        t.append("   ")
        t.append(marker, style=f"bold {rich_color(color)}")
        t.append(f" {label}")
    chart.query_one(Legend).show(t)


def thin(xs: list, ys: list, most: int = 400) -> tuple[list, list]:
    """At most `most` points, evenly spaced, always keeping the last one."""
    if len(xs) <= most:
        return xs, ys
    step = len(xs) / most
    idx = sorted({int(i * step) for i in range(most)} | {len(xs) - 1})
    return [xs[i] for i in idx], [ys[i] for i in idx]


def log_axis(log_values: list[float], most: int = 6) -> tuple[list[float], list[str]]:
    """Ticks and labels for an axis drawn from log10 values, labelled with the values.

    plotext's own `xscale`/`yscale("log")` takes the log of the stored data again at every
    render, so a second render (a resize, a refresh) fails once a value is below 1: plot
    log10 of the data and label the ticks with this instead.  Whole powers of ten (at most
    about `most`), or four values with three digits when the data span less than a decade.
    """
    lo, hi = min(log_values), max(log_values)
    decades = list(range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1))
    if len(decades) >= 2:
        ticks = [float(k) for k in decades[:: math.ceil(len(decades) / most)]]
        return ticks, [f"1e{k:.0f}" if k else "1" for k in ticks]
    ticks = [lo + (hi - lo) * i / 3 for i in range(4)] if hi > lo else [lo]
    return ticks, [f"{10 ** t:.3g}" for t in ticks]


def log_ticks(plot: PlotextPlot, log_values: list[float]) -> None:
    """Label the y axis of `plot`, drawn from log10 values (see `log_axis`)."""
    plot.plt.yticks(*log_axis(log_values))


def _curves(plot: PlotextPlot, title: str, train: tuple[list, list],
            val_steps: list[int], val: list[float | None], log: bool = False) -> None:
    """Draw a training curve and the validation points that exist, thinned, by step;
    with `log`, on a log10 axis (every value must then be > 0)."""
    plt = plot.plt
    plt.clear_data()
    plt.clear_figure()

    def drawable(xs: list, ys: list) -> tuple[list, list]:
        """The finite points (positive ones on a log axis), as drawn."""
        keep = [(x, v) for x, v in zip(xs, ys, strict=True)
                if v is not None and math.isfinite(v) and (v > 0 or not log)]
        return [x for x, _ in keep], [math.log10(v) if log else v for _, v in keep]

    shown: list[float] = []
    entries: list[tuple[str, str | tuple[int, int, int]]] = []
    if train[0]:
        xs, ys = drawable(*thin(*train))
        if xs:
            plt.plot(xs, ys, color=TRAIN_COLOR, marker=LINE)
            shown += ys
            entries.append(("train", TRAIN_COLOR))
        xs, ys = drawable(*thin(list(val_steps), list(val)))
        if xs:
            plt.plot(xs, ys, color=VAL_COLOR, marker=LINE)
            shown += ys
            entries.append(("validation", VAL_COLOR))
    if log and shown:
        log_ticks(plot, shown)
    set_legend(plot, title, entries)


class LossPlot(PlotextPlot):
    """Training loss by step, and validation loss at each evaluation."""

    def replot(self, history: History) -> None:
        # a log axis while every finite loss is > 0 (non-finite ones are not drawn)
        log = bool(history.loss) and all(
            v > 0 for v in (*history.loss, *history.val_loss)
            if v is not None and math.isfinite(v))
        title = "loss by step (log scale)" if log else "loss by step"
        _curves(self, title, (history.step, history.loss), history.eval_step, history.val_loss,
                log=log)
        self.refresh()


class AccuracyPlot(PlotextPlot):
    """Train and validation accuracy (eval mode) at each evaluation."""

    def replot(self, history: History) -> None:
        _curves(self, "accuracy by step (eval mode)", (history.eval_step, history.train_accuracy),
                history.eval_step, history.val_accuracy)
        if history.eval_step:
            self.plt.ylim(0, 1.02)
        self.refresh()
