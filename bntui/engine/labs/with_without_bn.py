"""Lab "With vs without BatchNorm": one architecture trained twice, with and without BN.

From a `RunConfig` the lab builds the same architecture twice: once with BatchNorm on
every hidden block (`:bn`; the output block as the config says) and once with BatchNorm
removed everywhere (`:nobn`).  Both networks start from bit-identical Dense weights (the
same seed draws the same `W`; any draw that differs is copied over) and see the same
batches in the same order.  The plain network gets a Dense bias on every block: before
BatchNorm a bias is wasted (`db` is exactly 0, the mean is subtracted), without BatchNorm
it is the only way to shift the activation's input.

Three measurements:

* `train_twins`: loss and accuracy of both networks step by step, side by side;
* the spread of every hidden layer's pre-activation (the activation's input: `Zbn` with
  BN, `Z` without) at checkpoints over training: quantiles 5/25/50/75/95 % over all
  samples and features, and the share of entries where the activation is saturated
  (its slope below 5 % of its peak, e.g. |x| > 4.4 for sigmoid, x ≤ 0 for relu);
* `lr_sweep`: a short run of both networks at each learning rate of a grid, with a
  verdict per run: "trains" (final loss at most half the chance-level loss ln K),
  "diverged" (non-finite, or above 1.25 × its start and ln K) or "slow" (in between).

`LAB_DEFAULT` is a setting where the effect is large and robust over seeds: three tanh
blocks of 32 on moons, plain SGD, 200 steps.  Measured (seed 0; seeds 1–3 agree): both
networks train at learning rates 0.03–1; from 3 up only the BN network trains (at 5 the
plain loss climbs to ~40 while the BN loss ends at ~0.16; at 10: 33 vs 0.002); at 0.001
the plain one does not move in 200 steps while the BN one does, because BN divides each
layer's gradient by the spread of its Z and so raises the effective learning rate of
small weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from bntui.engine.arch import ArchSpec, parse_arch
from bntui.engine.config import RunConfig
from bntui.engine.datasets import Dataset
from bntui.engine.errors import BntuiError
from bntui.engine.jsonable import jsonable
from bntui.engine.labs import chaos
from bntui.engine.network import Network
from bntui.engine.optimizers import make_optimizer
from bntui.engine.session import Session, build_dataset

QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.50, 0.75, 0.95)
DEFAULT_LRS: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
VERDICTS = ("trains", "slow", "diverged", "edge")  # edge: the nudged run says otherwise
TRAINS_BELOW = 0.5  # × ln K: a final loss at most half the chance level "trains"
DIVERGED_ABOVE = 1.25  # × max(start, ln K): a final loss above this "diverged"
SATURATED_SLOPE = 0.05  # an activation slope below 5 % of its peak counts as saturated
MAX_LRS = 24

LAB_DEFAULT = RunConfig(
    dataset="moons",
    arch="32:tanh,32:tanh,32:tanh,C",
    optimizer="sgd",
    lr=5.0,
    steps=200,
)


@dataclass
class LayerSpread:
    """One hidden layer's pre-activation over training: quantiles at each checkpoint."""

    layer: int  # 1-based block index
    name: str  # "Zbn" or "Z"
    steps: list[int] = field(default_factory=list)
    quantiles: list[list[float]] = field(default_factory=list)  # per checkpoint, QUANTILES
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    saturated: list[float] = field(default_factory=list)  # share of entries, 0..1

    def to_dict(self) -> dict[str, object]:
        return {"layer": self.layer, "name": self.name, "steps": self.steps,
                "quantiles": self.quantiles, "mean": self.mean, "std": self.std,
                "saturated": self.saturated}


@dataclass
class TwinRun:
    """One of the two networks after training: its history and its layers' spread."""

    label: str  # "with BN" or "without BN"
    arch: str
    steps: list[int]
    loss: list[float]
    batch_accuracy: list[float]
    eval_steps: list[int]
    train_accuracy: list[float]
    start_loss: float
    final_loss: float  # mean of the last tenth of the step losses
    stopped: str | None
    layers: list[LayerSpread]
    # how far each step's loss, and the final loss, move when the run is trained again
    # from initial weights nudged by chaos.NUDGE: rounding, where it is chaotic
    loss_moves: list[float] = field(default_factory=list)
    final_move: float | None = None

    def chaotic_at(self, step: int) -> bool:
        """Whether the loss at `step` (1-based) is the CPU's rounding in its last digits."""
        return step <= len(self.loss_moves) and chaos.chaotic(self.loss_moves[step - 1])

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "arch": self.arch, "steps": self.steps, "loss": self.loss,
                "batch_accuracy": self.batch_accuracy, "eval_steps": self.eval_steps,
                "train_accuracy": self.train_accuracy, "start_loss": self.start_loss,
                "final_loss": self.final_loss, "stopped": self.stopped,
                "final_chaotic": chaos.chaotic(self.final_move),
                "layers": [s.to_dict() for s in self.layers]}


