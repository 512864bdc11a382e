"""Nothing a learner types can hurt the app (issue 13): keys pressed at once, while the
panes behind the first screen still mount or the data still loads, never crash it, and
their effect is the one they have later; the app closing (quitting, a browser tab gone)
while the state still changes is clean; a crash exits non-zero.

Each start configuration is tried as a learner meets it: the default preset (built in the
first screen), the seed-digits preset (scikit-learn's digits, loaded in a worker) and a
big CSV whose load is held back until the keys are in (`HeldLoads`).
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from app_helpers import HeldLoads, send_key, settle, text, until
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Button, TabbedContent

from bntui.cli.app_entry import run_to_status
from bntui.engine import RunConfig, preset
from bntui.ui.app import BntuiApp
from bntui.ui.help_screen import HelpScreen
from bntui.ui.keys import KEYS, TOUR_KEYS
from bntui.ui.live import LiveView
from bntui.ui.loading_panel import LoadingPanel
from bntui.ui.registry import PANES
from bntui.ui.stepper import StepperPane
from bntui.ui.tour import TourPanel
from bntui.ui.training_pane import TrainingPane

SIZE = (120, 40)
# every key of the app that keeps to the main screen: not quit, help, the derivation or the
# file dialogs
MODAL = {"quit", "help", "derive", "save", "open", "export"}
SCREEN_KEYS = [k.keys.split(",")[0] for k in (*KEYS, *TOUR_KEYS) if k.action not in MODAL]
PANE_KEYS = [p.key for p in PANES]


START = ("default", "seed-digits", "big csv")


def start_app(name: str, held: HeldLoads, big_csv: Path) -> BntuiApp:
    """The app as `bntui`, `bntui --preset seed-digits` or `bntui --dataset big.csv`
    would start it (the CSV's load held back until `held.release()`)."""
    if name == "default":
        return BntuiApp()
    if name == "seed-digits":
        return BntuiApp(replace(preset("seed-digits"), steps=100))
    held.held.add(str(big_csv))
    return BntuiApp(RunConfig(dataset=str(big_csv), arch="16:relu,C", batch_size=256))


def busy(app: BntuiApp) -> bool:
    """A run or a gradient check is still going."""
    return app.playing or app.checking or any(
        w.is_running for w in app.workers if w.group in ("train", "check"))


async def until_ready(app: BntuiApp, pilot: Pilot, held: HeldLoads | None = None) -> None:
    """Let a held load go, wait for the session and every pane, and end any run."""
    if held is not None:
        held.release()
    await settle(app, pilot)
    app.stop_training()
    assert await until(lambda: not busy(app), 60), "a run or a check never ended"
    await pilot.pause(0.1)


def assert_sane(app: BntuiApp) -> None:
    """The app runs, raised nothing, and every view agrees with its state."""
    assert app.is_running and app.return_code is None and app._exception is None
    session, snap = app.session, app.snapshot
    assert session is not None and snap is not None and snap.session is session
    assert not app.playing and app._waiting == [] and app.load_status is None
    assert snap.step == session.step_count
    assert app.trace is not None and 0 <= app.index < len(app.trace)
    assert app.query_one(StepperPane).snapshot is snap
    assert app.query_one(TabbedContent).active == app.active_tab
    assert "Play" in str(app.query_one("#play", Button).label)
    assert "training…" not in text(app.query_one("#status"))
    assert f"step {session.step_count:,} ·" in text(app.query_one("#status"))
    assert all(app.query(spec.make) for spec in PANES)  # type: ignore[arg-type]


# keys at once -------------------------------------------------------------------------
@pytest.mark.parametrize("start", START)
async def test_space_r_t_straight_after_start(start: str, held: HeldLoads,
                                              big_csv: Path) -> None:
    """The issue's keys, before the app has drawn anything: play, reset, one step.  They
    act in order once the session is there — the reset stops the run and the one step
    is the session's only step."""
    app = start_app(start, held, big_csv)
    async with app.run_test(size=SIZE) as pilot:
        for key in ("space", "r", "t"):
            send_key(app, key)
        await until_ready(app, pilot, held)
        assert_sane(app)
        assert app.run_id == 2  # space started a run, r stopped it with the reset, t ran
        assert app.session.step_count == 1


@pytest.mark.parametrize("start", START)
async def test_every_key_straight_after_start(start: str, held: HeldLoads,
                                              big_csv: Path) -> None:
    """Every key of the main screen and every pane key, twice over, before the first
    pause: the app keeps running and ends in a state its views agree on."""
    app = start_app(start, held, big_csv)
    async with app.run_test(size=SIZE) as pilot:
        for key in (*SCREEN_KEYS, *PANE_KEYS, "escape", *reversed(SCREEN_KEYS), "escape"):
            send_key(app, key)
        await until_ready(app, pilot, held)
        await pilot.press("escape", "escape", "2")  # out of a text field and the tour
        await pilot.pause()
        assert_sane(app)
        assert app.active_tab == "training"
        pane = text(app.query_one("#train-status"))
        assert pane.startswith(f"step {app.session.step_count:,}")


async def test_keys_while_the_panes_mount() -> None:
    """Keys in every moment of the first second: before the session, while the panes
    behind the first screen mount one by one, and after."""
    app = BntuiApp(RunConfig(dataset="moons", arch="8:tanh,6:relu,C"))
    async with app.run_test(size=SIZE) as pilot:
        mounted: list[int] = []
        for _ in range(40):
            mounted.append(sum(bool(app.query(spec.make)) for spec in PANES))  # type: ignore[arg-type]
            for key in ("2", "t", "6", "n", "7", "b", "1"):
                send_key(app, key)
            await asyncio.sleep(0.02)
        assert len(set(mounted)) > 2, mounted  # keys came in while panes were mounting
        await until_ready(app, pilot)
        assert_sane(app)
        assert app.session.step_count >= 1  # (a `t` during a run is not queued behind it)


@pytest.mark.parametrize("key", ["question_mark", "ctrl+s", "ctrl+o", "ctrl+e"])
async def test_a_dialog_key_straight_after_start(key: str) -> None:
    app = BntuiApp(replace(preset("seed-digits"), steps=100))
    async with app.run_test(size=SIZE) as pilot:
        send_key(app, key)
        send_key(app, "n")
        await settle(app, pilot)
        assert await until(lambda: len(app.screen_stack) == 2)
        if key == "question_mark":
            assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert await until(lambda: len(app.screen_stack) == 1)
        await pilot.pause()
        assert_sane(app)


@pytest.mark.parametrize("keys", ["21", "81", "82", "23456781"])
async def test_pane_keys_at_once_end_on_the_last(keys: str) -> None:
    """Pane keys faster than the tabs answer: the app ends on the last one and stays
    there.  (Before: the tabs swung between the last two forever, and 8 then 1 ended on
    Labs — its list, focused late, pulled its tab back.)"""
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        for key in keys:
            send_key(app, key)
        want = next(p.id for p in PANES if p.key == keys[-1])
        assert await until(lambda: app.active_tab == want)
        seen = set()
        for _ in range(20):
            await pilot.pause(0.05)
            seen.add((app.active_tab, app.query_one(TabbedContent).active))
        assert seen == {(want, want)}


# closing --------------------------------------------------------------------------------
@pytest.mark.parametrize("run", range(3))
async def test_closing_while_the_state_changes(run: int) -> None:
    """Tabs switched, a run started and a check asked for just as the app closes: the
    views stop drawing (their widgets are being taken down), nothing raises."""
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        for key in ("2", "space", "g", "1", "6", "r")[: 3 + run]:
            send_key(app, key)
    assert app._exception is None and app.return_code in (None, 0)


async def test_a_pane_taken_down_as_the_app_quits_draws_nothing() -> None:
    """The issue's crash, as it happened: `q` (or a browser tab closed) while the panes
    still mount; Textual takes a pane's widgets down while the state still reaches it
    through its binding, and the pane's watcher queried a widget already gone
    (`NoMatches: No nodes match '#play' on TrainingPane()`; it was about 1 quit in 40 in
    the first second here, 25 of 40 sessions under `bntui serve` on a busy machine)."""
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        pane = app.query_one(TrainingPane)
        await pane.query_one("#play").remove()  # as the app's shutdown takes it down
        app.exit()
        app.playing = True  # the state still changing: pushed to the pane
        app.playing = False
    assert app._exception is None and app.return_code == 0


def bound_views() -> list[type[Widget]]:
    kinds: list[type[Widget]] = [spec.make for spec in PANES]  # type: ignore[misc]
    return [*kinds, LoadingPanel, TourPanel]


@pytest.mark.parametrize("kind", bound_views(), ids=lambda k: k.__name__)
def test_a_view_that_is_not_mounted_draws_nothing(kind: type[Widget]) -> None:
    """Each watcher of a view the app's state is bound to, called on a view that has not
    mounted (as a binding firing early would): it does nothing.  (Before: `NoMatches: No
    nodes match '#play' on TrainingPane()`.)"""
    assert issubclass(kind, LiveView)
    view = kind()
    ours = {n for c in kind.__mro__ if issubclass(c, LiveView) for n in vars(c)
            if n.startswith("watch_")}  # (not Textual's own watchers)
    watchers = [getattr(view, n) for n in sorted(ours)]
    assert watchers
    for watcher in watchers:
        assert isinstance(watcher, Callable)  # type: ignore[arg-type]
        n = len(inspect.signature(watcher).parameters)
        assert watcher(*[None] * n) is None
    if kind is TrainingPane:
        assert TrainingPane().watch_playing(True) is None  # the '#play'


# exit status ------------------------------------------------------------------------------
APP_CSS = str(Path(inspect.getfile(BntuiApp)).with_name(BntuiApp.CSS_PATH))  # type: ignore[arg-type]


class CrashesAtMount(BntuiApp):
    CSS_PATH = APP_CSS  # (a relative path would be read next to this file)

    def on_mount(self) -> None:
        raise RuntimeError("broken at mount")


class CrashesLater(BntuiApp):
    CSS_PATH = APP_CSS

    def on_mount(self) -> None:
        super().on_mount()
        self.set_timer(0.3, self.boom)

    def boom(self) -> None:
        raise RuntimeError("broken while running")


class Quits(BntuiApp):
    CSS_PATH = APP_CSS

    def on_mount(self) -> None:
        super().on_mount()
        self.set_timer(0.3, self.exit)


@pytest.mark.parametrize(("kind", "status"), [(CrashesAtMount, 1), (CrashesLater, 1),
                                              (Quits, 0)])
def test_the_exit_status_is_the_apps(kind: type[BntuiApp], status: int) -> None:
    app = kind()
    assert run_to_status(app, headless=True) == status
    error = app._exception
    assert (error is None) if status == 0 else (
        isinstance(error, RuntimeError) and str(error).startswith("broken"))


CRASHING_BNTUI = """
import runpy
from functools import partial
import bntui.cli.app_entry as entry
from bntui.ui.app import BntuiApp

def boom(self):
    raise RuntimeError("broken at mount")

BntuiApp.on_mount = boom
entry.run_to_status = partial(entry.run_to_status, headless=True)  # no terminal here
runpy.run_module("bntui", run_name="__main__")
"""


def test_python_m_bntui_exits_1_when_the_app_crashes() -> None:
    """The whole way, `python -m bntui` → `main` → `run_app`: a crash is exit status 1
    (before: 0, so `bntui serve`, a script or a test saw nothing wrong)."""
    result = subprocess.run([sys.executable, "-c", CRASHING_BNTUI], capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "broken at mount" in result.stdout + result.stderr
