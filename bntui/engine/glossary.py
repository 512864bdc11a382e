"""The glossary: every tensor name of one BatchNorm block, then of each other normalization
(LayerNorm, GroupNorm, RMSNorm), its meaning and its formula, read from the layers' node
records (training mode; the help screen shows it).

No word of it is written here: the rows are the records' own, in the order a pass
computes them, so rewording a tensor in its layer's module rewords the glossary too.
The other normalizations' rows carry the layer's name beside the tensor's ("mu
(LayerNorm)"): their mu, var, std are per sample, BatchNorm's per feature.
"""

from __future__ import annotations

from bntui.engine.activations import GENERIC, GENERIC_GRAD
from bntui.engine.batchnorm import COMPACT, BatchNorm
from bntui.engine.dense import Dense
from bntui.engine.groupnorm import GroupNorm
from bntui.engine.layernorm import LayerNorm
from bntui.engine.loss import SoftmaxCrossEntropy
from bntui.engine.network import FROM_ABOVE, INPUT
from bntui.engine.nodes import BACKWARD, FORWARD, Node, Words, backward_nodes, forward_nodes
from bntui.engine.norm import NormLayer
from bntui.engine.rmsnorm import RMSNorm

CONTEXT = {"pre": "Zbn", "below": "the layer below", "above": "l + 1", "label": "f",
           "layer": "L", "m": "m", "features": "D", "running_var": "as the convention keeps it"}
# the normalizations shown after the BatchNorm block, each with its own rows
OTHER_NORMS: tuple[type[NormLayer], ...] = (LayerNorm, GroupNorm, RMSNorm)
TITLE = ("glossary (one BatchNorm block, then " + ", ".join(
    c.title for c in OTHER_NORMS) + "; m = batch size)")

Row = tuple[str, str, str]


def _row(name: str, meaning: str, words: Words,
         context: dict[str, str] | None = None) -> Row:
    ctx = CONTEXT if context is None else context
    w = words.filled(ctx)
    return name, Words(meaning, "").filled(ctx).formula, w.formula


def _forward(nodes: tuple[Node, ...], keys: tuple[str, ...]) -> list[Row]:
    return [_row(n.name, n.meaning, w) for n, w in forward_nodes(nodes, keys)]


def _backward(nodes: tuple[Node, ...], keys: tuple[str, ...]) -> list[Row]:
    return [_row(n.grad_name, w.why, w) for n, w in backward_nodes(nodes, keys)]


def rows() -> list[Row]:
    """(name, meaning, formula) of every tensor, forward then backward: one BatchNorm
    block and the loss, then each other normalization's own tensors (`norm_rows`)."""
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
    for layer in OTHER_NORMS:
        out += norm_rows(layer)
    return out


def norm_rows(layer: type[NormLayer]) -> list[Row]:
    """One normalization's tensors (its input Z and the Dense around it left out), in the
    order of a training pass, each name followed by the layer's title: forward, the
    gradient its output receives through the activation, backward, the compact dZ."""
    keys = ("train",)
    ctx = {**CONTEXT, "pre": layer.OUTPUT}

    def row(name: str, meaning: str, words: Words) -> Row:
        return _row(f"{name} ({layer.title})", meaning, words, ctx)

    out = [row(n.name, n.meaning, w) for n, w in forward_nodes(layer.NODES, keys)]
    out.append(row("d" + layer.OUTPUT, GENERIC_GRAD.why, GENERIC_GRAD))
    out += [row(n.grad_name, w.why, w) for n, w in backward_nodes(layer.NODES, keys)]
    compact: Words | None = getattr(layer, "COMPACT", None)
    if compact is not None:
        out.append(_row(f"dZ ({layer.title}, compact)", compact.why, compact, ctx))
    return out
