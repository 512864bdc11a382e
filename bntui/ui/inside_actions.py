"""The app's actions inside one step — the graph view (`v`), one entry's arithmetic
(`i`, shift+arrows, a click on the grid) and the derivation (`d`) — and `needs_session`,
which holds an action pressed before the first session is there until it is.

Their state is the app's reactives `graph_view` and `entry`, pushed down to the stepper
like the rest (`StepperPane.BINDS`); these actions only change it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import partial
from typing import Any

from bntui.engine.errors import BntuiError
from bntui.ui.tensor_grid import TensorGrid


def needs_session(action: Callable[..., None]) -> Callable[..., None]:
    """An action on the session: pressed before the first session is there (it loads in a
    worker), it waits for it and runs, in order with the others, once it is."""

    @functools.wraps(action)
    def run(self: Any, *args: Any) -> None:
        if self.session is None:
            self._waiting.append(partial(action, self, *args))
            return
        action(self, *args)

    return run


class InsideActions:
    """Mixed into the app: it has `session`, `trace`, `index`, `active_tab`, `exercise`,
    `graph_view`, `entry` and `push_screen`."""

    def _current_step(self) -> Any:
        trace = self.trace  # type: ignore[attr-defined]
        if trace is None or not trace.steps:
            return None
        return trace.steps[min(self.index, len(trace.steps) - 1)]  # type: ignore[attr-defined]

    @needs_session
    def action_toggle_graph(self) -> None:
        """The stepper's grid ↔ the block's computational graph."""
        self.active_tab = "stepper"  # type: ignore[attr-defined]
        self.graph_view = not self.graph_view  # type: ignore[has-type]

    @needs_session
    def action_inspect(self) -> None:
        """One entry's arithmetic on (its largest entry first), or off."""
        from bntui.ui.inside import pick_default

        self.active_tab = "stepper"  # type: ignore[attr-defined]
        step = self._current_step()
        if self.entry is not None or step is None:  # type: ignore[has-type]
            self.entry = None
            return
        self.graph_view = False
        self.entry = pick_default(step)

    @needs_session
    def action_move_entry(self, d_row: int, d_col: int) -> None:
        """Move the drill-down's entry by a row or a column (within the tensor)."""
        from bntui.ui.inside import clamp

        step = self._current_step()
        if self.entry is None or step is None:  # type: ignore[has-type]
            return
        cell = list(clamp(step, self.entry))  # type: ignore[has-type]
        if not cell:
            return
        if len(cell) == 1:
            cell[0] += d_col or d_row
        else:
            cell[0] += d_row
            cell[1] += d_col
        self.entry = clamp(step, tuple(cell))

    def on_tensor_grid_picked(self, event: TensorGrid.Picked) -> None:
        """A click on a cell of the stepper's grid: that entry's arithmetic."""
        step = self._current_step()
        if step is None or self.exercise:  # type: ignore[attr-defined]
            return
        self.entry = (event.col,) if len(step.shape) == 1 else (
            () if not step.shape else (event.row, event.col))

    @needs_session
    def action_derive(self) -> None:
        """The derivation of the current block's normalization (or the first one's)."""
        from bntui.engine import derive
        from bntui.ui.derive_screen import DeriveScreen

        session, step = self.session, self._current_step()  # type: ignore[attr-defined]
        network = session.network
        trace = self.trace  # type: ignore[attr-defined]
        try:
            if trace is None or not trace.training:
                trace = session.trace(training=True)
            layer = step.layer if step is not None else None
            if layer not in derive.derivable(network):
                layer = None
            d = derive.derive(network, trace, layer)
        except BntuiError as exc:
            self.notify(str(exc), severity="warning")  # type: ignore[attr-defined]
            return
        head = (f"layer {d.layer}: {network.blocks[d.layer - 1].norm.describe()} · "
                f"{trace.batch_size} samples (m = {trace.batch_size}), training mode")
        self.push_screen(DeriveScreen(d, head))  # type: ignore[attr-defined]
