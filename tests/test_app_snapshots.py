"""SVG snapshots of the app's screens (pytest-textual-snapshot), grouped by feature.

Each test arranges its state in `run_before` and shoots at 120 × 40.  Everything shown is
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

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select

from bntui.engine.gradcheck import attach_to_trace
from bntui.numbers import fmt
from bntui.ui import stepper, tensor_grid
from bntui.ui.app import BntuiApp
from bntui.ui.bn_pane import BNPane
from bntui.ui.check_pane import CheckPane
from bntui.ui.dataset_pane import DatasetPane
from bntui.ui.form import Note
from bntui.ui.model_pane import ModelPane
from bntui.ui.optimizer_pane import OptimizerPane
from bntui.ui.stepper import StepperPane
from bntui.ui.training_pane import TrainingPane

SIZE = (120, 40)


def _stable_fmt(x: float) -> str:
    return fmt(0.0 if abs(x) < 1e-12 else x)


@pytest.fixture(autouse=True)
def _no_noise_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stepper, "fmt_cell", _stable_fmt)
    monkeypatch.setattr(tensor_grid, "fmt_cell", _stable_fmt)


def _error_class(x: float | None) -> float | None:
    if x is None or x >= 1e-4:
        return None if x is None else float(f"{x:.0e}")
    return 1e-14 if x < 1e-12 else 1e-9 if x < 1e-7 else 1e-5
PANES = (StepperPane, TrainingPane, DatasetPane, ModelPane, OptimizerPane, CheckPane, BNPane)


async def settle(pilot: Pilot) -> BntuiApp:
    """Wait for the session and for every lazily mounted pane."""
    app = pilot.app
    assert isinstance(app, BntuiApp)
    for _ in range(200):
        if app.session is not None and all(app.query(kind) for kind in PANES):
            break
        await pilot.pause(0.02)
    await pilot.pause()
    return app


async def wait_for(condition: Callable[[], object], timeout: float = 20.0) -> None:
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


def needs_torch() -> None:
    """The check's snapshots show the autograd column, which needs torch."""
    pytest.importorskip("torch", reason="the autograd column of these snapshots needs torch")


async def checked(pilot: Pilot) -> BntuiApp:
    """Run the gradient check; show its duration as 0.0 s so the snapshot is stable."""
    app = await settle(pilot)
    await pilot.press("g")
    await wait_for(lambda: app.report is not None)
    await quiet(pilot)
    for c in app.report.checks:
        c.rel_error = _error_class(c.rel_error)
    attach_to_trace(app.trace, app.report)
    app.query_one(CheckPane).show(app.report, 0.0)
    app.show_step()
    await pilot.pause()
    return app


# stepper ---------------------------------------------------------------------------------
class TestStepper:
    def test_stepper_at_start(self, snap_compare) -> None:
        async def run_before(pilot: Pilot) -> None:
            await settle(pilot)

        assert snap_compare(BntuiApp(), terminal_size=SIZE, run_before=run_before)

    def test_stepper_at_znorm_of_layer_1(self, snap_compare) -> None:
        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            await pilot.press(*"n" * app.trace.index_of("Znorm", 1))
            step = app.trace.steps[app.index]
            assert (step.name, step.layer) == ("Znorm", 1)

        assert snap_compare(BntuiApp(), terminal_size=SIZE, run_before=run_before)

    def test_stepper_backward_step_after_gradient_check(self, snap_compare) -> None:
        needs_torch()
        async def run_before(pilot: Pilot) -> None:
            app = await checked(pilot)
            await pilot.press("end", "b", "b")
            step = app.trace.steps[app.index]
            assert (step.name, step.layer, step.phase) == ("dZ", 1, "backward")
            assert "numerical" in step.checks

        assert snap_compare(BntuiApp(), terminal_size=SIZE, run_before=run_before)


# training --------------------------------------------------------------------------------
class TestTraining:
    def test_training_after_30_steps(self, snap_compare) -> None:
        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            await pilot.press("2")
            app.query_one("#n-steps", Input).value = "30"
            assert await pilot.click("#run-n")
            await wait_for(lambda: app.session.step_count == 30 and not app.playing)
            await quiet(pilot, blur=True)

        assert snap_compare(BntuiApp(), terminal_size=SIZE, run_before=run_before)


# settings panes --------------------------------------------------------------------------
class TestSettings:
    def test_dataset_pane_after_applying_moons(self, snap_compare) -> None:
        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            await pilot.press("3")
            app.query_one("#ds-name", Select).value = "moons"
            app.query_one("#ds-samples", Input).value = "120"
            app.query_one("#ds-val", Input).value = "0.25"
            app.query_one(DatasetPane).query_one(Note).clear()
            assert await pilot.click("#ds-apply")
            await wait_for(lambda: str(app.query_one(DatasetPane).query_one(Note).render()))
            assert app.session.dataset.name == "moons"
            await quiet(pilot, blur=True)

        assert snap_compare(BntuiApp(), terminal_size=SIZE, run_before=run_before)

    def test_model_pane_with_an_inline_error(self, snap_compare) -> None:
        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            await pilot.press("4")
            app.query_one("#arch", Input).value = "8:tanhh,C"
            assert await pilot.click("#apply-arch")
            await wait_for(lambda: "tanhh" in str(app.query_one(ModelPane).query_one(Note)
                                                  .render()))
            await quiet(pilot, blur=True)

        assert snap_compare(BntuiApp(), terminal_size=SIZE, run_before=run_before)

    def test_optimizer_pane(self, snap_compare) -> None:
        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            await pilot.press("t")  # one step, so the optimizer has state to show
            await wait_for(lambda: app.session.step_count == 1 and not app.playing)
            await quiet(pilot)
            await pilot.press("5")
            assert "t = 1" in str(app.query_one(OptimizerPane).query_one("#opt-state")
                                  .render())

        assert snap_compare(BntuiApp(), terminal_size=SIZE, run_before=run_before)


# gradient check and BatchNorm train/eval -------------------------------------------------
class TestChecks:
    def test_gradient_check_pane(self, snap_compare) -> None:
        needs_torch()
        async def run_before(pilot: Pilot) -> None:
            await checked(pilot)
            await pilot.press("6")

        assert snap_compare(BntuiApp(), terminal_size=SIZE, run_before=run_before)

    def test_bn_pane(self, snap_compare) -> None:
        async def run_before(pilot: Pilot) -> None:
            app = await settle(pilot)
            await pilot.press("7")
            assert "batch mean" in str(app.query_one("#bn-stats").render())

        assert snap_compare(BntuiApp(), terminal_size=SIZE, run_before=run_before)


# help ------------------------------------------------------------------------------------
class TestHelp:
    def test_help_screen(self, snap_compare) -> None:
        async def run_before(pilot: Pilot) -> None:
            await settle(pilot)
            await pilot.press("question_mark")

        assert snap_compare(BntuiApp(), terminal_size=SIZE, run_before=run_before)
