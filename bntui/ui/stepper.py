"""The stepper: one step of the recorded trace at a time — where it is in the network,
its formula, a one-line explanation, the tensor as a colour-scaled grid with its shape and
statistics, and its relative errors once gradients are checked.

Everything shown comes from the engine's `Trace`; this module only lays it out.

Inside one step (`bntui.ui.inside`): `v` shows the block's computational graph instead of
the grid (the step's node lit, the nodes it reads marked), `i` one entry's arithmetic
(its formula with the numbers of the entries it reads plugged in, recomputed, each input
in its own small grid; shift+arrows or a click move it), and at the dZ step of a
normalised block the compact formula's dZ beside the staged one.

Exercise mode (key `x`) hides the step's tensor — or its formula, or its shape in the
header — and asks about it (`bntui.engine.labs.exercise.question_at`, in whatever mode the
pass is; what the engine refuses is said inline): an entry to work out from the steps
before, the formula among wrong ones, or the shape.  Enter checks the answer and shows the
tensor again; the score counts the steps answered.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.reactive import var
from textual.widgets import Input, Static

from bntui.engine.errors import BntuiError
from bntui.engine.network import Network
from bntui.engine.trace import Trace, TraceStep
from bntui.numbers import fmt as fmt_cell
from bntui.ui.live import LiveView
from bntui.ui.state import Snapshot
from bntui.ui.tensor_grid import TensorGrid
from bntui.ui.tour import TourPanel

if TYPE_CHECKING:  # the exercise engine loads when exercise mode is first used
    from bntui.engine.labs.exercise import Question, Verdict

GOOD, OK = 1e-7, 1e-4
PANE_ID = "stepper"


def error_style(err: float | None) -> str:
    """Green below 1e-7, yellow below 1e-4, red above."""
    if err is None:
        return "grey50"
    return "green" if err < GOOD else "yellow" if err < OK else "bold red"


def batch_words(rows: int, total: int) -> str:
    """The stepper's batch and what it is of: "batch: 256 of 80,000 rows" (the training
    split's rows)."""
    if rows >= total:
        return f"batch: all {total:,} rows"
    return f"batch: {rows:,} of {total:,} rows"


def network_map(network: Network, step: TraceStep | None) -> Text:
    """A one-line map of the blocks with the current layer and tensor highlighted."""
    t = Text()
    here = step.layer if step is not None else None
    on_input = step is not None and step.kind == "input"
    t.append(" X ", style="reverse bold" if on_input else "bold")
    for block in network.blocks:
        t.append(" → ")
        parts = ["Dense"]
        if block.norm is not None:  # any normalization: BN, LN, GN, RMS
            parts.append(block.norm.short.upper())
        if not block.is_output:
            parts.append(block.act.label)
        label = f" {block.index}: {'·'.join(parts)} ({block.dense.fan_out}) "
        style = "reverse bold cyan" if here == block.index and not on_input else "cyan"
        t.append(label, style=style)
    t.append(" → ")
    t.append(" softmax·CE ", style="reverse bold magenta" if step is not None
             and step.layer is None else "magenta")
    return t


def norm_line(network: Network, step: TraceStep | None) -> str:
    """At a step of a normalization layer (any kind), that layer in one line — "layer 1:
    LayerNorm(16, eps=1e-05)", the layer's own `describe()` — else "" (the stepper shows
    it as the grid's title)."""
    if step is None or step.layer is None:
        return ""
    block = next((b for b in network.blocks if b.index == step.layer), None)
    if block is None or block.norm is None or step.kind != block.norm.kind:
        return ""
    return f"layer {block.index}: {block.norm.describe()}"


def shape_line(step: TraceStep) -> str:
    """The step's tensor and its record's shape rule ("mu: m × G"): what the grid's rows
    and columns are (the grid's subtitle)."""
    return f"{step.name}: {step.node.shape}" if step.node is not None else step.name


