"""The bug zoo lab: pick a named mistake, read what it is, see which gradients it breaks
(red where the check fails) and what it does to the loss beside the correct engine.

Every number comes from `bntui.engine.labs.bugs.run_bug`, run in a thread worker."""

from __future__ import annotations

import math

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Select, Static
from textual_plotext import PlotextPlot

from bntui.engine.config import RunConfig
from bntui.engine.labs import bugs as zoo
from bntui.numbers import fmt, fmt_err
from bntui.ui.form import Note
from bntui.ui.labs import LabView
from bntui.ui.plots import LINE, Chart, log_ticks, set_legend, thin


class BugLossPlot(PlotextPlot):
    """The loss of the correct and the bugged engine, step by step, on a log axis (log10 is
    taken here and the ticks labelled: see `plots.log_axis`)."""

    def replot(self, comparison: zoo.Comparison) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        shown: list[float] = []
        for run, color in ((comparison.correct, "cyan"), (comparison.bugged, "red")):
            pts = [(s, math.log10(v)) for s, v in zip(run.step, run.loss, strict=True)
                   if math.isfinite(v) and v > 0]
            if pts:
                xs, ys = thin([s for s, _ in pts], [v for _, v in pts])
                plt.plot(xs, ys, color=color, marker=LINE)
                shown += ys
        if shown:
            log_ticks(self, shown)
        set_legend(self, "loss by step (log scale)",
                   [("correct", "cyan"), ("bugged", "red")])
        plt.xlabel("step")
        self.refresh()


