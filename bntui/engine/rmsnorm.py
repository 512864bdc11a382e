"""RMSNorm over an (N, D) tensor: each sample divided by its root mean square.

`torch.nn.RMSNorm(D, eps=eps)` on (N, D), LayerNorm without the centring and without β
(LLaMA's normalization): per sample, over its D features,

    ms    = (1/D) Σⱼ Z²      the mean square: shape m × 1
    rms   = √(ms + ε)
    Znorm = Z / rms
    Zrms  = γ · Znorm        γ per feature, no shift

Like LayerNorm it does not look at the batch: training and eval are the same and there
are no running statistics.  Default ε 1e-6 (torch's default is the dtype's machine
epsilon; the issue and most models pass 1e-6).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bntui.engine.kernels import coldot, rowdot
from bntui.engine.nodes import ANY, Derived, Node, Words
from bntui.engine.norm import NormLayer, Values, steps_of

NODES: tuple[Node, ...] = (
    Node("Z", "the Dense output, RMSNorm's input", "m × D", role="input", backward={
        ANY: Words(
            "dZ = dZnorm / rms + dms · 2 · Z / D",
            "Z feeds Znorm directly and the mean square through Z²: both branches add up",
            fn="grad_input",
            reads=(("dZnorm", "ij"), ("rms", "ig"), ("dms", "ig"), ("Z", "ij"), ("k", "")),
            wrong=("dZ = dZnorm / rms", "dZ = dZnorm / rms + dms · 2 · Z",
                   "dZ = dZnorm / rms + dms · Z / D")),
    }),
    Node("ms", "per-sample mean square over its D features", "m × 1",
         step_scale="ms_scale", forward={
             ANY: Words(
                 "ms = (1/D) Σⱼ Z²", "the mean of each sample's squares over its features: "
                 "no mean is subtracted", fn="mean_square", reads=(("Z", "iG"), ("k", "")),
                 wrong=("ms = (1/D) Σⱼ (Z − mu)²", "ms = (1/m) Σᵢ Z²", "ms = ((1/D) Σⱼ Z)²")),
         }, backward={
             ANY: Words(
                 "dms = drms / (2 · rms)", "through the square root: d√u/du = 1 / (2√u)",
                 fn="grad_ms", reads=(("drms", "ij"), ("rms", "ij")),
                 wrong=("dms = drms · 2 · rms", "dms = drms / rms", "dms = drms / (2 · ms)")),
         }),
    Node("rms", "per-sample root mean square √(ms + ε)", "m × 1", forward={
        ANY: Words(
            "rms = √(ms + ε)", "the root mean square, with ε inside the root so it is "
            "never 0", fn="root", reads=(("ms", "ij"), ("eps", "")),
            wrong=("rms = √ms + ε", "rms = ms + ε", "rms = √(ms + ε) / D")),
    }, backward={
        ANY: Words(
            "drms = Σⱼ dZnorm · (−Z / rms²)", "rms divides each of its sample's values",
            fn="grad_rms", reads=(("dZnorm", "iG"), ("Z", "iG"), ("rms", "ij")),
            wrong=("drms = Σⱼ dZnorm · (Z / rms²)", "drms = Σᵢ dZnorm · (−Z / rms²)",
                   "drms = Σⱼ dZnorm · (−Z / rms)")),
    }),
    Node("Znorm", "Z divided by its sample's rms: mean square ≈ 1", "m × D", forward={
        ANY: Words(
            "Znorm = Z / rms", "each sample scaled to a mean square ≈ 1 (not centred)",
            fn="scale", reads=(("Z", "ij"), ("rms", "ig")),
            wrong=("Znorm = (Z − mu) / rms", "Znorm = Z / ms", "Znorm = Z · rms")),
    }, backward={
        ANY: Words(
            "dZnorm = dZrms · γ", "the gradient reaching the normalised values through γ",
            fn="grad_scaled", reads=(("dZrms", "ij"), ("gamma", "j")),
            wrong=("dZnorm = dZrms / γ", "dZnorm = dZrms · Znorm", "dZnorm = dZrms")),
    }),
    Node("Zrms", "RMSNorm's output γ · Znorm", "m × D", role="output", forward={
        ANY: Words(
            "Zrms = γ · Znorm", "a learnable scale γ per feature (RMSNorm has no shift β)",
            fn="affine", reads=(("Znorm", "ij"), ("gamma", "j")),
            wrong=("Zrms = γ · Znorm + β", "Zrms = Znorm / γ", "Zrms = γ · Z")),
    }),
    Node("gamma", "RMSNorm's learnable scale γ (per feature)", "D", role="param", backward={
        ANY: Words(
            "dγ = Σᵢ dZrms · Znorm", "γ multiplies Znorm, so its gradient sums dZrms · "
            "Znorm over the batch", fn="grad_gamma", reads=(("dZrms", ":j"), ("Znorm", ":j")),
            wrong=("dγ = Σᵢ dZrms", "dγ = Σⱼ dZrms · Znorm", "dγ = Σᵢ dZrms · Z")),
    }),
)

COMPACT = Words("dZ = (1/rms) · (dZnorm − Znorm · (1/D) Σⱼ dZnorm · Znorm)",
                "the staged backward in one formula per sample")
DERIVATION: tuple[Derived, ...] = (
    Derived("staged", "dZ = dZnorm / rms + dms · 2 · Z / D",
            "the record of Z: Z feeds Znorm directly and the mean square through Z²"),
    Derived("[1] through the mean square",
            "dZ = dZnorm / rms − Z · (Σⱼ dZnorm · Z) / (D · rms³)",
            "dms = drms / (2 · rms) and drms = −Σⱼ dZnorm · Z / rms²"),
    Derived("[2] compact", COMPACT.formula,
            "Z = Znorm · rms; nothing is centred, so no mean term appears"),
)


class RMSNorm(NormLayer):
    """Root-mean-square normalization of (N, D) inputs: `torch.nn.RMSNorm(D, eps=eps)`."""

    kind = "rmsnorm"
    title = "RMSNorm"
    short = "rms"
    OUTPUT = "Zrms"
    PARAMS = ("gamma",)
    NODES: ClassVar[tuple[Node, ...]] = NODES
    STEPS: ClassVar[tuple[str, ...]] = steps_of(NODES, "forward", "backward")
    COMPACT: ClassVar[Words] = COMPACT
    DERIVATION: ClassVar[tuple[Derived, ...]] = DERIVATION
    group_size: int

    def __init__(self, num_features: int, eps: float = 1e-6, *,
                 dtype: np.dtype | type = np.float64) -> None:
        super().__init__(num_features, eps, dtype)
        self.group_size = self.num_features  # one statistic per sample, over D

    def count(self) -> int:
        """How many values one statistic averages (`k` in the records): D."""
        return self.num_features

    # the steps the records name ---------------------------------------------------------
    def mean_square(self, v: Values) -> np.ndarray:
        Z = v["Z"]
        return (rowdot(Z, Z) * (1.0 / Z.shape[-1]))[..., None]

    def root(self, v: Values) -> np.ndarray:
        return np.sqrt(v["ms"] + self.eps)

    def scale(self, v: Values) -> np.ndarray:
        return v["Z"] * (1.0 / v["rms"])

    def affine(self, v: Values) -> np.ndarray:
        return v["Znorm"] * v["gamma"]

    def grad_gamma(self, v: Values) -> np.ndarray:
        return coldot(v["dZrms"], v["Znorm"])

    def grad_scaled(self, v: Values) -> np.ndarray:
        return v["dZrms"] * v["gamma"]

    def grad_rms(self, v: Values) -> np.ndarray:
        return (-rowdot(v["dZnorm"], v["Z"]))[..., None] / (v["rms"] * v["rms"])

    def grad_ms(self, v: Values) -> np.ndarray:
        return v["drms"] / (2.0 * v["rms"])

    def grad_input(self, v: Values) -> np.ndarray:
        Z = v["Z"]
        return v["dZnorm"] / v["rms"] + v["dms"] * (2.0 / Z.shape[-1]) * Z

    def ms_scale(self, v: Values) -> np.ndarray:
        """The numerical check's step scale for `ms`: the root sees ms + ε."""
        return v["ms"] + self.eps

    # the compact backward -------------------------------------------------------------
    def compact(self, dy: np.ndarray, c: Values, grads: dict[str, np.ndarray]) -> np.ndarray:
        Znorm = c["Znorm"]
        coldot(dy, Znorm, out=grads["gamma"])
        dn = dy * self.params["gamma"]
        b = rowdot(dn, Znorm) * (1.0 / dn.shape[-1])
        dZ = dn - Znorm * b[..., None]
        dZ *= 1.0 / c["rms"]
        return dZ


__all__ = ["COMPACT", "DERIVATION", "NODES", "RMSNorm"]
