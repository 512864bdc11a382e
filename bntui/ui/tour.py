"""The guided tour: a handful of stops in the stepper through one BatchNorm forward and
backward, each saying what to look at and why.

A stop names a step of the pass (tensor, phase, mode); the app moves the stepper there and
the `TourPanel` above the grid says what it shows.  Every number a stop quotes is read from
the trace the engine recorded — a step's value, or its `stats()` — never computed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.reactive import var
from textual.widgets import Static

from bntui.engine.network import Network
from bntui.engine.trace import Trace, TraceStep
from bntui.numbers import fmt
from bntui.ui.live import LiveView
from bntui.ui.state import Snapshot


def vector(value: np.ndarray, most: int = 6) -> str:
    """A recorded vector as text: its first `most` entries."""
    v = np.asarray(value).reshape(-1)
    shown = ", ".join(fmt(float(x)) for x in v[:most])
    return f"[{shown}{', …' if v.size > most else ''}]"


def _stats(step: TraceStep) -> dict[str, str]:
    return {k: fmt(v) for k, v in step.stats().items()}


@dataclass(frozen=True)
class Stop:
    """One stop: the step it shows and what to say there."""

    name: str
    phase: str
    training: bool  # the pass it is about (training mode, or eval mode)
    title: str
    say: Callable[[TraceStep, Trace, int], str]  # (step, its trace, steps trained) → words


def _z(step: TraceStep, trace: Trace, trained: int) -> str:
    s = _stats(step)
    return (f"Z = X @ W is the Dense layer's output: one row per sample, one column per "
            f"feature (the grid below). Each column has its own centre and spread (over the "
            f"whole tensor: mean {s['mean']}, std {s['std']}). BatchNorm puts every column "
            f"on the same footing, one feature at a time.")


def _mu(step: TraceStep, trace: Trace, trained: int) -> str:
    return (f"mu holds one number per feature: the mean of each column of Z over the "
            f"{trace.batch_size} samples of this batch. mu = {vector(step.value)}")


def _std(step: TraceStep, trace: Trace, trained: int) -> str:
    return (f"std is one spread per feature: {step.formula}, ε keeping it above 0. "
            f"Here std = {vector(step.value)}")


def _znorm(step: TraceStep, trace: Trace, trained: int) -> str:
    s = _stats(step)
    return (f"Read the grid column by column: every feature now has mean 0 and standard "
            f"deviation 1 over the batch, whatever Z's were. Over the whole tensor: mean "
            f"{s['mean']} (0 up to rounding), std {s['std']}.")


def _zbn(step: TraceStep, trace: Trace, trained: int) -> str:
    s = _stats(step)
    return (f"γ and β are learned, one per feature, so normalising costs the network "
            f"nothing: it can scale and shift each feature back if that helps. Here Zbn has "
            f"mean {s['mean']}, std {s['std']}.")


def _dmu(step: TraceStep, trace: Trace, trained: int) -> str:
    return (f"Backward now. mu was subtracted from every row, so its gradient collects minus "
            f"each column's sum of dZ0: dmu = {vector(step.value)}")


def _dz(step: TraceStep, trace: Trace, trained: int) -> str:
    s = _stats(step)
    return (f"dZ = dZ0 + dmu / m hands each row its share of dmu, and that makes every "
            f"column of dZ sum to 0: moving one feature of Z by the same amount for every "
            f"sample changes nothing after BatchNorm, so the gradient has no such part. Mean "
            f"of the whole tensor: {s['mean']} (0 up to rounding).")


def _eval(step: TraceStep, trace: Trace, trained: int) -> str:
    std = next((s for s in trace.steps if s.name == "std" and s.layer == step.layer), None)
    text = (f"Eval mode (key e): BatchNorm normalises with the running statistics it "
            f"averaged while training, not with the batch's. Here {step.formula} = "
            f"{vector(step.value)}")
    if std is not None:  # the record's formula: √(running_var + ε), or a running std kept
        text += f", {std.formula} = {vector(std.value)}"
    if trained == 0:
        text += (". Untrained, they still hold their start values: train a few steps "
                 "(t or space) and come back with w.")
    else:
        text += f", after {trained:,} training steps."
    return text + (" A sample's output no longer depends on its batch mates. "
                   "e switches back to the training pass.")


STOPS: tuple[Stop, ...] = (
    Stop("Z", "forward", True, "Z, before BatchNorm", _z),
    Stop("mu", "forward", True, "mu: one mean per feature", _mu),
    Stop("std", "forward", True, "std: one spread per feature", _std),
    Stop("Znorm", "forward", True, "Znorm: mean 0 and std 1 in every column", _znorm),
    Stop("Zbn", "forward", True, "Zbn: the layer gets its range back", _zbn),
    Stop("dmu", "backward", True, "dmu: the gradient through the mean", _dmu),
    Stop("dZ", "backward", True, "dZ: every column sums to 0", _dz),
    Stop("mu", "forward", False, "eval mode: the running statistics", _eval),
)


NEEDS_BN = ("the tour follows a BatchNorm layer and this network has none: add a BN block "
            "in the Model pane (4), or load the seed-softmax preset")


def tour_layer(network: Network) -> int | None:
    """The layer the tour looks at: the first block with BatchNorm (None: no BatchNorm)."""
    return next((b.index for b in network.blocks if b.bn is not None), None)


def stop_index(trace: Trace, stop: Stop, layer: int) -> int | None:
    """Where the stop's step is in `trace` (None if the pass has no such step)."""
    for s in trace.steps:
        if (s.name, s.layer, s.phase) == (stop.name, layer, stop.phase):
            return s.index
    return None


class TourPanel(LiveView, Static):
    """The current stop of the tour, above the stepper's grid (hidden with no tour)."""

    tour: var[int | None] = var(None, init=False)
    snapshot: var[Snapshot | None] = var(None, init=False)
    index: var[int] = var(0, init=False)

    def watch_tour(self) -> None:
        self.draw()

    def watch_snapshot(self) -> None:
        self.draw()

    def watch_index(self) -> None:
        self.draw()

    def draw(self) -> None:
        self.display = self.tour is not None
        snap = self.snapshot
        if self.tour is None or snap is None or snap.trace is None:
            return
        stop = STOPS[self.tour]
        trace = snap.trace
        t = Text()
        t.append(f"Tour {self.tour + 1}/{len(STOPS)} · ", style="bold cyan")
        t.append(stop.title + "\n", style="bold")
        layer = tour_layer(snap.session.network)
        at = None if layer is None else stop_index(trace, stop, layer)
        if layer is None:  # the network changed under the tour to one without BatchNorm
            t.append(NEEDS_BN + "; escape ends the tour", style="yellow")
        elif at is None or trace.training != stop.training:
            mode = "training" if stop.training else "eval"
            t.append(f"this stop is about the {mode}-mode pass (press w to go back to it)",
                     style="yellow")
        elif at != self.index:
            t.append(f"you stepped away from this stop ({stop.name}, step {at + 1}): "
                     "enter goes on, w comes back here", style="grey62")
        else:
            t.append(stop.say(trace.steps[at], trace, snap.step))
        t.append("\nenter: next stop · backspace: back · escape: end · n / b: step freely",
                 style="grey50")
        self.update(t)
