"""Responsiveness of the app, measured (not asserted): run `python benchmarks/app_timing.py`.

1. Time from the command to the first screen: `bntui` started in tmux (a real terminal),
   the pane polled every 10 ms until the stepper's first line is drawn (median of 5).
2. Step key to redrawn screen on seed-digits: from the start of the `next step` action to
   the end of the next frame the app writes (`App._display`), over 30 presses; and the
   app's own timing of the stepper update alone (`last_redraw_ms`).
3. Redraws per second while training: the snapshots the views draw (the app's `snapshot`
   changing) during 3 s of play on seed-digits.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def first_screen(runs: int = 5) -> list[float]:
    exe = str(Path(sys.executable).with_name("bntui"))
    times = []
    for _ in range(runs):
        subprocess.run(["tmux", "kill-session", "-t", "bntui-bench"], capture_output=True)
        t0 = time.perf_counter()
        subprocess.run(["tmux", "new-session", "-d", "-s", "bntui-bench", "-x", "120", "-y",
                        "40", exe], check=True)
        while True:
            out = subprocess.run(["tmux", "capture-pane", "-p", "-t", "bntui-bench"],
                                 capture_output=True, text=True).stdout
            if "step 1/" in out:
                times.append(time.perf_counter() - t0)
                break
            if time.perf_counter() - t0 > 20:
                raise RuntimeError("the app did not draw its first screen in 20 s")
            time.sleep(0.01)
        subprocess.run(["tmux", "kill-session", "-t", "bntui-bench"], capture_output=True)
    return times


async def in_app() -> tuple[list[float], list[float], float]:
    from textual.app import App

    from bntui.engine import preset
    from bntui.ui.app import BntuiApp

    frames: list[float] = []
    original_display = App._display

    def display(self: App, screen: object, renderable: object) -> None:
        original_display(self, screen, renderable)  # type: ignore[arg-type]
        frames.append(time.perf_counter())

    App._display = display  # type: ignore[method-assign]
    app = BntuiApp(preset("seed-digits"))
    starts: list[float] = []
    original_next = app.action_next_step

    def next_step() -> None:
        starts.append(time.perf_counter())
        original_next()

    app.action_next_step = next_step  # type: ignore[method-assign]
    redraw, press = [], []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(1.0)
        for _ in range(30):
            await pilot.press("n")
            await pilot.pause(0.1)
            after = [f for f in frames if f > starts[-1]]
            if after:
                press.append((after[0] - starts[-1]) * 1000)
            redraw.append(app.last_redraw_ms)
        updates = 0

        def counting(_: object) -> None:
            nonlocal updates
            updates += 1

        app.watch(app, "snapshot", counting, init=False)  # each snapshot the views draw
        await pilot.press("space")
        await asyncio.sleep(3.0)
        await pilot.press("space")
        await pilot.pause(0.3)
    return redraw, press, updates / 3.0


def main() -> None:
    print("| measure | median | max |\n|---|---|---|")
    if shutil.which("tmux"):
        fs = first_screen()
        print(f"| command → first screen (tmux, 120×40) | {statistics.median(fs):.2f} s | "
              f"{max(fs):.2f} s |")
    redraw, press, rate = asyncio.run(in_app())
    print(f"| step key → next frame written (seed-digits) | {statistics.median(press):.1f} ms"
          f" | {max(press):.1f} ms |")
    print(f"| of which the stepper update (seed-digits) | "
          f"{statistics.median(redraw):.1f} ms | {max(redraw):.1f} ms |")
    print(f"| screen updates per second while training seed-digits | {rate:.1f} | |")


if __name__ == "__main__":
    main()
