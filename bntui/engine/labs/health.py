"""Layer health: what each layer's numbers look like after some training.

For a trained `Session` this runs one forward pass over the whole training set (training
mode, running statistics left alone) and reports, block by block:

  * histograms (bin edges and counts) of `Z`, the normalization's output (`Zbn`, `Zln`,
    `Zgn` or `Zrms`, when the block has one) and `A`;
  * saturation of sigmoid and tanh units.  An activation value is *saturated* when it
    sits where the curve is flat: sigmoid `A < 0.01` or `A > 0.99`, tanh `|A| > 0.99`
    (the local slope is then below 1 % of its peak for sigmoid, 2 % for tanh).  The
    report gives the share of saturated values, and the *stuck* units: those saturated
    on at least 99 % of the samples, whose gradient is nearly gone for the whole set;
  * dead ReLUs: units whose pre-activation (`Zbn` …, or `Z` without a normalization) is ≤ 0 for
    every sample, so `A` and the gradient through them are 0 everywhere;
  * the update-to-data ratio of each parameter, `‖ΔW‖ / ‖W‖` for one more optimizer
    step (on a copy of the session).  CS231n's rule of thumb: about 1e-3; far above,
    the learning rate is too high; far below, too low;
  * `first_nonfinite`: the first tensor, in execution order, that holds a NaN or an
    infinity.  The parameters are looked at first, then the trace of one pass on the
    next batch (`record_trace`: every forward tensor, then every backward one); if all
    is finite, the same is done once more after the optimizer step, outside the
    session's NaN guard (which would roll that step back).

Nothing here changes the session: the step and the passes run on a deep copy.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np

from bntui.engine.config import RunConfig
from bntui.engine.errors import BntuiError
from bntui.engine.network import Block, Network
from bntui.engine.session import Session
from bntui.engine.trace import Trace, record_trace

SIGMOID_LOW, SIGMOID_HIGH = 0.01, 0.99
TANH_LIMIT = 0.99
STUCK_SHARE = 0.99  # a unit saturated on at least this share of samples is "stuck"
RATIO_LOW, RATIO_HIGH = 1e-4, 1e-2  # around CS231n's ~1e-3
DEFAULT_STEPS = 200
BIAS_NOTE = ("a bias right before BatchNorm: BN subtracts the batch mean, so its gradient "
             "is zero up to rounding and it barely moves")
DEFAULT_BINS = 20
MAX_BINS = 400  # more bins than a screen has columns would only cost memory

DEFINITIONS = {
    "saturated": "sigmoid A < 0.01 or A > 0.99; tanh |A| > 0.99",
    "stuck": f"a unit saturated on ≥ {STUCK_SHARE:.0%} of the samples",
    "dead": "a ReLU unit whose pre-activation is ≤ 0 for every sample",
    "update_ratio": "‖ΔW‖ / ‖W‖ for one more optimizer step (rule of thumb ≈ 1e-3)",
}


@dataclass
class Histogram:
    """Counts of the finite values of one tensor in `len(counts)` equal bins."""

    name: str
    edges: list[float]
    counts: list[int]
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    nonfinite: int = 0  # NaN or ±inf values left out of the bins

    @classmethod
    def of(cls, name: str, values: np.ndarray, bins: int = DEFAULT_BINS) -> Histogram:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        finite = v[np.isfinite(v)]
        bad = int(v.size - finite.size)
        if finite.size == 0:
            return cls(name, [], [], None, None, None, None, bad)
        lo, hi = float(finite.min()), float(finite.max())
        rng = (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
        if np.isfinite(hi - lo):
            counts, edges = np.histogram(finite, bins=bins, range=rng)
        else:  # a diverged layer (|Z| ~ 1e308): bin on values scaled to ±1, whose
            # range numpy can split into finite bins, then scale the edges back
            scale = max(abs(lo), abs(hi))
            counts, edges = np.histogram(finite / scale, bins=bins,
                                         range=(lo / scale, hi / scale))
            edges = edges * scale
        scale = max(abs(lo), abs(hi)) or 1.0  # mean and std without overflow
        return cls(name, edges.tolist(), counts.astype(int).tolist(), lo, hi,
                   scale * float((finite / scale).mean()),
                   scale * float((finite / scale).std()), bad)


@dataclass
class LayerHealth:
    """One block's histograms, saturated and dead units."""

    layer: int
    activation: str  # "softmax" for the output block
    width: int
    hists: dict[str, Histogram]
    saturation: float | None = None  # share of saturated A values (sigmoid/tanh)
    stuck_units: list[int] | None = None  # 0-based unit indices (sigmoid/tanh)
    dead_units: list[int] | None = None  # 0-based unit indices (relu)

    @property
    def pre_name(self) -> str:
        """The activation's input: the normalization's output (Zbn, Zln, …), or Z."""
        return next((n for n in self.hists if n not in ("Z", "A")), "Z")


