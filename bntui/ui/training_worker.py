"""Training in a thread worker that reports by messages.

`train_run` trains the session in slices of about 0.1 s under the app's lock and posts a
`TrainProgress` after each slice with a snapshot of what the views on screen need.
Whatever ends the run — its steps done, a pause (the worker cancelled at any moment), a
loss that diverged, an exception in the engine — it posts exactly one `TrainEnded` with a
complete snapshot taken after the last step, so the status line, the training pane, the
stepper and the plots all end on the session's step.  How often the app redraws is the
app's business (a timer), not the step rate's.

What a run costs besides its steps does not grow with the data: the curves' points are
the engine's estimates on its evaluation sample, every `Session.eval_interval()` steps
(a grid of step numbers, so the curves never depend on the clock), and one more at the
step the run ends on; a decision-region map (the grid alone: the points are the
session's plane sample, projected once) at most every `REGIONS_EVERY` seconds.

When a run ends on an estimate (a big dataset), `exact_run` evaluates every row behind
it, on a copy of the network, so that the session is never held for it: it posts
`ExactDone` and the figures replace the estimate if the session is still at that step.
The next run, a reset or quitting stops it between two chunks of rows.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from textual.message import Message

from bntui.engine import evaluation
from bntui.engine.session import Session
from bntui.ui.state import CheckRecord, Snapshot, Wants, take_snapshot

SLICE = 0.1  # seconds of training between two progress reports
REGIONS_EVERY = 0.5  # seconds between two decision-region maps while training (the costly part)


class TrainProgress(Message):
    """A slice of training is done: `snapshot` is the session after it."""

    def __init__(self, run: int, snapshot: Snapshot) -> None:
        super().__init__()
        self.run = run
        self.snapshot = snapshot


class TrainEnded(Message):
    """The run is over (`reason`: "done", "paused", "stopped" by a diverging loss, or
    "failed" with `error`); `snapshot` is the session after its last step (None only if
    even that could not be taken)."""

    def __init__(self, run: int, session: Session, snapshot: Snapshot | None, reason: str,
                 error: str | None = None) -> None:
        super().__init__()
        self.run = run
        self.session = session
        self.snapshot = snapshot
        self.reason = reason
        self.error = error


@dataclass
class TrainJob:
    """What one run needs; the callables read the app's current state from the thread."""

    run: int
    session: Session
    steps: int | None  # None: until paused
    lock: threading.Lock
    wants: Callable[[], Wants]  # what the views on screen need now
    training_mode: Callable[[], bool]  # the stepper's pass: training or eval mode
    check: Callable[[], CheckRecord | None]
    post: Callable[[Message], object]
    stop: threading.Event = field(default_factory=threading.Event)  # set: pause


def train_run(job: TrainJob, shutdown: Callable[[], bool]) -> None:
    """Train until the steps are done, `job.stop` is set (a pause), `shutdown()` turns
    true (the app closes) or training stops by itself; post progress after each slice and
    one `TrainEnded` at the end, always.  (A pause sets an event rather than cancelling
    the Textual worker: a worker cancelled before its thread starts would never run, and
    never say that it ended.)"""

    def cancelled() -> bool:
        return job.stop.is_set() or shutdown()

    session, remaining = job.session, job.steps
    reason, error = "done", None
    previous: Snapshot | None = None
    regions_at = 0.0
    every = session.eval_interval()  # by step count: the curves never depend on timing
    try:
        while True:
            if cancelled():
                reason = "paused"
                break
            deadline = time.monotonic() + SLICE
            with job.lock:
                result = session.train(
                    steps=remaining if remaining is not None else 10**9,
                    should_stop=lambda d=deadline: cancelled() or time.monotonic() > d,
                    eval_every=every, exact_end=False,  # the end: an estimate, below
                )
                if remaining is not None:
                    remaining -= result.steps
                if result.stopped:
                    reason = "stopped"
                    break
                if remaining is not None and remaining <= 0:
                    break
                wants = job.wants()
                if wants.regions and time.monotonic() - regions_at < REGIONS_EVERY:
                    wants = replace(wants, regions=False)  # the last map is recent enough
                elif wants.regions:
                    regions_at = time.monotonic()
                previous = take_snapshot(session, job.training_mode(), wants, job.check(),
                                         previous)
            job.post(TrainProgress(job.run, previous))
    except Exception as exc:  # the engine failed: say so, and still end on its step
        reason, error = "failed", f"{type(exc).__name__}: {exc}"
    snapshot: Snapshot | None = None
    try:
        with job.lock:
            h = session.history
            if reason != "failed" and (not h.eval_step or h.eval_step[-1] != session.step_count):
                session.estimate()  # exact on a small set; on a sample of a big one
            snapshot = take_snapshot(session, job.training_mode(), job.wants().everything(),
                                     job.check())
    except Exception as exc:
        error = error or f"{type(exc).__name__}: {exc}"
        reason = "failed"
    job.post(TrainEnded(job.run, session, snapshot, reason, error))


class ExactDone(Message):
    """Every row of both splits evaluated with the network of `session` at `step`."""

    def __init__(self, session: Session, step: int, figures: evaluation.Figures) -> None:
        super().__init__()
        self.session = session
        self.step = step
        self.figures = figures


def exact_run(session: Session, lock: threading.Lock, stale: Callable[[], bool],
              post: Callable[[Message], object]) -> None:
    """Evaluate every row on a copy of the session's network taken under `lock`; post
    `ExactDone` unless `stale()` turned true first (asked between chunks of rows)."""
    with lock:
        step = session.step_count
        network = copy.deepcopy(session.network)
        splits = session.whole_splits()
    try:
        figures = evaluation.figures(network, splits, should_stop=stale)
    except evaluation.Interrupted:
        return
    post(ExactDone(session, step, figures))
