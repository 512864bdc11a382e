"""Where the inputs of a recorded step are found: tensors of the trace, layer values.

A record's `reads` name their sources — tensors of the same block (`Z0`, `dZnorm`), layer
values (`W`, `gamma`, `eps`, `alpha`, the running statistics), and a few of the pass
(`m`, `k`, `Y`, `Py`, `logits`).  `PassSources.tensor` finds each in one recorded pass
(its `Trace`, the network and the labels); the exercises and the drill-down read their
givens through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bntui.engine.network import Block, Network
from bntui.engine.nodes import entry_index
from bntui.engine.trace import Trace, TraceStep


@dataclass
class PassSources:
    """Where the tensors and values a step reads are found, for one recorded pass."""

    trace: Trace
    network: Network
    y: np.ndarray

    def block(self, layer: int) -> Block:
        return self.network.blocks[layer - 1]

    def tensor(self, name: str, layer: int | None) -> tuple[np.ndarray, str]:
        """The full source tensor and how it is called (e.g. `X` of layer 2 is `A` of 1)."""
        tr = self.trace
        m = tr.batch_size
        if name == "m":
            return np.asarray(float(m)), "m"
        if name == "Y":
            P = tr.find("P").value
            return np.eye(P.shape[1])[self.y], "Y"
        if name == "Py":
            P = tr.find("P").value
            return P[np.arange(m), self.y], "P[i, yᵢ]"
        if name == "dlogits":
            return tr.find("dlogits", None).value, "dlogits"
        if name == "logits":
            last = self.network.blocks[-1]
            return tr.find(last.pre_name, last.index, "forward").value, "logits"
        if layer is None:
            return tr.find(name, None).value, name
        block = self.block(layer)
        if name == "eps":
            assert block.norm is not None
            return np.asarray(block.norm.eps), "ε"
        if name == "k":  # how many values one per-sample statistic averages
            assert block.norm is not None
            k = block.norm.group_size  # type: ignore[attr-defined]
            return np.asarray(float(k)), "S" if block.norm.kind == "groupnorm" else "D"
        if name == "alpha":
            return np.asarray(block.act.alpha), "α"
        if name in ("W", "b"):
            return block.dense.params[name], name
        if name in ("gamma", "beta"):
            assert block.norm is not None
            return block.norm.params[name], {"gamma": "γ", "beta": "β"}[name]
        if name in RUNNING:  # eval mode: the trace's own copy of the running statistic
            return tr.find(RUNNING[name], layer, "forward").value, name
        if name == "X" and layer > 1:
            return tr.find("A", layer - 1, "forward").value, "X"
        phase = "backward" if name.startswith("d") else "forward"
        return tr.find(name, layer, phase).value, name


RUNNING = {"running_mean": "mu", "running_var": "var", "running_std": "std"}




def reads(ps: PassSources, step: TraceStep) -> list[tuple[str, str]]:
    """The (source, pattern) pairs the step's record reads, as far as this block has them
    (a Dense without bias reads no `b`)."""
    words = step.words
    if words is None:
        return []
    out = []
    for source, pattern in words.reads:
        if source == "b" and not ps.block(step.layer).dense.has_bias:  # type: ignore[arg-type]
            continue
        out.append((source, pattern))
    return out


def step_inputs(ps: PassSources, step: TraceStep) -> list[str]:
    """The names of what a step reads (its graph's inputs), in the record's order."""
    return [source for source, _ in reads(ps, step)]


def entry_of(ps: PassSources, step: TraceStep, source: str, pattern: str,
             pos: tuple[int, ...]) -> tuple[np.ndarray, str]:
    """The entries of `source` that `step`'s entry `pos` reads, and their label
    (`Z0[13, 1]`, `dZnorm[:, 1]`)."""
    full, label = ps.tensor(source, step.layer)
    norm = ps.block(step.layer).norm if step.layer is not None else None
    idx, where = entry_index(pattern, pos, getattr(norm, "group_size", 1))
    return np.asarray(full[idx] if idx else full, dtype=np.float64), label + where
