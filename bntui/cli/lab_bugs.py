"""`bntui lab bugs`: the bug zoo, headless.

    bntui lab bugs                 the bugs: id, origin, title, which tensors must fail
    bntui lab bugs BUG_ID          one bug: its gradient check beside the correct engine's,
                                   and both engines trained side by side
    bntui lab bugs --all           one summary row per bug
"""

from __future__ import annotations

import argparse
import math
import textwrap

from bntui.cli.commands import config_from_args
from bntui.cli.render import table
from bntui.engine.config import RunConfig
from bntui.engine.errors import BntuiError
from bntui.engine.jsonable import dumps
from bntui.engine.labs import bugs as zoo
from bntui.numbers import CHAOS_NOTE, fmt, fmt_err, fmt_run

HELP = "the bug zoo: named mistakes, their gradient checks and their training curves"
DESCRIPTION = (
    "Switchable, named mistakes, each a real variant of the engine (seed 000's and seed "
    "003's, and the classic ones). For one bug: the gradient check of the bugged engine "
    "(analytic against numerical gradients of its own forward) beside the correct engine's, "
    "which tensors fail and whether that is exactly the set the bug must break, and both "
    "engines trained side by side from the same data and initial weights. Each bug runs on "
    "its own small scenario (spiral, 2 → 16 tanh → 3 BN, the hidden block normalised by the "
    "layer the bug lives in — BatchNorm, LayerNorm, GroupNorm or RMSNorm —, Adam, full "
    "batch); the run flags change it (a bug in a normalization needs a block of its kind)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bug_id", nargs="?", metavar="BUG_ID",
                   help="a bug to run (without it: the list of bugs)")
    p.add_argument("--bug", dest="bug_flag", metavar="BUG_ID", help="the same as BUG_ID")
    p.add_argument("--all", action="store_true", help="run every bug: one summary row each")


def _config(args: argparse.Namespace, bug_id: str) -> RunConfig:
    """The bug's scenario with every run flag the user gave on top."""
    return config_from_args(args, default=zoo.scenario_config(bug_id))


def _tensors(keys: set[tuple[int, str]]) -> str:
    return " ".join(f"{layer}.{t}" for layer, t in sorted(keys, key=lambda k: (-k[0], k[1])))


def _loss(x: float | None) -> str:
    return "—" if x is None else fmt(x)




def _end(run: zoo.Run) -> str:
    """A run's end: its final loss (≈ when chaotic), or the step where it stopped."""
    if run.stopped is not None:
        return f"stopped at step {len(run.step) + 1}"
    return fmt_run(run.final_loss, run.chaotic) if run.final_loss is not None else "—"


def _listing(as_json: bool) -> int:
    bugs = [zoo.BUGS[i] for i in zoo.BUG_IDS]
    if as_json:
        print(dumps({"bugs": [{"id": b.id, "title": b.title, "origin": b.origin,
                                    "part": b.part, "fails": b.fails_rule} for b in bugs]}))
        return 0
    print(table(["bug", "origin", "title", "tensors whose check must fail"],
                [[b.id, b.origin.split(" (")[0], b.title, b.fails_rule] for b in bugs]))
    print("\nrun one: bntui lab bugs BUG_ID    every one: bntui lab bugs --all")
    return 0


def _scenario_line(cfg: RunConfig, report: zoo.BugReport) -> str:
    bs = "full batch" if cfg.batch_size is None else f"batch {cfg.batch_size}"
    net = report.network_description
    return (f"scenario: {cfg.dataset}, {net}, {cfg.optimizer} lr {fmt(cfg.lr or 0)}, {bs}, "
            f"{cfg.steps} steps, BN ε {cfg.bn.eps:g}, seed {cfg.seed}")


