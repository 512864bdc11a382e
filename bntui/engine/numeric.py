"""Numerical gradients, many perturbations at a time.

The same centred differences as the textbook loop (`gradcheck.numeric_gradients_loop`,
kept as the reference and checked against this in the tests), computed on a leading
"variant" axis: every perturbed copy of a tensor is one slice of a (V, N, D) array, and
the rest of the network runs once for all of them.  Two facts make it cheap:

  * a weight W[i, j], a bias b[j], γ[j] or β[j] changes one column j of its block, and
    BatchNorm and the activation work column by column, so only that column is
    recomputed; the next block sees a rank-one change, `Z' = Z + (A'[:, j] − A[:, j]) ⊗ W[j]`;
  * an intermediate tensor is sampled (a few entries), so its variants are few.

Kink crossings are detected per variant, as in the loop.  No state of the network is
touched: it reads the caches of one unperturbed pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from bntui.engine.kernels import ones
from bntui.engine.network import PARAM_GRAD_NAMES, Block, Network

MAX_BYTES = 48_000_000  # per (V, N, D) array


def _act(block: Block, pre: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return block.act.forward(pre)


def _loss(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean cross-entropy of each variant: logits (V, N, C) → (V,), as the engine's loss.

    The same arithmetic as `SoftmaxCrossEntropy.forward` (shift by the row max, Σ of the
    other classes' e^x through log1p), written for many variants at once: the row max by
    C − 1 element-wise maxima instead of an arg-max over short rows, and the row sums
    as one matrix product.
    """
    n, C = logits.shape[-2], logits.shape[-1]
    mx = logits[..., 0].copy()
    for c in range(1, C):
        np.maximum(mx, logits[..., c], out=mx)
    shifted = logits - mx[..., None]
    true = shifted[..., np.arange(n), y]
    top = shifted == 0.0  # the max itself, where e^0 = 1 is left out of the rest
    e = np.exp(shifted, out=shifted)
    np.copyto(e, 0.0, where=top)
    rest = e @ ones(C, e.dtype)
    if np.count_nonzero(top) != top.size // C:  # ties for the max: the others count
        rest += np.count_nonzero(top, axis=-1) - 1
    return -(true - np.log1p(rest)).sum(axis=-1) / n


def _batch_mean(val: np.ndarray) -> np.ndarray:
    """Mean over the batch axis (−2) of (V, N, D) variants, as one batched product."""
    n = val.shape[-2]
    return np.matmul(ones(n, val.dtype), val) * (1.0 / n)


def _bn_rest(block: Block, c: dict[str, np.ndarray], node: str, val: np.ndarray,
             training: bool) -> np.ndarray:
    """Zbn for variants of one BatchNorm node (leading axis V; features last)."""
    bn = block.bn
    assert bn is not None
    gamma, beta, eps = bn.gamma, bn.beta, bn.eps
    if node == "Z" and training:  # the common case, in few passes over (V, N, D)
        Z0 = val - _batch_mean(val)[..., None, :]
        var = np.einsum("...nd,...nd->...d", Z0, Z0) / val.shape[-2]
        Z0 *= (gamma / np.sqrt(var + eps))[..., None, :]
        Z0 += beta
        return Z0
    order = ("Z", "mu", "Z0", "var", "std", "Znorm", "Zbn")
    at = order.index(node)
    Z = val if node == "Z" else c["Z"]
    if at <= 1:
        mu = val if node == "mu" else (Z.mean(axis=-2) if training else c["mu"])
        Z0 = Z - (mu[..., None, :] if mu.ndim > 1 else mu)
    else:
        Z0 = val if node == "Z0" else c["Z0"]
    if at <= 2:
        var = (Z0 * Z0).mean(axis=-2) if training else c["var"]
        std = np.sqrt(var + eps) if training else c["std"]
    elif at == 3:
        std = np.sqrt(val + eps)
    elif at == 4:
        std = val
    else:
        std = c["std"]
    if at <= 4:
        Znorm = Z0 / (std[..., None, :] if std.ndim > 1 else std)
    else:
        Znorm = val if node == "Znorm" else c["Znorm"]
    return val if node == "Zbn" else gamma * Znorm + beta


