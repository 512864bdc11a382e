"""Gradient checks: analytic (staged backward) against numerical and autograd gradients.

Relative error of a tensor: `max|a − b| / max(1e-8, max|a| + max|b|)` (the entry-by-entry
form of CS231n is reported beside it).

Numerical gradients are centred differences, `(L(x + δ) − L(x − δ)) / 2δ`, for every
entry of every parameter and for a seeded sample of entries of every intermediate tensor
(the forward resumes from the perturbed node).  By default the step is relative to the
tensor's scale, `δ = h · max(|x|, rms(tensor))` (for a batch mean, at least its
batch's std; `h` itself for a tensor of zeros):
a BatchNorm variance of 1e-4 or weights of 1e-2 need a step that small, or the
truncation error of the difference swamps the comparison.  `relative=False` gives the
textbook absolute step `δ = h`.  Two traps are reported, never hidden:
  * a gradient that is zero in exact arithmetic (a Dense bias right before BatchNorm in
    training) cannot be judged by a relative error: both sides are rounding noise;
  * a centred difference whose two sides put an activation input on either side of a
    kink (ReLU at 0) is wrong by construction; such entries are detected, counted and
    left out of the relative error.
Neither pass touches the running statistics.

Which gradients are checked, in which order, how each intermediate's step is scaled and
which gradient is zero by construction all come from the layers' node records, through
the pass's plan (`trace.plan`).  The numerical gradients differentiate the network's own
forward, whatever its parts: the batched path (`engine/numeric.py`) is used only when
every part is the engine's own and works feature by feature (`Network.column_wise`), and
the reference loop — which runs `network.loss` itself — otherwise (a bug of the zoo, a
variant, a LayerNorm, GroupNorm or RMSNorm, which mix a sample's features).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from bntui.engine.autograd import autograd_gradients
from bntui.engine.network import PARAM_GRAD_NAMES, Block, Network
from bntui.engine.nodes import FORWARD, find
from bntui.engine.trace import Planned, Trace, plan

PAIRS = ("analytic_vs_numeric", "analytic_vs_autograd")
NEAR_ZERO = 1e-10


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Relative error of a whole tensor: max|a − b| / max(1e-8, max|a| + max|b|).

    One number per tensor, measured against the tensor's own scale: an entry that is
    1e-7 of the largest one is judged by what it does to the tensor, not on its own.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    scale = float(np.max(np.abs(a)) + np.max(np.abs(b)))
    return float(np.max(np.abs(a - b))) / max(1e-8, scale)


def entrywise_rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """CS231n's entry by entry form: max over entries of |a − b| / max(1e-8, |a| + |b|).

    Stricter, and for numerical gradients it mostly measures the rounding of the
    difference quotient on the smallest entries (a weight fed by a pixel that is lit in
    one image out of 1,500 has a gradient of 1e-7 and an absolute error of 1e-9).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


@dataclass
class Check:
    """One comparison of one gradient tensor."""

    layer: int
    tensor: str  # glossary name of the gradient: dW, db, dgamma, dZnorm, ...
    pair: str  # analytic_vs_numeric | analytic_vs_autograd
    rel_error: float | None
    abs_error: float
    max_abs: float  # largest |analytic| among the compared entries
    entries: int  # entries compared
    total: int  # entries in the tensor
    status: str = "ok"  # ok | zero_by_construction | near_zero | kink
    kink_entries: int = 0
    note: str = ""
    entrywise_rel_error: float | None = None  # CS231n's form, entry by entry
    ratio: float | None = None  # median analytic / other over the compared entries

    @property
    def judged(self) -> bool:
        return self.status == "ok" and self.rel_error is not None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class TensorRow:
    """Both comparisons of one gradient tensor, as a table row shows them."""

    layer: int
    tensor: str
    numeric: Check | None = None
    autograd: Check | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def entries(self) -> str:
        return f"{self.numeric.entries}/{self.numeric.total}" if self.numeric else ""


