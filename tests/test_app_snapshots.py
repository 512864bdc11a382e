"""SVG snapshots of what a learner sees (pytest-textual-snapshot), grouped by feature, every
pane at 80 × 24 and at 120 × 40.

Each test arranges its state in `run_before`, and asserts there what the picture must
show at any size: no tab cut, `?` and `q` in the footer.  Everything shown is
deterministic: seeds default to 0, the Header clock is off, Inputs are filled without
focusing them (no blinking cursor), notifications are cleared, and the gradient check's
wall-clock time is re-rendered as 0.0 s (the one time-dependent text on screen).

Numbers that are rounding noise are made canonical, so that a CPU or BLAS that rounds
differently does not change a snapshot: values below 1e-12 in size show as 0 (the mean
of Znorm, say), and the gradient check's relative errors are put into classes (< 1e-12,
< 1e-7, < 1e-4) before they are drawn.  The layout, colours and texts stay covered.

Regenerate the baselines after an intended change of the UI with
`pytest tests/test_app_snapshots.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from app_helpers import chrome_problems, idle_training
from textual.pilot import Pilot
from textual.widgets import Input, Select

from bntui.numbers import fmt
from bntui.ui import stepper, tensor_grid, tour
from bntui.ui.app import BntuiApp
from bntui.ui.dataset_pane import DatasetPane
from bntui.ui.form import Note
from bntui.ui.model_pane import ModelPane
from bntui.ui.optimizer_pane import OptimizerPane
from bntui.ui.registry import PANES

SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])


def _stable_fmt(x: float) -> str:
    return fmt(0.0 if abs(x) < 1e-12 else x)


@pytest.fixture(autouse=True)
def _no_noise_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stepper, "fmt_cell", _stable_fmt)
    monkeypatch.setattr(tensor_grid, "fmt_cell", _stable_fmt)
    monkeypatch.setattr(tour, "fmt", _stable_fmt)


def _error_class(x: float | None) -> float | None:
    if x is None or x >= 1e-4:
        return None if x is None else float(f"{x:.0e}")
    return 1e-14 if x < 1e-12 else 1e-9 if x < 1e-7 else 1e-5


async def settle(pilot: Pilot) -> BntuiApp:
    """Wait for the session and for every lazily mounted pane."""
    app = pilot.app
    assert isinstance(app, BntuiApp)
    for _ in range(300):
        if app.session is not None and all(app.query(p.make) for p in PANES):  # type: ignore[arg-type]
            break
        await pilot.pause(0.02)
    await pilot.pause()
    return app


async def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out arranging the snapshot"
        await asyncio.sleep(0.02)


async def quiet(pilot: Pilot, blur: bool = False) -> None:
    """Let the workers finish, then drop what depends on the wall clock: the toasts, and
    (with `blur`) a clicked button's 0.2 s "active" flash and its focus ring."""
    app = pilot.app
    await app.workers.wait_for_complete()
    if blur:
        await pilot.pause(0.3)
        app.screen.set_focus(None)
    await pilot.pause()
    app.clear_notifications()
    await pilot.pause()


def seen(pilot: Pilot) -> None:
    """What every picture must show at any size."""
    problems = chrome_problems(pilot.app)  # type: ignore[arg-type]
    assert not problems, "\n".join(problems)


def needs_torch() -> None:
    """The check's snapshots show the autograd column, which needs torch."""
    pytest.importorskip("torch", reason="the autograd column of these snapshots needs torch")


async def checked(pilot: Pilot) -> BntuiApp:
    """Run the gradient check; show its duration as 0.0 s so the snapshot is stable."""
    app = await settle(pilot)
    await pilot.press("g")
    await wait_for(lambda: app.check is not None)
    await quiet(pilot)
    for c in app.check.report.checks:
        c.rel_error = _error_class(c.rel_error)
    app.check = replace(app.check, seconds=0.0)  # the same record, drawn again
    await pilot.pause()
    return app


def bare() -> BntuiApp:
    """The app as `bntui --preset seed-softmax`: no start panel."""
    return BntuiApp(start_panel=False)


# first screen ----------------------------------------------------------------------------
class TestStart:
    @SIZES
    def test_first_screen_with_the_start_panel(self, snap_compare, size) -> None:
        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            assert app.start_panel
            seen(pilot)

        assert snap_compare(BntuiApp(), terminal_size=size, run_before=run_before)

    @SIZES
    def test_tour_at_znorm(self, snap_compare, size) -> None:
        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            await pilot.press("w", "enter", "enter", "enter")
            assert app.trace.steps[app.index].name == "Znorm"
            seen(pilot)

        assert snap_compare(bare(), terminal_size=size, run_before=run_before)

    @SIZES
    def test_help_screen(self, snap_compare, size) -> None:
        async def run_before(pilot: Pilot) -> None:
            await settle(pilot)
            await pilot.press("question_mark")

        assert snap_compare(bare(), terminal_size=size, run_before=run_before)


