"""The bntui app: a thin view over one engine `Session`, with one owner of its state.

The app's state is a handful of reactive attributes whose watchers redraw: the session;
the `Snapshot` every view draws from (the step, the history, the stepper's trace, the
decision regions, the BatchNorm comparison, the optimizer's state — one moment, so the
views always agree); `playing`; the stepper's `index`; `trace_training` (the training or
the eval-mode pass); the `active_tab`; the last gradient check as one `CheckRecord`;
exercise mode; the tour's stop; the start panel.

Panes come from one registry (`bntui.ui.registry`), which also gives the tabs, their keys,
help and the command palette; every action is in `bntui.ui.keys`.  Each pane declares the
state it shows (`BINDS`) and gets it pushed down through `data_bind`; panes post messages
up (`ConfigChange`, `TrainRequest`, `CheckRequest`) and never reach into the app.
Training and checking run in thread workers that report by messages.  A mistake in a
pane's input is shown inline in that pane and the session the learner had stays as it was.

No screen waits for the data: a session whose dataset must be read is built in a thread
worker (`bntui.ui.loader`) while the first screen, or the current session, stays on
show with a loading panel; a change that keeps the dataset (the architecture, the
optimizer, a reset) builds at once.  Keys that act on the session, pressed before the
first one is there, wait for it and then run in order.  The panes the first screen does
not show mount just after it, while keys already act: a view draws only while it is live
(mounted, the app not closing: `bntui.ui.live`) and its binding draws it once it mounts,
so a key at any moment changes the state, never a widget that is not there.  What the
views read of a big dataset is bounded by the engine's samples (`Session.inspection_batch`,
`plane_sample`).
"""

from __future__ import annotations

import asyncio
import copy
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from typing import Any

from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.geometry import Size
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen
from textual.widget import MountError, Widget
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from bntui.engine.config import PRESETS, RunConfig, preset
from bntui.engine.datasets import builds_quickly
from bntui.engine.errors import BntuiError
from bntui.engine.files import write_atomic
from bntui.engine.gradcheck import GradcheckReport, attach_to_trace, gradcheck
from bntui.engine.persist import load_session, save_session
from bntui.engine.session import INSPECTION_ROWS, Session, least_cost, same_dataset
from bntui.engine.trace import Trace
from bntui.handout import handout, info_for
from bntui.ui.check_pane import CheckRequest
from bntui.ui.confirm_screen import ConfirmScreen
from bntui.ui.export_screen import ExportScreen
from bntui.ui.file_screen import FileScreen
from bntui.ui.help_screen import HelpScreen
from bntui.ui.inside_actions import InsideActions, needs_session
from bntui.ui.keys import bindings, palette
from bntui.ui.live import LiveView, app_closing
from bntui.ui.loader import Loaded, Loading, LoadJob, LoadProgress, first_loading, load_run
from bntui.ui.loading_panel import LoadingPanel
from bntui.ui.messages import ConfigChange, TrainRequest
from bntui.ui.quit_fast import QuitFastExecutor
from bntui.ui.region_view import PlaneView
from bntui.ui.registry import PANES
from bntui.ui.start_panel import StartPanel
from bntui.ui.state import CheckRecord, Snapshot, Wants, take_snapshot
from bntui.ui.stepper import StepperPane
from bntui.ui.tour import NEEDS_BN, STOPS, stop_index, tour_layer
from bntui.ui.training_pane import RegionView
from bntui.ui.training_worker import (
    ExactDone,
    TrainEnded,
    TrainJob,
    TrainProgress,
    exact_run,
    train_run,
)

DEFAULT_PRESET = "seed-softmax"
REDRAW_EVERY = 0.2  # seconds between two redraws while training (whatever the step rate)
NARROW, WIDE, SHORT = 100, 140, 30  # size classes of the screen: -narrow, -wide, -short


class CheckDone(Message):
    """A gradient check finished (posted by its worker)."""

    def __init__(self, record: CheckRecord) -> None:
        super().__init__()
        self.record = record


