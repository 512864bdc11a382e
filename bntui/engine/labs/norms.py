"""Lab "Which normalization, and why": BatchNorm, LayerNorm, GroupNorm, RMSNorm and none.

From a `RunConfig` the lab builds five variants of the same network that differ only in
the normalization of the hidden blocks (`bn`, `ln`, `gn=G`, `rms`, none); the output block
is the same in all five, as the config's architecture says (the lab's own setting has
none there, so a variant's logits depend only on its hidden normalization).  GroupNorm
takes, in each block, the largest of 4, 2, 1 groups that divides the block's width (or
the `groups` asked for).  All five start from bit-identical Dense weights — the Dense
layers draw from the seeded generator before and after a normalization is built, and no
normalization draws, so the same seed gives the same `W` and `b`; `share_weights` checks
it and copies any draw that differs — and see the same batches in the same order.

Four measurements:

(a) `sample_spread`: one training sample put at row 0 of `BATCHES` random batches (its
    batch mates drawn from the rest of the training set), each passed in training mode:
    the spread (max − min over the batches) of that sample's normalized output in every
    hidden block.  BatchNorm's moves with the batch mates; LayerNorm's, GroupNorm's and
    RMSNorm's statistics are the sample's own, so their output is bit-identical whatever
    the batch (spread exactly 0), as is the plain network's `Z`.
(b) `pair_collapse`: a batch of two in training mode.  BatchNorm's `Znorm` is
    ±√(var/(var+ε)) in every feature — ±1 but for features where the two samples nearly
    agree: only which sample is larger survives — while the per-sample normalizations
    keep their spread.  Reported: the share of |Znorm| within `NEAR_ONE` (1 %) of 1, the
    median |Znorm|, and how far BatchNorm's |Znorm| is from √(var/(var+ε)).
(c) `mode_gap`: after training, training mode against eval mode over the training set
    cut into batches: BatchNorm uses batch statistics in one and running statistics in
    the other, so its output differs; the others compute the very same thing (gap
    exactly 0).
(d) `train_variants` and `sweep_row`: the five loss curves at the config's learning
    rate, then a short run of each variant at each learning rate of a grid, judged as in
    the with/without-BN lab ("trains", "slow", "diverged", "edge").  Each run is trained
    a second time from weights nudged in their 14th digit (`chaos`), so a figure that is
    the CPU's rounding is marked.

All probes pass with `update_running=False`: looking never changes running statistics.

`LAB_DEFAULT`: two tanh blocks of 32 on moons, no normalization at the output, full-batch
SGD at lr 1 for 200 steps (about 8 s of CPU for the whole lab).  Measured (seed 0; seeds
1–3 agree): (a)–(c) as the math says — BatchNorm's spread and gap well above 0, the
others' exactly 0; in the sweep the plain network is slow at lr 0.01 (final loss
0.40–0.44 against 0.24–0.32 for the normalized ones) and at lr 10 LayerNorm and GroupNorm
blow up with the plain network (final loss ≈ 80; torch's layers, from the same weights,
follow the same losses), while BatchNorm and RMSNorm train or sit on the edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from bntui.engine.arch import MAX_GROUPS, NORMS, ArchSpec, parse_arch
from bntui.engine.config import RunConfig
from bntui.engine.datasets import Dataset
from bntui.engine.errors import BntuiError
from bntui.engine.jsonable import jsonable
from bntui.engine.labs import chaos
from bntui.engine.labs.with_without_bn import (
    SweepCell,
    check_lrs,
    effective_lr,
    final_loss,
    share_weights,
    verdict,
)
from bntui.engine.network import Network
from bntui.engine.session import Session, build_dataset

KINDS: tuple[str, ...] = (*NORMS, "none")  # the grammar's normalizations, and none
LABELS = {"bn": "BatchNorm", "ln": "LayerNorm", "gn": "GroupNorm", "rms": "RMSNorm",
          "none": "none"}
GROUP_CHOICES: tuple[int, ...] = (4, 2, 1)  # GroupNorm: the largest that divides the width
DEFAULT_LRS: tuple[float, ...] = (0.01, 0.1, 1.0, 3.0, 10.0)
BATCHES = 20  # (a): the random batches the sample is put in
PROBE_BATCH = 16  # (a), (c): the batch size when the config trains on the full set
NEAR_ONE = 0.01  # (b): |Znorm| within this of 1 counts as collapsed to ±1

LAB_DEFAULT = RunConfig(
    dataset="moons",
    arch="32:tanh,32:tanh,C:nobn",
    optimizer="sgd",
    lr=1.0,
    steps=200,
)


def _rng(seed: int, part: int) -> np.random.Generator:
    return np.random.default_rng([seed, 14, part])


# building the variants ---------------------------------------------------------------
def pick_groups(width: int, groups: int | None = None) -> int:
    """GroupNorm's groups for a block of `width`: `groups` if asked (it must divide the
    width), else the largest of GROUP_CHOICES that does."""
    if groups is not None:
        if width % groups:
            raise BntuiError(f"--groups {groups} does not divide the width {width} of a hidden "
                             "block (GroupNorm splits a block's features into equal groups)")
        return groups
    return next(g for g in GROUP_CHOICES if width % g == 0)


def variant_archs(arch: str, groups: int | None = None) -> dict[str, str]:
    """The five architectures (kind → spec): the hidden blocks' normalization replaced,
    everything else — widths, activations, biases, the output block — as `arch` says."""
    spec = parse_arch(arch)
    if len(spec.blocks) < 2:
        raise BntuiError(
            f"arch '{arch}' has no hidden block: this lab compares the normalization of "
            "hidden layers (e.g. '32:tanh,32:tanh,C:nobn')"
        )
    if groups is not None and not 1 <= groups <= MAX_GROUPS:
        raise BntuiError(f"--groups must be between 1 and {MAX_GROUPS} (got {groups})")
    *hidden, out = spec.blocks
    archs: dict[str, str] = {}
    for kind in KINDS:
        blocks = []
        for b in hidden:
            assert b.width is not None  # only the output block may be C
            if kind == "gn":
                blocks.append(replace(b, norm="gn", groups=pick_groups(b.width, groups)))
            else:
                blocks.append(replace(b, norm=None if kind == "none" else kind, groups=None))
        archs[kind] = ArchSpec((*blocks, out)).to_string()
    return archs


def gn_groups(arch: str, groups: int | None = None) -> list[int]:
    """The groups GroupNorm gets in each hidden block."""
    return [b.groups or 1 for b in parse_arch(variant_archs(arch, groups)["gn"]).blocks[:-1]]


def build_variants(cfg: RunConfig, dataset: Dataset, groups: int | None = None
                   ) -> tuple[dict[str, Session], bool, list[str]]:
    """The five sessions on one dataset object, their Dense weights those of the BN
    variant: whether they already were bit-identical, and what had to be copied."""
    sessions = {k: Session(replace(cfg, arch=a), dataset=dataset)
                for k, a in variant_archs(cfg.arch, groups).items()}
    identical, copied = True, []
    for kind in KINDS[1:]:
        same, what = share_weights(sessions["bn"].network, sessions[kind].network)
        identical = identical and same
        copied += [f"{kind}:{name}" for name in what]
    return sessions, identical, copied


def probe_batch(cfg: RunConfig, n: int) -> int:
    """The batch size of (a) and (c): the training batch size, else PROBE_BATCH."""
    size = cfg.batch_size if cfg.batch_size is not None else PROBE_BATCH
    return max(2, min(size, n))


def hidden(net: Network) -> list[int]:
    return [b.index for b in net.blocks if not b.is_output]


def _outputs(net: Network, X: np.ndarray, training: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """Every hidden block's normalized output (its activation's input: Zbn, Zln, Zgn,
    Zrms, or Z without a normalization) and the logits."""
    with np.errstate(all="ignore"):
        logits = net.forward(X, training=training, update_running=False)
    pre = [net.blocks[i - 1].cache[net.blocks[i - 1].pre_name].copy() for i in hidden(net)]
    return pre, np.array(logits, copy=True)


# (a) one sample in many batches ------------------------------------------------------
@dataclass
class SampleSpread:
    kind: str
    names: list[str]  # each hidden block's output: Zbn, Zln, Zgn, Zrms or Z
    spread: list[float]  # per hidden block: the largest max − min of a feature over batches
    logits_spread: float
    identical: bool  # every hidden block's output bit-identical in every batch
    first: list[list[float]]  # the first hidden block's output of the sample, per batch

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "names": self.names, "spread": self.spread,
                "logits_spread": self.logits_spread, "identical": self.identical,
                "first_layer": self.first}


def sample_batches(n: int, sample: int, size: int, count: int, seed: int) -> list[np.ndarray]:
    """`count` batches of `size` rows, `sample` at row 0, its mates drawn at random."""
    if not 0 <= sample < n:
        raise BntuiError(f"sample must be between 0 and {n - 1} (got {sample})")
    others = np.delete(np.arange(n), sample)
    rng = _rng(seed, 1)
    return [np.concatenate([[sample], rng.choice(others, size=size - 1, replace=False)])
            for _ in range(count)]


def sample_spread(kind: str, session: Session, batches: list[np.ndarray]) -> SampleSpread:
    net = session.network
    pres: list[list[np.ndarray]] = []
    logits = []
    for idx in batches:
        pre, out = _outputs(net, session.X_train[idx], training=True)
        pres.append([p[0] for p in pre])
        logits.append(out[0])
    per_layer = [np.array([row[j] for row in pres]) for j in range(len(pres[0]))]
    L = np.array(logits)
    identical = all(np.array_equal(a, a[:1].repeat(len(a), 0)) for a in per_layer)
    return SampleSpread(kind, [net.blocks[i - 1].pre_name for i in hidden(net)],
                        [float(np.max(np.ptp(a, axis=0))) for a in per_layer],
                        float(np.max(np.ptp(L, axis=0))), identical, per_layer[0].tolist())


# (b) a batch of two ------------------------------------------------------------------
@dataclass
class PairCollapse:
    kind: str
    near_one: list[float] | None  # per hidden block: share of |Znorm| within NEAR_ONE of 1
    median_abs: list[float] | None  # per hidden block: the median |Znorm|
    Znorm: list[list[float]] | None  # the first hidden block's Znorm (2 × D)
    max_error: float | None  # BatchNorm: max | |Znorm| − √(var/(var+ε)) | over its blocks

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "near_one": self.near_one, "median_abs": self.median_abs,
                "first_layer_znorm": self.Znorm, "max_error": self.max_error}


def pair_collapse(kind: str, session: Session, rows: tuple[int, int]) -> PairCollapse:
    net = session.network
    _outputs(net, session.X_train[list(rows)], training=True)
    blocks = [net.blocks[i - 1] for i in hidden(net)]
    if kind == "none":
        return PairCollapse(kind, None, None, None, None)
    znorms = [b.cache["Znorm"] for b in blocks]
    near = [float(np.mean(np.abs(np.abs(z) - 1.0) < NEAR_ONE)) for z in znorms]
    err = None
    if kind == "bn":
        err = 0.0
        for b, z in zip(blocks, znorms, strict=True):
            assert b.bn is not None
            var = b.cache["var"]
            err = max(err, float(np.max(np.abs(np.abs(z) - np.sqrt(var / (var + b.bn.eps))))))
    return PairCollapse(kind, near, [float(np.median(np.abs(z))) for z in znorms],
                        znorms[0].tolist(), err)


# (c) training mode against eval mode -------------------------------------------------
@dataclass
class ModeGap:
    kind: str
    batch_size: int
    gap: list[float]  # per hidden block: mean |output_train − output_eval|
    max_gap: float  # the largest over every hidden block and entry
    logits_gap: float  # mean |logits_train − logits_eval|
    flipped: float  # share of samples whose predicted class differs between the modes

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "batch_size": self.batch_size, "gap": self.gap,
                "max_gap": self.max_gap, "logits_gap": self.logits_gap,
                "flipped": self.flipped}


def mode_gap(kind: str, session: Session, size: int) -> ModeGap:
    """Both modes over the training set cut into batches of `size` (a seeded shuffle)."""
    net = session.network
    X = session.X_train
    order = _rng(session.config.seed, 3).permutation(len(X))
    count = max(1, len(X) // size)
    sums = np.zeros(len(hidden(net)))
    worst, lgap, flips, seen = 0.0, 0.0, 0, 0
    for k in range(count):
        Xb = X[order[k * size:(k + 1) * size]]
        pre_t, out_t = _outputs(net, Xb, training=True)
        pre_e, out_e = _outputs(net, Xb, training=False)
        m = len(Xb)
        with np.errstate(all="ignore"):
            for j, (a, b) in enumerate(zip(pre_t, pre_e, strict=True)):
                d = np.abs(a - b)
                sums[j] += float(np.mean(d)) * m
                worst = max(worst, float(np.max(d)))
            lgap += float(np.mean(np.abs(out_t - out_e))) * m
        flips += int(np.sum(out_t.argmax(axis=1) != out_e.argmax(axis=1)))
        seen += m
    return ModeGap(kind, size, [float(s / seen) for s in sums], worst, lgap / seen,
                   flips / seen)


# (d) training curves and the learning-rate sweep -------------------------------------
@dataclass
class Curve:
    kind: str
    arch: str
    loss: list[float]  # one per step, the same batches for every variant
    start_loss: float
    final_loss: float  # mean of the last tenth of the step losses
    stopped: str | None
    train_accuracy: float | None = None  # eval mode, every training row, at the end
    # how far each step's loss, and the final loss, move when the run is trained again
    # from initial weights nudged by chaos.NUDGE (rounding, where it is chaotic), and
    # how the nudged run ended
    moves: list[float] = field(default_factory=list)
    final_move: float | None = None
    twin_stopped: str | None = None
    twin_final: float = float("nan")

    @property
    def chaotic(self) -> bool:
        return chaos.chaotic(self.final_move)

    def chaotic_at(self, step: int) -> bool:
        """Whether the loss at `step` (1-based) is the CPU's rounding in its last digits."""
        return step <= len(self.moves) and chaos.chaotic(self.moves[step - 1])

    def cell(self, chance: float) -> SweepCell:
        """The run judged as the sweep judges it ("edge" when the nudged run is judged
        otherwise: which side it falls on is the CPU's rounding)."""
        said = verdict(self.start_loss, self.final_loss, chance, self.stopped is not None)
        if said != verdict(self.start_loss, self.twin_final, chance,
                           self.twin_stopped is not None):
            said = "edge"
        return SweepCell(self.start_loss, self.final_loss, said, self.final_move)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "arch": self.arch, "loss": self.loss,
                "start_loss": self.start_loss, "final_loss": self.final_loss,
                "final_chaotic": self.chaotic, "stopped": self.stopped,
                "train_accuracy": self.train_accuracy}


