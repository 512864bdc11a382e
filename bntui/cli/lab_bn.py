"""`bntui lab bn`: the same network trained with and without BatchNorm, side by side."""

from __future__ import annotations

import argparse
from dataclasses import replace

from bntui.cli.commands import config_from_args
from bntui.cli.parser import int_at_least
from bntui.cli.render import table
from bntui.engine.config import RunConfig
from bntui.engine.jsonable import dumps
from bntui.engine.labs import chaos
from bntui.engine.labs import with_without_bn as lab
from bntui.numbers import CHAOS_NOTE, fmt, fmt_run

HELP = "with vs without BatchNorm: loss curves, pre-activations, a learning-rate sweep"
DESCRIPTION = (
    "Train the same architecture twice from the same initial Dense weights on the same "
    "batches: with BatchNorm on every hidden block, and with BatchNorm removed (a Dense bias "
    "on every block). Prints both loss curves, the spread of each hidden layer's "
    "pre-activation (Zbn with BN, Z without) over training, and a learning-rate sweep that "
    "shows where only the BN network still trains. Default setting: moons, "
    f"'{lab.LAB_DEFAULT.arch}', SGD lr {lab.LAB_DEFAULT.lr:g}, {lab.LAB_DEFAULT.steps} steps; "
    "the run flags change it."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("lab")
    g.add_argument("--lrs", metavar="LR,LR,...",
                   help="learning rates of the sweep (default "
                   f"{','.join(f'{x:g}' for x in lab.DEFAULT_LRS)})")
    g.add_argument("--sweep-steps", type=int_at_least("sweep steps", 1),
                   help="steps of each sweep run (default: --steps)")


def lab_config(args: argparse.Namespace, default: RunConfig) -> RunConfig:
    """The lab's own setting, with the run flags the user gave on top (a --preset
    replaces the setting; the lab's step count stays unless --steps is given)."""
    cfg = config_from_args(args, default=default)
    return cfg if args.steps is not None else replace(cfg, steps=default.steps)


def spread_cell(q: list[float], saturated: float) -> str:
    return f"{fmt(q[0])}…{fmt(q[-1])} {100 * saturated:.0f}%"


def run(args: argparse.Namespace) -> int:
    cfg = lab_config(args, lab.LAB_DEFAULT)
    lrs = lab.parse_lrs(args.lrs) if args.lrs is not None else list(lab.DEFAULT_LRS)
    result = lab.run_bn_lab(cfg, lrs, sweep_steps=args.sweep_steps)
    if args.json:
        print(dumps(result.to_dict()))
        return 0
    print(report(result))
    return 0


def report(r: lab.BnLabResult) -> str:
    c = r.config
    lr = f"{lab.effective_lr(c):g}"
    batch = "full batch" if c.batch_size is None else f"batches of {c.batch_size}"
    out = [
        f"With vs without BatchNorm — {c.dataset}, {c.optimizer} lr {lr}, {c.steps} steps, "
        f"{batch}, seed {c.seed}",
        f"  with BN:    {r.bn_arch}",
        f"  without BN: {r.plain_arch}  (a Dense bias on every block)",
        "  same initial Dense weights: "
        + ("yes, W bit-identical in every block" if r.weights_identical
           else f"copied over ({', '.join(r.copied)})")
        + "; the same batches in the same order",
        "",
        "loss (training mode) at the checkpoints",
    ]
    b, p = r.bn_run, r.plain_run
    marks = [s for s in lab.checkpoints(c.steps) if s > 0]
    rows = []
    for s in [1, *marks] if 1 not in marks else marks:
        cells = [str(s)]
        for run in (b, p):
            cells.append(fmt_run(run.loss[s - 1], run.chaotic_at(s)) if s <= len(run.loss)
                         else "—")
        rows.append(cells)
    rows.append(["last 10 % mean", *(fmt_run(run.final_loss, chaos.chaotic(run.final_move))
                                     for run in (b, p))])
    out.append(table(["step", "with BN", "without BN"], rows))
    for run in (b, p):
        if run.stopped:
            out.append(f"  {run.label}: {run.stopped}")
    out += ["", "pre-activation spread over training: 5 %…95 % quantiles, share saturated "
            "(slope < 5 % of its peak)"]
    steps = b.layers[0].steps if b.layers else []
    rows = []
    for lb, lp in zip(b.layers, p.layers, strict=True):
        for run, s in (("with BN", lb), ("without BN", lp)):
            cells = [str(s.layer), f"{run} ({s.name})"]
            cells += [spread_cell(q, sat) for q, sat in zip(s.quantiles, s.saturated,
                                                            strict=True)]
            cells += ["—"] * (len(steps) - len(s.quantiles))
            rows.append(cells)
    out.append(table(["layer", "network"] + [f"step {s}" for s in steps], rows))
    out += ["", f"learning-rate sweep: {r.sweep_steps} steps each, start → final loss "
            f"(chance ln K = {fmt(r.chance_loss)}; 'trains' ≤ {lab.TRAINS_BELOW:g} × ln K)"]
    rows = []
    for row in r.sweep:
        rows.append([f"{row.lr:g}",
                     f"{fmt(row.bn.start_loss)} → {fmt_run(row.bn.final_loss, row.bn.chaotic)}",
                     row.bn.verdict,
                     f"{fmt(row.plain.start_loss)} → "
                     f"{fmt_run(row.plain.final_loss, row.plain.chaotic)}",
                     row.plain.verdict, "← only BN" if row.bn_only else ""])
    out.append(table(["lr", "with BN", "verdict", "without BN", "verdict", "note"], rows))
    only = r.bn_only_lrs
    out.append("only the BN network trains at: "
               + (", ".join(f"{x:g}" for x in only) if only else "none of these rates"))
    if "≈" in "\n".join(out):
        out.append(CHAOS_NOTE)
    if any("edge" in (row.bn.verdict, row.plain.verdict) for row in r.sweep):
        out.append("edge: the same run, nudged in its 14th digit, gets the other verdict — "
                   "on another CPU it may fall either way")
    return "\n".join(out)
