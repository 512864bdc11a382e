"""GroupNorm over an (N, D) tensor: statistics per sample, over groups of features.

`torch.nn.GroupNorm(G, D, eps)` on (N, D): the D features of each sample split into G
groups of S = D/G neighbours; each sample's group is centred and scaled by its own mean
and variance, then every feature gets its own γ and β.  LayerNorm is the case G = 1 (all
of a sample's features, `bntui.engine.layernorm`).  Unlike BatchNorm nothing is averaged
over the batch: training and eval compute the same thing, one sample never changes
another's output, and there are no running statistics.  m = batch size:

    mu    = (1/S) Σⱼ∈g Z       per sample i and group g: shape m × G
    Z0    = Z − mu             (each feature minus its group's mean)
    var   = (1/S) Σⱼ∈g Z0²     (biased, as torch)
    std   = √(var + ε)
    Znorm = Z0 / std
    Zgn   = γ · Znorm + β      γ, β per feature

The records (`records`) are written once for both layers, with the words of each; their
`reads` patterns `g` (the group of feature j) and `G` (the features of group j) say which
entries a statistic reads, `k` is the count S each statistic averages.  The compact
backward is `compact_group_backward`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bntui.engine.errors import BntuiError
from bntui.engine.kernels import coldot, colsum, rowdot
from bntui.engine.nodes import ANY, Derived, Node, Words
from bntui.engine.norm import NormLayer, Values, steps_of


def records(out: str, title: str, over: str, k: str, sum_: str,
            batch_wrong: str) -> tuple[Node, ...]:
    """The node records of a per-sample normalization (LayerNorm: `k` = D, `sum_` = Σⱼ;
    GroupNorm: `k` = S, `sum_` = Σⱼ∈g); `over` says what one statistic spans and
    `batch_wrong` is the BatchNorm mistake for its mean."""
    stat = "m × 1" if k == "D" else "m × G"
    return (
        Node("Z", f"the Dense output, {title}'s input", "m × D", role="input", backward={
            ANY: Words(
                f"dZ = dZ0 + dmu / {k}",
                f"Z reaches the loss through Z0 and through its sample's mu, which spreads "
                f"1/{k} to each of the {k} features it averages",
                fn="grad_input", reads=(("dZ0", "ij"), ("dmu", "ig"), ("k", "")),
                wrong=("dZ = dZ0 + dmu / m", "dZ = dZ0 + dmu", "dZ = dZ0")),
        }),
        Node("mu", f"per-sample mean {over}", stat, step_scale="mean_scale", forward={
            ANY: Words(
                f"mu = (1/{k}) {sum_} Z",
                f"the mean of each sample {over} — per sample, not per feature: the "
                "batch plays no part", fn="group_mean", reads=(("Z", "iG"), ("k", "")),
                wrong=(batch_wrong, f"mu = {sum_} Z", f"mu = (1/({k}−1)) {sum_} Z")),
        }, backward={
            ANY: Words(
                f"dmu = −{sum_} dZ0", "mu is subtracted from each of its features: minus "
                "their sum of dZ0", fn="grad_mean", reads=(("dZ0", "iG"),),
                wrong=(f"dmu = {sum_} dZ0", "dmu = −Σᵢ dZ0", f"dmu = −(1/{k}) {sum_} dZ0")),
        }),
        Node("Z0", "Z centred per sample", "m × D", forward={
            ANY: Words(
                "Z0 = Z − mu", "each value minus its own sample's mean",
                fn="centre", reads=(("Z", "ij"), ("mu", "ig")),
                wrong=("Z0 = mu − Z", "Z0 = Z − (1/m) Σᵢ Z", f"Z0 = (Z − mu) / {k}")),
        }, backward={
            ANY: Words(
                f"dZ0 = dZnorm / std + dvar · 2 · Z0 / {k}",
                "Z0 feeds Znorm directly and var through Z0²: both branches add up",
                fn="grad_centred",
                reads=(("dZnorm", "ij"), ("std", "ig"), ("dvar", "ig"), ("Z0", "ij"),
                       ("k", "")),
                wrong=("dZ0 = dZnorm / std", "dZ0 = dZnorm / std + dvar · 2 · Z0 / m",
                       f"dZ0 = dZnorm · std + dvar · 2 · Z0 / {k}")),
        }),
        Node("var", f"per-sample variance {over} (biased)", stat, step_scale="var_scale",
             forward={
                 ANY: Words(
                     f"var = (1/{k}) {sum_} Z0²",
                     f"the biased variance of each sample {over}", fn="group_var",
                     reads=(("Z0", "iG"), ("k", "")),
                     wrong=(f"var = (1/({k}−1)) {sum_} Z0²", "var = (1/m) Σᵢ Z0²",
                            f"var = (1/{k}) {sum_} Z²")),
             }, backward={
                 ANY: Words(
                     "dvar = dstd / (2 · std)", "through the square root: d√u/du = 1 / (2√u)",
                     fn="grad_var", reads=(("dstd", "ij"), ("std", "ij")),
                     wrong=("dvar = dstd · 2 · std", "dvar = dstd / std",
                            "dvar = dstd / (2 · var)")),
             }),
        Node("std", "per-sample standard deviation √(var + ε)", stat, forward={
            ANY: Words(
                "std = √(var + ε)", "the standard deviation, with ε inside the root so it "
                "is never 0", fn="root", reads=(("var", "ij"), ("eps", "")),
                wrong=("std = √var + ε", "std = var + ε", f"std = √(var + ε) / {k}")),
        }, backward={
            ANY: Words(
                f"dstd = {sum_} dZnorm · (−Z0 / std²)",
                "std divides each of its sample's values: the std branch of the graph",
                fn="grad_std", reads=(("dZnorm", "iG"), ("Z0", "iG"), ("std", "ij")),
                wrong=(f"dstd = {sum_} dZnorm · (Z0 / std²)", "dstd = Σᵢ dZnorm · (−Z0 / std²)",
                       f"dstd = {sum_} dZnorm · (−Z0 / std)")),
        }),
        Node("Znorm", "Z normalised: each sample mean 0, variance ≈ 1", "m × D", forward={
            ANY: Words(
                "Znorm = Z0 / std", f"each sample scaled to mean 0 and variance ≈ 1 {over}",
                fn="scale", reads=(("Z0", "ij"), ("std", "ig")),
                wrong=("Znorm = Z0 / (var + ε)", "Znorm = Z / std", "Znorm = Z0 · std")),
        }, backward={
            ANY: Words(
                f"dZnorm = d{out} · γ", "the gradient reaching the normalised values "
                "through γ", fn="grad_scaled", reads=((f"d{out}", "ij"), ("gamma", "j")),
                wrong=(f"dZnorm = d{out} / γ", f"dZnorm = d{out} · Znorm",
                       f"dZnorm = d{out} · γ + β")),
        }),
        Node(out, f"{title}'s output γ · Znorm + β", "m × D", role="output", forward={
            ANY: Words(
                f"{out} = γ · Znorm + β", "a learnable scale γ and shift β per feature, "
                "shared by every sample", fn="affine",
                reads=(("Znorm", "ij"), ("gamma", "j"), ("beta", "j")),
                wrong=(f"{out} = γ · (Znorm + β)", f"{out} = β · Znorm + γ",
                       f"{out} = γ · Z0 + β")),
        }),
        Node("beta", f"{title}'s learnable shift β (per feature)", "D", role="param",
             backward={ANY: Words(
                 f"dβ = Σᵢ d{out}", f"β is added to every row, so its gradient sums d{out} "
                 "over the batch", fn="grad_beta", reads=((f"d{out}", ":j"),),
                 wrong=(f"dβ = Σᵢ {out}", f"dβ = {sum_} d{out}", f"dβ = Σᵢ d{out} · Znorm"))}),
        Node("gamma", f"{title}'s learnable scale γ (per feature)", "D", role="param",
             backward={ANY: Words(
                 f"dγ = Σᵢ d{out} · Znorm", f"γ multiplies Znorm, so its gradient sums "
                 f"d{out} · Znorm over the batch", fn="grad_gamma",
                 reads=((f"d{out}", ":j"), ("Znorm", ":j")),
                 wrong=(f"dγ = Σᵢ d{out}", f"dγ = {sum_} d{out} · Znorm",
                        f"dγ = Σᵢ d{out} · Z0"))}),
    )


def compact(k: str, sum_: str) -> Words:
    """The compact backward of a per-sample normalization (γ is per feature, so it stays
    inside dZnorm: it cannot come out of a sum over features as BatchNorm's does)."""
    return Words(f"dZ = (1/std) · (dZnorm − (1/{k}) {sum_} dZnorm − Znorm · (1/{k}) {sum_} "
                 "dZnorm · Znorm)",
                 f"the staged backward in one formula per sample, using {sum_} Znorm = 0 "
                 f"and {sum_} Znorm² = {k} (up to ε)")


def derivation(k: str, sum_: str) -> tuple[Derived, ...]:
    """The compact backward from the staged records, step by step (`bntui derive`)."""
    return (
        Derived("staged", f"dZ = dZ0 + dmu / {k}",
                "the record of Z: Z reaches the loss through Z0 and through its sample's mu"),
        Derived("[1] through the mean", f"dZ = dZ0 − (1/{k}) {sum_} dZ0",
                f"dmu = −{sum_} dZ0: mu is subtracted from each of its features"),
        Derived("[2] through the variance",
                f"dZ0 = dZnorm / std − Z0 · ({sum_} dZnorm · Z0) / ({k} · std³)",
                f"the branch dvar · 2 · Z0 / {k}, with dvar = dstd / (2 · std) and "
                f"dstd = −{sum_} dZnorm · Z0 / std²"),
        Derived("[3] in normalised units",
                f"dZ0 = (1/std) · (dZnorm − Znorm · (1/{k}) {sum_} dZnorm · Znorm)",
                "Z0 = Znorm · std"),
        Derived("[4] the sum of dZ0", f"{sum_} dZ0 = (1/std) · {sum_} dZnorm",
                f"{sum_} Znorm = 0: the second term of [3] sums to nothing"),
        Derived("[5] compact", compact(k, sum_).formula,
                "[1] with [3] and [4]; γ stays inside dZnorm (the output's gradient times "
                "γ): it is per feature and the sums run over features"),
    )


NODES = records("Zgn", "GroupNorm", "over the S = D/G features of each group", "S", "Σⱼ∈g",
                "mu = (1/m) Σᵢ Z  (over the batch, per feature: that is BatchNorm)")
COMPACT = compact("S", "Σⱼ∈g")
DERIVATION = derivation("S", "Σⱼ∈g")


def compact_group_backward(dnorm: np.ndarray, Znorm: np.ndarray, std: np.ndarray,
                           groups: int) -> np.ndarray:
    """dZ = (1/std) · (dZnorm − mean(dZnorm) − Znorm · mean(dZnorm · Znorm)), the means
    over each sample's group of features (`COMPACT`)."""
    shape = dnorm.shape
    g = dnorm.reshape(*shape[:-1], groups, -1)
    zn = Znorm.reshape(g.shape)
    size = g.shape[-1]
    a = g.sum(axis=-1) * (1.0 / size)
    b = rowdot(g, zn) * (1.0 / size)
    dZ = g - a[..., None]
    dZ -= zn * b[..., None]
    dZ *= (1.0 / std)[..., None]
    return dZ.reshape(shape)


class GroupNorm(NormLayer):
    """Group normalization of (N, D) inputs: `torch.nn.GroupNorm(num_groups, D, eps)`."""

    kind = "groupnorm"
    title = "GroupNorm"
    short = "gn"
    OUTPUT = "Zgn"
    NODES: ClassVar[tuple[Node, ...]] = NODES
    STEPS: ClassVar[tuple[str, ...]] = steps_of(NODES, "forward", "backward")
    COMPACT: ClassVar[Words] = COMPACT
    DERIVATION: ClassVar[tuple[Derived, ...]] = DERIVATION

    def __init__(self, num_groups: int, num_features: int, eps: float = 1e-5, *,
                 dtype: np.dtype | type = np.float64) -> None:
        super().__init__(num_features, eps, dtype)
        if not isinstance(num_groups, (int, np.integer)) or num_groups < 1:
            raise BntuiError(f"{self.title} needs at least 1 group (got {num_groups})")
        if num_features % num_groups:
            raise BntuiError(
                f"{self.title}: {num_groups} groups do not divide {num_features} features "
                "(the number of groups must divide the block's width)")
        self.num_groups = int(num_groups)
        self.group_size = self.num_features // self.num_groups

    def describe(self) -> str:
        return (f"GroupNorm({self.num_groups} groups of {self.group_size}, "
                f"{self.num_features}, eps={self.eps:g})")

    def _grouped(self, x: np.ndarray) -> np.ndarray:
        """(…, m, D) as (…, m, G, S): each sample's groups of features."""
        return x.reshape(*x.shape[:-1], self.num_groups, self.group_size)

    # the steps the records name ---------------------------------------------------------
    def group_mean(self, v: Values) -> np.ndarray:
        return self._grouped(v["Z"]).sum(axis=-1) * (1.0 / self.group_size)

    def centre(self, v: Values) -> np.ndarray:
        Z = v["Z"]
        return (self._grouped(Z) - v["mu"][..., None]).reshape(Z.shape)

    def group_var(self, v: Values) -> np.ndarray:
        g = self._grouped(v["Z0"])
        return rowdot(g, g) / self.group_size

    def root(self, v: Values) -> np.ndarray:
        return np.sqrt(v["var"] + self.eps)

    def scale(self, v: Values) -> np.ndarray:
        Z0 = v["Z0"]
        return (self._grouped(Z0) * (1.0 / v["std"])[..., None]).reshape(Z0.shape)

    def affine(self, v: Values) -> np.ndarray:
        return v["Znorm"] * v["gamma"] + v["beta"]

    def grad_beta(self, v: Values) -> np.ndarray:
        return colsum(v["d" + self.OUTPUT])

    def grad_gamma(self, v: Values) -> np.ndarray:
        return coldot(v["d" + self.OUTPUT], v["Znorm"])

    def grad_scaled(self, v: Values) -> np.ndarray:
        return v["d" + self.OUTPUT] * v["gamma"]

    def grad_std(self, v: Values) -> np.ndarray:
        s = rowdot(self._grouped(v["dZnorm"]), self._grouped(v["Z0"]))
        return -s / (v["std"] * v["std"])

    def grad_var(self, v: Values) -> np.ndarray:
        return v["dstd"] / (2.0 * v["std"])

    def grad_centred(self, v: Values) -> np.ndarray:
        dn, Z0 = v["dZnorm"], v["Z0"]
        out = (self._grouped(dn) * (1.0 / v["std"])[..., None]
               + (v["dvar"] * (2.0 / self.group_size))[..., None] * self._grouped(Z0))
        return out.reshape(dn.shape)

    def grad_mean(self, v: Values) -> np.ndarray:
        return -self._grouped(v["dZ0"]).sum(axis=-1)

    def grad_input(self, v: Values) -> np.ndarray:
        dZ0 = v["dZ0"]
        return (self._grouped(dZ0) + (v["dmu"] / self.group_size)[..., None]).reshape(dZ0.shape)

    def mean_scale(self, v: Values) -> np.ndarray:
        """The numerical check's step scale for `mu`: its sample's std."""
        return v["std"]

    def var_scale(self, v: Values) -> np.ndarray:
        """The numerical check's step scale for `var`: the root sees var + ε."""
        return v["var"] + self.eps

    def count(self) -> int:
        """How many values one statistic averages (`k` in the records)."""
        return self.group_size

    # the compact backward -------------------------------------------------------------
    def compact(self, dy: np.ndarray, c: Values, grads: dict[str, np.ndarray]) -> np.ndarray:
        colsum(dy, out=grads["beta"])
        coldot(dy, c["Znorm"], out=grads["gamma"])
        return compact_group_backward(dy * self.params["gamma"], c["Znorm"], c["std"],
                                      self.num_groups)


__all__ = ["COMPACT", "DERIVATION", "NODES", "GroupNorm", "compact", "compact_group_backward",
           "derivation", "records"]
