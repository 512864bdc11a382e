"""The app as a learner runs it, timed from outside: `python -m bntui.bench_app --csv FILE`.

The app is started by its command in tmux (a real terminal, 120 × 40, its own tmux
server), and read back from the screen the way a learner sees it:

* **first screen**: seconds from the command to the first frame (the header's title and
  the tabs drawn; the footer's keys come a frame or more later);
* **ready**: seconds until the stepper shows its first step (the data loaded);
* **steps/s while playing**: `2` (the training tab: curves and decision regions drawn),
  `space`, `seconds` of play, `space`; the steps are read from the status line once the
  pause has settled;
* **peak MB**: the app's own high-water mark of resident memory (VmHWM, Linux), read after
  the play, the pause and a few steps through the stepper's batch.

`bntui.bench`'s scale table runs this for every size; without tmux it says so and the
table falls back to the app in Textual's headless Pilot (no first screen, no peak).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SOCKET = "bntui-bench"  # a tmux server of its own: no one else's sessions are touched
SESSION = "bntui-bench-app"
ARGS = ("--arch", "64:relu,64:relu,C", "--batch-size", "256")
STATUS = re.compile(r"\s*step ([\d,]+) · (\S+)")
FIRST = "bntui — batch normalization"  # the header's title: in the first frame


@dataclass
class AppRun:
    first: float  # command → first frame, s
    ready: float  # command → the stepper's first step, s
    rate: float  # steps/s while playing on the training tab
    peak_mb: float | None  # VmHWM after play, pause and stepping (None off Linux)


def has_tmux() -> bool:
    return shutil.which("tmux") is not None


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, *args], capture_output=True,
                          text=True).stdout


def _screen() -> str:
    return _tmux("capture-pane", "-p", "-t", SESSION)


def _status() -> tuple[int, str] | None:
    for line in reversed(_screen().splitlines()):
        match = STATUS.match(line)
        if match:
            return int(match.group(1).replace(",", "")), match.group(2)
    return None


def _wait(condition, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    while not condition():
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"the app did not {what} in {timeout:.0f} s:\n{_screen()}")
        time.sleep(0.01)
    return time.perf_counter() - t0


SETTLED = 2.5  # seconds the status line must stand still (an older app, pausing on a
# big set, said "paused" seconds before its last step was drawn)


def _settled_step() -> int:
    """The status line's step once it says "paused" and stops moving."""
    last, since = -1, time.perf_counter()
    while True:
        status = _status()
        if status is not None and status[1].startswith("paused"):
            if status[0] != last:
                last, since = status[0], time.perf_counter()
            elif time.perf_counter() - since > SETTLED:
                return last
        time.sleep(0.05)


def _peak_mb(pid: str) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return None
    return kib / 1024


def app_in_terminal(csv: str | os.PathLike[str], seconds: float = 5.0,
                    root: str | None = None, timeout: float = 120.0) -> AppRun:
    """Run the app on `csv` (see the module's docstring); `root`: the checkout whose
    `bntui` runs (its PYTHONPATH), by default the one this module is in."""
    root = root or str(Path(__file__).resolve().parent.parent)
    command = " ".join(shlex.quote(a) for a in (
        "env", f"PYTHONPATH={root}", sys.executable, "-m", "bntui", "--dataset", str(csv),
        *ARGS))
    _tmux("kill-session", "-t", SESSION)
    t0 = time.perf_counter()
    subprocess.run(["tmux", "-L", SOCKET, "new-session", "-d", "-s", SESSION, "-x", "120",
                    "-y", "40", f"cd {shlex.quote(root)} && exec {command}"], check=True)
    try:
        pid = _tmux("display-message", "-p", "-t", SESSION, "#{pane_pid}").strip()
        _wait(lambda: FIRST in _screen(), timeout, "draw its first screen")
        first = time.perf_counter() - t0
        _wait(lambda: "step 1/" in _screen(), timeout, "show its first step")
        ready = time.perf_counter() - t0
        _tmux("send-keys", "-t", SESSION, "2")
        time.sleep(1.0)
        start = _settled_step()
        _tmux("send-keys", "-t", SESSION, "Space")
        t1 = time.perf_counter()
        time.sleep(seconds)
        _tmux("send-keys", "-t", SESSION, "Space")
        played = time.perf_counter() - t1
        rate = (_settled_step() - start) / played
        _tmux("send-keys", "-t", SESSION, "1")
        for _ in range(5):
            time.sleep(0.2)
            _tmux("send-keys", "-t", SESSION, "n")
        _wait(lambda: "step 6/" in _screen(), timeout, "step through its batch")
        return AppRun(first, ready, rate, _peak_mb(pid))
    finally:
        _tmux("kill-session", "-t", SESSION)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bntui.bench_app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", required=True, help="the dataset (a CSV file)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of play")
    parser.add_argument("--runs", type=int, default=1, help="runs, one line each")
    parser.add_argument("--root", help="the checkout to run (default: this one)")
    args = parser.parse_args(argv)
    if not has_tmux():
        raise SystemExit("tmux is not installed")
    for _ in range(args.runs):
        run = app_in_terminal(args.csv, args.seconds, args.root)
        peak = "—" if run.peak_mb is None else f"{run.peak_mb:.0f}"
        print(f"first screen {run.first:.2f} s · ready {run.ready:.2f} s · "
              f"{run.rate:,.1f} steps/s while playing · peak {peak} MB", flush=True)


if __name__ == "__main__":
    main()
