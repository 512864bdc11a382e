"""Handouts: a whole walkthrough of one pass as a Markdown or standalone HTML document.

`bntui walk --format md|html` renders the trace the stepper shows — every step in order,
with its phase, layer, tensor name, shape, formula, one-line explanation, the tensor
itself when it is small (the top-left corner and its statistics when it is not) and,
with `--check`, each gradient's relative errors — for a teacher to hand out to a class.
The HTML page is one file: inline style, no script, nothing loaded from elsewhere.

This module only lays out what the engine computed (`Trace`, `TraceStep`); it computes no
math of its own.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bntui.engine.trace import Trace, TraceStep
from bntui.numbers import fmt

if TYPE_CHECKING:
    from bntui.engine.session import Session

GOOD, FAIR = 1e-7, 1e-4  # the stepper's green and yellow thresholds


@dataclass(frozen=True)
class HandoutInfo:
    """What the header of a handout says about the run."""

    dataset: str  # e.g. "moons: 160 train / 40 validation, 2 features, 2 classes"
    network: str  # e.g. "2 → 16 BN relu → 2 BN softmax (370 parameters)"
    batch: str  # e.g. "16 samples (the first of the training set)"
    mode: str  # "training (batch statistics)" | "eval (running statistics)"
    trained: str  # e.g. "0 steps (at initialisation), seed 0"
    command: str  # the command that made it
    # each block's normalization, e.g. "layer 1 LayerNorm(8, eps=1e-05)"; "" leaves the
    # row out
    normalization: str = ""


def _header_rows(info: HandoutInfo, trace: Trace) -> list[tuple[str, str]]:
    """The (key, value) rows of a handout's header table."""
    rows = [("dataset", info.dataset), ("network", info.network)]
    if info.normalization:
        rows.append(("normalization", info.normalization))
    return [*rows, ("batch", info.batch), ("mode", info.mode), ("trained", info.trained),
            ("loss", _loss_line(trace)), ("steps of the pass", str(len(trace.steps)))]


def check_status(rel: float | None) -> str:
    if rel is None:
        return "not judged"
    return "good" if rel < GOOD else "fair" if rel < FAIR else "bad"


def _shape(step: TraceStep) -> str:
    return " × ".join(str(d) for d in step.shape) or "scalar"


def _grid(value: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, bool, bool]:
    """The part of a tensor shown (2-D), and whether rows / columns were cut."""
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    return a[:rows, :cols], a.shape[0] > rows, a.shape[1] > cols


def _corner(value: np.ndarray, rows: int, cols: int, step: TraceStep) -> str:
    """`top-left 16 × 8 of 160 × 16; ` when the tensor is cut, else nothing."""
    r = value.shape[0] if value.ndim == 2 else 1
    if r <= rows and value.shape[-1] <= cols:
        return ""
    return f"top-left {min(r, rows)} × {min(cols, value.shape[-1])} of {_shape(step)}; "


def _stats_text(step: TraceStep) -> str:
    st = step.stats()
    return " · ".join(f"{k} {fmt(st[k])}" for k in ("mean", "std", "min", "max"))


def _checks(step: TraceStep) -> list[tuple[str, float | None, str]]:
    return [(k, v, check_status(v)) for k, v in step.checks.items()]


def _title(trace: Trace, info: HandoutInfo) -> str:
    return f"bntui walkthrough: {info.network}"


def _loss_line(trace: Trace) -> str:
    return f"{trace.loss:.6g}"


# Markdown --------------------------------------------------------------------------------
_MD_SPECIAL = "\\`*_[]<>|#"


def md_text(text: str) -> str:
    """Plain text with Markdown's special characters escaped."""
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in text)


def md_code(text: str) -> str:
    """A code span that survives backticks inside."""
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_table(step: TraceStep, rows: int, cols: int) -> list[str]:
    shown, more_rows, more_cols = _grid(step.value, rows, cols)
    n_cols = shown.shape[1]
    vector = np.asarray(step.value).ndim == 1
    head = ["" if not vector else " "] + [str(j) for j in range(n_cols)] + (
        ["…"] if more_cols else [])
    out = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for i, row in enumerate(shown):
        cells = [" " if vector else str(i)] + [fmt(float(v)) for v in row] + (
            ["…"] if more_cols else [])
        out.append("| " + " | ".join(cells) + " |")
    if more_rows:
        out.append("| ⋮ | " + " | ".join("⋮" for _ in range(len(head) - 1)) + " |")
    return out


