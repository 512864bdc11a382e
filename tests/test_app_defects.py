"""The defects of issue 11, each pinned by a test that fails without its fix: the BN
train/eval pane's controls, help's keys and glossary, the decision regions and their
labels, the optimizer state, the tensor grid, the output block's kind, the preset note,
the race lab's counting, the labs' count, and the shape asked in exercise mode."""

from __future__ import annotations

import numpy as np
from app_helpers import idle_training, send_key, settle, text, until
from lab_helpers import open_lab
from rich.style import Style
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Select, Switch

from bntui.engine import RunConfig
from bntui.engine.batchnorm import train_vs_eval
from bntui.engine.config import PRESETS
from bntui.engine.labs.exercise import question_at
from bntui.numbers import fmt
from bntui.ui.app import BntuiApp
from bntui.ui.bn_pane import VIEWS, BNPane
from bntui.ui.help_screen import HelpScreen, glossary_rows
from bntui.ui.region_view import pale, strong
from bntui.ui.stepper import StepperPane
from bntui.ui.tensor_grid import CELL, LABEL, TensorGrid
from bntui.ui.training_pane import RegionView

SIZE = (120, 40)
MOONS = RunConfig(dataset="moons", arch="8:tanh,6:relu,C")


# BN train/eval pane ----------------------------------------------------------------------
async def test_every_control_of_the_bn_pane_changes_what_it_shows() -> None:
    """Each view shows the engine's tensor for it, the grid's title names it, and every
    switch or menu on the pane changes the grid.  (Before: an "eval mode" switch changed
    nothing in the default view and overrode the menu in the "Zbn training" view.)"""
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2", "t")
        await idle_training(app, pilot)
        await pilot.press("7")
        pane = app.query_one(BNPane)
        grid = pane.query_one(TensorGrid)
        network = app.session.network
        X, _ = app.session.inspection_batch()
        network.forward(X, training=True, update_running=False)
        expected = train_vs_eval(network.blocks[0].bn, network.blocks[0].cache["Z"])
        shown = {}
        for label, view in VIEWS:
            pane.query_one("#bn-view", Select).value = view
            await pilot.pause()
            np.testing.assert_allclose(grid._a, expected[view], rtol=0, atol=1e-12,
                                       err_msg=view)
            assert grid.border_title == label
            shown[view] = grid._a.copy()
        assert not np.allclose(shown["Zbn_train"], shown["Zbn_eval"])
        for switch in pane.query(Switch):  # a switch, if any, must change what is shown
            before = grid._a.copy()
            switch.value = not switch.value
            await pilot.pause()
            assert not np.array_equal(before, grid._a), f"switch {switch.id} changes nothing"


# help ------------------------------------------------------------------------------------
async def test_help_scrolls_at_once_and_shows_the_glossary_at_80x24() -> None:
    """↓, PageDown and End scroll help as soon as it opens (before: nothing until Tab);
    at 80 × 24 End and g bring the glossary on screen."""
    app = BntuiApp(MOONS)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        scroll = app.screen.query_one("#help-scroll", VerticalScroll)
        assert scroll.max_scroll_y > 0
        await pilot.press("down")
        assert scroll.scroll_y > 0
        await pilot.press("pagedown")
        y = scroll.scroll_y
        assert y > 1
        await pilot.press("end")
        await pilot.pause(0.2)
        assert scroll.scroll_y == scroll.max_scroll_y
        glossary = app.screen.query_one("#help-glossary")
        visible = scroll.content_region
        assert glossary.region.overlaps(visible)
        await pilot.press("home", "g")
        await pilot.pause(0.2)
        assert glossary.region.y >= visible.y and glossary.region.y < visible.bottom
        assert "glossary" in text(glossary) and "Znorm" in text(glossary)


def test_every_glossary_name_has_a_meaning() -> None:
    """Before: the "meaning" column was blank for mu … Zbn, dlogits, dbeta … dX."""
    rows = glossary_rows()
    names = [r[0] for r in rows]
    for name in ("mu", "Z0", "var", "std", "Znorm", "Zbn", "dlogits", "dbeta", "dgamma",
                 "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ", "dW", "db", "dX"):
        assert name in names
    assert all(meaning.strip() and formula.strip() for _, meaning, formula in rows)


# decision regions ----------------------------------------------------------------------
class PlaneApp(App[None]):
    def compose(self) -> ComposeResult:
        yield RegionView(id="regions")