@dataclass
class SweepRow:
    lr: float
    cells: dict[str, SweepCell]  # kind → its run

    def to_dict(self) -> dict[str, object]:
        return {"lr": self.lr, **{k: c.to_dict() for k, c in self.cells.items()}}


def _run(kind: str, session: Session, twin: Session, steps: int) -> Curve:
    """Train `session`, and `twin` (the same, nudged) to measure its rounding."""
    result = session.train(steps=steps, eval_every=max(1, steps))
    twin_result = chaos.nudge(twin).train(steps=steps, eval_every=max(1, steps))
    h = session.history
    start = h.loss[0] if h.loss else (float("inf") if result.stopped else float("nan"))
    final, twin_final = final_loss(h.loss), final_loss(twin.history.loss)
    acc = h.train_accuracy[-1] if h.train_accuracy else None
    return Curve(kind, session.config.arch, list(h.loss), start, final, result.stopped, acc,
                 chaos.moves(h.loss, twin.history.loss), chaos.moved(final, twin_final),
                 twin_result.stopped, twin_final)


def train_variants(cfg: RunConfig, dataset: Dataset, groups: int | None = None,
                   steps: int | None = None) -> tuple[dict[str, Session], list[Curve], bool,
                                                      list[str]]:
    """The five networks trained `steps` (default `cfg.steps`) steps at `cfg.lr` on the
    same batches."""
    steps = cfg.steps if steps is None else steps
    sessions, identical, copied = build_variants(cfg, dataset, groups)
    twins, _, _ = build_variants(cfg, dataset, groups)
    curves = [_run(kind, sessions[kind], twins[kind], steps) for kind in KINDS]
    return sessions, curves, identical, copied


