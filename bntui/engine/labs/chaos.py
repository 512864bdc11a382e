"""How much of a training run's figure is the CPU's rounding: the run again, nudged.

Full-batch gradient descent can be chaotic: on some problems a change in the 13th digit of
the initial weights moves the loss after a few hundred steps in its first digits, so those
digits are the rounding of the machine that ran it (another CPU, or another BLAS kernel,
rounds differently).  A lab measures this for each run it reports: it trains the run
again from weights nudged by `NUDGE` (relative) and compares; a figure that moves by more
than `CHAOTIC` (relative) is chaotic, and the views quote it as such (≈, two digits).
"""

from __future__ import annotations

import math

import numpy as np

from bntui.engine.session import Session

NUDGE = 1e-14  # relative nudge of the initial weights (about 100 roundings)
CHAOTIC = 1e-5  # a figure that moves more than this (relative) under the nudge


def nudge(session: Session) -> Session:
    """`session`, its parameters nudged by NUDGE (relative), before it trains."""
    session.network.flat.params *= 1.0 + NUDGE
    return session


def moved(a: float, b: float) -> float:
    """How far `b` is from `a`, relative (inf when one is finite and the other not)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return 0.0 if (a == b or (math.isnan(a) and math.isnan(b))) else math.inf
    if a == b:
        return 0.0
    return abs(b - a) / max(abs(a), abs(b))


def moves(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> list[float]:
    """`moved` entry by entry; entries one run has and the other not moved by inf."""
    out = [moved(float(x), float(y)) for x, y in zip(a, b, strict=False)]
    return out + [math.inf] * abs(len(a) - len(b))


def chaotic(move: float | None) -> bool:
    return move is not None and not move <= CHAOTIC
