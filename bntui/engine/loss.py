"""Softmax and cross-entropy, fused and numerically stable.

    P    = softmax(logits) = e^(logits − max) / Σⱼ e^(logits − max)
    loss = (1/m) Σᵢ −log P[i, yᵢ]      computed as logsumexp − logit of the true class,
                                       with log1p so a loss near 0 keeps its digits
    dlogits = (P − Y) / m              (Y one-hot)

Fusing the two keeps the gradient simple and exact; the max shift keeps e^x finite.  The
node records (`NODES`) declare P, the loss and dlogits with their words, beside the code.
`train_backward` is the fused dlogits (written into P's own buffer, bit-identical to
`backward`); `variant_losses` the loss of many perturbed copies of the logits at once
(the numerical gradient check's).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bntui.engine.kernels import ones
from bntui.engine.nodes import ANY, Node, Words

NODES: tuple[Node, ...] = (
    Node("logits", "the last layer's output, one score per class", "m × C", role="input",
         backward={ANY: Words(
             "dlogits = (P − Y) / m", "softmax + cross-entropy together have the simplest "
             "gradient: P minus one-hot, over m", fn="backward",
             reads=(("P", "ij"), ("Y", "ij"), ("m", "")),
             wrong=("dlogits = P − Y", "dlogits = (Y − P) / m", "dlogits = P · (1 − P) / m"))}),
    Node("P", "class probabilities, softmax of the logits", "m × C", forward={ANY: Words(
        "P = e^(logits − max) / Σⱼ e^(logits − max)",
        "softmax turns each row of logits (= {pre} of layer {layer}) into class "
        "probabilities, shifted by the row max so e^x stays finite", fn="forward",
        reads=(("logits", "i:"),),
        wrong=("P = e^(logits − max) / Σᵢ e^(logits − max)  (over the batch)",
               "P = logits / Σⱼ logits", "P = 1 / (1 + e^(−logits))"))}),
    Node("loss", "the mean cross-entropy", "scalar", role="output", forward={ANY: Words(
        "loss = (1/m) Σᵢ −log P[i, yᵢ]", "the mean negative log-probability of the true class",
        fn="forward", reads=(("Py", ""), ("m", "")),
        wrong=("loss = Σᵢ −log P[i, yᵢ]", "loss = (1/m) Σᵢ Σⱼ −log P[i, j]",
               "loss = (1/m) Σᵢ −log (1 − P[i, yᵢ])"))}),
)


class SoftmaxCrossEntropy:
    """The loss block: softmax of the logits and the mean cross-entropy."""

    kind = "loss"
    NODES: ClassVar[tuple[Node, ...]] = NODES
    FUSED: ClassVar[bool] = True  # False for a subclass with its own forward or backward

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "FUSED" not in cls.__dict__:
            cls.FUSED = all(getattr(cls, s) is getattr(SoftmaxCrossEntropy, s)
                            for s in ("forward", "backward"))

    def __init__(self) -> None:
        self.cache: dict[str, np.ndarray] = {}

    def mode_keys(self, training: bool) -> tuple[str, ...]:
        return ("train" if training else "eval",)

    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        self.cache = {}  # free the last pass's tensors before making new ones
        m = logits.shape[0]
        rows = np.arange(m)
        # Class-major (C, N): a view of the engine's feature-major logits, so the row
        # max, the shift and the sums over classes run along contiguous rows of N.
        L = np.ascontiguousarray(logits.T)
        mx = L.max(axis=0)
        shifted = L - mx
        # each row's max, where e^0 = 1: found by value and set to 0, since a +∞ logit's
        # shift is ∞ − ∞ (its class then has probability 1, as in the limit)
        top = np.flatnonzero(np.equal(L, mx))
        shifted.reshape(-1)[top] = 0.0
        true = shifted[y, rows]
        e = np.exp(shifted)
        flat = e.reshape(-1)  # a view: e is contiguous
        # Σⱼ e = 1 + (the rest): log1p of the rest keeps the digits of a loss near 0.
        flat[top] = 0.0
        rest = ones(e.shape[0], e.dtype) @ e
        ties = top.size != m
        if ties:  # the other maxima of a row count as 1 each
            rest += np.bincount(top % m, minlength=m) - 1
        flat[top] = 1.0
        e /= 1.0 + rest
        loss = float(-(true - np.log1p(rest)).mean())
        # rows whose arg-max is the true class (the first max, as argmax, when tied)
        hits = (np.count_nonzero(logits.argmax(axis=1) == y) if ties
                else np.count_nonzero(true == 0.0))
        self.cache = {"logits": logits, "P": e.T, "y": y, "loss": np.asarray(loss),
                      "hits": np.asarray(hits)}
        return loss

    def backward(self) -> np.ndarray:
        d = _minus_one_hot_over_m(self.cache["P"].copy(order="K"), self.cache["y"])
        self.cache["dlogits"] = d
        return d

    def train_backward(self) -> np.ndarray:
        """dlogits as `backward` computes it, in P's own buffer (training needs P no
        more), and the cache emptied."""
        P, y = self.cache["P"], self.cache["y"]
        self.cache = {}
        return _minus_one_hot_over_m(P, y)

    def variant_losses(self, logits: np.ndarray, y: np.ndarray, top: np.ndarray) -> np.ndarray:
        """The mean cross-entropy of each of V perturbed copies of a batch's logits,
        class-major (V, C, N) and used up as scratch: (V,).

        As `forward`: each row shifted so that its top class is 0, the other classes'
        e^x summed and log1p taken of that sum (the digits of a loss near 0 are kept).
        The top class is `top`, the unperturbed row's: a perturbation that reorders a
        near-tie changes only the rounding; where e^x overflows with that shift (or the
        logits are NaN) each row's own max is used instead.
        """
        n = logits.shape[-1]
        cols = np.arange(n)
        logits -= logits[:, top, cols][:, None, :]
        true = logits[:, y, cols]
        logits[:, top, cols] = -np.inf  # e^−∞ = 0: the top class is the 1 outside log1p
        rest = ones(logits.shape[-2], logits.dtype) @ np.exp(logits)
        if np.isfinite(rest).all():
            return (np.log1p(rest) - true).sum(axis=-1) / n
        logits[:, top, cols] = 0.0
        shifted = logits - logits.max(axis=-2, keepdims=True)
        true = shifted[:, y, cols]
        total = ones(logits.shape[-2], logits.dtype) @ np.exp(shifted)
        return (np.log(total) - true).sum(axis=-1) / n


def _minus_one_hot_over_m(d: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(P − Y) / m written into `d` (a copy of P, in the logits' layout): − 1 at each
    row's true class, then / m."""
    m = d.shape[0]
    dT = d.T
    if dT.flags.c_contiguous:  # feature-major: through the flat view of the (C, N) buffer
        dT.reshape(-1)[y * m + np.arange(m)] -= 1.0
    else:
        d[np.arange(m), y] -= 1.0
    d /= m
    return d

