"""`bntui lab norms`: BatchNorm, LayerNorm, GroupNorm, RMSNorm and none, side by side."""

from __future__ import annotations

import argparse

from bntui.cli.lab_bn import lab_config
from bntui.cli.parser import int_at_least
from bntui.cli.render import table
from bntui.engine.arch import parse_arch
from bntui.engine.jsonable import dumps
from bntui.engine.labs import norms as lab
from bntui.engine.labs.with_without_bn import TRAINS_BELOW, parse_lrs
from bntui.numbers import CHAOS_NOTE, fmt, fmt_run

HELP = "which normalization: BN, LayerNorm, GroupNorm, RMSNorm and none, side by side"
DESCRIPTION = (
    "Five variants of one network, differing only in the normalization of the hidden "
    "blocks (BatchNorm, LayerNorm, GroupNorm, RMSNorm, none), from the same initial Dense "
    "weights on the same batches. (a) one sample put in 20 random batches: its normalized "
    "output moves with its batch mates under BatchNorm only; (b) a batch of 2: BatchNorm's "
    "Znorm collapses to ±1, the others do not; (c) training vs eval mode: a gap for "
    "BatchNorm only; (d) the five loss curves and a learning-rate sweep. GroupNorm takes "
    "the largest of 4, 2, 1 groups that divides each width (--groups sets it). Default "
    f"setting: {lab.LAB_DEFAULT.dataset}, '{lab.LAB_DEFAULT.arch}', SGD lr "
    f"{lab.LAB_DEFAULT.lr:g}, {lab.LAB_DEFAULT.steps} steps, full batch; the run flags "
    "change it."
)
SHOW_FEATURES = 6


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("lab")
    g.add_argument("--lrs", metavar="LR,LR,...",
                   help="learning rates of the sweep (default "
                   f"{','.join(f'{x:g}' for x in lab.DEFAULT_LRS)})")
    g.add_argument("--sweep-steps", type=int_at_least("sweep steps", 1),
                   help="steps of each sweep run (default: --steps)")
    g.add_argument("--groups", type=int_at_least("groups", 1, lab.MAX_GROUPS),
                   help="GroupNorm's groups in every hidden block (default: the largest of "
                   "4, 2, 1 dividing its width)")
    g.add_argument("--sample", type=int_at_least("sample", 0),
                   help="the training sample of (a) (default 0)")


def run(args: argparse.Namespace) -> int:
    cfg = lab_config(args, lab.LAB_DEFAULT)
    lrs = parse_lrs(args.lrs) if args.lrs is not None else list(lab.DEFAULT_LRS)
    result = lab.run_norms_lab(cfg, lrs, sweep_steps=args.sweep_steps, groups=args.groups,
                               sample=args.sample or 0)
    if args.json:
        print(dumps(result.to_dict()))
        return 0
    print(report(result))
    return 0


def name(kind: str) -> str:
    return lab.LABELS[kind]


def _layers(values: list[float] | None, style=fmt) -> list[str]:
    return ["—"] if values is None else [style(v) for v in values]


