"""Lab "Batch size": what BatchNorm's batch statistics do when the batch is small.

Four demonstrations, each on a network trained by an engine `Session`:

(a) `batch_vs_running`: after training with mini-batches of size B, the batch mean and
    variance of one BatchNorm layer over several batches, beside the running mean and
    variance that eval mode uses.  (The batch variance is the biased one, used to
    normalise; `running_var` keeps the unbiased one, as torch does.)
(b) `pair_demo`: with a batch of 2, every feature of `Znorm` is ±√(var / (var + ε)),
    whatever the two samples are: `Z0 = ±(z₁ − z₂)/2` and `var = ((z₁ − z₂)/2)²`, so
    `Znorm = Z0 / √(var + ε)` keeps only which of the two is larger.
(c) `sample_in_batches`: one sample put into K random batches of size B: in training
    mode its logits change with its batch mates; in eval mode they are the same every
    time (the running statistics do not depend on the batch).
(d) `size_gap`: for each batch size of a list, a network trained with that batch size,
    then training-mode and eval-mode passes over the same batches: loss, accuracy, the
    share of samples whose predicted class flips, and the mean |Zbn_train − Zbn_eval|
    of one layer.  The gap between the two modes grows as the batch shrinks.

All passes here use `update_running=False`: looking never changes the running statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from bntui.engine.batchnorm import train_vs_eval
from bntui.engine.config import RunConfig
from bntui.engine.datasets import Dataset
from bntui.engine.errors import BntuiError
from bntui.engine.jsonable import jsonable
from bntui.engine.labs import chaos
from bntui.engine.labs.with_without_bn import effective_lr
from bntui.engine.network import Network
from bntui.engine.session import Session, build_dataset

DEFAULT_SIZES: tuple[int | None, ...] = (2, 4, 8, 16, 32, 64, None)  # None: the full set
DEFAULT_BATCH = 8
MAX_SIZES = 16
LAB_DEFAULT = RunConfig(
    dataset="moons",
    arch="16:relu,16:relu,C",
    optimizer="adam",
    steps=300,
    batch_size=DEFAULT_BATCH,
)


def _rng(seed: int, part: int) -> np.random.Generator:
    return np.random.default_rng([seed, 5, part])


def bn_layers(net: Network) -> list[int]:
    return [b.index for b in net.blocks if b.bn is not None]


def pick_layer(net: Network, layer: int | None) -> int:
    layers = bn_layers(net)
    if not layers:
        raise BntuiError(
            "this network has no BatchNorm layer: the batch-size lab needs one (BatchNorm "
            "is a block's default: drop ':nobn', ':ln', ':gn=G' or ':rms' from a block of "
            "the arch)"
        )
    if layer is None:
        return layers[0]
    if layer not in layers:
        blocks = net.blocks
        norm = blocks[layer - 1].norm if 1 <= layer <= len(blocks) else None
        has = f" (it has {norm.title}, whose statistics are per sample)" if norm else ""
        raise BntuiError(
            f"layer {layer} has no BatchNorm{has}; layers with BatchNorm: "
            f"{', '.join(map(str, layers))}"
        )
    return layer


def size_label(size: int | None) -> str:
    return "full" if size is None else str(size)


# (a) batch statistics vs running statistics ----------------------------------------------
@dataclass
class BatchVsRunning:
    layer: int
    batch_size: int
    batch_mu: np.ndarray  # (K, D): each batch's mean
    batch_var: np.ndarray  # (K, D): each batch's biased variance
    running_mean: np.ndarray  # (D,)
    running_var: np.ndarray  # (D,)
    mean_abs_zbn_diff: float  # mean |Zbn_train − Zbn_eval| over the K batches

    def to_dict(self) -> dict[str, object]:
        return {"layer": self.layer, "batch_size": self.batch_size,
                "batch_mu": self.batch_mu.tolist(), "batch_var": self.batch_var.tolist(),
                "running_mean": self.running_mean.tolist(),
                "running_var": self.running_var.tolist(),
                "mean_abs_zbn_diff": self.mean_abs_zbn_diff}


def random_batches(n: int, size: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`count` batches of `size` distinct row indices each."""
    return [rng.choice(n, size=size, replace=False) for _ in range(count)]


def layer_input(net: Network, X: np.ndarray, layer: int) -> np.ndarray:
    """The `Z` that reaches block `layer`'s BatchNorm when `X` is one training batch."""
    net.forward(X, training=True, update_running=False)
    return net.blocks[layer - 1].cache["Z"]