async def test_decision_regions_fill_every_cell_and_keep_labels_off_the_data() -> None:
    """Every cell of the map is coloured by its class (pale), the training points are
    strong dots on top, the legend sits on its own line under the x axis and "x2" beside
    the y axis — none over the data.  (Before: plotext's legend covered the point (1, 8) of
    seed-toy and a 10-row legend hid digits' top-left corner; "x2" sat under the x axis.)"""
    from bntui.engine import Session, preset
    from bntui.engine.regions import decision_regions

    session = Session(preset("seed-softmax"))
    app = PlaneApp()
    async with app.run_test(size=(60, 24)) as pilot:
        view = app.query_one(RegionView)
        cols, rows = view.map_size
        regions = decision_regions(session.network, session.dataset, cols=cols, rows=rows)
        view.show_regions(regions, "decision regions", ["0", "1", "2", "3"])
        await pilot.pause()
        lines = view._lines
        map_lines = lines[1:1 + rows]
        axis_row = 1 + rows
        for r, strip in enumerate(map_lines):
            cells = [seg for seg in strip if seg.text in (" ", "●")]
            assert len(cells) == cols
            for c, seg in enumerate(cells):
                k = int(regions.classes[rows - 1 - r, c])
                if seg.text == " ":
                    assert seg.style.bgcolor == Style.parse(f"on {pale(k)}").bgcolor
        dots = [seg for strip in map_lines for seg in strip if seg.text == "●"]
        strong_colors = {Style.parse(strong(k)).color for k in range(4)}
        assert dots and all(seg.style.bold and seg.style.color in strong_colors
                            for seg in dots)
        # the point (1, 8) of seed-toy is drawn, not hidden under a legend
        r, c = view._cell_of(1.0, 8.0, cols, rows)
        cells = [seg for seg in map_lines[r] if seg.text in (" ", "●")]
        assert cells[c].text == "●"
        words = ["".join(seg.text for seg in strip) for strip in lines]
        legend_row = next(i for i, w in enumerate(words) if "● 0" in w)
        assert legend_row > axis_row  # under the axis, not on the map
        x2_row = next(i for i, w in enumerate(words) if "x2" in w)
        assert 1 <= x2_row < axis_row  # beside the y axis, above the x axis
        x1_row = next(i for i, w in enumerate(words) if "x1" in w)
        assert x1_row > axis_row


async def test_the_training_pane_asks_the_engine_for_a_map_of_its_size() -> None:
    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        view = app.query_one(RegionView)
        assert await until(lambda: app.snapshot.regions is not None
                           and app.snapshot.regions.classes.shape[::-1] == view.map_size)


# optimizer state -------------------------------------------------------------------------
async def test_optimizer_state_on_seed_digits_shows_entries_that_say_something() -> None:
    """Before: `1.W m: 0, 0, 0, 0 …` — the first entries belong to a pixel that is never
    lit.  Now each slot's rms and its largest entry, with where it is."""
    from dataclasses import replace

    from bntui.engine import preset

    app = BntuiApp(replace(preset("seed-digits"), steps=100))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("t")
        await idle_training(app, pilot)
        await pilot.press("5")
        state = text(app.query_one("#opt-state"))
        assert "t = 1 updates" in state
        line = next(w for w in state.splitlines() if w.startswith("1.W") and " m " in f" {w} ")
        assert "0, 0, 0, 0" not in state
        m = app.session.optimizer.inspect("1.W")["m"]
        i = np.unravel_index(np.argmax(np.abs(m)), m.shape)
        assert fmt(float(m[i])) in line and f"[{i[0]}, {i[1]}]" in line
        assert m.reshape(-1)[:4].tolist() == [0, 0, 0, 0]  # what used to be shown


# the tensor grid ---------------------------------------------------------------------------
class GridApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TensorGrid(id="grid")


def line_text(grid: TensorGrid, y: int) -> str:
    return "".join(seg.text for seg in grid.render_line(y))


async def test_the_tensor_grid_keeps_row_numbers_and_shows_whole_cells() -> None:
    """Scrolled sideways the row numbers stay; a partly visible cell is never drawn with
    cut digits (before: "75" for 0.1875); one key press moves one whole cell (before: one
    character)."""
    values = np.full((30, 20), 0.1875)
    values[:, 7] = -123.456
    app = GridApp()
    async with app.run_test(size=(47, 12)) as pilot:
        grid = app.query_one(TensorGrid)
        grid.set_tensor(values)
        grid.focus()
        await pilot.pause()
        for x in range(0, int(grid.max_scroll_x) + 1, 3):  # every few characters
            grid.scroll_to(x=x, animate=False)
            await pilot.pause()
            first = grid.first_column
            header = line_text(grid, 0)
            assert header[:LABEL].strip() == ""
            row = line_text(grid, 1)
            assert row[:LABEL].strip() == "0"  # the row number stays at the left
            cells = [row[LABEL + k * CELL: LABEL + (k + 1) * CELL].strip()
                     for k in range(grid.fit)]
            for k, cell in enumerate(cells):
                if first + k < values.shape[1]:
                    assert cell == fmt(values[0, first + k]), (x, k, cell)
        grid.scroll_to(x=0, animate=False)
        await pilot.pause()
        await pilot.press("right")
        assert grid.first_column == 1 and grid.scroll_x == CELL
        await pilot.press("right", "right")
        assert grid.first_column == 3
        await pilot.press("left")
        assert grid.first_column == 2
        await pilot.press("down")
        assert line_text(grid, 1)[:LABEL].strip() == "1"