def sweep_row(cfg: RunConfig, lr: float, steps: int, dataset: Dataset,
              groups: int | None = None, curves: list[Curve] | None = None) -> SweepRow:
    """The five variants, `steps` steps each at learning rate `lr`, from the same start
    (`curves`: these runs, already trained — the lab's curves when `lr` is the config's)."""
    if curves is None:
        curves = train_variants(replace(cfg, lr=lr), dataset, groups, steps)[1]
    chance = math.log(dataset.n_classes)
    return SweepRow(lr, {cv.kind: cv.cell(chance) for cv in curves})


# the whole lab -----------------------------------------------------------------------
@dataclass
class Probes:
    """(a)–(c) on the five trained networks."""

    sample: int
    label: int
    batch_size: int  # of (a) and (c)
    batches: int  # of (a)
    pair: tuple[int, int]  # the training rows of (b)
    spreads: list[SampleSpread]
    pairs: list[PairCollapse]
    gaps: list[ModeGap]


def probe(sessions: dict[str, Session], cfg: RunConfig, sample: int = 0,
          batches: int = BATCHES) -> Probes:
    """(a), (b) and (c) on the same rows for every variant."""
    any_session = sessions["bn"]
    n = any_session.X_train.shape[0]
    if n < 2:
        raise BntuiError("the training set has fewer than 2 rows: no batch to compare")
    size = probe_batch(cfg, n)
    chosen = sample_batches(n, sample, size, batches, cfg.seed)
    a, b = _rng(cfg.seed, 2).choice(n, size=2, replace=False)
    rows = (int(a), int(b))
    return Probes(
        sample, int(any_session.y_train[sample]), size, batches, rows,
        [sample_spread(k, sessions[k], chosen) for k in KINDS],
        [pair_collapse(k, sessions[k], rows) for k in KINDS],
        [mode_gap(k, sessions[k], size) for k in KINDS],
    )


