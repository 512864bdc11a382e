"""The Training pane: one step, N steps, play/pause, reset; live loss and accuracy curves
and the decision regions.

It draws the app's `Snapshot` (bound from the app with the play state and the active
tab): the step, the curves and the regions of one moment, the same one the status line
and the stepper show.  Plots are drawn only while the pane is on screen, and only what
changed: the curves when the history grew (while training, at most every
`CURVES_EVERY` seconds), the map when the snapshot carries a new one (while training, at
most every `REGIONS_EVERY` seconds, see `training_worker`); the status line lays the
screen out again only when it needs another line.  The step and the loss follow every
redraw of the app (`REDRAW_EVERY`).  An accuracy the engine estimated on its evaluation
sample (`History.eval_exact`) is marked "≈", and the line says how many rows the
estimates read.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import var
from textual.widgets import Button, Input, Label, Static

from bntui.engine.errors import BntuiError
from bntui.ui.form import Note, parse_number
from bntui.ui.live import LiveView
from bntui.ui.messages import TrainRequest
from bntui.ui.plots import AccuracyPlot, Chart, LossPlot
from bntui.ui.region_view import PlaneView
from bntui.ui.state import Snapshot

PANE_ID = "training"
CURVES_EVERY = 1.0  # seconds between two redraws of the curves while training (the costly part)


class RegionView(PlaneView):
    """The decision regions of the snapshot (the app asks the engine for this size)."""


class StatusLine(Static):
    """Text that changes often: a new layout of the screen (which costs more than the
    rest of a redraw) only when the text needs another number of lines."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._lines = 0

    def show(self, text: Text) -> None:
        width = self.content_region.width
        lines = len(text.wrap(self.app.console, width)) if width else 0
        self.update(text, layout=lines != self._lines or not width)
        self._lines = lines


class TrainingPane(LiveView, Vertical):
    BINDS = ("snapshot", "playing", "active_tab", "evaluating")
    snapshot: var[Snapshot | None] = var(None, init=False)
    playing: var[bool] = var(False, init=False)
    active_tab: var[str] = var("", init=False)
    evaluating: var[bool] = var(False, init=False)

    def __init__(self) -> None:
        super().__init__()
        self._drawn: Snapshot | None = None
        self._curves: tuple[object, ...] | None = None  # what the curves were drawn from
        self._curves_at = 0.0  # when (time.monotonic)
        self._map: object = None  # the region map drawn

    def compose(self) -> ComposeResult:
        with Horizontal(id="train-controls"):
            yield Button("Step (t)", id="step", compact=True)
            yield Button("Run", id="run-n", compact=True)
            yield Input("100", id="n-steps", compact=True)
            yield Label("steps")
            yield Button("▶ Play (space)", id="play", variant="success", compact=True)
            yield Button("Reset (r)", id="reset", variant="warning", compact=True)
        yield StatusLine(id="train-status")
        yield Note()
        with Horizontal(id="plots"):
            yield RegionView(id="regions")
            with Vertical(id="curves"):
                yield Chart(LossPlot(id="loss"))
                yield Chart(AccuracyPlot(id="accuracy"))

    # state pushed down by the app ---------------------------------------------------------
    def watch_playing(self, playing: bool) -> None:
        b = self.query_one("#play", Button)
        b.label = "⏸ Pause (space)" if playing else "▶ Play (space)"
        b.variant = "error" if playing else "success"
        b.refresh(layout=True)  # a label of another width (a label alone lays nothing out)

    def watch_snapshot(self) -> None:
        self.draw()

    def watch_evaluating(self) -> None:
        self._drawn = None  # the same snapshot, another line
        self.draw()

    def watch_active_tab(self) -> None:
        self.draw()

    def draw(self) -> None:
        """Draw the snapshot, once, when the pane is on screen."""
        snap = self.snapshot
        if snap is None or snap is self._drawn or self.active_tab != PANE_ID:
            return
        self._drawn = snap
        session, h = snap.session, snap.history
        t = Text()
        t.append(f"step {snap.step:,}", style="bold")
        if h.loss:
            t.append(f"   loss {h.loss[-1]:.5g}")
        if h.eval_step:
            mark = "" if h.eval_exact[-1] else "≈"
            t.append(f"   train acc {mark}{100 * h.train_accuracy[-1]:.1f} %")
            if h.val_accuracy[-1] is not None:
                t.append(f"   validation acc {mark}{100 * h.val_accuracy[-1]:.1f} %")
            if mark:
                read, rows = session.eval_rows
                more = "; every row being evaluated…" if self.evaluating else ""
                t.append(f"   (≈: estimated on {read:,} of {rows:,} rows{more})",
                         style="grey50")
        t.append(f"   ({session.optimizer.describe()}, batch {session.batch_size})",
                 style="grey50")
        self.query_one(StatusLine).show(t)
        if snap.stopped:
            self.query_one(Note).error(snap.stopped)
        # the session, the lengths and the last evaluation (one can be replaced in place)
        drawn = (session, len(h.loss), len(h.eval_step),
                 h.eval_exact[-1] if h.eval_step else None,
                 h.train_accuracy[-1] if h.eval_step else None)
        recent = self.playing and time.monotonic() - self._curves_at < CURVES_EVERY
        if drawn != self._curves and not recent:
            self._curves, self._curves_at = drawn, time.monotonic()
            self.query_one(LossPlot).replot(h)
            self.query_one(AccuracyPlot).replot(h)
        regions = snap.regions
        if regions is not None and regions is not self._map:
            self._map = regions
            title = "decision regions"
            if regions.plane.explained is not None:
                title += f" (PCA plane, {100 * sum(regions.plane.explained):.0f}% of variance)"
            ds = session.dataset
            self.query_one(RegionView).show_regions(regions, title, list(ds.class_names))

    # the learner's requests ----------------------------------------------------------------
    @on(Button.Pressed, "#step")
    def one(self) -> None:
        self.post_message(TrainRequest(steps=1))

    @on(Button.Pressed, "#run-n")
    @on(Input.Submitted, "#n-steps")
    def run_n(self) -> None:
        try:
            n = parse_number(self.query_one("#n-steps", Input).value, "steps", integer=True,
                             low=1)
        except BntuiError as exc:
            self.query_one(Note).error(str(exc))
            return
        self.query_one(Note).clear()
        self.post_message(TrainRequest(steps=int(n)))  # type: ignore[arg-type]

    @on(Button.Pressed, "#play")
    def play(self) -> None:
        self.post_message(TrainRequest(play=True))

    @on(Button.Pressed, "#reset")
    def reset(self) -> None:
        self.post_message(TrainRequest(reset=True))
