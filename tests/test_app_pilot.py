"""The Textual app driven through Textual's Pilot: keys, clicks and form input, with every
assertion made on the engine-backed state (`app.session`, `app.trace`, `app.report`).

A few tests send key events straight to the app and poll (`send_key`, `until`) instead of
`pilot.press`: while a worker thread keeps the CPU busy, `pilot.press` waits up to two
seconds per key for the process to go idle, and those tests want to see the app answer
while it is working.  Form buttons are clicked through `submit`, which waits for the
outcome in the pane's Note rather than for an idle screen.

The tests at the end ("app bugs exposed") each pin one bug found while writing these;
their docstrings say where it is.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest
from app_helpers import send_key, text, until
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, Select, TabbedContent

from bntui.engine import RunConfig, Session, TraceStep
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
from bntui.engine import gradcheck as gradcheck_module  # noqa: E402


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
    """Wait for the training / checking workers, then for the views they update.

    Pausing cancels the training worker: waiting on a worker cancelled mid-run raises
    WorkerCancelled, which here only means it has stopped."""
    from textual.worker import WorkerCancelled

    for _ in range(100):
        try:
            await app.workers.wait_for_complete()
            break
        except WorkerCancelled:
            continue
    await pilot.pause()


def note(app: BntuiApp, pane: type[Widget]) -> str:
    return text(app.query_one(pane).query_one(Note))


async def submit(app: BntuiApp, pilot: Pilot, button: str, pane: type[Widget]) -> str:
    """Click a form's button; wait for the outcome the pane or the app writes in its Note.

    (`pilot.click` returns once the screen is idle, which can come before the chain
    click → Button.Pressed → ConfigChange → app has run; the Note is the sure sign.)
    """
    app.query_one(pane).query_one(Note).clear()
    await pilot.pause(0.1)  # let the layout settle, so the click lands on the button
    assert await pilot.click(button), f"{button} is not on screen"
    if not await until(lambda: note(app, pane) != "", timeout=5):
        # a loaded machine can swallow a click on a button that moved: press it directly
        app.query_one(button, Button).press()
    assert await until(lambda: note(app, pane) != ""), f"no outcome after {button}"
    await pilot.pause()
    return note(app, pane)


def active_tab(app: BntuiApp) -> str:
    return app.query_one(TabbedContent).active


def current(app: BntuiApp) -> TraceStep:
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
async def test_t_trains_one_step_r_resets_and_run_n_trains_n() -> None:
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

        await pilot.press("2")  # the Training pane's Run button
        app.query_one("#n-steps", Input).value = "25"
        assert await pilot.click("#run-n")
        assert await until(lambda: app.session.step_count == 25 and not app.playing)
        await finish(app, pilot)
        assert app.session.step_count == 25
        assert "step 25" in text(app.query_one("#train-status"))
        app.query_one("#n-steps", Input).value = "zero"
        assert await pilot.click("#run-n")
        assert await until(lambda: note(app, TrainingPane) != "")
        assert "steps must be a whole number" in note(app, TrainingPane)
        await finish(app, pilot)
        assert app.session.step_count == 25
        # 1…7 still switch panes with a button focused (an earlier app kept the focus
        # inside the old pane and TabbedContent brought that pane back)
        await pilot.press("1")
        assert active_tab(app) == "stepper"


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
        # pausing cancels the worker: that is no error to show (it used to toast
        # "CancelledError:")
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert errors == []


async def test_diverging_learning_rate_stops_training_by_itself() -> None:
    cfg = RunConfig(dataset="moons", arch="16:relu:nobn,C:nobn", optimizer="sgd", lr=1e6)
    app = BntuiApp(cfg)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        session = app.session
        send_key(app, "space")
        # the run may diverge and end before a poll sees it playing: wait for it to start
        assert await until(lambda: app.run_id == 1, timeout=2)
        assert await until(lambda: not app.playing and app.ended_run == 1, timeout=20), (
            "training never stopped")
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

        # the pane's button runs it too; training afterwards drops the stale errors
        await pilot.press("6")
        assert active_tab(app) == "check"
        first = app.report
        assert await pilot.click("#run-check")
        assert await until(lambda: app.report is not first)
        await finish(app, pilot)
        assert app.trace.find("dZ", 1, "backward").checks
        await pilot.press("t")
        await finish(app, pilot)
        assert app.session.step_count == 1
        assert not app.trace.find("dZ", 1, "backward").checks


# train/eval mode, the BN pane, help, quit --------------------------------------------------
async def test_e_bn_pane_help_and_quit() -> None:
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

        await pilot.press("7")
        assert active_tab(app) == "bn"
        stats = text(app.query_one("#bn-stats"))
        assert "batch mean" in stats and "running mean" in stats
        X, _ = app.session.inspection_batch()
        width = app.session.network.blocks[0].dense.fan_out
        assert app.query_one("#bn-grid", TensorGrid).shape == (X.shape[0], width)

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("1", "n")
        assert app.index == 1
        await pilot.press("q")
        assert await until(lambda: not app.is_running, timeout=5)
    assert app.return_code in (0, None)


# dataset pane ----------------------------------------------------------------------------
async def test_dataset_pane_csv_and_bad_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = ["a,b,c,label"] + [
        f"{x:.4f},{y:.4f},{z:.4f},{'yes' if x + y > 0 else 'no'}"
        for x, y, z in rng.normal(size=(50, 3))
    ]
    good = tmp_path / "good.csv"
    good.write_text("\n".join(lines) + "\n")
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
        await submit(app, pilot, "#ds-apply", DatasetPane)
        assert app.session is old
        assert note(app, DatasetPane).startswith("✗ samples must be a whole number")
        app.query_one("#ds-samples", Input).value = ""
        app.query_one("#ds-name", Select).value = CSV
        app.query_one("#ds-csv", Input).value = ""
        await submit(app, pilot, "#ds-apply", DatasetPane)
        assert app.session is old and "type the path" in note(app, DatasetPane)
        for path, words in ((empty, "is empty"), (broken, "'oops' is not a number"),
                            (tmp_path / "missing.csv", "not found")):
            app.query_one("#ds-csv", Input).value = str(path)
            await submit(app, pilot, "#ds-apply", DatasetPane)
            assert app.session is old, path.name
            assert words in note(app, DatasetPane) and note(app, DatasetPane).startswith("✗")

        app.query_one("#ds-csv", Input).value = str(good)
        await submit(app, pilot, "#ds-apply", DatasetPane)
        ds = app.session.dataset
        assert ds.name == str(good), note(app, DatasetPane)
        assert (ds.n_features, ds.n_classes, ds.n_train + ds.n_val) == (3, 2, 50)
        assert app.trace.steps[0].value.shape[1] == 3
        assert app.query_one("#ds-csv", Input).value == str(good)


async def test_dataset_pane_applies_moons_then_switches_to_iris() -> None:
    """Moons with 120 samples, then iris.  Switching datasets must drop the old one's
    options (as `RunConfig.with_dataset` does), not send the form's stale values along:

    1. seed-toy (val_fraction 0) → moons: a stale "0" would silently remove moons'
       default 0.2 validation split;
    2. moons with 120 samples → iris: a stale "120" would be refused ("option samples
       only applies to generated datasets").
    """
    app = BntuiApp()  # seed-softmax: seed-toy, val_fraction 0
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        app.query_one("#ds-name", Select).value = "moons"
        app.query_one("#ds-samples", Input).value = "120"
        old = app.session
        assert (await submit(app, pilot, "#ds-apply", DatasetPane)).startswith("✓")
        ds = app.session.dataset
        assert app.session is not old
        assert ds.name == "moons" and ds.n_train + ds.n_val == 120
        assert app.session.network.blocks[-1].dense.fan_out == 2  # output follows the classes
        moons_val = ds.n_val
        app.query_one("#ds-name", Select).value = "iris"
        await submit(app, pilot, "#ds-apply", DatasetPane)
        iris = app.session.dataset.name
        problems = []
        if moons_val == 0:
            problems.append("seed-toy → moons kept val_fraction 0: no validation split")
        if iris != "iris":
            problems.append(f"moons → iris was refused: {note(app, DatasetPane)}")
        assert not problems, "; ".join(problems)


# model pane ------------------------------------------------------------------------------
async def test_model_pane_architecture_text_and_block_editor() -> None:
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        old, arch = app.session, app.session.config.arch
        app.query_one("#arch", Input).value = "8:tanhh,C"
        await submit(app, pilot, "#apply-arch", ModelPane)
        assert app.session is old and app.session.config.arch == arch
        assert "tanhh" in note(app, ModelPane) and note(app, ModelPane).startswith("✗")

        app.query_one("#arch", Input).value = "8:tanh,C"
        await submit(app, pilot, "#apply-arch", ModelPane)
        net = app.session.network
        assert app.session is not old and app.session.config.arch == "8:tanh,C"
        assert "tanh" in net.describe() and len(net.blocks) == 2
        assert len(app.query(BlockRow)) == 2
        assert note(app, ModelPane).startswith("✓")
        assert "tanh" in text(app.query_one("#map"))

        assert await pilot.click("#add-block")  # the block editor: one more block
        assert await until(lambda: len(app.query(BlockRow)) == 3)
        await pilot.pause()
        await submit(app, pilot, "#apply-blocks", ModelPane)
        assert len(app.session.network.blocks) == 3
        assert app.query_one("#arch", Input).value == app.session.config.arch


async def test_model_pane_loads_the_seed_digits_preset(record_property) -> None:
    """Also records (asserts nothing about) the stepper's redraw time on seed-digits."""
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        app.query_one("#preset", Select).value = "seed-digits"
        await submit(app, pilot, "#load-preset", ModelPane)
        s = app.session
        assert s.dataset.name == "digits" and s.dataset.n_train == 1500
        assert s.network.n_params() == 2894
        assert s.optimizer.name == "adam"
        assert note(app, ModelPane).startswith("✓ preset seed-digits")

        await pilot.press("1")
        assert active_tab(app) == "stepper"
        times = []
        for i in range(20):
            send_key(app, "n")
            assert await until(lambda i=i: app.index == i + 1)
            times.append(app.last_redraw_ms)
    record_property("redraw_ms_median", float(np.median(times)))
    record_property("redraw_ms_max", float(np.max(times)))
    print(f"seed-digits step redraw: median {np.median(times):.1f} ms, max {max(times):.1f} ms")


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
            await submit(app, pilot, "#opt-apply", OptimizerPane)
            assert app.session is old, lr
            assert words in note(app, OptimizerPane)
            assert note(app, OptimizerPane).startswith("✗")
        lr_field.value = good_lr
        app.query_one("#batch", Input).value = "1"
        await submit(app, pilot, "#opt-apply", OptimizerPane)
        assert app.session is old
        assert "expected more than 1 value per feature" in note(app, OptimizerPane)

        app.query_one("#batch", Input).value = ""
        app.query_one("#opt", Select).value = "sgd"
        lr_field.value = "0.05"
        await submit(app, pilot, "#opt-apply", OptimizerPane)
        assert app.session is not old
        assert app.session.optimizer.name == "sgd"
        assert app.session.optimizer.lr == pytest.approx(0.05)
        assert note(app, OptimizerPane).startswith("✓")


# terminal sizes --------------------------------------------------------------------------
async def test_tiny_terminal_and_resizing() -> None:
    app = BntuiApp()
    async with app.run_test(size=(40, 12)) as pilot:
        await settle(app, pilot)
        await pilot.press("n", "]", "end", "home", "2", "7", "1", "t")
        await finish(app, pilot)
        assert app.session.step_count == 1 and app.index == 0
        await pilot.resize_terminal(80, 24)
        assert app.size == (80, 24)
        await pilot.press("n", "3")
        await pilot.resize_terminal(160, 50)
        assert app.size == (160, 50)
        await pilot.press("1", "end")
        assert app.is_running and app.index == len(app.trace) - 1


# app bugs exposed ------------------------------------------------------------------------
async def test_loss_plot_survives_redraws_once_the_loss_is_below_one() -> None:
    """plotext's yscale("log") took log10 of the data again at each render: a resize
    after the loss fell below 1 raised a math domain error."""
    from bntui.ui.plots import LossPlot

    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        app.query_one("#n-steps", Input).value = "60"
        assert await pilot.click("#run-n")
        assert await until(lambda: app.session.step_count == 60 and not app.playing)
        await finish(app, pilot)
        assert min(app.session.history.loss) < 1
        plot = app.query_one(LossPlot)
        first = plot.plt.build()
        assert plot.plt.build() == first  # a second render draws the same
        for size in ((90, 30), SIZE):
            await pilot.resize_terminal(*size)
            await pilot.pause(0.2)
        assert app.is_running and app.query_one(LossPlot).plt.build()


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


async def test_quitting_right_after_start_is_clean() -> None:
    """App bug: `q` as the app starts raises `MountError: Can't mount widget(s) before
    TabPane(id='training') is mounted` (textual's `Lazy.mount` of the panes races the
    shutdown; app.py `compose` wraps every pane but the stepper in `Lazy`)."""
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
    assert not app.is_running


async def test_keys_answer_while_a_gradient_check_runs(monkeypatch) -> None:
    """The UI must not freeze while a gradient check runs (~20 s on seed-digits).

    (An earlier app held `app.lock` for the whole check while `refresh_bn_pane` (key 7),
    `_retrace` (key e) and `install` (key r) took the same lock on the event loop.)  Each
    check here is held open by a gate in the numerical differences that a timer opens
    after 1.5 s; the key, and an `n` after it, must be answered before that.
    """
    started, gate = threading.Event(), threading.Event()
    real = gradcheck_module.numeric_gradients

    def slow_numeric_gradients(*args: object, **kwargs: object):
        started.set()
        gate.wait(timeout=10)
        return real(*args, **kwargs)

    monkeypatch.setattr(gradcheck_module, "numeric_gradients", slow_numeric_gradients)
    app = BntuiApp()
    frozen = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        for key in ("7", "e", "r"):
            started.clear()
            gate.clear()
            release = threading.Timer(1.5, gate.set)
            release.start()
            try:
                send_key(app, "g")
                assert await until(started.is_set, timeout=2), "the check never reached the gate"
                send_key(app, key)
                await asyncio.sleep(0.2)  # the loop handles the key (and freezes, if it does)
                before = app.index
                send_key(app, "n")
                moved = await until(lambda b=before: app.index == b + 1, timeout=5)
                if not moved or gate.is_set():
                    frozen.append(key)
            finally:
                gate.set()
                release.cancel()
            await finish(app, pilot)
    assert not frozen, f"the app froze after {frozen} until the gradient check finished"


async def test_optimizer_form_keeps_the_learning_rate_exactly() -> None:
    """App bug (optimizer_pane.py `load`): the form shows lr, BN ε and BN momentum with
    `f"{x:g}"` (6 significant digits), and Apply sends the text back, so changing any other
    field silently rounds a learning rate given on the command line (0.0123456789 →
    0.0123457)."""
    app = BntuiApp(RunConfig(dataset="moons", lr=0.0123456789))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        app.query_one("#batch", Input).value = "32"
        await submit(app, pilot, "#opt-apply", OptimizerPane)
        assert app.session.batch_size == 32
        assert app.session.optimizer.lr == 0.0123456789


async def test_training_history_does_not_depend_on_the_wall_clock(monkeypatch) -> None:
    """App bug (app.py `_train`): the worker trains in ~0.1 s slices with
    `eval_every=10**9` and evaluates once at the end of each slice, so which steps get an
    evaluation (the validation-loss and accuracy curves) depends on the machine's speed:
    the same seed and the same "Run 40" draw different curves.  Here a fake clock that
    runs fast makes every slice one step long; the recorded history must not change."""
    import bntui.ui.app as app_module

    real_time = app_module.time

    class FastClock:
        """`time` for bntui.ui.app whose monotonic() jumps 0.06 s at every call."""

        def __init__(self) -> None:
            self.calls = 0

        def monotonic(self) -> float:
            self.calls += 1
            return real_time.monotonic() + 0.06 * self.calls

        def __getattr__(self, name: str) -> object:
            return getattr(real_time, name)

    histories = []
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        for clock in (real_time, FastClock()):
            monkeypatch.setattr(app_module, "time", clock)
            await pilot.press("r")  # a new session from the same config
            session = app.session
            assert session.step_count == 0
            app.query_one("#n-steps", Input).value = "40"
            assert await pilot.click("#run-n")
            assert await until(lambda s=session: s.step_count == 40 and not app.playing)
            await finish(app, pilot)
            histories.append(session.history)
    real, fast = histories
    assert real.loss == fast.loss  # the training itself is deterministic
    assert real.eval_step == fast.eval_step, (
        f"evaluated at {real.eval_step} with the real clock, {fast.eval_step} with a fast one")


async def test_escape_leaves_a_text_field_and_keys_step_again() -> None:
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        app.query_one("#arch", Input).focus()
        await pilot.pause()
        await pilot.press("n")  # typed into the field, not a step
        assert app.index == 0
        await pilot.press("escape")
        await pilot.pause()
        assert app.focused is None
        await pilot.press("1", "n")
        assert await until(lambda: app.index == 1)


async def test_save_and_open_from_the_app(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("t")
        assert await until(lambda: app.session.step_count == 1 and not app.playing)
        await pilot.press("ctrl+s")
        await pilot.pause()
        app.screen.query_one("#path", Input).value = str(path)
        await pilot.press("enter")
        assert await until(lambda: path.exists())
        await pilot.press("t")
        assert await until(lambda: app.session.step_count == 2 and not app.playing)
        before = app.session
        await pilot.press("ctrl+o")
        await pilot.pause()
        app.screen.query_one("#path", Input).value = str(tmp_path / "missing.npz")
        await pilot.press("enter")
        await pilot.pause()
        assert "not found" in str(app.screen.query_one(Note).render())
        assert app.session is before  # a failed open keeps the session
        app.screen.query_one("#path", Input).value = str(path)
        await pilot.press("enter")
        assert await until(lambda: app.session is not before)
        assert app.session.step_count == 1


async def test_labs_pane_is_driven_by_the_keyboard() -> None:
    """8 opens the Labs pane with the list taking the keys; ↓ picks the next lab and the
    pane shows it; 1 goes back to the stepper; x opens the Exercise lab."""
    from textual.widgets import OptionList

    from bntui.ui.labs_pane import LabsPane

    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("8")
        assert await until(lambda: bool(app.query(LabsPane)) and active_tab(app) == "labs")
        pane = app.query_one(LabsPane)
        assert await until(lambda: isinstance(app.focused, OptionList))
        ids = [v.LAB_ID for v in pane.views]
        assert ids[:2] == ["bugs", "bn"] and "exercise" in ids
        await pilot.press("down", "down", "down", "down")
        assert await until(lambda: pane.current is not None
                           and ids[4] == pane.current.LAB_ID)
        await pilot.press("1")
        assert active_tab(app) == "stepper"


async def test_exercise_mode_in_the_stepper() -> None:
    """x hides each step's tensor (or formula) and asks about it; Enter grades the answer
    against the trace's own value; an unreadable answer is not graded and the question
    stays; x again leaves exercise mode."""
    from bntui.engine.labs.exercise import question_at

    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        stepper = app.query_one(StepperPane)
        await pilot.press("x")
        assert stepper.exercise and active_tab(app) == "stepper"
        assert stepper.question is None  # step 1 is the input batch: nothing to work out
        await pilot.press("n")
        q = stepper.question
        assert q is not None and q.step == app.index == 1
        _, y = app.session.inspection_batch()
        again = question_at(app.trace, app.session.network, y, 1)
        assert again is not None and again.to_dict(reveal=True) == q.to_dict(reveal=True)
        assert not app.query_one(TensorGrid).display  # the tensor is hidden
        answer = app.query_one("#answer", Input)
        assert app.focused is answer
        answer.value = "not an answer"
        await pilot.press("enter")
        await pilot.pause()
        assert stepper.score == (0, 0) and stepper.question is q
        assert q.prompt in str(app.query_one("#exercise").render())
        right = {"value": lambda: f"{q.value!r}", "shape": lambda: "x".join(map(str, q.shape)),
                 "formula": lambda: "abcd"[q.choice]}[q.kind]()
        answer.value = right
        await pilot.press("enter")
        await pilot.pause()
        assert stepper.score == (1, 1) and app.query_one(TensorGrid).display
        await pilot.press("n")  # the keys step again after an answer
        assert app.index == 2 and stepper.question is not None
        app.query_one("#answer", Input).value = "-12345" if stepper.question.kind == "value" \
            else ("1x1" if stepper.question.kind == "shape" else
                  "abcd"[(stepper.question.choice + 1) % 4])
        await pilot.press("enter")
        await pilot.pause()
        assert stepper.score == (1, 2)
        await pilot.press("x")
        assert not stepper.exercise and app.query_one(TensorGrid).display
        assert not app.query_one("#answer", Input).display