# the stepper's header ----------------------------------------------------------------------
async def test_the_output_blocks_copy_step_is_not_called_an_activation() -> None:
    """Before: "backward · layer 1 · activation · dZbn" on the output block, which has no
    activation."""
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        step = app.trace.find("dZbn", 1, "backward")
        assert app.session.network.blocks[0].is_output
        app.index = step.index
        await pilot.pause()
        where = text(app.query_one("#where"))
        assert "dZbn" in where and "activation" not in where


async def test_a_shape_question_does_not_show_the_shape_in_the_header() -> None:
    """Exercise mode asking "what is the shape of Z?" under a header "Z (16×4)" gave the
    answer away (issue 10)."""
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        labels = app.session.inspection_batch()[1]
        network = app.session.network
        at = next(i for i in range(len(app.trace))
                  if (q := question_at(app.trace, network, labels, i)) is not None
                  and q.kind == "shape")
        await pilot.press("x")
        app.index = at
        await pilot.pause()
        step = app.trace.steps[at]
        q = app.query_one(StepperPane).question
        assert q is not None and q.kind == "shape"
        shape = "×".join(map(str, step.shape))
        where = text(app.query_one("#where"))
        assert step.name in where and shape not in where and "shape hidden" in where


async def test_a_shape_question_in_the_exercise_lab_does_not_show_the_shape() -> None:
    from bntui.ui.labs.exercise import ExerciseLab

    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        _, view = await open_lab(app, pilot, ExerciseLab, "exercise")
        view.query_one("#ex-kind", Select).value = "shape"
        assert await until(lambda: view.ready and view.question is not None
                           and view.question.kind == "shape", 30)
        await pilot.pause()
        q = view.question
        shown = " ".join(text(view.query_one(f"#{i}")) for i in ("ex-head", "ex-context",
                                                                  "ex-prompt"))
        own = "×".join(map(str, q.shape))
        inputs = [g.text() for g in q.givens]
        assert own not in shown or own in " ".join(inputs)


async def test_exercise_mode_in_eval_mode_asks_the_engine_and_says_what_it_says() -> None:
    """The stepper calls the engine whatever the mode, and shows the engine's refusal
    inline (no special case, no toast)."""
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("e", "x", "n", "n")
        box = text(app.query_one("#exercise"))
        stepper = app.query_one(StepperPane)
        assert stepper.question is not None or stepper._problem in box
        assert not [n for n in app._notifications if n.severity == "warning"]


# preset note, labs count -------------------------------------------------------------------
async def test_the_preset_note_is_whole() -> None:
    """Before: "… 297 v…: 64 → 32 …" — the description cut at 60 characters."""
    app = BntuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        app.query_one("#preset", Select).value = "seed-digits"
        app.query_one("#load-preset").press()
        assert await until(lambda: app.session.dataset.name == "digits", 30)
        await pilot.pause()
        note = text(app.query_one("ModelPane Note")).replace("\n", " ")
        assert " ".join(PRESETS["seed-digits"][0].split()) in " ".join(note.split())


def test_the_app_counts_its_labs_right() -> None:
    """The app said "eight labs"; the handouts are a command-line lab, so the app has
    seven — and now exports the walkthrough itself (ctrl+e)."""
    from bntui.ui.keys import KEYS
    from bntui.ui.labs import lab_views
    from bntui.ui.registry import pane_spec

    n = len(lab_views())
    words = {7: "seven", 8: "eight", 9: "nine", 10: "ten"}
    assert pane_spec("labs").about.startswith(f"{words[n]} labs")
    assert words[n + 1] not in pane_spec("labs").about
    assert any(k.action == "export" for k in KEYS)


async def test_the_race_lab_counts_updates_the_same_everywhere() -> None:
    """Before: a header "batch loss before update", a column "after step", a last row 199
    with t = 200.  Now the plot's last point, the ranking and t all name update 200."""
    from bntui.ui.labs.race import RaceLab, RacePlot

    app = BntuiApp(MOONS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        _, view = await open_lab(app, pilot, RaceLab, "race",
                                 before=lambda v: v.query_one("#race-steps").__setattr__(
                                     "value", "30"))
        result = view.result
        assert result.steps == 30
        assert view.query_one(RacePlot).plt.build()
        for r in result.racers:
            assert list(r.steps)[-1] == 30 and r.session.optimizer.t == 30
        legend = text(view.query_one("Legend"))
        assert "1 … 30" in legend
        assert "update 30" in text(view.query_one("#race-rank"))
        assert "t = 30 updates" in text(view.query_one("#race-state"))
        field = view.query_one("#race-steps")
        assert field.content_size.width >= len(field.value) + 1  # "200" fits, not "20"
        send_key(app, "1")