# stepper ---------------------------------------------------------------------------------
class TestStepper:
    @SIZES
    def test_stepper_at_znorm_of_layer_1(self, snap_compare, size) -> None:
        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            await pilot.press(*"n" * app.trace.index_of("Znorm", 1))
            step = app.trace.steps[app.index]
            assert (step.name, step.layer) == ("Znorm", 1)
            seen(pilot)

        assert snap_compare(bare(), terminal_size=size, run_before=run_before)

    @SIZES
    def test_stepper_backward_step_after_gradient_check(self, snap_compare, size) -> None:
        needs_torch()

        async def run_before(pilot: Pilot) -> None:
            app = await checked(pilot)
            await pilot.press("end", "b", "b")
            step = app.trace.steps[app.index]
            assert (step.name, step.layer, step.phase) == ("dZ", 1, "backward")
            assert "numerical" in step.checks
            seen(pilot)

        assert snap_compare(bare(), terminal_size=size, run_before=run_before)


# training --------------------------------------------------------------------------------
class TestTraining:
    @SIZES
    def test_training_after_30_steps(self, snap_compare, size) -> None:
        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            await pilot.press("2")
            app.query_one("#n-steps", Input).value = "30"
            app.query_one("#run-n").press()
            await idle_training(app, pilot)
            assert app.session.step_count == 30
            await quiet(pilot, blur=True)
            seen(pilot)

        assert snap_compare(bare(), terminal_size=size, run_before=run_before)


# settings panes --------------------------------------------------------------------------
class TestSettings:
    @SIZES
    def test_dataset_pane_after_applying_moons(self, snap_compare, size) -> None:
        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            await pilot.press("3")
            app.query_one("#ds-name", Select).value = "moons"
            app.query_one("#ds-samples", Input).value = "120"
            app.query_one("#ds-val", Input).value = "0.25"
            app.query_one(DatasetPane).query_one(Note).clear()
            app.query_one("#ds-apply").press()
            await wait_for(lambda: str(app.query_one(DatasetPane).query_one(Note).render()))
            assert app.session.dataset.name == "moons"
            await quiet(pilot, blur=True)
            seen(pilot)

        assert snap_compare(bare(), terminal_size=size, run_before=run_before)

    @SIZES
    def test_model_pane_with_an_inline_error(self, snap_compare, size) -> None:
        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            await pilot.press("4")
            app.query_one("#arch", Input).value = "8:tanhh,C"
            app.query_one("#apply-arch").press()
            await wait_for(lambda: "tanhh" in str(app.query_one(ModelPane).query_one(Note)
                                                  .render()))
            await quiet(pilot, blur=True)
            seen(pilot)

        assert snap_compare(bare(), terminal_size=size, run_before=run_before)

    @SIZES
    def test_optimizer_pane(self, snap_compare, size) -> None:
        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            await pilot.press("t")  # one step, so the optimizer has state to show
            await idle_training(app, pilot)
            await quiet(pilot)
            await pilot.press("5")
            assert "t = 1 updates" in str(app.query_one(OptimizerPane).query_one("#opt-state")
                                          .render())
            seen(pilot)

        assert snap_compare(bare(), terminal_size=size, run_before=run_before)


# gradient check, BatchNorm train/eval, labs ------------------------------------------------
class TestChecks:
    @SIZES
    def test_gradient_check_pane(self, snap_compare, size) -> None:
        needs_torch()

        async def run_before(pilot: Pilot) -> None:
            await checked(pilot)
            await pilot.press("6")
            seen(pilot)

        assert snap_compare(bare(), terminal_size=size, run_before=run_before)

    @SIZES
    def test_bn_pane(self, snap_compare, size) -> None:
        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            await pilot.press("7")
            assert "batch mean" in str(app.query_one("#bn-stats").render())
            seen(pilot)

        assert snap_compare(bare(), terminal_size=size, run_before=run_before)

    @SIZES
    def test_labs_pane_on_the_exercise_lab(self, snap_compare, size) -> None:
        from bntui.ui.labs.exercise import ExerciseLab
        from bntui.ui.labs_pane import LabsPane

        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            await pilot.press("8")
            pane = app.query_one(LabsPane)
            pane.show_lab("exercise")
            view = app.query_one(ExerciseLab)
            await wait_for(lambda: pane.current is view and view.ready)
            await quiet(pilot, blur=True)
            seen(pilot)

        assert snap_compare(bare(), terminal_size=size, run_before=run_before)

    @SIZES
    def test_export_dialog(self, snap_compare, size) -> None:
        async def run_before(pilot: Pilot) -> None:
            await settle(pilot)
            await pilot.press("ctrl+e")
            pilot.app.screen.set_focus(None)
            await pilot.pause()

        assert snap_compare(bare(), terminal_size=size, run_before=run_before)
