"""LayerNorm over an (N, D) tensor: each sample normalised over its own features.

`torch.nn.LayerNorm(D, eps)` on (N, D), the normalization of transformers: the statistics
are per sample, over the D features — BatchNorm's turned on their side — so a sample's
output never depends on the rest of the batch, training and eval are the same, a batch
of one works and there are no running statistics.  It is GroupNorm with one group
(`bntui.engine.groupnorm`, whose code it runs); its records say so in their own words:

    mu    = (1/D) Σⱼ Z       per sample: shape m × 1
    Z0    = Z − mu
    var   = (1/D) Σⱼ Z0²     (biased, as torch)
    std   = √(var + ε)
    Znorm = Z0 / std
    Zln   = γ · Znorm + β    γ, β per feature
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bntui.engine.groupnorm import GroupNorm, compact, derivation, records
from bntui.engine.nodes import Derived, Node, Words
from bntui.engine.norm import steps_of

NODES = records("Zln", "LayerNorm", "over its D features", "D", "Σⱼ",
                "mu = (1/m) Σᵢ Z  (over the batch axis: that is BatchNorm, not LayerNorm)")

COMPACT = compact("D", "Σⱼ")
DERIVATION = derivation("D", "Σⱼ")


class LayerNorm(GroupNorm):
    """Layer normalization of (N, D) inputs: `torch.nn.LayerNorm(D, eps)`."""

    kind = "layernorm"
    title = "LayerNorm"
    short = "ln"
    OUTPUT = "Zln"
    NODES: ClassVar[tuple[Node, ...]] = NODES
    STEPS: ClassVar[tuple[str, ...]] = steps_of(NODES, "forward", "backward")
    COMPACT: ClassVar[Words] = COMPACT
    DERIVATION: ClassVar[tuple[Derived, ...]] = DERIVATION

    def __init__(self, num_features: int, eps: float = 1e-5, *,
                 dtype: np.dtype | type = np.float64) -> None:
        super().__init__(1, num_features, eps, dtype=dtype)

    def describe(self) -> str:
        return f"LayerNorm({self.num_features}, eps={self.eps:g})"


__all__ = ["COMPACT", "DERIVATION", "NODES", "LayerNorm"]