def _resume(network: Network, caches: list[dict[str, np.ndarray]], k: int, node: str,
            val: np.ndarray, y: np.ndarray, training: bool,
            masks: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Loss and kink-crossed flag of each variant of `node` of block k (0-based)."""
    V = val.shape[0]
    crossed = np.zeros(V, dtype=bool)
    A: np.ndarray | None = None
    for i in range(k, len(network.blocks)):
        block, c = network.blocks[i], caches[i]
        if i > k:
            node, val = "X", A  # type: ignore[assignment]
        if node == "A":
            A = val
            continue
        if node == "X":
            val = val @ block.dense.W
            if block.dense.has_bias:
                val = val + block.dense.params["b"]
            node = "Z"
        pre = _bn_rest(block, c, node, val, training) if block.bn is not None else val
        if block.index in masks:
            crossed |= ((pre > 0) != masks[block.index]).any(axis=(-2, -1))
        A = pre if block.is_output else _act(block, pre)
    assert A is not None
    return _loss(A, y), crossed


def _column_variants(network: Network, caches: list[dict[str, np.ndarray]], k: int, j: int,
                     node: str, col: np.ndarray, y: np.ndarray, training: bool,
                     masks: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Variants that change only column j of block k's `node` ("Z" or "Zbn"): (V, N)."""
    block, c = network.blocks[k], caches[k]
    V = col.shape[0]
    crossed = np.zeros(V, dtype=bool)
    if block.bn is not None:
        bn = block.bn
        if node == "Z":
            if training:
                mu = col.mean(axis=-1, keepdims=True)
                Z0 = col - mu
                std = np.sqrt((Z0 * Z0).mean(axis=-1, keepdims=True) + bn.eps)
            else:
                Z0 = col - c["mu"][j]
                std = c["std"][j]
            pre = bn.gamma[j] * (Z0 / std) + bn.beta[j]
        else:
            pre = col
    else:
        pre = col
    if block.index in masks:
        crossed |= ((pre > 0) != masks[block.index][:, j]).any(axis=-1)
    Acol = pre if block.is_output else _act(block, pre)
    if block.is_output:
        logits = np.broadcast_to(c["A"], (V, *c["A"].shape)).copy()
        logits[:, :, j] = Acol
        return _loss(logits, y), crossed
    nxt = network.blocks[k + 1]
    change = Acol - c["A"][:, j]
    Znext = caches[k + 1]["Z"][None] + change[:, :, None] * nxt.dense.W[j][None, None, :]
    loss, more = _resume(network, caches, k + 1, "Z", Znext, y, training, masks)
    return loss, crossed | more


def _chunks(V: int, per_variant_bytes: int) -> list[slice]:
    size = max(1, MAX_BYTES // max(1, per_variant_bytes))
    return [slice(s, min(V, s + size)) for s in range(0, V, size)]


def param_gradients(network: Network, caches: list[dict[str, np.ndarray]], k: int,
                    y: np.ndarray, training: bool, steps: dict[str, np.ndarray],
                    masks: dict[int, np.ndarray],
                    map_fn: Callable[..., Iterable] = map) -> dict[str, tuple[np.ndarray, ...]]:
    """Every entry of every parameter of block k: {grad name: (idx, values, kinks)}.

    The columns are independent: `map_fn` may run them on several threads (NumPy lets
    go of the GIL inside its array operations); the numbers are the same either way.
    """
    block = network.blocks[k]
    out: dict[str, tuple[np.ndarray, ...]] = {}
    for layer in block.layers():
        for pname, p in layer.params.items():
            vals = np.empty(p.size)
            kink = np.zeros(p.size, dtype=bool)
            step = steps[pname].reshape(p.shape)

            def one(j: int, pname: str = pname, p: np.ndarray = p,
                    step: np.ndarray = step) -> tuple[np.ndarray, np.ndarray]:
                with np.errstate(all="ignore"):
                    return _param_column(network, caches, k, y, training, pname, p, step, j,
                                         masks)

            for j, (g, kk) in enumerate(map_fn(one, range(p.shape[-1]))):
                if p.ndim == 2:
                    vals.reshape(p.shape)[:, j] = g
                    kink.reshape(p.shape)[:, j] = kk
                else:
                    vals[j], kink[j] = g[0], kk[0]
            out[PARAM_GRAD_NAMES[pname]] = (np.arange(p.size), vals, kink)
    return out


def _param_column(network: Network, caches: list[dict[str, np.ndarray]], k: int,
                  y: np.ndarray, training: bool, pname: str, p: np.ndarray, step: np.ndarray,
                  j: int, masks: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Centred differences of every entry of column j of parameter `pname` of block k."""
    c = caches[k]
    X = c["X"]
    N = X.shape[0]
    width = max(b.dense.fan_out for b in network.blocks)
    rows = p.shape[0] if p.ndim == 2 else 1
    if pname == "W":  # column j of Z moves by ±δ·X[:, i]
        base, node = c["Z"][:, j], "Z"
        d = step[:, j]
        dirs = X.T * d[:, None]  # (rows, N)
    elif pname == "b":
        base, node, d = c["Z"][:, j], "Z", step[j:j + 1]
        dirs = np.full((1, N), d[0])
    elif pname == "gamma":
        base, node, d = c["Zbn"][:, j], "Zbn", step[j:j + 1]
        dirs = (c["Znorm"][:, j] * d[0])[None, :]
    else:  # beta
        base, node, d = c["Zbn"][:, j], "Zbn", step[j:j + 1]
        dirs = np.full((1, N), d[0])
    cols = np.concatenate([base + dirs, base - dirs])  # (2·rows, N)
    loss = np.empty(cols.shape[0])
    crossed = np.zeros(cols.shape[0], dtype=bool)
    for sl in _chunks(cols.shape[0], N * width * 8 * 4):
        loss[sl], crossed[sl] = _column_variants(network, caches, k, j, node, cols[sl], y,
                                                 training, masks)
    lp, lm = loss[:rows], loss[rows:]
    return (lp - lm) / (2 * d), crossed[:rows] | crossed[rows:]


def node_gradients(network: Network, caches: list[dict[str, np.ndarray]], k: int, name: str,
                   idx: np.ndarray, steps: np.ndarray, y: np.ndarray, training: bool,
                   masks: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sampled entries `idx` of block k's tensor `name`: (values, kinks)."""
    t0 = caches[k][name]
    n = idx.size
    variants = np.broadcast_to(t0, (2 * n, *t0.shape)).copy()
    flat = variants.reshape(2 * n, -1)
    rows = np.arange(n)
    flat[rows, idx] += steps[idx]
    flat[rows + n, idx] -= steps[idx]
    masks_here = {b: m for b, m in masks.items()
                  if not (name == "A" and b == network.blocks[k].index)}
    loss, crossed = _resume(network, caches, k, name, variants, y, training, masks_here)
    return (loss[:n] - loss[n:]) / (2 * steps[idx]), crossed[:n] | crossed[n:]
