"""Quitting the app at once, even while a training step is inside a matrix product that
takes minutes.

Textual runs thread workers on the event loop's default executor, and asyncio's shutdown
waits for that executor's threads: quitting during a 10-second step took those 10
seconds.  `QuitFastExecutor` is a default executor whose shutdown does not wait (the
worker is only computing a step the learner has left), and `exit_now` is what the
command line calls once the app has closed: it ends the process at once when such a
thread is still running (nothing is lost: a step under way was never part of the
session, and saving is the learner's own action).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor


class QuitFastExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose shutdown never waits for a running task."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=True)


def busy_threads() -> list[threading.Thread]:
    """The threads still running besides the main one (a worker inside a step)."""
    main = threading.main_thread()
    return [t for t in threading.enumerate() if t is not main and t.is_alive()
            and not t.daemon]


def exit_now_if_busy(status: int) -> None:
    """End the process with `status` at once if a worker thread is still running (its
    step would otherwise hold the exit until it ends); else return."""
    if not busy_threads():
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)
