"""Export a trained network to PyTorch: an equivalent `torch.nn.Sequential`.

Each block becomes named modules that mirror the engine's parameter keys (`dense1`,
`bn1`, `act1`, `dense2`, ...):

    Dense      → nn.Linear        weight = Wᵀ (torch stores (fan_out, fan_in)), bias = b
                                  (or `bias=False`)
    BatchNorm  → nn.BatchNorm1d   weight = gamma, bias = beta, eps, momentum in torch's
                                  convention (the weight of the new batch value: Keras-style
                                  momentum m becomes 1 − m), running_mean, running_var and
                                  num_batches_tracked copied
    LayerNorm  → nn.LayerNorm(D, eps)         `ln1`: weight = gamma, bias = beta
    GroupNorm  → nn.GroupNorm(G, D, eps)      `gn1`: weight = gamma, bias = beta
    RMSNorm    → nn.RMSNorm(D, eps=eps)       `rms1`: weight = gamma
    activation → nn.Sigmoid, nn.Tanh, nn.ReLU, nn.LeakyReLU(α), nn.ELU(α), nn.Identity

The output block has no activation: the model returns the logits, which is what
`torch.nn.CrossEntropyLoss` (and `F.cross_entropy`) expects; apply `softmax` yourself for
probabilities.  The model has the network's dtype (float64 → `.double()`, float32 →
float) and is returned in eval mode, where it gives the engine's
`network.forward(X, training=False)` to rounding.  In train mode it normalises with the
batch statistics, as the engine does.

Conventions torch cannot hold are converted where eval mode can be kept exact and refused
(with a `BntuiError` naming the layer) where it cannot:

* `running_stat="std"` (seed 000 averages std, not var): eval mode divides by the running
  std itself; torch divides by √(running_var + eps), so the export stores
  running_var = running_std² − eps.  If that is negative for a feature it is refused.
* `unbiased_running_var=False` (keras, cs231n, seed 003) and `running_init` "zero_zero"
  (cs231n) or "first_batch" (seed 003) only change how the running statistics are
  *updated* in training; the stored values are copied as they are, so eval mode matches.
  Training the exported model further updates them the torch way (unbiased variance, a
  plain running average from the first batch).
* `train_var="bessel"` (the karpathy convention) normalises in *training* with
  Σ Z0² / (m − 1); `nn.BatchNorm1d` always trains with the biased variance.  The export
  is not refused — its eval mode, what an exported model is for, is exact (and karpathy's
  running std converts as above) — but the exported model in train mode normalises a
  batch slightly differently (with Σ Z0² / m), and its gradients are the biased
  variance's.  `tests/test_bn_conventions.py` pins both.

`export_torch` writes the model with `torch.save` as plain data (the layer list and the
`state_dict`), and `load_torch` rebuilds it with `torch.load(..., weights_only=True)`:
no pickled code is ever loaded.  torch is imported only inside these functions.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from bntui.engine.errors import BntuiError
from bntui.engine.files import write_atomic
from bntui.engine.network import Network

if TYPE_CHECKING:
    import torch

TORCH_MISSING = "PyTorch is not installed: pip install 'bntui[torch]' to export"
FORMAT = "bntui-torch/1"

# (module name, kind, keyword arguments of the torch constructor)
LayerSpec = tuple[str, str, dict[str, Any]]

_DTYPES = {"float64": "float64", "float32": "float32"}
_NORMS = {"layernorm": "LayerNorm", "groupnorm": "GroupNorm", "rmsnorm": "RMSNorm"}
_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu")


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise BntuiError(TORCH_MISSING) from None
    return torch


def layer_specs(network: Network) -> list[LayerSpec]:
    """The modules of the exported Sequential, in order, as plain data."""
    specs: list[LayerSpec] = []
    for block in network.blocks:
        i, d = block.index, block.dense
        specs.append((f"dense{i}", "linear",
                      {"in_features": d.fan_in, "out_features": d.fan_out, "bias": d.has_bias}))
        norm = block.norm
        if block.bn is not None:
            bn = block.bn
            specs.append((f"bn{i}", "batchnorm1d", {"num_features": bn.num_features,
                                                     "eps": bn.eps,
                                                     "momentum": bn.new_weight}))
        elif norm is not None and norm.kind == "groupnorm":
            specs.append((f"gn{i}", "groupnorm", {"num_groups": norm.num_groups,  # type: ignore[attr-defined]
                                                  "num_channels": norm.num_features,
                                                  "eps": norm.eps}))
        elif norm is not None:  # LayerNorm, RMSNorm
            specs.append((f"{norm.short}{i}", norm.kind,
                          {"normalized_shape": norm.num_features, "eps": norm.eps}))
        if block.is_output:
            continue  # the logits: CrossEntropyLoss applies log-softmax itself
        act = block.act
        kwargs: dict[str, Any] = {}
        if act.name == "leaky_relu":
            kwargs["negative_slope"] = float(act.alpha if act.alpha is not None else 0.01)
        elif act.name == "elu":
            kwargs["alpha"] = float(act.alpha if act.alpha is not None else 1.0)
        elif act.name not in _ACTIVATIONS:
            raise BntuiError(f"block {i}: activation '{act.name}' has no torch module to export")
        specs.append((f"act{i}", act.name, kwargs))
    return specs


def _build(torch: Any, specs: list[LayerSpec], dtype: str) -> torch.nn.Sequential:
    """An uninitialised Sequential from `layer_specs` (parameters are filled after)."""
    nn = torch.nn
    tdtype = getattr(torch, dtype)
    factories = {
        "identity": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
        "leaky_relu": nn.LeakyReLU, "elu": nn.ELU,
    }
    modules: OrderedDict[str, Any] = OrderedDict()
    for name, kind, kwargs in specs:
        if kind == "linear":
            # skip_init: no random initialisation, so torch's global generator is untouched
            mod = nn.utils.skip_init(nn.Linear, dtype=tdtype, **kwargs)
        elif kind == "batchnorm1d":
            mod = nn.BatchNorm1d(dtype=tdtype, **kwargs)
        elif kind in _NORMS:
            mod = getattr(nn, _NORMS[kind])(dtype=tdtype, **kwargs)
        elif kind in factories:
            mod = factories[kind](**kwargs)
        else:
            raise BntuiError(f"layer '{name}': unknown kind '{kind}' in a bntui torch export")
        modules[name] = mod
    return nn.Sequential(modules)


def _torch_running_var(block_index: int, bn: Any) -> np.ndarray:
    """The running_var torch needs so that √(running_var + eps) is the engine's eval std."""
    if bn.running_stat != "std":
        return np.asarray(bn.running_var)
    std = np.asarray(bn.running_std, dtype=np.float64)
    var = std * std - bn.eps
    bad = np.flatnonzero(var < 0)
    if bad.size:
        j = int(bad[0])
        raise BntuiError(
            f"block {block_index} BatchNorm: its running std ({std[j]:.3g} for feature {j + 1}) "
            f"is below √eps = {np.sqrt(bn.eps):.3g}, which torch's √(running_var + eps) "
            "cannot express; export refused"
        )
    return var


