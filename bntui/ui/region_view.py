"""Points in a plane, drawn cell by cell: the decision regions as filled colour regions with
the training points on top (as TensorFlow Playground draws them), and the dataset preview.

Every character cell of the map is one cell of the engine's `RegionMap` (the app asks the
engine for a map of the widget's size), painted in a pale version of its class colour; the
training points are strong dots over it.  The axis names sit beside their axes, the
legend on its own line under the map: nothing covers the data.  The points of a big
dataset are the engine's sample of it, and the legend says so ("2,000 of 80,000 rows").
"""

from __future__ import annotations

from functools import cache

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from bntui.engine.regions import RegionMap
from bntui.numbers import fmt

# RGB, so classes keep distinct colours whatever the terminal theme does to named ones
CLASS_COLORS: list[tuple[int, int, int]] = [
    (235, 87, 87), (86, 156, 250), (250, 196, 60), (110, 205, 110), (196, 120, 235),
    (70, 215, 215), (245, 140, 60), (230, 230, 230), (150, 150, 150), (250, 120, 190),
]
AXIS = 7  # columns for the y axis's tick labels
BASE = (28, 30, 36)  # the map's background, under the pale class colours
PALE = 0.38  # how much of the class colour a region cell gets


def class_color(k: int) -> tuple[int, int, int]:
    return CLASS_COLORS[k % len(CLASS_COLORS)]


def _rgb(c: tuple[int, int, int]) -> str:
    return f"rgb({c[0]},{c[1]},{c[2]})"


def pale(k: int) -> str:
    """The region colour of class `k`: its colour mixed into the map's background."""
    c = class_color(k)
    return _rgb(tuple(int(BASE[i] + PALE * (c[i] - BASE[i])) for i in range(3)))  # type: ignore[arg-type]


def strong(k: int) -> str:
    return _rgb(class_color(k))


@cache
def _region_style(k: int | None) -> Style:
    """A map cell with no point: class `k`'s pale colour (None: no map, a grey dot)."""
    return Style(color="grey23") if k is None else Style(bgcolor=pale(k))


@cache
def _dot_style(k: int, under: int | None) -> Style:
    """A point of class `k` over a cell of class `under` (None: no map)."""
    return Style(color=strong(k), bgcolor=None if under is None else pale(under), bold=True)


