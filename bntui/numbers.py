"""How numbers are written on screen, the same in the app and on the command line."""

from __future__ import annotations


def fmt(x: float) -> str:
    """A number in at most 9 characters: 4 significant digits, or 3 in exponent form."""
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:.4g}"
    return f"{x:.2e}".replace("e-0", "e-").replace("e+0", "e+")


def fmt_err(x: float | None) -> str:
    """A relative error, or a dash where there is none."""
    return "—" if x is None else f"{x:.2e}"


CHAOS_NOTE = ("≈ chaotic: the same run from weights nudged in their 14th digit moves this "
              "figure by more than 1e-5 — its digits are the CPU's rounding; another CPU "
              "prints another number of the same kind")


def fmt_run(x: float, chaotic: bool) -> str:
    """A figure of a training run: as `fmt`, or `≈` and two digits when the run is chaotic
    there (see bntui.engine.labs.chaos)."""
    if not chaotic or x != x or x in (float("inf"), float("-inf")):
        return fmt(x)
    return f"≈{x:.2g}"
