"""Lab screen "With vs without BatchNorm": the two loss curves together, the learning-rate
sweep, and one hidden layer's pre-activation quantiles over training for both networks.
Every number comes from `bntui.engine.labs.with_without_bn`."""

from __future__ import annotations

import math
from dataclasses import replace

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import Button, Input, Select, Static
from textual.worker import get_current_worker
from textual_plotext import PlotextPlot

from bntui.engine.config import RunConfig
from bntui.engine.errors import BntuiError
from bntui.engine.labs import chaos
from bntui.engine.labs import with_without_bn as lab
from bntui.numbers import fmt_run
from bntui.ui.form import Note, exact, parse_number
from bntui.ui.labs import FieldsLab, titled
from bntui.ui.plots import LINE, Chart, log_axis, set_legend, thin

BN_COLOR, PLAIN_COLOR = "cyan", "orange"  # plotext colour names
BN_STYLE, PLAIN_STYLE = "cyan", "dark_orange"  # the same colours as rich styles
# the 5, 25, 50, 75 and 95 % quantile lines: light at the tails, strong at the median
QUANTILE_COLORS = (
    ((90, 120, 200), (60, 190, 220), (230, 250, 255), (60, 190, 220), (90, 120, 200)),
    ((200, 80, 60), (245, 150, 50), (255, 235, 140), (245, 150, 50), (200, 80, 60)),
)
SETTINGS = (("the lab's (tanh, SGD)", "lab"), ("the app's run", "app"))


def log10s(values: list[float]) -> list[float]:
    return [math.log10(v) for v in values]


def _lrs_text(lrs: tuple[float, ...] | list[float]) -> str:
    return ",".join(f"{x:g}" for x in lrs)


