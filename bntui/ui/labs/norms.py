"""Lab screen "Which normalization": BatchNorm, LayerNorm, GroupNorm, RMSNorm and none from
the same start on the same batches — (a) one sample in 20 batches, (b) a batch of two,
(c) training vs eval mode as small tables, (d) the five loss curves on one plot and the
learning-rate sweep.  Every number comes from `bntui.engine.labs.norms`."""

from __future__ import annotations

import math
from dataclasses import replace

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Static
from textual.worker import get_current_worker
from textual_plotext import PlotextPlot

from bntui.engine.config import RunConfig
from bntui.engine.errors import BntuiError
from bntui.engine.labs import norms as lab
from bntui.engine.labs.with_without_bn import TRAINS_BELOW, parse_lrs
from bntui.numbers import fmt, fmt_run
from bntui.ui.form import Note, exact, parse_number
from bntui.ui.labs import FieldsLab, titled
from bntui.ui.plots import LINE, Chart, log_axis, rich_color, set_legend, thin

COLORS: dict[str, tuple[int, int, int]] = {
    "bn": (86, 156, 250), "ln": (250, 196, 60), "gn": (120, 210, 120),
    "rms": (215, 110, 235), "none": (170, 170, 170),
}
SHORT = {"bn": "BN", "ln": "LN", "gn": "GN", "rms": "RMS", "none": "none"}
MARKS = {"trains": "✓", "slow": "·", "diverged": "✗", "edge": "?"}
MAX_STEPS = 20_000


def name(kind: str) -> Text:
    return Text(lab.LABELS[kind], style=f"bold {rich_color(COLORS[kind])}")


def small_table(title: str, headers: list[str]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=None,
                  padding=(0, 1), pad_edge=False, show_edge=False, expand=False,
                  header_style="underline")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
    return table


def per_layer(values: list[float] | None, style=fmt) -> str:
    return "—" if values is None else " / ".join(style(v) for v in values)


def sample_table(p: lab.Probes) -> Table:
    t = small_table(f"(a) sample {p.sample} in {p.batches} batches of {p.batch_size}",
                    ["", "output", "spread", "logits", "same"])
    for s in p.spreads:
        t.add_row(name(s.kind), s.names[0], fmt(max(s.spread)), fmt(s.logits_spread),
                  Text("yes", style="green") if s.identical else Text("no", style="red"))
    return t


def pair_table(p: lab.Probes) -> Table:
    t = small_table("(b) a batch of 2: Znorm",
                    ["", f"±1 (to {100 * lab.NEAR_ONE:g} %)", "median |Znorm|"])
    for s in p.pairs:
        t.add_row(name(s.kind), per_layer(s.near_one, lambda v: f"{100 * v:.0f}%"),
                  per_layer(s.median_abs))
    return t


def gap_table(p: lab.Probes) -> Table:
    t = small_table(f"(c) train − eval mode, batches of {p.batch_size}",
                    ["", "mean |Δ|", "largest", "flipped"])
    for g in p.gaps:
        t.add_row(name(g.kind), fmt(max(g.gap)), fmt(g.max_gap), f"{100 * g.flipped:.1f}%")
    return t


def sweep_table(rows: list[lab.SweepRow], steps: int) -> Table:
    t = small_table(f"(d) learning-rate sweep: final loss after {steps} steps",
                    ["lr", *(lab.LABELS[k] for k in lab.KINDS)])
    for row in rows:
        cells = []
        for kind in lab.KINDS:
            c = row.cells[kind]
            mark = MARKS.get(c.verdict, "")
            style = {"trains": "green", "diverged": "red", "edge": "yellow"}.get(c.verdict, "")
            cells.append(Text(f"{fmt_run(c.final_loss, c.chaotic)} {mark}", style=style))
        t.add_row(f"{row.lr:g}", *cells)
    return t


def sweep_key(chance: float) -> Text:
    return Text(f"✓ trains (≤ {TRAINS_BELOW:g}·ln K = {fmt(TRAINS_BELOW * chance)})  · slow  "
                "✗ diverged  ? edge  ≈ chaotic: CPU rounding", style="grey50")


