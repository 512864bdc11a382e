"""One training step without the teaching bookkeeping: what `Session.train` runs.

`Network.loss` + `Network.backward` keep every tensor of the pass, named, for the stepper
and the gradient checks, with copies of the gradients and a choice of backward.  Training
needs none of that, and on small networks the bookkeeping is a tenth of a step.  This is
the same arithmetic, operation for operation — training-mode BatchNorm, the compact
backward, the same loss — so the losses, gradients, running statistics and parameters are
bit-identical to the full pass (tested), with the per-block dictionaries, the copies and a
temporary per BatchNorm left out.  Afterwards the layers' caches are empty: whatever
shows a pass runs its own.

Only for networks built from the engine's own parts (`supports`): a layer swapped for a
subclass (the bug zoo's) keeps the full pass, whose methods it overrides.
"""

from __future__ import annotations

import numpy as np

from bntui.engine.activations import Sigmoid
from bntui.engine.batchnorm import (
    BatchNorm,
    column_blocks,
    compact_backward,
    train_forward_by_columns,
)
from bntui.engine.dense import Dense
from bntui.engine.errors import BntuiError
from bntui.engine.kernels import coldot, colsum
from bntui.engine.loss import SoftmaxCrossEntropy
from bntui.engine.network import Block, Network


def supports(network: Network) -> bool:
    """Whether every layer is the engine's own class (not a subclass)."""
    return type(network.loss_layer) is SoftmaxCrossEntropy and all(
        type(b) is Block and type(b.dense) is Dense
        and (b.bn is None or type(b.bn) is BatchNorm) for b in network.blocks)


def train_step(network: Network, X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Forward in training mode (running statistics updated), the loss, and — if the loss
    is finite — the backward pass into the layers' gradient buffers.

    Returns the loss and the number of rows the network classifies right.
    """
    saved: list[tuple[np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray]] = []
    A = X
    for block in network.blocks:
        dense, bn = block.dense, block.bn
        dense.X = A
        Z = np.matmul(dense.params["W"].T, A.T).T  # feature-major, as Dense.forward
        if dense.has_bias:
            Z += dense.params["b"]
        Znorm = std = None
        if bn is not None:
            m = Z.shape[0]
            if m < 2:
                raise BntuiError("expected more than 1 value per feature when training "
                                 "(batch size 1 with BatchNorm)")
            bn.training = True
            bn.cache = {}
            cols = column_blocks(Z)
            if cols is not None:  # large and feature-major: BatchNorm.forward's own path
                c = train_forward_by_columns(Z, bn.eps, bn.params["gamma"],
                                              bn.params["beta"], cols)
                bn._update_running(c["mu"], c["var"], c["std"], m)
                Znorm, std, pre = c["Znorm"], c["std"], c["Zbn"]
                block.cache = {}
                A = pre if block.is_output else block.act.forward(pre)
                saved.append((Znorm, std, pre, A))
                continue
            mu = colsum(Z) * (1.0 / m)
            Znorm = Z - mu  # Z0, normalised in place below
            var = coldot(Znorm, Znorm) / m
            std = np.sqrt(var + bn.eps)
            bn._update_running(mu, var, std, m)
            Znorm *= 1.0 / std
            if type(block.act) is Sigmoid and not block.is_output:
                # A = 1 / (1 + e^−Zbn) with −Zbn = Znorm·(−γ) − β, exactly (negation
                # commutes with rounding): Zbn itself is never needed, one pass saved
                A = Znorm * -bn.params["gamma"]
                A -= bn.params["beta"]
                with np.errstate(over="ignore"):
                    np.exp(A, out=A)
                A += 1.0
                np.reciprocal(A, out=A)
                block.cache = {}
                saved.append((Znorm, std, A, A))  # the sigmoid's backward reads A only
                continue
            pre = Znorm * bn.params["gamma"]
            pre += bn.params["beta"]
        else:
            pre = Z
        block.cache = {}
        A = pre if block.is_output else block.act.forward(pre)
        saved.append((Znorm, std, pre, A))
    loss_layer = network.loss_layer
    loss = loss_layer.forward(A, y)
    P, hits = loss_layer.cache["P"], int(loss_layer.cache["hits"])
    loss_layer.cache = {}
    if not np.isfinite(loss):
        return loss, hits
    m = P.shape[0]  # dlogits = (P − Y) / m, in P's own buffer
    PT = P.T
    if PT.flags.c_contiguous:
        PT.reshape(-1)[y * m + np.arange(m)] -= 1.0
    else:
        P[np.arange(m), y] -= 1.0
    P /= m
    d = P
    for i in range(len(network.blocks) - 1, -1, -1):
        block = network.blocks[i]
        Znorm, std, pre, A = saved[i]
        if not block.is_output:
            d = block.act.backward(pre, A, d)
        bn = block.bn
        if bn is not None:
            assert Znorm is not None and std is not None
            g = bn.grads
            d = compact_backward(d, Znorm, bn.params["gamma"] / std, g["gamma"], g["beta"])
        d = block.dense.backward(d, need_dX=i > 0)  # type: ignore[assignment]
    return loss, hits
