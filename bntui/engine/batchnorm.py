"""BatchNorm over the batch axis of an (N, D) tensor: its node records and its code.

Every tensor the layer computes is declared once below (`NODES`), with its formula and
explanation in each mode (training; eval; eval with a running std), the method that
computes it, the entries it reads and the wrong formulas learners write; every view reads
them (see `bntui.engine.nodes`).  m = batch size; statistics per feature:

    training                              eval (running statistics, constants)
    mu    = (1/m) Σᵢ Z                    mu  = running_mean
    Z0    = Z − mu                        Z0  = Z − mu
    var   = (1/m) Σᵢ Z0²  (biased)        var = running_var   (or, keeping a running std,
    std   = √(var + ε)                    std = √(var + ε)     std = running_std)
    Znorm = Z0 / std                      Znorm, Zbn as in training
    Zbn   = γ · Znorm + β

The staged pass (`forward`, `backward`) computes the records one by one and keeps every
tensor — what the stepper, the trace and the gradient checks see.  A variant of the layer
(the bug zoo's, a convention) overrides one of the small steps the records name
(`batch_mean`, `batch_var`, `root`, `grad_beta`, `update_running`, …), never a copy of
the pass.  Training runs the layer's own fused methods, `train_forward` and
`train_backward` (the compact dZ = (γ/std)·(dZbn − (dβ + Znorm·dγ)/m)), which do the same
operations as the staged pass without keeping its tensors — bit-identical, tested — and
which a layer with an overridden step does not use (`FUSED` is False: it trains on its
staged pass).  `infer` is the eval-mode forward without the intermediates.

Defaults follow `torch.nn.BatchNorm1d`: eps 1e-5 inside the root, momentum 0.1 on the
new value, running stats start at 0 and 1, `running_var` stores the unbiased variance,
eval mode normalises with the running statistics, batch size 1 in training is refused.
Other conventions are named (`bntui.engine.conventions`: keras, cs231n, karpathy, the
seeds'): Keras-style momentum on the old value, a biased running variance, a running
average of `std` instead of `var`, running stats started at 0 and 0 or from the first
batch, and Karpathy's training variance with Bessel's correction, Σ Z0² / (m − 1) — a
mode of the records ("train-bessel", looked up before "train": its own `var` and `dZ0`
words and steps) whose compact backward divides the dγ term by m − 1 instead of m
(`COMPACT_BESSEL`: dZ = (γ/std)·(dZbn − dβ/m − Znorm·dγ/(m − 1))).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bntui.engine.conventions import (
    DEFAULT,
    MOMENTUM_STYLES,
    RUNNING_INITS,
    RUNNING_STATS,
    TRAIN_VARS,
    Settings,
    headline,
    resolve,
)
from bntui.engine.errors import BntuiError
from bntui.engine.kernels import coldot, colsum
from bntui.engine.nodes import ANY, BACKWARD, FORWARD, Derived, Node, Words, forward_nodes
from bntui.engine.norm import NormLayer, Values, steps_of

_SAME_AFFINE = Words(
    "Zbn = γ · Znorm + β", "learnable scale γ and shift β give the layer its range back",
    fn="affine", reads=(("Znorm", "ij"), ("gamma", "j"), ("beta", "j")),
    wrong=("Zbn = γ · (Znorm + β)", "Zbn = β · Znorm + γ", "Zbn = γ · Z0 + β"))

NODES: tuple[Node, ...] = (
    Node("Z", "the Dense output, BatchNorm's input", "m × D", role="input", backward={
        "train": Words(
            "dZ = dZ0 + dmu / m",
            "Z reaches the loss through Z0 and through mu (which spreads 1/m to each row)",
            fn="grad_input", reads=(("dZ0", "ij"), ("dmu", "j"), ("m", "")),
            wrong=("dZ = dZ0 + dmu", "dZ = dZ0 − dmu / m", "dZ = dZ0")),
        "eval": Words(
            "dZ = dZ0",
            "mu is a constant in eval mode: Z reaches the loss only through Z0",
            fn="grad_input_eval", reads=(("dZ0", "ij"),),
            wrong=("dZ = dZ0 + dmu / m", "dZ = dZ0 / m", "dZ = dZ0 − (1/m) Σᵢ dZ0")),
    }),
    Node("mu", "per-feature batch mean", "D", step_scale="mean_scale", forward={
        "train": Words(
            "mu = (1/m) Σᵢ Z", "the mean of each feature over the batch",
            fn="batch_mean", reads=(("Z", ":j"), ("m", "")),
            wrong=("mu = Σᵢ Z", "mu = (1/(m−1)) Σᵢ Z", "mu = (1/D) Σⱼ Z  (over the features)")),
        "eval": Words(
            "mu = running_mean",
            "the running mean of each feature, kept while training: a constant, the same "
            "for every batch", fn="running_mean_of", reads=(("running_mean", "j"),),
            wrong=("mu = (1/m) Σᵢ Z", "mu = 0", "mu = running_var")),
    }, backward={
        "train": Words(
            "dmu = −Σᵢ dZ0", "mu is subtracted from every row: minus the sum of dZ0",
            fn="grad_mean", reads=(("dZ0", ":j"),),
            wrong=("dmu = Σᵢ dZ0", "dmu = −(1/m) Σᵢ dZ0", "dmu = −Σᵢ dZnorm")),
        "eval": None,
    }),
    Node("Z0", "Z centred per feature", "m × D", forward={
        "train": Words(
            "Z0 = Z − mu", "each feature centred on its batch mean",
            fn="centre", reads=(("Z", "ij"), ("mu", "j")),
            wrong=("Z0 = mu − Z", "Z0 = Z − running_mean", "Z0 = (Z − mu) / m")),
        "eval": Words(
            "Z0 = Z − mu", "each feature centred on its running mean, not on this batch's",
            fn="centre", reads=(("Z", "ij"), ("mu", "j")),
            wrong=("Z0 = mu − Z", "Z0 = Z − (1/m) Σᵢ Z", "Z0 = (Z − mu) / m")),
    }, backward={
        "train": Words(
            "dZ0 = dZnorm / std + dvar · 2 · Z0 / m",
            "Z0 feeds Znorm directly and var through Z0²: both branches add up",
            fn="grad_centred",
            reads=(("dZnorm", "ij"), ("std", "j"), ("dvar", "j"), ("Z0", "ij"), ("m", "")),
            wrong=("dZ0 = dZnorm / std", "dZ0 = dZnorm / std + dvar · 2 · Z0",
                   "dZ0 = dZnorm · std + dvar · 2 · Z0 / m")),
        "train-bessel": Words(
            "dZ0 = dZnorm / std + dvar · 2 · Z0 / (m − 1)",
            "Z0 feeds Znorm directly and var through Z0² / (m − 1) (Bessel's correction): "
            "both branches add up", fn="grad_centred_bessel",
            reads=(("dZnorm", "ij"), ("std", "j"), ("dvar", "j"), ("Z0", "ij"), ("m", "")),
            wrong=("dZ0 = dZnorm / std + dvar · 2 · Z0 / m",
                   "dZ0 = dZnorm / std + dvar · 2 · Z0 · (m − 1)", "dZ0 = dZnorm / std")),
        "eval": Words(
            "dZ0 = dZnorm / std",
            "std is a constant in eval mode: Z0 reaches the loss only through Znorm",
            fn="grad_centred_eval", reads=(("dZnorm", "ij"), ("std", "j")),
            wrong=("dZ0 = dZnorm / std + dvar · 2 · Z0 / m", "dZ0 = dZnorm · std",
                   "dZ0 = dZnorm")),
    }),
    Node("var", "per-feature batch variance (biased)", "D", step_scale="var_scale", forward={
        "train": Words(
            "var = (1/m) Σᵢ Z0²", "the biased variance of each feature over the batch",
            fn="batch_var", reads=(("Z0", ":j"), ("m", "")),
            wrong=("var = (1/(m−1)) Σᵢ Z0²", "var = Σᵢ Z0²", "var = (1/m) Σᵢ Z²")),
        "train-bessel": Words(
            "var = (1/(m−1)) Σᵢ Z0²", "the variance of each feature over the batch with "
            "Bessel's correction: unbiased, divided by m − 1 (Karpathy's makemore part 4)",
            fn="batch_var_bessel", reads=(("Z0", ":j"), ("m", "")),
            wrong=("var = (1/m) Σᵢ Z0²", "var = Σᵢ Z0²", "var = (1/(m−1)) Σᵢ Z²")),
        "eval": Words(
            "var = running_var",
            "the running variance of each feature ({running_var}), kept while training: "
            "a constant here", fn="running_var_of", reads=(("running_var", "j"),),
            wrong=("var = (1/m) Σᵢ Z0²", "var = 1", "var = running_mean²")),
        "eval-std": None,  # this convention keeps a running std: no variance is used
    }, backward={
        "train": Words(
            "dvar = dstd / (2 · std)", "through the square root: d√u/du = 1 / (2√u)",
            fn="grad_var", reads=(("dstd", "j"), ("std", "j")),
            wrong=("dvar = dstd · 2 · std", "dvar = dstd / std", "dvar = dstd / (2 · var)")),
        "eval": None,
    }),
    Node("std", "per-feature standard deviation √(var + ε)", "D", forward={
        "train": Words(
            "std = √(var + ε)", "the standard deviation, with ε inside the root so it is "
            "never 0", fn="root", reads=(("var", "j"), ("eps", "")),
            wrong=("std = √var + ε", "std = var + ε", "std = √(var + ε) / m")),
        "eval": Words(
            "std = √(running_var + ε)", "the running standard deviation, with ε inside the "
            "root", fn="root", reads=(("running_var", "j"), ("eps", "")),
            wrong=("std = √running_var + ε", "std = running_var + ε",
                   "std = √((1/m) Σᵢ Z0² + ε)")),
        "eval-std": Words(
            "std = running_std",
            "the running average of the batch std, kept while training (this convention "
            "keeps std, not var): a constant here", fn="running_std_of",
            reads=(("running_std", "j"),),
            wrong=("std = √(running_std + ε)", "std = √((1/m) Σᵢ Z0² + ε)", "std = 1")),
    }, backward={
        "train": Words(
            "dstd = Σᵢ dZnorm · (−Z0 / std²)", "std divides every row: the std branch of "
            "the graph", fn="grad_std",
            reads=(("dZnorm", ":j"), ("Z0", ":j"), ("std", "j")),
            wrong=("dstd = Σᵢ dZnorm · (Z0 / std²)", "dstd = Σᵢ dZnorm · (−Z0 / std)",
                   "dstd = (1/m) Σᵢ dZnorm · (−Z0 / std²)")),
        "eval": None,
    }),
    Node("Znorm", "Z normalised: mean 0, variance ≈ 1 per feature", "m × D", forward={
        "train": Words(
            "Znorm = Z0 / std", "each feature scaled to mean 0 and variance ≈ 1",
            fn="scale", reads=(("Z0", "ij"), ("std", "j")),
            wrong=("Znorm = Z0 / (var + ε)", "Znorm = Z / std", "Znorm = Z0 · std")),
        "eval": Words(
            "Znorm = Z0 / std", "each feature scaled by its running std: mean 0 and "
            "variance ≈ 1 only if this batch looks like the training data",
            fn="scale", reads=(("Z0", "ij"), ("std", "j")),
            wrong=("Znorm = Z0 / (var + ε)", "Znorm = Z / std", "Znorm = Z0 · std")),
    }, backward={
        ANY: Words(
            "dZnorm = dZbn · γ", "the gradient reaching the normalised values through γ",
            fn="grad_scaled", reads=(("dZbn", "ij"), ("gamma", "j")),
            wrong=("dZnorm = dZbn / γ", "dZnorm = dZbn · Znorm", "dZnorm = dZbn · γ + β")),
    }),
    Node("Zbn", "BatchNorm's output γ · Znorm + β", "m × D", role="output",
         forward={ANY: _SAME_AFFINE}),
    Node("beta", "BatchNorm's learnable shift β", "D", role="param", backward={
        ANY: Words(
            "dβ = Σᵢ dZbn", "β is added to every row, so its gradient sums dZbn over the "
            "batch", fn="grad_beta", reads=(("dZbn", ":j"),),
            wrong=("dβ = Σᵢ Zbn", "dβ = (1/m) Σᵢ dZbn", "dβ = Σᵢ dZbn · Znorm")),
    }),
    Node("gamma", "BatchNorm's learnable scale γ", "D", role="param", backward={
        ANY: Words(
            "dγ = Σᵢ dZbn · Znorm", "γ multiplies Znorm, so its gradient sums dZbn · Znorm "
            "over the batch", fn="grad_gamma", reads=(("dZbn", ":j"), ("Znorm", ":j")),
            wrong=("dγ = Σᵢ dZbn", "dγ = Σᵢ Zbn · Znorm", "dγ = Σᵢ dZbn · Z0")),
    }),
)

# the compact backward, one formula for dZ (shown in the help; training runs it)
COMPACT = Words("dZ = (γ / std) · (dZbn − (dβ + Znorm · dγ) / m)",
                "the staged backward in one formula, using Σᵢ Znorm = 0 and Σᵢ Znorm² = m")
# with Bessel's correction the var branch carries 1/(m − 1): the dγ term divides by it
COMPACT_BESSEL = Words("dZ = (γ / std) · (dZbn − dβ / m − Znorm · dγ / (m − 1))",
                       "the staged backward in one formula when var = Σᵢ Z0² / (m − 1)")

# the compact backward derived from the staged records, step by step (`bntui derive`)
def derivation(bessel: bool) -> tuple[Derived, ...]:
    """The compact backward from the staged records, step by step (`bntui derive`): with
    the biased training variance, or with Bessel's correction (var = Σᵢ Z0² / (m − 1),
    whose branch carries 1/(m − 1) into the dγ term)."""
    n = "(m − 1)" if bessel else "m"
    return (
        Derived("staged", "dZ = dZ0 + dmu / m",
                "the record of Z: Z reaches the loss through Z0 and through mu"),
        Derived("[1] through the mean", "dZ = dZ0 − (1/m) Σᵢ dZ0",
                "dmu = −Σᵢ dZ0: mu is subtracted from every row"),
        Derived("[2] through the variance",
                f"dZ0 = dZnorm / std − Z0 · (Σᵢ dZnorm · Z0) / ({n} · std³)",
                f"the branch dvar · 2 · Z0 / {n}, with dvar = dstd / (2 · std) and "
                "dstd = −Σᵢ dZnorm · Z0 / std²"),
        Derived("[3] in normalised units",
                f"dZ0 = (1/std) · (dZnorm − Znorm · (1/{n}) Σᵢ dZnorm · Znorm)",
                "Z0 = Znorm · std"),
        Derived("[4] the sum of dZ0", "Σᵢ dZ0 = (1/std) · Σᵢ dZnorm",
                "Σᵢ Znorm = 0: the second term of [3] sums to nothing"),
        Derived("[5] together",
                f"dZ = (1/std) · (dZnorm − (1/m) Σᵢ dZnorm − Znorm · (1/{n}) Σᵢ dZnorm · Znorm)",
                "[1] with [3] and [4]"),
        Derived("[6] compact", (COMPACT_BESSEL if bessel else COMPACT).formula,
                "dZnorm = γ · dZbn, and the sums are the parameters' gradients: Σᵢ dZbn = dβ "
                "and Σᵢ dZbn · Znorm = dγ"
                + (" (Karpathy's one-line dhprebn: bngain · bnvar_inv / n · (n · dhpreact − "
                   "Σ dhpreact − n/(n−1) · bnraw · Σ dhpreact · bnraw))" if bessel else
                   " (seed 003's [C]; Karpathy's dhprebn is the same with n/(n−1) on the dγ "
                   "term: his variance is Bessel-corrected, --bn-convention karpathy)")),
    )


DERIVATION = derivation(bessel=False)
DERIVATION_BESSEL = derivation(bessel=True)

# the steps the records name: a subclass that overrides one is not fused
STEPS = steps_of(NODES, "update_running", "forward", "backward")


def _per_feature(x: np.ndarray) -> np.ndarray:
    """A per-feature vector (..., D) shaped to broadcast over the batch axis."""
    return x[..., None, :]


class BatchNorm(NormLayer):
    """Batch normalization of (N, D) inputs; `torch.nn.BatchNorm1d` semantics by default.

    `convention` names a row of `bntui.engine.conventions.CONVENTIONS` ("torch", "keras",
    "cs231n", "karpathy", "seed-000", "seed-003"); every setting given explicitly (not
    None) overrides the convention's."""

    kind = "batchnorm"
    title = "BatchNorm"
    short = "bn"
    OUTPUT = "Zbn"
    NODES: ClassVar[tuple[Node, ...]] = NODES
    STEPS: ClassVar[tuple[str, ...]] = STEPS
    COMPACT: ClassVar[Words] = COMPACT
    DERIVATION: ClassVar[tuple[Derived, ...]] = DERIVATION
    AFFINE_IN_ACTIVATION = True

    def __init__(
        self,
        num_features: int,
        eps: float | None = None,
        momentum: float | None = None,
        *,
        convention: str = DEFAULT,
        momentum_style: str | None = None,
        unbiased_running_var: bool | None = None,
        running_stat: str | None = None,
        running_init: str | None = None,
        train_var: str | None = None,
        dtype: np.dtype | type = np.float64,
    ) -> None:
        s = resolve(convention, eps=eps, momentum=momentum, momentum_style=momentum_style,
                    unbiased_running_var=unbiased_running_var, running_stat=running_stat,
                    running_init=running_init, train_var=train_var)
        if not (np.isfinite(s.momentum) and 0 <= s.momentum <= 1):
            raise BntuiError(f"BatchNorm momentum must be between 0 and 1 (got {s.momentum})")
        if s.momentum_style not in MOMENTUM_STYLES:
            raise BntuiError(f"momentum style must be one of {MOMENTUM_STYLES}")
        if s.running_stat not in RUNNING_STATS:
            raise BntuiError(f"running statistic must be one of {RUNNING_STATS}")
        if s.running_init not in RUNNING_INITS:
            raise BntuiError(f"running init must be one of {RUNNING_INITS}")
        if s.train_var not in TRAIN_VARS:
            raise BntuiError(f"training variance must be one of {TRAIN_VARS}")
        super().__init__(num_features, s.eps, dtype)
        self.convention = convention
        self.momentum = float(s.momentum)
        self.momentum_style = s.momentum_style
        self.unbiased_running_var = bool(s.unbiased_running_var)
        self.running_stat = s.running_stat
        self.running_init = s.running_init
        self.train_var = s.train_var
        start = 0.0 if s.running_init == "zero_zero" else 1.0
        self.running_mean = np.zeros(num_features, dtype=self.dtype)
        self.running_var = np.full(num_features, start, dtype=self.dtype)
        self.running_std = np.full(num_features, start, dtype=self.dtype)
        self.num_batches_tracked = 0

    # state ----------------------------------------------------------------------------
    @property
    def new_weight(self) -> float:
        """The weight of the batch statistic in the running average."""
        return self.momentum if self.momentum_style == "torch" else 1.0 - self.momentum

    def running_state(self) -> dict[str, np.ndarray]:
        return {
            "running_mean": self.running_mean,
            "running_var": self.running_var,
            "running_std": self.running_std,
        }

    @property
    def bessel(self) -> bool:
        """Whether training normalises with the Bessel-corrected variance Σ Z0² / (m − 1)."""
        return self.train_var == "bessel"

    def var_divisor(self, m: int) -> int:
        """What the training variance divides Σ Z0² by: m, or m − 1 with Bessel's
        correction."""
        return m - 1 if self.bessel else m

    def settings(self) -> Settings:
        """The settings in force (the convention's, with any explicit ones)."""
        return Settings(eps=self.eps, momentum=self.momentum,
                        momentum_style=self.momentum_style,
                        unbiased_running_var=self.unbiased_running_var,
                        running_stat=self.running_stat, running_init=self.running_init,
                        train_var=self.train_var)

    def mode_keys(self, training: bool) -> tuple[str, ...]:
        """The order in which the records' modes are looked up."""
        if training:
            return ("train-bessel", "train") if self.bessel else ("train",)
        return ("eval-std", "eval") if self.running_stat == "std" else ("eval",)

    def context(self) -> dict[str, str]:
        """Fields the records' words name."""
        kind = ("unbiased, Σ Z0² / (m − 1), as torch keeps it" if self.unbiased_running_var
                else "biased, as Keras keeps it")
        return {"running_var": kind}

    def describe(self) -> str:
        """One line: the width and the convention in force, e.g. "BatchNorm(32, keras:
        eps 1e-3, running = 0.99·old + 0.01·batch, biased running var, start 0, 1)"."""
        return f"BatchNorm({self.num_features}, {headline(self.convention, self.settings())})"

    def compact_words(self) -> Words:
        """The compact backward's formula for this layer's training variance."""
        return COMPACT_BESSEL if self.bessel else COMPACT

    def derivation(self) -> tuple[Derived, ...]:
        return DERIVATION_BESSEL if self.bessel else DERIVATION

    # the steps the records name (each a small overridable method) ------------------
    def batch_mean(self, v: Values) -> np.ndarray:
        return colsum(v["Z"]) * (1.0 / v["Z"].shape[-2])

    def running_mean_of(self, v: Values) -> np.ndarray:
        return v["running_mean"].copy()

    def centre(self, v: Values) -> np.ndarray:
        return v["Z"] - _per_feature(v["mu"])

    def batch_var(self, v: Values) -> np.ndarray:
        return coldot(v["Z0"], v["Z0"]) / v["Z0"].shape[-2]

    def batch_var_bessel(self, v: Values) -> np.ndarray:
        return coldot(v["Z0"], v["Z0"]) / (v["Z0"].shape[-2] - 1)

    def running_var_of(self, v: Values) -> np.ndarray:
        return v["running_var"].copy()

    def root(self, v: Values) -> np.ndarray:
        return np.sqrt(v["var"] + self.eps)

    def running_std_of(self, v: Values) -> np.ndarray:
        return v["running_std"].copy()

    def scale(self, v: Values) -> np.ndarray:
        return v["Z0"] * _per_feature(1.0 / v["std"])

    def affine(self, v: Values) -> np.ndarray:
        return v["Znorm"] * v["gamma"] + v["beta"]

    def grad_beta(self, v: Values) -> np.ndarray:
        return colsum(v["dZbn"])

    def grad_gamma(self, v: Values) -> np.ndarray:
        return coldot(v["dZbn"], v["Znorm"])

    def grad_scaled(self, v: Values) -> np.ndarray:
        return v["dZbn"] * v["gamma"]

    def grad_std(self, v: Values) -> np.ndarray:
        return -coldot(v["dZnorm"], v["Z0"]) / (v["std"] * v["std"])

    def grad_var(self, v: Values) -> np.ndarray:
        return v["dstd"] / (2.0 * v["std"])

    def grad_centred(self, v: Values) -> np.ndarray:
        m = v["Z0"].shape[-2]
        return v["dZnorm"] / v["std"] + v["dvar"] * (2.0 / m) * v["Z0"]

    def grad_centred_bessel(self, v: Values) -> np.ndarray:
        m = v["Z0"].shape[-2]
        return v["dZnorm"] / v["std"] + v["dvar"] * (2.0 / (m - 1)) * v["Z0"]

    def grad_centred_eval(self, v: Values) -> np.ndarray:
        return v["dZnorm"] / v["std"]

    def grad_mean(self, v: Values) -> np.ndarray:
        return -colsum(v["dZ0"])

    def grad_input(self, v: Values) -> np.ndarray:
        return v["dZ0"] + v["dmu"] / v["dZ0"].shape[-2]

    def grad_input_eval(self, v: Values) -> np.ndarray:
        return v["dZ0"].copy()

    def mean_scale(self, v: Values) -> np.ndarray:
        """The numerical check's step scale for `mu`: a batch mean can be 0 while the
        values around it spread by the feature's std."""
        return v["std"]

    def var_scale(self, v: Values) -> np.ndarray:
        """The numerical check's step scale for `var`: the root sees var + ε."""
        return v["var"] + self.eps

    def update_running(self, v: Values) -> None:
        """Move the running statistics towards this batch's (training mode): `var` is the
        training pass's (Bessel-corrected with `train_var="bessel"`), `std` the root it
        divided by."""
        mu, var, std = v["mu"], v["var"], v["std"]
        m = v["Z"].shape[-2]
        w = self.new_weight
        if self.bessel:  # var is already Σ Z0² / (m − 1)
            batch_var = var if self.unbiased_running_var else var * ((m - 1) / m)
        else:
            batch_var = var * (m / (m - 1)) if self.unbiased_running_var else var
        if self.num_batches_tracked == 0 and self.running_init == "first_batch":
            self.running_mean[...] = mu
            self.running_var[...] = batch_var
            self.running_std[...] = std
        else:
            self.running_mean *= 1.0 - w
            self.running_mean += w * mu
            self.running_var *= 1.0 - w
            self.running_var += w * batch_var
            self.running_std *= 1.0 - w
            self.running_std += w * std
        self.num_batches_tracked += 1

    def _check(self, x: np.ndarray, training: bool) -> None:
        super()._check(x, training)
        if training and x.shape[-2] < 2:
            raise BntuiError(
                "expected more than 1 value per feature when training "
                "(batch size 1 with BatchNorm)"
            )

    def compact_applies(self) -> bool:
        return self.training

    def compact(self, dy: np.ndarray, c: Values, grads: dict[str, np.ndarray]) -> np.ndarray:
        """The compact training-mode dZ (`COMPACT`), filling dγ and dβ."""
        return compact_backward(dy, c["Znorm"], self.params["gamma"] / c["std"],
                                grads["gamma"], grads["beta"], bessel=self.bessel)

    # the fused methods: training and inference without keeping the tensors ----------
    def train_forward(self, Z: np.ndarray, *, update_running: bool = True,
                      keep: bool = True) -> np.ndarray:
        """Znorm of a training-mode pass, the running statistics updated; the same
        operations as the records (`batch_mean`, `centre`, `batch_var`, `root`, `scale`)
        with Z0 normalised in its own buffer.  Large feature-major inputs go a block of
        features at a time (each feature's numbers are its own, so they are the same).
        `keep=False`: nothing is kept for `train_backward` (a loss without gradients)."""
        if not self.FUSED:
            raise RuntimeError(f"{type(self).__name__} overrides a step: train on forward()")
        self._check(Z, True)
        self.training = True
        self.cache = {}
        m = Z.shape[0]
        mu = colsum(Z) * (1.0 / m)
        cols = column_blocks(Z)
        div = self.var_divisor(m)
        if cols is None:
            Znorm = Z - mu  # Z0, normalised in place below
            var = coldot(Znorm, Znorm) / div
            std = np.sqrt(var + self.eps)
            Znorm *= 1.0 / std
        else:
            Znorm, var, std = _normalise_by_columns(Z, mu, self.eps, cols, div)
        if update_running:
            self.update_running({"Z": Z, "mu": mu, "var": var, "std": std})
        self._fused = (Znorm, std) if keep else None
        return Znorm

    def train_backward(self, dZbn: np.ndarray) -> np.ndarray:
        """dZ by the compact formula from the last `train_forward`, dγ and dβ into
        `grads` — as `backward(staged=False)`."""
        assert self._fused is not None, "train_backward before train_forward"
        Znorm, std = self._fused
        self._fused = None
        g = self._grad_buffers(np.result_type(dZbn, Znorm))
        return compact_backward(dZbn, Znorm, self.params["gamma"] / std, g["gamma"], g["beta"],
                                bessel=self.bessel)

    def infer(self, Z: np.ndarray) -> np.ndarray:
        """Zbn in eval mode without keeping Z0 and Znorm (one buffer): the records'
        operations, so the same numbers as `forward(Z, training=False)`."""
        if not self.FUSED:
            return self.forward(Z, training=False)
        self._check(Z, False)
        v = self.layer_values()
        v["Z"] = Z
        for node, words in forward_nodes(self.NODES, self.mode_keys(False)):
            if node.name in ("mu", "var", "std"):
                v[node.name] = getattr(self, words.fn)(v)
        out = Z - _per_feature(v["mu"])
        out *= _per_feature(1.0 / v["std"])
        out *= v["gamma"]
        out += v["beta"]
        return out

    # the numerical check's variants (feature-major stacks) -------------------------
    def column_moves(self, name: str, j: int, steps: np.ndarray, Znorm: np.ndarray) -> np.ndarray:
        """How feature j of Zbn moves when γ[j] or β[j] moves by its step (one row):
        ∂Zbn[:, j]/∂γ[j] = Znorm[:, j], ∂Zbn[:, j]/∂β[j] = 1.  `Znorm` is feature-major
        (D, N)."""
        if name == "gamma":
            return (Znorm[j] * steps[0])[None, :]
        return np.full((1, Znorm.shape[-1]), steps[0])

    def rank_one_variants(self, base: Values, change: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Zbn, feature-major (V, D, N), of a training-mode pass whose Z moves by
        change (V, N) ⊗ w (D,) from the pass `base` (logical (N, D) tensors): the batch
        mean and variance follow from the base's by two small products,
        var' = var + 2 w ⊙ Σ(c̃ Z0) / k + w² Σ c̃² / k with c̃ the centred change and k the
        training variance's divisor (m, or m − 1 with Bessel's correction)."""
        n = change.shape[-1]
        k = self.var_divisor(n)
        centred = change - (colsum(change.T) * (1.0 / n))[:, None]
        Z0 = base["Z0"]
        var = (base["var"] + (2.0 / k) * w * (centred @ Z0)
               + (w * w) * (coldot(centred.T, centred.T) / k)[:, None])
        Zbn = np.multiply(centred[:, None, :], w[:, None])
        Zbn += Z0.T
        Zbn *= (self.params["gamma"] / np.sqrt(var + self.eps))[..., None]
        Zbn += self.params["beta"][:, None]
        return Zbn


def _normalise_by_columns(Z: np.ndarray, mu: np.ndarray, eps: float, cols: list[slice],
                          div: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z0 → var → std → Znorm a block of features at a time, each block in cache: Z is
    read once more and Znorm written once (the whole-array passes make six).  `div` is
    what the variance divides Σ Z0² by (m, or m − 1)."""
    d = Z.shape[1]
    Znorm = np.empty(Z.shape, np.result_type(Z, mu), order="F")
    var, std = np.empty(d, Znorm.dtype), np.empty(d, Znorm.dtype)
    for sl in cols:
        z0 = np.subtract(Z[:, sl], mu[sl], out=Znorm[:, sl])
        v = np.divide(coldot(z0, z0), div, out=var[sl])
        s = np.sqrt(v + eps, out=std[sl])
        z0 *= 1.0 / s
    return Znorm, var, std


