"""The Training pane: one step, N steps, play/pause, reset; live loss and accuracy curves
and the decision regions."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from bntui.engine.errors import BntuiError
from bntui.engine.regions import RegionMap
from bntui.engine.session import Session
from bntui.ui.form import Note, parse_number
from bntui.ui.messages import TrainRequest
from bntui.ui.plots import AccuracyPlot, LossPlot, RegionPlot


class TrainingPane(Vertical):
    DEFAULT_CSS = """
    TrainingPane { padding: 0 1; }
    TrainingPane #train-controls { height: 3; }
    TrainingPane #train-controls > Button { margin-right: 1; min-width: 10; }
    TrainingPane #train-controls > Input { width: 10; }
    TrainingPane #train-controls > Label { padding: 1 1 0 1; }
    TrainingPane #train-status { height: auto; }
    TrainingPane #plots { grid-size: 2 2; grid-columns: 1fr 1fr; grid-rows: 1fr 1fr; }
    TrainingPane RegionPlot { row-span: 2; }
    TrainingPane PlotextPlot { min-height: 8; }
    """

    def on_mount(self) -> None:
        self.app.load_pane(self)  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        with Horizontal(id="train-controls"):
            yield Button("Step (t)", id="step")
            yield Button("Run", id="run-n")
            yield Input("100", id="n-steps")
            yield Label("steps")
            yield Button("▶ Play (space)", id="play", variant="success")
            yield Button("Reset (r)", id="reset", variant="warning")
        yield Static(id="train-status")
        yield Note()
        with Grid(id="plots"):
            yield RegionPlot(id="regions")
            yield LossPlot(id="loss")
            yield AccuracyPlot(id="accuracy")

    def set_playing(self, playing: bool) -> None:
        b = self.query_one("#play", Button)
        b.label = "⏸ Pause (space)" if playing else "▶ Play (space)"
        b.variant = "error" if playing else "success"

    def show(self, session: Session, regions: RegionMap | None, message: str = "") -> None:
        h = session.history
        t = Text()
        t.append(f"step {session.step_count:,}", style="bold")
        if h.loss:
            t.append(f"   loss {h.loss[-1]:.5g}")
        if h.eval_step:
            t.append(f"   train acc {100 * h.train_accuracy[-1]:.1f} %")
            if h.val_accuracy[-1] is not None:
                t.append(f"   validation acc {100 * h.val_accuracy[-1]:.1f} %")
        t.append(f"   ({session.optimizer.describe()}, batch {session.batch_size})",
                 style="grey50")
        self.query_one("#train-status", Static).update(t)
        note = self.query_one(Note)
        if message:
            note.error(message)
        self.query_one(LossPlot).replot(h)
        self.query_one(AccuracyPlot).replot(h)
        if regions is not None:
            self.query_one(RegionPlot).replot(regions)

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
