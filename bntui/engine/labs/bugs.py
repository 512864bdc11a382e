"""The bug zoo: named, switchable mistakes, each a real variant of the engine.

Every bug is a part of the engine with one step overridden — a `BatchNorm` step named by
its node records (`batch_var`, `root`, `grad_beta`, …), a `LayerNorm`, `GroupNorm` or
`RMSNorm` step (`centre`, `group_mean`, `mean_square`), the `SoftmaxCrossEntropy` loss
block's forward or backward, `Adam`'s bias factors — or a Dense bias before BatchNorm.
It is chosen when the network is built (`Bug.parts`, through `RunConfig.bug`): the core
engine files are untouched and no layer is swapped afterwards.  A part with an overridden
step trains on its own staged pass (the records), so the training runs, the gradient
check and the stepper all see what the mistake computes.  For each bug the lab

  * runs the gradient check on one batch, analytic (the bugged backward) against
    numerical gradients of the bugged forward (`gradcheck` differentiates the network's
    own forward, whatever its parts);
  * compares the set of tensors whose check fails with the set the bug declares: a bug in
    a backward formula breaks that tensor and everything upstream of it; a bug in a
    forward whose backward keeps the correct formulas breaks the gradients whose local
    derivative changed (and everything upstream); an optimizer or overflow bug breaks none;
  * trains the correct and the bugged engine side by side from the same data and the same
    initial weights, and reports both loss curves.

Each bug runs on its own small scenario (`scenario_config`): spiral, a hidden block of 16
with tanh (no ReLU kinks to muddy the check) normalised by the layer the bug lives in —
BatchNorm, or for the normalization family's classic mistakes LayerNorm, GroupNorm or
RMSNorm — and a BatchNorm output block, Adam, full batch.  A bug that lives in a
normalization needs a block of that kind in the network (`Bug.needs`): a run whose
architecture has none is refused, since the bug would not be in it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from bntui.engine import gradcheck as gc
from bntui.engine.batchnorm import BatchNorm
from bntui.engine.config import RunConfig
from bntui.engine.errors import BntuiError
from bntui.engine.groupnorm import GroupNorm
from bntui.engine.labs import chaos
from bntui.engine.layernorm import LayerNorm
from bntui.engine.loss import SoftmaxCrossEntropy
from bntui.engine.network import Network, Parts
from bntui.engine.optimizers import Adam
from bntui.engine.rmsnorm import RMSNorm
from bntui.engine.session import Session

TOLERANCE = 1e-4  # a tensor fails its check when its relative error is above this
CHECK_SAMPLES = 16  # sampled entries of each intermediate tensor
CHECK_BATCH = 64  # the check's batch: the first rows of the training set (errors ∝ 1/m)
UPDATE_STEPS = 30  # the first steps whose update sizes are kept

Values = dict[str, np.ndarray]


# ---------------------------------------------------------------------------------------
# the bugged parts: one step each
# ---------------------------------------------------------------------------------------
class RunningStatsBN(BatchNorm):
    """Seed 003: training normalises with the running statistics (the `else:` is missing).

    As the seed writes it: the running statistics are first moved towards the batch's,
    then used to normalise the batch — mu and var are the running values after this
    batch's update (computed without touching the layer, so a pass that does not update
    the running statistics sees the same).  The running statistics themselves still
    follow the batch's.  The backward is the engine's, derived for batch statistics.
    Eval mode is the engine's.
    """

    def _moved(self, running: np.ndarray, batch: np.ndarray) -> np.ndarray:
        if self.num_batches_tracked == 0 and self.running_init == "first_batch":
            return batch.copy()
        w = self.new_weight
        return (1.0 - w) * running + w * batch

    def _batch_stats(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = Z.shape[-2]
        mu = Z.mean(axis=-2)
        var = ((Z - mu[..., None, :]) ** 2).mean(axis=-2)
        return mu, var * (m / (m - 1)) if self.unbiased_running_var else var

    def batch_mean(self, v: Values) -> np.ndarray:
        return self._moved(v["running_mean"], self._batch_stats(v["Z"])[0])

    def batch_var(self, v: Values) -> np.ndarray:
        return self._moved(v["running_var"], self._batch_stats(v["Z"])[1])

    def update_running(self, v: Values) -> None:
        mu = v["Z"].mean(axis=-2)
        var = ((v["Z"] - mu) ** 2).mean(axis=-2)
        super().update_running({"Z": v["Z"], "mu": mu, "var": var, "std": np.sqrt(var + self.eps)})


class EpsOutsideBN(BatchNorm):
    """std = √var + ε instead of √(var + ε); the backward still uses dvar = dstd / (2·std)."""

    def root(self, v: Values) -> np.ndarray:
        return np.sqrt(v["var"]) + self.eps


class UnbiasedVarBN(BatchNorm):
    """Normalises with the unbiased variance Σ Z0² / (m − 1); the backward assumes 1/m."""

    def batch_var(self, v: Values) -> np.ndarray:
        Z0 = v["Z0"]
        return (Z0 * Z0).sum(axis=-2) / (Z0.shape[-2] - 1)


class DbetaSumZbnBN(BatchNorm):
    """Seed 000's text: dβ = Σ Zbn (the output) instead of Σ dZbn (its gradient).

    Only dβ changes: nothing in the staged backward is computed from dβ."""

    def grad_beta(self, v: Values) -> np.ndarray:
        return v["Zbn"].sum(axis=-2)


class BatchAxisMeanLN(LayerNorm):
    """LayerNorm centred over the batch axis: Z0 = Z − (1/m) Σᵢ Z (BatchNorm's axis) instead
    of each sample's own mean.  The per-sample mu is still computed — nothing reads it —
    and the variance and the scaling stay per sample; the backward is LayerNorm's."""

    def centre(self, v: Values) -> np.ndarray:
        Z = v["Z"]
        return Z - Z.sum(axis=-2, keepdims=True) * (1.0 / Z.shape[-2])


class InterleavedMeanGN(GroupNorm):
    """GroupNorm whose mean reshapes (m, D) as (m, S, G) instead of (m, G, S): group g's
    mean averages the interleaved channels g, g + G, g + 2G, … — the same m × G shape —
    while centring, variance and scaling group neighbours, as torch does."""

    def group_mean(self, v: Values) -> np.ndarray:
        Z = v["Z"]
        inter = Z.reshape(*Z.shape[:-1], self.group_size, self.num_groups)
        return inter.sum(axis=-2) * (1.0 / self.group_size)


class CentredRMS(RMSNorm):
    """RMSNorm whose mean square subtracts the mean first (LayerNorm's variance):
    ms = (1/D) Σⱼ (Z − meanⱼ Z)², while Znorm = Z / rms still divides the uncentred Z."""

    def mean_square(self, v: Values) -> np.ndarray:
        Z = v["Z"]
        Z0 = Z - Z.mean(axis=-1, keepdims=True)
        return (Z0 * Z0).sum(axis=-1, keepdims=True) * (1.0 / Z.shape[-1])


class MissingOneOverMLoss(SoftmaxCrossEntropy):
    """Seed 000's first draft: dZbn = P − Y, without dividing by the batch size m."""

    def backward(self) -> np.ndarray:
        d = super().backward() * self.cache["P"].shape[0]
        self.cache["dlogits"] = d
        return d


class NoMaxShiftLoss(SoftmaxCrossEntropy):
    """Seed 000's softmax: e^logits / Σ e^logits, without subtracting the row max."""

    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        m = logits.shape[0]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            e = np.exp(logits)
            P = e / e.sum(axis=1, keepdims=True)
            loss = float(np.mean(-np.log(P[np.arange(m), y])))
        self.cache = {"logits": logits, "P": P, "y": y, "loss": np.asarray(loss)}
        return loss


class DiagBCELoss(SoftmaxCrossEntropy):
    """Seed 003: a per-class binary cross-entropy on the softmax output, differentiated
    through the diagonal p(1 − p) of the softmax Jacobian only.

    loss = (1/m) Σᵢ Σⱼ −Y log P − (1 − Y) log(1 − P)   (P clipped to [1e-15, 1 − 1e-15])
    dlogits = P(1 − P) · (−Y/P + (1 − Y)/(1 − P)) / m  = (P − Y)/m: the cross-entropy's
    gradient, not the gradient of the loss it reports.
    """

    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        super().forward(logits, y)  # P with the max shift, as the seed's softmax has
        Y, Pc = self._targets()
        loss = float(np.mean(np.sum(-Y * np.log(Pc) - (1 - Y) * np.log(1 - Pc), axis=1)))
        self.cache["loss"] = np.asarray(loss)
        return loss

    def backward(self) -> np.ndarray:
        Y, Pc = self._targets()
        P = self.cache["P"]
        dP = (-Y / Pc + (1 - Y) / (1 - Pc)) / P.shape[0]
        d = P * (1 - P) * dP
        self.cache["dlogits"] = d
        return d

    def _targets(self) -> tuple[np.ndarray, np.ndarray]:
        """One-hot labels Y, and P clipped to [1e-15, 1 − 1e-15]."""
        P, y = self.cache["P"], self.cache["y"]
        Y = np.zeros_like(P)
        Y[np.arange(P.shape[0]), y] = 1.0
        return Y, np.clip(P, 1e-15, 1 - 1e-15)


class AdamNoStep(Adam):
    """Seed 003's Adam: m̂ = m / (1 − β₁), v̂ = v / (1 − β₂), with no step count t."""

    def bias_factors(self) -> tuple[float, float]:
        return 1.0 - self.beta1, 1.0 - self.beta2


# ---------------------------------------------------------------------------------------
# which tensors must fail
# ---------------------------------------------------------------------------------------
Tensors = frozenset[tuple[int, str]]


def checked_tensors(network: Network) -> list[tuple[int, str]]:
    """(layer, gradient name) of every tensor the check compares, output block first
    (the pass's plan, from the node records)."""
    return gc.checked_tensors(network, training=True)


def _upstream(network: Network, index: int, names: tuple[str, ...]) -> Tensors:
    """`names` in block `index` and every tensor of the blocks below it."""
    return frozenset([(b, n) for b, n in checked_tensors(network)
                      if (b == index and n in names) or b < index])


def _in_bn_blocks(names: tuple[str, ...], upstream: bool) -> Callable[[Network], Tensors]:
    def declared(network: Network) -> Tensors:
        out: set[tuple[int, str]] = set()
        for block in network.blocks:
            if block.bn is None:
                continue
            if upstream:
                out |= _upstream(network, block.index, names)
            else:
                out |= {(block.index, n) for n in names}
        # a Dense bias right before BatchNorm is zero by construction: never judged
        return frozenset(t for t in out if not (t[1] == "db" and _bn_of(network, t[0])))
    return declared


def _in_blocks_of(kind: str, names: tuple[str, ...]) -> Callable[[Network], Tensors]:
    """`names` in every block whose normalization is of `kind` ("layernorm", …), and every
    tensor of the blocks below it (a Dense bias before a BatchNorm is never judged)."""
    def declared(network: Network) -> Tensors:
        out: set[tuple[int, str]] = set()
        for block in network.blocks:
            if block.norm is not None and block.norm.kind == kind:
                out |= _upstream(network, block.index, names)
        return frozenset(t for t in out if not (t[1] == "db" and _bn_of(network, t[0])))
    return declared


def _bn_of(network: Network, index: int) -> bool:
    return network.blocks[index - 1].bn is not None


def _everything(network: Network) -> Tensors:
    return frozenset(t for t in checked_tensors(network)
                     if not (t[1] == "db" and _bn_of(network, t[0])))


def _nothing(network: Network) -> Tensors:
    return frozenset()


# ---------------------------------------------------------------------------------------
# the registry
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bug:
    """One named mistake: what it is, where it comes from, what it breaks."""

    id: str
    title: str
    origin: str  # "seed 000", "seed 003" or "classic"
    part: str  # the engine part it replaces: batchnorm forward/backward, loss, optimizer, …
    explanation: str
    wrong: str  # the formula as written wrongly
    right: str  # and correctly
    effect: str  # what training beside the correct engine shows, in one line
    parts: Parts = field(repr=False)
    declared: Callable[[Network], Tensors] = field(repr=False)
    scenario: dict[str, object] = field(default_factory=dict)  # changes to the base config
    fails_rule: str = ""  # the declared set, in words

    @property
    def needs(self) -> str | None:
        """The architecture token of the normalization the bug lives in ("bn", "ln", "gn",
        "rms"), or None for a bug elsewhere (the loss, the optimizer)."""
        p, base = self.parts, Parts()
        for token, name in (("bn", "batchnorm"), ("ln", "layernorm"), ("gn", "groupnorm"),
                            ("rms", "rmsnorm")):
            if getattr(p, name) is not getattr(base, name):
                return token
        return "bn" if p.bias_before_bn else None


# Adam, not SGD: on this problem full-batch SGD's curves are chaotic once the loss leaves
# its plateau (weights nudged by 1e-13 move the loss at step 300 by 10–16 %, so the last
# digits are the CPU's rounding), while Adam's move by 1e-13 — the bugs' effects, not the
# rounding, are what the two curves show.  Each run measures this itself (`Run.rounding`).
BASE_SCENARIO = RunConfig(
    dataset="spiral", arch="16:tanh:nobias,C:nobias", optimizer="adam", lr=0.01,
    batch_size=None, steps=300, seed=0,
)
NUDGE, CHAOTIC = chaos.NUDGE, chaos.CHAOTIC

_BACKWARD_BN = ("dZ0", "dZ", "dW", "db", "dX")

BUGS: dict[str, Bug] = {}


def _register(bug: Bug) -> None:
    BUGS[bug.id] = bug


_register(Bug(
    id="running-stats-in-training",
    title="running statistics used in training",
    origin="seed 003",
    part="BatchNorm forward",
    explanation=(
        "Seed 003's BatchNorm has no `else:`: in training it first moves the running mean "
        "and variance towards the batch's, then normalises the batch with those running "
        "values. The forward now depends on the batch statistics only through the "
        "momentum weight, but the backward still subtracts the mean and variance branches "
        "derived for batch statistics. dZbn, dβ, dγ, dZnorm, dstd and dvar are local and "
        "stay right; dZ0, dmu and dZ (and so dW, dX and every layer below) do not."
    ),
    wrong="mu = (1−w)·running_mean + w·mean(Z);  var = (1−w)·running_var + w·var(Z)",
    right="mu = mean(Z);  var = mean(Z0²)   (running stats only updated, used in eval)",
    effect="the gradient is no longer the loss's: the two curves part within the first steps",
    parts=Parts(batchnorm=RunningStatsBN),
    declared=_in_bn_blocks(("dZ0", "dmu", "dZ", "dW", "db", "dX"), upstream=True),
    fails_rule="dZ0, dmu, dZ, dW, dX of every BN block, and every tensor below it",
))
_register(Bug(
    id="adam-no-step",
    title="Adam without the step count in its bias correction",
    origin="seed 003",
    part="optimizer",
    explanation=(
        "Seed 003's Adam divides m by 1 − β₁ and v by 1 − β₂ instead of 1 − β₁ᵗ and "
        "1 − β₂ᵗ. At t = 1 both agree; then the bugged m̂ grows to 10·m and v̂ to 1000·v, "
        "so its steps are up to about 2× Adam's around t = 10 and settle at "
        "√(1−β₂)/(1−β₁) ≈ 0.32× Adam's once t is large. Gradients are untouched, so no "
        "gradient check can see it: only the updates differ."
    ),
    wrong="m̂ = m / (1 − β₁);  v̂ = v / (1 − β₂)",
    right="m̂ = m / (1 − β₁ᵗ);  v̂ = v / (1 − β₂ᵗ)",
    effect="no tensor fails; early steps up to ~2× larger, later steps ~0.32× Adam's",
    parts=Parts(optimizer=AdamNoStep),
    declared=_nothing,
    fails_rule="none: an optimizer bug leaves every gradient right",
))
_register(Bug(
    id="softmax-diag-bce",
    title="diagonal softmax Jacobian with a per-class binary cross-entropy",
    origin="seed 003",
    part="loss block",
    explanation=(
        "Seed 003 reports a per-class binary cross-entropy of the softmax output and "
        "backpropagates it through only the diagonal p(1 − p) of the softmax Jacobian. "
        "Two wrongs make a right: p(1−p)·(−y/p + (1−y)/(1−p)) = p − y, the gradient of the "
        "ordinary cross-entropy. So every gradient disagrees with the loss it reports (all "
        "tensors fail), yet the network trains exactly like the correct one: the reported "
        "loss is just not the one being minimised."
    ),
    wrong="loss = Σⱼ −y log p − (1−y) log(1−p);  dlogits = p(1−p) · dloss/dp",
    right="loss = −log p[y];  dlogits = (P − Y)/m   (full Jacobian: diag(p) − p pᵀ)",
    effect="every tensor fails, yet the weights follow the correct run: only the loss differs",
    parts=Parts(loss=DiagBCELoss),
    declared=_everything,
    fails_rule="every tensor: the loss's own gradient is wrong",
))
_register(Bug(
    id="dbeta-sum-zbn",
    title="dβ = Σ Zbn",
    origin="seed 000",
    part="BatchNorm backward",
    explanation=(
        "Seed 000's text writes dβ = Σ Zbn, the sum of the layer's output, instead of "
        "Σ dZbn, the sum of its gradient. Only dβ goes wrong (nothing is computed from it "
        "in the staged backward). Since Σ Znorm = 0, Σ Zbn = m·β: the bug pulls β to zero "
        "instead of where the loss wants it; β starts at zero, so it stays there and the "
        "layer loses its shift. Worse, with SGD β ← (1 − η·m)·β: once η·m > 2 the rounding "
        "noise of Σ Znorm grows |1 − η·m|-fold a step until the loss overflows."
    ),
    wrong="dβ = Σᵢ Zbn   (= m·β)",
    right="dβ = Σᵢ dZbn",
    effect="only dβ fails; β is held at 0, and with η·m > 2 its rounding noise blows up",
    parts=Parts(batchnorm=DbetaSumZbnBN),
    declared=_in_bn_blocks(("dbeta",), upstream=False),
    scenario={"optimizer": "sgd", "lr": 0.2, "steps": 200},  # η·m = 48: it blows up
    fails_rule="dβ of every BN block, nothing else",
))
_register(Bug(
    id="no-max-shift",
    title="softmax without the max shift",
    origin="seed 000",
    part="loss block",
    explanation=(
        "Seed 000's softmax computes e^logits / Σ e^logits. In exact arithmetic that is "
        "the same function, so at ordinary logits the gradient check passes everywhere. "
        "But e^x overflows to inf above x ≈ 709, and inf/inf is NaN: the loss becomes "
        "inf or NaN as soon as a logit is large, where the shifted softmax stays finite."
    ),
    wrong="P = e^logits / Σⱼ e^logits",
    right="P = e^(logits − max) / Σⱼ e^(logits − max)",
    effect="no tensor fails at ordinary logits; large logits give inf/NaN",
    parts=Parts(loss=NoMaxShiftLoss),
    declared=_nothing,
    fails_rule="none at ordinary logits: the bug only shows where e^x overflows",
))
_register(Bug(
    id="missing-1-over-m",
    title="the missing 1/m in dZbn",
    origin="classic (seed 000: \"DIDN'T KNOW THIS\")",
    part="loss block",
    explanation=(
        "The loss is the mean over the batch, so its gradient carries a 1/m: dZbn = "
        "(P − Y)/m. Without it every gradient is exactly m times too large, so every "
        "tensor fails with the same ratio analytic / numerical = m. With SGD that is a "
        "learning rate m times larger; Adam divides it out (m̂/√v̂ does not change when "
        "every gradient is scaled), which is how this bug survives in Adam code."
    ),
    wrong="dZbn = P − Y",
    right="dZbn = (P − Y) / m",
    effect=("every tensor fails by a factor m; under Adam (this scenario) training is the same: "
            "Adam divides m out — with SGD it is a learning rate m× larger"),
    parts=Parts(loss=MissingOneOverMLoss),
    declared=_everything,
    fails_rule="every tensor, each m times too large",
))
_register(Bug(
    id="eps-outside-sqrt",
    title="ε outside the square root",
    origin="classic",
    part="BatchNorm forward",
    explanation=(
        "std = √var + ε instead of √(var + ε). The backward still uses the derivative of "
        "the correct root, dvar = dstd / (2·std), while the forward's is dstd / (2·√var): "
        "dvar is off by the factor std/√var, and dZ0, dZ, dW, dX and everything below "
        "follow. The error is about ε/std: with ε = 1e-5 and unit variance it hides under "
        "any tolerance, so this scenario uses seed 003's ε = 0.01. A feature of near-zero "
        "variance is divided by ε instead of √ε."
    ),
    wrong="std = √var + ε",
    right="std = √(var + ε)",
    effect=("dvar and everything it feeds fail by ~ε/std; the wrong gradient changes when the "
            "loss leaves its plateau"),
    parts=Parts(batchnorm=EpsOutsideBN),
    declared=_in_bn_blocks(("dvar", *_BACKWARD_BN), upstream=True),
    scenario={"bn_eps": 0.01},
    fails_rule="dvar, dZ0, dZ, dW, dX of every BN block, and every tensor below it",
))
_register(Bug(
    id="var-unbiased-mixup",
    title="the biased/unbiased variance mix-up",
    origin="classic",
    part="BatchNorm forward",
    explanation=(
        "Training must normalise with the biased variance Σ Z0² / m (the running variance "
        "stores the unbiased one, for eval). Here the forward normalises with the unbiased "
        "Σ Z0² / (m − 1) while the backward keeps the 1/m of the biased one: the variance "
        "branch of dZ0 is off by a factor m/(m − 1), and dZ, dW, dX and everything below "
        "follow. dvar itself is right (its local derivative does not involve m). The error "
        "shrinks like 1/m, so large batches hide it."
    ),
    wrong="var = Σᵢ Z0² / (m − 1)   with   dZ0 = dZnorm/std + dvar·2·Z0/m",
    right="var = Σᵢ Z0² / m",
    effect=("dZ0 and everything below fail by ~1/m; small, but enough to change when the "
            "loss leaves its plateau"),
    parts=Parts(batchnorm=UnbiasedVarBN),
    declared=_in_bn_blocks(_BACKWARD_BN, upstream=True),
    fails_rule="dZ0, dZ, dW, dX of every BN block, and every tensor below it",
))
_register(Bug(
    id="bias-before-bn",
    title="a Dense bias before BatchNorm",
    origin="classic (DESIGN mistake 7)",
    part="architecture",
    explanation=(
        "BatchNorm subtracts the batch mean, so a bias added just before it is subtracted "
        "again: the loss does not depend on it and db = Σ dZ is zero up to rounding. That "
        "is the correct gradient, so nothing fails (db is reported as zero by "
        "construction, not judged). The lesson is that the bias is wasted: β already "
        "shifts the layer. The loss curve is the network's without a bias."
    ),
    wrong="Z = X @ W + b  →  BatchNorm",
    right="Z = X @ W  →  BatchNorm   (β is the shift)",
    effect="no tensor fails; db ≈ 1e-17 and the loss is the bias-free network's",
    parts=Parts(bias_before_bn=True),
    declared=_nothing,
    fails_rule="none: db ≈ 0 is the right answer",
))

_register(Bug(
    id="ln-batch-axis-mean",
    title="LayerNorm centred over the batch axis",
    origin="classic",
    part="LayerNorm forward",
    explanation=(
        "LayerNorm's statistics are each sample's own, over its features (axis −1). Copied "
        "from BatchNorm, the centring subtracts the mean over the batch axis instead: Z0 = "
        "Z − (1/m) Σᵢ Z. The per-sample mu is still computed, but nothing reads it; the "
        "variance and the scaling stay per sample. The backward is LayerNorm's: it sends dmu "
        "back through a mean the forward does not use (the loss does not depend on mu: its "
        "true gradient is 0) and misses the batch mean it does use. dZnorm, dstd, dvar and "
        "dZ0 are local and stay right; dmu, dZ, dW, dX and every layer below do not. As "
        "before a BatchNorm, the Dense bias is now subtracted away: its true gradient is 0."
    ),
    wrong="Z0 = Z − (1/m) Σᵢ Z   (the mean over the batch, axis 0)",
    right="Z0 = Z − mu,  mu = (1/D) Σⱼ Z   (each sample's mean, axis −1)",
    effect="dmu and everything below it fail; one sample's output now depends on the batch",
    parts=Parts(layernorm=BatchAxisMeanLN),
    declared=_in_blocks_of("layernorm", ("dmu", "dZ", "dW", "db", "dX")),
    scenario={"arch": "16:ln:tanh,C:nobias"},
    fails_rule="dmu, dZ, dW, db, dX of every LN block, and every tensor below it",
))
_register(Bug(
    id="gn-interleaved-mean",
    title="GroupNorm's mean over interleaved channels",
    origin="classic",
    part="GroupNorm forward",
    explanation=(
        "torch's GroupNorm groups neighbouring channels: group g holds features gS … gS + S − "
        "1, so its mean is Z.reshape(m, G, S).mean(−1). Written Z.reshape(m, S, G).mean(−2), "
        "the mean averages every G-th channel (g, g + G, g + 2G, …) instead — the same m × G "
        "shape, so nothing complains — while centring, variance and scaling still group "
        "neighbours. The backward spreads dmu to the neighbours mu was subtracted from: dmu "
        "itself is right (it is local), but Z reaches mu through other features than the "
        "backward assumes, so dZ, dW, dX and every layer below fail."
    ),
    wrong="mu = Z.reshape(m, S, G).mean(−2)   (channels g, g + G, g + 2G, …)",
    right="mu = Z.reshape(m, G, S).mean(−1)   (channels gS … gS + S − 1)",
    effect="dZ and everything below it fail, though every shape is right",
    parts=Parts(groupnorm=InterleavedMeanGN),
    declared=_in_blocks_of("groupnorm", ("dZ", "dW", "db", "dX")),
    scenario={"arch": "16:gn=4:tanh,C:nobias"},
    fails_rule="dZ, dW, db, dX of every GN block, and every tensor below it",
))
_register(Bug(
    id="rms-subtracts-mean",
    title="RMSNorm that subtracts the mean",
    origin="classic",
    part="RMSNorm forward",
    explanation=(
        "RMSNorm divides by the root mean square of Z itself, uncentred: ms = (1/D) Σⱼ Z². "
        "Written as LayerNorm's variance, ms = (1/D) Σⱼ (Z − mean Z)², the layer divides by "
        "each sample's standard deviation while still not centring Z — neither RMSNorm nor "
        "LayerNorm. The backward is RMSNorm's: its dZ takes ∂ms/∂Z = 2Z/D where the forward's "
        "is 2(Z − mean Z)/D. drms and dms are local and stay right; dZ, dW, dX and every "
        "layer below fail, by about the mean of a sample's Z over its rms."
    ),
    wrong="ms = (1/D) Σⱼ (Z − meanⱼ Z)²",
    right="ms = (1/D) Σⱼ Z²   (no mean is subtracted)",
    effect="dZ and everything below it fail; the forward divides by the std, not the rms",
    parts=Parts(rmsnorm=CentredRMS),
    declared=_in_blocks_of("rmsnorm", ("dZ", "dW", "db", "dX")),
    scenario={"arch": "16:rms:tanh,C:nobias"},
    fails_rule="dZ, dW, db, dX of every RMS block, and every tensor below it",
))

BUG_IDS: tuple[str, ...] = tuple(BUGS)


def get_bug(bug_id: str) -> Bug:
    key = bug_id.strip().lower()
    if key not in BUGS:
        raise BntuiError(f"unknown bug '{bug_id}'; choose one of: {', '.join(BUG_IDS)}")
    return BUGS[key]


def scenario_config(bug_id: str, seed: int | None = None) -> RunConfig:
    """The bug's scenario: `BASE_SCENARIO` with the bug's own changes (Adam for the Adam
    bug, seed 003's ε for the ε bug), and `seed` if given."""
    bug = get_bug(bug_id)
    cfg = BASE_SCENARIO
    changes = dict(bug.scenario)
    if "optimizer" in changes:
        cfg = cfg.with_optimizer(str(changes.pop("optimizer")))
    if seed is not None:
        changes["seed"] = seed
    return cfg.with_overrides(**changes)


# ---------------------------------------------------------------------------------------
# running a bug
# ---------------------------------------------------------------------------------------
def buggy_session(config: RunConfig, bug_id: str | None) -> Session:
    """A fresh session for `config` built with the bug `bug_id` (None: correct)."""
    return Session(replace(config, bug=bug_id))


@dataclass(frozen=True)
class Verdict:
    """Which tensors of a gradient check of a bugged network fail, beside the bug's
    declared set."""

    bug: str
    tolerance: float
    failed: frozenset[tuple[int, str]]
    declared: frozenset[tuple[int, str]]

    @property
    def matches(self) -> bool:
        return self.failed == self.declared

    def to_dict(self) -> dict[str, object]:
        def names(keys: frozenset[tuple[int, str]]) -> list[str]:
            return [f"{layer}.{t}" for layer, t in sorted(keys, key=lambda k: (-k[0], k[1]))]
        return {"id": self.bug, "tolerance": self.tolerance, "failed": names(self.failed),
                "declared": names(self.declared), "matches": self.matches}


def judge(bug_id: str, network: Network, report: gc.GradcheckReport,
          tolerance: float = TOLERANCE) -> Verdict:
    """The tensors whose analytic-vs-numerical error is above `tolerance` (or not a
    number), against those the bug must break in `network`."""
    failed = frozenset((c.layer, c.tensor) for c in report.checks
                       if c.pair == gc.PAIRS[0] and c.judged
                       and not (c.rel_error is not None and c.rel_error <= tolerance))
    return Verdict(get_bug(bug_id).id, tolerance, failed, get_bug(bug_id).declared(network))


@dataclass
class CheckRow:
    """One gradient tensor: its relative error in the bugged and in the correct engine."""

    layer: int
    tensor: str
    rel_error: float | None  # bugged engine, analytic vs numerical (None: not judged)
    correct_rel_error: float | None  # the same check on the correct engine
    status: str  # ok | zero_by_construction | near_zero | kink
    max_abs: float  # largest |analytic| among the compared entries (bugged)
    ratio: float | None  # median analytic / numerical over the compared entries
    failed: bool
    expected: bool  # in the bug's declared set

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class CheckResult:
    rows: list[CheckRow]
    loss: float
    correct_loss: float
    batch: int
    tolerance: float
    network: str = ""  # the bugged network, described

    @property
    def failed(self) -> set[tuple[int, str]]:
        return {(r.layer, r.tensor) for r in self.rows if r.failed}

    @property
    def declared(self) -> set[tuple[int, str]]:
        return {(r.layer, r.tensor) for r in self.rows if r.expected}

    @property
    def matches(self) -> bool:
        return self.failed == self.declared

    @property
    def correct_failed(self) -> set[tuple[int, str]]:
        return {(r.layer, r.tensor) for r in self.rows
                if r.correct_rel_error is not None and r.correct_rel_error > self.tolerance}

    def worst(self) -> CheckRow | None:
        """The row with the largest error — the first in the pass's order among those
        within 1e-6 of it, so that errors equal but for rounding (a missing 1/m makes
        every tensor's (m − 1)/(m + 1)) name the same tensor on every CPU."""
        judged = [r for r in self.rows if r.rel_error is not None]
        if not judged:
            return None
        top = max(r.rel_error or 0.0 for r in judged)
        return next(r for r in judged if (r.rel_error or 0.0) >= top * (1 - 1e-6))


@dataclass
class TensorCheck:
    """One tensor of one engine's check (analytic vs numerical from the real forward)."""

    rel_error: float | None
    status: str
    max_abs: float
    ratio: float | None


def check_network(network: Network, X: np.ndarray, y: np.ndarray, *,
                  samples: int = CHECK_SAMPLES, seed: int = 0,
                  h: float = 1e-6) -> tuple[float, dict[tuple[int, str], TensorCheck]]:
    """Gradient check of `network`, analytic against numerical: `gradcheck` differentiates
    the network's own forward, whatever its parts."""
    with np.errstate(all="ignore"):
        report = gc.gradcheck(network, X, y, training=True, h=h, samples=samples, seed=seed,
                              autograd=False)
    out: dict[tuple[int, str], TensorCheck] = {}
    for c in report.checks:
        rel = c.rel_error if c.judged else None
        if rel is not None and not math.isfinite(rel):
            rel = float("inf")
        out[(c.layer, c.tensor)] = TensorCheck(rel, c.status, c.max_abs, c.ratio)
    return report.loss, out


def run_check(config: RunConfig, bug_id: str, *, tolerance: float = TOLERANCE,
              samples: int = CHECK_SAMPLES) -> CheckResult:
    """The gradient check of the bugged engine beside the correct one, on the scenario's
    first batch, with the bug's declared failing set marked."""
    bugged, correct = buggy_session(config, bug_id), buggy_session(config, None)
    X, y = bugged.inspection_batch()
    X, y = X[:CHECK_BATCH], y[:CHECK_BATCH]
    loss, bad = check_network(bugged.network, X, y, samples=samples, seed=config.seed)
    correct_loss, good = check_network(correct.network, X, y, samples=samples,
                                       seed=config.seed)
    declared = get_bug(bug_id).declared(bugged.network)
    rows: list[CheckRow] = []
    for key in checked_tensors(bugged.network):
        if key not in bad:
            continue
        b = bad[key]
        g = good.get(key)
        failed = b.rel_error is not None and not (b.rel_error <= tolerance)
        rows.append(CheckRow(key[0], key[1], b.rel_error, g.rel_error if g else None, b.status,
                             b.max_abs, b.ratio, failed, key in declared))
    return CheckResult(rows, loss, correct_loss, len(y), tolerance,
                       bugged.network.describe())


@dataclass
class Run:
    """One training run: the loss by step, and the size of the first updates."""

    label: str
    step: list[int]
    loss: list[float]
    stopped: str | None
    update_norms: list[float]  # ‖Δθ‖ of the first UPDATE_STEPS steps
    final_params: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    # how much the final loss moves (relative) when the initial weights are nudged by
    # NUDGE: rounding-sized; inf when the nudged run stops at another step
    rounding: float | None = None

    @property
    def chaotic(self) -> bool:
        """Whether the run's end depends on the CPU's rounding (its last digits do)."""
        return chaos.chaotic(self.rounding)

    @property
    def final_loss(self) -> float | None:
        return self.loss[-1] if self.loss else None

    @property
    def diverged(self) -> bool:
        return self.stopped is not None or any(not math.isfinite(v) for v in self.loss)

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "final_loss": self.final_loss, "steps": len(self.step),
                "diverged": self.diverged, "stopped": self.stopped,
                "rounding": self.rounding, "chaotic": self.chaotic,
                "update_norms": self.update_norms, "loss": self.loss}