@dataclass
class UpdateRatio:
    key: str  # parameter key, e.g. "2.W"
    norm: float  # ‖W‖ before the step
    update_norm: float  # ‖ΔW‖
    ratio: float | None  # None when ‖W‖ = 0
    note: str = ""

    @property
    def verdict(self) -> str:
        r = self.ratio
        if r is None or not np.isfinite(r):
            return "—" if r is None else "non-finite"
        if self.note and r < RATIO_LOW:
            return "≈0 by construction"
        if r > RATIO_HIGH:
            return "large"
        if r < RATIO_LOW:
            return "small"
        return "ok"


@dataclass
class NonFinite:
    """Where the first NaN or infinity appeared."""

    when: str  # "now" | "after one more step"
    phase: str  # "parameter" | "forward" | "backward"
    layer: int | None  # 1-based block; None for the loss block
    name: str  # glossary name (or parameter key for a parameter)
    nan: int  # NaN entries
    inf: int  # ±inf entries
    size: int
    index: int | None = None  # position in the trace, if it came from one

    def describe(self) -> str:
        where = "loss block" if self.layer is None else f"layer {self.layer}"
        what = " and ".join(p for p in (f"{self.nan} NaN" if self.nan else "",
                                        f"{self.inf} inf" if self.inf else "") if p)
        return (f"{self.when}: {self.phase} {where} {self.name} "
                f"({what} of {self.size} entries)")


@dataclass
class HealthReport:
    network: str
    dataset: str
    optimizer: str
    steps: int  # steps the session had taken
    loss: float  # training-mode loss on the next batch (the traced one)
    stopped: str | None  # the session's own NaN-guard message, if it fired
    layers: list[LayerHealth]
    updates: list[UpdateRatio]
    first_nonfinite: NonFinite | None
    samples: int
    definitions: dict[str, str] = field(default_factory=lambda: dict(DEFINITIONS))

    def layer(self, index: int) -> LayerHealth:
        return next(lay for lay in self.layers if lay.layer == index)

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        for u, d in zip(self.updates, out["updates"], strict=True):  # type: ignore[arg-type]
            d["verdict"] = u.verdict
        return out


# the pieces ----------------------------------------------------------------------------
def _saturated(block: Block, A: np.ndarray) -> np.ndarray | None:
    name = block.act.name
    if name == "sigmoid":
        return (A < SIGMOID_LOW) | (A > SIGMOID_HIGH)
    if name == "tanh":
        return np.abs(A) > TANH_LIMIT
    return None


def layer_health(network: Network, X: np.ndarray, bins: int = DEFAULT_BINS) -> list[LayerHealth]:
    """Histograms, saturation and dead units of every block for one pass over `X`
    (training mode; the running statistics are not updated)."""
    with np.errstate(all="ignore"):
        network.forward(X, training=True, update_running=False)
    out: list[LayerHealth] = []
    for block in network.blocks:
        c = block.cache
        names = ["Z"] + ([block.pre_name] if block.norm is not None else [])
        if not block.is_output:
            names.append("A")
        hists = {n: Histogram.of(n, c[n], bins) for n in names}
        row = LayerHealth(block.index, "softmax" if block.is_output else block.act.label,
                          block.dense.fan_out, hists)
        if not block.is_output:
            A, pre = c["A"], c[block.pre_name]
            sat = _saturated(block, A)
            if sat is not None:
                row.saturation = float(sat.mean())
                row.stuck_units = np.flatnonzero(sat.mean(axis=0) >= STUCK_SHARE).tolist()
            if block.act.name == "relu":
                row.dead_units = np.flatnonzero(np.all(pre <= 0, axis=0)).tolist()
        out.append(row)
    return out


