"""Numerical gradients, many perturbations at a time.

The same centred differences as the textbook loop (`gradcheck.numeric_gradients_loop`,
kept as the reference and checked against this in the tests), computed on a leading
"variant" axis: every perturbed copy of a tensor is one slice of a (V, D, N) array, and
the rest of the network runs once for all of them.  This module only orchestrates: every
piece of a layer's math it runs is the layer's own — the records' staged steps
(`BatchNorm.nodes_forward`, `Dense.affine`, the activation's `forward`, which all take a
stack of batches), the derivative of a layer's output column by one of its parameters
(`column_moves`), BatchNorm's `rank_one_variants` and the loss's `variant_losses`.
Three facts make it cheap:

  * a weight W[i, j], a bias b[j], γ[j] or β[j] changes one column j of its block, and
    BatchNorm and the activation work column by column, so only that column is
    recomputed (the records on a batch of one feature); the next block sees a rank-one
    change of Z, whose batch statistics follow from the unperturbed ones;
  * the variants are stored feature-major, (V, D, N): every per-feature broadcast and
    every sum over the batch then runs along contiguous rows of N (the records see
    logical (V, N, D) views);
  * an intermediate tensor is sampled (a few entries), so its variants are few.

Only for networks whose parts are the engine's own, normalised by BatchNorm or not at all
(`Network.column_wise`): the column and rank-one shortcuts are facts of the engine's
BatchNorm and loss; any other network gets the loop.  Kink crossings are detected per
variant, as in the loop.  No state of the network is touched: it reads the tensors of
one unperturbed pass, held by `Base`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from bntui.engine.network import PARAM_GRAD_NAMES, Block, Network

MAX_BYTES = 48_000_000  # per (V, D, N) array


def _fm(a: np.ndarray) -> np.ndarray:
    """An (N, D) tensor feature-major: (D, N), contiguous."""
    return np.ascontiguousarray(a.T)


def _logical(fm: np.ndarray) -> np.ndarray:
    """The (…, N, D) view of a feature-major (…, D, N) array (what the records take)."""
    return fm.swapaxes(-1, -2)


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


def _bn_variants(block: Block, base_Z: np.ndarray, node: str, val: np.ndarray,
                 training: bool) -> np.ndarray:
    """Zbn (V, D, N) of variants of one node of block's BatchNorm: the records from that
    node on (`val`: (V, D, N) for a tensor, (V, D) for a per-feature vector)."""
    bn = block.bn
    assert bn is not None
    v = bn.layer_values()
    if node == "Z":
        v["Z"] = _logical(val)
        return _logical(bn.nodes_forward(v, training)["Zbn"])
    if node == "Zbn":
        return val
    v["Z"] = base_Z
    over = _logical(val) if val.ndim == 3 else val
    return _logical(bn.nodes_forward(v, training, {node: over})["Zbn"])


def _tail(network: Network, base: Base, k: int, node: str, val: np.ndarray, y: np.ndarray,
          training: bool, masks: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Loss and kink-crossed flag of each variant of `node` of block k (0-based)."""
    V = val.shape[0]
    crossed = np.zeros(V, dtype=bool)
    A: np.ndarray | None = None
    for i in range(k, len(network.blocks)):
        block = network.blocks[i]
        if i > k:
            node, val = "X", A  # type: ignore[assignment]
        if node == "A":
            A = val
            continue
        if node == "X":
            dense = block.dense
            val = _logical(dense.affine({**dense.params, "X": _logical(val)}))
            node = "Z"
        if block.bn is not None:
            pre = _bn_variants(block, base.caches[i]["Z"], node, val, training)
        else:
            pre = val
        if block.index in masks:
            crossed |= ((pre > 0) != masks[block.index]).any(axis=(-2, -1))
        A = pre if block.is_output else _act(block, pre)
    assert A is not None
    return network.loss_layer.variant_losses(A, y, base.top), crossed


def _column_variants(network: Network, base: Base, k: int, j: int, node: str,
                     col: np.ndarray, y: np.ndarray, training: bool,
                     masks: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Variants that change only column j of block k's `node` ("Z" or "Zbn"): (V, N)."""
    block, f = network.blocks[k], base.fm[k]
    V = col.shape[0]
    crossed = np.zeros(V, dtype=bool)
    pre = col
    if block.bn is not None and node == "Z":  # the records on one feature
        v = block.bn.layer_values(slice(j, j + 1))
        v["Z"] = col[:, :, None]
        pre = block.bn.nodes_forward(v, training)["Zbn"][:, :, 0]
    if block.index in masks:
        crossed |= ((pre > 0) != masks[block.index][j]).any(axis=-1)
    Acol = pre if block.is_output else _act(block, pre)
    if block.is_output:
        logits = np.broadcast_to(f["A"], (V, *f["A"].shape)).copy()
        logits[:, j] = Acol
        return network.loss_layer.variant_losses(logits, y, base.top), crossed
    nxt, change = network.blocks[k + 1], Acol - f["A"][j]
    w = nxt.dense.W[j]
    if nxt.bn is not None and training:
        Zbn = nxt.bn.rank_one_variants(base.caches[k + 1], change, w)
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
    block, f = network.blocks[k], base.fm[k]
    N = f["X"].shape[-1]
    width = max(b.dense.fan_out for b in network.blocks)
    d = step[:, j] if p.ndim == 2 else step[j:j + 1]
    if pname in block.dense.params:  # column j of Z moves
        node, base_col = "Z", f["Z"][j]
        dirs = block.dense.column_moves(pname, j, d, f["X"])
    else:  # column j of Zbn moves
        assert block.bn is not None
        node, base_col = "Zbn", f["Zbn"][j]
        dirs = block.bn.column_moves(pname, j, d, f["Znorm"])
    cols = np.concatenate([base_col + dirs, base_col - dirs])  # (2·rows, N)
    loss = np.empty(cols.shape[0])
    crossed = np.zeros(cols.shape[0], dtype=bool)
    for sl in _chunks(cols.shape[0], N * width * 8 * 4):
        loss[sl], crossed[sl] = _column_variants(network, base, k, j, node, cols[sl], y,
                                                 training, base.masks)
    rows = d.size
    lp, lm = loss[:rows], loss[rows:]
    return (lp - lm) / (2 * d), crossed[:rows] | crossed[rows:]


def node_gradients(network: Network, base: Base, k: int, name: str, idx: np.ndarray,
                   steps: np.ndarray, y: np.ndarray,
                   training: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sampled entries `idx` of block k's tensor `name`: (values, kinks); the variants
    go through the network a chunk at a time (`MAX_BYTES`), however many are asked for."""
    t0 = base.caches[k][name]
    width = max(b.dense.fan_out for b in network.blocks)
    rows = t0.shape[0] if t0.ndim == 2 else 1
    per_entry = 2 * max(t0.size, rows * width) * 8 * 4
    values = np.empty(idx.size)
    kinks = np.zeros(idx.size, dtype=bool)
    for sl in _chunks(idx.size, per_entry):
        values[sl], kinks[sl] = _node_chunk(network, base, k, name, idx[sl], steps, y,
                                            training)
    return values, kinks


def _node_chunk(network: Network, base: Base, k: int, name: str, idx: np.ndarray,
                steps: np.ndarray, y: np.ndarray,
                training: bool) -> tuple[np.ndarray, np.ndarray]:
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
