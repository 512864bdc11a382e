"""Plots drawn with plotext through textual-plotext: loss, accuracy, decision regions and
the dataset preview.  Each widget has one figure and a small `replot` method; the data
come from the engine (the session's history, `decision_regions`, `plane_of`)."""

from __future__ import annotations

import math

import numpy as np
from textual_plotext import PlotextPlot

from bntui.engine.datasets import Dataset
from bntui.engine.regions import RegionMap, plane_of
from bntui.engine.session import History

# RGB, so classes keep distinct colours whatever the terminal theme does to named ones
CLASS_COLORS: list[tuple[int, int, int]] = [
    (235, 87, 87), (86, 156, 250), (250, 196, 60), (110, 205, 110), (196, 120, 235),
    (70, 215, 215), (245, 140, 60), (230, 230, 230), (150, 150, 150), (250, 120, 190),
]


def _color(k: int) -> tuple[int, int, int]:
    return CLASS_COLORS[k % len(CLASS_COLORS)]


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
    plt.title(title)

    def drawable(xs: list, ys: list) -> tuple[list, list]:
        """The finite points (positive ones on a log axis), as drawn."""
        keep = [(x, v) for x, v in zip(xs, ys, strict=True)
                if v is not None and math.isfinite(v) and (v > 0 or not log)]
        return [x for x, _ in keep], [math.log10(v) if log else v for _, v in keep]

    shown: list[float] = []
    if train[0]:
        xs, ys = drawable(*thin(*train))
        if xs:
            plt.plot(xs, ys, label="train", color="cyan", marker="braille")
            shown += ys
        xs, ys = drawable(*thin(list(val_steps), list(val)))
        if xs:
            plt.plot(xs, ys, label="validation", color="orange", marker="braille")
            shown += ys
    if log and shown:
        log_ticks(plot, shown)
    plt.xlabel("step")


class LossPlot(PlotextPlot):
    """Training loss by step, and validation loss at each evaluation."""

    def replot(self, history: History) -> None:
        # a log axis while every finite loss is > 0 (non-finite ones are not drawn)
        log = bool(history.loss) and all(
            v > 0 for v in (*history.loss, *history.val_loss)
            if v is not None and math.isfinite(v))
        _curves(self, "loss (log scale)" if log else "loss", (history.step, history.loss),
                history.eval_step, history.val_loss, log=log)
        self.refresh()


class AccuracyPlot(PlotextPlot):
    """Train and validation accuracy (eval mode) at each evaluation."""

    def replot(self, history: History) -> None:
        _curves(self, "accuracy (eval mode)", (history.eval_step, history.train_accuracy),
                history.eval_step, history.val_accuracy)
        if history.eval_step:
            self.plt.ylim(0, 1.02)
        self.refresh()


class RegionPlot(PlotextPlot):
    """The predicted class over a grid as coloured dots, the training points on top."""

    def replot(self, regions: RegionMap) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plane = regions.plane
        title = "decision regions"
        if plane.explained is not None:
            title += f" (PCA plane, {100 * sum(plane.explained):.0f}% of variance)"
        plt.title(title)
        gx, gy = np.meshgrid(regions.xs, regions.ys)
        for k in np.unique(regions.classes):
            mask = regions.classes == k
            plt.scatter(gx[mask].tolist(), gy[mask].tolist(), marker="·", color=_color(int(k)))
        for k in np.unique(regions.labels):
            pts = regions.points[regions.labels == k]
            plt.scatter(pts[:, 0].tolist(), pts[:, 1].tolist(), marker="●",
                        color=_color(int(k)), label=f"class {k}")
        plt.xlabel(plane.labels[0])
        plt.ylabel(plane.labels[1])
        self.refresh()


class PreviewPlot(PlotextPlot):
    """The training points of a dataset in its plane (PCA for more than 2 features)."""

    def replot(self, dataset: Dataset) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plane = plane_of(dataset)
        P = plane.project(dataset.X_train)
        for k in range(dataset.n_classes):
            pts = P[dataset.y_train == k]
            if len(pts):
                name = dataset.class_names[k] if k < len(dataset.class_names) else str(k)
                plt.scatter(pts[:, 0].tolist(), pts[:, 1].tolist(), marker="●",
                            color=_color(k), label=str(name)[:12])
        title = dataset.name if len(dataset.name) < 30 else "…" + dataset.name[-28:]
        if plane.explained is not None:
            title += f" — PCA, {100 * sum(plane.explained):.0f}% of variance"
        plt.title(title)
        plt.xlabel(plane.labels[0])
        plt.ylabel(plane.labels[1])
        self.refresh()
