"""The lab screens of the app, one module each, listed in `LAB_VIEWS`.

A lab is a `LabView`: it sets `LAB_ID`, `TITLE` and `BLURB`, composes its own widgets and
implements `load(config)`, which the Labs pane calls with the app's current configuration
when the lab is shown and whenever that configuration changes.  Heavy work runs in a
thread worker that hands its results back with `self.app.call_from_thread`; an engine
error shows as an inline `Note`, never a traceback.
"""

from __future__ import annotations

from textual.containers import Vertical

from bntui.engine.config import RunConfig


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


def lab_views() -> list[type[LabView]]:
    """The lab screens in the order of the list (imported here to keep startup light)."""
    from bntui.ui.labs.batch_size import BatchSizeLab
    from bntui.ui.labs.bugs import BugsLab
    from bntui.ui.labs.exercise import ExerciseLab
    from bntui.ui.labs.health import HealthLab
    from bntui.ui.labs.hsweep import HSweepLab
    from bntui.ui.labs.race import RaceLab
    from bntui.ui.labs.with_without_bn import WithWithoutBNLab

    # in the order of the issue: bugs, BN or not, batch size, health, race, exercise, h
    views: list[type[LabView]] = [BugsLab, WithWithoutBNLab, BatchSizeLab, HealthLab, RaceLab,
                                  ExerciseLab, HSweepLab]
    return views