def _md_step(step: TraceStep, total: int, rows: int, cols: int) -> list[str]:
    out = [f"### {step.index + 1}/{total} · {step.where} · {step.kind} · "
           f"{md_code(step.name)} ({_shape(step)})", ""]
    out += [f"Formula: {md_code(step.formula)}", "", md_text(step.explanation), ""]
    value = np.asarray(step.value)
    if value.ndim == 0:
        out += [f"Value: **{fmt(float(value))}**", ""]
    else:
        out += [md_text(_corner(value, rows, cols, step) + _stats_text(step)), ""]
        out += [*_md_table(step, rows, cols), ""]
    if step.checks:
        out.append("Gradient check (relative error): " + "; ".join(
            f"vs {k} {'—' if v is None else f'{v:.2e}'} ({s})" for k, v, s in _checks(step)))
        out.append("")
    for note in step.notes:
        out += [f"> Note: {md_text(note)}", ""]
    return out


def markdown(trace: Trace, info: HandoutInfo, steps: Sequence[TraceStep] | None = None,
             rows: int = 8, cols: int = 8) -> str:
    """The walkthrough as Markdown: a header, then each step in the order of the pass."""
    steps = trace.steps if steps is None else steps
    total = len(trace.steps)
    out = [f"# {md_text(_title(trace, info))}", ""]
    out += ["| | |", "|---|---|"]
    for key, val in _header_rows(info, trace):
        out.append(f"| {key} | {md_text(val)} |")
    out += ["", f"Made with {md_code(info.command)}. Tensors are batch-first: one row per "
            "sample. Rows and columns count from 0; numbers have 4 significant digits.", ""]
    phase = None
    for step in steps:
        if step.phase != phase:
            phase = step.phase
            out += [f"## {'Forward' if phase == 'forward' else 'Backward'} pass", ""]
        out += _md_step(step, total, rows, cols)
    return "\n".join(out).rstrip() + "\n"