def batch_vs_running(session: Session, layer: int | None = None, batch_size: int | None = None,
                     batches: int = 8) -> BatchVsRunning:
    net = session.network
    layer = pick_layer(net, layer)
    n = session.X_train.shape[0]
    size = min(batch_size or session.batch_size, n)
    if size < 2:
        raise BntuiError("batch statistics need a batch of at least 2")
    bn = net.blocks[layer - 1].bn
    assert bn is not None
    mus, vars_, diffs = [], [], []
    with np.errstate(all="ignore"):
        for idx in random_batches(n, size, batches, _rng(session.config.seed, 1)):
            out = train_vs_eval(bn, layer_input(net, session.X_train[idx], layer))
            mus.append(out["batch_mu"])
            vars_.append(out["batch_var"])
            diffs.append(float(np.mean(np.abs(out["Zbn_diff"]))))
    return BatchVsRunning(layer, size, np.array(mus), np.array(vars_),
                          bn.running_mean.copy(), bn.running_var.copy(), float(np.mean(diffs)))


# (b) a batch of two --------------------------------------------------------------------
def pair_znorm_magnitude(Z: np.ndarray, eps: float) -> np.ndarray:
    """|Znorm| of each feature for a batch of two rows: √(var / (var + ε)), var = (Δ/2)²."""
    half = (Z[0] - Z[1]) / 2.0
    var = half * half
    return np.sqrt(var / (var + eps))


@dataclass
class PairDemo:
    layer: int
    rows: tuple[int, int]  # training-set indices of the two samples
    eps: float
    Z: np.ndarray  # (2, D)
    var: np.ndarray  # (D,)
    Znorm: np.ndarray  # (2, D), training mode
    expected: np.ndarray  # (D,): √(var / (var + ε))
    max_error: float  # max | |Znorm| − expected |
    Znorm_eval: np.ndarray  # (2, D), eval mode: any values

    def to_dict(self) -> dict[str, object]:
        return {"layer": self.layer, "rows": list(self.rows), "eps": self.eps,
                "Z": self.Z.tolist(), "var": self.var.tolist(), "Znorm": self.Znorm.tolist(),
                "expected": self.expected.tolist(), "max_error": self.max_error,
                "Znorm_eval": self.Znorm_eval.tolist()}


def pair_demo(session: Session, layer: int | None = None,
              rows: tuple[int, int] | None = None) -> PairDemo:
    net = session.network
    layer = pick_layer(net, layer)
    n = session.X_train.shape[0]
    if rows is None:
        a, b = _rng(session.config.seed, 2).choice(n, size=2, replace=False)
        rows = (int(a), int(b))
    bn = net.blocks[layer - 1].bn
    assert bn is not None
    with np.errstate(all="ignore"):
        Z = layer_input(net, session.X_train[list(rows)], layer).copy()
        out = train_vs_eval(bn, Z)
    expected = pair_znorm_magnitude(Z, bn.eps)
    Znorm = out["Znorm_train"]
    err = float(np.max(np.abs(np.abs(Znorm) - expected)))
    return PairDemo(layer, rows, bn.eps, Z, out["batch_var"], Znorm, expected, err,
                    out["Znorm_eval"])


# (c) one sample in many batches ------------------------------------------------------------
@dataclass
class SampleInBatches:
    sample: int  # training-set index
    label: int
    batch_size: int
    logits_train: np.ndarray  # (K, C): training mode, one row per batch
    logits_eval: np.ndarray  # (K, C): eval mode

    @property
    def spread_train(self) -> float:
        """The largest max − min of a logit over the K batches, training mode."""
        return float(np.max(np.ptp(self.logits_train, axis=0)))

    @property
    def spread_eval(self) -> float:
        return float(np.max(np.ptp(self.logits_eval, axis=0)))

    @property
    def predictions_train(self) -> list[int]:
        return [int(k) for k in self.logits_train.argmax(axis=1)]

    @property
    def prediction_eval(self) -> int:
        return int(self.logits_eval[0].argmax())

    def to_dict(self) -> dict[str, object]:
        return {"sample": self.sample, "label": self.label, "batch_size": self.batch_size,
                "logits_train": self.logits_train.tolist(),
                "logits_eval": self.logits_eval.tolist(),
                "spread_train": self.spread_train, "spread_eval": self.spread_eval,
                "predictions_train": self.predictions_train,
                "prediction_eval": self.prediction_eval}


