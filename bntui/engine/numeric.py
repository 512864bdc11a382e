"""Numerical gradients, many perturbations at a time.

The same centred differences as the textbook loop (`gradcheck.numeric_gradients_loop`,
kept as the reference and checked against this in the tests), computed on a leading
"variant" axis: every perturbed copy of a tensor is one slice of a (V, D, N) array, and
the rest of the network runs once for all of them.  Three facts make it cheap:

  * a weight W[i, j], a bias b[j], γ[j] or β[j] changes one column j of its block, and
    BatchNorm and the activation work column by column, so only that column is
    recomputed; the next block sees a rank-one change, `Z' = Z + (A'[:, j] − A[:, j]) ⊗ W[j]`,
    whose batch mean and variance follow from the unperturbed ones by two small products
    (`var' = var + 2 w ⊙ mean(c̃ Z0) + w² mean(c̃²)`, c̃ the centred change);
  * the variants are stored feature-major, (V, D, N): every per-feature broadcast and
    every sum over the batch then runs along contiguous rows of N;
  * an intermediate tensor is sampled (a few entries), so its variants are few.

Two shortcuts that change only the rounding: a bias followed by a training-mode BatchNorm
is left out (it cancels in Z − mu), and the softmax is shifted by the logit of the class
that tops the unperturbed row (the engine shifts by the row's own max; they agree unless a
perturbation reorders a near-tie, and the loss stays log1p-exact near 0 either way).
Kink crossings are detected per variant, as in the loop.  No state of the network is
touched: it reads the tensors of one unperturbed pass, held by `Base`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from bntui.engine.kernels import ones, rowdot
from bntui.engine.network import PARAM_GRAD_NAMES, Block, Network

MAX_BYTES = 48_000_000  # per (V, D, N) array


def _fm(a: np.ndarray) -> np.ndarray:
    """An (N, D) tensor feature-major: (D, N), contiguous."""
    return np.ascontiguousarray(a.T)


class Base:
    """The unperturbed pass: each block's cache, its (N, D) tensors feature-major, the
    kink masks feature-major, and the class that tops each row of the logits."""

    def __init__(self, caches: list[dict[str, np.ndarray]],
                 masks: dict[int, np.ndarray]) -> None:
        self.caches = caches
        self.fm = [{k: _fm(v) for k, v in c.items() if v.ndim == 2} for c in caches]
        self.masks = {b: _fm(m) for b, m in masks.items()}
        self.top = caches[-1]["A"].argmax(axis=1)


def _act(block: Block, pre: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return block.act.forward(pre)


def _exact_max_loss(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean cross-entropy of each variant of (V, C, N) logits, shifted by each row's own
    max: the fallback when e^x overflows with the base shift (or the logits are NaN)."""
    n = logits.shape[-1]
    shifted = logits - logits.max(axis=-2, keepdims=True)
    true = shifted[:, y, np.arange(n)]
    total = ones(logits.shape[-2], logits.dtype) @ np.exp(shifted)
    return (np.log(total) - true).sum(axis=-1) / n


