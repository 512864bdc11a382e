"""A network of Dense → BatchNorm → activation blocks ending in softmax + cross-entropy.

`Block` chains its three layers and keeps every tensor of one pass under the glossary's
names (`X, Z, mu, Z0, var, std, Znorm, Zbn, A` forward; `dA, dZbn, dbeta, dgamma, dZnorm,
dstd, dvar, dZ0, dmu, dZ, dW, db, dX` backward); it also declares the records of the
steps that only pass a tensor from one layer to the next (`WIRING`).  `Network` runs the
blocks in order, exposes the parameters and their gradients under keys like `"2.gamma"`,
and can replace any named tensor of any block during a forward pass (`override`), which
the numerical gradient check uses to perturb intermediates.

What a network is made of is chosen when it is built (`Parts`: the BatchNorm and loss
classes, the optimizer class, a bias before BatchNorm — how the bug zoo's variants and the
conventions come in) and never changes afterwards: every parameter and gradient stays a
view of one flat buffer (`engine/flat.py`).  Two passes:

  * the staged pass (`loss`, `backward`) keeps every tensor, for the stepper, the trace
    and the gradient checks;
  * `train_step`, what training runs, composes each layer's own fused methods (Dense's
    forward, BatchNorm's `train_forward`/`train_backward`, the activation's
    `affine_forward`, the loss's `train_backward`) — bit-identical to the staged forward
    with the compact backward, tested — and falls back, part by part, to the staged pass
    of a part that overrides a step (`FUSED` False).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from bntui.engine.activations import Activation, make_activation
from bntui.engine.arch import ArchSpec
from bntui.engine.batchnorm import BatchNorm
from bntui.engine.conventions import DEFAULT as DEFAULT_CONVENTION
from bntui.engine.conventions import SETTING_NAMES, Settings, headline, overridden, resolve
from bntui.engine.dense import Dense
from bntui.engine.errors import BntuiError
from bntui.engine.flat import FlatParams
from bntui.engine.groupnorm import GroupNorm
from bntui.engine.layernorm import LayerNorm
from bntui.engine.loss import SoftmaxCrossEntropy
from bntui.engine.nodes import ANY, Node, Words
from bntui.engine.norm import NormLayer
from bntui.engine.rmsnorm import RMSNorm

PARAM_GRAD_NAMES = {"W": "dW", "b": "db", "gamma": "dgamma", "beta": "dbeta"}

# the steps that only hand a tensor from one layer to the next
INPUT = Node("X", "the input batch, one row per sample", "m × features", role="input",
             forward={ANY: Words("X = the input batch",
                                 "{m} samples × {features} features, one row per sample",
                                 copy=True)})
FROM_ABOVE = Node("A", "the block's output, the next block's input", "m × D", role="output",
                  backward={ANY: Words("dA = dX of layer {above}",
                                       "the gradient arriving from the layer above",
                                       reads=(("dX", "ij"),), copy=True)})
FROM_LOSS = Node("{pre}", "the output block's {pre}: the logits", "m × C", role="output",
                 backward={ANY: Words("d{pre} = dlogits", "the logits are this layer's {pre}",
                                      reads=(("dlogits", "ij"),), copy=True)})
WIRING: tuple[Node, ...] = (INPUT, FROM_ABOVE, FROM_LOSS)


@dataclass(frozen=True)
class BNOptions(Settings):
    """The BatchNorm settings every block of a network shares (the fields of `Settings`,
    declared once in `bntui.engine.conventions`), and the convention they start from:
    `BNOptions.of("keras", eps=0.01)` is Keras's convention with its eps overridden."""

    convention: str = DEFAULT_CONVENTION

    @classmethod
    def of(cls, convention: str, **explicit: object) -> BNOptions:
        """The named convention's settings, with every explicit (not None) one on top."""
        return cls(**resolve(convention, **explicit).as_dict(), convention=convention)

    def settings(self) -> Settings:
        return Settings(**{k: getattr(self, k) for k in SETTING_NAMES})

    def with_changes(self, **changes: object) -> BNOptions:
        """A copy with `changes` (setting names, and `convention`; None values ignored): a
        new convention replaces every setting with its own first, then the other changes
        override it."""
        real = {k: v for k, v in changes.items() if v is not None}
        name = real.pop("convention", None)
        if name is not None and name != self.convention:
            return BNOptions.of(str(name), **real)
        return replace(self, **real)

    def overridden(self) -> list[str]:
        """The settings that differ from the convention's own."""
        return overridden(self.convention, self.settings())

    def describe(self) -> str:
        """The convention and the settings in force, in one line ("keras: eps 1e-3, …")."""
        return headline(self.convention, self.settings())

    def report(self) -> dict[str, object]:
        """For JSON: the convention, every setting in force, the ones overridden and the
        one-line description."""
        return {"convention": self.convention, **self.settings().as_dict(),
                "overridden": self.overridden(), "describe": self.describe()}

    def make(self, width: int, dtype: np.dtype | type,
             cls: type[BatchNorm] = BatchNorm) -> BatchNorm:
        return cls(width, convention=self.convention, dtype=dtype,
                   **self.settings().as_dict())