def _short(n: int) -> str:
    """12,345 → 12k, 1,000,000 → 1M (for a tight legend)."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.3g}M"
    return f"{n / 1000:.3g}k" if n >= 1000 else str(n)


def sample_words(shown: int, total: int, room: int) -> str:
    """"2,000 of 80,000 rows shown", or shorter when `room` columns are fewer."""
    for said in (f"{shown:,} of {total:,} rows shown", f"{shown:,} of {total:,} rows",
                 f"{_short(shown)} of {_short(total)} rows", f"{_short(shown)}/{_short(total)}"):
        if len(said) <= room:
            return said
    return said


class PlaneView(Widget):
    """Points (and optionally a class map) in a 2-D plane, with axes and a legend."""

    DEFAULT_CSS = """
    PlaneView { height: 1fr; min-height: 8; }
    """

    class Resized(Message):
        """The map area changed size: (columns, rows) of the grid it can show."""

        def __init__(self, view: PlaneView, size: tuple[int, int]) -> None:
            super().__init__()
            self.view = view
            self.size = size

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.heading = ""
        self.axis_names = ("x1", "x2")
        self.points = np.zeros((0, 2))
        self.labels = np.zeros(0, dtype=int)
        self.names: list[str] = []
        self.class_map: np.ndarray | None = None  # (rows, cols) class of each map cell
        self.total = 0  # rows the points are a sample of (0: they are every row)
        self.extent = (0.0, 1.0, 0.0, 1.0)  # x0, x1, y0, y1
        self._lines: list[Strip] = []
        self._area = (0, 0)

    # what to draw -----------------------------------------------------------------------
    def show_regions(self, regions: RegionMap, title: str, names: list[str]) -> None:
        """The engine's map and the training points on top of it."""
        self.class_map = np.asarray(regions.classes)
        self.extent = (float(regions.xs[0]), float(regions.xs[-1]), float(regions.ys[0]),
                       float(regions.ys[-1]))
        self.total = regions.total
        self._set(regions.points, regions.labels, regions.plane.labels, title, names)

    def show_points(self, points: np.ndarray, labels: np.ndarray, axis_names: tuple[str, str],
                    title: str, names: list[str], total: int = 0) -> None:
        """Points alone (the dataset preview), in a frame 10 % wider than they are;
        `total`: the rows they are a sample of."""
        self.class_map = None
        self.total = total
        P = np.asarray(points, dtype=np.float64)
        if len(P):
            lo, hi = P.min(axis=0), P.max(axis=0)
            pad = np.where(hi - lo > 0, hi - lo, 1.0) * 0.1
            self.extent = (float(lo[0] - pad[0]), float(hi[0] + pad[0]),
                           float(lo[1] - pad[1]), float(hi[1] + pad[1]))
        self._set(P, labels, axis_names, title, names)

    def _set(self, points: np.ndarray, labels: np.ndarray, axis_names: tuple[str, str],
             title: str, names: list[str]) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        self.labels = np.asarray(labels, dtype=int)
        self.axis_names = (str(axis_names[0]), str(axis_names[1]))
        self.heading, self.names = title, names
        self._build()
        self.refresh()

    # layout -----------------------------------------------------------------------------
    @property
    def map_size(self) -> tuple[int, int]:
        """(columns, rows) of the map area at the widget's current size."""
        w, h = self.size
        return max(1, w - AXIS - 1), max(1, h - 4)

    def on_resize(self) -> None:
        self._build()
        if self.map_size != self._area:
            self._area = self.map_size
            self.post_message(self.Resized(self, self._area))

    def _cells(self, P: np.ndarray, cols: int,
               rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Map row and column of each point of `P` (N, 2), and which fall on the map."""
        x0, x1, y0, y1 = self.extent
        if x1 == x0 or y1 == y0:
            empty = np.zeros(len(P), dtype=int)
            return empty, empty, np.zeros(len(P), dtype=bool)
        with np.errstate(all="ignore"):
            c = np.rint((P[:, 0] - x0) / (x1 - x0) * (cols - 1))
            r = rows - 1 - np.rint((P[:, 1] - y0) / (y1 - y0) * (rows - 1))
        keep = np.isfinite(c) & np.isfinite(r) & (c >= 0) & (c < cols) & (r >= 0) & (r < rows)
        return np.where(keep, r, 0).astype(int), np.where(keep, c, 0).astype(int), keep

    def _cell_of(self, x: float, y: float, cols: int, rows: int) -> tuple[int, int] | None:
        r, c, keep = self._cells(np.array([[x, y]], dtype=np.float64), cols, rows)
        return (int(r[0]), int(c[0])) if keep[0] else None

    def _dots(self, cols: int, rows: int) -> dict[tuple[int, int], int]:
        """(row, column) of the map → the class of the last point drawn in that cell."""
        r, c, keep = self._cells(self.points, cols, rows)
        cells = zip(r[keep].tolist(), c[keep].tolist(), strict=True)
        return dict(zip(cells, self.labels[keep].tolist(), strict=True))

    def _build(self) -> None:
        """Lay the whole picture out as strips, one per line."""
        w, h = self.size
        if w < AXIS + 4 or h < 5:
            self._lines = [Strip.blank(w) for _ in range(h)]
            return
        cols, rows = self.map_size
        muted = Style(color="grey62")
        lines: list[Strip] = [Strip([Segment(self.heading[: w], Style(bold=True))])]
        # the map: each cell the pale colour of its class, the points strong on top
        bg: list[list[int | None]] = [[None] * cols for _ in range(rows)]
        if self.class_map is not None and self.class_map.size:
            gr, gc = self.class_map.shape
            src_r = gr - 1 - np.minimum(gr - 1, np.arange(rows) * gr // rows)
            src_c = np.minimum(gc - 1, np.arange(cols) * gc // cols)
            bg = self.class_map[src_r][:, src_c].astype(int).tolist()
        dots = self._dots(cols, rows)
        x0, x1, y0, y1 = self.extent
        for r in range(rows):
            tick = fmt(y1) if r == 0 else fmt(y0) if r == rows - 1 else ""
            if r == 1:
                tick = self.axis_names[1][:AXIS - 1]
            segs = [Segment(f"{tick:>{AXIS - 1}} ", muted if r != 1 else Style(bold=True)),
                    Segment("│", muted)]
            row = bg[r]
            for c in range(cols):
                back = row[c]
                k = dots.get((r, c))
                if k is not None:
                    segs.append(Segment("●", _dot_style(k, back)))
                else:
                    segs.append(Segment("·" if back is None else " ", _region_style(back)))
            lines.append(Strip(segs))
        left, right = fmt(x0), fmt(x1)
        axis = " " * AXIS + "└" + "─" * cols
        lines.append(Strip([Segment(axis[: w], muted)]))
        name = self.axis_names[0]
        gap = max(1, cols - len(left) - len(right) - len(name))
        ticks = (f"{left}{' ' * (gap // 2)}{name}{' ' * (gap - gap // 2)}{right}")
        lines.append(Strip([Segment(" " * (AXIS + 1) + ticks[: w - AXIS - 1], muted)]))
        legend = [Segment(" " * (AXIS + 1))]
        for k in np.unique(self.labels).tolist():
            label = self.names[k] if k < len(self.names) else str(k)
            legend += [Segment("●", Style(color=strong(k), bold=True)),
                       Segment(f" {label[:12]}  ", muted)]
        if self.total > len(self.labels):  # a sample: say of how many, as fits
            room = w - sum(len(seg.text) for seg in legend)
            said = sample_words(len(self.labels), self.total, room)
            legend.append(Segment(said, muted))
        lines.append(Strip(legend).crop(0, w))
        self._lines = lines[:h]

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(8, container.height)

    def render_line(self, y: int) -> Strip:
        if y < len(self._lines):
            return self._lines[y].extend_cell_length(self.size.width)
        return Strip.blank(self.size.width)
