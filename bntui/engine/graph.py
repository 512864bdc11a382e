"""The computational graph of one block, read from its node records, drawn in text.

`block_graph(network, layer, training)` lists the tensors one block computes forward —
its input X, the Dense output Z, the normalization's nodes (mu, Z0, var, std, Znorm, Zbn;
LayerNorm's, RMSNorm's …), A, and for the output block the loss's (P, loss) — in the order
the pass computes them, each with the nodes it reads (its edges, from `Words.reads`) and
the constants it reads (W, b, γ, β, ε, m, the running statistics).  Nothing here restates
a formula: the edges are the records'.

`rows(graph, trace, step)` draws it for one step of a recorded pass, a row per node:

    ●            Z      160×16   mean −0.016 ± 0.59        dZ     mean 0 ± 0.002
    ├─●          mu     16       …
    ●─╯        ▶ Z0     160×16   …                         ◀ the step's node
    ├─●        • var    …                                  • a node the step reads

The lanes on the left are the edges: each value runs down its own lane from the row that
computes it to the last row that reads it; `├`/`┤` mark a read that goes on, `╰`/`╯` the
last.  In the backward pass each row shows the node's gradient beside its value, and the
step's inputs are the nodes whose values or gradients it reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bntui.engine.network import Network
from bntui.engine.nodes import FORWARD
from bntui.engine.trace import Trace, TraceStep, plan

# a constant a record reads that stands for a node of the eval-mode pass (mu = running_mean)
ALIASES = {"running_mean": "mu", "running_var": "var", "running_std": "std"}
SYMBOLS = {"gamma": "γ", "beta": "β", "eps": "ε", "alpha": "α", "k": "count"}


@dataclass(frozen=True)
class GraphNode:
    name: str
    layer: int | None  # None: the loss block's
    inputs: tuple[str, ...]  # the nodes it reads
    constants: tuple[str, ...]  # the values it reads that are not nodes of the pass
    kind: str  # the layer kind computing it ("dense", "batchnorm", …, "loss")


@dataclass(frozen=True)
class Graph:
    layer: int
    training: bool
    nodes: tuple[GraphNode, ...]
    pre: str  # the activation's input (Zbn, Zln, …, or Z): the output block's logits

    def node_of(self, source: str) -> str:
        """The node a record's source stands for: the logits are the output's `pre`,
        P[i, yᵢ] is P, a running statistic is the eval pass's mu, var or std."""
        return {"logits": self.pre, "Py": "P"}.get(source, ALIASES.get(source, source))

    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def find(self, name: str) -> GraphNode | None:
        return next((n for n in self.nodes if n.name == name), None)


def block_graph(network: Network, layer: int, training: bool = True) -> Graph:
    """The forward graph of block `layer` (1-based), and the loss's for the output block."""
    block = network.blocks[layer - 1]
    steps = [p for p in plan(network, training) if p.phase == FORWARD
             and (p.layer == layer or (p.layer is None and block.is_output))]
    nodes: list[GraphNode] = []
    if layer > 1:  # the block's input is the layer below's output
        nodes.append(GraphNode("X", layer, (), (), "input"))
    known = {n.name for n in nodes}
    graph = Graph(layer, training, (), block.pre_name)
    for p in steps:
        ins: list[str] = []
        consts: list[str] = []
        for source, _ in p.words.reads:
            if source == "b" and not block.dense.has_bias:
                continue
            target = graph.node_of(source)
            if target in known and target != p.name:
                if target not in ins:
                    ins.append(target)
            else:
                consts.append(source)
        nodes.append(GraphNode(p.name, p.layer, tuple(ins), tuple(consts), p.kind))
        known.add(p.name)
    return Graph(layer, training, tuple(nodes), block.pre_name)


def lanes(graph: Graph) -> list[str]:
    """The lane art of each row (see the module docstring)."""
    order = graph.names()
    last: dict[str, int] = {}
    for k, node in enumerate(graph.nodes):
        for i in node.inputs:
            last[i] = k
    slots: list[str | None] = []
    out: list[str] = []
    for k, node in enumerate(graph.nodes):
        held = {name: c for c, name in enumerate(slots) if name is not None}
        ins = [held[i] for i in node.inputs if i in held]
        ending = sorted(c for c in ins if last.get(slots[c] or "") == k)  # type: ignore[arg-type]
        free = [c for c, name in enumerate(slots) if name is None]
        own = ending[0] if ending else (free[0] if free else len(slots))
        if own == len(slots):
            slots.append(None)
        lo, hi = min([own, *ins]), max([own, *ins])
        cells: list[str] = []
        for c in range(len(slots)):
            active = slots[c] is not None
            if c == own:
                sym = "●"
            elif c in ins:
                ends = c in ending
                sym = ("╯" if ends else "┤") if c > own else ("╰" if ends else "├")
            elif lo < c < hi:
                sym = "┼" if active else "─"
            else:
                sym = "│" if active else " "
            cells.append(sym + ("─" if lo <= c < hi else " "))
        out.append("".join(cells).rstrip())
        for c in ending:
            slots[c] = None
        slots[own] = order[k] if last.get(order[k], -1) > k else None
    width = max((len(s) for s in out), default=0)
    return [s.ljust(width) for s in out]


