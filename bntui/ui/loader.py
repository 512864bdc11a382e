"""Building a session in a thread worker, so that no screen waits for the data.

`load_run` reads the dataset (a CSV file with its progress), builds the network and the
optimizer, and draws the samples the views read (the plots' plane sample and the
evaluation sample), so that everything that reads every row happens here and not on the
screen's thread.  It posts `LoadProgress` while it reads and exactly one `Loaded` at the
end: the session, or the one-line error that says why there is none — unless the load
was cancelled (a newer load replaced it, or the app is closing): then it stops at the
next progress report, without a word.  The app keeps the newest load only
(`Loaded.load`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from textual.message import Message
from textual.widget import Widget

from bntui.engine.config import RunConfig
from bntui.engine.csvfile import Stopped, count_lines
from bntui.engine.errors import BntuiError
from bntui.engine.session import Session, build_dataset


@dataclass(frozen=True)
class Loading:
    """A load under way, as the loading panel and the status line tell it."""

    load: int  # the load's number (the app's `load_id` when it was asked for)
    name: str  # the dataset's name, or the CSV file's name
    megabytes: float | None = None  # the CSV file's size
    lines: int = 0  # the CSV file's lines (0: not a file, or not counted yet)
    rows: int = 0  # rows read so far
    stage: str = "reading"  # "reading", then "building" (split, scale, network)

    @property
    def fraction(self) -> float | None:
        """How much is read (None when there is nothing to count)."""
        if not self.lines:
            return None
        return 1.0 if self.stage != "reading" else min(1.0, self.rows / self.lines)

    def text(self) -> str:
        """One line: what is loading and how far it is."""
        what = self.name
        if self.megabytes is not None:
            what += f" ({self.megabytes:,.1f} MB"
            what += f", {self.lines:,} lines)" if self.lines else ")"
        if self.stage != "reading":
            return f"loading {what}: read; splitting, scaling, building the network…"
        if self.rows:
            return f"loading {what}: {self.rows:,} rows read…"
        return f"loading {what}…"


class LoadProgress(Message):
    """How far a load is."""

    def __init__(self, loading: Loading) -> None:
        super().__init__()
        self.loading = loading


class Loaded(Message):
    """A load is over: `session` is the new session, or None and `error` says why."""

    def __init__(self, load: int, config: RunConfig, session: Session | None,
                 error: str | None, source: Widget | None, what: str) -> None:
        super().__init__()
        self.load = load
        self.config = config
        self.session = session
        self.error = error
        self.source = source  # the pane that asked (its note says the outcome), if one did
        self.what = what  # what the pane's note says on success


@dataclass
class LoadJob:
    """What one load needs."""

    load: int
    config: RunConfig
    post: Callable[[Message], object]
    source: Widget | None = None
    what: str = "applied"
    cancelled: Callable[[], bool] = lambda: False  # read in the loading thread


def first_loading(load: int, config: RunConfig) -> Loading:
    """What the panel says before anything is read (nothing is opened here)."""
    name = config.dataset
    return Loading(load, os.path.basename(name) if name.lower().endswith(".csv") else name)


def load_run(job: LoadJob) -> None:
    """Build the job's session in this thread; post progress and one `Loaded` (unless
    cancelled)."""
    cfg = job.config
    session: Session | None = None
    error: str | None = None
    try:
        loading = first_loading(job.load, cfg)
        path = cfg.dataset
        if path.lower().endswith(".csv") and os.path.isfile(path):
            loading = replace(loading, megabytes=os.path.getsize(path) / 1e6,
                              lines=count_lines(path))
            job.post(LoadProgress(loading))

        def progress(rows: int) -> None:
            if job.cancelled():
                raise Stopped
            job.post(LoadProgress(replace(loading, rows=rows)))

        dataset = build_dataset(cfg, progress)
        job.post(LoadProgress(replace(loading, rows=dataset.n_train + dataset.n_val,
                                      stage="building")))
        session = Session(cfg, dataset)
        session.plane_sample()  # the samples the views read: drawn here, not on screen
        session.eval_interval()
    except Stopped:
        return  # cancelled: no one is waiting for it
    except BntuiError as exc:
        error = str(exc)
    except MemoryError:
        error = f"{cfg.dataset} does not fit in memory"
    except Exception as exc:  # the engine failed: one line, never a traceback
        error = f"{type(exc).__name__}: {exc}"
    job.post(Loaded(job.load, cfg, session if error is None else None, error, job.source,
                    job.what))
