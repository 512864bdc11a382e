"""`bntui lab race`: several optimizers from the same start, their losses and states."""

from __future__ import annotations

import argparse

import numpy as np

from bntui.cli.commands import config_from_args
from bntui.cli.parser import int_at_least
from bntui.cli.render import compact, table
from bntui.engine.errors import BntuiError
from bntui.engine.jsonable import dumps
from bntui.engine.labs.race import SLOT_LABELS, RaceResult, parse_lrs, parse_optimizers, race
from bntui.engine.optimizers import slot_summary
from bntui.numbers import fmt

HELP = "optimizer race: several optimizers from the same start, losses and state"
DESCRIPTION = (
    "Train the same network (identical initial weights, identical batch order) once per "
    "optimizer (default: all six, each at its own default learning rate) and compare "
    "their losses; then show each optimizer's state for one parameter: the velocity, "
    "Adagrad's G, RMSprop's s, Adam's m, v, m̂, v̂ and the bias factors 1 − β₁ᵗ, 1 − β₂ᵗ."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--optimizers", metavar="LIST",
                   help="comma-separated, e.g. adam,sgd,momentum (default: all six)")
    p.add_argument("--lrs", metavar="LIST",
                   help="learning rates per optimizer, e.g. sgd=0.5,adam=0.003 "
                   "(default: --lr for all, else each one's own)")
    p.add_argument("--param", metavar="KEY",
                   help="parameter whose optimizer state is shown, e.g. 2.W (default: 1.W)")
    p.add_argument("--every", type=int_at_least("every", 1), default=None, metavar="N",
                   help="print the loss table every N steps (default: 5 rows)")


def _lrs(args: argparse.Namespace, names: list[str]) -> dict[str, float]:
    lrs = {n: args.lr for n in names} if args.lr is not None else {}
    lrs.update(parse_lrs(args.lrs))
    for name in lrs:
        if name not in names:
            raise BntuiError(f"--lrs names '{name}', which is not in the race "
                             f"({', '.join(names)})")
    return lrs


def _state_lines(result: RaceResult, key: str) -> list[str]:
    lines = []
    for r in result.racers:
        state = r.state(key)
        parts = []
        for name, value in state.items():
            label = SLOT_LABELS.get(name, name)
            if isinstance(value, np.ndarray) and value.ndim > 0:
                parts.append(f"{label} rms {fmt(slot_summary(name, value).rms)}")
            else:
                parts.append(f"{label} = {fmt(float(value))}")
        lines.append(f"  {r.optimizer:<9} " + ("; ".join(parts) if parts else
                                                 "(no state: plain SGD keeps none)"))
    return lines


def run(args: argparse.Namespace) -> int:
    names = parse_optimizers(args.optimizers)
    lrs = _lrs(args, names)
    config = config_from_args(args)
    result = race(config, names, steps=args.steps, lrs=lrs)
    key = args.param or result.param_keys[0]
    if key not in result.param_keys:
        raise BntuiError(f"--param {key}: not a parameter; one of {', '.join(result.param_keys)}")
    if args.json:
        out = result.to_dict(key)
        out["param"] = key
        out["state"] = {r.optimizer: {n: (v.tolist() if isinstance(v, np.ndarray) else float(v))
                                      for n, v in r.state(key).items()}
                        for r in result.racers}
        print(dumps(out))
        return 0
    print(f"optimizer race on {result.dataset}: {result.network}, batch {result.batch_size}, "
          f"seed {result.seed}, {result.steps} steps, the same start for all")
    # update u computes its batch loss, then changes the weights: loss[u − 1] is the loss
    # update u started from (update 1: the common start); after the last, t = steps
    n = max((len(r.loss) for r in result.racers), default=0)
    every = args.every or max(1, -(-(n - 1) // 4))  # about 5 rows
    updates = sorted({*range(1, n + 1, every), n}) if n else []
    head = ["update"] + [r.optimizer for r in result.racers]
    rows = [[str(u)] + [fmt(r.loss[u - 1]) if u <= len(r.loss) else "—"
                        for r in result.racers] for u in updates]
    print(f"batch loss at each update 1 … {n}, computed before it changes the weights "
          "(update 1: the same start for all)")
    print(table(head, rows))
    print()
    print(table(["rank", "optimizer", "learning rate", "final loss", "stopped"],
                [[str(k + 1), r.optimizer, fmt(r.lr),
                  fmt(r.final_loss) if r.final_loss is not None else "—",
                  "yes" if r.stopped else ""] for k, r in enumerate(result.ranking())]))
    for r in result.racers:
        if r.stopped:
            print(f"note: {r.optimizer}: {r.stopped}")
    print()
    t = max((r.session.optimizer.t for r in result.racers), default=0)
    print(f"optimizer state of {key} after t = {t} updates")
    print("\n".join(_state_lines(result, key)))
    adam = next((r for r in result.racers if r.optimizer == "adam"), None)
    if adam is not None and "m_hat" in adam.state(key):
        st = adam.state(key)
        print()
        print(f"adam m̂ = m / (1 − β₁ᵗ) of {key}, first entries "
              f"(t = {int(st['t'])}, 1 − β₁ᵗ = {fmt(float(st['bias1']))}):")
        print("    " + compact(np.asarray(st["m_hat"]), 2, 6).replace("\n", "\n    "))
    return 0
