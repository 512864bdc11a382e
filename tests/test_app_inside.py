"""The stepper inside one step, in the app: the graph view (v), one entry's arithmetic
(i, shift+arrows, a click), the derivation screen (d), the compact dZ beside the staged
one, and the gradient source in the optimizer pane."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from app_helpers import send_key, settle
from app_helpers import text as text_of
from textual.widgets import Select, Static

from bntui.engine import RunConfig
from bntui.engine.entry import explain
from bntui.ui.app import BntuiApp
from bntui.ui.derive_screen import DeriveScreen
from bntui.ui.tensor_grid import TensorGrid

CONFIG = replace(RunConfig(), arch="8:ln:tanh,6:relu,C", samples=60)


def _text(app: BntuiApp, selector: str) -> str:
    return text_of(app.query_one(selector, Static))


async def test_the_graph_follows_the_stepper() -> None:
    app = BntuiApp(CONFIG)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("n", "n", "n", "v")
        await pilot.pause(0.2)
        graph = app.query_one("#graph-box")
        assert graph.display and not app.query_one(TensorGrid).display
        step = app.trace.steps[app.index]  # type: ignore[union-attr]
        assert step.name == "Z0"
        assert "▶ Z0" in _text(app, "#graph") and "• mu" in _text(app, "#graph")
        await pilot.press("n")  # var: reads Z0
        await pilot.pause(0.1)
        assert "▶ var" in _text(app, "#graph") and "• Z0" in _text(app, "#graph")
        await pilot.press("v")
        await pilot.pause(0.1)
        assert not graph.display and app.query_one(TensorGrid).display


async def test_an_entry_is_explained_and_moves() -> None:
    app = BntuiApp(CONFIG)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        trace = app.trace
        assert trace is not None
        app.index = trace.index_of("dZ0", 1)
        await pilot.press("i")
        await pilot.pause(0.2)
        step = trace.steps[app.index]
        big = np.unravel_index(np.argmax(np.abs(step.value)), step.shape)
        assert app.entry == tuple(int(k) for k in big)
        shown = _text(app, "#entry")
        y = app.session.inspection_batch()[1]  # type: ignore[union-attr]
        e = explain(trace, app.session.network, y, step, app.entry)  # type: ignore[union-attr,arg-type]
        assert e.indexed in shown and "relative difference" in shown
        assert app.query_one(TensorGrid).cursor == app.entry
        start = app.entry
        await pilot.press("shift+down", "shift+right")
        await pilot.pause(0.1)
        assert app.entry == (min(start[0] + 1, step.shape[0] - 1),  # type: ignore[index]
                             min(start[1] + 1, step.shape[1] - 1))  # type: ignore[index]
        grid = app.query_one(TensorGrid)
        grid.post_message(TensorGrid.Picked(2, 3))
        await pilot.pause(0.1)
        assert app.entry == (2, 3) and "dZ0[2, 3]" in _text(app, "#entry")
        await pilot.press("n")  # the next step keeps an entry inside its own shape
        await pilot.pause(0.1)
        nxt = trace.steps[app.index]
        assert nxt.name == "dmu" and nxt.shape[1] == 1  # LayerNorm's: one per sample
        assert "dmu[2, 0]" in _text(app, "#entry")
        await pilot.press("i")
        await pilot.pause(0.1)
        assert app.entry is None and not app.query_one("#entry-box").display


async def test_the_compact_dz_beside_the_staged_and_the_derivation() -> None:
    app = BntuiApp(CONFIG)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.index = app.trace.index_of("dZ", 1)  # type: ignore[union-attr]
        await pilot.pause(0.2)
        line = _text(app, "#compact")
        assert line.startswith("compact  dZ = (1/std) · (dZnorm − (1/D) Σⱼ dZnorm")
        assert "differs from this staged dZ by at most" in line
        await pilot.press("d")
        await pilot.pause(0.3)
        assert isinstance(app.screen, DeriveScreen)
        d = app.screen.derivation
        assert d.kind == "layernorm" and d.worst < 1e-12
        shown = text_of(app.screen.query_one("#derive-text", Static))
        assert "[5] compact" in shown and "LayerNorm(8, eps=1e-05)" in shown
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, DeriveScreen)
        app.index = app.trace.index_of("dZ", 2)  # type: ignore[union-attr]
        await pilot.press("d")
        await pilot.pause(0.3)
        assert app.screen.derivation.kind == "batchnorm"  # type: ignore[attr-defined]


async def test_inside_views_keep_out_of_exercise_mode() -> None:
    app = BntuiApp(CONFIG)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("n", "n", "n", "v", "x")
        await pilot.pause(0.2)
        assert not app.query_one("#graph-box").display  # the graph would show values
        await pilot.press("escape", "i")
        await pilot.pause(0.2)
        assert not app.query_one("#entry-box").display


async def test_keys_before_the_session_do_not_crash() -> None:
    app = BntuiApp(CONFIG)
    async with app.run_test(size=(80, 24)) as pilot:
        for key in ("v", "i", "shift+right", "d", "v"):
            send_key(app, key)
        await settle(app, pilot)
        await pilot.pause(0.3)
        assert app.is_running


async def test_the_gradient_source_is_chosen_in_the_optimizer_pane() -> None:
    app = BntuiApp(CONFIG)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        await pilot.pause(0.2)
        app.query_one("#gradients", Select).value = "numerical"
        await pilot.pause(0.1)
        await pilot.click("#opt-apply")
        await pilot.pause(0.5)
        assert app.session.config.gradients == "numerical"  # type: ignore[union-attr]
        await pilot.press("1", "t")
        await pilot.pause(1.0)
        assert app.session.step_count == 1  # type: ignore[union-attr]
