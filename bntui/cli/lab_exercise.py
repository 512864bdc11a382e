"""`bntui lab exercise`: questions about one pass, asked on the terminal and graded."""

from __future__ import annotations

import argparse
import sys

from bntui.cli.parser import int_at_least
from bntui.engine.errors import BntuiError
from bntui.engine.jsonable import dumps
from bntui.engine.labs.exercise import (
    KIND_CHOICES,
    MAX_COUNT,
    AnswerError,
    Exercise,
    Question,
    Verdict,
    make_exercise,
    shape_text,
)

HELP = "exercise mode: hidden tensors and formulas to work out, graded"
DESCRIPTION = """\
Questions about one forward + backward pass of the configured network (training mode, or
eval mode with --eval, on the first --rows samples of the batch, at initialisation unless
--steps trains first):

  value    a tensor is hidden: give its entry at a position, worked out from the formula
           and the entries shown (right within 1e-3 relative or to 3 significant digits)
  shape    give a tensor's shape: 16x4, (16, 4), 16,4; one number for a vector; scalar
  formula  the formula is hidden: pick the right one of four (a-d)

Answers are read from the terminal one per line ('skip' shows the answer), from a pipe,
or from --answers "a1;a2;...". An answer that cannot be read gets a message and is not
graded. End of input stops with the score so far. The same --seed gives the same
questions.

examples:
  bntui lab exercise --preset seed-softmax --count 5
  bntui lab exercise --kind formula --answers "b;a;c"
  bntui lab exercise --json --reveal --count 3
  bntui lab exercise --preset seed-softmax --steps 50 --eval   (the running statistics)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("exercise")
    g.add_argument("--count", type=int_at_least("count", 1, MAX_COUNT), default=5,
                   help="questions to ask (5)")
    g.add_argument("--kind", choices=KIND_CHOICES, default="mixed",
                   help="value, shape, formula or mixed (mixed)")
    g.add_argument("--rows", type=int_at_least("rows", 2), default=16,
                   help="samples of the batch the pass runs on (16): few enough to work by hand")
    g.add_argument("--eval", action="store_true",
                   help="ask about the eval-mode pass (running statistics, constants)")
    g.add_argument("--answers", metavar="A1;A2;...",
                   help="the answers, separated by ';' (instead of reading them from stdin)")
    g.add_argument("--reveal", action="store_true",
                   help="with --json: include the right answers")
    g.add_argument("--json", action="store_true",
                   help="print the questions (and, with --answers, the grading) as JSON")


def build(args: argparse.Namespace) -> tuple[Exercise, dict[str, object]]:
    """The exercise of the flags, and a description of the run it comes from."""
    from bntui.cli.commands import config_from_args
    from bntui.engine.session import Session

    cfg = config_from_args(args)
    session = Session(cfg)
    steps = args.steps or 0
    if steps:
        result = session.train(steps=steps)
        if result.stopped:
            raise BntuiError(result.stopped)
    X, y = session.inspection_batch()
    ex = make_exercise(session.network, X, y, count=args.count, kind=args.kind,
                       seed=cfg.seed, rows=args.rows, training=not args.eval)
    about = {
        "dataset": session.dataset.name, "arch": cfg.arch,
        "network": session.network.describe(), "batch_size": ex.trace.batch_size,
        "steps": session.step_count, "seed": cfg.seed, "kind": args.kind,
        "mode": "eval" if args.eval else "training",
        "count": len(ex.questions), "loss": ex.trace.loss,
    }
    return ex, about


def question_text(q: Question, total: int) -> str:
    """A question as the terminal shows it."""
    lines = [f"Question {q.number}/{total} · {q.kind} · {q.phase} · {q.where} · {q.name}"]
    if q.kind != "formula":
        lines.append(f"  formula  {q.formula}")
        lines.append(f"  why      {q.explanation}")
    if q.givens:
        width = max(len(g.label) for g in q.givens)
        head = "shapes" if q.kind == "shape" else "given"
        for k, g in enumerate(q.givens):
            lines.append(f"  {head if k == 0 else '':<7}  {g.label:<{width}} = {g.text()}")
    if q.kind == "formula":
        lines.append(f"  {q.name} is {shape_text(q.shape)}")
    lines.append(f"  {q.prompt}")
    for k, c in enumerate(q.choices):
        lines.append(f"    {'abcd'[k]}) {c}")
    hint = q.expects + ("; rows and columns count from 0" if q.kind == "value" and q.position
                        else "")
    lines.append(f"  ({hint})")
    return "\n".join(lines)


def verdict_line(v: Verdict) -> str:
    return ("  ✓ " if v.correct else "  ✗ ") + v.message


def _read_answer() -> str | None:
    """One line from stdin (None at end of input), echoed when it comes from a pipe."""
    sys.stdout.write("answer> ")
    sys.stdout.flush()
    line = sys.stdin.readline()
    if line == "":
        return None
    if not sys.stdin.isatty():
        sys.stdout.write(line if line.endswith("\n") else line + "\n")
    return line.rstrip("\n")


def run(args: argparse.Namespace) -> int:
    answers = None if args.answers is None else args.answers.split(";")
    ex, about = build(args)
    n = len(ex.questions)
    if answers is not None and len(answers) > n:
        raise BntuiError(f"--answers has {len(answers)} answers for {n} questions")
    if args.json:
        out = dict(about)
        out["questions"] = [q.to_dict(reveal=args.reveal) for q in ex.questions]
        if answers is not None:
            grading: list[dict[str, object]] = []
            for q, text in zip(ex.questions, answers, strict=False):
                try:
                    grading.append({"number": q.number, **ex.answer(q.number, text).to_dict()})
                except AnswerError as exc:
                    grading.append({"number": q.number, "status": "invalid", "answer": text,
                                    "expected": None, "message": str(exc)})
            out["grading"] = grading
            out["score"] = {"right": ex.right, "answered": ex.answered, "total": n}
        print(dumps(out))
        return 0
    print(f"exercise on {about['network']}: {about['batch_size']} samples of "
          f"{about['dataset']}, {about['mode']} mode, {about['steps']} steps trained, "
          f"seed {about['seed']}: {n} questions")
    ended = False
    for q in ex.questions:
        if answers is not None and q.number > len(answers):
            break
        print()
        print(question_text(q, n))
        while True:
            if answers is not None:
                text: str | None = answers[q.number - 1]
                print(f"answer> {text}")
            else:
                text = _read_answer()
                if text is None:
                    print()
                    print("(end of input)")
                    ended = True
                    break
            assert text is not None
            if text.strip().lower() in ("skip", "?"):
                print(verdict_line(ex.skip(q.number)))
                break
            try:
                print(verdict_line(ex.answer(q.number, text)))
            except AnswerError as exc:
                if answers is not None:
                    print(f"  ? not graded: {exc}")
                    break
                print(f"  ? {exc} — try again ('skip' shows the answer)")
                continue
            break
        if ended:
            break
    print()
    print(ex.score_text())
    return 0
