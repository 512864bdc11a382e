"""`bntui lab health`: per-layer histograms, saturated and dead units, update ratios and
the first tensor that turned NaN or infinite."""

from __future__ import annotations

import argparse

from bntui.cli.commands import config_from_args
from bntui.cli.parser import int_at_least
from bntui.cli.render import table
from bntui.engine.errors import BntuiError
from bntui.engine.jsonable import dumps
from bntui.engine.labs.health import (
    DEFAULT_STEPS,
    MAX_BINS,
    HealthReport,
    Histogram,
    LayerHealth,
    run_health,
)
from bntui.numbers import fmt

HELP = "layer health: histograms, saturated/dead units, update ratios, first NaN"
DESCRIPTION = (
    "Train for --steps (200), then look at every layer on the whole training set: "
    "histograms of Z, the normalization's output (Zbn, Zln, Zgn, Zrms) and A, the share "
    "of saturated sigmoid/tanh values (A < 0.01 or "
    "> 0.99; |A| > 0.99 for tanh) and the units stuck there on ≥ 99 % of samples, dead "
    "ReLUs (pre-activation ≤ 0 for every sample), each parameter's update-to-data ratio "
    "‖ΔW‖/‖W‖ for one more step (≈ 1e-3 is healthy), and the first tensor of a pass that "
    "holds a NaN or an infinity.  Try --optimizer sgd --lr 1e200 to see one."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layer", type=int_at_least("layer", 1),
                   help="also draw the histograms of this layer as text")
    p.add_argument("--bins", type=int_at_least("bins", 2, MAX_BINS), default=20,
                   help="histogram bins (20)")


def _norm_range(lay: LayerHealth) -> str:
    """The range of the block's normalization output, named when it is not BatchNorm's."""
    name = lay.pre_name
    if name == "Z":
        return ""
    return ("" if name == "Zbn" else f"{name} ") + _range(lay.hists[name])


def _range(h: Histogram | None) -> str:
    if h is None:
        return ""
    if h.min is None:
        return "all non-finite"
    text = f"{fmt(h.min)} … {fmt(h.max)}"  # type: ignore[arg-type]
    return text + (f" ({h.nonfinite} bad)" if h.nonfinite else "")


def _units(units: list[int] | None, width: int) -> str:
    if units is None:
        return "—"
    if not units:
        return f"0/{width}"
    shown = ",".join(str(u) for u in units[:6]) + ("…" if len(units) > 6 else "")
    return f"{len(units)}/{width} ({shown})"


def bars(h: Histogram, width: int = 40) -> list[str]:
    """A text histogram: one line per bin, `edge  count  ████`."""
    if not h.counts:
        return [f"  {h.name}: no finite value"]
    top = max(h.counts) or 1
    lines = [f"  {h.name}  mean {fmt(h.mean)}  std {fmt(h.std)}"]  # type: ignore[arg-type]
    for left, count in zip(h.edges, h.counts, strict=False):
        lines.append(f"  {fmt(left):>9}  {count:>6}  " + "█" * round(width * count / top))
    return lines


def print_report(r: HealthReport, layer: int | None) -> None:
    print(f"layer health of {r.network} on {r.dataset} ({r.samples} training samples), "
          f"after {r.steps} step{'s' if r.steps != 1 else ''} of {r.optimizer}")
    if r.stopped:
        print(f"note: {r.stopped}")
    rows = []
    for lay in r.layers:
        sat = "—" if lay.saturation is None else f"{100 * lay.saturation:.1f} %"
        rows.append([str(lay.layer), lay.activation, str(lay.width), _range(lay.hists["Z"]),
                     _norm_range(lay), _range(lay.hists.get("A")), sat,
                     _units(lay.stuck_units, lay.width), _units(lay.dead_units, lay.width)])
    only_bn = all(lay.pre_name in ("Z", "Zbn") for lay in r.layers)
    print(table(["layer", "activation", "width", "Z range",
                 "Zbn range" if only_bn else "norm output range", "A range",
                 "saturated", "stuck units", "dead ReLUs"], rows))
    print()
    print("update-to-data ratio ‖ΔW‖/‖W‖ for one more step (rule of thumb ≈ 1e-3)")
    print(table(["param", "‖W‖", "‖ΔW‖", "ratio", "verdict"],
                [[u.key, fmt(u.norm), fmt(u.update_norm),
                  "—" if u.ratio is None else fmt(u.ratio), u.verdict] for u in r.updates]))
    if any(u.note for u in r.updates):
        print(f"note: {next(u.note for u in r.updates if u.note)}")
    print()
    nf = r.first_nonfinite
    print("first non-finite tensor: " + (
        nf.describe() if nf else "none (every tensor of this pass and of one more step is "
        "finite)"))
    if layer is not None:
        if layer > len(r.layers):
            raise BntuiError(f"--layer {layer}: the network has layers 1–{len(r.layers)}")
        print()
        print(f"histograms of layer {layer}")
        for h in r.layer(layer).hists.values():
            print("\n".join(bars(h)))


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    report = run_health(config, steps=args.steps if args.steps is not None else DEFAULT_STEPS,
                        bins=args.bins)
    if args.layer is not None and args.layer > len(report.layers):
        raise BntuiError(f"--layer {args.layer}: the network has layers 1–{len(report.layers)}")
    if args.json:
        print(dumps(report.to_dict()))
    else:
        print_report(report, args.layer)
    return 0
