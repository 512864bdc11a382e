"""The app with LayerNorm, GroupNorm and RMSNorm (issue 14): the stepper walks an
LN/GN/RMS network step by step with the engine's kinds, names and formulas and names each
normalization layer by its own `describe()`; the model pane chooses a normalization per
block, in sync with the architecture text both ways, and says inline — in `parse_arch`'s
words — when GroupNorm's groups do not divide the width; the BatchNorm pane and the tour
say in one line what a network without BatchNorm lacks; the help screen takes a longer
glossary; keys pressed before the panes are mounted do not crash.

Every assertion is made on the engine-backed state (`app.session`, `app.trace`) and on
what the widgets show.
"""

from __future__ import annotations

import asyncio

import pytest
from app_helpers import chrome_problems, send_key, settle, text, until
from textual.pilot import Pilot
from textual.widgets import Button, Input, Select

from bntui.engine import RunConfig
from bntui.engine.arch import parse_arch
from bntui.engine.errors import BntuiError
from bntui.engine.glossary import rows as glossary_rows
from bntui.engine.groupnorm import GroupNorm
from bntui.engine.layernorm import LayerNorm
from bntui.engine.rmsnorm import RMSNorm
from bntui.ui import help_screen
from bntui.ui.app import BntuiApp
from bntui.ui.bn_pane import BNPane
from bntui.ui.form import Note
from bntui.ui.help_screen import HelpScreen
from bntui.ui.model_pane import BlockRow, ModelPane
from bntui.ui.tensor_grid import TensorGrid
from bntui.ui.tour import NEEDS_BN, TourPanel

SIZE = (120, 40)
NORMS = "16:ln:tanh,8:gn=4:relu,C:rms"
ALL_LN = "8:ln:tanh,6:ln:relu,C:ln"
BN = "8:tanh,6:relu,C"


def config(arch: str) -> RunConfig:
    return RunConfig(dataset="moons", arch=arch)


def note(app: BntuiApp) -> str:
    return text(app.query_one(ModelPane).query_one(Note))


def rows(app: BntuiApp) -> list[BlockRow]:
    return list(app.query(BlockRow))


def row_norm(row: BlockRow) -> str:
    return str(row.query_one(".norm", Select).value)


async def rows_are(app: BntuiApp, norms: list[str]) -> bool:
    """Wait until the model pane's rows show these normalizations."""
    return await until(lambda: [row_norm(r) for r in rows(app)] == norms)


async def press(app: BntuiApp, pilot: Pilot, button: str) -> str:
    """Press a model-pane button and wait for the outcome in its note."""
    app.query_one(ModelPane).query_one(Note).clear()
    app.query_one(button, Button).press()
    assert await until(lambda: note(app) != ""), f"no outcome after {button}"
    await pilot.pause()
    return note(app)


def kinds(app: BntuiApp) -> list[str | None]:
    return [None if b.norm is None else b.norm.kind for b in app.session.network.blocks]