def sample_in_batches(session: Session, sample: int = 0, batch_size: int | None = None,
                      batches: int = 20) -> SampleInBatches:
    """Sample `sample` at row 0 of `batches` batches, its batch mates drawn at random."""
    net = session.network
    pick_layer(net, None)
    X, y = session.X_train, session.y_train
    n = X.shape[0]
    if not 0 <= sample < n:
        raise BntuiError(f"sample must be between 0 and {n - 1} (got {sample})")
    size = min(batch_size or session.batch_size, n)
    if size < 2:
        raise BntuiError("the sample needs at least one batch mate (batch size 2 or more)")
    others = np.delete(np.arange(n), sample)
    rng = _rng(session.config.seed, 3)
    train_rows, eval_rows = [], []
    with np.errstate(all="ignore"):
        for _ in range(batches):
            idx = np.concatenate([[sample], rng.choice(others, size=size - 1, replace=False)])
            train_rows.append(net.forward(X[idx], training=True, update_running=False)[0].copy())
            eval_rows.append(net.forward(X[idx], training=False, update_running=False)[0].copy())
    return SampleInBatches(sample, int(y[sample]), size, np.array(train_rows),
                           np.array(eval_rows))


# (d) the train-vs-eval gap by batch size --------------------------------------------------
@dataclass
class SizeGap:
    size: int | None  # None: the full training set
    batch_size: int  # the batch size actually used
    loss_train_mode: float
    loss_eval_mode: float
    acc_train_mode: float
    acc_eval_mode: float
    flipped: float  # share of samples whose predicted class differs between the modes
    zbn_gap: float  # mean |Zbn_train − Zbn_eval| at the layer
    val_accuracy: float | None  # eval mode, on the validation split
    stopped: str | None
    # how far each figure moves when the network is trained again from initial weights
    # nudged by chaos.NUDGE (by field name): rounding, where the run is chaotic
    moves: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return size_label(self.size)

    def chaotic(self, name: str) -> bool:
        return chaos.chaotic(self.moves.get(name))

    def to_dict(self) -> dict[str, object]:
        return {"size": self.label, "batch_size": self.batch_size,
                "loss_train_mode": float(self.loss_train_mode),
                "loss_eval_mode": float(self.loss_eval_mode),
                "acc_train_mode": self.acc_train_mode, "acc_eval_mode": self.acc_eval_mode,
                "flipped": self.flipped, "zbn_gap": float(self.zbn_gap),
                "val_accuracy": self.val_accuracy, "stopped": self.stopped}


