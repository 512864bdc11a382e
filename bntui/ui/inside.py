"""The stepper's views inside one step: the block's graph, one entry's arithmetic, and
the staged dZ beside the compact one — Rich text laid out from the engine's `graph`,
`entry` and `derive` modules (nothing here computes a number)."""

from __future__ import annotations

import numpy as np
from rich.text import Text

from bntui.engine import graph as block_graph
from bntui.engine.derive import staged_vs_compact
from bntui.engine.entry import Entry, explain
from bntui.engine.errors import BntuiError
from bntui.engine.network import Network
from bntui.engine.nodes import entry_index
from bntui.engine.sources import PassSources, reads
from bntui.engine.trace import Trace, TraceStep
from bntui.numbers import fmt

EXCERPT_ROWS, EXCERPT_COLS = 4, 6


def graph_text(network: Network, trace: Trace, step: TraceStep) -> Text:
    """The graph of the step's block: ▶ the step's node (lit), • the nodes it reads."""
    layer = step.layer if step.layer is not None else len(network.blocks)
    g = block_graph.block_graph(network, layer, trace.training)
    drawn = block_graph.rows(g, trace, step)
    name_w = max(len(r.name) for r in drawn) + 1
    shape_w = max(len(r.shape) for r in drawn) + 2
    value_w = max(len(r.value) for r in drawn) + 2
    t = Text()
    t.append(f"layer {layer}'s graph · ▶ this step · • what it reads · v: the grid\n",
             style="grey50")
    for r in drawn:
        t.append(r.lanes + "  ", style="cyan")
        style = "bold reverse" if r.lit else ("bold yellow" if r.marked else "")
        t.append(("▶ " if r.lit else "• " if r.marked else "  ") + r.name.ljust(name_w),
                 style=style)
        t.append(r.shape.ljust(shape_w), style="grey50")
        t.append(r.value.ljust(value_w))
        t.append(r.grad + "\n", style="yellow" if r.grad else "")
    consts = block_graph.text(g, trace, step)[-1]
    if consts.startswith("reads also"):
        t.append(consts, style="grey50")
    return t


def pick_default(step: TraceStep) -> tuple[int, ...]:
    """Where the drill-down starts on a step: its largest entry."""
    v = np.asarray(step.value, dtype=np.float64)
    if v.ndim == 0:
        return ()
    return tuple(int(k) for k in np.unravel_index(int(np.argmax(np.abs(v))), v.shape))


def clamp(step: TraceStep, cell: tuple[int, ...]) -> tuple[int, ...]:
    """`cell` moved into the step's shape (another step's tensor has other dimensions)."""
    shape = step.shape
    if not shape:
        return ()
    cell = tuple(cell) + (0,) * max(0, len(shape) - len(cell))
    cell = cell[-len(shape):] if len(cell) > len(shape) else cell
    return tuple(max(0, min(int(c), n - 1)) for c, n in zip(cell, shape, strict=True))


def _excerpt(full: np.ndarray, index: tuple, label: str) -> Text:
    """A few rows and columns of `full` around the entries `index` reads, those entries
    highlighted: the input in its own grid."""
    a = np.asarray(full, dtype=np.float64)
    t = Text()
    t.append(f"  {label}\n", style="bold")
    if a.ndim == 0:
        t.append(f"    {fmt(float(a))}\n", style="reverse")
        return t
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    mask = np.zeros(a.shape, dtype=bool)
    mask[index if index else ()] = True
    mask2 = mask.reshape(a2.shape)
    rows, cols = np.nonzero(mask2)
    r0 = max(0, int(rows.min()) - 1) if rows.size else 0
    c0 = max(0, int(cols.min()) - 1) if cols.size else 0
    r1, c1 = min(a2.shape[0], r0 + EXCERPT_ROWS), min(a2.shape[1], c0 + EXCERPT_COLS)
    t.append("         " + "".join(f"{j:>9} " for j in range(c0, c1)) + "\n", style="grey50")
    for i in range(r0, r1):
        t.append(f"    {i:>4} " if a.ndim == 2 else "         ", style="grey50")
        for j in range(c0, c1):
            cell = f"{fmt(float(a2[i, j])):>9} "
            t.append(cell, style="bold reverse yellow" if mask2[i, j] else "")
        more = a2.shape[1] - c1
        t.append(f" … {more} more" if more > 0 and i == r0 else "", style="grey50")
        t.append("\n")
    if a2.shape[0] > r1:
        t.append(f"         … {a2.shape[0] - r1} more rows\n", style="grey50")
    return t


def entry_text(network: Network, trace: Trace, y: np.ndarray, step: TraceStep,
               cell: tuple[int, ...]) -> tuple[Text, Entry | None]:
    """The drill-down of one entry: the formula with the entries named, then with their
    numbers, the value recomputed, and each input in its own grid."""
    t = Text()
    try:
        e = explain(trace, network, y, step, cell)
    except BntuiError as exc:
        t.append(str(exc), style="yellow")
        return t, None
    t.append(f"{e.label}  ", style="bold reverse")
    t.append("shift+arrows move · click a cell · i: close\n", style="grey50")
    t.append(e.indexed + "\n", style="bold")
    t.append(e.substituted + "\n")
    ok = e.error <= 1e-12
    t.append(f"recomputed from the formula {e.recomputed:.10g}; the layer computed "
             f"{e.value:.10g} (relative difference {e.error:.1e})\n",
             style="green" if ok else "bold red")
    ps = PassSources(trace, network, np.asarray(y))
    norm = network.blocks[step.layer - 1].norm if step.layer is not None else None
    source_step = step
    if step.name == "dA" and step.layer is not None:  # dA = dX of the layer above
        from dataclasses import replace

        source_step = replace(step, layer=step.layer + 1)
        norm = network.blocks[step.layer].norm
    for (source, pattern), inp in zip(reads(ps, source_step), e.inputs, strict=False):
        full, _ = ps.tensor(source, source_step.layer)
        idx, _ = entry_index(pattern, cell, getattr(norm, "group_size", 1))
        t.append_text(_excerpt(full, idx, inp.index))
    return t, e


def compact_line(network: Network, trace: Trace, step: TraceStep) -> Text:
    """At the dZ step of a normalised block in training mode: the compact formula beside
    this staged dZ, and how far apart they are (else empty)."""
    t = Text()
    if step.name != "dZ" or step.layer is None or not trace.training:
        return t
    norm = network.blocks[step.layer - 1].norm
    words = None if norm is None else norm.compact_words()
    if norm is None or words is None or not norm.FUSED:
        return t
    diff, scale = staged_vs_compact(network, trace, step.layer)
    t.append("compact  ", style="grey50")
    t.append(words.formula)
    t.append(f"   differs from this staged dZ by at most {diff:.1e} (values up to "
             f"{scale:.3g}) · d: the derivation", style="green" if diff <= 1e-12 * max(
                 scale, 1e-300) else "bold red")
    return t