# the stepper -----------------------------------------------------------------------------
async def test_stepping_through_an_ln_gn_rms_network_shows_the_engines_steps() -> None:
    """n through every step and b back: each step's kind, name, formula and tensor are the
    trace's, and a normalization step's grid is titled with its layer's `describe()`."""
    app = BntuiApp(config(NORMS), start_panel=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        trace, network = app.trace, app.session.network
        assert {s.kind for s in trace.steps} >= {"layernorm", "groupnorm", "rmsnorm"}
        shown = text(app.query_one("#map"))
        assert "Dense·LN·tanh" in shown and "Dense·GN·relu" in shown and "Dense·RMS" in shown
        grid = app.query_one("#grid", TensorGrid)

        def check(i: int) -> None:
            step = trace.steps[i]
            assert app.index == i
            where = text(app.query_one("#where"))
            assert f"step {i + 1}/{len(trace)}" in where
            assert f"· {step.kind} · {step.name} " in where, (i, where)
            assert text(app.query_one("#formula")) == step.formula
            assert grid.shape == (step.value.reshape(1, -1) if step.value.ndim < 2
                                  else step.value).shape
            block = next((b for b in network.blocks if b.index == step.layer), None)
            if block is not None and block.norm is not None and step.kind == block.norm.kind:
                assert grid.border_title == f"layer {block.index}: {block.norm.describe()}"
            else:
                assert not grid.border_title
            assert grid.border_subtitle.startswith(f"{step.name}: ")

        n = len(trace)
        for i in range(n):  # (keys sent without waiting for an idle screen: 120 steps)
            check(i)
            send_key(app, "n")
            assert await until(lambda i=i: app.index == min(i + 1, n - 1))
        for i in reversed(range(n)):
            check(i)
            send_key(app, "b")
            assert await until(lambda i=i: app.index == max(i - 1, 0))
        assert app.trace is trace  # nothing rebuilt the pass while stepping


async def test_per_sample_statistics_are_a_column_per_sample() -> None:
    """LayerNorm's mu is m × 1 and GroupNorm's m × G: the grid has a row per sample and
    the subtitle gives the record's shape rule."""
    app = BntuiApp(config(NORMS), start_panel=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        grid = app.query_one("#grid", TensorGrid)
        m = app.trace.batch_size
        for layer, shape, rule in ((1, (m, 1), "mu: m × 1"), (2, (m, 4), "mu: m × G")):
            app.index = app.trace.index_of("mu", layer)
            await pilot.pause()
            assert grid.shape == shape and grid.border_subtitle == rule
        app.index = app.trace.index_of("rms", 3)
        await pilot.pause()
        assert grid.shape == (m, 1) and grid.border_title.startswith("layer 3: RMSNorm(")


async def test_no_batch_statistics_without_batchnorm() -> None:
    """Without a BatchNorm the stepper does not speak of batch statistics, and eval mode
    (e) says it computes the same numbers."""
    app = BntuiApp(config(NORMS), start_panel=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        where = text(app.query_one("#where"))
        assert "training mode" in where and "batch statistics" not in where
        await pilot.press("e")
        assert await until(lambda: not app.trace.training)
        assert "no BatchNorm: the same numbers as training mode" in text(app.query_one("#errors"))
        assert app.trace.steps[app.trace.index_of("mu", 1)].formula == "mu = (1/D) Σⱼ Z"


# the model pane --------------------------------------------------------------------------
async def test_a_blocks_normalization_changes_in_the_model_pane() -> None:
    """A row's menu rewrites the text at once and Apply blocks builds the network: BN →
    LN, → GN (with groups offered that divide the width), → RMS, → none."""
    app = BntuiApp(config(BN), start_panel=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        assert await rows_are(app, ["bn", "bn", "bn"])
        arch = app.query_one("#arch", Input)
        groups = rows(app)[1].query_one(".groups", Input)
        assert groups.disabled  # GroupNorm's field only

        rows(app)[0].query_one(".norm", Select).value = "ln"
        assert await until(lambda: arch.value == "8:ln:tanh,6:relu,C")
        assert app.session.config.arch == BN  # not applied yet
        assert (await press(app, pilot, "#apply-blocks")).startswith("✓")
        assert kinds(app) == ["layernorm", "batchnorm", "batchnorm"]
        assert await rows_are(app, ["ln", "bn", "bn"])

        rows(app)[1].query_one(".norm", Select).value = "gn"
        assert await until(lambda: arch.value == "8:ln:tanh,6:gn=2:relu,C")
        groups = rows(app)[1].query_one(".groups", Input)
        assert not groups.disabled and groups.value == "2"
        groups.value = "3"
        assert await until(lambda: arch.value == "8:ln:tanh,6:gn=3:relu,C")
        rows(app)[2].query_one(".norm", Select).value = "rms"
        assert await until(lambda: arch.value == "8:ln:tanh,6:gn=3:relu,C:rms")
        await press(app, pilot, "#apply-blocks")
        net = app.session.network
        assert kinds(app) == ["layernorm", "groupnorm", "rmsnorm"]
        assert isinstance(net.blocks[1].norm, GroupNorm) and net.blocks[1].norm.num_groups == 3
        assert app.session.config.arch == "8:ln:tanh,6:gn=3:relu,C:rms"

        rows(app)[0].query_one(".norm", Select).value = "none"
        assert await until(lambda: arch.value == "8:nobn:tanh,6:gn=3:relu,C:rms")
        await press(app, pilot, "#apply-blocks")
        assert kinds(app) == [None, "groupnorm", "rmsnorm"]
        assert app.session.network.blocks[0].bn is None


async def test_the_text_shows_in_the_rows() -> None:
    """Typing an architecture and Apply: the rows show each block's normalization."""
    app = BntuiApp(config(BN), start_panel=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        app.query_one("#arch", Input).value = "16:ln:tanh,C"
        assert (await press(app, pilot, "#apply-arch")).startswith("✓")
        assert kinds(app) == ["layernorm", "batchnorm"]
        assert await rows_are(app, ["ln", "bn"])
        app.query_one("#arch", Input).value = NORMS
        await press(app, pilot, "#apply-arch")
        assert kinds(app) == ["layernorm", "groupnorm", "rmsnorm"]
        assert await rows_are(app, ["ln", "gn", "rms"])
        assert rows(app)[1].query_one(".groups", Input).value == "4"
        assert [r.query_one(".groups", Input).disabled for r in rows(app)] == [True, False, True]
        await pilot.pause(0.2)
        assert app.query_one("#arch", Input).value == NORMS  # the rows mounting kept it
        assert note(app).startswith("✓")  # … and the outcome of the Apply


async def test_groups_that_do_not_divide_the_width_are_one_inline_line() -> None:
    """In a row or in the text: parse_arch's own line, the text (from a row) and the
    session as they were."""
    app = BntuiApp(config(NORMS), start_panel=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        assert await rows_are(app, ["ln", "gn", "rms"])
        session, arch = app.session, app.query_one("#arch", Input)
        groups = rows(app)[1].query_one(".groups", Input)
        groups.value = "3"
        with pytest.raises(BntuiError) as refused:
            parse_arch("16:ln:tanh,8:gn=3:relu,C:rms")
        assert await until(lambda: note(app) == f"✗ {refused.value}")
        assert "3 groups do not divide the width 8" in note(app)
        assert arch.value == NORMS  # the text keeps the last architecture the rows made
        assert (await press(app, pilot, "#apply-blocks")) == f"✗ {refused.value}"
        assert app.session is session and kinds(app) == ["layernorm", "groupnorm", "rmsnorm"]
        for bad in ("", "x", "0"):
            groups.value = bad
            assert await until(lambda: note(app).startswith("✗ groups of block 2"))
        groups.value = "8"  # fixed: the line goes, the text follows
        assert await until(lambda: note(app) == "")
        assert arch.value == "16:ln:tanh,8:gn=8:relu,C:rms"

        arch.value = "16:ln:tanh,8:gn=3:relu,C:rms"
        assert (await press(app, pilot, "#apply-arch")) == f"✗ {refused.value}"
        assert app.session is session
        assert rows(app)[1].query_one(".groups", Input).value == "8"  # what the learner had
        arch.value = "16:ln:tanh,8:gn=4:relu,C:gn=3"  # C is 2 here: the engine refuses it
        assert "nothing was changed" in await press(app, pilot, "#apply-arch")
        assert app.session is session


# the BatchNorm pane and the tour ----------------------------------------------------------
async def test_the_bn_pane_on_a_network_without_batchnorm() -> None:
    app = BntuiApp(config(ALL_LN), start_panel=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("7")
        pane = app.query_one(BNPane)
        stats = pane.query_one("#bn-stats")
        assert await until(lambda: "no BatchNorm layer" in text(stats))
        shown = " ".join(text(stats).split())
        assert shown.startswith("no BatchNorm layer in this network: LayerNorm keeps no "
                                "running statistics and has no train/eval gap"), shown
        assert not pane.query_one("#bn-bar").display and not pane.query_one(TensorGrid).display
        assert not chrome_problems(app)

        await pilot.press("4")
        app.query_one("#arch", Input).value = "8:gn=2:tanh,6:relu,C:rms"  # one BN block
        await press(app, pilot, "#apply-arch")
        await pilot.press("7")
        assert await until(lambda: "layer 2 ·" in text(stats))
        assert pane.query_one("#bn-bar").display and pane.query_one(TensorGrid).display
        assert pane.query_one("#bn-layer", Select).value == 2

        await pilot.press("4")
        app.query_one("#arch", Input).value = "8:gn=2:tanh,6:rms:relu,C:nobn"
        await press(app, pilot, "#apply-arch")
        await pilot.press("7")
        assert await until(lambda: "GroupNorm and RMSNorm keep no running" in text(stats))


async def test_the_tour_on_a_network_without_batchnorm() -> None:
    """w says in one line that the tour needs a BatchNorm block; a tour under way when the
    network loses its BatchNorm says so in its panel, and its keys still work."""
    app = BntuiApp(config(BN), start_panel=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("w")
        assert app.tour == 0
        await pilot.press("enter")
        assert app.tour == 1
        await pilot.press("4")
        app.query_one("#arch", Input).value = ALL_LN
        await press(app, pilot, "#apply-arch")
        await pilot.press("1")
        panel = app.query_one(TourPanel)
        assert await until(lambda: NEEDS_BN in text(panel))
        await pilot.press("enter", "backspace", "n", "w")  # w: the line, no tour stop
        assert any(n.message == NEEDS_BN for n in app._notifications)
        await pilot.press("escape")
        assert app.tour is None
        app.clear_notifications()
        await pilot.press("w")
        assert app.tour is None and any(n.message == NEEDS_BN for n in app._notifications)


# help ------------------------------------------------------------------------------------
def longer_glossary() -> list[tuple[str, str, str]]:
    """The glossary with every LayerNorm, GroupNorm and RMSNorm record besides, named the
    long way (what a glossary of every kind may look like)."""
    from bntui.engine.nodes import forward_nodes

    out = list(glossary_rows())
    for cls in (LayerNorm, GroupNorm, RMSNorm):
        for node, words in forward_nodes(cls.NODES, ("train",)):
            out.append((f"{node.name} ({cls.title})", node.meaning, words.formula))
    return out


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_the_help_screen_takes_a_longer_glossary(size: tuple[int, int],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rows_ = longer_glossary()
    monkeypatch.setattr(help_screen.glossary, "rows", lambda: rows_)
    app = BntuiApp(config(NORMS), start_panel=False)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        assert await until(lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("g")
        await pilot.pause(0.1)
        gl = app.screen.query_one("#help-glossary")
        shown = text(gl)
        for name, _, _ in rows_:
            assert name in shown, name
        assert gl.region.right <= size[0]
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


# keys at once -----------------------------------------------------------------------------
async def test_keys_before_the_panes_mount_on_a_norm_network() -> None:
    """Every pane key, the stepper's and the tour's keys, straight after start on an
    LN/GN/RMS network: no crash, and the views agree at the end."""
    app = BntuiApp(config(NORMS))
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(10):
            for key in ("4", "n", "7", "w", "enter", "e", "b", "1", "]", "[", "escape"):
                send_key(app, key)
            await asyncio.sleep(0.02)
        await settle(app, pilot)
        await pilot.press("escape", "1")
        await pilot.pause(0.2)
        assert app.is_running and app._exception is None
        assert app.tour is None  # w on a network without BatchNorm starts no tour
        assert app.trace is not None and 0 <= app.index < len(app.trace)
        assert kinds(app) == ["layernorm", "groupnorm", "rmsnorm"]
        step = app.trace.steps[app.index]
        assert f"· {step.kind} · {step.name} " in text(app.query_one("#where"))


@pytest.mark.parametrize(("arch", "says"), [
    (ALL_LN, "LayerNorm keeps no running statistics and has no train/eval gap"),
    (NORMS, "LayerNorm, GroupNorm and RMSNorm keep no running statistics and have no"),
    ("8:nobn:tanh,C:nobn", "(no normalization at all)"),
])
def test_the_line_names_the_normalizations_the_network_has(arch: str, says: str) -> None:
    from bntui.engine import Session
    from bntui.ui.bn_pane import no_batchnorm_line

    line = no_batchnorm_line(Session(config(arch)).network)
    assert line.startswith("no BatchNorm layer in this network") and says in line
    assert "Model pane, 4" in line and "\n" not in line