def _print_report(report: zoo.BugReport) -> None:
    b, chk, tr = report.bug, report.check, report.training
    print(f"{b.id} — {b.title} ({b.origin}; {b.part})")
    print(textwrap.fill(b.explanation, width=96))
    print(f"  wrong: {b.wrong}")
    print(f"  right: {b.right}")
    print(_scenario_line(report.config, report))
    print(f"\ngradient check on a batch of {chk.batch}: analytic against numerical gradients "
          f"of the bugged forward, fails above {chk.tolerance:g}")
    rows = []
    for r in chk.rows:
        if r.rel_error is None:
            result = r.status.replace("_", " ")
        else:
            result = "FAIL" if r.failed else "ok"
        if r.failed != r.expected:
            result += "  (unexpected)"
        ratio = "" if r.ratio is None or not math.isfinite(r.ratio) else fmt(r.ratio)
        rows.append([str(r.layer), r.tensor, fmt_err(r.rel_error), fmt_err(r.correct_rel_error),
                     ratio, result])
    print(table(["layer", "tensor", "bugged", "correct", "an/num", "result"], rows))
    verdict = "yes" if chk.matches else "NO"
    print(f"fails exactly where it should: {verdict} ({len(chk.failed)} failing: "
          f"{_tensors(chk.failed) or 'none'})")
    if not chk.matches:
        print(f"  declared: {_tensors(chk.declared) or 'none'}")
    print(f"\ntraining, same data and initial weights ({len(tr.correct.step)} vs "
          f"{len(tr.bugged.step)} steps):")
    for run in (tr.correct, tr.bugged):
        first = _loss(run.loss[0] if run.loss else None)
        tail = f"  — {run.stopped}" if run.stopped else ""
        end = fmt_run(run.final_loss, run.chaotic) if run.final_loss is not None else "—"
        print(f"  {run.label:<26} loss {first} → {end}{tail}")
    if tr.correct.chaotic or tr.bugged.chaotic:
        print(f"  {CHAOS_NOTE}")
    gap = tr.param_gap
    if gap is not None:
        print(f"  largest parameter difference at the end: {fmt(gap)}")
    n = min(6, len(tr.correct.update_norms), len(tr.bugged.update_norms))
    if n:
        print("  update sizes ‖Δθ‖ of the first steps:")
        print("    correct " + " ".join(fmt(x) for x in tr.correct.update_norms[:n]))
        print("    bugged  " + " ".join(fmt(x) for x in tr.bugged.update_norms[:n]))
    print(f"  {b.effect}")
    if report.probe:
        print("\nthe same batch with its logits scaled up:")
        print(table(["scale", "max |logit|", "correct loss", "bugged loss"],
                    [[fmt(p.scale), fmt(p.max_logit), fmt(p.correct_loss), fmt(p.bugged_loss)]
                     for p in report.probe]))


def _summary(args: argparse.Namespace) -> int:
    reports = [zoo.run_bug(i, _config(args, i)) for i in zoo.BUG_IDS]
    if args.json:
        print(dumps({"bugs": [r.to_dict() for r in reports],
                     "all_match": all(r.check.matches for r in reports)}))
        return 0
    rows = []
    for r in reports:
        worst = r.check.worst()
        failing = r.check.failed
        w = "—" if worst is None or not worst.failed else (
            f"{worst.layer}.{worst.tensor} {fmt_err(worst.rel_error)}")
        rows.append([r.bug.id, str(len(failing)), w, "yes" if r.check.matches else "NO",
                     _end(r.training.correct), _end(r.training.bugged)])
    print(table(["bug", "failing", "worst", "as declared", "loss correct", "loss bugged"], rows))
    if any(run.chaotic for r in reports for run in (r.training.correct, r.training.bugged)):
        print(CHAOS_NOTE)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.bug_id and args.bug_flag and args.bug_id != args.bug_flag:
        raise BntuiError(f"two bugs given ('{args.bug_id}' and '{args.bug_flag}'); give one")
    bug_id = args.bug_id or args.bug_flag
    if args.all:
        if bug_id:
            raise BntuiError("give a bug or --all, not both")
        return _summary(args)
    if not bug_id:
        return _listing(args.json)
    bug = zoo.get_bug(bug_id)
    report = zoo.run_bug(bug.id, _config(args, bug.id))
    if args.json:
        print(dumps(report.to_dict()))
    else:
        _print_report(report)
    return 0
