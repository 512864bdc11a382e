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
# a body never crosses another marker (an empty one must not reach the next figure's end)
BLOCK = re.compile(r"(<!-- figure (?P<name>[\w.-]+) -->\n)(?P<body>(?:(?!<!-- /?figure ).)*?)"
                   r"(\n<!-- /figure -->)", re.S)
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
    excerpt = lines(run(*probe), r"^the same batch", r"^scale", r"^(1|100|300)\s+\d")
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
def inside_a_step() -> Figures:
    entry = ("walk", "--entry", "dZ0[13,1]", "--layer", "1")
    graph = ("walk", "--graph", "--arch", "8:ln:tanh,C", "--layer", "1", "--tensor", "dZ0")
    derive = ("derive", "--arch", "8:ln:tanh,C")
    drawn = run(*graph).split("\n\n", 1)[1]
    return {"walk-entry": block(command(*entry), run(*entry)),
            "walk-graph": block(command(*graph) + "      # (the step)", drawn),
            "derive": block(command("derive"), run("derive"))
            + "\n\n" + block(command(*derive) + "      # (the last step)",
                             "\n".join(run(*derive).rstrip().splitlines()[-5:]))}


@source
def gradient_sources() -> Figures:
    losses = {}
    for src in ("analytic", "numerical", "autograd"):
        losses[src] = run_json("train", "--preset", "seed-softmax", "--steps", "200",
                               "--gradients", src, "--json")["final_loss"]
    rows = ["| gradients | final loss after 200 steps | difference from analytic |",
            "|---|---|---|"]
    for src, loss in losses.items():
        diff = "—" if src == "analytic" else f"{abs(loss - losses['analytic']):.0e}"
        rows.append(f"| {src} | {loss:.10f} | {diff} |")
    return {"gradient-sources": "\n".join(rows)}


@source
def bug_flag() -> Figures:
    argv = ("gradcheck", "--bug", "eps-outside-sqrt", "--no-autograd")
    out = run(*argv)
    return {"gradcheck-bug": block(command(*argv) + "      # (the last lines)",
                                   "\n".join(out.splitlines()[-3:]))}


@source
def lab_bn() -> Figures:
    argv = ("lab", "bn")
    out = run(*argv)
    excerpt = lines(out, r"^loss \(training", r"^step ", r"^(1|120)\s+[≈\d]", r"^last 10",
                    r"^layer  network", r"^3\s+with", r"^lr ", r"^(0\.3|1|3|10)\s+\d",
                    r"^≈ chaotic")
    excerpt = excerpt.replace("\nlayer", "\n\nlayer").replace("\nlr ", "\n\nlr ")
    d = run_json(*argv, "--json")
    bn, plain = d["with_bn"], d["without_bn"]
    early = [layer for layer in plain["layers"]]  # quantiles at the first checkpoint after 0
    sat = sorted(100 * layer["saturated"][1] for layer in early)
    spread = max(max(abs(q) for q in layer["quantiles"][1]) for layer in early)
    only = d["bn_only_lrs"]
    both = [r["lr"] for r in d["sweep"] if r["bn"]["verdict"] == r["plain"]["verdict"] == "trains"]
    return {
        "lab-bn": block(command(*argv) + "                      # moons, 32:tanh ×3, SGD lr 5, "
                        "200 steps", excerpt),
        "bn.start": g(bn["start_loss"]), "bn.final": g(bn["final_loss"]),
        "bn.plain-final": g(plain["final_loss"]),
        "bn.spread": f"{spread:.0f}",
        "bn.saturated": f"{sat[0]:.0f}–{sat[-1]:.0f}",
        "bn.both": f"{min(both):g} to {max(both):g}",
        "bn.only-high": ", ".join(f"{x:g}" for x in only if x > max(both)),
        "bn.only-low": f"{min(only):g}–{max(x for x in only if x < min(both)):g}",
    }


