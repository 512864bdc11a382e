"""Any entry's arithmetic: one entry of a recorded tensor, its formula with the numbers of
the entries it reads plugged in, and the entry recomputed from them.

`explain(trace, network, y, step, position)` reads the step's record: its formula, and
from its `reads` the entries of each input at this position (`dZnorm[13, 1]`, `std[1]`,
the column `Z[:, 1]` of a batch mean), found in the recorded pass (`sources.py`).  The
formula's right-hand side is evaluated on them (`formula.py`), so `recomputed` comes from
the text a learner reads, not from the code that computed `value`: the two agreeing (a
test holds every node of every layer kind to it) is the proof that the words say what the
layer does.  A sum shows its first terms, its count and its total.

`parse_entry("dZ0[13,1]")` reads the command line's `--entry`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

from bntui.engine.errors import BntuiError
from bntui.engine.formula import FormulaError, evaluate, split
from bntui.engine.network import Network
from bntui.engine.sources import PassSources, entry_of, reads
from bntui.engine.trace import Trace, TraceStep

# how a formula writes the sources it reads, where that is not the source's own name
WRITTEN = {"D": "k", "S": "k", "P[i, yᵢ]": "Py"}
_ENTRY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\[\s*([0-9,\s]*)\s*\])?\s*$")


@dataclass(frozen=True)
class EntryInput:
    """One input of the entry: its label (`std[1]`), name and the value(s) read."""

    name: str
    index: str
    value: np.ndarray

    def to_dict(self) -> dict[str, object]:
        v = np.asarray(self.value, dtype=np.float64)
        return {"name": self.name, "index": self.index,
                "value": float(v) if v.ndim == 0 else v.tolist()}


@dataclass
class Entry:
    """One entry of a step, explained."""

    name: str
    layer: int | None
    phase: str
    index: tuple[int, ...]
    value: float
    formula: str
    indexed: str  # the formula with each name's entries: dZ0[13, 1] = dZnorm[13, 1] / …
    substituted: str  # with the numbers: dZ0[13, 1] = 0.0123 / 0.98 + … = 0.0125
    recomputed: float
    scale: float  # the size of what was added up (judges the recomputation)
    inputs: list[EntryInput] = field(default_factory=list)
    note: str = ""

    @property
    def label(self) -> str:
        return self.name + (f"[{', '.join(str(k) for k in self.index)}]" if self.index else "")

    @property
    def error(self) -> float:
        """|recomputed − value| relative to the scale of the arithmetic."""
        return abs(self.recomputed - self.value) / max(abs(self.value), self.scale, 1e-300)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "layer": self.layer, "phase": self.phase,
                "index": list(self.index), "value": self.value, "formula": self.formula,
                "indexed": self.indexed, "substituted": self.substituted,
                "inputs": [i.to_dict() for i in self.inputs], "recomputed": self.recomputed,
                "relative_error": self.error, "note": self.note or None}


def parse_entry(text: str) -> tuple[str, tuple[int, ...] | None]:
    """`dZ0[13,1]` → ("dZ0", (13, 1)); `loss` → ("loss", ()); `mu` → ("mu", None): a
    tensor without an index (the caller picks)."""
    m = _ENTRY.match(text or "")
    if m is None:
        raise BntuiError(f"entry '{text}' is not a tensor name with an index, e.g. 'dZ0[13,1]'")
    name, inside = m.group(1), m.group(2)
    if inside is None:
        return name, None
    parts = [p.strip() for p in inside.split(",") if p.strip()]
    return name, tuple(int(p) for p in parts)


def find_step(trace: Trace, name: str, layer: int | None,
              phase: str | None = None) -> TraceStep:
    """The step computing `name` in `layer` (None: the loss block, or the only layer with
    such a step), or one line naming what exists."""
    steps = [s for s in trace.steps if s.name == name and (phase is None or s.phase == phase)]
    if layer is not None:
        steps = [s for s in steps if s.layer == layer]
    if not steps:
        names = sorted({s.name for s in trace.steps if layer is None or s.layer == layer})
        where = f" in layer {layer}" if layer is not None else ""
        raise BntuiError(f"no tensor '{name}'{where}; there are: {', '.join(names)}")
    layers = sorted({str(s.layer) for s in steps})
    if len(layers) > 1 and layer is None:
        raise BntuiError(f"'{name}' is in layers {', '.join(layers)}: say which with --layer")
    return steps[0]


def check_position(step: TraceStep, index: tuple[int, ...]) -> tuple[int, ...]:
    shape = step.shape
    if len(index) != len(shape) or any(not 0 <= k < n for k, n in zip(index, shape,
                                                                        strict=False)):
        dims = " × ".join(str(n) for n in shape) or "a scalar"
        raise BntuiError(f"{step.name}{list(index)} is outside {step.name}, which is {dims} "
                         "(indices count from 0)")
    return index


def explain(trace: Trace, network: Network, y: np.ndarray, step: TraceStep,
            index: tuple[int, ...]) -> Entry:
    """The entry `index` of `step`: formula, inputs, substitution, recomputation."""
    index = check_position(step, tuple(int(k) for k in index))
    ps = PassSources(trace, network, np.asarray(y))
    value = float(np.asarray(step.value, dtype=np.float64)[index])
    words = step.words
    label = step.name + (f"[{', '.join(str(k) for k in index)}]" if index else "")
    base = dict(name=step.name, layer=step.layer, phase=step.phase, index=index,
                value=value, formula=step.formula)
    got = reads(ps, step)
    if words is None or not got:  # the input batch: nothing computes it
        return Entry(**base, indexed=label, substituted=f"{label} = {number(value)}",  # type: ignore[arg-type]
                     recomputed=value, scale=abs(value), note=step.explanation)
    if words.copy and step.name == "dA":  # dA = dX of the layer above
        above = replace(step, layer=(step.layer or 0) + 1)
        inputs = [EntryInput(s, *_swap(entry_of(ps, above, s, p, index))) for s, p in got]
        inputs = [EntryInput(i.name, f"{i.index} of layer {above.layer}", i.value)
                  for i in inputs]
    else:
        inputs = [EntryInput(s, *_swap(entry_of(ps, step, s, p, index))) for s, p in got]
    env = {i.name: (i.value, i.index) for i in inputs}
    if "logits" in env:  # softmax's shift: the row's largest logit
        row = np.asarray(env["logits"][0])
        env["max"] = (np.asarray(row.max()), "max")
    if words.copy:  # a step that hands a tensor on: the value is its source's entry
        src = inputs[0]
        v = float(np.asarray(src.value))
        return Entry(**base, indexed=f"{label} = {src.index}",  # type: ignore[arg-type]
                     substituted=f"{label} = {src.index} = {number(v)}", recomputed=v,
                     scale=abs(v), inputs=inputs, note=step.explanation)
    _, rhs = split(step.formula)
    try:
        res = evaluate(rhs, env, column=index[-1] if index else None, names=WRITTEN)
    except FormulaError as exc:
        raise BntuiError(f"{label}: {exc}") from None
    return Entry(**base, indexed=f"{label} = {res.indexed}",  # type: ignore[arg-type]
                 substituted=f"{label} = {res.substituted} = {number(res.value)}",
                 recomputed=res.value, scale=res.scale, inputs=inputs)


def number(x: float) -> str:
    """A result as the substitution ends: six significant digits, a real minus sign."""
    return f"{x:.6g}".replace("-", "−")


def _swap(pair: tuple[np.ndarray, str]) -> tuple[str, np.ndarray]:
    value, label = pair
    return label, value


__all__ = ["Entry", "EntryInput", "check_position", "explain", "find_step", "parse_entry"]
