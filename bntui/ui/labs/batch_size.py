"""Lab screen "Batch size": batch vs running statistics, a batch of two, one sample in many
batches, and the training-vs-eval gap by batch size, on the app's dataset and architecture.
Every number comes from `bntui.engine.labs.batch_size`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import Button, Input, Static
from textual_plotext import PlotextPlot

from bntui.engine.config import RunConfig
from bntui.engine.errors import BntuiError
from bntui.engine.labs import batch_size as lab
from bntui.numbers import fmt, fmt_run
from bntui.ui.form import Note, parse_number
from bntui.ui.labs import FieldsLab, titled
from bntui.ui.plots import LINE, Chart, set_legend

TRAIN_COLOR, EVAL_COLOR = "orange", "cyan"


def _span(series: list) -> tuple[float, float]:
    """The smallest and largest finite value of some series (0, 1 if there is none)."""
    vals = np.concatenate([np.asarray(v, dtype=float).ravel() for v in series])
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return 0.0, 1.0
    lo, hi = float(vals.min()), float(vals.max())
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


class BatchSizeLab(FieldsLab):
    LAB_ID = "batch"
    TITLE = "Batch size"
    BLURB = ("BatchNorm normalises with the statistics of the batch at hand. With small "
             "batches those are noisy: a batch of 2 leaves only ±1, a sample's output "
             "depends on its batch mates, and training and eval mode drift apart.")

    DEFAULT_CSS = """
    BatchSizeLab #bsl-scroll { height: 1fr; }
    BatchSizeLab .lab-row { height: 3; }
    BatchSizeLab #bsl-batch { width: 11; margin-right: 1; }
    BatchSizeLab #bsl-steps { width: 11; margin-right: 1; }
    BatchSizeLab #bsl-sizes { width: 1fr; }
    BatchSizeLab Input { border-title-color: $text; border-title-style: bold; }
    BatchSizeLab #bsl-run { width: 9; min-width: 9; margin-left: 1; }
    BatchSizeLab Note { margin: 0; }
    BatchSizeLab #bsl-summary { height: auto; }
    BatchSizeLab #bsl-plots { height: 1fr; min-height: 22; grid-size: 2 2;
                              grid-columns: 1fr 1fr; grid-rows: 1fr 1fr; grid-gutter: 0 1; }
    BatchSizeLab Chart { min-height: 10; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.config: RunConfig | None = None
        self.result: lab.BatchLabResult | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="bsl-scroll"):
            with Horizontal(classes="lab-row"):
                yield titled(Input(str(lab.DEFAULT_BATCH), id="bsl-batch"), "batch")
                yield titled(Input(str(lab.LAB_DEFAULT.steps), id="bsl-steps"), "steps")
                yield titled(Input(",".join(lab.size_label(s) for s in lab.DEFAULT_SIZES),
                                    id="bsl-sizes"), "batch sizes of (d)")
                yield Button("Run", id="bsl-run", variant="primary", classes="run")
            yield Note(id="bsl-note")
            yield Static(id="bsl-summary")
            with Grid(id="bsl-plots"):
                for plot_id in ("bsl-stats", "bsl-pair", "bsl-sample", "bsl-gap"):
                    yield Chart(PlotextPlot(id=plot_id))

    # configuration ---------------------------------------------------------------------
    def load(self, config: RunConfig) -> None:
        """The app's dataset, architecture, optimizer and seed; the lab's batch and steps."""
        self.config = config
        if config.batch_size is not None and config.batch_size >= 2:
            self.query_one("#bsl-batch", Input).value = str(config.batch_size)
        self.run_lab(only_if_changed=True)

    def read_fields(self) -> tuple[RunConfig, list[int | None]]:
        batch = parse_number(self.query_one("#bsl-batch", Input).value, "batch", integer=True,
                             low=2)
        steps = parse_number(self.query_one("#bsl-steps", Input).value, "steps", integer=True,
                             low=0)
        if int(steps) > 20_000:  # type: ignore[arg-type]
            raise BntuiError("steps: at most 20000 in this lab")
        sizes = lab.parse_sizes(self.query_one("#bsl-sizes", Input).value)
        base = self.config if self.config is not None else lab.LAB_DEFAULT
        cfg = replace(base, batch_size=int(batch), steps=int(steps))  # type: ignore[arg-type]
        cfg.validate()
        return cfg, sizes

    # running ---------------------------------------------------------------------------
    SUMMARY = "bsl-summary"

    def running(self, fields: tuple[RunConfig, list[int | None]]) -> str:
        cfg, sizes = fields
        return f"training {len(sizes) + 1} networks for {cfg.steps} steps each …"

    def compute(self, fields: tuple[RunConfig, list[int | None]]) -> lab.BatchLabResult:
        return lab.run_batch_lab(*fields)

    def done(self, result: lab.BatchLabResult) -> None:
        self.show(result)

    # drawing ---------------------------------------------------------------------------
    def show(self, r: lab.BatchLabResult) -> None:
        self.result = r
        self.draw_summary(r)
        self.draw_stats(r)
        self.draw_pair(r)
        self.draw_sample(r)
        self.draw_gap(r)
        self.ready = True

    def draw_summary(self, r: lab.BatchLabResult) -> None:
        c, p, o = r.config, r.pair, r.sample
        flips = sum(k != o.prediction_eval for k in o.predictions_train)
        first, last = r.gaps[0], r.gaps[-1]
        t = Text()
        t.append(f"{c.dataset} · {c.arch} · {c.optimizer} · {c.steps} steps with batches of "
                 f"{r.batch_size} · BatchNorm of layer {r.layer}\n", style="bold")
        t.append(f"(a) mean |Zbn_train − Zbn_eval| on batches of {r.stats.batch_size}: "
                 f"{fmt(r.stats.mean_abs_zbn_diff)}\n")
        t.append(f"(b) batch of 2: every |Znorm| = √(var/(var+ε)) to {p.max_error:.0e}\n")
        t.append(f"(c) sample {o.sample} in {len(o.logits_train)} batches: logits vary by "
                 f"{fmt(o.spread_train)} (training, {flips} flips) vs {fmt(o.spread_eval)} "
                 "(eval)\n")
        t.append(f"(d) |Zbn_train − Zbn_eval|: "
                 f"{fmt_run(first.zbn_gap, first.chaotic('zbn_gap'))} at batch {first.label} → "
                 f"{fmt_run(last.zbn_gap, last.chaotic('zbn_gap'))} at batch {last.label}")
        self.query_one("#bsl-summary", Static).update(t)

    def _start(self, plot_id: str) -> PlotextPlot:
        plot = self.query_one(plot_id, PlotextPlot)
        plot.plt.clear_data()
        plot.plt.clear_figure()
        return plot

    def draw_stats(self, r: lab.BatchLabResult) -> None:
        s = r.stats
        plot = self._start("#bsl-stats")
        plt = plot.plt
        d = s.running_mean.shape[0]
        feats = list(range(d))
        xs = [j for _ in range(len(s.batch_mu)) for j in feats]
        plt.scatter(xs, s.batch_mu.ravel().tolist(), marker="dot", color=TRAIN_COLOR)
        plt.scatter(feats, s.running_mean.tolist(), marker="●", color=EVAL_COLOR)
        set_legend(plot, f"(a) layer {s.layer}: batch vs running mean",
                   [(f"{len(s.batch_mu)} batches of {s.batch_size}", TRAIN_COLOR),
                    ("running mean", EVAL_COLOR)], marker="●")
        plt.xlabel("feature")
        plot.refresh()

    def draw_pair(self, r: lab.BatchLabResult) -> None:
        p = r.pair
        plot = self._start("#bsl-pair")
        plt = plot.plt
        d = p.Z.shape[1]
        xs = list(range(d)) * 2
        plt.scatter(xs, p.Znorm_eval.ravel().tolist(), marker="●", color=EVAL_COLOR)
        plt.scatter(xs, p.Znorm.ravel().tolist(), marker="●", color=TRAIN_COLOR)
        set_legend(plot, "(b) batch of 2: Znorm", [("eval (running stats)", EVAL_COLOR),
                                                   ("training (batch stats)", TRAIN_COLOR)],
                   marker="●")
        plt.hline(1.0, "gray")
        plt.hline(-1.0, "gray")
        top = max(2, int(np.ceil(np.nanmax(np.abs(p.Znorm_eval), initial=1.0))))
        plt.yticks(list(range(-top, top + 1)))
        plt.xlabel("feature")
        plot.refresh()

    def draw_sample(self, r: lab.BatchLabResult) -> None:
        o = r.sample
        plot = self._start("#bsl-sample")
        plt = plot.plt
        k = list(range(1, len(o.logits_train) + 1))
        plt.scatter(k, o.logits_train[:, o.label].tolist(), marker="●", color=TRAIN_COLOR)
        plt.plot(k, o.logits_eval[:, o.label].tolist(), marker=LINE, color=EVAL_COLOR)
        set_legend(plot, f"(c) sample {o.sample}: logit {o.label} per batch",
                   [("training mode", TRAIN_COLOR), ("eval mode", EVAL_COLOR)])
        lo, hi = _span([o.logits_train[:, o.label], o.logits_eval[:, o.label]])
        plt.ylim(lo, hi)
        plt.xlabel(f"batch (size {o.batch_size}, random mates)")
        plot.refresh()

    def draw_gap(self, r: lab.BatchLabResult) -> None:
        plot = self._start("#bsl-gap")
        plt = plot.plt
        gaps = sorted(r.gaps, key=lambda g: g.batch_size)
        xs = [float(np.log2(g.batch_size)) for g in gaps]
        plt.plot(xs, [g.zbn_gap for g in gaps], marker=LINE, color=TRAIN_COLOR)
        plt.plot(xs, [g.flipped for g in gaps], marker=LINE, color=EVAL_COLOR)
        set_legend(plot, "(d) train vs eval gap by batch size",
                   [("|Zbn train − eval|", TRAIN_COLOR), ("flipped share", EVAL_COLOR)])
        _, hi = _span([[g.zbn_gap for g in gaps], [g.flipped for g in gaps]])
        plt.ylim(0, hi * 1.05)
        plt.xticks(xs, [g.label for g in gaps])
        plt.xlabel("batch size")
        plot.refresh()