@dataclass
class SweepCell:
    start_loss: float
    final_loss: float
    verdict: str  # one of VERDICTS: "edge" when the nudged run's verdict differs
    final_move: float | None = None  # under the nudge (see chaos)

    @property
    def chaotic(self) -> bool:
        return chaos.chaotic(self.final_move)

    def to_dict(self) -> dict[str, object]:
        return {"start_loss": float(self.start_loss), "final_loss": float(self.final_loss),
                "verdict": self.verdict, "chaotic": self.chaotic}


@dataclass
class SweepRow:
    lr: float
    bn: SweepCell
    plain: SweepCell

    @property
    def bn_only(self) -> bool:
        """Only the BN network trains at this learning rate."""
        return self.bn.verdict == "trains" and self.plain.verdict in ("slow", "diverged")

    def to_dict(self) -> dict[str, object]:
        return {"lr": self.lr, "bn": self.bn.to_dict(), "plain": self.plain.to_dict(),
                "bn_only": self.bn_only}


@dataclass
class BnLabResult:
    config: RunConfig
    bn_arch: str
    plain_arch: str
    weights_identical: bool  # W of every block bit-identical before training
    copied: list[str]  # parameters that had to be copied to make them identical
    bn_run: TwinRun
    plain_run: TwinRun
    sweep: list[SweepRow]
    sweep_steps: int
    chance_loss: float  # ln K

    @property
    def bn_only_lrs(self) -> list[float]:
        return [r.lr for r in self.sweep if r.bn_only]

    def to_dict(self) -> dict[str, object]:
        c = self.config
        return jsonable({  # type: ignore[return-value]
            "lab": "bn",
            "dataset": c.dataset, "optimizer": c.optimizer, "lr": effective_lr(c),
            "steps": c.steps,
            "batch_size": c.batch_size, "seed": c.seed,
            "bn_arch": self.bn_arch, "plain_arch": self.plain_arch,
            "weights_identical": self.weights_identical, "copied": self.copied,
            "chance_loss": self.chance_loss, "quantiles": list(QUANTILES),
            "with_bn": self.bn_run.to_dict(), "without_bn": self.plain_run.to_dict(),
            "sweep_steps": self.sweep_steps, "sweep": [r.to_dict() for r in self.sweep],
            "bn_only_lrs": self.bn_only_lrs,
        })


def effective_lr(cfg: RunConfig) -> float:
    """The learning rate a run of `cfg` uses (the optimizer's default when unset)."""
    return make_optimizer(cfg.optimizer, cfg.lr, **dict(cfg.hyper)).lr


# building the twins ------------------------------------------------------------------
def twin_archs(arch: str) -> tuple[str, str]:
    """The architecture with BN on every hidden block, and with BN nowhere (bias on).  An
    arch naming another normalization (ln, gn=G, rms) is refused: neither twin is it."""
    spec = parse_arch(arch)
    if len(spec.blocks) < 2:
        raise BntuiError(
            f"arch '{arch}' has no hidden block: this lab compares hidden layers with and "
            "without BatchNorm (e.g. '32:tanh,32:tanh,C')"
        )
    other = [(i, b) for i, b in enumerate(spec.blocks, start=1) if b.norm not in ("bn", None)]
    if other:
        i, b = other[0]
        raise BntuiError(
            f"arch '{arch}': block {i} has :{b.to_string().split(':')[1]}, but this lab "
            "compares BatchNorm on every hidden block with no normalization at all — leave "
            "ln, gn=G and rms out of the arch (e.g. '32:tanh,32:tanh,C')"
        )
    *hidden, out = spec.blocks
    with_bn = ArchSpec((*(replace(b, norm="bn", groups=None) for b in hidden), out))
    without = ArchSpec(tuple(replace(b, norm=None, groups=None, bias=True) for b in spec.blocks))
    return with_bn.to_string(), without.to_string()


def twin_configs(cfg: RunConfig) -> tuple[RunConfig, RunConfig]:
    bn_arch, plain_arch = twin_archs(cfg.arch)
    return replace(cfg, arch=bn_arch), replace(cfg, arch=plain_arch)