def to_torch(network: Network) -> torch.nn.Sequential:
    """An equivalent `torch.nn.Sequential` (logits out, eval mode, the network's dtype)."""
    dtype = _DTYPES.get(np.dtype(network.dtype).name)
    if dtype is None:
        raise BntuiError(f"cannot export a {network.dtype} network (float64 or float32 only)")
    # Check every BatchNorm before touching torch, so a refusal is the same with or without.
    running_vars = {b.index: _torch_running_var(b.index, b.bn)
                    for b in network.blocks if b.bn is not None}
    torch = _import_torch()
    tdtype = getattr(torch, dtype)
    model = _build(torch, layer_specs(network), dtype)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.asarray(a), dtype=tdtype)

    with torch.no_grad():
        for block in network.blocks:
            i, d = block.index, block.dense
            lin = model.get_submodule(f"dense{i}")
            lin.weight.copy_(t(d.W.T))
            if d.has_bias:
                lin.bias.copy_(t(d.params["b"]))
            norm = block.norm
            if norm is not None and block.bn is None:
                module = model.get_submodule(f"{norm.short}{i}")
                module.weight.copy_(t(norm.gamma))
                if "beta" in norm.params:
                    module.bias.copy_(t(norm.beta))
            if block.bn is not None:
                bn, tbn = block.bn, model.get_submodule(f"bn{i}")
                tbn.weight.copy_(t(bn.gamma))
                tbn.bias.copy_(t(bn.beta))
                tbn.running_mean.copy_(t(bn.running_mean))
                tbn.running_var.copy_(t(running_vars[i]))
                tbn.num_batches_tracked.fill_(int(bn.num_batches_tracked))
    return model.eval()


def export_torch(network: Network, path: str | os.PathLike[str]) -> None:
    """Save the exported model to `path` as plain data (layers + state_dict), no pickled code."""
    torch = _import_torch()
    model = to_torch(network)
    payload = {
        "format": FORMAT,
        "dtype": np.dtype(network.dtype).name,
        "layers": [[name, kind, dict(kwargs)] for name, kind, kwargs in layer_specs(network)],
        "state_dict": model.state_dict(),
    }
    write_atomic(path, lambda handle: torch.save(payload, handle), "torch export")


def load_torch(path: str | os.PathLike[str]) -> torch.nn.Sequential:
    """Rebuild the model `export_torch` saved (eval mode), loading with weights_only=True."""
    torch = _import_torch()
    try:
        payload = torch.load(path, weights_only=True)
    except OSError as exc:
        raise BntuiError(f"cannot read the torch export '{path}': {exc}") from None
    except Exception as exc:  # torch raises UnpicklingError / RuntimeError for bad files
        raise BntuiError(f"'{path}' is not a bntui torch export: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BntuiError(f"'{path}' is not a bntui torch export (format {FORMAT})")
    dtype = _DTYPES.get(str(payload.get("dtype")))
    if dtype is None:
        raise BntuiError(f"'{path}': unknown dtype {payload.get('dtype')!r}")
    specs = [(str(name), str(kind), dict(kwargs)) for name, kind, kwargs in payload["layers"]]
    model = _build(torch, specs, dtype)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise BntuiError(f"'{path}': the saved weights do not fit its layers: {exc}") from None
    return model.eval()