class BugsLab(LabView):
    LAB_ID = "bugs"
    TITLE = "Bug zoo"
    BLURB = ("Named mistakes from the seeds and the classics, each a real variant of the "
             "engine: which gradients break, and what it does to training. Each bug runs on "
             "its own small spiral network (the app's seed).")

    DEFAULT_CSS = """
    BugsLab #bug-scroll { height: 1fr; }
    BugsLab #bug-top { height: 3; }
    BugsLab #bug-pick { width: 34; }
    BugsLab #bug-origin { width: 1fr; padding: 1 0 0 1; color: $text-muted; }
    BugsLab #bug-explain { height: auto; }
    BugsLab #bug-formula { height: auto; }
    BugsLab #bug-note { margin: 0; }
    BugsLab #bug-body { height: 19; }
    BugsLab #bug-table { width: 46; height: 1fr; }
    BugsLab #bug-chart { width: 1fr; height: 1fr; min-height: 10; }
    BugsLab #bug-summary { height: auto; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.config: RunConfig | None = None
        self.report: zoo.BugReport | None = None
        self.bug_id = zoo.BUG_IDS[0]
        self._pending = False

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="bug-scroll"):
            with Horizontal(id="bug-top"):
                yield Select([(i, i) for i in zoo.BUG_IDS], value=self.bug_id,
                             allow_blank=False, id="bug-pick")
                yield Static(id="bug-origin")
            yield Static(id="bug-explain")
            yield Static(id="bug-formula")
            yield Note(id="bug-note")
            with Horizontal(id="bug-body"):
                yield DataTable(id="bug-table", zebra_stripes=True, cursor_type="row")
                yield Chart(BugLossPlot(id="bug-plot"), id="bug-chart")
            yield Static(id="bug-summary")

    def on_mount(self) -> None:
        self.query_one("#bug-table", DataTable).add_columns(
            "layer", "tensor", "bugged", "correct", "")
        self._describe(zoo.get_bug(self.bug_id))

    # loading ---------------------------------------------------------------------------
    def load(self, config: RunConfig) -> None:
        """Remember the app's configuration; compute only once the lab is on screen (the
        Labs pane loads its current lab at app start, behind another tab)."""
        self.config = config
        self._pending = True
        if self.region.area > 0:
            self._start()

    def on_show(self) -> None:
        if self._pending:
            self._start()

    @on(Select.Changed, "#bug-pick")
    def _picked(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.bug_id:
            self.bug_id = event.value
            self._describe(zoo.get_bug(self.bug_id))
            self._start()

    def _start(self) -> None:
        if self.config is None:
            return
        self._pending = False
        self.ready = False
        self.query_one("#bug-summary", Static).update(
            Text(f"running {self.bug_id}: gradient check and training…", style="italic yellow"))
        bug_id, seed = self.bug_id, self.config.seed
        self.in_thread(lambda: zoo.run_bug(bug_id, zoo.scenario_config(bug_id, seed=seed)),
                       self._show, lambda message: self._failed(bug_id, message))

    def _failed(self, bug_id: str, message: str) -> None:
        if bug_id == self.bug_id:
            self.query_one("#bug-note", Note).error(message)
            self.ready = True

    # drawing ---------------------------------------------------------------------------
    def _describe(self, bug: zoo.Bug) -> None:
        self.query_one("#bug-origin", Static).update(f"{bug.title} · {bug.origin} · {bug.part}")
        self.query_one("#bug-explain", Static).update(bug.explanation)
        f = Text()
        f.append("wrong  ", style="bold red")
        f.append(bug.wrong + "\n")
        f.append("right  ", style="bold green")
        f.append(bug.right)
        self.query_one("#bug-formula", Static).update(f)

    def _show(self, report: zoo.BugReport) -> None:
        if report.bug.id != self.bug_id:  # an older pick finished late
            return
        self.report = report
        self.query_one("#bug-note", Note).clear()
        table = self.query_one("#bug-table", DataTable)
        table.clear()
        for r in report.check.rows:
            if r.rel_error is None:
                verdict = Text(r.status.replace("_", " "), style="grey50")
            elif r.failed:
                verdict = Text("FAIL", style="bold red")
            else:
                verdict = Text("ok", style="green")
            bad_style = "bold red" if r.failed else ("grey50" if r.rel_error is None else "green")
            table.add_row(str(r.layer), r.tensor, Text(fmt_err(r.rel_error), style=bad_style),
                          Text(fmt_err(r.correct_rel_error), style="green"), verdict)
        self.query_one(BugLossPlot).replot(report.training)
        self.query_one("#bug-summary", Static).update(self._summary(report))
        self.ready = True

    def _summary(self, report: zoo.BugReport) -> Text:
        chk, tr = report.check, report.training
        s = Text()
        n = len(chk.failed)
        s.append(f"{n} of {len(chk.rows)} tensors fail ", style="bold red" if n else "bold green")
        s.append(f"(relative error > {chk.tolerance:g}, batch of {chk.batch}); ")
        if chk.matches:
            s.append("exactly the ones this bug must break.", style="green")
        else:
            s.append("NOT the declared set.", style="bold red")
        s.append(f"\nloss after {len(tr.correct.step)} steps: correct ")
        s.append(("≈" if tr.correct.chaotic else "") + _loss(tr.correct.final_loss),
                 style="cyan")
        s.append(", bugged ")
        s.append(("≈" if tr.bugged.chaotic else "") + _loss(tr.bugged.final_loss), style="red")
        if tr.correct.chaotic or tr.bugged.chaotic:
            s.append("  (≈ chaotic: its last digits are the CPU's rounding)", style="grey50")
        if tr.bugged.stopped:
            s.append(f" (stopped at step {len(tr.bugged.step) + 1}: the loss overflowed)",
                     style="bold red")
        s.append(f"\n{report.bug.effect}", style="italic")
        if report.probe:
            s.append("\nlogits ×" + ", ×".join(fmt(p.scale) for p in report.probe)
                     + ":  correct " + " ".join(fmt(p.correct_loss) for p in report.probe)
                     + "  bugged " + " ".join(fmt(p.bugged_loss) for p in report.probe))
        return s


def _loss(x: float | None) -> str:
    return "—" if x is None else fmt(x)
