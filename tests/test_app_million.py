"""A 1,000,000-row CSV in the app (issue 12), in a process of its own so that its peak
memory is its own: the first screen before the data, the data loaded, play, pause and
steps through the stepper's sampled batch while every row is evaluated behind the pause,
within a bound on memory.

Marked `slow` (about 30 s: most of it writing the 97 MB file); it runs in the normal
suite.  The figures themselves — how fast, how much memory exactly — are measured by
`python -m bntui.bench --scale-only`, not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bntui.bench import write_scale_csv

ROWS = 1_000_000
PEAK_MB = 1000  # "without exhausting memory": measured 324 MB here, 727 before issue 12

SCRIPT = """
import asyncio, json, sys, time
from bntui.engine import RunConfig
from bntui.ui.app import BntuiApp

async def main() -> dict:
    cfg = RunConfig(dataset=sys.argv[1], arch="64:relu,64:relu,C", batch_size=256)
    app = BntuiApp(cfg)
    out = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        out["first_screen_without_session"] = app.session is None
        while app.session is None:
            await pilot.pause(0.05)
        session = app.session
        await pilot.press("2")
        app.action_toggle_play()
        while session.step_count < 200:
            await pilot.pause(0.05)
        app.action_toggle_play()
        while app.playing or app.ended_run != app.run_id:
            await pilot.pause(0.05)
        out["estimate_first"] = app.evaluating and not session.history.eval_exact[-1]
        await pilot.press("1", "n", "n", "n")
        await pilot.pause(0.2)
        while app.evaluating:  # every row, behind the paused screen
            await pilot.pause(0.05)
        await pilot.pause(0.1)
        with open("/proc/self/status") as status:
            kib = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))
        h = session.history
        out.update(train_rows=session.dataset.n_train, steps=session.step_count,
                   index=app.index, batch=app.trace.batch_size,
                   points=len(app.snapshot.regions.labels),
                   last_eval=h.eval_step[-1], exact=h.eval_exact[-1], peak_mb=kib / 1024)
    return out

print(json.dumps(asyncio.run(main())))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM (Linux)")
def test_a_million_rows_load_play_pause_and_step_in_bounded_memory(tmp_path: Path) -> None:
    path = write_scale_csv(tmp_path / "million.csv", ROWS)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["first_screen_without_session"]  # the first screen came before the data
    assert out["train_rows"] == 800_000 and out["steps"] >= 200
    assert out["index"] == 3 and out["batch"] == 256  # the stepper's batch: 256 rows
    assert out["points"] == 2000  # the decision regions' points: the plane sample
    # the pause showed an estimate, then every row was evaluated behind it
    assert out["estimate_first"]
    assert out["last_eval"] == out["steps"] and out["exact"] is True
    assert out["peak_mb"] < PEAK_MB, out
