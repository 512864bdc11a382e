"""The Textual app driven through Textual's Pilot: keys, clicks and form input, with every
assertion made on the engine-backed state (`app.session`, `app.trace`, `app.report`).

A few tests send key events straight to the app and poll (`send_key`, `until`) instead of
`pilot.press`: while a worker thread keeps the CPU busy, `pilot.press` waits up to two
seconds per key for the process to go idle, and those tests want to see the app answer
while it is working.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from textual import events
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import DataTable, Input, Select, TabbedContent

from bntui.engine import RunConfig, Session, preset
from bntui.ui.app import BntuiApp
from bntui.ui.bn_pane import BNPane
from bntui.ui.check_pane import CheckPane
from bntui.ui.dataset_pane import CSV, DatasetPane
from bntui.ui.form import Note
from bntui.ui.help_screen import HelpScreen
from bntui.ui.model_pane import BlockRow, ModelPane
from bntui.ui.optimizer_pane import OptimizerPane
from bntui.ui.stepper import StepperPane
from bntui.ui.tensor_grid import TensorGrid
from bntui.ui.training_pane import TrainingPane

SIZE = (120, 40)
PANES = (StepperPane, TrainingPane, DatasetPane, ModelPane, OptimizerPane, CheckPane, BNPane)
MOONS = RunConfig(dataset="moons", arch="8:tanh,6:relu,C")


# helpers ---------------------------------------------------------------------------------
async def settle(app: BntuiApp, pilot: Pilot) -> None:
    """Wait until the session is installed and every (lazily mounted) pane is there."""
    for _ in range(200):
        if app.session is not None and all(app.query(kind) for kind in PANES):
            break
        await pilot.pause(0.02)
    assert app.session is not None, "the app never installed a session"
    await pilot.pause()


async def finish(app: BntuiApp, pilot: Pilot) -> None:
    """Wait for the training / checking workers, then for the views they update."""
    await app.workers.wait_for_complete()
    await pilot.pause()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `condition` on the app's event loop; False if it never held."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.01)
    return True


def send_key(app: BntuiApp, key: str) -> None:
    """Queue one key press as the terminal driver would, without waiting for idle."""
    char = {"space": " "}.get(key, key if len(key) == 1 else None)
    event = events.Key(key, char)
    event.set_sender(app)
    app.post_message(event)


def text(widget: Widget) -> str:
    return str(widget.render())


def note(app: BntuiApp, pane: type[Widget]) -> str:
    return text(app.query_one(pane).query_one(Note))


def active_tab(app: BntuiApp) -> str:
    return app.query_one(TabbedContent).active


def current(app: BntuiApp):  # -> TraceStep
    assert app.trace is not None
    return app.trace.steps[app.index]


def finite_state(session: Session) -> bool:
    return all(np.isfinite(v).all() for v in session.network.state().values())


# stepper ---------------------------------------------------------------------------------
async def test_stepper_keys_move_through_the_trace() -> None:
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        n = len(app.trace)
        assert app.index == 0 and current(app).name == "X"
        await pilot.press("n", "n", "n")
        assert app.index == 3
        step = current(app)
        where = text(app.query_one("#where"))
        assert f"step 4/{n}" in where and step.name in where
        assert text(app.query_one("#formula")) == step.formula
        await pilot.press("b")
        assert app.index == 2
        await pilot.press("b", "b", "b")  # clamps at the first step
        assert app.index == 0
        await pilot.press("end")
        assert app.index == n - 1 and (current(app).name, current(app).layer) == ("dX", 1)
        await pilot.press("n")  # clamps at the last step
        assert app.index == n - 1
        await pilot.press("home")
        assert app.index == 0
        await pilot.press("]")  # layer 1 forward -> the first step of layer 2 forward
        assert (current(app).layer, current(app).phase, current(app).name) == (2, "forward", "Z")
        await pilot.press("]")
        assert (current(app).layer, current(app).name) == (3, "Z")
        await pilot.press("]")  # the loss block
        assert current(app).layer is None and current(app).name == "P"
        await pilot.press("[")  # back: the first step of layer 3's forward pass
        assert (current(app).layer, current(app).name) == (3, "Z")
        await pilot.press("[", "[")
        assert app.index == 0
        await pilot.press("[")  # nothing before the first layer
        assert app.index == 0


async def test_walk_to_znorm_of_layer_2_with_the_grid_following() -> None:
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        grid = app.query_one("#grid", TensorGrid)
        target = app.trace.index_of("Znorm", 2)
        for _ in range(target):
            value = current(app).value  # 0-d shows as 1×1, 1-d as one row
            assert grid.shape == {0: (1, 1), 1: (1, *value.shape)}.get(value.ndim, value.shape)
            await pilot.press("n")
        step = current(app)
        assert (step.name, step.layer, step.phase) == ("Znorm", 2, "forward")
        assert "Znorm = Z0 / std" in text(app.query_one("#formula"))
        assert "layer 2" in text(app.query_one("#where"))
        assert step.value.ndim == 2
        assert grid.shape == step.value.shape == (app.session.batch_size, 6)
        await pilot.press("b")
        assert (current(app).name, current(app).layer) == ("std", 2)
        assert grid.shape == (1, 6)


# training --------------------------------------------------------------------------------
async def test_t_trains_one_step_and_r_resets_to_the_same_weights() -> None:
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        session = app.session
        fresh = Session(app.config).network.state()
        assert session.step_count == 0 and session.history.loss == []
        await pilot.press("t")
        await finish(app, pilot)
        assert app.session is session and not app.playing
        assert session.step_count == 1 and len(session.history.loss) == 1
        assert "step 1 " in text(app.query_one("#status"))
        await pilot.press("t")
        await finish(app, pilot)
        assert session.step_count == 2 and len(session.history.loss) == 2
        trained = session.network.state()
        assert any(not np.array_equal(trained[k], fresh[k]) for k in fresh)

        await pilot.press("r")
        await finish(app, pilot)
        assert app.session is not session
        assert app.session.step_count == 0 and app.session.history.loss == []
        state = app.session.network.state()
        assert state.keys() == fresh.keys()
        for k in fresh:
            np.testing.assert_array_equal(state[k], fresh[k], err_msg=k)
        assert "reset" in text(app.query_one("#errors"))


async def test_space_plays_and_pauses_and_the_app_keeps_answering() -> None:
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        session = app.session
        send_key(app, "space")
        assert await until(lambda: app.playing)
        assert await until(lambda: len(session.history.loss) > 50)
        seen = len(session.history.loss)
        # the stepper still moves while the worker trains
        before = app.index
        send_key(app, "n")
        assert await until(lambda: app.index == before + 1, timeout=2)
        assert await until(lambda: len(session.history.loss) > seen)
        assert app.playing
        send_key(app, "space")
        assert await until(lambda: not app.playing)
        await finish(app, pilot)
        stopped_at = session.step_count
        assert stopped_at == len(session.history.loss) > seen
        await pilot.pause(0.2)
        assert session.step_count == stopped_at  # paused means paused
        assert finite_state(session)


async def test_run_n_steps_button_and_a_bad_count() -> None:
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        app.query_one("#n-steps", Input).value = "25"
        assert await pilot.click("#run-n")
        await finish(app, pilot)
        assert app.session.step_count == 25
        assert "step 25" in text(app.query_one("#train-status"))
        app.query_one("#n-steps", Input).value = "zero"
        assert await pilot.click("#run-n")
        await finish(app, pilot)
        assert app.session.step_count == 25
        assert "steps must be a whole number" in note(app, TrainingPane)


async def test_diverging_learning_rate_stops_training_by_itself() -> None:
    cfg = RunConfig(dataset="moons", arch="16:relu:nobn,C:nobn", optimizer="sgd", lr=1e6)
    app = BntuiApp(cfg)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        session = app.session
        send_key(app, "space")
        assert await until(lambda: app.playing, timeout=2)
        assert await until(lambda: not app.playing, timeout=20), "training never stopped"
        await finish(app, pilot)
        assert app.is_running and app.session is session
        assert session.stopped is not None and "learning rate" in session.stopped
        assert session.step_count == len(session.history.loss)
        assert all(np.isfinite(session.history.loss))
        assert finite_state(session)
        # the app still answers, and this network has no BatchNorm to compare
        await pilot.press("n")
        assert app.index == 1
        await pilot.press("7")
        assert "no BatchNorm layer" in text(app.query_one("#bn-stats"))


# gradient check --------------------------------------------------------------------------
async def test_g_checks_gradients_and_annotates_the_stepper() -> None:
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.report is None
        await pilot.press("g")
        await finish(app, pilot)
        assert await until(lambda: app.report is not None)
        report = app.report
        assert report.max_rel_error()["analytic_vs_numeric"] < 1e-6
        table = app.query_one("#check-table", DataTable)
        assert table.row_count == len({(c.layer, c.tensor) for c in report.checks}) > 0
        assert "max relative error" in text(app.query_one("#check-summary"))
        dz = app.trace.find("dZ", 1, "backward")
        assert "numerical" in dz.checks and dz.checks["numerical"] < 1e-6
        assert all(not s.checks for s in app.trace.steps if s.phase == "forward")
        await pilot.press("end")  # the stepper shows the errors on a backward step
        assert "relative error" in text(app.query_one("#errors"))


async def test_check_button_then_training_drops_the_stale_errors() -> None:
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("6")
        assert active_tab(app) == "check"
        assert await pilot.click("#run-check")
        await finish(app, pilot)
        assert await until(lambda: app.report is not None)
        assert app.query_one("#check-table", DataTable).row_count > 0
        assert app.trace.find("dZ", 1, "backward").checks
        await pilot.press("t")
        await finish(app, pilot)
        assert app.session.step_count == 1
        # the trace is of the new weights: the old errors do not belong to it
        assert not app.trace.find("dZ", 1, "backward").checks


# modes, help, quit -----------------------------------------------------------------------
async def test_e_toggles_the_eval_mode_trace() -> None:
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.trace.training is True
        await pilot.press("e")
        assert app.trace.training is False and app.trace_training is False
        assert "eval mode" in text(app.query_one("#where"))
        await pilot.press("e")
        assert app.trace.training is True
        assert "training mode" in text(app.query_one("#where"))


async def test_help_opens_escape_closes_and_q_quits() -> None:
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("n")
        assert app.index == 1
        await pilot.press("q")
        assert await until(lambda: not app.is_running, timeout=5)
    assert app.return_code in (0, None)


# dataset pane ----------------------------------------------------------------------------
async def test_dataset_pane_applies_moons_with_120_samples() -> None:
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        assert active_tab(app) == "dataset"
        old = app.session
        app.query_one("#ds-name", Select).value = "moons"
        app.query_one("#ds-samples", Input).value = "120"
        assert await pilot.click("#ds-apply")
        await pilot.pause()
        ds = app.session.dataset
        assert app.session is not old
        assert ds.name == "moons" and ds.n_train + ds.n_val == 120
        assert app.session.network.blocks[-1].dense.fan_out == 2  # output follows the classes
        assert note(app, DatasetPane).startswith("✓")


async def test_dataset_pane_errors_are_inline_and_keep_the_session(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    broken = tmp_path / "broken.csv"
    broken.write_text("x1,x2,label\n1,2,0\n3,oops,1\n4,5,0\n")
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        old = app.session
        app.query_one("#ds-name", Select).value = "moons"
        app.query_one("#ds-samples", Input).value = "abc"
        assert await pilot.click("#ds-apply")
        assert app.session is old
        assert note(app, DatasetPane).startswith("✗ samples must be a whole number")
        app.query_one("#ds-samples", Input).value = ""
        app.query_one("#ds-name", Select).value = CSV
        app.query_one("#ds-csv", Input).value = ""
        assert await pilot.click("#ds-apply")
        assert app.session is old and "type the path" in note(app, DatasetPane)
        for path, words in ((empty, "is empty"), (broken, "'oops' is not a number"),
                            (tmp_path / "missing.csv", "not found")):
            app.query_one("#ds-csv", Input).value = str(path)
            assert await pilot.click("#ds-apply")
            assert app.session is old, path.name
            assert words in note(app, DatasetPane) and note(app, DatasetPane).startswith("✗")


async def test_dataset_pane_applies_a_good_csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = ["a,b,c,label"] + [
        f"{x:.4f},{y:.4f},{z:.4f},{'yes' if x + y > 0 else 'no'}"
        for x, y, z in rng.normal(size=(50, 3))
    ]
    good = tmp_path / "good.csv"
    good.write_text("\n".join(lines) + "\n")
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        app.query_one("#ds-name", Select).value = CSV
        app.query_one("#ds-csv", Input).value = str(good)
        assert await pilot.click("#ds-apply")
        await pilot.pause()
        ds = app.session.dataset
        assert ds.name == str(good), note(app, DatasetPane)
        assert (ds.n_features, ds.n_classes, ds.n_train + ds.n_val) == (3, 2, 50)
        assert app.trace.steps[0].value.shape[1] == 3
        assert app.query_one("#ds-csv", Input).value == str(good)


async def test_dataset_switch_does_not_carry_the_old_datasets_options() -> None:
    """App bug (dataset_pane.py `changes()` with app.py `change_config`): the form keeps
    the previous dataset's samples / noise / classes / validation values and sends them
    with the new name, overriding `RunConfig.with_dataset`, which drops them on purpose.

    1. seed-toy (val_fraction 0) → moons: the stale "0" silently removes moons' default
       0.2 validation split.
    2. moons with 120 samples → iris: fails with "option samples only applies to
       generated datasets", although the learner only picked another dataset.
    """
    app = BntuiApp()  # seed-softmax: seed-toy, val_fraction 0
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        app.query_one("#ds-name", Select).value = "moons"
        app.query_one("#ds-samples", Input).value = "120"
        assert await pilot.click("#ds-apply")
        ds = app.session.dataset
        assert ds.name == "moons" and ds.n_train + ds.n_val == 120
        moons_val = ds.n_val
        app.query_one("#ds-name", Select).value = "iris"
        assert await pilot.click("#ds-apply")
        iris = app.session.dataset.name
        problems = []
        if moons_val == 0:
            problems.append("seed-toy → moons kept val_fraction 0: no validation split")
        if iris != "iris":
            problems.append(f"moons → iris was refused: {note(app, DatasetPane)}")
        assert not problems, "; ".join(problems)


# model pane ------------------------------------------------------------------------------
async def test_model_pane_rejects_a_bad_architecture_then_applies_a_good_one() -> None:
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        old, arch = app.session, app.session.config.arch
        app.query_one("#arch", Input).value = "8:tanhh,C"
        assert await pilot.click("#apply-arch")
        assert app.session is old and app.session.config.arch == arch
        assert "tanhh" in note(app, ModelPane) and note(app, ModelPane).startswith("✗")

        app.query_one("#arch", Input).value = "8:tanh,C"
        assert await pilot.click("#apply-arch")
        await pilot.pause()
        net = app.session.network
        assert app.session is not old and app.session.config.arch == "8:tanh,C"
        assert "tanh" in net.describe() and len(net.blocks) == 2
        assert len(app.query(BlockRow)) == 2
        assert note(app, ModelPane).startswith("✓")
        assert "tanh" in text(app.query_one("#map"))


async def test_model_pane_block_editor_adds_a_block() -> None:
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        n_blocks = len(app.session.network.blocks)
        assert len(app.query(BlockRow)) == n_blocks
        assert await pilot.click("#add-block")
        await pilot.pause()
        assert len(app.query(BlockRow)) == n_blocks + 1
        assert await pilot.click("#apply-blocks")
        await pilot.pause()
        assert len(app.session.network.blocks) == n_blocks + 1
        assert app.query_one("#arch", Input).value == app.session.config.arch


async def test_model_pane_loads_the_seed_digits_preset() -> None:
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        app.query_one("#preset", Select).value = "seed-digits"
        assert await pilot.click("#load-preset")
        await pilot.pause()
        s = app.session
        assert s.dataset.name == "digits" and s.dataset.n_train == 1500
        assert s.network.n_params() == 2894
        assert s.optimizer.name == "adam"
        assert note(app, ModelPane).startswith("✓ preset seed-digits")


# optimizer pane --------------------------------------------------------------------------
async def test_optimizer_pane_rejects_bad_values_then_switches_to_sgd() -> None:
    app = BntuiApp(MOONS)  # adam, BatchNorm everywhere
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        old = app.session
        assert old.optimizer.name == "adam"
        lr_field = app.query_one("#lr", Input)
        good_lr = lr_field.value
        for lr, words in (("-1", "must be positive"), ("nan", "must be finite")):
            lr_field.value = lr
            assert await pilot.click("#opt-apply")
            assert app.session is old, lr
            assert words in note(app, OptimizerPane)
            assert note(app, OptimizerPane).startswith("✗")
        lr_field.value = good_lr
        app.query_one("#batch", Input).value = "1"
        assert await pilot.click("#opt-apply")
        assert app.session is old
        assert "expected more than 1 value per feature" in note(app, OptimizerPane)

        app.query_one("#batch", Input).value = ""
        app.query_one("#opt", Select).value = "sgd"
        lr_field.value = "0.05"
        assert await pilot.click("#opt-apply")
        await pilot.pause()
        assert app.session is not old
        assert app.session.optimizer.name == "sgd"
        assert app.session.optimizer.lr == pytest.approx(0.05)
        assert note(app, OptimizerPane).startswith("✓")


# BN pane ---------------------------------------------------------------------------------
async def test_bn_pane_compares_batch_and_running_statistics() -> None:
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("7")
        assert active_tab(app) == "bn"
        stats = text(app.query_one("#bn-stats"))
        assert "batch mean" in stats and "running mean" in stats
        X, _ = app.session.inspection_batch()
        width = app.session.network.blocks[0].dense.fan_out
        assert app.query_one("#bn-grid", TensorGrid).shape == (X.shape[0], width)


# terminal sizes --------------------------------------------------------------------------
async def test_tiny_terminal_and_resizing() -> None:
    app = BntuiApp()
    async with app.run_test(size=(40, 12)) as pilot:
        await settle(app, pilot)
        await pilot.press("n", "n", "]", "end", "home", "2", "7", "1", "t")
        await finish(app, pilot)
        assert app.session.step_count == 1 and app.index == 0
        await pilot.resize_terminal(80, 24)
        assert app.size == (80, 24)
        await pilot.press("n", "3")
        await pilot.resize_terminal(160, 50)
        assert app.size == (160, 50)
        await pilot.press("1", "end")
        assert app.is_running and app.index == len(app.trace) - 1


# responsiveness figure (recorded, not asserted) ------------------------------------------
async def test_record_redraw_time_on_seed_digits(record_property) -> None:
    app = BntuiApp(replace(preset("seed-digits"), steps=100))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        times = []
        for _ in range(20):
            await pilot.press("n")
            times.append(app.last_redraw_ms)
        assert app.index == 20
    record_property("redraw_ms_median", float(np.median(times)))
    record_property("redraw_ms_max", float(np.max(times)))
    print(f"seed-digits step redraw: median {np.median(times):.1f} ms, max {max(times):.1f} ms")


# app bugs exposed ------------------------------------------------------------------------
async def test_arrow_keys_step_through_the_trace() -> None:
    """App bug: the help and footer say → / ← step, but on the first screen the focus is
    on the tab bar (ContentTabs), whose own left/right bindings win: → switches to the
    Training pane and the stepper does not move."""
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("right")
        assert (active_tab(app), app.index) == ("stepper", 1)
        await pilot.press("left")
        assert (active_tab(app), app.index) == ("stepper", 0)


async def test_number_keys_switch_panes_after_clicking_a_button() -> None:
    """App bug: after a click on a button of a pane, 1…7 no longer switch panes.

    `action_show_tab` hides the pane holding the focused button; Textual moves the focus
    to a sibling of that button, still inside the old pane, and TabbedContent activates
    the pane that holds the focus again: the learner stays where they were.
    """
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        assert await pilot.click("#step")
        await finish(app, pilot)
        assert app.session.step_count == 1
        await pilot.press("1")
        assert active_tab(app) == "stepper"


@pytest.mark.parametrize("key", ["7", "e", "r"])
async def test_keys_answer_while_a_gradient_check_runs(monkeypatch, key: str) -> None:
    """App bug: the UI freezes for the whole gradient check after some keys.

    The check worker holds `app.lock` for the entire `session.gradcheck` (~20 s on
    seed-digits); `refresh_bn_pane` (key 7), `_retrace` (key e) and `install` (key r, and
    any applied form) take the same lock on the event loop and block it.  Here the check
    is held open by a gate that a timer opens after 1.5 s; the key must be answered first.
    """
    gate = threading.Event()
    real = Session.gradcheck

    def slow_gradcheck(self: Session, **kwargs: object):
        gate.wait(timeout=10)
        return real(self, **kwargs)

    monkeypatch.setattr(Session, "gradcheck", slow_gradcheck)
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        release = threading.Timer(1.5, gate.set)
        release.start()
        try:
            send_key(app, "g")
            assert await until(app.lock.locked, timeout=1)
            send_key(app, key)
            await asyncio.sleep(0.2)  # the loop handles the key (and freezes, if it does)
            before = app.index
            send_key(app, "n")
            moved = await until(lambda: app.index == before + 1, timeout=5)
            answered_during_check = not gate.is_set()
        finally:
            gate.set()
            release.cancel()
        await finish(app, pilot)
    assert moved
    assert answered_during_check, f"the app froze after {key!r} until the check finished"