class BntuiApp(InsideActions, App[None]):
    TITLE = "bntui"
    SUB_TITLE = "batch normalization, step by step"
    CSS_PATH = "app.tcss"
    AUTO_FOCUS = None  # keys go to the app's bindings until the learner picks a widget
    BINDINGS = bindings()

    # the state: one owner, pushed down to the panes that declare it (BINDS) ---------------
    session: var[Session | None] = var(None, init=False)
    snapshot: var[Snapshot | None] = var(None, init=False)
    playing: var[bool] = var(False, init=False)
    index: var[int] = var(0, init=False)
    trace_training: var[bool] = var(True, init=False)
    active_tab: var[str] = var("stepper", init=False)
    check: var[CheckRecord | None] = var(None, init=False)
    checking: var[bool] = var(False, init=False)
    evaluating: var[bool] = var(False, init=False)  # every row, behind a run's estimate
    exercise: var[bool] = var(False, init=False)
    graph_view: var[bool] = var(False, init=False)  # the stepper shows the block's graph
    entry: var[tuple[int, ...] | None] = var(None, init=False)  # the drill-down's entry
    tour: var[int | None] = var(None, init=False)
    note: var[str] = var("", init=False)
    start_panel: var[bool] = var(False, init=False)
    failure: var[str] = var("", init=False)  # why the last run failed ("" if it did not)
    load_status: var[Loading | None] = var(None, init=False)  # a dataset loading in a worker
    load_error: var[str] = var("", init=False)  # why the first dataset could not load

    def __init__(self, config: RunConfig | None = None,
                 start_panel: bool | None = None) -> None:
        """`start_panel`: show the start panel (by default when no configuration is given,
        as when `bntui` is started without flags)."""
        super().__init__()
        self.config = config if config is not None else replace(
            preset(DEFAULT_PRESET), steps=100)
        self.show_start = config is None if start_panel is None else start_panel
        self.lock = threading.Lock()  # the session is trained in a thread: read it under this
        self._deferred: list[tuple[str, Widget]] = []  # panes mounted after the first session
        self._mounting = False
        self._opened = False  # the first screen is mounted (see `live`)
        self._train_job: TrainJob | None = None
        self.run_id = 0  # the current training run; older runs' messages are ignored
        self.ended_run = 0  # the last run whose end the views show
        self._pending: Snapshot | None = None  # the newest progress, drawn at the next tick
        self._status: Static | None = None  # the status line
        self.load_id = 0  # the newest load; older loads' results are dropped
        self._waiting: list[Callable[[], None]] = []  # actions pressed before the session
        self.region_size = (48, 24)
        self.session_path = "bntui-session.npz"
        self.export_path = "bntui-walkthrough.md"

    # layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        width = self.size.width or 120
        with TabbedContent(id="tabs", initial="stepper"):
            for spec in PANES:
                pane = spec.make()
                self._bind(pane)
                with TabPane(spec.label(width), id=spec.id):
                    # the first screen needs the stepper only; the rest mount just after
                    if spec.id == "stepper":
                        yield pane
                    else:
                        self._deferred.append((spec.id, pane))
        yield StartPanel(id="start")
        panel = LoadingPanel(id="loading")
        self._bind(panel)
        yield panel
        self._status = Static(id="status", markup=False)  # it names files: text, not markup
        yield self._status
        yield Footer()

    def _bind(self, pane: Widget) -> None:
        """Push the app's state down to `pane`: the reactives it declares in `BINDS`."""
        names: tuple[str, ...] = getattr(pane, "BINDS", ())
        if names:
            # a bound view draws only while it is live (mounted, the app not closing)
            assert isinstance(pane, LiveView), f"{type(pane).__name__} must be a LiveView"
            pane.data_bind(**{name: getattr(BntuiApp, name) for name in names})

    async def _mount_deferred(self) -> None:
        """Mount the panes the first screen does not show (quitting first is fine): after
        the first session is installed, so that they do not slow its loading down."""
        while self._deferred:
            tab, pane = self._deferred.pop(0)
            if self.closing:
                return
            try:
                await self.query_one(f"#{tab}", TabPane).mount(pane)
            except MountError:  # the app is closing
                return

    def on_mount(self) -> None:
        # thread workers run here; quitting does not wait for a step under way
        asyncio.get_running_loop().set_default_executor(QuitFastExecutor())
        self._opened = True
        # a dataset made in milliseconds (the default preset's) is in the first screen;
        # one to read loads in a worker once the first screen is drawn; then (once the
        # first session is there) the panes the first screen does not show mount
        if builds_quickly(self.config.dataset, self.config.samples):
            self._first_load()
        else:
            self.call_after_refresh(self._first_load)
        self.set_interval(REDRAW_EVERY, self._tick)
        self.start_panel = self.show_start
        self._size_classes()

    def _first_load(self) -> None:
        """Load the configuration the app was started with (a bad one: the default; a
        very slow one only if the learner says so)."""
        try:
            warning = least_cost(self.config).warning()
        except BntuiError:
            warning = None  # `load` says what is wrong
        if warning is None:
            self._load_first()
            return

        def answer(build: bool | None) -> None:
            if build:
                self._load_first()
            else:
                self._fall_back(f"not built: {warning}")

        self.push_screen(ConfirmScreen.slow_build(warning), answer)

    def _load_first(self) -> None:
        try:
            self.load(self.config)
        except BntuiError as exc:  # a bad config from the command line: fall back
            self._fall_back(str(exc))

    @property
    def closing(self) -> bool:
        """The app is quitting, has crashed or has lost its terminal (or browser tab)."""
        return app_closing(self)

    @property
    def live(self) -> bool:
        """The first screen is mounted and the app is not closing: what the app may query
        and draw on itself (the panes guard themselves, `bntui.ui.live`)."""
        return self._opened and not self.closing and bool(self.screen_stack)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent) and self.closing:
            return  # a key or a click still queued as the app closes: no screen to take it
        await super().on_event(event)

    def on_resize(self, event: events.Resize) -> None:
        self._size_classes(event.size)  # (this runs before App's own handler: not self.size)

    def _size_classes(self, size: Size | None = None) -> None:
        """Tab labels and the screen's size classes follow the terminal's size."""
        if self.closing:
            return
        width, height = size if size is not None else self.size
        self.screen.set_class(width < NARROW, "-narrow")
        self.screen.set_class(width >= WIDE, "-wide")
        self.screen.set_class(height < SHORT, "-short")
        tabs = self.query(TabbedContent)
        if tabs:
            for spec in PANES:
                tabs.first().get_tab(spec.id).label = spec.label(width)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette lists every action of the app beside Textual's own."""
        yield from super().get_system_commands(screen)
        for title, help_text, action in palette():
            yield SystemCommand(title, help_text, partial(self.run_action, action))

    # the state's watchers ----------------------------------------------------------------
    @property
    def trace(self) -> Trace | None:
        """The pass the stepper shows."""
        return self.snapshot.trace if self.snapshot is not None else None

    @property
    def report(self) -> GradcheckReport | None:
        """The last gradient check's report (None before the first)."""
        return self.check.report if self.check is not None else None

    @property
    def last_redraw_ms(self) -> float:
        return self.query_one(StepperPane).redraw_ms

    def validate_index(self, index: int) -> int:
        n = len(self.trace) if self.trace is not None else 1
        return max(0, min(n - 1, index))

    def watch_snapshot(self, snap: Snapshot | None) -> None:
        if snap is not None and snap.trace is not None:
            self.index = self.index  # clamped to the new pass
        self.update_status()

    def watch_index(self) -> None:
        self.note = ""  # a note is about the step it was said at

    def watch_playing(self) -> None:
        self.update_status()

    def watch_failure(self) -> None:
        self.update_status()

    def watch_trace_training(self, training: bool) -> None:
        if self.snapshot is not None and not self.playing:
            self.refresh_snapshot()
        session = self.session
        stats = ("running statistics" if session is None or session.network.batchnorms()
                 else "no BatchNorm: the same numbers as training mode")
        mode = "training mode" if training else f"eval mode ({stats})"
        self.note = f"now showing the {mode} pass"

    def watch_active_tab(self, tab: str) -> None:
        if not self.live:  # (a tab shown as the app closes: its screen may be gone)
            return
        tabs = self.query(TabbedContent)
        if tabs and tabs.first().active != tab:
            tabs.first().active = tab
        # A focused widget left behind in the old pane would pull it back to the front.
        self.set_focus(None)

    def watch_check(self, record: CheckRecord | None) -> None:
        snap = self.snapshot
        if (record is None or snap is None or snap.trace is None or self.playing
                or not record.fits(self.session, snap.step, snap.training)):
            return
        attach_to_trace(snap.trace, record.report)
        self.snapshot = snap.with_trace(snap.trace, snap.training)

    def watch_start_panel(self, shown: bool) -> None:
        if self.live:
            self.query_one(StartPanel).display = shown

    def watch_tour(self, stop: int | None) -> None:
        if stop is not None:
            self._goto_stop()

    def update_status(self) -> None:
        s, snap = self.session, self.snapshot
        status = self._status
        if status is None:
            return
        if s is None:
            loading = self.load_status
            status.update(loading.text() if loading is not None else "", layout=False)
            return
        state = "training…" if self.playing else (
            f"stopped by an error ({self.failure})" if self.failure else "paused")
        ds = s.dataset
        step = snap.step if snap is not None else s.step_count
        bug = f"with the bug {s.config.bug} · " if s.config.bug else ""  # before it is cut
        status.update(f"step {step:,} · {state} · {bug}{ds.name} ({ds.n_train} train) · "
                      f"{s.network.describe()} · {s.optimizer.name} lr {s.optimizer.lr:g}",
                      layout=False)  # one line: no new layout

    # the session and its snapshots -----------------------------------------------------
    def wants(self) -> Wants:
        """What the views on screen need from the next snapshot (read by the worker)."""
        tab = self.active_tab
        return Wants(trace=tab == "stepper" or self.tour is not None,
                     regions=tab == "training", bn=tab == "bn", optimizer=tab == "optimizer",
                     size=self.region_size)

    def install(self, session: Session) -> None:
        """Make `session` the current one (a load still under way is dropped); every view
        follows, and the actions pressed while there was none run."""
        self.stop_training()
        self.load_id += 1
        self.load_status = None
        self.workers.cancel_group(self, "load")
        session.inspect_rows = INSPECTION_ROWS  # the stepper's and the check's batch
        self.config = session.config
        self.check = None
        self.failure = ""
        self.evaluating = False  # one behind the old session's run stops
        self.checking = False  # a check of the old session still going: its end is dropped
        self.session = session
        self.refresh_snapshot()
        waiting, self._waiting = self._waiting, []
        for action in waiting:
            action()
        if self._deferred and not self._mounting:
            self._mounting = True
            self.call_after_refresh(self._mount_deferred)

    # loading -----------------------------------------------------------------------------
    def build_now(self, config: RunConfig) -> Session | None:
        """A session for `config` at once when it keeps the current dataset (a new
        architecture, optimizer, reset: no row is read again), else None: it must load.
        Raises BntuiError for a config the engine refuses."""
        config.validate()
        current = self.session
        if current is not None and same_dataset(config, current.config):
            return Session(config, current.dataset)
        return None

    def load(self, config: RunConfig, source: Widget | None = None,
             what: str = "applied") -> None:
        """Install a session for `config`: at once if it keeps the dataset or its dataset
        is made in milliseconds, else from a thread worker (the outcome, with `what`, is
        written in `source`'s note).  Raises BntuiError, at once, for a config the engine
        refuses before reading anything."""
        session = self.build_now(config)
        if session is None and builds_quickly(config.dataset, config.samples):
            session = Session(config)
        if session is not None:
            self.install(session)
            if source is not None:
                source.show_ok(f"{what} — {session.network.describe()}")  # type: ignore[attr-defined]
            return
        self.load_id += 1
        self.load_status = first_loading(self.load_id, config)
        job = LoadJob(self.load_id, config, self.post_message, source, what,
                      lambda: get_current_worker().is_cancelled)
        # exclusive: a load still under way is cancelled (it stops at its next progress)
        self.run_worker(partial(load_run, job), thread=True, group="load", exclusive=True,
                        exit_on_error=False, name="load")

    @on(LoadProgress)
    def load_progress(self, message: LoadProgress) -> None:
        if message.loading.load == self.load_id:
            self.load_status = message.loading

    @on(Loaded)
    def loaded(self, message: Loaded) -> None:
        if message.load != self.load_id or self.closing:
            return  # a load replaced by a newer one (or by a session opened meanwhile)
        self.load_status = None
        source = message.source
        if message.session is None:
            error = message.error or "the dataset could not be loaded"
            if source is not None:
                source.show_error(f"{error} — nothing was changed")  # type: ignore[attr-defined]
            elif self.session is None:
                self._fall_back(error)
            else:  # (no pane asked: one line in the loading panel)
                self.load_error = f"{error} — nothing was changed"
            return
        self.install(message.session)
        if source is not None:
            source.show_ok(f"{message.what} — {message.session.network.describe()}")  # type: ignore[attr-defined]

    def _fall_back(self, error: str) -> None:
        """The first session could not be built: say why in one line and open the
        default preset instead, so that the app is usable."""
        self.load_error = f"{error} — opened the {DEFAULT_PRESET} preset instead"
        self.config = replace(preset(DEFAULT_PRESET), steps=100)
        self.load(self.config)

    def watch_load_status(self) -> None:
        self.update_status()

    @on(LoadingPanel.Closed)
    def loading_closed(self) -> None:
        self.load_error = ""

    def refresh_snapshot(self) -> None:
        """A complete snapshot of the session now (nothing is training)."""
        session = self.session
        if session is None:
            return
        with self.lock:
            snap = take_snapshot(session, self.trace_training, self.wants().everything(),
                                 self.check)
        self._pending = None
        self.snapshot = snap

    def _tick(self) -> None:
        """Draw the newest progress: the redraw rate does not follow the step rate."""
        if self._pending is not None:
            self.snapshot, self._pending = self._pending, None

    @on(PlaneView.Resized)
    def regions_resized(self, event: PlaneView.Resized) -> None:
        if not isinstance(event.view, RegionView) or event.size == self.region_size:
            return
        self.region_size = event.size
        if not self.playing:
            self.refresh_snapshot()

    # stepping ------------------------------------------------------------------------
    @needs_session
    def action_next_step(self) -> None:
        self.index += 1

    @needs_session
    def action_prev_step(self) -> None:
        self.index -= 1

    @needs_session
    def action_first_step(self) -> None:
        self.index = 0

    @needs_session
    def action_last_step(self) -> None:
        self.index = len(self.trace or [None]) - 1

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

    @needs_session
    def action_next_layer(self) -> None:
        self._jump_layer(1)

    @needs_session
    def action_prev_layer(self) -> None:
        self._jump_layer(-1)

    @needs_session
    def action_toggle_eval(self) -> None:
        self.trace_training = not self.trace_training

    def action_show_tab(self, tab: str) -> None:
        self.active_tab = tab

    @on(TabbedContent.TabActivated)
    def tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tab = event.pane.id or ""
        if event.tabbed_content.active != tab:
            # overtaken by a newer tab (two pane keys at once): taken as the app's, it
            # would set the tabs back, and the two would swing between the tabs forever
            return
        if tab != "stepper":
            self.start_panel = False
        self.active_tab = tab

    @needs_session
    def action_exercise(self) -> None:
        """Exercise mode in the stepper: each step's tensor (or formula) hidden and asked."""
        self.active_tab = "stepper"
        self.exercise = not self.exercise

    def action_escape(self) -> None:
        """Leave a text field (the keys go back to the app's bindings), else end the tour."""
        if self.focused is not None:
            self.set_focus(None)
        elif self.tour is not None:
            self.tour = None

    def action_help(self) -> None:
        def closed(result: str | None) -> None:
            if result == "tour":
                self.action_tour()

        self.push_screen(HelpScreen(), closed)

    # start panel and tour -----------------------------------------------------------------
    def on_key(self, event: events.Key) -> None:
        """Any key closes the start panel (and the line of a dataset that failed to
        load); the key still does what it does."""
        self.start_panel = False
        if self.session is not None:
            self.load_error = ""

    @on(StartPanel.Closed)
    def start_closed(self) -> None:
        self.start_panel = False

    @needs_session
    def action_tour(self) -> None:
        """Start the guided tour (or come back to its current stop)."""
        session = self.session
        if session is None:
            return
        if tour_layer(session.network) is None:
            self.notify(NEEDS_BN, severity="warning")
            return
        self.stop_training()
        self.active_tab = "stepper"
        if self.tour is None:
            self.tour = 0
        else:
            self._goto_stop()

    def _goto_stop(self) -> None:
        if self.tour is None or self.session is None:
            return
        stop = STOPS[self.tour]
        if self.trace_training != stop.training:
            self.stop_training()
            self.trace_training = stop.training
        layer = tour_layer(self.session.network)
        if self.trace is not None and layer is not None:
            at = stop_index(self.trace, stop, layer)
            if at is not None:
                self.index = at

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.closing:
            return False  # no key acts while the app closes (its screens are going)
        if action in ("tour_next", "tour_back"):
            return self.tour is not None  # enter and backspace act only during a tour
        return True

    def action_tour_next(self) -> None:
        if self.tour is None:
            return
        if self.tour + 1 < len(STOPS):
            self.tour += 1
        else:
            self.tour = None
            self.notify("end of the tour: x asks about every step, 2 trains, ? has all the "
                        "keys (w starts the tour again)", timeout=8)

    def action_tour_back(self) -> None:
        if self.tour is not None and self.tour > 0:
            self.tour -= 1

    # save, open, export -------------------------------------------------------------------
    @needs_session
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

    @needs_session
    def action_export(self) -> None:
        if self.session is None:
            return
        self.stop_training()
        self.push_screen(ExportScreen(self.export_path, self._export), self._file_done)

    def _export(self, path: str, form: str) -> str:
        """(In the export dialog's thread.)  The stepper's pass as a handout, every
        gradient checked: the app's last check when it fits, else a new one."""
        session, training, record = self.session, self.trace_training, self.check
        assert session is not None
        with self.lock:
            step = session.step_count
            trace = session.trace(training)
            info = info_for(session, trace, f"bntui (the app): export of step {step:,}, "
                                            f"{'training' if training else 'eval'}-mode pass")
            network = copy.deepcopy(session.network) if not (
                record is not None and record.fits(session, step, training)) else None
        if network is not None:
            t0 = time.perf_counter()
            X, y = session.inspection_batch()
            report = gradcheck(network, X, y, training=training, seed=session.config.seed,
                               threads=max(1, (os.cpu_count() or 1) - 1))
            record = CheckRecord(session, step, training, report, time.perf_counter() - t0)
            self.post_message(CheckDone(record))
        assert record is not None
        attach_to_trace(trace, record.report)
        written = write_atomic(path, handout(form, trace, info), "handout")
        self.export_path = path
        return f"exported the walkthrough ({len(trace)} steps, gradients checked) to {written}"

    def _file_done(self, message: str | None) -> None:
        if message:
            self.notify(message, timeout=5)

    # configuration -------------------------------------------------------------------
    @on(ConfigChange)
    def change_config(self, message: ConfigChange) -> None:
        """A pane's change: a new session at once, or loaded behind the current one (the
        outcome goes to the pane's note either way)."""
        changes = dict(message.changes)
        try:
            if "preset" in changes:
                name = str(changes.pop("preset"))
                cfg = replace(preset(name), steps=100)
                what = f"preset {name}: {PRESETS[name][0]}"
            else:
                cfg = self.config
                if "dataset" in changes:
                    cfg = cfg.with_dataset(str(changes.pop("dataset")))
                if "optimizer" in changes:
                    cfg = cfg.with_optimizer(str(changes.pop("optimizer")))
                cfg = _apply(cfg, changes)
                what = "applied"
            cfg.validate()
            est = least_cost(cfg)  # before anything is loaded or allocated
            if not est.fits:
                raise BntuiError(est.refusal())
        except BntuiError as exc:
            message.source.show_error(f"{exc} — nothing was changed")  # type: ignore[attr-defined]
            return
        warning = est.warning()
        if warning is None:
            self._load_or_say(cfg, message.source, what)
            return

        def answer(build: bool | None) -> None:
            if build:
                self._load_or_say(cfg, message.source, what)
            else:
                message.source.show_error("not built — nothing was changed")  # type: ignore[attr-defined]

        self.push_screen(ConfirmScreen.slow_build(warning), answer)

    def _load_or_say(self, cfg: RunConfig, source: Widget, what: str) -> None:
        try:
            self.load(cfg, source, what)
        except BntuiError as exc:
            source.show_error(f"{exc} — nothing was changed")  # type: ignore[attr-defined]

    # training ------------------------------------------------------------------------
    @needs_session
    def action_train_step(self) -> None:
        self.start_training(1)

    @on(TrainRequest)
    def train_request(self, message: TrainRequest) -> None:
        if message.reset:
            self.action_reset()
        elif message.play:
            self.action_toggle_play()
        elif message.steps:
            self.run_steps(message.steps)

    @needs_session
    def run_steps(self, steps: int) -> None:
        self.start_training(steps)

    @needs_session
    def action_toggle_play(self) -> None:
        if self.playing:
            self.stop_training()
        else:
            self.start_training(None)

    @needs_session
    def action_reset(self) -> None:
        self.stop_training()
        try:
            self.load(self.config)  # the same dataset: a new session at once
        except BntuiError as exc:
            self.notify(str(exc), severity="error")
            return
        self.note = "reset: the weights are back at their initial values"

    def start_training(self, steps: int | None) -> None:
        if self.playing or self.session is None:
            return
        self.run_id += 1
        self.failure = ""
        self.evaluating = False  # an exact evaluation behind the last run stops
        self.playing = True
        job = TrainJob(self.run_id, self.session, steps, self.lock, self.wants,
                       lambda: self.trace_training, lambda: self.check, self.post_message)
        self._train_job = job
        self.run_worker(lambda: train_run(job, lambda: get_current_worker().is_cancelled),
                        thread=True, group="train", exit_on_error=False, name="train")

    def stop_training(self) -> None:
        """Pause: the run stops within a step and sends its last snapshot."""
        if self._train_job is not None:
            self._train_job.stop.set()
            self._train_job = None
        self.playing = False

    @on(TrainProgress)
    def train_progress(self, message: TrainProgress) -> None:
        if message.run == self.run_id and message.snapshot.session is self.session:
            self._pending = message.snapshot

    @on(TrainEnded)
    def train_ended(self, message: TrainEnded) -> None:
        """However the run ended, every view ends on the session's last step."""
        if message.run != self.run_id or message.session is not self.session or self.closing:
            return  # an older run, or a session replaced since (or the app is closing)
        self.ended_run = message.run
        self._train_job = None
        self._pending = None
        self.playing = False
        if message.reason == "failed":
            self.failure = message.error or "error"
            self.notify(f"training failed: {self.failure}", severity="error", timeout=10)
        if message.snapshot is not None:
            self.snapshot = message.snapshot
        else:
            self.refresh_snapshot()
        if message.reason == "stopped" and message.session.stopped:
            self.note = message.session.stopped
            self.notify(message.session.stopped, severity="warning", timeout=8)
        h = message.session.history
        if message.reason != "failed" and h.eval_step and not h.eval_exact[-1]:
            self.evaluating = True  # the run ended on an estimate: every row, behind it
            self._exact(message.session, message.run)

    @work(thread=True, exclusive=True, group="exact", exit_on_error=False)
    def _exact(self, session: Session, run: int) -> None:
        """The exact evaluation of a paused run, on a copy of its network; the next run,
        another session or quitting stops it between two chunks of rows."""
        worker = get_current_worker()
        exact_run(session, self.lock,
                  lambda: worker.is_cancelled or run != self.run_id or session is not self.session,
                  self.post_message)

    @on(ExactDone)
    def exact_done(self, message: ExactDone) -> None:
        if message.session is not self.session:
            return
        self.evaluating = False
        with self.lock:
            recorded = message.session.record_exact(message.step, message.figures)
        if recorded and not self.playing:
            self.refresh_snapshot()

    # gradient check ------------------------------------------------------------------
    @needs_session
    def action_gradcheck(self) -> None:
        if self.session is None:
            return
        self.stop_training()
        self.checking = True
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
        self.post_message(CheckDone(CheckRecord(session, step, training, report,
                                                time.perf_counter() - t0)))

    @on(CheckDone)
    def check_done(self, message: CheckDone) -> None:
        record = message.record
        if record.session is not self.session:
            return
        self.checking = False
        self.check = record
        num = record.report.max_rel_error()["analytic_vs_numeric"]
        self.notify(f"gradient check done: max relative error vs numerical {num:.1e}"
                    if num is not None else "gradient check done", timeout=4)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # a cancelled worker (pausing, a new run replacing an old one) keeps a
        # CancelledError as its `error`: that is not a failure to report
        if event.state != WorkerState.ERROR or event.worker.error is None:
            return
        if event.worker.group == "check":
            self.checking = False
        self.notify(f"{type(event.worker.error).__name__}: {event.worker.error}",
                    severity="error", timeout=10)


def _apply(cfg: RunConfig, changes: dict[str, Any]) -> RunConfig:
    """Replace fields (None included: an empty field means 'the default')."""
    bn = {k[3:]: v for k, v in changes.items() if k.startswith("bn_") and v is not None}
    plain = {k: v for k, v in changes.items() if not k.startswith("bn_")}
    cfg = replace(cfg, **plain)
    if bn:  # a new convention first, then the settings edited on top of it
        cfg = replace(cfg, bn=cfg.bn.with_changes(**bn))
    return cfg
