"""The app at every size (issue 11): at 80 × 24 every tab is whole on screen, the footer
shows `?` and `q`, the loss and accuracy plots get at least 6 rows each, every field, menu
and button of every pane is on screen and shows its whole value; at 160 × 50 the panes use
the room."""

from __future__ import annotations

import pytest
from app_helpers import chrome_problems, settle
from lab_helpers import open_lab
from textual.widgets import Input

from bntui.engine import RunConfig
from bntui.ui.app import BntuiApp
from bntui.ui.plots import AccuracyPlot, LossPlot
from bntui.ui.registry import PANES
from bntui.ui.training_pane import RegionView

MOONS = RunConfig(dataset="moons", arch="8:tanh,6:relu,C")
SIZES = ((80, 24), (120, 40), (160, 50))


def field_problems(app: BntuiApp, pane_id: str) -> list[str]:
    """Fields, menus and buttons of the pane that are off screen or cut."""
    width = app.size.width
    pane = app.query_one(f"#{pane_id}")
    problems = []
    for w in pane.query("Input, Select, Button"):
        if not w.display or not w.is_on_screen:
            continue
        if w.region.right > width:
            problems.append(f"{pane_id}: {w!r} reaches column {w.region.right}")
        if isinstance(w, Input) and w.value and len(w.value) >= w.content_size.width:
            problems.append(f"{pane_id}: {w!r} shows {w.content_size.width} of "
                            f"{w.value!r}")
    return problems


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_every_pane_fits(size: tuple[int, int]) -> None:
    app = BntuiApp(MOONS)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        problems = chrome_problems(app)
        for spec in PANES[:-1]:  # the labs are checked below, one lab at a time
            await pilot.press(spec.key)
            await pilot.pause(0.1)
            problems += field_problems(app, spec.id)
        assert not problems, "\n".join(problems)


@pytest.mark.parametrize("size", (*SIZES, (80, 40)), ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_normalization_editor_fits(size: tuple[int, int]) -> None:
    """Issue 14: a block row with its normalization menu and GroupNorm's groups (the
    widest row: leaky_relu with α) is whole on screen, every value shown whole, with the
    inline line of groups that do not divide the width (80 × 40: narrow, with borders)."""
    from textual.widgets import Select

    from bntui.ui.model_pane import BlockRow

    app = BntuiApp(RunConfig(dataset="moons", arch="16:ln:tanh,12:gn=4:leaky_relu=0.25,C:rms"))
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        await pilot.pause(0.1)
        rows = list(app.query(BlockRow))
        assert [str(r.query_one(".norm", Select).value) for r in rows] == ["ln", "gn", "rms"]
        rows[1].query_one(".groups", Input).value = "5"
        await pilot.pause(0.2)
        problems = chrome_problems(app) + field_problems(app, "model")
        for row in rows:
            for w in row.children:
                if w.region.right > size[0] or w.region.width == 0:
                    problems.append(f"{w!r} at {w.region}")
        note = app.query_one("#model").query_one("Note")
        if not note.region.width or note.region.right > size[0]:
            problems.append(f"the inline line is at {note.region}")
        assert not problems, "\n".join(problems)


async def test_the_curves_get_six_rows_each_at_80x24() -> None:
    app = BntuiApp(MOONS)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        await pilot.pause(0.1)
        for plot in (app.query_one(LossPlot), app.query_one(AccuracyPlot)):
            assert plot.region.height >= 6, plot
            assert plot.region.bottom <= 24 - 2  # above the status line and the footer
        assert app.query_one(RegionView).map_size[1] >= 8


@pytest.mark.parametrize("lab_id", ["bugs", "bn", "batch", "health", "race", "exercise",
                                    "hsweep", "norms"])
async def test_every_lab_fits_at_80x24(lab_id: str) -> None:
    from bntui.ui.labs import lab_views

    view_type = next(v for v in lab_views() if lab_id == v.LAB_ID)
    app = BntuiApp(MOONS)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await open_lab(app, pilot, view_type, lab_id)
        await pilot.pause(0.1)
        problems = chrome_problems(app) + field_problems(app, "labs")
        assert not problems, "\n".join(problems)


async def test_a_big_terminal_is_used() -> None:
    """At 160 × 50 the map, the curves and the stepper's grid grow with the screen."""
    found = {}
    for size in ((120, 40), (160, 50)):
        app = BntuiApp(MOONS)
        async with app.run_test(size=size) as pilot:
            await settle(app, pilot)
            grid_rows = app.query_one("#grid").region.height
            await pilot.press("2")
            await pilot.pause(0.1)
            found[size] = (app.query_one(RegionView).map_size,
                           app.query_one(LossPlot).region.height, grid_rows)
    (map_s, loss_s, grid_s), (map_b, loss_b, grid_b) = found[(120, 40)], found[(160, 50)]
    assert map_b[0] > map_s[0] and map_b[1] > map_s[1]
    assert loss_b > loss_s and grid_b > grid_s


async def test_resizing_relabels_the_tabs_and_the_layout_follows() -> None:
    """A terminal resized while the app runs: the tabs, the footer and the size classes
    follow at once (the app's Resize handler runs before Textual's own updates the size,
    so it must read the event's size)."""
    app = BntuiApp(MOONS)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        for size in ((80, 24), (160, 50), (120, 40)):
            await pilot.resize_terminal(*size)
            await pilot.pause(0.2)
            assert app.size == size
            problems = chrome_problems(app)
            assert not problems, f"{size}: {problems}"
            assert app.screen.has_class("-short") == (size[1] < 30)
            assert app.screen.has_class("-narrow") == (size[0] < 100)