@dataclass
class NormsLabResult:
    config: RunConfig
    archs: dict[str, str]
    groups: list[int]  # GroupNorm's groups in each hidden block
    weights_identical: bool
    copied: list[str]
    probes: Probes
    curves: list[Curve]
    sweep: list[SweepRow] = field(default_factory=list)
    sweep_steps: int = 0
    chance_loss: float = math.log(2)

    def trains_at(self, kind: str) -> list[float]:
        """The learning rates of the sweep at which `kind` trains."""
        return [r.lr for r in self.sweep if r.cells[kind].verdict == "trains"]

    def to_dict(self) -> dict[str, object]:
        c, p = self.config, self.probes
        return jsonable({  # type: ignore[return-value]
            "lab": "norms", "dataset": c.dataset, "arch": c.arch, "optimizer": c.optimizer,
            "lr": effective_lr(c), "steps": c.steps, "batch_size": c.batch_size,
            "seed": c.seed, "kinds": list(KINDS), "archs": self.archs,
            "gn_groups": self.groups, "weights_identical": self.weights_identical,
            "copied": self.copied, "chance_loss": self.chance_loss,
            "sample_in_batches": {"sample": p.sample, "label": p.label,
                                  "batch_size": p.batch_size, "batches": p.batches,
                                  "variants": [s.to_dict() for s in p.spreads]},
            "batch_of_two": {"rows": list(p.pair), "near_one": NEAR_ONE,
                             "variants": [s.to_dict() for s in p.pairs]},
            "train_vs_eval": {"batch_size": p.batch_size,
                              "variants": [g.to_dict() for g in p.gaps]},
            "curves": [cv.to_dict() for cv in self.curves],
            "sweep_steps": self.sweep_steps, "sweep": [r.to_dict() for r in self.sweep],
            "trains_at": {k: self.trains_at(k) for k in KINDS},
        })


