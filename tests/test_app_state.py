"""The app's state has one owner and the views always agree with it (issue 11).

Training workers: whatever ends a run — its steps done, a pause at a random moment, an
exception in the engine — the status line, the training pane, the stepper and the plots
end on the session's step.  The registry and the action table: every pane and every action
is a tab, a key, a help line and a palette command.
"""

from __future__ import annotations

import asyncio
import random
import re

import numpy as np
from app_helpers import idle_training, send_key, settle, text, until
from textual.widgets import Button, TabbedContent

from bntui.engine import RunConfig, Session
from bntui.ui.app import BntuiApp
from bntui.ui.help_screen import HelpScreen
from bntui.ui.keys import KEYS, TOUR_KEYS
from bntui.ui.registry import PANES
from bntui.ui.stepper import StepperPane
from bntui.ui.training_pane import TrainingPane

SIZE = (120, 40)
MOONS = RunConfig(dataset="moons", arch="8:tanh,6:relu,C")


def shown_step(app: BntuiApp) -> dict[str, int]:
    """The step each view says it shows."""
    status = text(app.query_one("#status"))
    pane = text(app.query_one("#train-status"))
    return {
        "status": int(re.search(r"step ([\d,]+)", status).group(1).replace(",", "")),
        "training pane": int(re.search(r"step ([\d,]+)", pane).group(1).replace(",", "")),
        "snapshot": app.snapshot.step,
        "curves": app.snapshot.history.step[-1] if app.snapshot.history.step else 0,
    }


def assert_views_on_the_session(app: BntuiApp, what: str) -> None:
    session = app.session
    steps = shown_step(app)
    assert set(steps.values()) == {session.step_count}, f"{what}: {steps} vs the session's " \
                                                        f"{session.step_count}"
    with app.lock:
        fresh = session.trace(app.trace_training)
    assert app.trace.loss == fresh.loss, f"{what}: the stepper's loss is not the session's"
    assert app.query_one(StepperPane).snapshot is app.snapshot
    assert "training…" not in text(app.query_one("#status"))
    assert "Play" in str(app.query_one("#play", Button).label)


async def test_random_play_pause_cycles_end_on_the_sessions_step() -> None:
    """25 play/pause cycles, each paused at a random moment: every time, the status line,
    the training pane, its curves and the stepper's pass are the session's last step.
    (Before: about 1 pause in 13–25 left the pane and the stepper behind.)"""
    rng = random.Random(11)
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        for cycle in range(25):
            send_key(app, "space")
            assert await until(lambda: app.playing, 2)
            await asyncio.sleep(rng.uniform(0.0, 0.35))
            send_key(app, "space")
            await idle_training(app, pilot, runs=cycle + 1)
            assert_views_on_the_session(app, f"cycle {cycle + 1}")
        assert app.session.step_count > 0


async def test_a_run_that_ends_by_itself_ends_on_its_step() -> None:
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2", "t")
        await idle_training(app, pilot)
        assert app.session.step_count == 1
        assert_views_on_the_session(app, "one step")


async def test_a_failed_worker_leaves_the_button_and_the_status_right(monkeypatch) -> None:
    """The engine raises in the middle of a run: the Play button reads Play again, the
    status says the run stopped on an error (not 'training…'), every view shows the step
    the session reached, and the next run works."""
    real = Session.train
    calls = {"n": 0}

    def failing(self: Session, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the engine broke")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Session, "train", failing)
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        send_key(app, "space")
        await idle_training(app, pilot)
        status = text(app.query_one("#status"))
        assert "training…" not in status and "the engine broke" in status
        assert "Play" in str(app.query_one("#play", Button).label)
        steps = shown_step(app)
        assert set(steps.values()) == {app.session.step_count}, steps
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert any("the engine broke" in m for m in errors)
        before = app.session.step_count
        send_key(app, "t")  # and the app trains again
        await idle_training(app, pilot, runs=2)
        assert app.session.step_count == before + 1
        assert "error" not in text(app.query_one("#status"))


async def test_keys_pressed_before_the_panes_mount() -> None:
    """Play, the Training tab and a gradient check asked for before the lazily mounted
    panes exist: once they mount they show the app's state, not their defaults."""
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        send_key(app, "2")
        send_key(app, "t")
        send_key(app, "g")
        await settle(app, pilot)
        await idle_training(app, pilot)
        assert await until(lambda: app.check is not None, 30)
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "training"
        assert shown_step(app)["training pane"] == app.session.step_count
        assert "max relative error" in text(app.query_one("#check-summary"))


async def test_the_state_is_pushed_down_not_pulled() -> None:
    """Each pane shows exactly the app's record: the same snapshot object, the same check
    record, the same play state."""
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("g")
        assert await until(lambda: app.check is not None, 30)
        await pilot.pause()
        for spec in PANES:
            pane = app.query_one(spec.make)  # type: ignore[arg-type]
            for name in getattr(pane, "BINDS", ()):
                assert getattr(pane, name) == getattr(app, name), (spec.id, name)
        assert app.query_one(TrainingPane).playing is False


# one registry, one table of actions ---------------------------------------------------------
async def test_tabs_keys_help_and_palette_come_from_the_registry() -> None:
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        tabs = app.query_one(TabbedContent)
        assert [p.id for p in tabs.query("TabPane")] == [spec.id for spec in PANES]
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for spec in PANES:
            await pilot.press(spec.key)
            assert tabs.active == spec.id
            assert f"Show {spec.title} ({spec.key})" in titles
        await pilot.press("1", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = " ".join(text(w) for w in app.screen.query("Static"))
        for spec in PANES:
            assert spec.title in help_text and spec.about in help_text
        for key in (*KEYS, *TOUR_KEYS):
            assert key.about in help_text, key.action


async def test_every_action_is_in_the_command_palette() -> None:
    """Each binding's action has a palette command, and the command does it (x, [, ],
    home and end were missing)."""
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        palette_actions = {c.callback.args[0] for c in commands.values()
                           if getattr(c.callback, "args", None)}
        for binding in app.BINDINGS:
            assert binding.action in palette_actions or binding.action == "escape", \
                binding.action

        async def run(title_part: str) -> None:
            [command] = [c for t, c in commands.items() if title_part in t]
            await command.callback()
            await pilot.pause()

        await run("(end)")
        assert app.index == len(app.trace) - 1
        await run("(home)")
        assert app.index == 0
        await run("(])")
        assert app.trace.steps[app.index].layer == 2
        await run("([)")
        assert app.index == 0
        await run("(x)")
        assert app.exercise and app.query_one(StepperPane).exercise
        await run("(x)")
        assert not app.exercise


async def test_the_stepper_follows_the_app_index_and_mode() -> None:
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        stepper = app.query_one(StepperPane)
        app.index = 5
        await pilot.pause()
        assert stepper.index == 5 and "step 6/" in text(app.query_one("#where"))
        app.index = 10**6  # clamped to the pass
        assert app.index == len(app.trace) - 1
        app.trace_training = False
        await pilot.pause()
        assert app.trace.training is False and "eval mode" in text(app.query_one("#where"))
        assert np.isfinite(app.trace.loss)
