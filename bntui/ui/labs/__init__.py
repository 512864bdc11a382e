"""The lab screens of the app, one module each, listed in `LAB_VIEWS`.

A lab is a `LabView`: it sets `LAB_ID`, `TITLE` and `BLURB`, composes its own widgets and
implements `load(config)`, which the Labs pane calls with the app's current configuration
when the lab is shown and whenever that configuration changes.  Heavy work runs through
`LabView.in_thread`, which hands the result back on the UI thread, or one line when the
engine refuses (shown in an inline `Note`), never a traceback.  A lab with fields of its
own and a Run button is a `FieldsLab`: the checking as one types, the run, the stale-run
guard and the failure line are written there once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on
from textual.containers import Vertical
from textual.widgets import Button, Input, Static
from textual.worker import get_current_worker

from bntui.engine.config import RunConfig
from bntui.engine.errors import BntuiError


class LabView(Vertical):
    """Base class of a lab screen."""

    LAB_ID = ""
    TITLE = ""
    BLURB = ""

    DEFAULT_CSS = """
    LabView { padding: 0 1; height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        # True once the results for the last `load` (or the lab's own run button) are on
        # screen; tests and scripts/screenshots.py wait for it.
        self.ready = False

    def load(self, config: RunConfig) -> None:
        """Show the lab for `config` (the app's dataset, architecture and optimizer)."""
        raise NotImplementedError

    def read_fields(self) -> Any:
        """The lab's own fields, parsed (a BntuiError names what is wrong); labs with
        fields implement it."""
        raise NotImplementedError

    def fields_or_note(self) -> Any:
        """`read_fields()`, clearing the lab's Note; None once the Note says what is wrong
        (nothing else changes: the results on screen stay)."""
        from bntui.ui.form import Note

        try:
            fields = self.read_fields()
        except BntuiError as exc:
            self.query_one(Note).error(str(exc))
            return None
        self.query_one(Note).clear()
        return fields

    def in_thread(self, compute: Callable[[], Any], done: Callable[[Any], None],
                  failed: Callable[[str], None]) -> None:
        """Run `compute` in this lab's thread worker (a newer run cancels an older one) and
        hand its result to `done` on the UI thread; if it raises, hand `failed` one line —
        the engine's message, or the error's name for a bug — never a traceback.  A
        cancelled run hands back nothing.  `compute` may stream partial results itself with
        `self.app.call_from_thread`, checking `get_current_worker().is_cancelled`."""

        def body() -> None:
            worker = get_current_worker()
            try:
                result = compute()
            except BntuiError as exc:
                message = str(exc)
            except Exception as exc:  # a bug: say so in the lab, keep the app running
                message = f"internal error: {type(exc).__name__}: {exc}"
            else:
                if not worker.is_cancelled:
                    self.app.call_from_thread(done, result)
                return
            if not worker.is_cancelled:
                self.app.call_from_thread(failed, message)

        self.run_worker(body, thread=True, exclusive=True, group=f"lab-{self.LAB_ID}",
                        exit_on_error=False)


def titled(widget: Input, title: str) -> Input:
    """An input whose label sits in its top border (rows stay narrow enough for 80 columns)."""
    widget.border_title = title
    return widget


def lab_views() -> list[type[LabView]]:
    """The lab screens in the order of the list (imported here to keep startup light)."""
    from bntui.ui.labs.batch_size import BatchSizeLab
    from bntui.ui.labs.bugs import BugsLab
    from bntui.ui.labs.exercise import ExerciseLab
    from bntui.ui.labs.health import HealthLab
    from bntui.ui.labs.hsweep import HSweepLab
    from bntui.ui.labs.norms import NormsLab
    from bntui.ui.labs.race import RaceLab
    from bntui.ui.labs.with_without_bn import WithWithoutBNLab

    # in the order of the issues: bugs, BN or not, batch size, health, race, exercise, h,
    # which normalization
    views: list[type[LabView]] = [BugsLab, WithWithoutBNLab, BatchSizeLab, HealthLab, RaceLab,
                                  ExerciseLab, HSweepLab, NormsLab]
    return views


class FieldsLab(LabView):
    """A lab with fields of its own and a Run button (class "run").  Each change is checked
    as it is typed (`fields_or_note`); Enter or the button runs `compute(fields)` in the
    lab's worker and hands what it returns to `done`; `running(fields)` says in the
    summary Static (`SUMMARY`, an id) what runs, and a failure is one line in the Note."""

    SUMMARY = ""

    def __init__(self) -> None:
        super().__init__()
        self._asked: Any = None  # the fields of the last run started

    def running(self, fields: Any) -> str:
        raise NotImplementedError

    def compute(self, fields: Any) -> Any:
        """In the worker: the lab's results (it may stream parts with call_from_thread)."""
        raise NotImplementedError

    def done(self, result: Any) -> None:
        """On the UI thread, once `compute` returned."""
        self.ready = True

    @on(Input.Changed)
    def _check(self) -> None:
        self.fields_or_note()

    @on(Input.Submitted)
    @on(Button.Pressed, ".run")
    def _run_pressed(self) -> None:
        self.run_lab()

    def run_lab(self, only_if_changed: bool = False) -> None:
        """Run on the fields (`only_if_changed`: not when their results are on screen)."""
        fields = self.fields_or_note()
        if fields is None:
            self.ready = True
            return
        if only_if_changed and self._asked == fields and self.ready:
            return
        self._asked = fields
        self.ready = False
        self.query_one(f"#{self.SUMMARY}", Static).update(
            Text(self.running(fields), style="grey50"))
        self.in_thread(lambda: self.compute(fields), self.done, self._fail)

    def _fail(self, message: str) -> None:
        from bntui.ui.form import Note

        self.query_one(Note).error(message)
        self.query_one(f"#{self.SUMMARY}", Static).update("")
        self.ready = True