def train_run(config: RunConfig, bug_id: str | None, steps: int | None = None,
              nudge: float = NUDGE) -> Run:
    """Train `config` (with the bug, or correct) and keep its loss curve; then train it
    again from initial weights nudged by `nudge` (relative) to measure how much its end
    depends on rounding (`Run.rounding`; 0 skips it)."""
    n = config.steps if steps is None else steps
    session = buggy_session(config, bug_id)
    params = session.network.params()
    prev = {k: p.copy() for k, p in params.items()}
    norms: list[float] = []

    def on_step(s: Session) -> None:
        if len(norms) < UPDATE_STEPS:
            total = sum(float(np.sum((params[k] - prev[k]) ** 2)) for k in params)
            norms.append(math.sqrt(total))
            for k in params:
                prev[k][...] = params[k]

    session.train(steps=n, on_step=on_step, eval_every=10**9)
    h = session.history
    label = "correct" if bug_id is None else bug_id
    run = Run(label, list(h.step), list(h.loss), session.stopped, norms,
              {k: p.copy() for k, p in params.items()})
    if nudge and run.loss:
        twin = chaos.nudge(buggy_session(config, bug_id))
        twin.train(steps=n, eval_every=10**9)
        ends = twin.history.loss
        if len(ends) != len(run.loss):
            run.rounding = math.inf  # the nudge moved the step where it stopped
        else:  # a stopped run reports the step where it stopped, which did not move
            run.rounding = 0.0 if run.stopped else chaos.moved(run.loss[-1], ends[-1])
    return run


