"""The app before a network that cannot fit or will be very slow (issue 13): the Model
pane refuses the first in one line and keeps the session; for the second it asks, and
builds only on yes."""

from __future__ import annotations

import pytest
from app_helpers import settle
from test_app_pilot import MOONS, SIZE, note, submit
from textual.widgets import Input

from bntui.engine import budget
from bntui.ui.app import BntuiApp
from bntui.ui.confirm_screen import ConfirmScreen
from bntui.ui.model_pane import ModelPane


async def test_a_network_that_cannot_fit_is_refused_in_the_pane() -> None:
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        old = app.session
        app.query_one("#arch", Input).value = "100000,100000,C"
        said = await submit(app, pilot, "#apply-arch", ModelPane)
        assert app.session is old and app.session.config.arch == MOONS.arch
        assert said.startswith("✗") and "10.0 G parameters" in said
        assert "nothing was changed" in said and "available" in said
        assert app.is_running


@pytest.mark.parametrize("answer", ["n", "y"])
async def test_a_very_slow_network_is_built_only_if_the_learner_says_yes(
        monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    """A machine measured a million times slower: a 64-wide network is 'very slow'."""
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        monkeypatch.setattr(budget, "flops_per_second", lambda dtype="float64": 1e3)
        monkeypatch.setattr(budget, "SMALL_FLOPS", 0.0)
        await pilot.press("4")
        old = app.session
        app.query_one("#arch", Input).value = "64:tanh,C"
        app.query_one("#apply-arch").press()
        for _ in range(100):
            if isinstance(app.screen, ConfirmScreen):
                break
            await pilot.pause(0.02)
        assert isinstance(app.screen, ConfirmScreen)
        assert app.session is old  # nothing built while it asks
        await pilot.press(answer)
        await pilot.pause(0.2)
        said = note(app, ModelPane)
        if answer == "y":
            assert app.session is not old and app.session.config.arch == "64:tanh,C"
            assert said.startswith("✓")
        else:
            assert app.session is old and said.startswith("✗") and "not built" in said


@pytest.mark.parametrize("answer", ["n", "y"])
async def test_a_very_slow_start_is_asked_about(monkeypatch: pytest.MonkeyPatch,
                                                answer: str) -> None:
    """`bntui --arch …` with a very slow network: the first screen asks; no falls back to
    the default preset with one line saying why, yes builds it."""
    monkeypatch.setattr(budget, "flops_per_second", lambda dtype="float64": 1e3)
    monkeypatch.setattr(budget, "SMALL_FLOPS", 0.0)
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(100):
            if isinstance(app.screen, ConfirmScreen):
                break
            await pilot.pause(0.02)
        assert isinstance(app.screen, ConfirmScreen) and app.session is None
        await pilot.press(answer)
        await settle(app, pilot)
        if answer == "y":
            assert app.session.config.arch == MOONS.arch
        else:
            assert app.session.config.dataset == "seed-toy"
            assert app.load_error.startswith("not built: the network 2 → 8 → 6 → 2")