@dataclass(frozen=True)
class Parts:
    """What a network and its optimizer are built from (the engine's own by default).

    A variant — one of the bug zoo's mistakes — is a subclass that overrides one step of
    a part, chosen here, at build; nothing is swapped afterwards.  `bias_before_bn`
    gives every Dense that feeds a BatchNorm a bias, drawn from its own generator so the
    weights are the same as without it.
    """

    batchnorm: type[BatchNorm] = BatchNorm
    layernorm: type[LayerNorm] = LayerNorm
    groupnorm: type[GroupNorm] = GroupNorm
    rmsnorm: type[RMSNorm] = RMSNorm
    loss: type[SoftmaxCrossEntropy] = SoftmaxCrossEntropy
    optimizer: type | None = None  # an Optimizer subclass, or None for the config's
    bias_before_bn: bool = False

    @property
    def default(self) -> bool:
        return self == Parts()

    def make_norm(self, kind: str, width: int, dtype: np.dtype | type, bn: BNOptions,
                  groups: int | None = None) -> NormLayer:
        """The normalization layer a block's spec names ("bn", "ln", "gn", "rms"): the
        BatchNorm with the network's conventions, the others with torch's defaults."""
        if kind == "bn":
            return bn.make(width, dtype, self.batchnorm)
        if kind == "ln":
            return self.layernorm(width, dtype=dtype)
        if kind == "gn":
            assert groups is not None
            return self.groupnorm(groups, width, dtype=dtype)
        if kind == "rms":
            return self.rmsnorm(width, dtype=dtype)
        raise BntuiError(f"unknown normalization '{kind}' (bn, ln, gn=G, rms)")


