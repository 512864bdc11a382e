"""The README's figures, rerun and rewritten: `python scripts/figures.py`.

Every figure the README quotes sits between markers that name it:

    <!-- figure NAME -->            a block: a command and what it prints, or a table
    ...
    <!-- /figure -->
    <!-- fig NAME -->0.88<!-- /fig -->   one number in a sentence

Each figure comes from a function below that reruns the command it quotes (as a fresh
`python -m bntui` process, as a reader would type it) and formats what it printed; the
script rewrites every marked figure in place, so the README says what the code prints.

    python scripts/figures.py              rerun everything but the timings, rewrite README.md
    python scripts/figures.py --check      rerun, rewrite nothing, list what differs (exit 1)
    python scripts/figures.py --bench      the timing tables too (minutes; they vary by run)
    python scripts/figures.py --only NAME  these figures (and what they share a run with)
    python scripts/figures.py --kernels    rerun under two other OpenBLAS kernels as well
                                           (OPENBLAS_CORETYPE=Sandybridge, Prescott) and list
                                           the figures whose text moves: their last digits
                                           are the CPU's rounding, not the code

A figure a command marks as chaotic (≈) is quoted as such: its digits move on another CPU.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- figure (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(\n<!-- /figure -->)",
                   re.S)
INLINE = re.compile(r"(<!-- fig (?P<name>[\w.-]+) -->)(?P<body>.*?)(<!-- /fig -->)", re.S)
KERNEL = ""  # the OPENBLAS_CORETYPE of this pass ("" for the machine's own)


# running the commands ------------------------------------------------------------------
@functools.cache
def _run(argv: tuple[str, ...], kernel: str, stdin: str | None) -> tuple[int, str, str]:
    env = dict(os.environ, COLUMNS="200", CI="true")
    env.pop("OPENBLAS_CORETYPE", None)
    if kernel:
        env["OPENBLAS_CORETYPE"] = kernel
    res = subprocess.run([sys.executable, "-m", "bntui", *argv], capture_output=True,
                         text=True, env=env, cwd=ROOT, input=stdin, timeout=3600)
    return res.returncode, res.stdout, res.stderr


def run(*argv: str, stdin: str | None = None, code: int = 0) -> str:
    """What `bntui ARGV` prints on stdout (stderr for a command that must fail)."""
    got, out, err = _run(tuple(argv), KERNEL, stdin)
    if got != code:
        raise SystemExit(f"bntui {' '.join(argv)}: exit {got}, expected {code}\n{err}")
    return out if code == 0 else err


def run_json(*argv: str) -> dict:
    return json.loads(run(*argv))


def command(*argv: str) -> str:
    """The command as the README shows it."""
    return "$ bntui " + " ".join(a if re.fullmatch(r"[\w.,=:/+-]+", a) else repr(a)
                                 for a in argv)


def block(*parts: str, lang: str = "") -> str:
    """A fenced block of commands and their output."""
    return f"```{lang}\n" + "\n".join(p.rstrip("\n") for p in parts) + "\n```"


def lines(text: str, *patterns: str) -> str:
    """The lines of `text` that match any of `patterns` (regular expressions), in order."""
    keep = [re.compile(p) for p in patterns]
    return "\n".join(line for line in text.splitlines() if any(k.search(line) for k in keep))


def g(x: float, digits: int = 2) -> str:
    """A number to `digits` significant digits, as the prose quotes it."""
    return f"{x:.{digits}g}"


# the figures ---------------------------------------------------------------------------
Figures = dict[str, str]
SOURCES: list[Callable[[], Figures]] = []
TIMINGS: list[Callable[[], Figures]] = []


def source(fn: Callable[[], Figures]) -> Callable[[], Figures]:
    SOURCES.append(fn)
    return fn


def timing(fn: Callable[[], Figures]) -> Callable[[], Figures]:
    TIMINGS.append(fn)
    return fn


@source
def bad_input() -> Figures:
    argv = ("train", "--arch", "32:sigmod,C")
    return {"bad-input": block(command(*argv), run(*argv, code=2))}


@source
def bug_zoo() -> Figures:
    summary = ("lab", "bugs", "--all")
    probe = ("lab", "bugs", "no-max-shift")
    excerpt = lines(run(*probe), r"^the same batch", r"^scale", r"^(1|100|300)\s")
    return {"lab-bugs": block(command(*summary), run(*summary),
                              command(*probe) + "          # (excerpt)", excerpt)}


@source
def gradcheck_figures() -> Figures:
    rows = ["| network | analytic vs numerical (max) | analytic vs autograd (max) |",
            "|---|---|---|"]
    for name in ("seed-softmax", "seed-digits"):
        d = run_json("gradcheck", "--preset", name, "--json")
        cells = []
        for pair in ("analytic_vs_numeric", "analytic_vs_autograd"):
            judged = [c for c in d["checks"] if c["pair"] == pair and c["status"] == "ok"]
            if not judged:
                cells.append("—")
                continue
            worst = max(c["rel_error"] for c in judged)
            entry = max(c["entrywise_rel_error"] for c in judged)
            cells.append(f"{worst:.1e} (entrywise {entry:.1e})")
        rows.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return {"gradcheck": "\n".join(rows)}


@source
def bug_flag() -> Figures:
    argv = ("gradcheck", "--bug", "eps-outside-sqrt", "--no-autograd")
    out = run(*argv)
    return {"gradcheck-bug": block(command(*argv) + "      # (the last lines)",
                                   "\n".join(out.splitlines()[-3:]))}


def main(argv: list[str] | None = None) -> int:
    global KERNEL
    p = argparse.ArgumentParser(prog="python scripts/figures.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 on a difference")
    p.add_argument("--bench", action="store_true", help="the timing tables too")
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these figures")
    p.add_argument("--kernels", action="store_true",
                   help="also rerun under two other OpenBLAS kernels; list what moves")
    args = p.parse_args(argv)
    sources = SOURCES + (TIMINGS if args.bench else [])
    figures: Figures = {}
    for fn in sources:
        got = fn()
        if args.only:
            got = {k: v for k, v in got.items() if k in args.only}
        figures.update(got)
    text = README.read_text()
    marked = {m["name"] for m in BLOCK.finditer(text)} | {m["name"] for m in INLINE.finditer(text)}
    missing = sorted(set(figures) - marked)
    if missing:
        print("not marked in README.md: " + ", ".join(missing), file=sys.stderr)
    new = BLOCK.sub(lambda m: m.group(1) + figures.get(m["name"], m["body"]) + m.group(4), text)
    new = INLINE.sub(lambda m: m.group(1) + figures.get(m["name"], m["body"]) + m.group(4), new)
    changed = [n for n in sorted(figures) if _body(text, n) != _body(new, n)]
    for name in changed:
        print(f"{'differs' if args.check else 'rewritten'}: {name}")
    if args.kernels:
        moved = []
        for kernel in ("Sandybridge", "Prescott"):
            KERNEL = kernel
            for fn in sources:
                for name, value in fn().items():
                    if name in figures and value != figures[name] and name not in moved:
                        moved.append(name)
        KERNEL = ""
        print("moves under another BLAS kernel: " + (", ".join(moved) or "nothing"))
    if not args.check and new != text:
        README.write_text(new)
    print(f"{len(figures)} figures, {len(changed)} "
          f"{'differ' if args.check else 'rewritten'}")
    return 1 if args.check and changed else 0


def _body(text: str, name: str) -> str | None:
    for pattern in (BLOCK, INLINE):
        for m in pattern.finditer(text):
            if m["name"] == name:
                return m["body"]
    return None


if __name__ == "__main__":
    raise SystemExit(main())