def check_run(cfg: RunConfig, steps: int | None, sweep_steps: int | None,
              groups: int | None) -> tuple[RunConfig, int]:
    """The lab's configuration and sweep length, or BntuiError naming what is wrong."""
    cfg.validate()
    steps = cfg.steps if steps is None else steps
    if steps < 1:
        raise BntuiError(f"the lab needs at least 1 training step (got {steps})")
    sweep_steps = steps if sweep_steps is None else sweep_steps
    if sweep_steps < 1:
        raise BntuiError(f"the sweep needs at least 1 step per run (got {sweep_steps})")
    if cfg.batch_size is not None and cfg.batch_size < 2:
        raise BntuiError("batch size 1 with BatchNorm cannot be trained; use 2 or more")
    variant_archs(cfg.arch, groups)
    return replace(cfg, steps=steps), sweep_steps


def run_norms_lab(cfg: RunConfig, lrs: list[float] | tuple[float, ...] = DEFAULT_LRS,
                  steps: int | None = None, sweep_steps: int | None = None,
                  groups: int | None = None, sample: int = 0,
                  batches: int = BATCHES) -> NormsLabResult:
    """The five curves at `cfg.lr`, (a)–(c) on the trained networks, then the sweep."""
    lrs = check_lrs(lrs)
    cfg, sweep_steps = check_run(cfg, steps, sweep_steps, groups)
    dataset = build_dataset(cfg)
    if not 0 <= sample < dataset.n_train:
        raise BntuiError(f"sample must be between 0 and {dataset.n_train - 1} (got {sample})")
    sessions, curves, identical, copied = train_variants(cfg, dataset, groups)
    probes = probe(sessions, cfg, sample, batches)
    same = sweep_steps == cfg.steps  # the curves are the sweep's runs at cfg's rate
    sweep = [sweep_row(cfg, lr, sweep_steps, dataset, groups,
                       curves if same and lr == effective_lr(cfg) else None) for lr in lrs]
    return NormsLabResult(cfg, variant_archs(cfg.arch, groups), gn_groups(cfg.arch, groups),
                          identical, copied, probes, curves, sweep, sweep_steps,
                          math.log(dataset.n_classes))
