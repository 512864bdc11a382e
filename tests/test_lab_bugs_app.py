"""The bug zoo in the app, driven through Textual's Pilot: the Labs pane shows the lab, the
check table shows the engine's verdicts (red FAIL exactly where the engine fails), and
picking another bug reruns it."""

from __future__ import annotations

from app_helpers import until
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
