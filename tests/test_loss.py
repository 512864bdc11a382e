"""Softmax + cross-entropy against an independent reference (math.fsum of the textbook
formulas, row by row), with ties, in either memory order; the gradient against PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bntui.engine import SoftmaxCrossEntropy


def reference(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, int]:
    """Mean −log P[y], P row by row, and the rows whose first arg-max is y."""
    losses, P, hits = [], np.empty_like(logits), 0
    for i, row in enumerate(logits.tolist()):
        mx = max(row)
        z = math.fsum(math.exp(v - mx) for v in row)
        losses.append(-(row[y[i]] - mx - math.log(z)))
        P[i] = [math.exp(v - mx) / z for v in row]
        hits += row.index(mx) == y[i]
    return math.fsum(losses) / len(losses), P, hits


@pytest.mark.parametrize("order", ["C", "F"])
def test_loss_probabilities_and_hits(order: str) -> None:
    rng = np.random.default_rng(5)
    logits = rng.normal(scale=3.0, size=(40, 6))
    logits[0, [1, 4]] = 9.0  # a tie for the max, true class the second of them
    logits[1, [2, 3]] = 9.0  # a tie, true class the first
    y = rng.integers(0, 6, 40)
    y[0], y[1] = 4, 2
    logits = np.array(logits, order=order)
    layer = SoftmaxCrossEntropy()
    loss = layer.forward(logits, y)
    want_loss, want_P, want_hits = reference(logits, y)
    assert loss == pytest.approx(want_loss, rel=1e-14)
    np.testing.assert_allclose(layer.cache["P"], want_P, rtol=1e-13, atol=1e-300)
    assert int(layer.cache["hits"]) == want_hits == int(np.sum(logits.argmax(axis=1) == y))
    d = layer.backward()
    onehot = np.eye(6)[y]
    np.testing.assert_allclose(d, (want_P - onehot) / 40, rtol=1e-12, atol=1e-17)


def test_a_confident_loss_keeps_its_digits() -> None:
    """loss ≈ e^−40 for one row: log1p of the rest, not log of 1 + rest (which is 0)."""
    logits = np.array([[40.0, 0.0]])
    loss = SoftmaxCrossEntropy().forward(logits, np.array([0]))
    assert loss == pytest.approx(math.exp(-40.0), rel=1e-14)


def test_an_infinite_logit_gives_the_limits() -> None:
    """A +∞ logit: its class has probability 1; the loss is +∞ when it is the wrong class
    and 0 when it is the true one (as the arithmetic's limits), not NaN."""
    layer = SoftmaxCrossEntropy()
    with np.errstate(invalid="ignore"):
        loss = layer.forward(np.array([[0.0, np.inf], [0.0, 1.0]]), np.array([0, 0]))
    assert loss == math.inf
    np.testing.assert_array_equal(layer.cache["P"][0], [0.0, 1.0])
    assert int(layer.cache["hits"]) == 0  # neither row's arg-max is class 0
    with np.errstate(invalid="ignore"):
        assert layer.forward(np.array([[np.inf, 0.0], [2.0, 1.0]]), np.array([0, 0])) == (
            pytest.approx(math.log1p(math.exp(-1.0)) / 2, rel=1e-15))
    assert int(layer.cache["hits"]) == 2