@dataclass(frozen=True)
class GraphRow:
    """One drawn node: its lanes, name, shape, summaries, and how the step sees it."""

    lanes: str
    name: str
    shape: str
    value: str
    grad: str
    lit: bool  # the node the step computes (or whose gradient it computes)
    marked: bool  # a node whose value or gradient the step reads


def summary(value: np.ndarray | None) -> str:
    if value is None:
        return ""
    v = np.asarray(value, dtype=np.float64)
    if v.size == 1:
        return f"{float(v.reshape(-1)[0]):.4g}"
    return f"mean {float(v.mean()):.3g} ± {float(v.std()):.3g}"


def focus(graph: Graph, step: TraceStep | None) -> tuple[str | None, set[str]]:
    """The node a step lights (Z0 for Z0 and for dZ0) and the nodes it reads."""
    if step is None:
        return None, set()
    name = step.name
    node = name[1:] if step.phase != FORWARD and name.startswith("d") else name
    reads: set[str] = set()
    here = step.name != "dA"  # dA = dX of the layer above: it reads nothing of this block
    for source, _ in (step.words.reads if step.words is not None and here else ()):
        if source.startswith("d") and graph.find(source[1:]) is not None:
            source = source[1:]  # a gradient read: light the node it belongs to
        base = graph.node_of(source)
        if graph.find(base) is not None:
            reads.add(base)
    lit = node if graph.find(node) is not None else None
    return lit, reads - ({lit} if lit else set())


def rows(graph: Graph, trace: Trace, step: TraceStep | None = None) -> list[GraphRow]:
    """The graph's rows for one step of `trace` (its values; gradients in the backward
    pass, up to and including the step)."""
    lit, marked = focus(graph, step)
    values: dict[str, np.ndarray] = {}
    grads: dict[str, np.ndarray] = {}
    upto = step.index if step is not None else len(trace.steps) - 1
    for s in trace.steps:
        if s.layer not in (graph.layer, None):
            continue
        if s.phase == FORWARD:
            values[s.name] = s.value
        elif s.index <= upto and step is not None and step.phase != FORWARD:
            grads[s.name] = s.value
    if graph.layer > 1 and "X" not in values:
        values["X"] = trace.find("A", graph.layer - 1, FORWARD).value
    art = lanes(graph)
    out: list[GraphRow] = []
    for a, node in zip(art, graph.nodes, strict=True):
        v = values.get(node.name)
        shape = "×".join(str(d) for d in np.shape(v)) if v is not None else ""
        g = grads.get("d" + node.name)
        out.append(GraphRow(a, node.name, shape or "scalar", summary(v),
                            "" if g is None else f"d{node.name} {summary(g)}",
                            node.name == lit, node.name in marked))
    return out


def text(graph: Graph, trace: Trace, step: TraceStep | None = None) -> list[str]:
    """The rows as plain text: ▶ the step's node, • a node it reads."""
    drawn = rows(graph, trace, step)
    name_w = max(len(r.name) for r in drawn) + 2
    shape_w = max(len(r.shape) for r in drawn)
    val_w = max(len(r.value) for r in drawn)
    out = []
    for r in drawn:
        mark = "▶ " if r.lit else ("• " if r.marked else "  ")
        line = (f"{r.lanes}  {mark}{r.name.ljust(name_w)}{r.shape.ljust(shape_w)}  "
                f"{r.value.ljust(val_w)}  {r.grad}")
        out.append(line.rstrip())
    lit_const = step.name[1:] if step is not None and step.phase != FORWARD else None
    consts = sorted({c for n in graph.nodes for c in n.constants})
    if consts:
        out.append("reads also: " + ", ".join(
            ("▶ " if c == lit_const else "") + SYMBOLS.get(c, c) for c in consts))
    return out


__all__ = ["Graph", "GraphNode", "GraphRow", "block_graph", "focus", "lanes", "rows", "text"]
