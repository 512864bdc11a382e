"""The app's panes, in tab order: the one registry that makes the tabs, their number keys,
the panes listed in the help screen and the command palette's "Show …" commands.

A new pane is one `PaneSpec` here (and its module); nothing else in the app lists panes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.widget import Widget

from bntui.ui.bn_pane import BNPane
from bntui.ui.check_pane import CheckPane
from bntui.ui.dataset_pane import DatasetPane
from bntui.ui.labs_pane import LabsPane
from bntui.ui.model_pane import ModelPane
from bntui.ui.optimizer_pane import OptimizerPane
from bntui.ui.stepper import StepperPane
from bntui.ui.training_pane import TrainingPane

WIDE = 100  # from this many columns the tabs carry their long titles


@dataclass(frozen=True)
class PaneSpec:
    """One pane: its tab id, key, titles and what it is for."""

    id: str
    key: str
    title: str  # the tab's label on a wide terminal
    short: str  # the tab's label below WIDE columns (all eight fit in 80)
    about: str  # one line, for the help screen and the command palette
    make: Callable[[], Widget]

    def label(self, width: int) -> str:
        """The tab's label for a terminal `width` columns wide."""
        return f"{self.key} {self.title if width >= WIDE else self.short}"


PANES: tuple[PaneSpec, ...] = (
    PaneSpec("stepper", "1", "Stepper", "Step",
             "one step of the forward and backward pass at a time", StepperPane),
    PaneSpec("training", "2", "Training", "Train",
             "train: loss, accuracy and the decision regions, live", TrainingPane),
    PaneSpec("dataset", "3", "Dataset", "Data",
             "the dataset, its size, noise and split, a preview", DatasetPane),
    PaneSpec("model", "4", "Model", "Model",
             "presets, the architecture, parameter counts", ModelPane),
    PaneSpec("optimizer", "5", "Optimizer", "Optim",
             "optimizer, learning rate, batch, BatchNorm conventions, state", OptimizerPane),
    PaneSpec("check", "6", "Grad check", "Check",
             "analytic vs numerical vs autograd gradients, per tensor", CheckPane),
    PaneSpec("bn", "7", "BN train/eval", "BN",
             "one batch through batch and through running statistics", BNPane),
    PaneSpec("labs", "8", "Labs", "Labs",
             "eight labs: bugs, BN or not, batch, health, race, exercise, h, norms",
             LabsPane),
)


def pane_spec(pane_id: str) -> PaneSpec:
    """The spec of the pane with this id (KeyError for an unknown one)."""
    for spec in PANES:
        if spec.id == pane_id:
            return spec
    raise KeyError(pane_id)