@source
def lab_batch() -> Figures:
    argv = ("lab", "batch")
    out = run(*argv)
    excerpt = lines(out, r"^\(b\)", r"^feature  Z₁", r"^(0|6)  ", r"^max \| \|Znorm",
                    r"^\(c\)", r"^training mode: logits", r"^\(d\)", r"^batch  loss",
                    r"^(2|8|32|full) ", r"^≈ chaotic")
    for head in ("(c)", "(d)"):
        excerpt = excerpt.replace("\n" + head, "\n\n" + head)
    d = run_json(*argv, "--json")
    gaps = {gap["size"]: gap for gap in d["size_gap"]}
    small, full = gaps["2"], gaps["full"]
    return {
        "lab-batch": block(command(*argv) + "                    # moons, 16:relu,16:relu,C, "
                           "adam, 300 steps, batches of 8", excerpt),
        "batch.spread": g(d["sample_in_batches"]["spread_train"], 1),
        "batch.gap-small": g(small["zbn_gap"]), "batch.gap-full": g(full["zbn_gap"], 1),
        "batch.flipped": f"{100 * small['flipped']:.0f} %",
    }


@source
def lab_health() -> Figures:
    plain = ("lab", "health", "--arch", "32:relu:nobn,32:relu:nobn,C", "--optimizer", "sgd",
             "--lr", "3")
    bn = ("lab", "health", "--arch", "32:relu,32:relu,C", "--optimizer", "sgd", "--lr", "3")
    blow = ("lab", "health", "--optimizer", "sgd", "--lr", "1e200", "--steps", "3")
    return {"lab-health": block(
        command(*plain), lines(run(*plain), r"^layer health", r"^layer  ", r"^(1|2)  "), "…",
        command(*bn) + "     # with BatchNorm", lines(run(*bn), r"^2  "),
        command(*blow), lines(run(*blow), r"^note: training stopped", r"^first non-finite"))}


@source
def lab_race() -> Figures:
    argv = ("lab", "race")
    out = run(*argv)
    d = run_json(*argv, "--json")
    adam = d["state"]["adam"]
    return {
        "lab-race": block(command(*argv), lines(out, r"^optimizer race", r"^batch loss at",
                                                r"^update ", r"^(1|101|200)\s+\d"), "…",
                          lines(out, r"^optimizer state of", r"^  momentum", r"^  adam")),
        "race.bias2": g(float(adam["bias2"])), "race.t": str(int(adam["t"])),
    }


@source
def lab_hsweep() -> Figures:
    argv = ("lab", "hsweep", "--hs", "1e-1,1e-2,1e-3,1e-4,1e-5,1e-6,1e-7,1e-8,1e-10,1e-12")
    out = run(*argv)
    return {"lab-hsweep": block(command(*argv), lines(out, r"^h sweep", r"^h  ", r"^\d\.0e",
                                                      r"^best h", r"^≈ mostly"))}


@source
def lab_norms() -> Figures:
    argv = ("lab", "norms")
    out = run(*argv)
    # (a), (b), (c) and the sweep, without the tables' rules
    parts = [p for p in out.split("\n\n") if p.startswith(("(a)", "(b)", "(c)", "learning-rate"))]
    excerpt = "\n\n".join("\n".join(line for line in p.splitlines() if not line.startswith("─"))
                          for p in parts)
    d = run_json(*argv, "--json")
    by = {part: {v["kind"]: v for v in d[part]["variants"]}
          for part in ("sample_in_batches", "batch_of_two", "train_vs_eval")}
    a, b, c = by["sample_in_batches"], by["batch_of_two"], by["train_vs_eval"]
    bn_near = [100 * x for x in b["bn"]["near_one"]]
    others_near = max(100 * x for k in ("ln", "gn", "rms") for x in b[k]["near_one"])
    sweep = {row["lr"]: row for row in d["sweep"]}
    low, high = sweep[min(sweep)], sweep[max(sweep)]
    normed = ("bn", "ln", "gn", "rms")
    blew = [k for k in ("ln", "gn") if high[k]["verdict"] == "diverged"]
    held = [k for k in ("bn", "rms") if high[k]["verdict"] == "trains"]
    names = {"bn": "BatchNorm", "ln": "LayerNorm", "gn": "GroupNorm", "rms": "RMSNorm"}
    return {
        "lab-norms": block(command(*argv) + "      # moons, 32:tanh,32:tanh,C:nobn, SGD lr 1, "
                           "200 steps, full batch", excerpt),
        "norms.spread": g(max(a["bn"]["spread"])), "norms.logits": g(a["bn"]["logits_spread"]),
        "norms.pair": f"{min(bn_near):.0f}–{max(bn_near):.0f}",
        "norms.pair-others": f"{others_near:.0f}",
        "norms.gap": g(max(c["bn"]["gap"])), "norms.flipped": f"{100 * c['bn']['flipped']:.1f} %",
        "norms.low-lr": f"{min(sweep):g}",
        "norms.low-plain": g(low["none"]["final_loss"]),
        "norms.low-normed": f"{g(min(low[k]['final_loss'] for k in normed))}–"
                            f"{g(max(low[k]['final_loss'] for k in normed))}",
        "norms.high-lr": f"{max(sweep):g}",
        "norms.high-blew": " and ".join(names[k] for k in blew) or "no normalized network",
        "norms.high-held": " and ".join(names[k] for k in held) or "none of the others",
    }


