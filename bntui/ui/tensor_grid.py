"""A colour-scaled, scrollable view of a 2-D tensor that draws only the visible lines.

Positive values shade red, negative blue, by |value| / max|tensor|; a 1,500 × 32 tensor
costs no more to show than a 4 × 4 one, because `render_line` formats only the rows and
columns on screen.  The row numbers stay at the left and the column numbers at the top
while the cells scroll; the grid scrolls by whole cells (a key press moves one cell) and
only whole cells are drawn, so no number is ever shown cut.

A cell can be picked (the drill-down's entry): `cursor` outlines it, and a click on a cell
posts `TensorGrid.Picked` with its row and column.
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.actions import SkipAction
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from bntui.numbers import fmt as fmt_cell

CELL = 10  # characters per cell
LABEL = 6  # characters for the row number


def _shade(v: float, scale: float) -> Style:
    if v != v or scale == 0:
        return Style(color="white", bgcolor="grey23")
    t = min(1.0, abs(v) / scale)
    base = 30
    hi = int(base + t * 170)
    if v >= 0:
        bg = f"rgb({hi},{base},{base + int(t * 10)})"
    else:
        bg = f"rgb({base},{base + int(t * 60)},{hi})"
    return Style(color="white" if t > 0.15 else "grey70", bgcolor=bg)


class TensorGrid(ScrollView, can_focus=True):
    """Shows one tensor; `set_tensor` swaps it in.

    The scrollable width counts the cells only: scroll_x is a number of characters into
    the cells, and the first column drawn is the first one that starts at or after it.
    """

    DEFAULT_CSS = """
    TensorGrid { height: 1fr; background: $surface; }
    """

    class Picked(Message):
        """A cell was clicked: its row and column in the tensor."""

        def __init__(self, row: int, col: int) -> None:
            super().__init__()
            self.row, self.col = row, col

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._a = np.zeros((0, 0))
        self._scale = 0.0
        self._header = Style(bold=True, color="grey70")
        self._cursor: tuple[int, int] | None = None
        self._vector = False  # a 1-D tensor drawn as one row

    @property
    def cursor(self) -> tuple[int, int] | None:
        return self._cursor

    def set_cursor(self, cell: tuple[int, ...] | None) -> None:
        """Outline the cell of the tensor's index `cell` (None: no cursor) and scroll it
        into view."""
        if cell is None or self._a.size == 0:
            self._cursor = None
        else:
            rc = (0, cell[0]) if self._vector else (cell[0], cell[-1]) if cell else (0, 0)
            self._cursor = (min(rc[0], self._a.shape[0] - 1), min(rc[1], self._a.shape[1] - 1))
            self._into_view()
            self.call_after_refresh(self._into_view)  # again once the layout has settled
        self.refresh()

    def _into_view(self) -> None:
        if self._cursor is None:
            return
        row, col = self._cursor
        if not self.first_column <= col < self.first_column + self.fit:
            self.scroll_to(x=min(col * CELL, self.max_scroll_x), animate=False)
        top = round(self.scroll_offset.y)
        visible = max(1, self.scrollable_content_region.height - 1)
        if not top <= row < top + visible:  # one row of context above, if there is room
            self.scroll_to(y=max(0, row - (1 if visible > 2 else 0)), animate=False)

    def on_click(self, event: events.Click) -> None:
        x, y = event.x, event.y
        if y < 1 or x < LABEL:
            return
        row = y - 1 + round(self.scroll_offset.y)
        col = self.first_column + (x - LABEL) // CELL
        rows, cols = self._a.shape
        if row < rows and col < cols:
            self.post_message(self.Picked(int(row), int(col)))

    @property
    def shape(self) -> tuple[int, int]:
        return self._a.shape  # type: ignore[return-value]

    def set_tensor(self, value: np.ndarray) -> None:
        a = np.asarray(value, dtype=np.float64)
        self._vector = a.ndim == 1
        if a.ndim == 0:
            a = a.reshape(1, 1)
        elif a.ndim == 1:
            a = a.reshape(1, -1)
        self._a = a
        finite = a[np.isfinite(a)]
        self._scale = float(np.max(np.abs(finite))) if finite.size else 0.0
        rows, cols = a.shape
        self.virtual_size = Size(LABEL + cols * CELL, rows + 1)
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    # whole cells ---------------------------------------------------------------------------
    @property
    def fit(self) -> int:
        """How many whole cells fit beside the row numbers."""
        return max(1, (self.size.width - LABEL) // CELL)

    @property
    def first_column(self) -> int:
        """The first column on screen: scrolling moves by whole cells."""
        cols = self._a.shape[1]
        first = -(-round(self.scroll_offset.x) // CELL)  # ceil: never a cell cut on the left
        return max(0, min(first, max(0, cols - self.fit)))

    def _scroll_cells(self, cells: int) -> None:
        if not self.allow_horizontal_scroll:
            raise SkipAction()  # nothing to scroll: the key goes on to the app
        target = (self.first_column + cells) * CELL
        self.scroll_to(x=max(0, min(target, self.max_scroll_x)), animate=False)

    def action_scroll_right(self) -> None:
        self._scroll_cells(1)

    def action_scroll_left(self) -> None:
        self._scroll_cells(-1)

    def action_page_right(self) -> None:
        self._scroll_cells(self.fit)

    def action_page_left(self) -> None:
        self._scroll_cells(-self.fit)

    # drawing -------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_y = self.scroll_offset.y
        width = self.size.width
        rows, cols = self._a.shape
        first = self.first_column
        last = min(cols, first + self.fit)
        if y == 0:  # the column numbers stay in place
            segs = [Segment(" " * LABEL, self._header)]
            segs += [Segment(f"{j:>{CELL - 1}} ", self._header) for j in range(first, last)]
        else:
            i = y - 1 + scroll_y
            if i >= rows:
                return Strip.blank(width)
            segs = [Segment(f"{i:>{LABEL - 1}} ", self._header)]  # the row number stays
            row = self._a[i]
            cur = self._cursor
            for j in range(first, last):
                v = float(row[j])
                style = _shade(v, self._scale)
                if cur is not None and cur == (i, j):
                    style = style + Style(reverse=True, bold=True, underline=True)
                segs.append(Segment(f"{fmt_cell(v):>{CELL - 1}} ", style))
        return Strip(segs).crop(0, width).extend_cell_length(width)
