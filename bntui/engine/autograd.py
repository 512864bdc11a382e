"""The same network rebuilt in PyTorch, node by node, for the autograd gradient check.

torch is imported only here and only when this is called; without torch the check
returns None and the caller shows a note.  Every tensor the pass's plan checks (the
layers' node records, `trace.plan`) is a node of the torch graph with `retain_grad()`, so
autograd gives the gradient of each of them: an independent check of the hand-written
backward, not a copy of it.  The torch twin is written from the textbook, independently
of the engine's code; it knows the engine's own parts only, so a network with a variant
part (the bug zoo's) gets no autograd column, and says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bntui.engine.network import Network

TORCH_MISSING = (
    "PyTorch is not installed, so the autograd column is empty "
    "(pip install 'bntui[torch]' adds it)"
)


def variant_parts(network: Network) -> str | None:
    """The first part of `network` that is not the engine's own, named; None if all are."""
    if not network.loss_layer.FUSED:
        return f"the loss block is a variant ({type(network.loss_layer).__name__})"
    for b in network.blocks:
        if b.norm is not None and not b.norm.FUSED:
            return (f"layer {b.index}'s {b.norm.title} is a variant "
                    f"({type(b.norm).__name__})")
    return None


def _batchnorm_twin(torch: Any, bn: Any, Z: Any, n: dict[str, Any], training: bool,
                    leaf: Any) -> dict[str, Any]:
    """BatchNorm's nodes in torch: batch statistics per feature, or the running ones."""
    if training:  # the biased variance, or Bessel's Σ Z0² / (m − 1) (Karpathy's)
        mu = Z.mean(dim=0)
        Z0 = Z - mu
        m = Z.shape[0]
        var = (Z0 * Z0).sum(dim=0) / (m - 1) if bn.train_var == "bessel" else (
            (Z0 * Z0).mean(dim=0))
        std = torch.sqrt(var + bn.eps)
    else:  # running statistics: constants
        mu = leaf(bn.running_mean, False)
        Z0 = Z - mu
        if bn.running_stat == "std":
            var, std = None, leaf(bn.running_std, False)
        else:
            var = leaf(bn.running_var, False)
            std = torch.sqrt(var + bn.eps)
    Znorm = Z0 / std
    out = {"mu": mu, "Z0": Z0, "std": std, "Znorm": Znorm,
           "Zbn": n["gamma"] * Znorm + n["beta"]}
    if var is not None:
        out["var"] = var
    return out


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def autograd_gradients(
    network: Network, X: np.ndarray, y: np.ndarray, training: bool = True
) -> tuple[tuple[float, dict[int, dict[str, np.ndarray]]] | None, str]:
    """(Loss and {block index: {gradient name: value}} from torch autograd, "") — or
    (None, why not)."""
    variant = variant_parts(network)
    if variant is not None:
        return None, (f"autograd skipped: {variant}; the torch twin knows only the engine's "
                      "own parts (the numerical column differentiates this network's forward)")
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None, TORCH_MISSING

    dtype = torch.float64 if network.dtype == np.float64 else torch.float32

    def leaf(a: np.ndarray, grad: bool = True) -> torch.Tensor:
        return torch.tensor(np.asarray(a), dtype=dtype, requires_grad=grad)

    nodes: dict[int, dict[str, torch.Tensor]] = {}
    inp = leaf(X)
    for block in network.blocks:
        n: dict[str, torch.Tensor] = {"X": inp}
        d = block.dense
        n["W"] = leaf(d.W)
        Z = inp @ n["W"]
        if d.has_bias:
            n["b"] = leaf(d.params["b"])
            Z = Z + n["b"]
        n["Z"] = Z
        pre = Z
        norm = block.norm
        if norm is not None:
            n["gamma"] = leaf(norm.gamma)
            if "beta" in norm.params:
                n["beta"] = leaf(norm.beta)
            if block.bn is not None:
                n.update(_batchnorm_twin(torch, block.bn, Z, n, training, leaf))
            elif norm.kind == "rmsnorm":  # per sample, over the features, not centred
                ms = (Z * Z).mean(dim=-1, keepdim=True)
                rms = torch.sqrt(ms + norm.eps)
                Znorm = Z / rms
                n.update(ms=ms, rms=rms, Znorm=Znorm)
                n[norm.OUTPUT] = n["gamma"] * Znorm
            else:  # LayerNorm and GroupNorm: per sample, over each group of features
                m, d = Z.shape
                groups = Z.reshape(m, norm.num_groups, d // norm.num_groups)
                mu = groups.mean(dim=-1)
                Z0 = (groups - mu[..., None]).reshape(m, d)
                var = (Z0 * Z0).reshape(groups.shape).mean(dim=-1)
                std = torch.sqrt(var + norm.eps)
                Znorm = (Z0.reshape(groups.shape) / std[..., None]).reshape(m, d)
                n.update(mu=mu, Z0=Z0, var=var, std=std, Znorm=Znorm)
                n[norm.OUTPUT] = n["gamma"] * Znorm + n["beta"]
            pre = n[norm.OUTPUT]
        act = block.act
        if block.is_output or act.name == "identity":
            A = pre
        elif act.name == "sigmoid":
            A = torch.sigmoid(pre)
        elif act.name == "tanh":
            A = torch.tanh(pre)
        elif act.name == "relu":
            A = torch.relu(pre)
        elif act.name == "leaky_relu":
            A = F.leaky_relu(pre, negative_slope=float(act.alpha))
        elif act.name == "elu":
            A = F.elu(pre, alpha=float(act.alpha))
        else:  # pragma: no cover - every engine activation is listed above
            raise ValueError(f"no torch twin for activation {act.name}")
        if not block.is_output:
            # A new node so that dA is this block's own gradient, not the pre-activation's.
            A = A * 1.0 if act.name == "identity" else A
            n["A"] = A
        for t in n.values():
            if t.requires_grad and not t.is_leaf:
                t.retain_grad()
        nodes[block.index] = n
        inp = A
    logits = inp
    loss = F.cross_entropy(logits, torch.as_tensor(y, dtype=torch.long))
    loss.backward()

    from bntui.engine.gradcheck import checked  # the names the plan checks, per block

    out: dict[int, dict[str, np.ndarray]] = {}
    for index, steps in checked(network, training).items():
        grads: dict[str, np.ndarray] = {}
        for p in steps:
            t = nodes[index].get(p.name[1:])
            if t is not None and t.grad is not None:
                grads[p.name] = t.grad.detach().numpy().copy()
        out[index] = grads
    return (float(loss.item()), out), ""