def _loss(logits: np.ndarray, y: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Mean cross-entropy of each variant: logits (V, C, N), used up, → (V,).

    As `SoftmaxCrossEntropy.forward`: shift each row so that its top class is 0, sum the
    other classes' e^x and take log1p of that sum, which keeps the digits of a loss near
    0.  The top class is the unperturbed row's (see the module's docstring).
    """
    n = logits.shape[-1]
    cols = np.arange(n)
    logits -= logits[:, top, cols][:, None, :]
    true = logits[:, y, cols]
    logits[:, top, cols] = -np.inf  # e^−∞ = 0: the top class is the 1 outside log1p
    rest = ones(logits.shape[-2], logits.dtype) @ np.exp(logits)
    if not np.isfinite(rest).all():  # a perturbation far beyond the base shift
        logits[:, top, cols] = 0.0
        return _exact_max_loss(logits, y)
    return (np.log1p(rest) - true).sum(axis=-1) / n


def _bn_rest(block: Block, c: dict[str, np.ndarray], f: dict[str, np.ndarray], node: str,
             val: np.ndarray, training: bool) -> np.ndarray:
    """Zbn (V, D, N) for variants of one BatchNorm node: (V, D, N) tensors, (V, D) vectors."""
    bn = block.bn
    assert bn is not None
    gamma, beta, eps = bn.gamma[:, None], bn.beta[:, None], bn.eps
    n = f["Z"].shape[-1]
    if node == "Z" and training:  # the common case, in few passes over (V, D, N)
        Z0 = val - (val @ ones(n, val.dtype) * (1.0 / n))[..., None]
        var = rowdot(Z0, Z0) / n
        Z0 *= (bn.gamma / np.sqrt(var + eps))[..., None]
        Z0 += beta
        return Z0
    order = ("Z", "mu", "Z0", "var", "std", "Znorm", "Zbn")
    at = order.index(node)
    if node == "Zbn":
        return val
    if at <= 1:
        Z = val if node == "Z" else f["Z"]
        if node == "mu":
            mu = val
        else:
            mu = Z @ ones(n, Z.dtype) * (1.0 / n) if training else c["mu"]
        Z0 = Z - mu[..., None]
    else:
        Z0 = val if node == "Z0" else f["Z0"]
    if at <= 2:
        var = rowdot(Z0, Z0) / n if training else c["var"]
        std = np.sqrt(var + eps) if training else c["std"]
    elif at == 3:
        std = np.sqrt(val + eps)
    elif at == 4:
        std = val
    else:
        std = c["std"]
    Znorm = Z0 / std[..., None] if at <= 4 else val
    return gamma * Znorm + beta


def _tail(network: Network, base: Base, k: int, node: str, val: np.ndarray, y: np.ndarray,
          training: bool, masks: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Loss and kink-crossed flag of each variant of `node` of block k (0-based)."""
    V = val.shape[0]
    crossed = np.zeros(V, dtype=bool)
    A: np.ndarray | None = None
    for i in range(k, len(network.blocks)):
        block, c, f = network.blocks[i], base.caches[i], base.fm[i]
        if i > k:
            node, val = "X", A  # type: ignore[assignment]
        if node == "A":
            A = val
            continue
        if node == "X":  # Z = X W (+ b), feature-major: Wᵀ Xᵀ
            val = np.matmul(block.dense.W.T, val)
            if block.dense.has_bias and not (block.bn is not None and training):
                val += block.dense.params["b"][:, None]
            node = "Z"
        pre = _bn_rest(block, c, f, node, val, training) if block.bn is not None else val
        if block.index in masks:
            crossed |= ((pre > 0) != masks[block.index]).any(axis=(-2, -1))
        A = pre if block.is_output else _act(block, pre)
    assert A is not None
    return _loss(A, y, base.top), crossed


