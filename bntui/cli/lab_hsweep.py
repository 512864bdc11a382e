"""`bntui lab hsweep`: numerical-gradient error against h, float64 beside float32."""

from __future__ import annotations

import argparse
import math

from bntui.cli.commands import config_from_args
from bntui.cli.parser import int_at_least
from bntui.cli.render import table
from bntui.engine.errors import BntuiError
from bntui.engine.jsonable import dumps
from bntui.engine.labs.hsweep import DEFAULT_ARCH, h_sweep, parse_hs
from bntui.numbers import fmt_err

HELP = "the h sweep: numerical-gradient error against h, float64 beside float32"
DESCRIPTION = (
    "The centred difference (L(w+h) − L(w−h)) / 2h against backprop's gradient, for h from "
    "1e-1 down to 1e-12, in float64 and in float32 (same weights, same rows).  Large h: "
    "truncation error, shrinking like h².  Small h: rounding error, growing like u/h.  The "
    f"bottom of the V is the best h.  Default network: {DEFAULT_ARCH} (smooth; --arch "
    "changes it), untrained."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hs", metavar="LIST",
                   help="values of h, comma-separated (default: 1e-1 … 1e-12, half a decade "
                   "apart)")
    p.add_argument("--rows", type=int_at_least("rows", 2), default=32,
                   help="training rows in the loss (32)")
    p.add_argument("--entries", type=int_at_least("entries", 1), default=12,
                   help="sampled entries per parameter tensor (12)")


def run(args: argparse.Namespace) -> int:
    if args.dtype is not None:
        raise BntuiError("--dtype does not apply to the h sweep: it runs float64 and float32 "
                         "side by side")
    hs = parse_hs(args.hs)
    config = config_from_args(args)
    if args.arch is None and args.preset is None:
        config = config.with_overrides(arch=DEFAULT_ARCH)
    sweep = h_sweep(config, hs, samples=args.rows, entries=args.entries)
    if args.json:
        print(dumps(sweep.to_dict()))
        return 0
    print(f"h sweep of {sweep.network} on {sweep.samples} rows of {sweep.dataset}: "
          f"{sweep.entries} gradient entries of {len(sweep.tensors)} tensors, "
          "max relative error against backprop (float64)")
    best = {d: sweep.best(d) for d in sweep.errors}
    rounding = {d: sweep.rounding(d) for d in sweep.errors}
    rows = []
    for i, h in enumerate(sweep.hs):
        cells = [f"{h:.1e}"]
        for d in sweep.errors:
            e = sweep.errors[d][i]
            text = f"≈{e:.0e}" if rounding[d][i] and math.isfinite(e) else fmt_err(e)
            cells.append(text + (" ◀ best" if h == best[d][0] else ""))
        rows.append(cells)
    print(table(["h", *(f"error {d}" for d in sweep.errors)], rows))
    print()
    for d, (h, e) in best.items():
        print(f"best h {d}: {h:.1e} (error ≈{e:.0e}; ∛(3u) predicts ≈ "
              f"{sweep.predicted_best_h(d):.0e})")
    print("≈ mostly rounding (from the best h down): another CPU rounds the two losses "
          "differently, so only the order of magnitude carries over")
    for note in sweep.notes:
        print(f"note: {note}")
    return 0
