"""The bntui app: a thin view over one engine `Session`.

Panes post messages up (`ConfigChange`, `TrainRequest`, `CheckRequest`); the app changes
the session — rebuilding it from a new `RunConfig`, training it in a worker thread,
checking its gradients — and pushes the new state down.  A mistake in a pane's input is
shown inline in that pane and the session the learner had stays as it was.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, TypeVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import MountError, Widget
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from bntui.engine.config import PRESETS, RunConfig, preset
from bntui.engine.errors import BntuiError
from bntui.engine.gradcheck import GradcheckReport, attach_to_trace, gradcheck
from bntui.engine.persist import load_session, save_session
from bntui.engine.regions import RegionMap, decision_regions
from bntui.engine.session import Session
from bntui.engine.trace import Trace
from bntui.ui.bn_pane import BNPane
from bntui.ui.check_pane import CheckPane, CheckRequest
from bntui.ui.dataset_pane import DatasetPane
from bntui.ui.file_screen import FileScreen
from bntui.ui.help_screen import HelpScreen
from bntui.ui.labs_pane import LabsPane
from bntui.ui.messages import ConfigChange, TrainRequest
from bntui.ui.model_pane import ModelPane
from bntui.ui.optimizer_pane import OptimizerPane
from bntui.ui.stepper import StepperPane
from bntui.ui.training_pane import TrainingPane

PaneT = TypeVar("PaneT", bound=Widget)
TABS = ("stepper", "training", "dataset", "model", "optimizer", "check", "bn", "labs")
TAB_TITLES = ("1 Stepper", "2 Training", "3 Dataset", "4 Model", "5 Optimizer",
              "6 Grad check", "7 BN train/eval", "8 Labs")
DEFAULT_PRESET = "seed-softmax"
EVAL_EVERY = 10  # the app evaluates (eval mode, both splits) every 10 training steps


class BntuiApp(App[None]):
    TITLE = "bntui"
    SUB_TITLE = "batch normalization, step by step"
    CSS_PATH = "app.tcss"
    AUTO_FOCUS = None  # keys go to the app's bindings until the learner picks a widget
    BINDINGS = [
        Binding("n", "next_step", "next"),
        Binding("b", "prev_step", "back"),
        Binding("right", "next_step", "next", show=False),
        Binding("left", "prev_step", "back", show=False),
        Binding("right_square_bracket", "next_layer", "next layer", show=False),
        Binding("left_square_bracket", "prev_layer", "prev layer", show=False),
        Binding("home", "first_step", "first step", show=False),
        Binding("end", "last_step", "last step", show=False),
        Binding("t", "train_step", "train 1"),
        Binding("space", "toggle_play", "play/pause"),
        Binding("r", "reset", "reset"),
        Binding("g", "gradcheck", "grad check"),
        Binding("e", "toggle_eval", "train/eval", show=False),
        Binding("x", "exercise", "exercise", show=False),
        Binding("ctrl+s", "save", "save", show=False),
        Binding("ctrl+o", "open", "open", show=False),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
        Binding("escape", "unfocus", "leave field", show=False),
        *[Binding(str(i + 1), f"show_tab('{tab}')", TAB_TITLES[i], show=False)
          for i, tab in enumerate(TABS)],
    ]

    def __init__(self, config: RunConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else replace(
            preset(DEFAULT_PRESET), steps=100)
        self.session: Session | None = None
        self.trace: Trace | None = None
        self.report: GradcheckReport | None = None
        self.regions: RegionMap | None = None
        self.index = 0
        self.trace_training = True
        self.playing = False
        self.lock = threading.Lock()
        self._deferred: list[tuple[str, Widget]] = []
        self._train_worker: Worker[None] | None = None
        self.last_redraw_ms = 0.0
        self.report_step = -1
        self.report_seconds = 0.0
        self.session_path = "bntui-session.npz"
        self.active_tab = "stepper"
        self._plots_dirty = False
        self._last_plot = 0.0
        self.report_training = True

    # layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="tabs", initial="stepper"):
            panes = (StepperPane(), TrainingPane(), DatasetPane(), ModelPane(),
                     OptimizerPane(), CheckPane(), BNPane(), LabsPane())
            for tab, title, pane in zip(TABS, TAB_TITLES, panes, strict=True):
                with TabPane(title, id=tab):
                    # the first screen needs the stepper only; the rest mount just after
                    if tab == "stepper":
                        yield pane
                    else:
                        self._deferred.append((tab, pane))
        yield Static(id="status")
        yield Footer()

    async def _mount_deferred(self) -> None:
        """Mount the panes the first screen does not show (quitting first is fine)."""
        while self._deferred:
            tab, pane = self._deferred.pop(0)
            if not self.is_running or self._exit:
                return
            try:
                await self.query_one(f"#{tab}", TabPane).mount(pane)
            except MountError:  # the app is closing
                return

    def on_mount(self) -> None:
        self.call_after_refresh(self._mount_deferred)
        try:
            session = Session(self.config)
        except BntuiError as exc:  # a bad config from the command line: fall back
            self.notify(str(exc), severity="error", timeout=10)
            self.config = replace(preset(DEFAULT_PRESET), steps=100)
            session = Session(self.config)
        self.install(session)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette lists every action of the app beside Textual's own."""
        yield from super().get_system_commands(screen)
        yield SystemCommand("Next step (n)", "Step forward through the pass",
                            self.action_next_step)
        yield SystemCommand("Previous step (b)", "Step back", self.action_prev_step)
        yield SystemCommand("Next layer (])", "Jump to the next layer", self.action_next_layer)
        yield SystemCommand("Train one step (t)", "One optimizer step", self.action_train_step)
        yield SystemCommand("Play / pause training (space)", "Train until paused",
                            self.action_toggle_play)
        yield SystemCommand("Reset (r)", "Back to the initial weights", self.action_reset)
        yield SystemCommand("Gradient check (g)", "Analytic vs numerical vs autograd",
                            self.action_gradcheck)
        yield SystemCommand("Training ↔ eval pass (e)", "Which pass the stepper shows",
                            self.action_toggle_eval)
        yield SystemCommand("Save session (ctrl+s)", "Weights, optimizer state and history",
                            self.action_save)
        yield SystemCommand("Open session (ctrl+o)", "A session saved earlier",
                            self.action_open)
        yield SystemCommand("Help (?)", "Keys and the glossary", self.action_help)
        for tab, title in zip(TABS, TAB_TITLES, strict=True):
            yield SystemCommand(f"Show {title[2:]} ({title[0]})", f"Switch to the {title[2:]}"
                                " pane", lambda t=tab: self.action_show_tab(t))

    # state -------------------------------------------------------------------------------
    def install(self, session: Session) -> None:
        """Make `session` the current one and push everything down to the panes."""
        self.stop_training()
        self.session = session
        self.config = session.config
        self.report = None
        with self.lock:
            self.trace = session.trace(self.trace_training)
            self.regions = self._regions(session)
        self.index = min(self.index, len(self.trace) - 1)
        for kind in (DatasetPane, ModelPane, OptimizerPane, BNPane, CheckPane, TrainingPane,
                     LabsPane):
            for pane in self.query(kind):
                self.load_pane(pane)
        self.show_step()

    def load_pane(self, pane: Widget) -> None:
        """Push the session's state into one pane (also called by a pane when it mounts:
        all panes but the stepper are mounted lazily, after the first screen)."""
        s = self.session
        if s is None:
            return
        if isinstance(pane, DatasetPane):
            pane.load(s.config, s.dataset)
        elif isinstance(pane, ModelPane):
            pane.load(s.config, s.network)
        elif isinstance(pane, OptimizerPane):
            pane.load(s.config, s.optimizer, s.batch_size)
        elif isinstance(pane, BNPane):
            pane.set_layers(s.network)
            self.refresh_bn_pane()
        elif isinstance(pane, CheckPane):
            if self.report is not None:
                pane.show(self.report, self.report_seconds)
            else:
                pane.busy("not run yet: press g")
        elif isinstance(pane, TrainingPane):
            pane.set_playing(self.playing)
            pane.show(s, self.regions)
        elif isinstance(pane, LabsPane):
            pane.load(s.config)

    def pane(self, kind: type[PaneT]) -> PaneT | None:
        """The pane of that kind, or None while it is not mounted yet."""
        found = self.query(kind)
        return found.first() if found else None

    def _regions(self, session: Session) -> RegionMap | None:
        try:
            return decision_regions(session.network, session.dataset, cols=48, rows=24)
        except Exception:
            return None

    def show_step(self, note: str = "") -> None:
        if self.session is None or self.trace is None:
            return
        t0 = time.perf_counter()
        stepper = self.query_one(StepperPane)
        if stepper.exercise:  # the labels of the batch the trace was recorded on
            stepper.labels = self.session.inspection_batch()[1]
        stepper.show(self.session.network, self.trace, self.index, note)
        self.last_redraw_ms = (time.perf_counter() - t0) * 1000
        self.update_status()

    def update_status(self) -> None:
        s = self.session
        if s is None:
            return
        state = "training…" if self.playing else "paused"
        ds = s.dataset
        self.query_one("#status", Static).update(
            f"step {s.step_count:,} · {state} · {ds.name} ({ds.n_train} train) · "
            f"{s.network.describe()} · {s.optimizer.name} lr {s.optimizer.lr:g}"
        )

    def refresh_bn_pane(self) -> None:
        s = self.session
        if s is None or self.playing:
            return
        pane = self.pane(BNPane)
        if pane is None:
            return
        X, _ = s.inspection_batch()
        with self.lock:
            pane.refresh_view(s.network, X)

    def _retrace(self) -> None:
        s = self.session
        assert s is not None
        with self.lock:
            self.trace = s.trace(self.trace_training)
            if self.report is not None and self.report_step == s.step_count and (
                    self.report_training == self.trace_training):
                attach_to_trace(self.trace, self.report)
        self.index = min(self.index, len(self.trace) - 1)

    # stepping ------------------------------------------------------------------------
    def _move(self, delta: int) -> None:
        if self.trace is None:
            return
        self.index = max(0, min(len(self.trace) - 1, self.index + delta))
        self.show_step()

    def action_next_step(self) -> None:
        self._move(1)

    def action_prev_step(self) -> None:
        self._move(-1)

    def action_first_step(self) -> None:
        self._move(-len(self.trace or []))

    def action_last_step(self) -> None:
        self._move(len(self.trace or []))

    def _jump_layer(self, direction: int) -> None:
        """Go to the first step of the next (or previous) layer in the trace's order."""
        if self.trace is None:
            return
        steps = self.trace.steps
        where = [(s.layer, s.phase) for s in steps]
        i = self.index
        if direction > 0:
            while i < len(steps) and where[i] == where[self.index]:
                i += 1
            if i == len(steps):
                return
        else:
            while i > 0 and where[i - 1] == where[self.index]:
                i -= 1  # the first step of the current layer
            if i == 0:
                return
            i -= 1
            while i > 0 and where[i - 1] == where[i]:
                i -= 1  # the first step of the previous layer
        self.index = i
        self.show_step()

    def action_next_layer(self) -> None:
        self._jump_layer(1)

    def action_prev_layer(self) -> None:
        self._jump_layer(-1)

    def action_toggle_eval(self) -> None:
        self.trace_training = not self.trace_training
        if self.playing:
            return
        self._retrace()
        mode = "training mode" if self.trace_training else "eval mode (running statistics)"
        self.show_step(f"now showing the {mode} pass")

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        # A focused widget left behind in the old pane would pull it back to the front.
        self.set_focus(None)

    @on(TabbedContent.TabActivated)
    def tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.active_tab = event.pane.id or ""
        if event.pane.id == "training" and self._plots_dirty and self.session is not None:
            if (tp := self.pane(TrainingPane)) is not None:
                tp.show(self.session, self.regions)
                self._plots_dirty = False
        elif event.pane.id == "stepper" and self.playing is False and self.session is not None:
            self.show_step()
        if event.pane.id == "bn":
            self.refresh_bn_pane()
        elif event.pane.id == "labs" and (labs := self.pane(LabsPane)) is not None:
            labs.shown()
        elif event.pane.id == "optimizer" and self.session is not None:
            opt = self.pane(OptimizerPane)
            if opt is not None:
                opt.show_state(self.session.optimizer)

    def action_exercise(self) -> None:
        """Exercise mode in the stepper: each step's tensor (or formula) hidden and asked."""
        stepper = self.query_one(StepperPane)
        if self.session is None:
            return
        on = not stepper.exercise
        self.action_show_tab("stepper")
        stepper.set_exercise(on, self.session.inspection_batch()[1] if on else None)
        if on and not self.trace_training:
            self.notify("exercise mode asks about the training-mode pass: press e",
                        severity="warning")

    def action_unfocus(self) -> None:
        """Leave a text field: the keys go back to the app's bindings."""
        self.set_focus(None)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    # save and open -------------------------------------------------------------------
    def action_save(self) -> None:
        session = self.session
        if session is None:
            return
        self.stop_training()

        def save(path: str) -> str:
            with self.lock:
                written = save_session(session, path)
            return f"saved step {session.step_count:,} to {written}"

        self.push_screen(FileScreen("Save the whole session (weights, optimizer, history)",
                                    "Save", self.session_path, save), self._file_done)

    def action_open(self) -> None:
        def open_(path: str) -> str:
            session = load_session(path)  # raises BntuiError; the current one is kept
            self.session_path = path
            self.install(session)
            return f"opened {path}: step {session.step_count:,}"

        self.push_screen(FileScreen("Open a saved session", "Open", self.session_path, open_),
                         self._file_done)

    def _file_done(self, message: str | None) -> None:
        if message:
            self.notify(message, timeout=5)

    # configuration -------------------------------------------------------------------
    @on(ConfigChange)
    def change_config(self, message: ConfigChange) -> None:
        changes = dict(message.changes)
        try:
            if "preset" in changes:
                name = str(changes.pop("preset"))
                cfg = replace(preset(name), steps=100)
                what = f"preset {name}: {PRESETS[name][0][:60]}…"
            else:
                cfg = self.config
                if "dataset" in changes:
                    cfg = cfg.with_dataset(str(changes.pop("dataset")))
                if "optimizer" in changes:
                    cfg = cfg.with_optimizer(str(changes.pop("optimizer")))
                cfg = _apply(cfg, changes)
                what = "applied"
            cfg.validate()
            session = Session(cfg)
        except BntuiError as exc:
            message.source.show_error(f"{exc} — nothing was changed")  # type: ignore[attr-defined]
            return
        self.install(session)
        message.source.show_ok(f"{what}: {session.network.describe()}")  # type: ignore[attr-defined]

    # training ------------------------------------------------------------------------
    def action_train_step(self) -> None:
        self.start_training(1)

    @on(TrainRequest)
    def train_request(self, message: TrainRequest) -> None:
        if message.reset:
            self.action_reset()
        elif message.play:
            self.action_toggle_play()
        elif message.steps:
            self.start_training(message.steps)

    def action_toggle_play(self) -> None:
        if self.playing:
            self.stop_training()
        else:
            self.start_training(None)

    def action_reset(self) -> None:
        self.stop_training()
        try:
            session = Session(self.config)
        except BntuiError as exc:
            self.notify(str(exc), severity="error")
            return
        self.install(session)
        self.show_step("reset: the weights are back at their initial values")

    def start_training(self, steps: int | None) -> None:
        if self.playing or self.session is None:
            return
        self.playing = True
        if (tp := self.pane(TrainingPane)) is not None:
            tp.set_playing(steps is None or steps > 1)
        self.update_status()
        self._train_worker = self._train(self.session, steps)

    def stop_training(self) -> None:
        if self._train_worker is not None:
            self._train_worker.cancel()
            self._train_worker = None
        self.playing = False
        if (tp := self.pane(TrainingPane)) is not None:
            tp.set_playing(False)
        if self.session is not None and self.query("#status"):
            self.update_status()

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def _train(self, session: Session, steps: int | None) -> None:
        """Train in slices of ~0.1 s; after each, send the views what they show."""
        worker = get_current_worker()
        remaining = steps
        last_regions = 0.0
        done = False
        while not worker.is_cancelled and not done:
            deadline = time.monotonic() + 0.1
            with self.lock:
                result = session.train(
                    steps=remaining if remaining is not None else 10**9,
                    should_stop=lambda d=deadline: worker.is_cancelled or time.monotonic() > d,
                    eval_every=EVAL_EVERY,  # by step count: the curves never depend on timing
                )
                if remaining is not None:
                    remaining -= result.steps
                done = bool(result.stopped) or (remaining is not None and remaining <= 0)
                final = done or worker.is_cancelled
                h = session.history
                if final and (not h.eval_step or h.eval_step[-1] != session.step_count):
                    session.evaluate(record=True)
                # compute only what is on screen; everything once the run ends
                trace = (session.trace(self.trace_training)
                         if final or self.active_tab == "stepper" else None)
                regions = None
                if final or (self.active_tab == "training"
                             and time.monotonic() - last_regions > 0.5):
                    regions = self._regions(session)
                    last_regions = time.monotonic()
            self.call_from_thread(self._after_train, session, trace, regions, result.stopped,
                                  final)

    def _after_train(self, session: Session, trace: Trace | None, regions: RegionMap | None,
                     stopped: str | None, final: bool) -> None:
        if session is not self.session:
            return
        if trace is not None:
            self.trace = trace
            self.index = min(self.index, len(trace) - 1)
        if regions is not None:
            self.regions = regions
        if final:
            self.playing = False
            self._train_worker = None
        tp = self.pane(TrainingPane)
        if tp is not None:
            tp.set_playing(self.playing)
            # plots redraw at most 4 times a second: plotext rendering is the costly part
            now = time.monotonic()
            if final or (self.active_tab == "training" and now - self._last_plot > 0.25):
                tp.show(session, regions, stopped or "")
                self._plots_dirty = False
                self._last_plot = now
            else:
                self._plots_dirty = True
        if trace is not None:
            self.show_step(stopped or "")
        else:
            self.update_status()
        if final and self.active_tab == "bn":
            self.refresh_bn_pane()
        if stopped:
            self.notify(stopped, severity="warning", timeout=8)

    # gradient check ------------------------------------------------------------------
    def action_gradcheck(self) -> None:
        if self.session is None:
            return
        if self.playing:
            self.stop_training()
        if (cp := self.pane(CheckPane)) is not None:
            cp.busy("checking every gradient… (numerical differences take a while on big "
                    "networks)")
        self._check(self.session, self.trace_training)

    @on(CheckRequest)
    def check_request(self) -> None:
        self.action_gradcheck()

    @work(thread=True, exclusive=True, group="check", exit_on_error=False)
    def _check(self, session: Session, training: bool) -> None:
        """Check a copy of the network, so that the app never waits for the check."""
        t0 = time.perf_counter()
        with self.lock:
            step = session.step_count
            network = copy.deepcopy(session.network)
        X, y = session.inspection_batch()
        # one core fewer than the machine has: the screen keeps one to itself
        report = gradcheck(network, X, y, training=training, seed=session.config.seed,
                           threads=max(1, (os.cpu_count() or 1) - 1))
        self.call_from_thread(self._after_check, session, step, training, report,
                              time.perf_counter() - t0)

    def _after_check(self, session: Session, step: int, training: bool,
                     report: GradcheckReport, seconds: float) -> None:
        if session is not self.session:
            return
        self.report, self.report_step, self.report_training = report, step, training
        self.report_seconds = seconds
        if (cp := self.pane(CheckPane)) is not None:
            cp.show(report, seconds)
        if session.step_count == step and training == self.trace_training:
            self._retrace()
            self.show_step()
        worst = report.max_rel_error()
        num = worst["analytic_vs_numeric"]
        self.notify(f"gradient check done: max relative error vs numerical "
                    f"{num:.1e}" if num is not None else "gradient check done", timeout=4)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # a cancelled worker (pausing, a new run replacing an old one) keeps a
        # CancelledError as its `error`: that is not a failure to report
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.playing = False
            self.notify(f"{type(event.worker.error).__name__}: {event.worker.error}",
                        severity="error", timeout=10)


def _apply(cfg: RunConfig, changes: dict[str, Any]) -> RunConfig:
    """Replace fields (None included: an empty field means 'the default')."""
    bn = {k[3:]: v for k, v in changes.items() if k.startswith("bn_") and v is not None}
    plain = {k: v for k, v in changes.items() if not k.startswith("bn_")}
    cfg = replace(cfg, **plain)
    if bn:
        cfg = replace(cfg, bn=replace(cfg.bn, **bn))
    return cfg