def _rank_one_bn(block: Block, c: dict[str, np.ndarray], f: dict[str, np.ndarray],
                 change: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Zbn (V, D, N) of a training-mode block whose Z moves by change (V, N) ⊗ w (D,)."""
    bn = block.bn
    assert bn is not None
    n = change.shape[-1]
    centred = change - (change @ ones(n, change.dtype) * (1.0 / n))[:, None]
    var = (c["var"] + (2.0 / n) * w * (centred @ c["Z0"])
           + (w * w) * (rowdot(centred, centred) / n)[:, None])
    Zbn = np.multiply(centred[:, None, :], w[:, None])
    Zbn += f["Z0"]
    Zbn *= (bn.gamma / np.sqrt(var + bn.eps))[..., None]
    Zbn += bn.beta[:, None]
    return Zbn


def _column_variants(network: Network, base: Base, k: int, j: int, node: str,
                     col: np.ndarray, y: np.ndarray, training: bool,
                     masks: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Variants that change only column j of block k's `node` ("Z" or "Zbn"): (V, N)."""
    block, c, f = network.blocks[k], base.caches[k], base.fm[k]
    V = col.shape[0]
    crossed = np.zeros(V, dtype=bool)
    pre = col
    if block.bn is not None and node == "Z":
        bn = block.bn
        if training:
            Z0 = col - col.mean(axis=-1, keepdims=True)
            std = np.sqrt((Z0 * Z0).mean(axis=-1, keepdims=True) + bn.eps)
        else:
            Z0, std = col - c["mu"][j], c["std"][j]
        pre = bn.gamma[j] * (Z0 / std) + bn.beta[j]
    if block.index in masks:
        crossed |= ((pre > 0) != masks[block.index][j]).any(axis=-1)
    Acol = pre if block.is_output else _act(block, pre)
    if block.is_output:
        logits = np.broadcast_to(f["A"], (V, *f["A"].shape)).copy()
        logits[:, j] = Acol
        return _loss(logits, y, base.top), crossed
    nxt, change = network.blocks[k + 1], Acol - f["A"][j]
    w = nxt.dense.W[j]
    if nxt.bn is not None and training:
        Zbn = _rank_one_bn(nxt, base.caches[k + 1], base.fm[k + 1], change, w)
        loss, more = _tail(network, base, k + 1, "Zbn", Zbn, y, training, masks)
    else:
        Z = np.multiply(change[:, None, :], w[:, None])
        Z += base.fm[k + 1]["Z"]
        loss, more = _tail(network, base, k + 1, "Z", Z, y, training, masks)
    return loss, crossed | more


def _chunks(V: int, per_variant_bytes: int) -> list[slice]:
    size = max(1, MAX_BYTES // max(1, per_variant_bytes))
    return [slice(s, min(V, s + size)) for s in range(0, V, size)]


def param_gradients(network: Network, base: Base, k: int, y: np.ndarray, training: bool,
                    steps: dict[str, np.ndarray],
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
                    return _param_column(network, base, k, y, training, pname, p, step, j)

            for j, (g, kk) in enumerate(map_fn(one, range(p.shape[-1]))):
                if p.ndim == 2:
                    vals.reshape(p.shape)[:, j] = g
                    kink.reshape(p.shape)[:, j] = kk
                else:
                    vals[j], kink[j] = g[0], kk[0]
            out[PARAM_GRAD_NAMES[pname]] = (np.arange(p.size), vals, kink)
    return out


def _param_column(network: Network, base: Base, k: int, y: np.ndarray, training: bool,
                  pname: str, p: np.ndarray, step: np.ndarray,
                  j: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred differences of every entry of column j of parameter `pname` of block k."""
    f = base.fm[k]
    X = f["X"]  # (D_in, N)
    N = X.shape[-1]
    width = max(b.dense.fan_out for b in network.blocks)
    rows = p.shape[0] if p.ndim == 2 else 1
    if pname == "W":  # column j of Z moves by ±δ·X[:, i]
        base_col, node = f["Z"][j], "Z"
        d = step[:, j]
        dirs = X * d[:, None]  # (rows, N)
    elif pname == "b":
        base_col, node, d = f["Z"][j], "Z", step[j:j + 1]
        dirs = np.full((1, N), d[0])
    elif pname == "gamma":
        base_col, node, d = f["Zbn"][j], "Zbn", step[j:j + 1]
        dirs = (f["Znorm"][j] * d[0])[None, :]
    else:  # beta
        base_col, node, d = f["Zbn"][j], "Zbn", step[j:j + 1]
        dirs = np.full((1, N), d[0])
    cols = np.concatenate([base_col + dirs, base_col - dirs])  # (2·rows, N)
    loss = np.empty(cols.shape[0])
    crossed = np.zeros(cols.shape[0], dtype=bool)
    for sl in _chunks(cols.shape[0], N * width * 8 * 4):
        loss[sl], crossed[sl] = _column_variants(network, base, k, j, node, cols[sl], y,
                                                 training, base.masks)
    lp, lm = loss[:rows], loss[rows:]
    return (lp - lm) / (2 * d), crossed[:rows] | crossed[rows:]


def node_gradients(network: Network, base: Base, k: int, name: str, idx: np.ndarray,
                   steps: np.ndarray, y: np.ndarray,
                   training: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sampled entries `idx` of block k's tensor `name`: (values, kinks)."""
    t0 = base.caches[k][name]
    n = idx.size
    if t0.ndim == 2:  # entry (r, c) of (N, D) sits at (c, r) of the feature-major copy
        r, col = np.divmod(idx, t0.shape[1])
        at, t0 = col * t0.shape[0] + r, base.fm[k][name]
    else:
        at = idx
    variants = np.broadcast_to(t0, (2 * n, *t0.shape)).copy()
    flat = variants.reshape(2 * n, -1)
    rows = np.arange(n)
    flat[rows, at] += steps[idx]
    flat[rows + n, at] -= steps[idx]
    masks = {b: m for b, m in base.masks.items()
             if not (name == "A" and b == network.blocks[k].index)}
    loss, crossed = _tail(network, base, k, name, variants, y, training, masks)
    return (loss[:n] - loss[n:]) / (2 * steps[idx]), crossed[:n] | crossed[n:]