def share_weights(src: Network, dst: Network) -> tuple[bool, list[str]]:
    """Make `dst`'s Dense weights equal `src`'s.

    Returns whether every `W` was already bit-identical (the same seed draws the same
    weights) and the names of the parameters copied.  A bias `dst` has and `src` lacks
    starts at 0, so the two networks compute the same `Z` in the first block.
    """
    identical, copied = True, []
    for a, b in zip(src.blocks, dst.blocks, strict=True):
        if a.dense.W.shape != b.dense.W.shape:
            raise BntuiError("the two networks of the lab do not have the same shapes")
        if not np.array_equal(a.dense.W, b.dense.W):
            identical = False
            b.dense.W[...] = a.dense.W
            copied.append(f"{b.index}.W")
        if b.dense.has_bias:
            want = a.dense.b if a.dense.has_bias else np.zeros_like(b.dense.b)
            if not np.array_equal(b.dense.b, want):
                b.dense.b[...] = want
                copied.append(f"{b.index}.b")
    return identical, copied


def build_twins(cfg: RunConfig, dataset: Dataset | None = None
                ) -> tuple[Session, Session, bool, list[str]]:
    """Two sessions on the same dataset object: with BN first, without BN second."""
    bn_cfg, plain_cfg = twin_configs(cfg)
    dataset = dataset if dataset is not None else build_dataset(cfg)
    with_bn = Session(bn_cfg, dataset=dataset)
    without = Session(plain_cfg, dataset=dataset)
    identical, copied = share_weights(with_bn.network, without.network)
    return with_bn, without, identical, copied


# measuring ---------------------------------------------------------------------------
def _peak_slope(net: Network, layer: int) -> float:
    act = net.blocks[layer - 1].act
    x = np.array([[-1.0, 0.0, 1.0]])
    return float(np.max(act.backward(x, act.forward(x), np.ones_like(x))))


def pre_activations(net: Network, X: np.ndarray) -> dict[int, np.ndarray]:
    """Every hidden layer's pre-activation for `X` in training mode (running stats untouched)."""
    with np.errstate(all="ignore"):
        net.forward(X, training=True, update_running=False)
    return {b.index: b.cache[b.pre_name].copy() for b in net.blocks if not b.is_output}


def _record(net: Network, X: np.ndarray, step: int, spreads: list[LayerSpread]) -> None:
    pre = pre_activations(net, X)
    for s in spreads:
        P = pre[s.layer]
        block = net.blocks[s.layer - 1]
        with np.errstate(all="ignore"):
            slope = block.act.backward(P, block.act.forward(P), np.ones_like(P))
            q = np.quantile(P, QUANTILES) if np.isfinite(P).all() else np.full(5, np.nan)
        s.steps.append(step)
        s.quantiles.append([float(v) for v in q])
        s.mean.append(float(np.mean(P)))
        s.std.append(float(np.std(P)))
        s.saturated.append(float(np.mean(slope < SATURATED_SLOPE * _peak_slope(net, s.layer))))


def checkpoints(steps: int, count: int = 6) -> list[int]:
    """`count` steps from 0 to `steps`, evenly spaced, without repeats."""
    return sorted({round(i * steps / (count - 1)) for i in range(count)}) if steps else [0]


