"""Driving a lab in the app from a Pilot test: open the Labs pane, show one lab, wait for
its results (`LabView.ready`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

V = TypeVar("V")


async def wait_until(condition: Callable[[], Any], timeout: float = 60.0,
                     what: str = "the lab never finished") -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, what
        await asyncio.sleep(0.02)


async def open_lab(app: Any, pilot: Any, view_type: type[V], lab_id: str,
                   before: Callable[[V], None] | None = None) -> tuple[Any, V]:
    """Press 8, show lab `lab_id` (a `view_type`), wait until its results are on screen.
    `before(view)` runs before the lab is shown (to set its fields for a short run)."""
    from bntui.ui.labs_pane import LabsPane

    await pilot.press("8")
    await wait_until(lambda: app.query(LabsPane) and app.query_one(LabsPane).config is not None,
                     what="the Labs pane never opened")
    pane = app.query_one(LabsPane)
    view = app.query_one(view_type)
    if before is not None:
        before(view)
    pane.show_lab(lab_id)
    await wait_until(lambda: pane.current is view and view.ready,  # type: ignore[attr-defined]
                     what=f"the {lab_id} lab never became ready")
    return pane, view
