"""Softmax and cross-entropy, fused and numerically stable.

    P    = softmax(logits) = e^(logits − max) / Σⱼ e^(logits − max)
    loss = (1/m) Σᵢ −log P[i, yᵢ]      computed as logsumexp − logit of the true class,
                                       with log1p so a loss near 0 keeps its digits
    dlogits = (P − Y) / m              (Y one-hot)

Fusing the two keeps the gradient simple and exact; the max shift keeps e^x finite.
"""

from __future__ import annotations

import numpy as np

from bntui.engine.kernels import ones

FORMULAS = {
    "P": "P = e^(logits − max) / Σⱼ e^(logits − max)",
    "loss": "loss = (1/m) Σᵢ −log P[i, yᵢ]",
    "dlogits": "dlogits = (P − Y) / m",
}
EXPLANATIONS = {
    "P": "softmax turns each row of logits into class probabilities (shifted by the row max)",
    "loss": "the mean negative log-probability of the true class",
    "dlogits": "softmax + cross-entropy together have the simplest gradient: P minus one-hot",
}


class SoftmaxCrossEntropy:
    """The loss block: softmax of the logits and the mean cross-entropy."""

    kind = "loss"

    def __init__(self) -> None:
        self.cache: dict[str, np.ndarray] = {}

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
        P, y = self.cache["P"], self.cache["y"]
        m = P.shape[0]
        d = P.copy(order="K")  # the logits' layout (feature-major from Dense)
        dT = d.T
        if dT.flags.c_contiguous:  # − 1 at each true class, through the flat view
            dT.reshape(-1)[y * m + np.arange(m)] -= 1.0
        else:
            d[np.arange(m), y] -= 1.0
        d /= m
        self.cache["dlogits"] = d
        return d


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax with the max shift."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