@dataclass
class GradcheckReport:
    checks: list[Check]
    loss: float
    h: float
    samples: int
    torch: bool
    notes: list[str] = field(default_factory=list)

    def max_rel_error(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for pair in PAIRS:
            vals = [c.rel_error for c in self.checks if c.pair == pair and c.judged]
            if pair == "analytic_vs_autograd" and not self.torch:
                out[pair] = None
            else:
                out[pair] = max(vals) if vals else None  # type: ignore[type-var]
        return out

    def rows(self) -> list[TensorRow]:
        """One row per (layer, tensor), in check order, with its traps named."""
        rows: dict[tuple[int, str], TensorRow] = {}
        for c in self.checks:
            row = rows.setdefault((c.layer, c.tensor), TensorRow(c.layer, c.tensor))
            if c.pair == PAIRS[0]:
                row.numeric = c
            else:
                row.autograd = c
            for note in ([c.status.replace("_", " ")] if c.status != "ok" else []) + (
                    [f"{c.kink_entries} across a kink"] if c.kink_entries else []):
                if note not in row.notes:
                    row.notes.append(note)
        return list(rows.values())

    def trap_notes(self) -> list[str]:
        """One explanation per kind of trap met, then the report's own notes."""
        out: dict[str, str] = {}
        for c in self.checks:
            if c.note and c.status != "ok" and c.status not in out:
                out[c.status] = f"{c.status.replace('_', ' ')}: {c.note}"
            if c.kink_entries and "kink" not in out:
                out["kink"] = ("kink: a centred difference whose two sides fall on either side "
                               "of a ReLU corner is wrong by construction; such entries are "
                               "counted and left out")
        return [*out.values(), *self.notes]

    def get(self, layer: int, tensor: str, pair: str = "analytic_vs_numeric") -> Check:
        for c in self.checks:
            if c.layer == layer and c.tensor == tensor and c.pair == pair:
                return c
        raise KeyError((layer, tensor, pair))

    def to_dict(self) -> dict[str, object]:
        return {
            "loss": self.loss,
            "h": self.h,
            "samples": self.samples,
            "torch": self.torch,
            "checks": [c.to_dict() for c in self.checks],
            "max_rel_error": self.max_rel_error(),
            "notes": self.notes,
        }


def _steps(flat: np.ndarray, h: float, relative: bool,
           hint: np.ndarray | None = None) -> np.ndarray:
    """The step δ of each entry: h, or h · max(|x|, a scale).

    The scale is the tensor's rms; or, for a tensor whose own size misleads, each entry's
    own `hint` from its record (see `_scale_hint`).  A tensor that is zero throughout, or
    an entry whose hint is 0, gets the absolute step h.
    """
    if not relative:
        return np.full(flat.size, h)
    x = np.abs(flat.astype(np.float64))
    if hint is not None:
        hint = np.asarray(hint, dtype=np.float64)
        hint = hint.reshape(-1) if hint.size == flat.size else hint  # (m, 1) beside (m,)
        scale = np.maximum(x, np.broadcast_to(hint, flat.shape))
        return h * np.where(scale > 0, scale, 1.0)
    rms = float(np.sqrt(np.mean(np.square(x)))) if flat.size else 0.0
    if rms < 1e-12:
        return np.full(flat.size, h)
    return h * np.maximum(x, rms)


def checked(network: Network, training: bool = True) -> dict[int, list[Planned]]:
    """{block: the backward steps whose gradients are checked, in the order of the pass}."""
    out: dict[int, list[Planned]] = {b.index: [] for b in network.blocks}
    for p in plan(network, training):
        if p.phase != FORWARD and p.layer is not None:
            out[p.layer].append(p)
    return out


def checked_tensors(network: Network, training: bool = True) -> list[tuple[int, str]]:
    """(layer, gradient name) of every tensor the check compares, in the order of the
    backward pass (output block first)."""
    steps = checked(network, training)
    return [(b.index, p.name) for b in reversed(network.blocks) for p in steps[b.index]]


def _perturbed(network: Network, training: bool) -> dict[int, list[Planned]]:
    """{block: the intermediate tensors whose numerical gradients are sampled}: every
    checked gradient that is not a parameter's (dA, dZbn, dZnorm, …, dX → A, Zbn, …)."""
    return {k: [p for p in steps if p.node.role != "param"]
            for k, steps in checked(network, training).items()}


def _scale_hint(block: Block, p: Planned, cache: dict[str, np.ndarray]) -> np.ndarray | None:
    """Each entry's own scale for a node whose size misleads (its record's `step_scale`:
    a batch mean moves on its feature's std, a variance on var + ε — per feature, not the
    tensor's rms: one feature's var of 1e-6 beside others of 0.1 needs a step a hundred
    thousand times smaller than theirs)."""
    if p.node.step_scale is None or block.norm is None:
        return None
    return getattr(block.norm, p.node.step_scale)(cache)


def param_steps(block: Block, cache: dict[str, np.ndarray], h: float,
                 relative: bool) -> dict[str, np.ndarray]:
    """The step of every entry of every parameter of a block, by parameter name: relative
    to the parameter's scale, or to the scale its record names (a bias near 0 moves its
    output on that output's own scale, not on its own: a bias of 1e-12 must not get a
    step of 1e-17)."""
    out: dict[str, np.ndarray] = {}
    for layer in block.layers():
        for name, p in layer.params.items():
            node = find(layer.NODES, name)
            hint = (getattr(layer, node.step_scale)(cache) if node.step_scale is not None
                    else None)
            out[name] = _steps(p.reshape(-1), h, relative, hint)
    return out


def _kink_blocks(network: Network) -> list[Block]:
    return [b for b in network.blocks if not b.is_output and b.act.kink_at_zero]


def numeric_gradients_loop(
    network: Network,
    X: np.ndarray,
    y: np.ndarray,
    *,
    training: bool = True,
    h: float = 1e-5,
    samples: int = 16,
    rng: np.random.Generator | None = None,
    relative: bool = True,
) -> dict[int, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """{block: {grad name: (flat indices, numerical values, kink-crossed mask)}}.

    Every entry of every parameter; up to `samples` entries of each intermediate.  The
    textbook loop — one entry and two forward passes at a time — kept as the reference
    for `numeric_gradients`, which computes the same differences many at a time.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    network.loss(X, y, training, update_running=False)
    inputs = [b.cache["X"] for b in network.blocks]
    base = {b.index: {k: v.copy() for k, v in b.cache.items()} for b in network.blocks}
    kinked = _kink_blocks(network)
    masks = {b.index: base[b.index][b.pre_name] > 0 for b in kinked}
    perturbed = _perturbed(network, training)

    def loss_from(k: int, override: dict[int, dict[str, np.ndarray]] | None) -> tuple[float, bool]:
        val = network.loss(inputs[k], y, training, update_running=False, override=override,
                           start=k)
        crossed = any(
            not np.array_equal(b.cache[b.pre_name] > 0, masks[b.index])
            for b in kinked if b.index > k
            and not (override and "A" in override.get(b.index, {}))
        )
        return val, crossed

    out: dict[int, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for k, block in enumerate(network.blocks):
        res: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        steps_of = param_steps(block, base[block.index], h, relative)
        for layer in block.layers():
            for pname, p in layer.params.items():
                flat = p.reshape(-1)
                idx = np.arange(flat.size)
                vals = np.empty(flat.size)
                kink = np.zeros(flat.size, dtype=bool)
                steps = steps_of[pname]
                for j in idx:
                    old, d = flat[j], steps[j]
                    flat[j] = old + d
                    lp, cp = loss_from(k, None)
                    flat[j] = old - d
                    lm, cm = loss_from(k, None)
                    flat[j] = old
                    vals[j] = (lp - lm) / (2 * d)
                    kink[j] = cp or cm
                res[PARAM_GRAD_NAMES[pname]] = (idx, vals, kink)
        for p in perturbed[block.index]:
            name = p.name[1:]
            t0 = base[block.index][name]
            size = t0.size
            idx = np.sort(rng.choice(size, size=min(samples, size), replace=False))
            vals = np.empty(idx.size)
            kink = np.zeros(idx.size, dtype=bool)
            steps = _steps(t0.reshape(-1), h, relative, _scale_hint(block, p, base[block.index]))
            for n, j in enumerate(idx):
                t = t0.copy().reshape(-1)
                d = steps[j]
                t[j] = t0.flat[j] + d
                lp, cp = loss_from(k, {block.index: {name: t.reshape(t0.shape)}})
                t[j] = t0.flat[j] - d
                lm, cm = loss_from(k, {block.index: {name: t.reshape(t0.shape)}})
                vals[n] = (lp - lm) / (2 * d)
                kink[n] = cp or cm
            res["d" + name] = (idx, vals, kink)
        out[block.index] = res
    # leave the caches as the unperturbed pass left them
    network.loss(X, y, training, update_running=False)
    return out


def numeric_gradients(
    network: Network,
    X: np.ndarray,
    y: np.ndarray,
    *,
    training: bool = True,
    h: float = 1e-5,
    samples: int = 16,
    rng: np.random.Generator | None = None,
    relative: bool = True,
    threads: int | None = None,
) -> dict[int, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """The same as `numeric_gradients_loop` (same steps, same sampled entries), computed
    with many perturbations at a time (see `bntui.engine.numeric`), on `threads` threads
    (default: one per core; the numbers do not depend on it).  A network with a part that
    is not the engine's own, or a normalization that mixes a sample's features
    (`Network.column_wise` is False), gets the loop itself, which runs that part's own
    forward."""
    rng = rng if rng is not None else np.random.default_rng(0)
    if not network.column_wise:
        return numeric_gradients_loop(network, X, y, training=training, h=h, samples=samples,
                                      rng=rng, relative=relative)
    from bntui.engine import numeric

    with np.errstate(all="ignore"):
        network.loss(X, y, training, update_running=False)
    caches = [{k: v.copy() for k, v in b.cache.items()} for b in network.blocks]
    masks = {b.index: caches[b.index - 1][b.pre_name] > 0 for b in _kink_blocks(network)}
    base = numeric.Base(caches, masks)
    # the sampled entries of the intermediates, drawn in the reference loop's order
    nodes: list[tuple[int, str, np.ndarray, np.ndarray]] = []
    perturbed = _perturbed(network, training)
    for k, block in enumerate(network.blocks):
        for p in perturbed[block.index]:
            t0 = caches[k][p.name[1:]]
            idx = np.sort(rng.choice(t0.size, size=min(samples, t0.size), replace=False))
            nodes.append((k, p.name[1:], idx,
                          _steps(t0.reshape(-1), h, relative, _scale_hint(block, p, caches[k]))))

    def node(task: tuple[int, str, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        k, name, idx, st = task
        with np.errstate(all="ignore"):
            return numeric.node_gradients(network, base, k, name, idx, st, y, training)

    threads = threads if threads is not None else (os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        map_fn = pool.map if threads > 1 else map
        out: dict[int, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        for k, block in enumerate(network.blocks):
            steps = param_steps(block, caches[k], h, relative)
            out[block.index] = numeric.param_gradients(  # type: ignore[assignment]
                network, base, k, y, training, steps, map_fn)
        for (k, name, idx, _), (vals, kink) in zip(nodes, map_fn(node, nodes), strict=True):
            out[network.blocks[k].index]["d" + name] = (idx, vals, kink)
    return out


def analytic_gradients(
    network: Network, X: np.ndarray, y: np.ndarray, training: bool = True
) -> tuple[float, dict[int, dict[str, np.ndarray]]]:
    """Loss and {block: {grad name: value}} of every checked gradient, from the staged
    backward."""
    loss = network.loss(X, y, training, update_running=False)
    network.backward(staged=True)
    out: dict[int, dict[str, np.ndarray]] = {}
    for block in network.blocks:
        out[block.index] = {}
    for p in plan(network, training):
        if p.phase != FORWARD and p.layer is not None:
            out[p.layer][p.name] = network.blocks[p.layer - 1].cache[p.name].copy()
    return loss, out


def _compare(p: Planned, a: np.ndarray, b: np.ndarray, kink: np.ndarray,
             pair: str, total: int) -> Check:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    keep = ~kink
    n_kink = int(kink.sum())
    max_abs = float(np.max(np.abs(a))) if a.size else 0.0
    abs_err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert p.layer is not None
    check = Check(p.layer, p.name, pair, None, abs_err, max_abs, int(keep.sum()), total,
                  kink_entries=n_kink)
    if keep.any():
        check.rel_error = rel_error(a[keep], b[keep])
        check.entrywise_rel_error = entrywise_rel_error(a[keep], b[keep])
        big = keep & (np.abs(b) > 1e-12)
        if big.any():
            check.ratio = float(np.median(a[big] / b[big]))
    if p.words.zero:
        check.status = "zero_by_construction"
        check.note = (
            "BatchNorm subtracts the batch mean, so this bias cannot change the loss: "
            f"both gradients are rounding noise (max |analytic| {max_abs:.1e}); "
            "a relative error of noise means nothing"
        )
    elif not keep.any():
        check.status = "kink"
        check.note = "every compared entry crossed a kink: no centred difference is valid here"
    elif max(max_abs, float(np.max(np.abs(b[keep])))) < NEAR_ZERO:
        check.status = "near_zero"
        check.note = "both gradients are below 1e-10: a relative error would only measure noise"
    elif n_kink:
        check.note = (
            f"{n_kink} of {kink.size} entries crossed a kink (a centred difference across a "
            "ReLU corner is wrong by construction) and are left out"
        )
    return check


def collapsed_notes(network: Network, batch: int, training: bool = True) -> list[str]:
    """One note per normalization whose statistics each span too few values to leave the
    input any say: centred over 2 values, Znorm is ±√(var / (var + ε)) ≈ ±1 (a LayerNorm
    over 2 features, a GroupNorm with groups of 2, a BatchNorm on a batch of 2); over 1,
    Z0 is 0 (or, for RMSNorm, Znorm ≈ sign Z).  The gradients through such a layer are
    ε-sized, so their relative errors measure rounding, not the formulas."""
    out: list[str] = []
    for block in network.blocks:
        norm = block.norm
        if norm is None or (block.bn is not None and not training):
            continue  # BatchNorm in eval mode divides by its running statistics
        k = batch if block.bn is not None else int(getattr(norm, "group_size", 0))
        centred = any(n.name == "mu" for n in norm.NODES)
        if k < 1 or k > (2 if centred else 1):
            continue
        what = "samples of the batch" if block.bn is not None else "features"
        if centred and k == 2:
            effect = "Znorm is ±√(var / (var + ε)) ≈ ±1 whatever the input"
        elif centred:
            effect = "Z0 is 0, so its output is β whatever the input"
        else:
            effect = "Znorm is Z / √(Z² + ε) ≈ ±1 whatever the input"
        out.append(f"layer {block.index}: {norm.title} takes each statistic over {k} "
                   f"{what}: {effect}; the gradients through it are ε-sized (or zero), so "
                   "their relative errors measure rounding, not the formulas")
    return out


def gradcheck(
    network: Network,
    X: np.ndarray,
    y: np.ndarray,
    *,
    training: bool = True,
    h: float = 1e-5,
    samples: int = 16,
    seed: int = 0,
    numeric: bool = True,
    autograd: bool = True,
    relative: bool = True,
    threads: int | None = None,
) -> GradcheckReport:
    """Check every parameter's and every intermediate's gradient in one batch.

    The analytic pass runs last, so the network's caches are left as it left them.
    `threads` is for the numerical gradients (default: one per core).
    """
    num = (
        numeric_gradients(network, X, y, training=training, h=h, samples=samples,
                          rng=np.random.default_rng(seed), relative=relative,
                          threads=threads)
        if numeric else {}
    )
    auto, why_not = autograd_gradients(network, X, y, training) if autograd else (None, "")
    loss, analytic = analytic_gradients(network, X, y, training)
    notes = collapsed_notes(network, X.shape[0], training)
    checks: list[Check] = []
    has_torch = auto is not None
    if autograd and auto is None:
        notes.append(why_not)
    if auto is not None and abs(auto[0] - loss) > 1e-6 * max(1.0, abs(loss)):
        notes.append(f"torch's loss {auto[0]:.12g} differs from the engine's {loss:.12g}")
    for block in reversed(network.blocks):
        grads = analytic[block.index]
        for p in checked(network, training)[block.index]:
            a = grads[p.name]
            if block.index in num and p.name in num[block.index]:
                idx, vals, kink = num[block.index][p.name]
                checks.append(_compare(p, a.reshape(-1)[idx], vals, kink, PAIRS[0], a.size))
            if auto is not None and p.name in auto[1][block.index]:
                b = auto[1][block.index][p.name]
                checks.append(_compare(p, a, b, np.zeros(a.size, dtype=bool), PAIRS[1], a.size))
    return GradcheckReport(checks, loss, h, samples, has_torch, notes)


def attach_to_trace(trace: Trace, report: GradcheckReport) -> None:
    """Write each check's relative error onto the matching trace step."""
    for c in report.checks:
        for step in trace.steps:
            if step.phase == "backward" and step.layer == c.layer and step.name == c.tensor:
                key = "numerical" if c.pair == PAIRS[0] else "autograd"
                step.checks[key] = c.rel_error
                if c.note and c.note not in step.notes:
                    step.notes.append(c.note)
