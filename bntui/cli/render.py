"""Plain-text rendering for the terminal: compact tensors, tables, a progress bar."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import numpy as np

from bntui.numbers import fmt


def compact(value: np.ndarray, rows: int = 6, cols: int = 8) -> str:
    """A small view of a tensor: the first rows and columns, with … where cut."""
    a = np.asarray(value)
    if a.ndim == 0:
        return fmt(float(a))
    if a.ndim == 1:
        a = a[None, :]
    r, c = a.shape
    show = a[:rows, :cols]
    cells = [[fmt(float(v)) for v in row] for row in show]
    width = max((len(s) for row in cells for s in row), default=1)
    lines = []
    for row in cells:
        line = " ".join(s.rjust(width) for s in row)
        if c > cols:
            line += " …"
        lines.append(line)
    if r > rows:
        lines.append("…".rjust(width) + f"   ({r - rows} more rows)")
    return "\n".join(lines)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out.append("  ".join("─" * w for w in widths))
    for r in rows:
        out.append("  ".join(s.ljust(w) for s, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(out)


class Progress:
    """A one-line progress bar on stderr, drawn only at a terminal, at most 10 times a second."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0 and self.stream.isatty()
        self._last = 0.0

    def update(self, done: int, loss: float | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done < self.total:
            return
        self._last = now
        width = 30
        filled = int(width * done / self.total)
        bar = "█" * filled + "░" * (width - filled)
        tail = f" loss {fmt(loss)}" if loss is not None else ""
        self.stream.write(f"\r{bar} {done}/{self.total}{tail}   ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()