def _counts(value: np.ndarray) -> tuple[int, int]:
    v = np.asarray(value)
    if not np.issubdtype(v.dtype, np.floating):
        return 0, 0
    return int(np.isnan(v).sum()), int(np.isinf(v).sum())


def nonfinite_parameter(network: Network, when: str = "now") -> NonFinite | None:
    """The first parameter (in block order) holding a NaN or an infinity."""
    for key, p in network.named_params():
        nan, inf = _counts(p)
        if nan or inf:
            layer, name = key.split(".", 1)
            return NonFinite(when, "parameter", int(layer), name, nan, inf, p.size)
    return None


def first_nonfinite(trace: Trace, when: str = "now") -> NonFinite | None:
    """Walk the trace in execution order; the first step whose tensor is not all finite."""
    for step in trace.steps:
        nan, inf = _counts(step.value)
        if nan or inf:
            return NonFinite(when, step.phase, step.layer, step.name, nan, inf,
                             int(step.value.size), step.index)
    return None


def _norm(v: np.ndarray) -> float:
    """‖v‖ without overflow for huge entries (‖v‖ = s·‖v/s‖, s = max|v|)."""
    a = np.abs(np.asarray(v, dtype=np.float64))
    s = float(a.max()) if a.size else 0.0
    if s == 0.0 or not np.isfinite(s):
        return s
    return s * float(np.linalg.norm(a / s))


# the whole check -----------------------------------------------------------------------
def health_check(session: Session, bins: int = DEFAULT_BINS) -> HealthReport:
    """The health of `session`'s network as it stands (the session is not changed)."""
    if not 2 <= bins <= MAX_BINS:
        raise BntuiError(f"bins must be between 2 and {MAX_BINS} (got {bins:,})")
    work = copy.deepcopy(session)
    net, opt = work.network, work.optimizer
    layers = layer_health(net, work.X_train, bins)
    Xb, yb = work.next_batch()
    with np.errstate(all="ignore"):
        pointer = nonfinite_parameter(net)
        trace = record_trace(net, Xb, yb, training=True)
        if pointer is None:
            pointer = first_nonfinite(trace)
        # record_trace ran the backward pass: the layers hold this batch's gradients.
        # Read the parameters only now: the pass may have re-pointed the layers' arrays
        # into the network's flat buffer (a deep copy separates them; see engine/flat.py)
        params, grads = net.params(), net.grads()
        before = {k: p.copy() for k, p in params.items()}
        opt.step(params, grads)
        updates = []
        wasted = {f"{b.index}.b" for b in net.blocks if b.bn is not None and b.dense.has_bias}
        for key, p in params.items():
            w = _norm(before[key])
            dw = _norm(p.astype(np.float64) - before[key])
            note = BIAS_NOTE if key in wasted else ""
            updates.append(UpdateRatio(key, w, dw, dw / w if w > 0 else None, note))
        if pointer is None:
            after = "after one more step"
            pointer = nonfinite_parameter(net, after)
            if pointer is None:
                pointer = first_nonfinite(record_trace(net, Xb, yb, training=True), after)
    return HealthReport(
        network=net.describe(), dataset=work.dataset.name, optimizer=opt.describe(),
        steps=session.step_count, loss=trace.loss, stopped=session.stopped, layers=layers,
        updates=updates, first_nonfinite=pointer, samples=int(work.X_train.shape[0]),
    )


def run_health(config: RunConfig, steps: int | None = None,
               bins: int = DEFAULT_BINS) -> HealthReport:
    """Train a fresh session for `steps` (the lab's default: 200), then check it."""
    session = Session(config)
    session.train(steps=DEFAULT_STEPS if steps is None else steps)
    return health_check(session, bins)
