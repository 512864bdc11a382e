"""A network of Dense → BatchNorm → activation blocks ending in softmax + cross-entropy.

`Block` chains its three layers and keeps every tensor of one pass under the glossary's
names (`X, Z, mu, Z0, var, std, Znorm, Zbn, A` forward; `dA, dZbn, dbeta, dgamma, dZnorm,
dstd, dvar, dZ0, dmu, dZ, dW, db, dX` backward).  `Network` runs the blocks in order,
exposes the parameters and their gradients under keys like `"2.gamma"`, and can replace
any named tensor of any block during a forward pass (`override`), which the numerical
gradient check uses to perturb intermediates.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from bntui.engine.activations import Activation, make_activation
from bntui.engine.arch import ArchSpec
from bntui.engine.batchnorm import BatchNorm
from bntui.engine.dense import Dense
from bntui.engine.errors import BntuiError
from bntui.engine.flat import FlatParams
from bntui.engine.loss import SoftmaxCrossEntropy

PARAM_GRAD_NAMES = {"W": "dW", "b": "db", "gamma": "dgamma", "beta": "dbeta"}


@dataclass
class BNOptions:
    """The BatchNorm conventions every block of a network shares."""

    eps: float = 1e-5
    momentum: float = 0.1
    momentum_style: str = "torch"
    unbiased_running_var: bool = True
    running_stat: str = "var"
    running_init: str = "zero_one"

    def make(self, width: int, dtype: np.dtype | type) -> BatchNorm:
        return BatchNorm(
            width,
            eps=self.eps,
            momentum=self.momentum,
            momentum_style=self.momentum_style,
            unbiased_running_var=self.unbiased_running_var,
            running_stat=self.running_stat,
            running_init=self.running_init,
            dtype=dtype,
        )


@dataclass
class Block:
    """Dense → (BatchNorm) → activation, with the tensors of the last pass in `cache`."""

    index: int  # 1-based, as a learner counts layers
    dense: Dense
    bn: BatchNorm | None
    act: Activation
    is_output: bool = False
    cache: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def pre_name(self) -> str:
        """The name of the activation's input: Zbn with BatchNorm, Z without."""
        return "Zbn" if self.bn is not None else "Z"

    def layers(self) -> list[Dense | BatchNorm]:
        return [self.dense] if self.bn is None else [self.dense, self.bn]

    def forward(
        self,
        X: np.ndarray,
        training: bool,
        update_running: bool = True,
        override: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        ov = override or {}
        self.cache = {}  # free the last pass's tensors before making new ones
        if "X" in ov:
            X = ov["X"]
        Z = self.dense.forward(X)
        if "Z" in ov:
            Z = ov["Z"]
        c: dict[str, np.ndarray] = {"X": X, "Z": Z}
        if self.bn is not None:
            pre = self.bn.forward(Z, training, update_running=update_running, override=ov)
            c.update(self.bn.cache)
        else:
            pre = Z
        A = ov["A"] if "A" in ov else self.act.forward(pre)
        c["A"] = A
        self.cache = c
        return A

    def backward(self, dA: np.ndarray, staged: bool = True, need_dX: bool = True) -> np.ndarray:
        c = self.cache
        c["dA"] = dA
        pre = c[self.pre_name]
        dpre = self.act.backward(pre, c["A"], dA)
        if self.bn is not None:
            dZ = self.bn.backward(dpre, staged=staged)
            c.update(self.bn.cache)
        else:
            dZ = c["dZ"] = dpre
        dX = self.dense.backward(dZ, need_dX=need_dX)
        # copies: the layer's gradients are reused buffers, filled again next pass
        c["dW"] = self.dense.grads["W"].copy()
        if self.dense.has_bias:
            c["db"] = self.dense.grads["b"].copy()
        if dX is not None:
            c["dX"] = dX
        return dX

    def param_counts(self) -> dict[str, int]:
        counts = {"dense": self.dense.n_params()}
        if self.bn is not None:
            counts["batchnorm"] = self.bn.n_params()
        return counts


class Network:
    """Blocks in order, then the softmax + cross-entropy loss block."""

    def __init__(self, blocks: list[Block], n_features: int, n_classes: int) -> None:
        self.blocks = blocks
        self.n_features = n_features
        self.n_classes = n_classes
        self.loss_layer = SoftmaxCrossEntropy()
        self.dtype = blocks[0].dense.W.dtype
        # every parameter and gradient as a view of one buffer each (see engine/flat.py)
        self._flat = FlatParams(self._named_layers(), self.dtype)

    def _named_layers(self) -> list[tuple[str, Dense | BatchNorm]]:
        return [(str(b.index), layer) for b in self.blocks for layer in b.layers()]

    @property
    def flat(self) -> FlatParams | None:
        """The flat parameter and gradient buffers, or None if the layers no longer use
        them (see `FlatParams.valid`): then step parameter by parameter."""
        return self._flat if self._flat.valid(self._named_layers()) else None

    # construction ------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        arch: ArchSpec,
        n_features: int,
        n_classes: int,
        rng: np.random.Generator,
        *,
        bn: BNOptions | None = None,
        init: str = "uniform",
        bias_init: str = "uniform",
        dtype: np.dtype | type = np.float64,
    ) -> Network:
        bn = bn or BNOptions()
        widths = arch.widths(n_classes)
        if widths[-1] != n_classes:
            raise BntuiError(
                f"the output block has width {widths[-1]} but the dataset has {n_classes} "
                "classes (write C for 'as many as the classes')"
            )
        blocks: list[Block] = []
        fan_in = n_features
        for i, (spec, width) in enumerate(zip(arch.blocks, widths, strict=True)):
            last = i == len(widths) - 1
            dense = Dense(
                fan_in, width, bias=spec.bias, rng=rng, init=init, bias_init=bias_init, dtype=dtype
            )
            norm = bn.make(width, dtype) if spec.batchnorm else None
            act = make_activation("identity" if last else spec.activation, spec.alpha)
            blocks.append(Block(i + 1, dense, norm, act, is_output=last))
            fan_in = width
        return cls(blocks, n_features, n_classes)

    # parameters ----------------------------------------------------------------------
    def named_params(self) -> Iterator[tuple[str, np.ndarray]]:
        for block in self.blocks:
            for layer in block.layers():
                for name, p in layer.params.items():
                    yield f"{block.index}.{name}", p

    def params(self) -> dict[str, np.ndarray]:
        return dict(self.named_params())

    def grads(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for block in self.blocks:
            for layer in block.layers():
                for name, g in layer.grads.items():
                    out[f"{block.index}.{name}"] = g
        return out

    def n_params(self) -> int:
        return sum(p.size for _, p in self.named_params())

    def param_table(self) -> list[dict[str, object]]:
        """Rows of (layer, kind, shape, count), as seed 003 prints them."""
        rows: list[dict[str, object]] = []
        for block in self.blocks:
            d = block.dense
            rows.append({
                "layer": block.index,
                "kind": "dense",
                "shape": f"{d.fan_in}→{d.fan_out}" + ("" if d.has_bias else " (no bias)"),
                "params": d.n_params(),
            })
            if block.bn is not None:
                rows.append({
                    "layer": block.index,
                    "kind": "batchnorm",
                    "shape": f"{block.bn.num_features}",
                    "params": block.bn.n_params(),
                })
        return rows

    def batchnorms(self) -> list[BatchNorm]:
        return [b.bn for b in self.blocks if b.bn is not None]

    def state(self) -> dict[str, np.ndarray]:
        """Copies of everything that changes while training: parameters and running stats."""
        out = {k: p.copy() for k, p in self.named_params()}
        for block in self.blocks:
            if block.bn is not None:
                for k, v in block.bn.running_state().items():
                    out[f"{block.index}.{k}"] = v.copy()
                out[f"{block.index}.num_batches_tracked"] = np.asarray(
                    block.bn.num_batches_tracked
                )
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore `state()` in place (the arrays the optimizer holds stay the same)."""
        for k, p in self.named_params():
            p[...] = state[k]
        for block in self.blocks:
            if block.bn is not None:
                for k, v in block.bn.running_state().items():
                    v[...] = state[f"{block.index}.{k}"]
                block.bn.num_batches_tracked = int(state[f"{block.index}.num_batches_tracked"])

    # passes --------------------------------------------------------------------------
    def forward(
        self,
        X: np.ndarray,
        training: bool = True,
        *,
        update_running: bool = True,
        override: dict[int, dict[str, np.ndarray]] | None = None,
        start: int = 0,
    ) -> np.ndarray:
        """Logits for `X`; with `start=k`, `X` is the input of block k (0-based)."""
        A = X
        for block in self.blocks[start:]:
            ov = override.get(block.index) if override else None
            A = block.forward(A, training, update_running, ov)
        return A

    def loss(
        self,
        X: np.ndarray,
        y: np.ndarray,
        training: bool = True,
        *,
        update_running: bool = True,
        override: dict[int, dict[str, np.ndarray]] | None = None,
        start: int = 0,
    ) -> float:
        logits = self.forward(
            X, training, update_running=update_running, override=override, start=start
        )
        return self.loss_layer.forward(logits, y)

    def backward(self, staged: bool = True, collect: bool = True) -> dict[str, np.ndarray]:
        """Backpropagate the last loss; returns the gradients by parameter key (an empty
        dict with `collect=False`: the training loop reads the layers' buffers)."""
        d = self.loss_layer.backward()
        for i, block in enumerate(reversed(self.blocks)):
            d = block.backward(d, staged=staged, need_dX=staged or i < len(self.blocks) - 1)
        return self.grads() if collect else {}

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class indices in eval mode (running statistics)."""
        return np.argmax(self.forward(X, training=False, update_running=False), axis=1)

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float | None:
        if len(y) == 0:
            return None
        return float(np.mean(self.predict(X) == y))

    def describe(self) -> str:
        parts = [f"{self.n_features}"]
        for b in self.blocks:
            s = f"{b.dense.fan_out}"
            if b.bn is not None:
                s += " BN"
            s += " softmax" if b.is_output else f" {b.act.label}"
            parts.append(s)
        return " → ".join(parts)