@dataclass
class Comparison:
    correct: Run
    bugged: Run

    @property
    def param_gap(self) -> float | None:
        """Largest |θ_bugged − θ_correct| over the parameters both runs have."""
        keys = set(self.correct.final_params) & set(self.bugged.final_params)
        if not keys:
            return None
        return max(float(np.max(np.abs(self.correct.final_params[k]
                                       - self.bugged.final_params[k]))) for k in keys)

    def to_dict(self) -> dict[str, object]:
        return {"correct": self.correct.to_dict(), "bugged": self.bugged.to_dict(),
                "param_gap": self.param_gap}


def compare_training(config: RunConfig, bug_id: str, steps: int | None = None) -> Comparison:
    """The correct and the bugged engine trained from the same data and initial weights."""
    return Comparison(train_run(config, None, steps), train_run(config, bug_id, steps))


@dataclass
class ProbeRow:
    scale: float
    max_logit: float
    correct_loss: float
    bugged_loss: float


PROBE_SCALES = (1.0, 10.0, 100.0, 300.0, 1000.0)


def large_logit_probe(config: RunConfig, bug_id: str = "no-max-shift",
                      scales: tuple[float, ...] = PROBE_SCALES) -> list[ProbeRow]:
    """The loss of the scenario's first batch with its logits scaled up, by the correct
    loss block and by the bugged one: where e^x overflows, only the bug goes inf/NaN."""
    session = buggy_session(config, bug_id)
    X, y = session.inspection_batch()
    logits = session.network.forward(X, training=True, update_running=False)
    rows: list[ProbeRow] = []
    for k in scales:
        z = logits * k
        good = SoftmaxCrossEntropy().forward(z, y)
        bad = session.network.loss_layer.forward(z, y)
        rows.append(ProbeRow(k, float(np.max(np.abs(z))), good, bad))
    return rows


