"""Where a training step's gradients come from: the backward pass, centred differences,
or PyTorch autograd — seed 000's `train(numeric=…, analytic=…, autograd=…)`.

    analytic    the layers' own backward (`Network.train_step`: the fused pass, the
                compact BatchNorm formula) — what training always uses
    numerical   (L(θ + δ) − L(θ − δ)) / 2δ for every parameter θ, one at a time, with the
                gradient check's step δ = 1e-5 on the entry's own scale (a weight of
                0.003 before BatchNorm moves the loss on its own scale, not on 1's): two
                training-mode passes per parameter, which is why nobody trains so
    autograd    the network rebuilt in torch, node by node (`engine/autograd.py`), and its
                `backward()`; needs PyTorch

Every source runs one training-mode forward pass that updates the running statistics
(seed 000's numerical-only training never did, so its predictions divided by zero), and
puts its gradients in the network's flat gradient buffer, where the optimizer reads them.
The perturbed passes of the numerical source leave the running statistics alone.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np

from bntui.engine.errors import BntuiError
from bntui.engine.gradcheck import param_steps
from bntui.engine.network import PARAM_GRAD_NAMES, Network

SOURCES = ("analytic", "numerical", "autograd")
H = 1e-5  # the numerical source's step, as CS231n's gradient check
DESCRIPTIONS = {
    "analytic": "the backward pass",
    "numerical": "centred differences of every parameter, steps 1e-5 of its scale",
    "autograd": "PyTorch autograd of the same network",
}
AUTOGRAD_MISSING = ("training on autograd gradients needs PyTorch, which is not installed "
                    "(pip install 'bntui[torch]'), or use --gradients analytic")


def check_source(source: str) -> None:
    """Refuse an unknown source, or autograd without torch, in one line."""
    if source not in SOURCES:
        raise BntuiError(f"gradients must be one of {', '.join(SOURCES)} (got '{source}')")
    if source == "autograd":
        from bntui.engine.autograd import torch_available

        if not torch_available():
            raise BntuiError(AUTOGRAD_MISSING)


def _forward(network: Network, X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """The training-mode loss (running statistics updated) and the rows classified right."""
    loss = network.loss(X, y, training=True, update_running=True)
    cache = network.loss_layer.cache
    hits = cache.get("hits")
    if hits is None:
        hits = np.count_nonzero(np.asarray(network.blocks[-1].cache["A"]).argmax(axis=1) == y)
    return loss, int(hits)


def numerical_step(network: Network, X: np.ndarray, y: np.ndarray,
                   h: float = H, limit: int | None = None) -> tuple[float, int]:
    """The step's loss and hits; every parameter's centred difference into the flat
    gradient buffer (`limit`: only the first `limit` parameters, to time it)."""
    loss, hits = _forward(network, X, y)
    if not np.isfinite(loss):
        return loss, hits
    flat = network.flat
    params, grads = flat.params, flat.grads
    steps = np.empty(flat.size)
    for block in network.blocks:  # the gradient check's steps: h on each entry's scale
        by_name = param_steps(block, block.cache, h, relative=True)
        for layer in block.layers():
            for name in layer.params:
                steps[flat.layout[f"{block.index}.{name}"][0]] = by_name[name]
    n = params.size if limit is None else min(limit, params.size)
    with np.errstate(all="ignore"):
        for k in range(n):
            old, d = params[k], steps[k]
            params[k] = old + d
            up = network.train_loss(X, y)
            params[k] = old - d
            down = network.train_loss(X, y)
            params[k] = old
            grads[k] = (up - down) / (2.0 * d)
    return loss, hits


def autograd_step(network: Network, X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """The step's loss and hits; torch autograd's gradient of every parameter into the
    flat gradient buffer."""
    from bntui.engine.autograd import autograd_gradients

    loss, hits = _forward(network, X, y)
    if not np.isfinite(loss):
        return loss, hits
    result, why = autograd_gradients(network, X, y, training=True)
    if result is None:
        raise BntuiError(f"cannot train on autograd gradients: {why}")
    _, grads = result
    for block in network.blocks:
        got = grads[block.index]
        for layer in block.layers():
            for pname in layer.params:
                np.copyto(layer.grads[pname], got[PARAM_GRAD_NAMES[pname]])
    return loss, hits


def step_function(network: Network,
                  source: str) -> Callable[[np.ndarray, np.ndarray], tuple[float, int]]:
    """`(X, y) → (loss, hits)` filling the gradients from `source`."""
    check_source(source)
    if source == "analytic":
        return network.train_step
    if source == "numerical":
        return lambda X, y: numerical_step(network, X, y)
    return lambda X, y: autograd_step(network, X, y)


def seconds_per_step(network: Network, X: np.ndarray, y: np.ndarray,
                     sources: tuple[str, ...] = SOURCES,
                     budget: float = 0.5) -> dict[str, float | None]:
    """Seconds each source takes for one step's gradients on (X, y), measured on a copy
    of the network (the original is untouched); None for autograd without torch.  The
    numerical source is timed on as many parameters as `budget` seconds allow and scaled
    to all of them (its cost is the same for each: two passes)."""
    from bntui.engine.autograd import torch_available

    out: dict[str, float | None] = {}
    for source in sources:
        net = copy.deepcopy(network)
        if source == "autograd" and not torch_available():
            out[source] = None
            continue
        if source == "numerical":
            t0 = time.perf_counter()
            net.train_loss(X, y)
            one = max(time.perf_counter() - t0, 1e-7)
            limit = max(1, min(net.flat.size, int(budget / (2 * one))))
            t0 = time.perf_counter()
            numerical_step(net, X, y, limit=limit)
            out[source] = (time.perf_counter() - t0) * net.flat.size / limit
            continue
        run = step_function(net, source)
        runs, t0 = 0, time.perf_counter()
        while True:
            run(X, y)
            runs += 1
            elapsed = time.perf_counter() - t0
            if elapsed > budget / 10 or runs >= 50:
                break
        out[source] = elapsed / runs
    return out


__all__ = ["DESCRIPTIONS", "SOURCES", "autograd_step", "check_source", "numerical_step",
           "seconds_per_step", "step_function"]