# The compact backward works in blocks once dZbn is larger than WHOLE_BYTES (it no longer
# fits the core's caches); a block of dZbn, Znorm and dZ (about 3 × BLOCK_BYTES) stays in
# the last-level cache between the passes over it.  Measured at 65,536 × 512: blocks of
# 32 KiB 343 ms (Python's per-block overhead wins), 64 KiB 221, 256 KiB 200, 1 MiB 173,
# the whole array at once 199.
WHOLE_BYTES = 2 * 1024 * 1024
BLOCK_BYTES = 1024 * 1024


def row_blocks(x: np.ndarray) -> range | None:
    """Starts of the row blocks to work in, or None to work on the whole array (small,
    or not row-major: a block of rows of a column-major array is not contiguous)."""
    m, d = x.shape
    rows = max(16, BLOCK_BYTES // max(1, d * x.itemsize))
    if rows >= m or x.nbytes <= WHOLE_BYTES or not x.flags.c_contiguous:
        return None
    return range(0, m, rows)


def column_blocks(x: np.ndarray) -> list[slice] | None:
    """Column blocks of a large feature-major (column-major) array, or None.  A block of
    columns is contiguous and its features' statistics are its own, so each step of the
    pass can run on it while it is in cache."""
    m, d = x.shape
    if x.nbytes <= WHOLE_BYTES or not x.flags.f_contiguous or x.flags.c_contiguous:
        return None
    cols = max(1, BLOCK_BYTES // max(1, m * x.itemsize))
    return None if cols >= d else [slice(j, j + cols) for j in range(0, d, cols)]


def compact_backward(dy: np.ndarray, Znorm: np.ndarray, scale: np.ndarray,
                     dgamma: np.ndarray, dbeta: np.ndarray, *, bessel: bool = False) -> np.ndarray:
    """dZ = (γ/std) · (dZbn − (dβ + Znorm · dγ) / m) (`COMPACT`), filling `dgamma` and
    `dbeta`; `scale` is γ/std.  `bessel`: the training variance was Σ Z0² / (m − 1), so
    the var branch — the dγ term — divides by m − 1 (`COMPACT_BESSEL`).

    Written as passes over blocks small enough to stay in cache: the sums dβ = Σ dZbn and
    dγ = Σ dZbn·Znorm read each block once from memory, and dZ reads dZbn and Znorm once
    more and writes once — about 5 passes of memory traffic where the same formula on
    whole arrays makes 12, and the staged path 17.
    """
    m, d = dy.shape
    mg = m - 1 if bessel else m  # the dγ term's divisor
    cols = column_blocks(dy) if Znorm.flags.f_contiguous else None
    if cols is not None:  # feature-major: each block of features on its own, in cache
        dZ = np.empty_like(dy)
        for sl in cols:
            b, zn, sc = dy[:, sl], Znorm[:, sl], scale[sl]
            db = colsum(b, out=dbeta[sl])
            dg = coldot(b, zn, out=dgamma[sl])
            out = np.multiply(zn, -sc * dg / mg, out=dZ[:, sl])
            out += b * sc
            out -= sc * db / m
        return dZ
    starts = row_blocks(dy)
    if starts is None:
        colsum(dy, out=dbeta)
        coldot(dy, Znorm, out=dgamma)
        dZ = Znorm * (-scale * dgamma / mg)
        dZ += dy * scale
        dZ -= scale * dbeta / m
        return dZ
    rows = starts.step
    dbeta[...] = 0
    dgamma[...] = 0
    part = np.empty(d, dtype=dy.dtype)
    for i in starts:
        b, zb = dy[i:i + rows], Znorm[i:i + rows]
        dbeta += colsum(b, out=part)
        dgamma += coldot(b, zb, out=part)
    k1 = -scale * dgamma / mg
    k0 = -scale * dbeta / m
    dZ = np.empty_like(dy)
    tmp = np.empty((rows, d), dtype=dy.dtype)
    for i in starts:
        out, t = dZ[i:i + rows], tmp[:min(rows, m - i)]
        np.multiply(Znorm[i:i + rows], k1, out=out)
        np.multiply(dy[i:i + rows], scale, out=t)
        out += t
        out += k0
    return dZ


def train_vs_eval(bn: BatchNorm, Z: np.ndarray) -> dict[str, np.ndarray]:
    """The same batch through batch statistics and through running statistics.

    Returns both normalisations and their difference, and the statistics each used: the
    batch's mean, variance and std; the running mean, the std eval divides by
    (`running_std`: √(running_var + ε), or the running std itself where the convention
    keeps one) and, where eval uses it, the running variance.  The layer is left
    untouched (no running statistics are updated, the cache is restored).
    """
    saved, saved_training = bn.cache, bn.training
    try:
        out: dict[str, np.ndarray] = {}
        if Z.shape[0] >= 2:
            bn.forward(Z, training=True, update_running=False)
            out["batch_mu"], out["batch_var"] = bn.cache["mu"], bn.cache["var"]
            out["batch_std"] = bn.cache["std"]
            out["Znorm_train"], out["Zbn_train"] = bn.cache["Znorm"], bn.cache["Zbn"]
        bn.forward(Z, training=False)
        out["running_mean"], out["running_std"] = bn.cache["mu"], bn.cache["std"]
        if "var" in bn.cache:
            out["running_var"] = bn.cache["var"]
        out["Znorm_eval"], out["Zbn_eval"] = bn.cache["Znorm"], bn.cache["Zbn"]
        if "Zbn_train" in out:
            out["Zbn_diff"] = out["Zbn_train"] - out["Zbn_eval"]
        return out
    finally:
        bn.cache, bn.training = saved, saved_training


def train_eval_gap(out: dict[str, np.ndarray]) -> tuple[float, float] | None:
    """The largest and the mean |Zbn_train − Zbn_eval| of `train_vs_eval`'s result (None
    for a batch of one, which has no training-mode statistics)."""
    if "Zbn_diff" not in out:
        return None
    d = np.abs(out["Zbn_diff"])
    return float(d.max()), float(d.mean())


__all__ = ["BACKWARD", "COMPACT", "COMPACT_BESSEL", "FORWARD", "NODES", "STEPS", "BatchNorm",
           "compact_backward", "train_eval_gap", "train_vs_eval"]
