"""The trace: one forward + backward pass recorded as an ordered list of steps.

Each step holds the phase, the layer (1-based block; `None` for the loss block), the kind
of layer, the tensor's glossary name, a copy of its value, its formula, a one-line
explanation, and — once a gradient check ran — its relative errors against the numerical
and autograd gradients.  The app's stepper and `bntui walk` render this list; neither
recomputes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bntui.engine import batchnorm as bn_mod
from bntui.engine import dense as dense_mod
from bntui.engine import loss as loss_mod
from bntui.engine.network import Block, Network

FORWARD_BN = ("mu", "Z0", "var", "std", "Znorm", "Zbn")
BACKWARD_BN = ("dbeta", "dgamma", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ")


@dataclass
class TraceStep:
    """One operation of the pass and the tensor it produced."""

    index: int
    phase: str  # "forward" | "backward"
    layer: int | None  # 1-based block index; None for the loss block
    kind: str  # "input" | "dense" | "batchnorm" | "activation" | "loss"
    name: str
    value: np.ndarray
    formula: str
    explanation: str
    checks: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    @property
    def where(self) -> str:
        return "loss" if self.layer is None else f"layer {self.layer}"

    def stats(self) -> dict[str, float]:
        v = np.asarray(self.value, dtype=np.float64)
        return {
            "min": float(v.min()),
            "mean": float(v.mean()),
            "max": float(v.max()),
            "std": float(v.std()),
        }


@dataclass
class Trace:
    """The ordered steps of one pass, with the loss and the mode it ran in."""

    steps: list[TraceStep]
    loss: float
    training: bool
    batch_size: int

    def find(self, name: str, layer: int | None = None, phase: str | None = None) -> TraceStep:
        for s in self.steps:
            if s.name == name and (layer is None or s.layer == layer) and (
                phase is None or s.phase == phase
            ):
                return s
        raise KeyError(f"no step {name!r} at layer {layer}")

    def index_of(self, name: str, layer: int | None = None) -> int:
        return self.find(name, layer).index

    def __len__(self) -> int:
        return len(self.steps)


def _act_text(block: Block, text: str) -> str:
    return text if block.bn is not None else text.replace("Zbn", "Z")


def record_trace(network: Network, X: np.ndarray, y: np.ndarray, training: bool = True) -> Trace:
    """Run one pass without touching the running statistics and record every tensor."""
    loss = network.loss(X, y, training, update_running=False)
    network.backward(staged=True)
    steps: list[TraceStep] = []

    def add(phase: str, layer: int | None, kind: str, name: str, value: np.ndarray,
            formula: str, why: str) -> None:
        steps.append(TraceStep(len(steps), phase, layer, kind, name,
                               np.array(value, copy=True), formula, why))

    bn_f = bn_mod.FORMULAS.copy()
    if not training:
        bn_f.update(bn_mod.EVAL_FORMULAS)
    for block in network.blocks:
        c, i = block.cache, block.index
        if i == 1:
            add("forward", i, "input", "X", c["X"], "X = the input batch",
                f"{c['X'].shape[0]} samples × {c['X'].shape[1]} features, one row per sample")
        z_formula = dense_mod.FORMULAS["Z" if block.dense.has_bias else "Z_nobias"]
        add("forward", i, "dense", "Z", c["Z"], z_formula,
            "each unit's weighted sum of the inputs")
        if block.bn is not None:
            for name in FORWARD_BN:
                add("forward", i, "batchnorm", name, c[name], bn_f[name],
                    bn_mod.EXPLANATIONS[name])
        if not block.is_output:
            add("forward", i, "activation", "A", c["A"], _act_text(block, block.act.formula),
                f"the {block.act.label} activation, applied element by element")
    lc = network.loss_layer.cache
    last = network.blocks[-1]
    add("forward", None, "loss", "P", lc["P"],
        loss_mod.FORMULAS["P"] + f"   (logits = {last.pre_name} of layer {last.index})",
        loss_mod.EXPLANATIONS["P"])
    add("forward", None, "loss", "loss", lc["loss"], loss_mod.FORMULAS["loss"],
        loss_mod.EXPLANATIONS["loss"])
    add("backward", None, "loss", "dlogits", lc["dlogits"], loss_mod.FORMULAS["dlogits"],
        loss_mod.EXPLANATIONS["dlogits"])
    for block in reversed(network.blocks):
        c, i = block.cache, block.index
        if not block.is_output:
            add("backward", i, "activation", "dA", c["dA"], f"dA = dX of layer {i + 1}",
                "the gradient arriving from the layer above")
            grad_name = "dZbn" if block.bn is not None else "dZ"
            add("backward", i, "activation", grad_name, c[grad_name],
                _act_text(block, block.act.grad_formula),
                f"through the {block.act.label} activation: multiply by its local slope")
        elif block.bn is not None:
            add("backward", i, "activation", "dZbn", c["dZbn"], "dZbn = dlogits",
                "the logits are this layer's Zbn")
        if block.bn is not None:
            for name in BACKWARD_BN:
                formula = bn_f[name] if training or name not in ("dZ0", "dZ") else (
                    bn_mod.EVAL_FORMULAS[name])
                add("backward", i, "batchnorm", name, c[name], formula, bn_mod.EXPLANATIONS[name])
        elif block.is_output:
            add("backward", i, "dense", "dZ", c["dZ"], "dZ = dlogits",
                "the logits are this layer's Z")
        add("backward", i, "dense", "dW", c["dW"], dense_mod.FORMULAS["dW"],
            "each weight's gradient: its input times the gradient of its output, summed")
        if block.dense.has_bias:
            why = "summed over the batch"
            if block.bn is not None and training:
                why = "zero up to rounding: BatchNorm subtracts the mean, so a bias here is wasted"
            add("backward", i, "dense", "db", c["db"], dense_mod.FORMULAS["db"], why)
        add("backward", i, "dense", "dX", c["dX"], dense_mod.FORMULAS["dX"],
            "the gradient passed down to the layer below" if i > 1
            else "the gradient with respect to the input data")
    return Trace(steps, loss, training, X.shape[0])