@dataclass
class Block:
    """Dense → (normalization) → activation, with the tensors of the last pass in `cache`.

    `norm` is the block's normalization layer — BatchNorm, LayerNorm, GroupNorm, RMSNorm —
    or None; `bn` is the same layer when it is a BatchNorm (what has running statistics
    and conventions), else None."""

    index: int  # 1-based, as a learner counts layers
    dense: Dense
    norm: NormLayer | None
    act: Activation
    is_output: bool = False
    cache: dict[str, np.ndarray] = field(default_factory=dict)
    _fused: tuple[np.ndarray | None, np.ndarray] | None = field(default=None, repr=False)

    @property
    def bn(self) -> BatchNorm | None:
        """The block's BatchNorm (None without one, or with another normalization)."""
        return self.norm if isinstance(self.norm, BatchNorm) else None

    @property
    def pre_name(self) -> str:
        """The name of the activation's input: the normalization's output (Zbn, Zln, Zgn,
        Zrms), Z without one."""
        return "Z" if self.norm is None else self.norm.OUTPUT

    def layers(self) -> list[Dense | NormLayer]:
        return [self.dense] if self.norm is None else [self.dense, self.norm]

    def context(self, n_blocks: int) -> dict[str, object]:
        """The fields the records' words name, for this block."""
        below = "the input data" if self.index == 1 else f"layer {self.index - 1}"
        out: dict[str, object] = {"pre": self.pre_name, "label": self.act.label,
                                  "below": below, "above": self.index + 1,
                                  "layer": self.index}
        if self.norm is not None:
            out.update(self.norm.context())
        return out

    def act_values(self) -> dict[str, np.ndarray]:
        return {} if self.act.alpha is None else {"alpha": np.asarray(self.act.alpha)}

    # the staged pass ------------------------------------------------------------------
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
        if self.norm is not None:
            pre = self.norm.forward(Z, training, update_running=update_running, override=ov)
            c.update(self.norm.cache)
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
        if self.norm is not None:
            dZ = self.norm.backward(dpre, staged=staged)
            c.update(self.norm.cache)
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

    # the fused pass -----------------------------------------------------------------
    def train_forward(self, X: np.ndarray, *, update_running: bool = True,
                      keep: bool = True) -> np.ndarray:
        """A of a training-mode pass, keeping only what `train_backward` reads (nothing
        with `keep=False`: a loss without gradients)."""
        self.cache = {}
        Z = self.dense.forward(X) if keep else self.dense.affine({**self.dense.params, "X": X})
        bn = self.norm
        pre: np.ndarray | None
        if bn is None:
            pre = Z
            A = Z if self.is_output else self.act.forward(Z)
        elif bn.FUSED and bn.AFFINE_IN_ACTIVATION:
            znorm = bn.train_forward(Z, update_running=update_running, keep=keep)
            del Z
            pre, A = self.act.affine_forward(znorm, bn.gamma, bn.beta)
        elif bn.FUSED:
            pre = bn.train_forward(Z, update_running=update_running, keep=keep)
            A = pre if self.is_output else self.act.forward(pre)
        else:  # a variant: its own staged pass
            pre = bn.forward(Z, True, update_running=update_running)
            A = self.act.forward(pre)
            if not keep:
                bn.cache = {}
        self._fused = (pre, A) if keep else None
        return A

    def train_backward(self, dA: np.ndarray, need_dX: bool) -> np.ndarray | None:
        assert self._fused is not None, "train_backward before train_forward"
        pre, A = self._fused
        self._fused = None
        d = dA if self.is_output else self.act.backward(pre, A, dA)
        norm = self.norm
        if norm is not None:
            d = norm.train_backward(d) if norm.FUSED else norm.backward(d, staged=True)
        return self.dense.train_backward(d, need_dX)

    def param_counts(self) -> dict[str, int]:
        counts = {"dense": self.dense.n_params()}
        if self.norm is not None:
            counts[self.norm.kind] = self.norm.n_params()
        return counts