class WithWithoutBNLab(FieldsLab):
    LAB_ID = "bn"
    TITLE = "With vs without BN"
    BLURB = ("The same network, the same start and the same batches, trained with and "
             "without BatchNorm. Watch the loss curves, where each layer's pre-activations "
             "go, and the learning rates at which only the BN network still trains.")

    DEFAULT_CSS = """
    WithWithoutBNLab #bnl-scroll { height: 1fr; }
    WithWithoutBNLab .lab-row { height: 3; }
    WithWithoutBNLab #bnl-setting { width: 1fr; max-width: 30; }
    WithWithoutBNLab #bnl-layer { width: 16; }
    WithWithoutBNLab Input { border-title-color: $text; border-title-style: bold; }
    WithWithoutBNLab #bnl-run { width: 9; min-width: 9; margin-left: 1; }
    WithWithoutBNLab #bnl-lr { width: 10; margin-right: 1; }
    WithWithoutBNLab #bnl-steps { width: 11; margin-right: 1; }
    WithWithoutBNLab #bnl-lrs { width: 1fr; }
    WithWithoutBNLab Note { margin: 0; }
    WithWithoutBNLab #bnl-summary { height: auto; }
    WithWithoutBNLab #bnl-plots { height: 1fr; min-height: 22; grid-size: 2 2;
                                  grid-columns: 1fr 1fr; grid-rows: 1fr 1fr; grid-gutter: 0 1; }
    WithWithoutBNLab Chart { min-height: 10; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.config: RunConfig | None = None
        self.result_config: RunConfig | None = None
        self.twins: tuple[lab.TwinRun, lab.TwinRun] | None = None
        self.sweep: list[lab.SweepRow] = []
        self.lrs: list[float] = []

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="bnl-scroll"):
            with Horizontal(classes="lab-row"):
                yield Select(SETTINGS, value="lab", allow_blank=False, id="bnl-setting")
                yield Select([], id="bnl-layer", allow_blank=True, prompt="layer")
                yield Button("Run", id="bnl-run", variant="primary", classes="run")
            with Horizontal(classes="lab-row"):
                yield titled(Input(exact(lab.LAB_DEFAULT.lr or 0.1), id="bnl-lr"), "lr")
                yield titled(Input(str(lab.LAB_DEFAULT.steps), id="bnl-steps"), "steps")
                yield titled(Input(_lrs_text(lab.DEFAULT_LRS), id="bnl-lrs"),
                              "sweep learning rates")
            yield Note(id="bnl-note")
            yield Static(id="bnl-summary")
            with Grid(id="bnl-plots"):
                for plot_id in ("bnl-loss", "bnl-sweep", "bnl-spread-bn", "bnl-spread-plain"):
                    yield Chart(PlotextPlot(id=plot_id))

    # configuration ---------------------------------------------------------------------
    def load(self, config: RunConfig) -> None:
        self.config = config
        if self.query_one("#bnl-setting", Select).value == "app":
            self._fill_lr()
        self.run_lab(only_if_changed=True)

    def _base(self) -> RunConfig:
        if self.query_one("#bnl-setting", Select).value == "app" and self.config is not None:
            return self.config
        seed = self.config.seed if self.config is not None else 0
        return replace(lab.LAB_DEFAULT, seed=seed)

    def _fill_lr(self) -> None:
        try:
            lr = lab.effective_lr(self._base())
        except BntuiError:
            return
        self.query_one("#bnl-lr", Input).value = exact(lr)

    def read_fields(self) -> tuple[RunConfig, list[float]]:
        """The run the fields describe, or BntuiError naming the bad field."""
        lr = parse_number(self.query_one("#bnl-lr", Input).value, "lr", positive=True)
        steps = parse_number(self.query_one("#bnl-steps", Input).value, "steps", integer=True,
                             low=1)
        if int(steps) > 20_000:  # type: ignore[arg-type]
            raise BntuiError("steps: at most 20000 in this lab")
        lrs = lab.parse_lrs(self.query_one("#bnl-lrs", Input).value)
        cfg = replace(self._base(), lr=float(lr), steps=int(steps))  # type: ignore[arg-type]
        cfg.validate()
        lab.twin_archs(cfg.arch)
        return cfg, lrs

    @on(Select.Changed, "#bnl-setting")
    def _setting(self) -> None:
        self._fill_lr()
        self._check()

    @on(Select.Changed, "#bnl-layer")
    def _layer(self) -> None:
        self.draw_spread()

    # running ---------------------------------------------------------------------------
    SUMMARY = "bnl-summary"

    def running(self, fields: tuple[RunConfig, list[float]]) -> str:
        return f"training both networks for {fields[0].steps} steps …"

    def compute(self, fields: tuple[RunConfig, list[float]]) -> None:
        self._train(*fields)

    def done(self, result: None) -> None:
        self._finish()

    def _train(self, cfg: RunConfig, lrs: list[float]) -> None:
        """In the worker: both networks, then the sweep a learning rate at a time, each
        handed to the screen as it comes."""
        from bntui.engine.session import build_dataset

        worker = get_current_worker()
        call = self.app.call_from_thread
        dataset = build_dataset(cfg)
        bn_run, plain_run, identical, copied = lab.train_twins(cfg, n_checkpoints=11,
                                                              dataset=dataset)
        if worker.is_cancelled:
            return
        call(self._show_twins, cfg, lrs, (bn_run, plain_run), identical, copied)
        for lr in lrs:
            if worker.is_cancelled:
                return
            row = lab.lr_sweep(cfg, [lr], cfg.steps, dataset)[0]
            call(self._add_row, row, math.log(dataset.n_classes))

    def _show_twins(self, cfg: RunConfig, lrs: list[float],
                    twins: tuple[lab.TwinRun, lab.TwinRun], identical: bool,
                    copied: list[str]) -> None:
        self.result_config, self.lrs, self.twins, self.sweep = cfg, lrs, twins, []
        self._identical, self._copied = identical, copied
        layers = [s.layer for s in twins[0].layers]
        sel = self.query_one("#bnl-layer", Select)
        keep = sel.value if sel.value in layers else (layers[0] if layers else Select.BLANK)
        with self.prevent(Select.Changed):
            sel.set_options([(f"layer {i}", i) for i in layers])
            sel.value = keep
        self.draw_summary()
        self.draw_loss()
        self.draw_spread()
        self.draw_sweep()

    def _add_row(self, row: lab.SweepRow, chance: float) -> None:
        self.sweep.append(row)
        self._chance = chance
        self.draw_sweep()
        self.draw_summary()

    def _finish(self) -> None:
        self.draw_summary(done=True)
        self.ready = True

    # drawing ---------------------------------------------------------------------------
    def draw_summary(self, done: bool = False) -> None:
        if self.twins is None or self.result_config is None:
            return
        b, p = self.twins
        c = self.result_config
        t = Text()
        t.append(f"{c.dataset} · {c.optimizer} lr {lab.effective_lr(c):g} · {c.steps} steps"
                 " · same start ", style="bold")
        t.append("(W bit-identical)" if self._identical
                 else f"(copied {', '.join(self._copied)})", style="grey50")
        t.append("\nfinal loss ")
        t.append(f"with BN {fmt_run(b.final_loss, chaos.chaotic(b.final_move))}",
                 style=BN_STYLE)
        t.append(" · ")
        t.append(f"without BN {fmt_run(p.final_loss, chaos.chaotic(p.final_move))}",
                 style=PLAIN_STYLE)
        if chaos.chaotic(b.final_move) or chaos.chaotic(p.final_move):
            t.append("  (≈ chaotic: its last digits are the CPU's rounding)", style="grey50")
        if b.layers and p.layers:
            t.append(f" · saturated (layer {b.layers[-1].layer}): "
                     f"{100 * b.layers[-1].saturated[-1]:.0f} % vs "
                     f"{100 * p.layers[-1].saturated[-1]:.0f} %")
        t.append("\nsweep: ")
        if not self.sweep:
            t.append("…", style="grey50")
        else:
            only = [f"{r.lr:g}" for r in self.sweep if r.bn_only]
            t.append("only BN trains at " + (", ".join(only) if only else "none of these"),
                     style="bold yellow" if only else "")
            if not done:
                t.append(f"  ({len(self.sweep)}/{len(self.lrs)} rates …)", style="grey50")
        self.query_one("#bnl-summary", Static).update(t)

    def draw_loss(self) -> None:
        if self.twins is None:
            return
        plot = self.query_one("#bnl-loss", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        shown: list[float] = []
        for run, color in zip(self.twins, (BN_COLOR, PLAIN_COLOR), strict=True):
            pts = [(s, v) for s, v in zip(run.steps, run.loss, strict=True) if v > 0]
            if pts:
                xs, ys = thin([s for s, _ in pts], [v for _, v in pts])
                plt.plot(xs, log10s(ys), color=color, marker=LINE)
                shown += ys
        if shown:
            plt.yticks(*log_axis(log10s(shown)))
        set_legend(plot, "training loss (log scale)",
                   [(run.label, color) for run, color in zip(self.twins, (BN_COLOR, PLAIN_COLOR),
                                                             strict=True)])
        plt.xlabel("step (loss on a log scale)")
        plot.refresh()

    def draw_sweep(self) -> None:
        plot = self.query_one("#bnl-sweep", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        rows = self.sweep
        chance = getattr(self, "_chance", None)
        if rows:
            finite = [v for r in rows for v in (r.bn.final_loss, r.plain.final_loss)
                      if math.isfinite(v) and v > 0]
            top = max(finite) * 2 if finite else 10.0
            shown = [top]
            for name, color in (("bn", BN_COLOR), ("plain", PLAIN_COLOR)):
                cells = [(r.lr, getattr(r, name)) for r in rows]
                xs = log10s([lr for lr, _ in cells])
                ys = [c.final_loss if math.isfinite(c.final_loss) and c.final_loss > 0 else top
                      for _, c in cells]
                shown += ys
                plt.plot(xs, log10s(ys), color=color, marker=LINE)
                bad = [(x, y) for x, y, (_, c) in zip(xs, ys, cells, strict=True)
                       if c.verdict == "diverged"]
                if bad:
                    plt.scatter([x for x, _ in bad], log10s([y for _, y in bad]), marker="x",
                                color=color)
            if chance:
                shown.append(lab.TRAINS_BELOW * chance)
                plt.hline(math.log10(lab.TRAINS_BELOW * chance), "gray")
            plt.yticks(*log_axis(log10s(shown)))
            plt.xticks(*log_axis(log10s([r.lr for r in rows])))
        set_legend(plot, "final loss by learning rate",
                   [("with BN", BN_COLOR), ("without BN", PLAIN_COLOR)])
        plt.xlabel("learning rate (x: diverged; line: 'trains')")
        plot.refresh()

    def draw_spread(self) -> None:
        layer = self.query_one("#bnl-layer", Select).value
        for i, plot_id in enumerate(("#bnl-spread-bn", "#bnl-spread-plain")):
            plot = self.query_one(plot_id, PlotextPlot)
            plt = plot.plt
            plt.clear_data()
            plt.clear_figure()
            run = self.twins[i] if self.twins is not None else None
            spread = None
            if run is not None and isinstance(layer, int):
                spread = next((s for s in run.layers if s.layer == layer), None)
            if run is None or spread is None or not spread.steps:
                plot.refresh()
                continue
            title = (f"layer {layer} {spread.name} {run.label}: "
                     f"{100 * spread.saturated[-1]:.0f} % saturated")
            entries: list[tuple[str, tuple[int, int, int]]] = []
            for q, color in zip(range(len(lab.QUANTILES)), QUANTILE_COLORS[i], strict=True):
                pts = [(s, row[q]) for s, row in zip(spread.steps, spread.quantiles, strict=True)
                       if math.isfinite(row[q])]
                if pts:
                    if q in (0, 2, 4):
                        entries.append((f"{100 * lab.QUANTILES[q]:g} %", color))
                    plt.plot([s for s, _ in pts], [y for _, y in pts], color=color,
                             marker=LINE)
            set_legend(plot, title, entries)
            plt.xlabel("step")
            plot.refresh()
