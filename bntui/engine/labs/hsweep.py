"""The h sweep: numerical-gradient error against the step h, float64 beside float32.

The textbook centred difference with an absolute step,

    g ≈ (L(w + h) − L(w − h)) / 2h,

has two errors that pull opposite ways.  Truncation: the Taylor series leaves
`h²/6 · L'''(w)`, so it shrinks like h² as h gets smaller.  Rounding: each loss carries
a rounding error of about `u·|L|` (u = 2⁻⁵³ ≈ 1.1e-16 in float64, 2⁻²⁴ ≈ 6e-8 in
float32), and dividing their difference by 2h blows it up like `u/h`.  The total is a V
on a log-log plot, with its bottom where the two meet, near h ≈ ∛u: about 1e-5 in
float64 and 1e-2..1e-3 in float32.

Both precisions differentiate the same function at the same point: the float32 network
holds the very weights of the float64 one (rounded to float32 first, for both) and the
same input rows.  The reference is the analytic gradient (backprop) in float64.  The error
of one h is the largest, over the parameter tensors, of the project's relative error
`max|a − n| / max(1e-8, max|a| + max|n|)` on a seeded sample of each tensor's entries.
A Dense bias right before BatchNorm is left out: its gradient is zero by construction,
so both sides are rounding noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from bntui.engine.config import RunConfig
from bntui.engine.errors import BntuiError
from bntui.engine.gradcheck import rel_error
from bntui.engine.network import Network
from bntui.engine.session import build_dataset, build_network

# 1e-1, 3.16e-2, 1e-2, … 1e-12: half a decade apart
DEFAULT_HS: tuple[float, ...] = tuple(float(10.0 ** (-k / 2)) for k in range(2, 25))
DEFAULT_ARCH = "8:tanh,8:tanh,C"  # smooth: no kink for a large h to straddle
DEFAULT_SAMPLES = 32
DEFAULT_ENTRIES = 12
DTYPES = ("float64", "float32")
UNIT_ROUNDOFF = {"float64": 2.0 ** -53, "float32": 2.0 ** -24}


def parse_hs(text: str | None) -> tuple[float, ...]:
    """'1e-1,1e-3,1e-5' → (0.1, 0.001, 1e-05), or the default grid; each h > 0."""
    if text is None or not text.strip():
        return DEFAULT_HS
    hs: list[float] = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            h = float(part)
        except ValueError:
            raise BntuiError(f"h must be a number (got '{part.strip()}')") from None
        if not np.isfinite(h) or h <= 0:
            raise BntuiError(f"h must be a positive finite number (got '{part.strip()}')")
        hs.append(h)
    if len(hs) < 3:
        raise BntuiError(f"give at least 3 values of h to see a curve (got {len(hs)})")
    return tuple(sorted(set(hs), reverse=True))


@dataclass
class HSweep:
    hs: list[float]  # from the largest to the smallest
    errors: dict[str, list[float]]  # dtype → max relative error per h
    network: str
    dataset: str
    samples: int  # input rows
    entries: int  # gradient entries compared per h
    tensors: list[str]  # parameter keys compared
    kinks: bool  # an activation with a kink (ReLU…): a large h may straddle it
    notes: list[str] = field(default_factory=list)

    def best(self, dtype: str) -> tuple[float, float]:
        """(h, error) at the bottom of the V."""
        errs = self.errors[dtype]
        i = int(np.nanargmin(errs))
        return self.hs[i], errs[i]

    def rounding(self, dtype: str) -> list[bool]:
        """Which errors are mostly rounding: from the best h down (the left arm of the V).
        They are the rounding of the two losses, which another CPU rounds differently:
        only their order of magnitude carries over."""
        best = self.best(dtype)[0]
        return [h <= best for h in self.hs]

    def predicted_best_h(self, dtype: str) -> float:
        """∛(3u): where u/h rounding meets h² truncation, for a loss and L''' of order 1."""
        return float(np.cbrt(3 * UNIT_ROUNDOFF[dtype]))

    def slope(self, dtype: str, h_hi: float, h_lo: float) -> float:
        """d log(error) / d log(h) between two h of the grid."""
        i, j = self.hs.index(h_hi), self.hs.index(h_lo)
        e = self.errors[dtype]
        return float(np.log(e[i] / e[j]) / np.log(h_hi / h_lo))

    def to_dict(self) -> dict[str, object]:
        return {
            "hs": self.hs, "errors": self.errors,
            "best": {d: {"h": self.best(d)[0], "error": self.best(d)[1]} for d in self.errors},
            "predicted_best_h": {d: self.predicted_best_h(d) for d in self.errors},
            "rounding": {d: self.rounding(d) for d in self.errors},
            "network": self.network, "dataset": self.dataset, "samples": self.samples,
            "entries": self.entries, "tensors": self.tensors, "kinks": self.kinks,
            "notes": self.notes,
        }


def _loss(net: Network, X: np.ndarray, y: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        return net.loss(X, y, training=True, update_running=False)


def centred_difference(net: Network, X: np.ndarray, y: np.ndarray, key: str,
                       flat_index: np.ndarray, h: float) -> np.ndarray:
    """(L(w + h) − L(w − h)) / 2h for the chosen entries of one parameter, in the
    network's own precision (the perturbed weight is stored in its dtype)."""
    p = net.params()[key]
    flat = p.reshape(-1)  # a view: the network sees the change
    out = np.empty(len(flat_index))
    for n, i in enumerate(flat_index):
        old = flat[i].copy()
        flat[i] = old + h
        plus = _loss(net, X, y)
        flat[i] = old - h
        minus = _loss(net, X, y)
        flat[i] = old
        out[n] = (plus - minus) / (2 * h)
    return out


def h_sweep(
    config: RunConfig,
    hs: tuple[float, ...] | list[float] = DEFAULT_HS,
    samples: int = DEFAULT_SAMPLES,
    entries: int = DEFAULT_ENTRIES,
    dtypes: tuple[str, ...] = DTYPES,
) -> HSweep:
    """Sweep h for the network of `config` (its dataset, architecture and seed; untrained)
    on the first `samples` training rows, `entries` sampled entries per parameter."""
    if samples < 2:
        raise BntuiError(f"samples must be at least 2 (got {samples})")
    if entries < 1:
        raise BntuiError(f"entries must be at least 1 (got {entries})")
    hs = sorted({float(h) for h in hs}, reverse=True)
    if not hs or min(hs) <= 0:
        raise BntuiError("every h must be a positive number")
    config.validate()
    dataset = build_dataset(config)
    # one point for both precisions: float32-representable weights and inputs
    net64 = build_network(replace(config, dtype="float64"), dataset)
    for p in net64.params().values():
        p[...] = p.astype(np.float32)
    X = dataset.X_train[:samples].astype(np.float32).astype(np.float64)
    y = dataset.y_train[:samples]
    if len(y) < 2:
        raise BntuiError("the training set has fewer than 2 rows")
    _loss(net64, X, y)
    analytic = {k: g.copy() for k, g in net64.backward(staged=False).items()}
    rng = np.random.default_rng(config.seed)
    wasted = {f"{b.index}.b" for b in net64.blocks if b.bn is not None and b.dense.has_bias}
    picks: dict[str, np.ndarray] = {}
    for key, p in net64.params().items():
        if key in wasted:
            continue
        n = min(entries, p.size)
        picks[key] = np.sort(rng.choice(p.size, size=n, replace=False))
    errors: dict[str, list[float]] = {}
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise BntuiError(f"dtype must be one of {', '.join(DTYPES)} (got '{dtype}')")
        net = build_network(replace(config, dtype=dtype), dataset)
        net.load_state(net64.state())
        Xd = X.astype(net.dtype)
        row = []
        for h in hs:
            worst = 0.0
            for key, idx in picks.items():
                num = centred_difference(net, Xd, y, key, idx, h)
                a = analytic[key].reshape(-1)[idx]
                err = rel_error(a, num) if np.all(np.isfinite(num)) else float("inf")
                worst = max(worst, err)
            row.append(worst)
        errors[dtype] = row
    kinks = any(b.act.kink_at_zero for b in net64.blocks if not b.is_output)
    notes = []
    if kinks:
        notes.append("the network has an activation with a kink (ReLU…): a large h can step "
                     "across it, and the large-h side is then not a clean h² slope")
    if wasted:
        notes.append("biases right before BatchNorm are left out: their gradient is zero "
                     "by construction")
    return HSweep(hs, errors, net64.describe(), dataset.name, len(y),
                  int(sum(len(i) for i in picks.values())), list(picks), kinks, notes)
