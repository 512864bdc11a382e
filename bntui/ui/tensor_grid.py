"""A colour-scaled, scrollable view of a 2-D tensor that draws only the visible lines.

Positive values shade red, negative blue, by |value| / max|tensor|; a 1,500 × 32 tensor
costs no more to show than a 4 × 4 one, because `render_line` formats only the rows and
columns on screen.
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
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
    """Shows one tensor; `set_tensor` swaps it in."""

    DEFAULT_CSS = """
    TensorGrid { height: 1fr; background: $surface; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._a = np.zeros((0, 0))
        self._scale = 0.0
        self._header = Style(bold=True, color="grey70")

    @property
    def shape(self) -> tuple[int, int]:
        return self._a.shape  # type: ignore[return-value]

    def set_tensor(self, value: np.ndarray) -> None:
        a = np.asarray(value, dtype=np.float64)
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

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        rows, cols = self._a.shape
        first = max(0, (scroll_x - LABEL) // CELL)
        last = min(cols, (scroll_x + width) // CELL + 1)
        if y == 0:  # the column header stays in place
            segs = [Segment(" " * LABEL, self._header)]
            segs.append(Segment(" " * (first * CELL)))
            segs += [Segment(f"{j:>{CELL - 1}} ", self._header) for j in range(first, last)]
        else:
            i = y - 1 + scroll_y
            if i >= rows:
                return Strip.blank(width)
            segs = [Segment(f"{i:>{LABEL - 1}} ", self._header)]
            segs.append(Segment(" " * (first * CELL)))
            row = self._a[i]
            for j in range(first, last):
                v = float(row[j])
                segs.append(Segment(f"{fmt_cell(v):>{CELL - 1}} ", _shade(v, self._scale)))
        strip = Strip(segs)
        return strip.crop(scroll_x, scroll_x + width).extend_cell_length(width)
