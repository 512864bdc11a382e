"""Training steps per second of two source trees of bntui, side by side in one run.

    python benchmarks/compare_trees.py BEFORE_DIR AFTER_DIR [--rounds 5]

Each round runs, for each tree and each case, a fresh interpreter with that tree first on
`sys.path` that trains the case (after a warm-up) and prints its steps per second; the
trees alternate within every round so that a busy machine slows both alike.  Medians of
the rounds.  Used for issue 13's per-step divergence guard (non-finite running
statistics, parameters and optimizer state), which must not slow a step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CASES = {
    "seed-softmax (2→4, 16 rows)": ["--preset", "seed-softmax"],
    "seed-digits (64→32→16→10, 1,500 rows)": ["--preset", "seed-digits"],
    "moons, 16:relu,16:relu,C, batch 32": ["--dataset", "moons", "--batch-size", "32"],
}
TIMER = """
import sys, time
from bntui.cli.commands import config_from_args
from bntui.cli.parser import build_parser
from bntui.engine.session import Session
args = build_parser().parse_args(["train", *sys.argv[2:]])
session = Session(config_from_args(args))
session.train(steps=int(sys.argv[1]) // 5)
t0 = time.perf_counter()
session.train(steps=int(sys.argv[1]), eval_every=10**9)
print(int(sys.argv[1]) / (time.perf_counter() - t0))
"""


def rate(tree: str, flags: list[str], steps: int) -> float:
    env = {**os.environ, "PYTHONPATH": tree}
    out = subprocess.run([sys.executable, "-c", TIMER, str(steps), *flags], env=env,
                         capture_output=True, text=True, check=True, cwd=tree)
    return float(out.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=3000)
    a = p.parse_args()
    print("| case | before (steps/s) | after (steps/s) | after / before |")
    print("|---|---|---|---|")
    for name, flags in CASES.items():
        got: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(a.rounds):
            for label, tree in (("before", a.before), ("after", a.after)):
                got[label].append(rate(tree, flags, a.steps))
        b, f = statistics.median(got["before"]), statistics.median(got["after"])
        print(f"| {name} | {b:,.0f} | {f:,.0f} | {f / b:.3f} |")


if __name__ == "__main__":
    main()