@source
def lab_exercise() -> Figures:
    base = ("lab", "exercise", "--preset", "seed-softmax", "--count", "3")
    qs = run_json(*base, "--json", "--reveal")["questions"]
    answers = []
    for k, q in enumerate(qs):  # the second answered wrong, to show what a wrong one gets
        right = q["answer_text"].split(")")[0] if q["kind"] == "formula" else q["answer_text"]
        if q["kind"] == "shape":
            right = right.split()[0].replace("×", "x")
        wrong = {"value": "0.5", "shape": "1x1", "formula": "a" if right != "a" else "b"}
        answers.append(wrong[q["kind"]] if k == 1 else right)
    argv = (*base, "--answers", ";".join(answers))
    out = run(*argv)
    last = out[out.index(f"Question {len(qs)}/{len(qs)}"):]
    return {"lab-exercise": block(command(*argv), last.strip())}


@source
def handouts() -> Figures:
    argv = ("walk", "--preset", "seed-softmax", "--format", "md", "--check", "--tensor",
            "dgamma")
    out = run(*argv)
    step = out[out.index("### "):]
    sizes = {}
    for name in ("seed-softmax", "seed-digits"):
        md = run("walk", "--preset", name, "--format", "md")
        html = run("walk", "--preset", name, "--format", "html", "--check")
        steps = len(run_json("walk", "--preset", name, "--json")["steps"])
        sizes[name] = (steps, len(md.encode()) / 1000, len(html.encode()) / 1000)
    soft, dig = sizes["seed-softmax"], sizes["seed-digits"]
    return {
        "walk-md": block(command(*argv), "...", step.strip()),
        "handout.softmax": (f"{soft[0]} steps ({soft[1]:.0f} KB of Markdown, {soft[2]:.0f} KB "
                            "of HTML with `--check`)"),
        "handout.digits": (f"{dig[0]} steps ({dig[1]:.0f} KB of Markdown, {dig[2]:.0f} KB of "
                           "HTML)"),
    }


@source
def bn_conventions() -> Figures:
    """The engine's table of BatchNorm conventions, in `BatchNorm.describe()`'s words, and
    one command that picks one and overrides a setting."""
    code = ("import json; from bntui.engine.conventions import table_rows; "
            "print(json.dumps(table_rows()))")
    rows = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                     text=True, cwd=ROOT, check=True).stdout)
    table = ["| name | settings | from |", "|---|---|---|"]
    table += [f"| `{r['name']}` | {r['settings']} | {r['source']} |" for r in rows]
    argv = ("train", "--dataset", "moons", "--steps", "50", "--bn-convention", "keras",
            "--bn-eps", "0.01")
    return {"bn-conventions": "\n".join(table),
            "bn-convention-cli": block(command(*argv) + "     # (excerpt)",
                                       lines(run(*argv), r"^network", r"^batchnorm"))}


