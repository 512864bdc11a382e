"""The budget's estimates beside what real runs take: seconds per training step and peak
memory, for networks from small to a few GB.

    python benchmarks/budget.py

Each case trains in a fresh process (`bntui train --steps 3`, its peak resident memory
read by the parent as ru_maxrss, minus that of a tiny network's run) and times its steps
in-process (after a first step, without the evaluation at the end).  The estimate is
`bntui.engine.budget.estimate` for the same configuration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from bntui.engine import budget
from bntui.engine.config import RunConfig
from bntui.engine.session import Session, cost

CASES = [("300,300,C", "digits"), ("1000,1000,C", "digits"), ("2500,2500,C", "digits"),
         ("6000,6000,C", "moons"), ("3000,3000,3000,C", "moons")]
PEAK = """
import json, resource, subprocess, sys
subprocess.run([sys.executable, "-m", "bntui", "train", "--steps", "3", *sys.argv[1:]],
               capture_output=True, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def peak(*flags: str) -> int:
    out = subprocess.run([sys.executable, "-c", PEAK, *flags], capture_output=True,
                         text=True, check=True, env=os.environ)
    return int(out.stdout)


def main() -> None:
    base = peak("--arch", "4,C")
    print("| network | dataset (rows) | parameters | step, real | step, estimate | "
          "memory, real | memory, estimate |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for arch, dataset in CASES:
        cfg = RunConfig(dataset=dataset, arch=arch)
        session = Session(cfg)
        session.train(steps=1, exact_end=False)
        t0 = time.perf_counter()
        session.train(steps=3, eval_every=10**9, exact_end=False)
        real = (time.perf_counter() - t0) / 3
        est = cost(cfg, session.dataset)
        used = peak("--arch", arch, "--dataset", dataset) - base
        rows.append({"arch": arch, "real_s": real, "est_s": est.step_seconds,
                     "real_bytes": used, "est_bytes": est.bytes})
        step_est = "—" if est.step_seconds is None else f"{est.step_seconds:.2f} s"
        print(f"| {arch} | {dataset} ({session.batch_size:,}) | {budget.count(est.params)} | "
              f"{real:.2f} s | {step_est} | {budget.size(used)} | {budget.size(est.bytes)} |")
        del session
    if "--json" in sys.argv:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
