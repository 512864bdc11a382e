"""The glossary: every tensor name of one BatchNorm block, its meaning and its formula,
read from the layers' node records (training mode; the help screen shows it).

No word of it is written here: the rows are the records' own, in the order a pass
computes them, so rewording a tensor in its layer's module rewords the glossary too.
"""

from __future__ import annotations

from bntui.engine.activations import GENERIC, GENERIC_GRAD
from bntui.engine.batchnorm import COMPACT, BatchNorm
from bntui.engine.dense import Dense
from bntui.engine.loss import SoftmaxCrossEntropy
from bntui.engine.network import FROM_ABOVE, INPUT
from bntui.engine.nodes import BACKWARD, FORWARD, Node, Words, backward_nodes, forward_nodes

CONTEXT = {"pre": "Zbn", "below": "the layer below", "above": "l + 1", "label": "f",
           "layer": "L", "m": "m", "features": "D", "running_var": "as the convention keeps it"}


def _row(name: str, meaning: str, words: Words) -> tuple[str, str, str]:
    w = words.filled(CONTEXT)
    return name, Words(meaning, "").filled(CONTEXT).formula, w.formula


def _forward(nodes: tuple[Node, ...], keys: tuple[str, ...]) -> list[tuple[str, str, str]]:
    return [_row(n.name, n.meaning, w) for n, w in forward_nodes(nodes, keys)]


def _backward(nodes: tuple[Node, ...], keys: tuple[str, ...]) -> list[tuple[str, str, str]]:
    return [_row(n.grad_name, w.why, w) for n, w in backward_nodes(nodes, keys)]


def rows() -> list[tuple[str, str, str]]:
    """(name, meaning, formula) of every tensor, forward then backward."""
    train = ("train",)
    out = [_row(INPUT.name, INPUT.meaning, INPUT.words(FORWARD, ()))]
    out += _forward(Dense.NODES, train)
    out += _forward(BatchNorm.NODES, train)
    out.append(_row("A", "the activation's output", GENERIC))
    out += _forward(SoftmaxCrossEntropy.NODES, train)
    out += _backward(SoftmaxCrossEntropy.NODES, train)
    out.append(_row("dA", FROM_ABOVE.words(BACKWARD, ()).why, FROM_ABOVE.words(BACKWARD, ())))
    out.append(_row("dZbn", GENERIC_GRAD.why, GENERIC_GRAD))
    out += _backward(BatchNorm.NODES, train)
    out.append(_row("dZ (compact)", COMPACT.why, COMPACT))
    out += _backward(Dense.NODES, train)
    return out