class StepperPane(LiveView, Vertical):
    """Shows `snapshot.trace.steps[index]`; the app owns the position and the trace and
    pushes them down (`BINDS`), the tour panel above the grid follows the same state."""

    BINDS = ("snapshot", "index", "note", "exercise", "tour", "active_tab", "graph_view",
             "entry")
    snapshot: var[Snapshot | None] = var(None, init=False)
    active_tab: var[str] = var(PANE_ID, init=False)  # drawn only while on screen
    index: var[int] = var(0, init=False)
    note: var[str] = var("", init=False)
    exercise: var[bool] = var(False, init=False)
    tour: var[int | None] = var(None, init=False)
    graph_view: var[bool] = var(False, init=False)
    entry: var[tuple[int, ...] | None] = var(None, init=False)

    def __init__(self) -> None:
        super().__init__()
        self.question: Question | None = None
        self.verdicts: dict[int, Verdict] = {}  # step → verdict, for `_verdict_trace`
        self._verdict_trace: Trace | None = None
        self._score = [0, 0]  # right, answered since exercise mode was turned on
        self._asked = Text()  # the open question, as shown
        self._problem = ""  # why the engine asks nothing at this step, if it says so
        self.redraw_ms = 0.0

    def compose(self) -> ComposeResult:
        yield Static(id="map")
        yield Static(id="where")
        yield Static(id="formula")
        yield Static(id="why")
        yield Static(id="stats")
        yield Static(id="errors")
        yield Static(id="compact")
        with VerticalScroll(id="entry-box"):
            yield Static(id="entry")
        yield TourPanel(id="tour").data_bind(StepperPane.tour, StepperPane.snapshot,
                                              StepperPane.index)
        yield Static(id="exercise")
        yield Input(id="answer", placeholder="your answer, then Enter (escape: back to the keys)")
        yield TensorGrid(id="grid")
        with VerticalScroll(id="graph-box"):
            yield Static(id="graph")

    # state pushed down by the app ---------------------------------------------------------
    def watch_snapshot(self) -> None:
        self.draw()

    def watch_active_tab(self) -> None:
        self.draw()

    def watch_index(self) -> None:
        self.draw()

    def watch_note(self) -> None:
        self.draw()

    def watch_graph_view(self) -> None:
        self.draw()

    def watch_entry(self) -> None:
        self.draw()

    def watch_exercise(self) -> None:
        self.verdicts.clear()
        self._score = [0, 0]
        self.draw()

    def _labels(self) -> np.ndarray | None:
        """In exercise mode, the labels of the batch the trace was recorded on (a view of
        the session's inspection batch: read when asked, so a session that arrives after
        exercise mode was turned on is asked about too)."""
        snap = self.snapshot
        if not self.exercise or snap is None:
            return None
        return snap.session.inspection_batch()[1]

    @property
    def score(self) -> tuple[int, int]:
        """(right, answered) since exercise mode was turned on."""
        return self._score[0], self._score[1]

    @property
    def step(self) -> TraceStep | None:
        snap = self.snapshot
        if snap is None or snap.trace is None or not snap.trace.steps:
            return None
        return snap.trace.steps[min(self.index, len(snap.trace) - 1)]

    def draw(self) -> None:
        """Lay out the step on show (a few Statics and the grid; the grid draws only the
        cells on screen)."""
        snap, step = self.snapshot, self.step
        if snap is None or step is None or snap.trace is None or self.active_tab != PANE_ID:
            return
        t0 = time.perf_counter()
        network, trace, index = snap.session.network, snap.trace, step.index
        self.question = self._question(network, trace, index)
        asks_shape = self.question is not None and self.question.kind == "shape"
        self.query_one("#map", Static).update(network_map(network, step))
        shape = "×".join(str(d) for d in step.shape) or "scalar"
        where = Text()
        where.append(f"step {index + 1}/{len(trace)} ", style="bold")
        where.append(f"· {step.phase} ", style="bold green" if step.phase == "forward"
                     else "bold yellow")
        where.append(f"· {step.where} · {step.kind} · ")
        where.append(step.name, style="bold reverse")
        where.append("  (shape hidden)  " if asks_shape else f"  ({shape})  ")
        # batch statistics are BatchNorm's: LayerNorm and its kin do the same in both modes
        batch = " (batch statistics)" if network.batchnorms() else ""
        mode = f"training mode{batch}" if trace.training else "eval mode"
        where.append(f"{mode} · {batch_words(trace.batch_size, snap.session.dataset.n_train)}",
                     style="grey50")
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
        if self.note:
            errs.append(("\n" if errs.plain else "") + self.note, style="italic yellow")
        self.query_one("#errors", Static).update(errs)
        grid = self.query_one(TensorGrid)
        grid.border_title = norm_line(network, step)
        grid.border_subtitle = shape_line(step)
        grid.set_tensor(step.value)
        self._show_inside(network, trace, step)
        self._show_exercise(network, trace, index)
        self.redraw_ms = (time.perf_counter() - t0) * 1000

    def _show_inside(self, network: Network, trace: Trace, step: TraceStep) -> None:
        """The graph instead of the grid, the drill-down's entry, the compact dZ beside the
        staged one (none of them in exercise mode: they would give answers away)."""
        from bntui.ui.inside import clamp, compact_line, entry_text, graph_text

        grid = self.query_one(TensorGrid)
        graph = self.query_one("#graph", Static)
        graph_box = self.query_one("#graph-box")
        entry = self.query_one("#entry", Static)
        box = self.query_one("#entry-box")
        compact = self.query_one("#compact", Static)
        quiet = self.exercise
        line = Text() if quiet else compact_line(network, trace, step)
        compact.update(line)
        compact.display = bool(line.plain)
        graph_box.display = self.graph_view and not quiet
        grid.display = not graph_box.display
        if graph_box.display:
            graph.update(graph_text(network, trace, step))
        cell = (None if self.entry is None or quiet or graph_box.display
                else clamp(step, self.entry))
        box.display = cell is not None
        grid.set_cursor(cell)
        if cell is not None:
            labels = self.snapshot.session.inspection_batch()[1]  # type: ignore[union-attr]
            text, _ = entry_text(network, trace, labels, step, cell)
            entry.update(text)

    # exercise mode ---------------------------------------------------------------------
    def _question(self, network: Network, trace: Trace, index: int) -> Question | None:
        """The open question at this step (None: exercise mode off, nothing to work out,
        already answered, or the engine cannot ask here — `_problem` says why)."""
        self._problem = ""
        labels = self._labels()
        if labels is None:
            return None
        from bntui.engine.labs.exercise import question_at

        if trace is not self._verdict_trace:  # a new pass (trained, reset): new questions
            self._verdict_trace = trace
            self.verdicts.clear()
        if index in self.verdicts:
            return None
        try:
            return question_at(trace, network, labels, index)
        except BntuiError as exc:  # e.g. a pass the engine asks nothing about
            self._problem = str(exc)
            return None

    def _show_exercise(self, network: Network, trace: Trace, index: int) -> None:
        from bntui.engine.labs.exercise import LETTERS

        box = self.query_one("#exercise", Static)
        answer = self.query_one("#answer", Input)
        grid = self.query_one(TensorGrid)
        box.display = answer.display = self.exercise
        if not self.exercise:
            return
        text = Text()
        right, answered = self.score
        text.append(f"exercise mode (x to leave) · score {right}/{answered}\n", style="bold cyan")
        q = self.question
        verdict = self.verdicts.get(index)
        if q is None:
            answer.display = False
            if self._problem:
                text.append(self._problem, style="yellow")
            elif verdict is not None:
                text.append(verdict.message, style="green" if verdict.correct else "red")
            else:
                text.append("this step only copies another tensor: nothing to work out "
                            "(n: next)", style="grey50")
            box.update(text)
            return
        grid.display = False  # the tensor is what is asked about
        self.query_one("#stats", Static).update(Text("statistics hidden", style="grey50"))
        if q.kind == "formula":
            self.query_one("#formula", Static).update(Text("formula hidden", style="grey50"))
            self.query_one("#why", Static).update("")
        text.append(q.prompt + "\n", style="bold")
        for g in q.givens:
            text.append(f"  {g.label} = ", style="bold")
            text.append(g.text() + "\n")
        for i, choice in enumerate(q.choices):
            text.append(f"  {LETTERS[i]}) {choice}\n")
        text.append(f"answer with {q.expects}", style="grey50")
        self._asked = text
        box.update(text)
        answer.value = ""
        answer.focus()

    @on(Input.Submitted, "#answer")
    def _answered(self, event: Input.Submitted) -> None:
        event.stop()
        from bntui.engine.labs.exercise import AnswerError, check_answer

        q, step = self.question, self.step
        if q is None or step is None:
            return
        try:
            verdict = check_answer(q, event.value)
        except AnswerError as exc:  # not graded: the question stays, with what is expected
            self.query_one("#exercise", Static).update(
                self._asked + Text(f"\n{exc}", style="yellow"))
            return
        self.verdicts[step.index] = verdict
        self._score[0] += verdict.correct
        self._score[1] += 1
        self.app.set_focus(None)  # n / b step on again
        self.draw()
