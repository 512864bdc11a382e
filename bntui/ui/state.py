"""What the app shows of its session at one moment, as records the views read.

`Snapshot` is one consistent picture of the session, taken under the app's lock: the
step, a copy of the history, the stepper's trace, the decision regions, the BatchNorm
train-vs-eval comparison and the optimizer's state.  The status line, the stepper, the
training pane and the plots all draw from the same snapshot, so they always show the same
step.  `CheckRecord` is the last gradient check, with the session, step and mode it was
made at.  Every number in them comes from the engine (`Session`, `record_trace`,
`decision_regions`, `train_vs_eval` and `train_eval_gap`, `Optimizer.summary`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bntui.engine.batchnorm import train_eval_gap, train_vs_eval
from bntui.engine.gradcheck import GradcheckReport, attach_to_trace
from bntui.engine.optimizers import SlotSummary
from bntui.engine.regions import RegionMap, decision_regions
from bntui.engine.session import History, Session
from bntui.engine.trace import Trace


@dataclass(frozen=True, eq=False)
class CheckRecord:
    """The last gradient check: its report and what it was made on."""

    session: Session
    step: int
    training: bool
    report: GradcheckReport
    seconds: float

    def fits(self, session: Session | None, step: int, training: bool) -> bool:
        """Whether the check belongs to this session at this step, in this mode."""
        return session is self.session and step == self.step and training == self.training


@dataclass(frozen=True)
class Wants:
    """Which parts of a snapshot the views on screen need (the rest is carried over)."""

    trace: bool = True
    regions: bool = True
    bn: bool = True
    optimizer: bool = True
    size: tuple[int, int] = (48, 24)  # (columns, rows) of the decision-region map

    def everything(self) -> Wants:
        """Every part (at the end of a run, or when nothing trains)."""
        return Wants(size=self.size)


@dataclass(frozen=True)
class BNView:
    """One BatchNorm layer's batch through batch and through running statistics."""

    layer: int
    samples: int
    features: int
    eps: float
    batches: int  # batches the running statistics have seen
    out: dict[str, np.ndarray]  # `train_vs_eval`'s arrays, copied
    diff_max: float | None = None  # the largest and the mean |Zbn_diff|
    diff_mean: float | None = None


@dataclass(frozen=True)
class OptimizerView:
    """The optimizer's state after `t` updates: per parameter, its slots and scalars."""

    t: int
    slots: dict[str, list[SlotSummary]]
    scalars: dict[str, dict[str, float]]


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The session as every view shows it, at step `step`."""

    session: Session
    step: int
    history: History
    training: bool  # the mode of `trace`
    trace: Trace | None
    regions: RegionMap | None
    bn: tuple[BNView, ...] | None
    optimizer: OptimizerView | None
    stopped: str | None = None  # why training stopped by itself (a diverging loss)
    parts: dict[str, int] = field(default_factory=dict)  # part → the step it was taken at

    def with_trace(self, trace: Trace | None, training: bool) -> Snapshot:
        """The same snapshot with another trace (the mode switched, checks attached)."""
        parts = dict(self.parts)
        parts["trace"] = self.step
        return Snapshot(self.session, self.step, self.history, training, trace, self.regions,
                        self.bn, self.optimizer, self.stopped, parts)


def copy_history(h: History) -> History:
    return History(**{k: list(v) for k, v in h.__dict__.items()})


def _bn_views(session: Session) -> tuple[BNView, ...]:
    network = session.network
    X, _ = session.inspection_batch()
    views: list[BNView] = []
    with np.errstate(all="ignore"):
        network.forward(X, training=True, update_running=False)
        for block in network.blocks:
            if block.bn is None:
                continue
            Z = np.array(block.cache["Z"], copy=True)
            out = {k: np.array(v, copy=True) for k, v in train_vs_eval(block.bn, Z).items()}
            gap = train_eval_gap(out)
            views.append(BNView(block.index, Z.shape[0], Z.shape[1], float(block.bn.eps),
                                int(block.bn.num_batches_tracked), out,
                                None if gap is None else gap[0],
                                None if gap is None else gap[1]))
    return tuple(views)


def _optimizer_view(session: Session) -> OptimizerView:
    opt = session.optimizer
    slots: dict[str, list[SlotSummary]] = {}
    scalars: dict[str, dict[str, float]] = {}
    for key in session.network.params():
        slots[key], scalars[key] = opt.summary(key)
    return OptimizerView(int(opt.t), slots, scalars)


def regions_of(session: Session, size: tuple[int, int]) -> RegionMap | None:
    """The decision regions on a grid of `size` (columns, rows); None when the engine
    cannot draw them (a non-finite network)."""
    try:
        return decision_regions(session.network, session.plane_sample(), cols=size[0],
                                rows=size[1])
    except Exception:
        return None


def take_snapshot(session: Session, training: bool, wants: Wants,
                  check: CheckRecord | None = None,
                  previous: Snapshot | None = None) -> Snapshot:
    """A snapshot of `session` now (the caller holds the app's lock).  Parts not wanted
    are carried over from `previous` (same session), each with the step it was taken at."""
    step = session.step_count
    prev = previous if previous is not None and previous.session is session else None
    parts = dict(prev.parts) if prev is not None else {}

    def part(name: str, wanted: bool, make, old):  # type: ignore[no-untyped-def]
        if wanted:
            parts[name] = step
            return make()
        return old

    trace = part("trace", wants.trace or prev is None or prev.training != training,
                 lambda: session.trace(training), prev.trace if prev else None)
    if trace is not None and check is not None and check.fits(session, step, training) \
            and parts.get("trace") == step:
        attach_to_trace(trace, check.report)
    regions = part("regions", wants.regions, lambda: regions_of(session, wants.size),
                   prev.regions if prev else None)
    bn = part("bn", wants.bn, lambda: _bn_views(session), prev.bn if prev else None)
    optimizer = part("optimizer", wants.optimizer, lambda: _optimizer_view(session),
                     prev.optimizer if prev else None)
    return Snapshot(session, step, copy_history(session.history), training, trace, regions,
                    bn, optimizer, session.stopped, parts)