def report(r: lab.NormsLabResult) -> str:
    c, p = r.config, r.probes
    batch = "full batch" if c.batch_size is None else f"batches of {c.batch_size}"
    out = [
        f"Which normalization — {c.dataset}, {c.optimizer} lr {lab.effective_lr(c):g}, "
        f"{c.steps} steps, {batch}, seed {c.seed}",
        *(f"  {name(k) + ':':<11}{a}" for k, a in r.archs.items()),
        "  same initial Dense weights: "
        + ("yes, W and b bit-identical in all five" if r.weights_identical
           else f"copied over ({', '.join(r.copied)})")
        + "; the same batches in the same order",
    ]
    if parse_arch(c.arch).blocks[-1].norm == "bn":
        out.append("  the output block has a BatchNorm in all five (as --arch says): every "
                   "variant's logits depend on the batch")
    if 1 in r.groups:
        out.append("  (GroupNorm with 1 group is LayerNorm: no width divisible by 2 or 4)")
    n_hidden = len(p.spreads[0].spread)
    heads = [f"layer {i + 1}" for i in range(n_hidden)]

    out += ["", f"(a) training sample {p.sample} (class {p.label}) in {p.batches} random "
            f"batches of {p.batch_size}, training mode: spread (max − min over the batches) "
            "of its normalized output"]
    rows = [[name(s.kind), s.names[0], *_layers(s.spread), fmt(s.logits_spread),
             "yes" if s.identical else "no"] for s in p.spreads]
    out.append(table(["variant", "output", *heads, "logits", "bit-identical"], rows))

    out += ["", f"(b) a batch of two (training rows {p.pair[0]} and {p.pair[1]}), training "
            f"mode: share of |Znorm| within {100 * lab.NEAR_ONE:g} % of 1, and the median "
            "|Znorm|"]
    rows = [[name(s.kind), *(_layers(s.near_one, lambda v: f"{100 * v:.0f}%")),
             *_layers(s.median_abs)] for s in p.pairs]
    rows = [row + ["—"] * (1 + 2 * n_hidden - len(row)) for row in rows]
    out.append(table(["variant", *(f"±1 {h}" for h in heads),
                      *(f"median {h}" for h in heads)], rows))
    bn = p.pairs[0]
    if bn.Znorm is not None and bn.max_error is not None:
        first = ", ".join(fmt(v) for v in bn.Znorm[0][:SHOW_FEATURES])
        out.append(f"BatchNorm's Znorm of the first row, layer 1: {first}"
                   + (" …" if len(bn.Znorm[0]) > SHOW_FEATURES else ""))
        out.append(f"every |Znorm| = √(var/(var+ε)) to {bn.max_error:.1e}: only which of the "
                   "two samples is larger is left")

    out += ["", f"(c) training vs eval mode after training, over the training set in batches "
            f"of {p.batch_size}: mean |output_train − output_eval|"]
    rows = [[name(g.kind), *_layers(g.gap), fmt(g.max_gap), fmt(g.logits_gap),
             f"{100 * g.flipped:.1f}%"] for g in p.gaps]
    out.append(table(["variant", *heads, "largest", "logits", "flipped"], rows))

    out += ["", f"(d) training loss at lr {lab.effective_lr(c):g} (the same batches)"]
    marks = sorted({1, *(round(k * c.steps / 4) for k in range(1, 5))})
    rows = []
    for s in marks:
        rows.append([str(s), *(fmt_run(cv.loss[s - 1], cv.chaotic_at(s))
                               if s <= len(cv.loss) else "—" for cv in r.curves)])
    rows.append(["last 10 % mean", *(fmt_run(cv.final_loss, cv.chaotic) for cv in r.curves)])
    out.append(table(["step", *(name(cv.kind) for cv in r.curves)], rows))
    for cv in r.curves:
        if cv.stopped:
            out.append(f"  {name(cv.kind)}: {cv.stopped}")

    out += ["", f"learning-rate sweep: {r.sweep_steps} steps each, final loss and verdict "
            f"(chance ln K = {fmt(r.chance_loss)}; 'trains' ≤ {TRAINS_BELOW:g} × ln K)"]
    rows = [[f"{row.lr:g}", *(f"{fmt_run(cell.final_loss, cell.chaotic)} {cell.verdict}"
                              for cell in row.cells.values())] for row in r.sweep]
    out.append(table(["lr", *(name(k) for k in lab.KINDS)], rows))
    out.append("trains at: " + "; ".join(
        f"{name(k)} {', '.join(f'{x:g}' for x in r.trains_at(k)) or 'none'}"
        for k in lab.KINDS))
    text = "\n".join(out)
    if "≈" in text:
        out.append(CHAOS_NOTE)
    if any(cell.verdict == "edge" for row in r.sweep for cell in row.cells.values()):
        out.append("edge: the same run, nudged in its 14th digit, gets the other verdict — "
                   "on another CPU it may fall either way")
    return "\n".join(out)