class Network:
    """Blocks in order, then the softmax + cross-entropy loss block."""

    def __init__(self, blocks: list[Block], n_features: int, n_classes: int,
                 loss_layer: SoftmaxCrossEntropy | None = None,
                 parts: Parts | None = None) -> None:
        self.blocks = blocks
        self.n_features = n_features
        self.n_classes = n_classes
        self.loss_layer = loss_layer if loss_layer is not None else SoftmaxCrossEntropy()
        self.parts = parts if parts is not None else Parts()
        self.dtype = blocks[0].dense.W.dtype
        # every parameter and gradient as a view of one buffer each (see engine/flat.py)
        self.flat = FlatParams(self._named_layers(), self.dtype)

    def _named_layers(self) -> list[tuple[str, Dense | NormLayer]]:
        return [(str(b.index), layer) for b in self.blocks for layer in b.layers()]

    def __deepcopy__(self, memo: dict[int, object]) -> Network:
        """A copy whose parameters are views of its own flat buffers (a plain deep copy
        would copy each view as an array of its own)."""
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            if key != "flat":
                setattr(new, key, copy.deepcopy(value, memo))
        new.flat = FlatParams(new._named_layers(), new.dtype)
        return new

    @property
    def fused(self) -> bool:
        """Whether every part trains on its own fused methods (none overrides a step)."""
        return self.loss_layer.FUSED and all(
            b.norm is None or b.norm.FUSED for b in self.blocks)

    @property
    def column_wise(self) -> bool:
        """Whether every block works feature by feature — the engine's own parts, and no
        normalization but BatchNorm (LayerNorm and its kin mix a sample's features) — so
        the numerical check's column and rank-one shortcuts hold (`engine/numeric.py`)."""
        return self.fused and all(b.norm is None or b.bn is not None for b in self.blocks)

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
        parts: Parts | None = None,
    ) -> Network:
        bn = bn or BNOptions()
        parts = parts or Parts()
        widths = arch.widths(n_classes)
        if widths[-1] != n_classes:
            raise BntuiError(
                f"the output block has width {widths[-1]} but the dataset has {n_classes} "
                "classes (write C for 'as many as the classes')"
            )
        blocks: list[Block] = []
        fan_in = n_features
        bias_rng = rng.spawn(1)[0] if parts.bias_before_bn else None
        for i, (spec, width) in enumerate(zip(arch.blocks, widths, strict=True)):
            last = i == len(widths) - 1
            extra_bias = parts.bias_before_bn and spec.batchnorm and not spec.bias
            dense = Dense(
                fan_in, width, bias=spec.bias or extra_bias, rng=rng, init=init,
                bias_init=bias_init, dtype=dtype, before_bn=spec.batchnorm,
                bias_rng=bias_rng if extra_bias else None,
            )
            norm = (None if spec.norm is None
                    else parts.make_norm(spec.norm, width, dtype, bn, spec.groups))
            act = make_activation("identity" if last else spec.activation, spec.alpha)
            blocks.append(Block(i + 1, dense, norm, act, is_output=last))
            fan_in = width
        return cls(blocks, n_features, n_classes, parts.loss(), parts)

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
            if block.norm is not None:
                rows.append({
                    "layer": block.index,
                    "kind": block.norm.kind,
                    "shape": f"{block.norm.num_features}",
                    "params": block.norm.n_params(),
                })
        return rows

    def batchnorms(self) -> list[BatchNorm]:
        return [b.bn for b in self.blocks if b.bn is not None]

    def running_state(self) -> dict[str, np.ndarray]:
        """The running statistics of every BatchNorm, under keys like "1.running_var"
        (the arrays themselves, not copies), and each one's batch count as a 0-d array."""
        out: dict[str, np.ndarray] = {}
        for block in self.blocks:
            if block.bn is not None:
                for k, v in block.bn.running_state().items():
                    out[f"{block.index}.{k}"] = v
                out[f"{block.index}.num_batches_tracked"] = np.asarray(
                    block.bn.num_batches_tracked)
        return out

    def state(self) -> dict[str, np.ndarray]:
        """Copies of everything that changes while training: parameters and running stats."""
        out = {k: p.copy() for k, p in self.named_params()}
        out.update({k: v.copy() for k, v in self.running_state().items()})
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore `state()` in place (the arrays the optimizer holds stay the same)."""
        for k, p in self.named_params():
            p[...] = state[k]
        self.load_running(state)

    def nonfinite(self) -> str | None:
        """The first parameter or running statistic holding a NaN or ±inf, in words
        ("layer 1's running_var"); None when every value is finite."""
        return self.nonfinite_params() or self.nonfinite_running()

    def nonfinite_params(self) -> str | None:
        """`nonfinite` of the parameters alone: one sum over the flat buffer, cheap
        enough for every step (a sum that overflows means values near 1e308, which have
        diverged too)."""
        if math.isfinite(np.add.reduce(self.flat.params)):
            return None
        return next((f"layer {name.split('.')[0]}'s {name.split('.')[1]}"
                     for name, p in self.named_params() if not np.isfinite(p).all()),
                    "a parameter")

    def nonfinite_running(self, quick: bool = False) -> str | None:
        """`nonfinite` of the running statistics alone.  `quick` (after a training step
        whose loss was finite) sums the running variances only: a NaN or infinite batch
        mean would have made the loss NaN, and the running std is finite wherever the
        variance it is the root of is."""
        if quick:
            total = 0.0
            for block in self.blocks:
                if block.bn is not None:
                    total += np.add.reduce(block.bn.running_var)
            if math.isfinite(total):
                return None
        for block in self.blocks:
            bn = block.bn
            if bn is None:
                continue
            for stat in ("running_mean", "running_var", "running_std"):
                if not np.isfinite(getattr(bn, stat)).all():
                    return f"layer {block.index}'s {stat}"
        return None

    def load_running(self, state: dict[str, np.ndarray]) -> None:
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
        dict with `collect=False`)."""
        d = self.loss_layer.backward()
        for i, block in enumerate(reversed(self.blocks)):
            d = block.backward(d, staged=staged, need_dX=staged or i < len(self.blocks) - 1)
        return self.grads() if collect else {}

    def train_step(self, X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """One training-mode pass (running statistics updated), the loss, and — if the
        loss is finite — the gradients in the layers' buffers, through each part's fused
        methods.  Returns the loss and how many rows are classified right."""
        A = X
        for block in self.blocks:
            A = block.train_forward(A)
        loss_layer = self.loss_layer
        loss = loss_layer.forward(A, y)
        hits = loss_layer.cache.get("hits")
        if hits is None:  # a variant loss may not count them
            hits = np.count_nonzero(np.asarray(A).argmax(axis=1) == y)
        if not np.isfinite(loss):
            loss_layer.cache = {}
            for block in self.blocks:
                block._fused = None
            return loss, int(hits)
        d = loss_layer.train_backward() if loss_layer.FUSED else loss_layer.backward()
        for i in range(len(self.blocks) - 1, -1, -1):
            d = self.blocks[i].train_backward(d, need_dX=i > 0)  # type: ignore[assignment]
        return loss, int(hits)

    def train_loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """The training-mode loss of (X, y) — batch statistics of these rows, running
        statistics untouched — keeping nothing: the same number as
        `loss(X, y, training=True, update_running=False)`, with the memory of a few
        tensors of one block instead of every tensor of every block."""
        A = X
        for block in self.blocks:
            A = block.train_forward(A, update_running=False, keep=False)
        loss = self.loss_layer.forward(A, y)
        self.loss_layer.cache = {}
        return loss

    def logits(self, X: np.ndarray) -> np.ndarray:
        """Eval-mode logits without keeping the pass's tensors (the same numbers as
        `forward(X, training=False)`)."""
        A = X
        for block in self.blocks:  # no layer keeps anything: safe beside a training step
            Z = block.dense.affine({**block.dense.params, "X": A})
            pre = Z if block.norm is None else block.norm.infer(Z)
            A = pre if block.is_output else block.act.forward(pre)
        return A

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class indices in eval mode (running statistics)."""
        return np.argmax(self.logits(X), axis=1)

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float | None:
        if len(y) == 0:
            return None
        return float(np.mean(self.predict(X) == y))

    def describe(self) -> str:
        parts = [f"{self.n_features}"]
        for b in self.blocks:
            s = f"{b.dense.fan_out}"
            if b.norm is not None:
                s += " " + {"bn": "BN", "ln": "LN", "gn": "GN", "rms": "RMS"}[b.norm.short]
            s += " softmax" if b.is_output else f" {b.act.label}"
            parts.append(s)
        return " → ".join(parts)
