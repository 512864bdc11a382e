"""Node records: every tensor a layer computes, declared once, beside the code computing it.

A layer's module declares one `Node` per tensor it owns — its input, its intermediates,
its output and its parameters — with, for each direction, the `Words` of each *mode*: the
formula, a one-line explanation, the layer method that computes it, the entries it reads
(for exercises) and the wrong formulas learners write (for exercises).  Every view reads
these records: the layers' own staged passes (which call the named method), the trace and
so the stepper, `walk` in every format and the handouts, the exercise questions, the
gradient check's names, order and step sizes, the autograd comparison, the bug zoo's
declared tensors and the help screen's glossary.  Rewording a tensor is an edit here, in
the layer's module, and nowhere else.

Modes are looked up in an order the layer gives (`Layer.mode_keys`): e.g. a BatchNorm in
eval mode that keeps a running std asks for "eval-std", then "eval", then "*".  A mode
mapped to None means the tensor is not part of that mode's computation (BatchNorm's `var`
when the running std is used; the gradients `dmu`, `dvar`, `dstd` in eval mode, where mu
and var are constants).  Text may name context fields in braces — `{pre}` for an
activation's input (Zbn or Z), `{below}`, `{above}`, `{m}` — which the block fills.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

ANY = "*"
FORWARD, BACKWARD = "forward", "backward"
Reads = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Words:
    """One mode's account of a tensor (forward) or of its gradient (backward).

    `formula` and `why` are shown wherever the step is; `fn` names the method of the
    layer that computes it (None for a step that only passes a tensor on); `reads` says
    which entries of which tensors the entry (i, j) needs, as (source, pattern) pairs —
    "ij" one entry, "j" one feature, ":j" a column, "i:" a row, ":i" column i, "j:" row j,
    "" a scalar, and for per-sample statistics (m × G, G groups of S features) "ig" the
    statistic of feature j's group, "iG" row i's features of group j (`entry_index`);
    sources are tensors of the same block or layer values such as `W`, `gamma`, `eps`,
    `running_mean`, and `m` (the batch size), `k` (the count a per-sample statistic
    averages: D or S), `Y` (one-hot labels), `Py` (P[i, yᵢ]); `wrong` lists plausible
    wrong formulas (exercise distractors); `copy` marks a step that only copies another
    tensor; `zero` a gradient that is zero in exact arithmetic (a Dense bias right before
    BatchNorm in training).
    """

    formula: str
    why: str
    fn: str | None = None
    reads: Reads = ()
    wrong: tuple[str, ...] = ()
    copy: bool = False
    zero: bool = False

    def filled(self, context: Mapping[str, object]) -> Words:
        """These words with the context's fields (`{pre}`, `{below}`, …) filled in."""
        if not context:
            return self

        def fill(text: str) -> str:
            return text.format_map(_Fields(context)) if "{" in text else text

        return Words(fill(self.formula), fill(self.why), self.fn,
                     tuple((fill(s), p) for s, p in self.reads),
                     tuple(fill(w) for w in self.wrong), self.copy, self.zero)


class _Fields(dict):
    """A format map that leaves unknown fields as they are written."""

    def __init__(self, context: Mapping[str, object]) -> None:
        super().__init__({k: str(v) for k, v in context.items()})

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True)
class Node:
    """One tensor of a layer: its glossary name and meaning, its shape rule, and its words
    forward and backward by mode.

    `role`: "input" (made by the layer below; only its gradient is computed here),
    "inner", "output" (its gradient comes from above), "param" (only a gradient).
    `step_scale` names a layer method giving each entry's own scale for the numerical
    check's step (a batch mean moves on the scale of its feature's std, not its own).
    """

    name: str
    meaning: str
    shape: str
    role: str = "inner"
    forward: Mapping[str, Words | None] = field(default_factory=dict)
    backward: Mapping[str, Words | None] = field(default_factory=dict)
    step_scale: str | None = None

    @property
    def grad_name(self) -> str:
        return "d" + self.name

    def words(self, phase: str, keys: Iterable[str]) -> Words | None:
        """The words of `phase` for the first of `keys` (then "*") this node knows."""
        table = self.forward if phase == FORWARD else self.backward
        for key in (*keys, ANY):
            if key in table:
                return table[key]
        return None


@dataclass(frozen=True)
class Derived:
    """One step of a derivation (a layer's compact backward from its staged records): an
    identity between expressions of the pass's tensors, in the records' language, and
    why it holds.  Each is checked on the current batch (`engine/derive.py`)."""

    tag: str
    formula: str
    why: str


def forward_nodes(nodes: Iterable[Node], keys: tuple[str, ...]) -> Iterator[tuple[Node, Words]]:
    """The nodes a layer computes forward in this mode, in order, with their words."""
    for node in nodes:
        if node.role in ("input", "param"):
            continue
        w = node.words(FORWARD, keys)
        if w is not None:
            yield node, w


def backward_nodes(nodes: Iterable[Node], keys: tuple[str, ...]) -> Iterator[tuple[Node, Words]]:
    """The gradients a layer computes in this mode, in the order of the backward pass.

    Reverse-mode order from the forward order: walking the computed nodes backwards, each
    node's gradient comes once its consumers are done, and a node's parameters' gradients
    come right after the gradient of the node reading them (Zbn = γ·Znorm + β gives dβ and
    dγ before dZnorm); the input's gradient comes last.
    """
    nodes = list(nodes)
    params = [n for n in nodes if n.role == "param"]
    done: set[str] = set()
    order: list[Node] = []
    for node in reversed([n for n in nodes if n.role != "param"]):
        if node.role != "output":
            order.append(node)
        fw = node.words(FORWARD, keys)
        read = {s for s, _ in fw.reads} if fw is not None else set()
        for p in params:
            if p.name in read and p.name not in done:
                order.append(p)
                done.add(p.name)
    order += [p for p in params if p.name not in done]
    for node in order:
        w = node.words(BACKWARD, keys)
        if w is not None:
            yield node, w


def entry_index(pattern: str, pos: tuple[int, ...],
                group_size: int = 1) -> tuple[tuple[int | slice, ...], str]:
    """The numpy index a `reads` pattern gives at the entry `pos` = (i, j) (or (j,)), and
    its label ("[3, :]"); `group_size` is S for the patterns `g` and `G`."""
    i = pos[0] if pos else 0
    j = pos[-1] if pos else 0
    idx: list[int | slice] = []
    words: list[str] = []
    for ch in pattern:
        if ch == ":":
            idx.append(slice(None))
            words.append(":")
        elif ch == "g":  # the group of feature j
            idx.append(j // group_size)
            words.append(str(j // group_size))
        elif ch == "G":  # the features of group j
            idx.append(slice(j * group_size, (j + 1) * group_size))
            words.append(f"{j * group_size}:{(j + 1) * group_size}")
        else:
            k = i if ch == "i" else j
            idx.append(k)
            words.append(str(k))
    return tuple(idx), (f"[{', '.join(words)}]" if words else "")


def find(nodes: Iterable[Node], name: str) -> Node:
    for node in nodes:
        if node.name == name:
            return node
    raise KeyError(name)