def final_loss(losses: list[float]) -> float:
    """The mean of the last tenth of the step losses (one mini-batch is noisy)."""
    if not losses:
        return float("nan")
    k = max(1, len(losses) // 10)
    return float(np.mean(losses[-k:]))


def _train_one(session: Session, twin: Session, label: str, steps: int,
               marks: list[int]) -> TwinRun:
    """Train `session`, recording its layers at `marks`; train `twin` (the same, nudged)
    to measure how much of each loss is rounding."""
    net = session.network
    spreads = [LayerSpread(b.index, b.pre_name) for b in net.blocks if not b.is_output]
    X = session.X_train
    if 0 in marks:
        _record(net, X, 0, spreads)
    want = set(marks) - {0}

    def on_step(s: Session) -> None:
        if s.step_count in want:
            _record(s.network, X, s.step_count, spreads)

    result = session.train(steps=steps, on_step=on_step)
    chaos.nudge(twin).train(steps=steps, eval_every=max(1, steps))
    h = session.history
    start = h.loss[0] if h.loss else float("nan")
    return TwinRun(label, session.config.arch, list(h.step), list(h.loss),
                   list(h.batch_accuracy), list(h.eval_step), list(h.train_accuracy),
                   start, final_loss(h.loss), result.stopped, spreads,
                   chaos.moves(h.loss, twin.history.loss),
                   chaos.moved(final_loss(h.loss), final_loss(twin.history.loss)))


def train_twins(cfg: RunConfig, steps: int | None = None, n_checkpoints: int = 6,
                dataset: Dataset | None = None) -> tuple[TwinRun, TwinRun, bool, list[str]]:
    """Train both networks for the same steps on the same batches."""
    steps = cfg.steps if steps is None else steps
    with_bn, without, identical, copied = build_twins(cfg, dataset)
    nudged_bn, nudged_plain, _, _ = build_twins(cfg, with_bn.dataset)
    marks = checkpoints(steps, n_checkpoints)
    return (_train_one(with_bn, nudged_bn, "with BN", steps, marks),
            _train_one(without, nudged_plain, "without BN", steps, marks), identical, copied)


def verdict(start: float, final: float, chance: float, stopped: bool = False) -> str:
    if stopped or not math.isfinite(final):
        return "diverged"
    if final > DIVERGED_ABOVE * max(start, chance):
        return "diverged"
    if final <= TRAINS_BELOW * chance:
        return "trains"
    return "slow"


def lr_sweep(cfg: RunConfig, lrs: list[float] | tuple[float, ...] = DEFAULT_LRS,
             steps: int | None = None, dataset: Dataset | None = None) -> list[SweepRow]:
    """Both networks for `steps` steps at each learning rate, from the same start."""
    lrs = check_lrs(lrs)
    steps = cfg.steps if steps is None else steps
    dataset = dataset if dataset is not None else build_dataset(cfg)
    chance = math.log(dataset.n_classes)
    rows: list[SweepRow] = []
    for lr in lrs:
        with_bn, without, _, _ = build_twins(replace(cfg, lr=lr), dataset)
        nudged = build_twins(replace(cfg, lr=lr), dataset)[:2]
        cells = []
        for s, twin in zip((with_bn, without), nudged, strict=True):
            result = s.train(steps=steps, eval_every=max(1, steps))
            start = s.history.loss[0] if s.history.loss else float("nan")
            if not s.history.loss and result.stopped:
                start = float("inf")
            final = final_loss(s.history.loss) if s.history.loss else float("nan")
            twin_result = chaos.nudge(twin).train(steps=steps, eval_every=max(1, steps))
            twin_final = final_loss(twin.history.loss) if twin.history.loss else float("nan")
            move = chaos.moved(final, twin_final)
            said = verdict(start, final, chance, result.stopped is not None)
            # a run on the edge: the same run nudged in its 14th digit is judged otherwise,
            # so which side it falls on is the CPU's rounding
            if said != verdict(start, twin_final, chance, twin_result.stopped is not None):
                said = "edge"
            cells.append(SweepCell(start, final, said, move))
        rows.append(SweepRow(lr, cells[0], cells[1]))
    return rows


def check_lrs(lrs: list[float] | tuple[float, ...]) -> list[float]:
    out = [float(x) for x in lrs]
    if not out:
        raise BntuiError("the learning-rate sweep needs at least one learning rate")
    if len(out) > MAX_LRS:
        raise BntuiError(f"at most {MAX_LRS} learning rates in the sweep (got {len(out)})")
    for x in out:
        if not (math.isfinite(x) and x > 0):
            raise BntuiError(f"learning rates must be positive finite numbers (got {x:g})")
    return out


def parse_lrs(text: str) -> list[float]:
    """'0.01,0.1,1' → [0.01, 0.1, 1.0], or BntuiError naming the bad item."""
    items = [t.strip() for t in str(text).split(",")]
    out: list[float] = []
    for t in items:
        if not t:
            raise BntuiError(f"learning rates '{text}': an empty item (write e.g. 0.01,0.1,1)")
        try:
            out.append(float(t))
        except ValueError:
            raise BntuiError(f"learning rates '{text}': '{t}' is not a number") from None
    return check_lrs(out)


def run_bn_lab(cfg: RunConfig, lrs: list[float] | tuple[float, ...] = DEFAULT_LRS,
               steps: int | None = None, sweep_steps: int | None = None,
               n_checkpoints: int = 6) -> BnLabResult:
    """The whole lab: side-by-side training at `cfg.lr`, then the learning-rate sweep."""
    cfg.validate()
    lrs = check_lrs(lrs)
    steps = cfg.steps if steps is None else steps
    if steps < 1:
        raise BntuiError(f"the lab needs at least 1 training step (got {steps})")
    sweep_steps = steps if sweep_steps is None else sweep_steps
    if sweep_steps < 1:
        raise BntuiError(f"the sweep needs at least 1 step per run (got {sweep_steps})")
    cfg = replace(cfg, steps=steps)
    dataset = build_dataset(cfg)
    bn_run, plain_run, identical, copied = train_twins(cfg, steps, n_checkpoints, dataset)
    sweep = lr_sweep(cfg, lrs, sweep_steps, dataset)
    return BnLabResult(cfg, bn_run.arch, plain_run.arch, identical, copied, bn_run, plain_run,
                       sweep, sweep_steps, math.log(dataset.n_classes))
