"""The bug zoo in the app, driven through Textual's Pilot: the Labs pane shows the lab, the
check table shows the engine's verdicts (red FAIL exactly where the engine fails), and
picking another bug reruns it."""

from __future__ import annotations

from app_helpers import text, until
from textual.widgets import DataTable, Select

from bntui.engine import RunConfig
from bntui.engine.labs import bugs as zoo
from bntui.ui.app import BntuiApp
from bntui.ui.labs.bugs import BugLossPlot, BugsLab
from bntui.ui.labs_pane import LabsPane

SIZE = (120, 40)


def verdicts(lab: BugsLab) -> set[tuple[int, str]]:
    table = lab.query_one("#bug-table", DataTable)
    out = set()
    for r in range(table.row_count):
        layer, tensor, _, _, verdict = table.get_row_at(r)
        if str(verdict) == "FAIL":
            out.add((int(layer), str(tensor)))
    return out


async def test_bug_zoo_lab_shows_the_engines_verdicts() -> None:
    app = BntuiApp(RunConfig(dataset="moons", arch="8:tanh,6:relu,C", seed=2))
    async with app.run_test(size=SIZE) as pilot:
        assert await until(lambda: app.session is not None, 60)
        await pilot.press("8")
        assert await until(lambda: app.query(LabsPane), 60)
        pane = app.query_one(LabsPane)
        pane.show_lab("bugs")
        lab = app.query_one(BugsLab)
        assert await until(lambda: pane.current is lab and lab.ready, 60)
        first = zoo.BUG_IDS[0]
        assert lab.report is not None and lab.report.bug.id == first
        assert lab.report.config.seed == 2  # the app's seed, the bug's own scenario
        expected = zoo.run_bug(first, zoo.scenario_config(first, seed=2)).check.failed
        assert verdicts(lab) == expected and expected
        assert lab.query_one(BugLossPlot).plt is not None
        # pick another bug: the lab reruns and the table follows
        lab.ready = False
        lab.query_one("#bug-pick", Select).value = "dbeta-sum-zbn"
        assert await until(lambda: lab.ready and lab.report.bug.id == "dbeta-sum-zbn", 60)
        assert verdicts(lab) == {(1, "dbeta"), (2, "dbeta")}
        assert "dβ = Σᵢ Zbn" in str(lab.query_one("#bug-formula").render())
        await pilot.pause()


async def test_the_status_line_says_which_bug_the_network_has() -> None:
    """`bntui --bug BUG_ID` opens the app on the bug's network: the status line says so,
    and the network is the bug's (its parts are not the engine's own)."""
    from dataclasses import replace

    from bntui.engine.config import preset

    app = BntuiApp(replace(preset("seed-softmax"), bug="eps-outside-sqrt"), start_panel=False)
    async with app.run_test(size=(80, 24)) as pilot:  # seen on the smallest screen too
        assert await until(lambda: app.session is not None, 60)
        await pilot.pause(0.1)
        assert "with the bug eps-outside-sqrt" in text(app.query_one("#status"))
        assert app.session.config.bug == "eps-outside-sqrt"
        assert app.session.network.parts.batchnorm is zoo.EpsOutsideBN
    plain = BntuiApp(preset("seed-softmax"), start_panel=False)
    async with plain.run_test(size=SIZE) as pilot:
        assert await until(lambda: plain.session is not None, 60)
        await pilot.pause(0.1)
        assert "bug" not in text(plain.query_one("#status"))
