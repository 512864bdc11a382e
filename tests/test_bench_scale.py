"""The scale table of `python -m bntui.bench` runs end to end on its smallest size (the
figures themselves are measured, never asserted)."""

from __future__ import annotations

from bntui.bench import bench_scale


def test_the_scale_table_has_every_column() -> None:
    header, rule, row = bench_scale(1, (1_000,), app_seconds=0.5)
    assert header.count("|") == rule.count("|") == row.count("|") == 12
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "1,000"
    # "—": a measure this machine cannot take (the app's first screen without tmux)
    numbers = [c.replace(",", "").rstrip(" %") for c in cells[1:] if c not in ("0.00", "—")]
    assert len(numbers) >= 7 and all(float(c) > 0 for c in numbers)