class NormsLab(FieldsLab):
    LAB_ID = "norms"
    TITLE = "Which normalization"
    BLURB = ("BatchNorm, LayerNorm, GroupNorm, RMSNorm and none: one network, the same "
             "start, the same batches. Only BatchNorm looks at the batch: a sample's output "
             "moves with its batch mates, a batch of 2 leaves ±1, and training and eval "
             "differ.")

    DEFAULT_CSS = """
    NormsLab #nl-scroll { height: 1fr; }
    NormsLab .lab-row { height: 3; }
    NormsLab Input { border-title-color: $text; border-title-style: bold; }
    NormsLab #nl-arch { width: 1fr; }
    NormsLab #nl-lr { width: 11; }
    NormsLab #nl-steps { width: 11; }
    NormsLab #nl-lrs { width: 24; }
    NormsLab #nl-fields { height: auto; }
    NormsLab #nl-f1 { width: 1fr; }
    NormsLab #nl-f2 { width: auto; }
    NormsLab.narrow #nl-fields { layout: vertical; }
    NormsLab.narrow #nl-f2 { width: 1fr; }
    NormsLab.narrow #nl-lrs { width: 1fr; }
    NormsLab #nl-run { width: 9; min-width: 9; margin-left: 1; }
    NormsLab Note { margin: 0; }
    NormsLab #nl-summary { height: auto; }
    NormsLab .nl-pair { height: auto; }
    NormsLab #nl-a, NormsLab #nl-b { margin-bottom: 1; }
    NormsLab .nl-pair > * { width: 1fr; height: auto; }
    NormsLab .nl-pair > Static { margin-right: 2; }
    NormsLab #nl-chart { height: 13; }
    NormsLab #nl-sweep { height: auto; }
    NormsLab.narrow .nl-pair { layout: vertical; }
    NormsLab.narrow .nl-pair > Static { margin: 0 0 1 0; }
    NormsLab.narrow #nl-chart { height: 12; }
    """
    NARROW = 84  # below this many columns the tables stack

    def __init__(self) -> None:
        super().__init__()
        self.config: RunConfig | None = None
        self.result: lab.NormsLabResult | None = None
        self._lrs: list[float] = []

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="nl-scroll"):
            with Horizontal(id="nl-fields"):
                with Horizontal(id="nl-f1", classes="lab-row"):
                    yield titled(Input(lab.LAB_DEFAULT.arch, id="nl-arch"), "network")
                with Horizontal(id="nl-f2", classes="lab-row"):
                    yield titled(Input(exact(lab.LAB_DEFAULT.lr or 1.0), id="nl-lr"), "lr")
                    yield titled(Input(str(lab.LAB_DEFAULT.steps), id="nl-steps"), "steps")
                    yield titled(Input(",".join(f"{x:g}" for x in lab.DEFAULT_LRS),
                                       id="nl-lrs"), "sweep lrs")
                    yield Button("Run", id="nl-run", variant="primary", classes="run")
            yield Note(id="nl-note")
            yield Static(id="nl-summary")
            with Horizontal(classes="nl-pair"):
                yield Static(id="nl-a")
                yield Static(id="nl-b")
            with Horizontal(classes="nl-pair"):
                yield Static(id="nl-c")
                yield Chart(PlotextPlot(id="nl-loss"), id="nl-chart")
            yield Static(id="nl-sweep")

    def on_resize(self) -> None:
        self.set_class(self.size.width < self.NARROW, "narrow")

    # configuration ---------------------------------------------------------------------
    def load(self, config: RunConfig) -> None:
        """The app's dataset, seed and BatchNorm conventions; the lab's network, SGD rate
        and steps (full batch)."""
        self.config = config
        self.run_lab(only_if_changed=True)

    def read_fields(self) -> tuple[RunConfig, list[float]]:
        """The run the fields describe, or BntuiError naming the bad field."""
        arch = self.query_one("#nl-arch", Input).value.strip()
        if not arch:
            raise BntuiError("network is empty (e.g. 32:tanh,32:tanh,C:nobn)")
        lr = parse_number(self.query_one("#nl-lr", Input).value, "lr", positive=True)
        steps = parse_number(self.query_one("#nl-steps", Input).value, "steps", integer=True,
                             low=1)
        if int(steps) > MAX_STEPS:  # type: ignore[arg-type]
            raise BntuiError(f"steps: at most {MAX_STEPS} in this lab")
        lrs = parse_lrs(self.query_one("#nl-lrs", Input).value)
        base = self.config if self.config is not None else lab.LAB_DEFAULT
        cfg = replace(base, arch=arch, optimizer="sgd", lr=float(lr), hyper=(),  # type: ignore[arg-type]
                      steps=int(steps), epochs=None, batch_size=None, bug=None,  # type: ignore[arg-type]
                      eval_every=None)
        cfg, _ = lab.check_run(cfg, None, None, None)
        return cfg, lrs

    # running ---------------------------------------------------------------------------
    SUMMARY = "nl-summary"

    def running(self, fields: tuple[RunConfig, list[float]]) -> str:
        return f"training five networks for {fields[0].steps} steps …"

    def compute(self, fields: tuple[RunConfig, list[float]]) -> None:
        self._compute(*fields)

    def done(self, result: None) -> None:
        self._finish()

    def _compute(self, cfg: RunConfig, lrs: list[float]) -> None:
        """In the worker: the curves and (a)–(c), then the sweep a rate at a time, each
        handed to the screen as it comes."""
        from bntui.engine.session import build_dataset

        worker = get_current_worker()
        call = self.app.call_from_thread
        dataset = build_dataset(cfg)
        sessions, curves, identical, copied = lab.train_variants(cfg, dataset)
        if worker.is_cancelled:
            return
        probes = lab.probe(sessions, cfg)
        result = lab.NormsLabResult(cfg, lab.variant_archs(cfg.arch), lab.gn_groups(cfg.arch),
                                    identical, copied, probes, curves, [], cfg.steps,
                                    math.log(dataset.n_classes))
        if worker.is_cancelled:
            return
        call(self._show, result, lrs)
        for lr in lrs:
            if worker.is_cancelled:
                return
            row = lab.sweep_row(cfg, lr, cfg.steps, dataset,
                                curves=curves if lr == cfg.lr else None)
            call(self._add_row, result, row)


    def _show(self, result: lab.NormsLabResult, lrs: list[float]) -> None:
        self.result, self._lrs = result, lrs
        p = result.probes
        self.query_one("#nl-a", Static).update(sample_table(p))
        self.query_one("#nl-b", Static).update(pair_table(p))
        self.query_one("#nl-c", Static).update(gap_table(p))
        self.draw_summary()
        self.draw_sweep()
        self.draw_loss()

    def _add_row(self, result: lab.NormsLabResult, row: lab.SweepRow) -> None:
        if result is not self.result:
            return
        result.sweep.append(row)
        self.draw_sweep()

    def _finish(self) -> None:
        self.draw_summary(done=True)
        self.ready = True

    # drawing ---------------------------------------------------------------------------
    def draw_summary(self, done: bool = False) -> None:
        r = self.result
        if r is None:
            return
        c = r.config
        t = Text()
        t.append(f"{c.dataset} · SGD lr {lab.effective_lr(c):g} · {c.steps} steps · full "
                 f"batch · seed {c.seed} · ", style="bold")
        t.append("same start (W, b bit-identical)" if r.weights_identical
                 else f"same start (copied {', '.join(r.copied)})")
        t.append(f"\nGroupNorm: {', '.join(map(str, r.groups))} groups"
                 + (" (1 group is LayerNorm)" if 1 in r.groups else "")
                 + " · all else the same in the five", style="grey50")
        self.query_one("#nl-summary", Static).update(t)
        self.draw_sweep(done)

    def draw_sweep(self, done: bool = False) -> None:
        r = self.result
        if r is None:
            return
        key = sweep_key(r.chance_loss)
        if not done:
            key = Text(f"{len(r.sweep)}/{len(self._lrs)} rates …", style="grey50")
        self.query_one("#nl-sweep", Static).update(
            Group(sweep_table(r.sweep, r.sweep_steps), key))

    def draw_loss(self) -> None:
        r = self.result
        plot = self.query_one("#nl-loss", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        if r is None:
            plot.refresh()
            return
        shown: list[float] = []
        for cv in reversed(r.curves):  # BatchNorm drawn last, on top
            pts = [(s + 1, v) for s, v in enumerate(cv.loss) if math.isfinite(v) and v > 0]
            if pts:
                xs, ys = thin([s for s, _ in pts], [v for _, v in pts])
                logs = [math.log10(v) for v in ys]
                plt.plot(xs, logs, color=COLORS[cv.kind], marker=LINE)
                shown += logs
        if shown:
            plt.yticks(*log_axis(shown))
        set_legend(plot, f"(d) loss at lr {lab.effective_lr(r.config):g} (log scale)",
                   [(SHORT[cv.kind], COLORS[cv.kind]) for cv in r.curves])
        steps = max((len(cv.loss) for cv in r.curves), default=1)
        plt.xticks([round(steps * k / 4) or 1 for k in range(5)])
        plot.refresh()
