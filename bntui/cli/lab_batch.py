"""`bntui lab batch`: what the batch size does to BatchNorm, in four demonstrations."""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from bntui.cli.lab_bn import lab_config
from bntui.cli.parser import int_at_least
from bntui.cli.render import table
from bntui.engine.jsonable import dumps
from bntui.engine.labs import batch_size as lab
from bntui.engine.labs.with_without_bn import effective_lr
from bntui.numbers import CHAOS_NOTE, fmt, fmt_run

HELP = "batch size: batch vs running statistics, batches of 2, train vs eval gap"
DESCRIPTION = (
    "Four demonstrations on networks trained by the engine: (a) batch statistics of a "
    "BatchNorm layer beside its running statistics; (b) with a batch of 2 every feature of "
    "Znorm is ±√(var/(var+ε)); (c) one sample's logits change with its batch mates in "
    "training mode and not in eval mode; (d) the gap between training and eval mode as the "
    "batch size shrinks, each size trained with that batch size. Default setting: moons, "
    f"'{lab.LAB_DEFAULT.arch}', {lab.LAB_DEFAULT.optimizer}, {lab.LAB_DEFAULT.steps} steps, "
    f"batches of {lab.DEFAULT_BATCH} for (a)–(c); the run flags change it."
)
SHOW_FEATURES = 8


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("lab")
    g.add_argument("--sizes", metavar="B,B,...",
                   help="batch sizes of (d), 'full' for the whole training set (default "
                   f"{','.join(lab.size_label(s) for s in lab.DEFAULT_SIZES)})")
    g.add_argument("--layer", type=int_at_least("layer", 1),
                   help="the BatchNorm layer to look at (default: the first)")
    g.add_argument("--sample", type=int_at_least("sample", 0),
                   help="the training sample of (c) (default 0)")


def run(args: argparse.Namespace) -> int:
    cfg = lab_config(args, lab.LAB_DEFAULT)
    sizes = lab.parse_sizes(args.sizes) if args.sizes is not None else list(lab.DEFAULT_SIZES)
    result = lab.run_batch_lab(cfg, sizes, layer=args.layer, sample=args.sample or 0)
    if args.json:
        print(dumps(result.to_dict()))
        return 0
    print(report(result))
    return 0


def _range(a: np.ndarray) -> str:
    return f"{fmt(float(a.min()))} … {fmt(float(a.max()))}"


def report(r: lab.BatchLabResult) -> str:
    c = r.config
    lr = f"{effective_lr(c):g}"
    out = [f"Batch size — {c.dataset}, '{c.arch}', {c.optimizer} lr {lr}, {c.steps} steps "
           f"with batches of {r.batch_size}, seed {c.seed}; BatchNorm of layer {r.layer}", ""]

    s = r.stats
    d = s.running_mean.shape[0]
    out.append(f"(a) batch statistics vs running statistics: {len(s.batch_mu)} batches of "
               f"{s.batch_size}")
    rows = [[str(j), fmt(s.running_mean[j]), _range(s.batch_mu[:, j]),
             fmt(s.running_var[j]), _range(s.batch_var[:, j])]
            for j in range(min(d, SHOW_FEATURES))]
    out.append(table(["feature", "running mean", "batch means", "running var",
                      "batch vars (biased)"], rows))
    if d > SHOW_FEATURES:
        out.append(f"… {d - SHOW_FEATURES} more features")
    out.append(f"mean |Zbn_train − Zbn_eval| over these batches: {fmt(s.mean_abs_zbn_diff)}")

    p = r.pair
    out += ["", f"(b) a batch of two (training samples {p.rows[0]} and {p.rows[1]}): "
            f"Znorm = ±√(var / (var + ε)), ε = {p.eps:g}"]
    d = p.Z.shape[1]
    rows = [[str(j), fmt(p.Z[0, j]), fmt(p.Z[1, j]), fmt(p.var[j]), fmt(p.Znorm[0, j]),
             fmt(p.Znorm[1, j]), fmt(p.expected[j]), fmt(p.Znorm_eval[0, j]),
             fmt(p.Znorm_eval[1, j])] for j in range(min(d, SHOW_FEATURES))]
    out.append(table(["feature", "Z₁", "Z₂", "var", "Znorm₁", "Znorm₂", "√(var/(var+ε))",
                      "eval Znorm₁", "eval Znorm₂"], rows))
    out.append(f"max | |Znorm| − √(var/(var+ε)) | = {p.max_error:.1e}: only the sign (which "
               "sample is larger) is left")

    o = r.sample
    counts = Counter(o.predictions_train)
    classes = ", ".join(f"class {k} ×{n}" for k, n in sorted(counts.items()))
    out += ["", f"(c) training sample {o.sample} (class {o.label}) in {len(o.logits_train)} "
            f"random batches of {o.batch_size}"]
    rows = [[f"logit {k}", _range(o.logits_train[:, k]), _range(o.logits_eval[:, k])]
            for k in range(o.logits_train.shape[1])]
    out.append(table(["", "training mode (min … max)", "eval mode (min … max)"], rows))
    out.append(f"training mode: logits vary by up to {fmt(o.spread_train)}, predicted "
               f"{classes}; eval mode: spread {fmt(o.spread_eval)}, class "
               f"{o.prediction_eval} every time")

    out += ["", f"(d) training vs eval mode by batch size (each network trained {c.steps} steps "
            "with that batch size, both modes on the same batches)"]
    def pct(g: lab.SizeGap, name: str) -> str:
        x = getattr(g, name)
        if x is None:
            return "—"
        return f"≈{100 * x:.0f}%" if g.chaotic(name) else f"{100 * x:.1f}%"

    rows = [[g.label, fmt_run(g.loss_train_mode, g.chaotic("loss_train_mode")),
             fmt_run(g.loss_eval_mode, g.chaotic("loss_eval_mode")),
             pct(g, "acc_train_mode"), pct(g, "acc_eval_mode"), pct(g, "flipped"),
             fmt_run(g.zbn_gap, g.chaotic("zbn_gap")), pct(g, "val_accuracy")]
            for g in r.gaps]
    out.append(table(["batch", "loss train", "loss eval", "acc train", "acc eval", "flipped",
                      f"|Zbn_train − Zbn_eval| (layer {r.layer})", "val acc (eval)"], rows))
    for g in r.gaps:
        if g.stopped:
            out.append(f"  batch {g.label}: {g.stopped}")
    if any(g.moves and any(g.chaotic(n) for n in g.moves) for g in r.gaps):
        out.append(CHAOS_NOTE)
    return "\n".join(out)