@source
def presets() -> Figures:
    soft = run_json("train", "--preset", "seed-softmax", "--json")
    dig = run_json("train", "--preset", "seed-digits", "--json")
    n_val = round(dig["val_accuracy"] * 297)
    return {
        "preset.softmax": (f"final cost {soft['final_loss']:.3g} after {soft['steps']:,} steps, "
                           f"{100 * soft['train_accuracy']:.0f} % train accuracy"),
        "preset.digits": (f"{100 * dig['val_accuracy']:.2f} % validation accuracy "
                          f"({n_val}/297), {dig['params']:,} parameters"),
    }


@source
def preset_seeds() -> Figures:
    costs = sorted(run_json("train", "--preset", "seed-softmax", "--seed", str(k),
                            "--json")["final_loss"] for k in range(20))
    median = (costs[9] + costs[10]) / 2
    below = sum(c < 0.0017351 for c in costs)
    return {"preset.seeds": (f"a median cost of {median:.3g} (range {costs[0]:.3g}–"
                             f"{costs[-1]:.3g}; {below} of the 20 below the seed's 0.0017)")}


def tables(text: str) -> list[str]:
    """The Markdown tables in `text`, each as its lines joined."""
    out, cur = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            out.append("\n".join(cur))
            cur = []
    if cur:
        out.append("\n".join(cur))
    return out


def table_with(text: str, head: str) -> str:
    """The table of `text` whose first line starts with `head`."""
    for t in tables(text):
        if t.startswith(head):
            return t
    raise SystemExit(f"no table starting {head!r} in:\n{text}")


def python(*argv: str) -> str:
    """What `python ARGV` prints, run from the repository."""
    res = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT,
                         timeout=7200, env=dict(os.environ, CI="true"))
    if res.returncode != 0:
        raise SystemExit(f"python {' '.join(argv)}: exit {res.returncode}\n{res.stderr}")
    return res.stdout


@timing
def bench() -> Figures:
    out = python("-m", "bntui.bench", "--app")
    return {
        "bench-train": table_with(out, "| seed-digits, full batch | engine steps/s"),
        "bench-bn": table_with(out, "| (N, D) |"),
        "bench-gradcheck": table_with(out, "| numerical check"),
        "bench-scale": table_with(out, "| rows |"),
        "bench-app": table_with(out, "| measure |"),
    }


@timing
def ceiling() -> Figures:
    out = python("benchmarks/ceiling.py")
    return {"bench-ceiling": table_with(out, "| seed-digits, full batch | engine / PyTorch")}


@timing
def gradient_costs() -> Figures:
    argv = ("train", "--preset", "seed-digits", "--steps", "2", "--gradients", "analytic")
    return {"bench-gradients": block(command(*argv) + "      # (the line)",
                                     lines(run(*argv), r"^gradients"))}


@timing
def budget_accuracy() -> Figures:
    out = python("benchmarks/budget.py")
    return {"bench-budget": table_with(out, "| network | dataset (rows)")}


bench.names = ("bench-train", "bench-bn", "bench-gradcheck", "bench-scale",  # type: ignore[attr-defined]
               "bench-app")
ceiling.names = ("bench-ceiling",)  # type: ignore[attr-defined]
gradient_costs.names = ("bench-gradients",)  # type: ignore[attr-defined]
budget_accuracy.names = ("bench-budget",)  # type: ignore[attr-defined]


@source
def norm_family() -> Figures:
    argv = ("gradcheck", "--arch", "16:ln:tanh,C")
    walk = ("walk", "--arch", "8:gn=2:tanh,C", "--samples", "40", "--layer", "1",
            "--tensor", "mu")
    head = "\n".join(run(*walk).splitlines()[:11])
    return {"norms-gradcheck": block(command(*argv), run(*argv)),
            "norms-walk": block(command(*walk) + "      # (the first lines)", head)}


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
        names = getattr(fn, "names", None)  # a timing declares its figures: skipped at once
        if args.only and names is not None and not set(names) & set(args.only):
            continue
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