@dataclass
class BugReport:
    bug: Bug
    config: RunConfig
    check: CheckResult
    training: Comparison
    probe: list[ProbeRow] = field(default_factory=list)
    network_description: str = ""

    def to_dict(self) -> dict[str, object]:
        b = self.bug
        worst = self.check.worst()
        return {
            "bug": b.id, "title": b.title, "origin": b.origin, "part": b.part,
            "explanation": b.explanation, "wrong": b.wrong, "right": b.right,
            "effect": b.effect, "fails_rule": b.fails_rule,
            "scenario": {"dataset": self.config.dataset, "arch": self.config.arch,
                         "network": self.network_description,
                         "optimizer": self.config.optimizer, "lr": self.config.lr,
                         "batch_size": self.config.batch_size, "steps": self.config.steps,
                         "seed": self.config.seed, "bn_eps": self.config.bn.eps},
            "tolerance": self.check.tolerance,
            "check": [r.to_dict() for r in self.check.rows],
            "failed": sorted(f"{layer}.{t}" for layer, t in self.check.failed),
            "declared": sorted(f"{layer}.{t}" for layer, t in self.check.declared),
            "matches": self.check.matches,
            "correct_failed": sorted(f"{layer}.{t}" for layer, t in self.check.correct_failed),
            "worst": None if worst is None else {"tensor": f"{worst.layer}.{worst.tensor}",
                                                 "rel_error": worst.rel_error},
            "loss": self.check.loss, "correct_loss": self.check.correct_loss,
            "training": self.training.to_dict(),
            "probe": [p.__dict__ for p in self.probe],
        }


def run_bug(bug_id: str, config: RunConfig | None = None, *, steps: int | None = None,
            tolerance: float = TOLERANCE) -> BugReport:
    """Everything the lab shows for one bug: the check, the training race, the probe."""
    bug = get_bug(bug_id)
    cfg = config if config is not None else scenario_config(bug.id)
    check = run_check(cfg, bug.id, tolerance=tolerance)
    training = compare_training(cfg, bug.id, steps)
    probe = large_logit_probe(cfg, bug.id) if bug.id == "no-max-shift" else []
    return BugReport(bug, cfg, check, training, probe, check.network)


__all__ = [
    "BASE_SCENARIO", "BUGS", "BUG_IDS", "TOLERANCE", "BatchAxisMeanLN", "Bug", "BugReport",
    "CentredRMS", "CheckResult", "CheckRow", "Comparison", "InterleavedMeanGN", "ProbeRow",
    "Run", "Verdict", "buggy_session", "check_network",
    "checked_tensors", "compare_training", "get_bug", "judge", "large_logit_probe", "run_bug",
    "run_check", "scenario_config", "train_run",
]
