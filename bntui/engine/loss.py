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
        top = logits.argmax(axis=1)
        shifted = logits - logits[rows, top][:, None]
        e = np.exp(shifted)
        # Σⱼ e = 1 + (the rest): log1p of the rest keeps the digits of a loss near 0.
        e[rows, top] = 0.0
        rest = e @ ones(e.shape[1], e.dtype)
        e[rows, top] = 1.0
        P = np.divide(e, (1.0 + rest)[:, None], out=e)
        log_p_true = shifted[rows, y] - np.log1p(rest)
        loss = float(-log_p_true.mean())
        self.cache = {"logits": logits, "P": P, "y": y, "loss": np.asarray(loss), "top": top}
        return loss

    def backward(self) -> np.ndarray:
        P, y = self.cache["P"], self.cache["y"]
        m = P.shape[0]
        d = P.copy(order="K")  # the logits' layout (feature-major from Dense)
        d[np.arange(m), y] -= 1.0
        d /= m
        self.cache["dlogits"] = d
        return d


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax with the max shift."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
