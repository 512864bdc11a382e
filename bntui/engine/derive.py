"""The derivation: a normalization layer's compact backward, from its staged records, one
algebraic step at a time, each step checked on the current batch.

A layer declares its steps (`DERIVATION`, beside its records and `COMPACT`): the first is
the staged record of dZ, the last the compact formula training runs, and each is an
identity between expressions of the pass's tensors in the records' language.  `derive`
evaluates both sides of every step over whole tensors (`formula.whole`) from one recorded
pass and reports the largest difference between them — at rounding level when the
algebra is right, far from it when a step is wrong — and puts the staged dZ of the trace
beside the dZ of the layer's own compact code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bntui.engine.errors import BntuiError
from bntui.engine.formula import parse, split, whole
from bntui.engine.network import Network
from bntui.engine.trace import Trace

WRITTEN = {"D": "k", "S": "k"}  # the count a per-sample statistic averages


@dataclass(frozen=True)
class CheckedStep:
    tag: str
    formula: str
    why: str
    max_diff: float  # the largest |left − right| over the tensor
    scale: float  # the largest |left| or |right|

    @property
    def relative(self) -> float:
        return self.max_diff / self.scale if self.scale > 0 else self.max_diff

    def to_dict(self) -> dict[str, object]:
        return {"tag": self.tag, "formula": self.formula, "why": self.why,
                "max_difference": self.max_diff, "scale": self.scale,
                "relative_difference": self.relative}


@dataclass
class Derivation:
    layer: int
    kind: str
    title: str
    batch_size: int
    steps: list[CheckedStep] = field(default_factory=list)
    staged_vs_compact: float = 0.0  # the largest |dZ staged − dZ compact| (the layer's code)
    dz_scale: float = 0.0

    @property
    def worst(self) -> float:
        return max((s.relative for s in self.steps), default=0.0)

    def to_dict(self) -> dict[str, object]:
        return {"layer": self.layer, "kind": self.kind, "title": self.title,
                "batch_size": self.batch_size, "steps": [s.to_dict() for s in self.steps],
                "staged_vs_compact": {"max_difference": self.staged_vs_compact,
                                      "scale": self.dz_scale},
                "worst_relative_difference": self.worst}


def derivable(network: Network) -> list[int]:
    """The blocks whose normalization declares a derivation."""
    return [b.index for b in network.blocks
            if b.norm is not None and b.norm.derivation() and b.norm.FUSED]


def _env(network: Network, trace: Trace, layer: int) -> dict[str, np.ndarray]:
    """Every tensor of the block's pass (per-sample statistics spread over their group's
    features), the layer's parameters and the counts."""
    block = network.blocks[layer - 1]
    norm = block.norm
    assert norm is not None
    env: dict[str, np.ndarray] = {}
    for s in trace.steps:
        if s.layer == layer:
            env[s.name] = np.asarray(s.value, dtype=np.float64)
    size = getattr(norm, "group_size", None)
    width = norm.num_features
    if size is not None:  # (m, G) statistics → (m, D), so they broadcast over the features
        for name, v in list(env.items()):
            if v.ndim == 2 and v.shape[-1] * size == width and size > 1:
                env[name] = np.repeat(v, size, axis=-1)
    env.update({k: np.asarray(v, dtype=np.float64) for k, v in norm.params.items()})
    env["eps"] = np.asarray(norm.eps)
    env["m"] = np.asarray(float(trace.batch_size))
    env["k"] = np.asarray(float(size if size is not None else width))
    return env


def derive(network: Network, trace: Trace, layer: int | None = None) -> Derivation:
    """Check every step of block `layer`'s derivation on `trace` (a training-mode pass)."""
    if not trace.training:
        raise BntuiError("the derivation is of the training-mode backward (drop --eval)")
    choices = derivable(network)
    if layer is None:
        if not choices:
            raise BntuiError("this network has no normalization layer to derive (give a "
                             "block bn, ln, gn=G or rms)")
        layer = choices[0]
    if layer not in choices:
        raise BntuiError(f"layer {layer} has no normalization with a derivation "
                         f"(layers with one: {', '.join(map(str, choices)) or 'none'})")
    norm = network.blocks[layer - 1].norm
    assert norm is not None
    env = _env(network, trace, layer)
    size = int(getattr(norm, "group_size", norm.num_features))
    out = Derivation(layer, norm.kind, norm.title, trace.batch_size)
    for d in norm.derivation():
        lhs, rhs = split(d.formula)
        left = whole(parse(lhs, WRITTEN), env, size)
        right = whole(parse(rhs, WRITTEN), env, size)
        left, right = np.broadcast_arrays(left, right)
        diff = float(np.max(np.abs(left - right))) if left.size else 0.0
        scale = float(max(np.max(np.abs(left)), np.max(np.abs(right)))) if left.size else 0.0
        out.steps.append(CheckedStep(d.tag, d.formula, d.why, diff, scale))
    out.staged_vs_compact, out.dz_scale = staged_vs_compact(network, trace, layer)
    return out


def staged_vs_compact(network: Network, trace: Trace, layer: int) -> tuple[float, float]:
    """The largest |dZ staged − dZ compact| of block `layer` in a training-mode trace —
    the trace's staged dZ beside the layer's own compact code run on the trace's tensors
    (the layer is not touched) — and the largest |dZ|."""
    norm = network.blocks[layer - 1].norm
    assert norm is not None and trace.training
    cache = {s.name: s.value for s in trace.steps if s.layer == layer and s.phase == "forward"}
    dy = trace.find("d" + norm.OUTPUT, layer).value
    grads = {name: np.empty_like(p) for name, p in norm.params.items()}
    compact = norm.compact(dy, cache, grads)
    staged = trace.find("dZ", layer, "backward").value
    return float(np.max(np.abs(compact - staged))), float(np.max(np.abs(staged)))


def _rel(x: float) -> str:
    return f"{x:.1e}"


def text(d: Derivation, head: str) -> str:
    lines = [f"The compact {d.title} backward, derived from the staged graph", head, ""]
    width = max(len(s.tag) for s in d.steps) + 2
    for s in d.steps:
        lines.append(f"{s.tag.ljust(width)}{s.formula}")
        lines.append(f"{'':{width}}because {s.why}")
        lines.append(f"{'':{width}}checked on this batch: the two sides differ by at most "
                     f"{s.max_diff:.2e} (relative {_rel(s.relative)})")
        lines.append("")
    lines.append(f"{'staged vs compact':{width}}dZ of the staged pass and of the compact code "
                 f"differ by at most {d.staged_vs_compact:.2e} (values up to {d.dz_scale:.3g})")
    return "\n".join(lines) + "\n"


def markdown(d: Derivation, head: str) -> str:
    lines = [f"# The compact {d.title} backward, derived", "", head, "",
             "| step | identity | why | largest difference (relative) |",
             "|---|---|---|---|"]
    for s in d.steps:
        lines.append(f"| {s.tag} | `{s.formula}` | {s.why} | {s.max_diff:.2e} "
                     f"({_rel(s.relative)}) |")
    lines += ["", f"The staged pass's dZ and the compact code's differ by at most "
              f"{d.staged_vs_compact:.2e} (values up to {d.dz_scale:.3g}).", ""]
    return "\n".join(lines)


__all__ = ["CheckedStep", "Derivation", "derivable", "derive", "markdown", "staged_vs_compact",
           "text"]