def mode_gap(session: Session, layer: int | None = None) -> SizeGap:
    """Training mode vs eval mode over the training set cut into the session's batches."""
    net = session.network
    layer = pick_layer(net, layer)
    X, y = session.X_train, session.y_train
    n, size = X.shape[0], session.batch_size
    order = _rng(session.config.seed, 4).permutation(n)
    count = max(1, n // size)
    lt, le, at, ae, fl, gap, seen = 0.0, 0.0, 0, 0, 0, 0.0, 0
    block = net.blocks[layer - 1]
    with np.errstate(all="ignore"):
        for k in range(count):
            idx = order[k * size:(k + 1) * size]
            Xb, yb = X[idx], y[idx]
            m = len(idx)
            lt += net.loss(Xb, yb, training=True, update_running=False) * m
            pt = net.loss_layer.cache["logits"].argmax(axis=1)
            z_train = block.cache["Zbn"].copy()
            le += net.loss(Xb, yb, training=False, update_running=False) * m
            pe = net.loss_layer.cache["logits"].argmax(axis=1)
            gap += float(np.mean(np.abs(z_train - block.cache["Zbn"]))) * m
            at += int(np.sum(pt == yb))
            ae += int(np.sum(pe == yb))
            fl += int(np.sum(pt != pe))
            seen += m
    ev = session.evaluate()
    return SizeGap(None, size, lt / seen, le / seen, at / seen, ae / seen, fl / seen,
                   gap / seen, ev["val_accuracy"], session.stopped)


def size_gap(cfg: RunConfig, sizes: list[int | None] | tuple[int | None, ...] = DEFAULT_SIZES,
             steps: int | None = None, layer: int | None = None,
             dataset: Dataset | None = None) -> list[SizeGap]:
    """For each batch size, a fresh network trained `steps` steps with it, then `mode_gap`."""
    sizes = check_sizes(sizes)
    steps = cfg.steps if steps is None else steps
    dataset = dataset if dataset is not None else build_dataset(cfg)
    out: list[SizeGap] = []
    for size in sizes:
        runs = []
        for nudged in (False, True):
            session = Session(replace(cfg, batch_size=size), dataset=dataset)
            if nudged:
                chaos.nudge(session)
            session.train(steps=steps, eval_every=max(1, steps))
            runs.append(replace(mode_gap(session, layer), size=size))
        gap, twin = runs
        gap.moves = {name: chaos.moved(float(getattr(gap, name)), float(getattr(twin, name)))
                     for name in NUMBERS if getattr(gap, name) is not None}
        out.append(gap)
    return out


NUMBERS = ("loss_train_mode", "loss_eval_mode", "acc_train_mode", "acc_eval_mode", "flipped",
           "zbn_gap", "val_accuracy")


def check_sizes(sizes: list[int | None] | tuple[int | None, ...]) -> list[int | None]:
    out = list(sizes)
    if not out:
        raise BntuiError("the batch-size list is empty (write e.g. 2,4,8,full)")
    if len(out) > MAX_SIZES:
        raise BntuiError(f"at most {MAX_SIZES} batch sizes (got {len(out)})")
    for s in out:
        if s is not None and (not isinstance(s, (int, np.integer)) or s < 2):
            raise BntuiError(
                f"batch sizes must be whole numbers of at least 2, or 'full' (got {s}): "
                "BatchNorm cannot normalise a batch of 1 in training"
            )
    return out


def parse_sizes(text: str) -> list[int | None]:
    """'2,4,8,full' → [2, 4, 8, None], or BntuiError naming the bad item."""
    out: list[int | None] = []
    for t in (t.strip().lower() for t in str(text).split(",")):
        if not t:
            raise BntuiError(f"batch sizes '{text}': an empty item (write e.g. 2,4,8,full)")
        if t in ("full", "all"):
            out.append(None)
            continue
        try:
            out.append(int(t))
        except ValueError:
            raise BntuiError(
                f"batch sizes '{text}': '{t}' is not a whole number or 'full'"
            ) from None
    return check_sizes(out)


# the whole lab ---------------------------------------------------------------------------
@dataclass
class BatchLabResult:
    config: RunConfig
    batch_size: int
    layer: int
    stats: BatchVsRunning
    pair: PairDemo
    sample: SampleInBatches
    gaps: list[SizeGap]

    def to_dict(self) -> dict[str, object]:
        c = self.config
        return jsonable({  # type: ignore[return-value]
                "lab": "batch", "dataset": c.dataset, "arch": c.arch,
                "optimizer": c.optimizer, "lr": effective_lr(c), "steps": c.steps,
                "seed": c.seed,
                "batch_size": self.batch_size, "layer": self.layer,
                "batch_vs_running": self.stats.to_dict(), "pair": self.pair.to_dict(),
                "sample_in_batches": self.sample.to_dict(),
                "size_gap": [g.to_dict() for g in self.gaps]})


def run_batch_lab(cfg: RunConfig,
                  sizes: list[int | None] | tuple[int | None, ...] = DEFAULT_SIZES,
                  steps: int | None = None, layer: int | None = None, sample: int = 0,
                  batches: int = 20) -> BatchLabResult:
    """(a)–(c) on one network trained with `cfg.batch_size` (8 if unset); (d) over `sizes`."""
    cfg.validate()
    sizes = check_sizes(sizes)
    steps = cfg.steps if steps is None else steps
    cfg = replace(cfg, steps=steps, batch_size=cfg.batch_size or DEFAULT_BATCH)
    if cfg.batch_size is not None and cfg.batch_size < 2:
        raise BntuiError("batch size 1 with BatchNorm cannot be trained; use 2 or more")
    dataset = build_dataset(cfg)
    session = Session(cfg, dataset=dataset)
    layer = pick_layer(session.network, layer)
    session.train(steps=steps, eval_every=max(1, steps))
    stats = batch_vs_running(session, layer, batches=8)
    pair = pair_demo(session, layer)
    one = sample_in_batches(session, sample, batches=batches)
    gaps = size_gap(cfg, sizes, steps, layer, dataset)
    return BatchLabResult(cfg, session.batch_size, layer, stats, pair, one, gaps)