# HTML ------------------------------------------------------------------------------------
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.5rem; } h2 { margin-top: 2.5rem; border-bottom: 2px solid #ccc; }
h3 { font-size: 1.05rem; margin: 1.8rem 0 0.3rem; }
code, .formula { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.formula { background: #f4f4f6; padding: 0.3rem 0.6rem; display: inline-block;
           border-radius: 4px; }
.why { color: #444; margin: 0.3rem 0; } .stats { color: #666; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.4rem 0; }
table.info td { padding: 0.1rem 0.8rem 0.1rem 0; }
table.tensor td, table.tensor th { font-family: ui-monospace, monospace; font-size: 0.85rem;
       padding: 0.1rem 0.45rem; text-align: right; border: 1px solid #e2e2e2; }
table.tensor th { color: #888; font-weight: normal; background: #fafafa; }
.good { color: #1a7f37; } .fair { color: #9a6700; } .bad { color: #cf222e; }
.note { border-left: 3px solid #9a6700; padding-left: 0.6rem; color: #555; }
@media print { h3 { break-after: avoid; } table { break-inside: avoid; } }
"""


def _shade(v: float, scale: float) -> str:
    """A light red (positive) or blue (negative) background by |v| / max|tensor|."""
    if not np.isfinite(v) or scale == 0:
        return ""
    t = min(1.0, abs(v) / scale)
    light = int(255 - 110 * t)
    color = f"rgb(255,{light},{light})" if v >= 0 else f"rgb({light},{light},255)"
    return f' style="background:{color}"'


def _html_table(step: TraceStep, rows: int, cols: int) -> list[str]:
    shown, more_rows, more_cols = _grid(step.value, rows, cols)
    a = np.asarray(step.value, dtype=np.float64)
    finite = a[np.isfinite(a)]
    scale = float(np.max(np.abs(finite))) if finite.size else 0.0
    vector = a.ndim == 1
    out = ['<table class="tensor">', "<tr><th></th>" + "".join(
        f"<th>{j}</th>" for j in range(shown.shape[1])) + ("<th>…</th>" if more_cols else "")
        + "</tr>"]
    for i, row in enumerate(shown):
        cells = "".join(f"<td{_shade(float(v), scale)}>{html.escape(fmt(float(v)))}</td>"
                        for v in row)
        out.append(f"<tr><th>{'' if vector else i}</th>{cells}"
                   + ("<td>…</td>" if more_cols else "") + "</tr>")
    if more_rows:
        out.append("<tr><th>⋮</th>" + "<td>⋮</td>" * (shown.shape[1] + more_cols) + "</tr>")
    out.append("</table>")
    return out


def _html_step(step: TraceStep, total: int, rows: int, cols: int) -> list[str]:
    e = html.escape
    out = [f'<section id="step-{step.index + 1}">',
           f"<h3>{step.index + 1}/{total} · {e(step.where)} · {e(step.kind)} · "
           f"<code>{e(step.name)}</code> ({e(_shape(step))})</h3>",
           f'<div class="formula">{e(step.formula)}</div>',
           f'<p class="why">{e(step.explanation)}</p>']
    value = np.asarray(step.value)
    if value.ndim == 0:
        out.append(f"<p>Value: <strong>{e(fmt(float(value)))}</strong></p>")
    else:
        lead = _corner(value, rows, cols, step)
        out.append(f'<p class="stats">{e(lead + _stats_text(step))}</p>')
        out += _html_table(step, rows, cols)
    if step.checks:
        parts = [f'vs {e(k)} <span class="{s}">{"—" if v is None else f"{v:.2e}"} ({s})</span>'
                 for k, v, s in _checks(step)]
        out.append("<p>Gradient check (relative error): " + "; ".join(parts) + "</p>")
    for note in step.notes:
        out.append(f'<p class="note">Note: {e(note)}</p>')
    out.append("</section>")
    return out


def html_page(trace: Trace, info: HandoutInfo, steps: Sequence[TraceStep] | None = None,
              rows: int = 8, cols: int = 8) -> str:
    """The walkthrough as one standalone HTML page (inline style, no scripts)."""
    e = html.escape
    steps = trace.steps if steps is None else steps
    total = len(trace.steps)
    title = _title(trace, info)
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{e(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
           f"<h1>{e(title)}</h1>", '<table class="info">']
    for key, val in _header_rows(info, trace):
        out.append(f"<tr><td><strong>{e(key)}</strong></td><td>{e(val)}</td></tr>")
    out += ["</table>",
            f"<p>Made with <code>{e(info.command)}</code>. Tensors are batch-first: one row "
            "per sample. Rows and columns count from 0; numbers have 4 significant digits; "
            "cells are shaded red (positive) and blue (negative) by size.</p>"]
    phase = None
    for step in steps:
        if step.phase != phase:
            phase = step.phase
            out.append(f"<h2>{'Forward' if phase == 'forward' else 'Backward'} pass</h2>")
        out += _html_step(step, total, rows, cols)
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


# the header -----------------------------------------------------------------------------
def info_for(session: Session, trace: Trace, command: str) -> HandoutInfo:
    """The header of a handout of `trace`, recorded from `session` by `command` (the
    command line that made it, or what the app says of itself)."""
    ds, net, cfg, steps = session.dataset, session.network, session.config, session.step_count
    n = trace.batch_size
    whole = n >= ds.n_train
    return HandoutInfo(
        dataset=(f"{ds.name}: {ds.n_train} train / {ds.n_val} validation, "
                 f"{ds.n_features} features, {ds.n_classes} classes ({ds.scaling})"),
        network=f"{net.describe()} ({net.n_params():,} parameters)",
        batch=f"{n} samples" + (" (the whole training set)" if whole
                                else " (the first of the training set)"),
        mode=(("training (batch statistics)" if trace.training
               else "eval (running statistics)") if net.batchnorms()
              else "training" if trace.training
              else "eval (the same as training: no BatchNorm, no running statistics)"),
        trained=(f"{steps:,} steps of {cfg.optimizer}" if steps else
                 "0 steps (at initialisation)") + f", seed {cfg.seed}, {cfg.dtype}",
        command=command,
        normalization="; ".join(f"layer {b.index} {b.norm.describe()}" for b in net.blocks
                                if b.norm is not None) or "none",
    )


def handout(form: str, trace: Trace, info: HandoutInfo,
            steps: Sequence[TraceStep] | None = None, rows: int = 16, cols: int = 8) -> str:
    """The document (`form` "md" or "html") for these steps of `trace`."""
    render = markdown if form == "md" else html_page
    return render(trace, info, steps, rows=rows, cols=cols)
