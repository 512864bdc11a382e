"""Where a newcomer starts: the start panel, the guided tour, and exporting the
walkthrough from the app (issue 11)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from app_helpers import settle, text, until
from textual.widgets import Input, Select

from bntui.engine import RunConfig, preset
from bntui.numbers import fmt
from bntui.ui.app import BntuiApp
from bntui.ui.export_screen import ExportScreen
from bntui.ui.form import Note
from bntui.ui.help_screen import HelpScreen
from bntui.ui.start_panel import StartPanel
from bntui.ui.tour import STOPS, TourPanel, tour_layer, vector

SIZE = (120, 40)
MOONS = RunConfig(dataset="moons", arch="8:tanh,6:relu,C")


# start panel -----------------------------------------------------------------------------
async def test_the_start_panel_greets_a_bare_start_and_any_key_goes_through() -> None:
    app = BntuiApp()  # as `bntui` with no flags
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        panel = app.query_one(StartPanel)
        assert panel.display and app.start_panel
        words = text(panel)
        for key in ("n / b", "w", "?"):
            assert key in words
        await pilot.press("n")  # closes the panel and steps
        assert not panel.display and app.index == 1


async def test_the_start_panel_lets_help_and_the_tour_through() -> None:
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen) and not app.start_panel
        await pilot.press("w")  # help → the tour
        assert not isinstance(app.screen, HelpScreen)
        assert app.tour == 0


async def test_no_start_panel_when_started_with_flags_and_a_click_closes_it() -> None:
    app = BntuiApp(MOONS)  # as `bntui --dataset moons …`
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert not app.query_one(StartPanel).display
    app = BntuiApp(start_panel=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert await pilot.click(StartPanel)
        await pilot.pause()
        assert not app.query_one(StartPanel).display and app.index == 0


# the tour --------------------------------------------------------------------------------
async def test_the_tour_stops_where_it_says_and_quotes_the_trace() -> None:
    """Each stop puts the stepper on its step and says what to look at; the numbers it
    quotes are the recorded trace's (a value changed in the trace changes the words)."""
    app = BntuiApp(start_panel=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        panel = app.query_one(TourPanel)
        assert not panel.display
        await pilot.press("w")
        layer = tour_layer(app.session.network)
        assert app.tour == 0 and panel.display
        for k, stop in enumerate(STOPS):
            assert app.tour == k
            step = app.trace.steps[app.index]
            assert (step.name, step.layer, step.phase) == (stop.name, layer, stop.phase)
            assert app.trace.training == stop.training
            words = text(panel)
            assert f"Tour {k + 1}/{len(STOPS)}" in words and stop.title in words
            if stop.name == "Znorm":
                st = step.stats()
                assert fmt(st["mean"]) in words and fmt(st["std"]) in words
            if stop.name in ("mu", "dmu", "std"):
                assert vector(step.value) in words
            if k + 1 < len(STOPS):
                await pilot.press("enter")
        assert "running" in text(panel) and app.trace_training is False
        # the words are the trace's: change the recorded value, the quote follows
        step = app.trace.steps[app.index]
        step.value = np.array([123.25] * step.value.size)
        panel.draw()
        assert "123.2" in text(panel)
        await pilot.press("backspace")
        assert app.tour == len(STOPS) - 2 and app.trace_training is True
        await pilot.press("escape")
        assert app.tour is None and not panel.display


@pytest.mark.parametrize(("name", "std_formula"), [
    ("seed-softmax", "std = running_std"),  # seed 000's convention keeps a running std
    ("seed-digits", "std = √(running_var + ε)"),
])
async def test_the_tours_eval_stop_quotes_the_records_formulas(name: str,
                                                               std_formula: str) -> None:
    """The eval stop names the statistics eval mode really uses, in the words of the node
    records (no 'running var' where the convention keeps a running std)."""
    app = BntuiApp(preset(name), start_panel=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("w")
        for _ in STOPS[:-1]:
            await pilot.press("enter")
        assert app.tour == len(STOPS) - 1 and app.trace_training is False
        words = " ".join(text(app.query_one(TourPanel)).split())
        std = next(s for s in app.trace.steps if s.name == "std"
                   and s.layer == tour_layer(app.session.network) and s.phase == "forward")
        assert std.formula == std_formula
        assert "mu = running_mean" in words and std_formula in words
        if "running_std" in std_formula:
            assert "running_var" not in words


async def test_the_tour_never_blocks_the_keys() -> None:
    app = BntuiApp(start_panel=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("w", "enter", "enter", "enter")  # on Znorm
        at = app.index
        await pilot.press("n", "n")
        assert app.index == at + 2 and app.tour == 3
        assert "stepped away" in text(app.query_one(TourPanel))
        await pilot.press("w")  # back to the stop
        assert app.index == at
        for _ in STOPS:
            await pilot.press("enter")
        assert app.tour is None  # past the last stop the tour ends
        await pilot.press("enter")  # enter does nothing special without a tour
        assert app.tour is None
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert any("tour" in t.lower() and "(w)" in t for t in titles)


async def test_the_tour_needs_a_batchnorm_layer() -> None:
    app = BntuiApp(RunConfig(dataset="moons", arch="8:tanh:nobn,C:nobn"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("w")
        assert app.tour is None
        assert any("BatchNorm" in n.message for n in app._notifications)


# export ----------------------------------------------------------------------------------
async def test_export_this_walkthrough_as_markdown_and_html(tmp_path: Path) -> None:
    app = BntuiApp(start_panel=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+e")
        assert isinstance(app.screen, ExportScreen)
        screen = app.screen
        screen.query_one("#path", Input).value = str(tmp_path / "missing" / "walk.md")
        await pilot.press("enter")
        assert await until(lambda: "✗" in text(screen.query_one(Note)), 30)
        assert "does not exist" in text(screen.query_one(Note))
        assert app.screen is screen  # the error stays in the dialog
        md = tmp_path / "walk.md"
        screen.query_one("#path", Input).value = str(md)
        await pilot.press("enter")
        assert await until(lambda: md.exists() and not isinstance(app.screen, ExportScreen),
                           60)
        body = md.read_text()
        assert body.count("Gradient check (relative error)") >= 10
        assert f"/{len(app.trace)} ·" in body
        assert app.check is not None  # the check it ran is the app's last check now
        await pilot.press("ctrl+e")
        screen = app.screen
        screen.query_one("#form", Select).value = "html"
        await pilot.pause()
        path = screen.query_one("#path", Input).value
        assert path.endswith(".html")
        await pilot.press("enter")
        assert await until(lambda: Path(path).exists(), 60)
        page = Path(path).read_text()
        assert page.startswith("<!DOCTYPE html>") and "Gradient check" in page
