"""The trace: one forward + backward pass recorded as an ordered list of steps.

`plan(network, training)` lists the steps of a pass from the layers' node records, in the
order the pass computes them: forward block by block (Dense, the normalization, activation), the
loss, then backward from dlogits down to layer 1's dX — each with its phase, layer
(1-based block; `None` for the loss block), the kind of layer, the tensor's glossary name
and the record's words for the mode, their context filled in.  The gradient check takes
its names and order from the same plan.  `record_trace` runs one pass and gives each
planned step a copy of its value; once a gradient check ran, its relative errors against
the numerical and autograd gradients are attached.  The app's stepper, `bntui walk`, the
handouts and the exercises render this list; none of them recomputes or rewords it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bntui.engine.network import FROM_ABOVE, FROM_LOSS, INPUT, Block, Network
from bntui.engine.nodes import BACKWARD, FORWARD, Node, Words, backward_nodes, forward_nodes


@dataclass(frozen=True)
class Planned:
    """One step of a pass, before it runs: where it is and what its record says."""

    phase: str  # "forward" | "backward"
    layer: int | None  # 1-based block index; None for the loss block
    kind: str  # "input" | "dense" | "batchnorm" (a norm's kind) | "activation" | "output" | "loss"
    name: str  # the tensor's glossary name: Z, Znorm, dgamma, …
    node: Node
    words: Words  # the record's words for this mode, context filled in


@dataclass
class TraceStep:
    """One operation of the pass and the tensor it produced."""

    index: int
    phase: str  # "forward" | "backward"
    layer: int | None  # 1-based block index; None for the loss block
    kind: str  # "input" | "dense" | "batchnorm" (a norm's kind) | "activation" | "output" | "loss"
    name: str
    value: np.ndarray
    formula: str
    explanation: str
    checks: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    words: Words | None = None  # the record's words (reads, wrong formulas, copy, zero)
    node: Node | None = None

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


def _fill(text: str, context: dict[str, object]) -> str:
    return Words(text, "").filled(context).formula


def plan(network: Network, training: bool = True, batch_size: int | None = None) -> list[Planned]:
    """Every step of one pass of `network`, in order, from the records."""
    out: list[Planned] = []
    n = len(network.blocks)

    def add(phase: str, block: Block | None, kind: str, node: Node, words: Words,
            context: dict[str, object]) -> None:
        name = _fill(node.name if phase == FORWARD else node.grad_name, context)
        out.append(Planned(phase, None if block is None else block.index, kind, name, node,
                           words.filled(context)))

    def layer_steps(phase: str, block: Block, kind: str, layer: object,
                    context: dict[str, object]) -> None:
        keys = layer.mode_keys(training)  # type: ignore[attr-defined]
        walk = forward_nodes if phase == FORWARD else backward_nodes
        for node, words in walk(layer.NODES, keys):  # type: ignore[attr-defined]
            add(phase, block, kind, node, words, context)

    contexts = {b.index: b.context(n) for b in network.blocks}
    for block in network.blocks:
        ctx = contexts[block.index]
        if block.index == 1:
            ctx0 = {**ctx, "m": batch_size if batch_size is not None else "m",
                    "features": network.n_features}
            add(FORWARD, block, "input", INPUT, INPUT.words(FORWARD, ()), ctx0)
        layer_steps(FORWARD, block, "dense", block.dense, ctx)
        if block.norm is not None:
            layer_steps(FORWARD, block, block.norm.kind, block.norm, ctx)
        if not block.is_output:
            _, a = block.act.nodes()
            add(FORWARD, block, "activation", a, a.words(FORWARD, ()), ctx)
    last = contexts[network.blocks[-1].index]
    loss = network.loss_layer
    for node, words in forward_nodes(loss.NODES, loss.mode_keys(training)):
        add(FORWARD, None, "loss", node, words, last)
    for node, words in backward_nodes(loss.NODES, loss.mode_keys(training)):
        add(BACKWARD, None, "loss", node, words, last)
    for block in reversed(network.blocks):
        ctx = contexts[block.index]
        if block.is_output:
            add(BACKWARD, block, "output", FROM_LOSS, FROM_LOSS.words(BACKWARD, ()), ctx)
        else:
            add(BACKWARD, block, "activation", FROM_ABOVE, FROM_ABOVE.words(BACKWARD, ()), ctx)
            pre, _ = block.act.nodes()
            add(BACKWARD, block, "activation", pre, pre.words(BACKWARD, ()), ctx)
        if block.norm is not None:
            layer_steps(BACKWARD, block, block.norm.kind, block.norm, ctx)
        layer_steps(BACKWARD, block, "dense", block.dense, ctx)
    return out


def record_trace(network: Network, X: np.ndarray, y: np.ndarray, training: bool = True) -> Trace:
    """Run one pass without touching the running statistics and record every tensor."""
    loss = network.loss(X, y, training, update_running=False)
    network.backward(staged=True)
    steps: list[TraceStep] = []
    caches = {b.index: b.cache for b in network.blocks}
    for p in plan(network, training, X.shape[0]):
        source = network.loss_layer.cache if p.layer is None else caches[p.layer]
        steps.append(TraceStep(len(steps), p.phase, p.layer, p.kind, p.name,
                               np.array(source[p.name], copy=True), p.words.formula,
                               p.words.why, words=p.words, node=p.node))
    return Trace(steps, loss, training, X.shape[0])
