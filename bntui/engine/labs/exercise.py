"""Exercise mode: questions drawn from one recorded pass, and the grading of the answers.

A learner is shown the tensors that come before a step and asked about the step itself:

- **value**: the tensor is hidden; what is its entry at a position?  The entries it
  depends on are given (e.g. `Z[3, 1]` and `mu[1]` for `Z0[3, 1]`; the column `dZbn[:, 2]`
  for `dbeta[2]`), so the answer can be worked out by hand from the formula, which stays on
  show.  Right within a relative 1e-3 or to 3 significant digits.
- **shape**: what is the tensor's shape?  (`16x4`, `(16, 4)`, `16,4`, `4` for a vector,
  `scalar` for the loss.)  The shapes of its inputs are given.
- **formula**: the formula is hidden; which of four is right?  The wrong ones are the
  mistakes learners (and the seed notebooks) really make: `dβ = Σ Zbn`, `std = √var + ε`,
  a missing `1/m`, the variance with `1/(m−1)`, a lost minus sign, a lost branch of the
  graph.

What a value is computed from (the entries given) and the wrong formulas offered come
from the step's node record (`Words.reads`, `Words.wrong`), in the mode of the pass, so a
training-mode and an eval-mode pass each ask about what they compute.  Every right answer
is read from the `Trace` (the same numbers the stepper shows), never recomputed here.
Questions come from a seed, so the same seed and pass give the same questions.  An
answer that cannot be read (`abc` for a number) raises `AnswerError`, a one-line message
saying what form is expected; it is not graded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bntui.engine.errors import BntuiError
from bntui.engine.network import Network
from bntui.engine.sources import PassSources as _Pass
from bntui.engine.sources import entry_of
from bntui.engine.sources import reads as _reads
from bntui.engine.trace import Trace, TraceStep, record_trace

KINDS = ("value", "shape", "formula")
KIND_CHOICES = (*KINDS, "mixed")
MAX_COUNT = 200  # questions in one set
RTOL = 1e-3  # relative tolerance of a value answer (3 significant digits also pass)
LETTERS = "abcd"


class AnswerError(BntuiError):
    """An answer that is not in the form the question expects (it is not graded)."""


@dataclass(frozen=True)
class Given:
    """One input shown with a question: a label such as `Z[:, 2]` and its value."""

    label: str
    value: np.ndarray
    is_shape: bool = False  # the value is the shape of the tensor named by the label

    def to_dict(self) -> dict[str, object]:
        v = np.asarray(self.value)
        if self.is_shape:
            return {"label": self.label, "shape": [int(d) for d in v]}
        return {"label": self.label, "value": v.tolist() if v.ndim else float(v)}

    def text(self, digits: int = 6) -> str:
        """The value as text: `16×4` for a shape, 6 significant digits for numbers."""
        v = np.asarray(self.value, dtype=np.float64)
        if self.is_shape:
            return shape_text(tuple(int(d) for d in v))
        if v.ndim == 0:
            return f"{float(v):.{digits}g}"
        return "[" + ", ".join(f"{float(x):.{digits}g}" for x in v.ravel()) + "]"


@dataclass(frozen=True)
class Question:
    """One question about one step of the trace."""

    number: int  # 1-based, in the order asked
    kind: str  # "value" | "shape" | "formula"
    step: int  # index of the step in the trace
    phase: str
    layer: int | None
    name: str  # the tensor's glossary name
    formula: str  # the right formula (hidden while a formula question is open)
    explanation: str
    shape: tuple[int, ...]
    prompt: str
    givens: tuple[Given, ...] = ()
    position: tuple[int, ...] | None = None  # value questions
    value: float | None = None  # value questions: the right entry
    choices: tuple[str, ...] = ()  # formula questions
    choice: int | None = None  # formula questions: index of the right one

    @property
    def where(self) -> str:
        return "loss" if self.layer is None else f"layer {self.layer}"

    @property
    def label(self) -> str:
        """The tensor or entry asked about, e.g. `Z0[3, 1]`."""
        if not self.position:
            return self.name
        return f"{self.name}[{', '.join(str(p) for p in self.position)}]"

    @property
    def expected(self) -> str:
        """The right answer, as text."""
        if self.kind == "value":
            assert self.value is not None
            return f"{self.value:.6g}"
        if self.kind == "shape":
            return shape_text(self.shape)
        assert self.choice is not None
        return f"{LETTERS[self.choice]}) {self.choices[self.choice]}"

    @property
    def expects(self) -> str:
        """What form of answer the question takes, for a prompt."""
        return {
            "value": "a number, e.g. -0.4213 or 1.2e-3",
            "shape": "a shape, e.g. 16x4, (16, 4) or 4 for a vector",
            "formula": f"a letter a–{LETTERS[len(self.choices) - 1]}" if self.choices else "",
        }[self.kind]

    def to_dict(self, reveal: bool = False) -> dict[str, object]:
        out: dict[str, object] = {
            "number": self.number, "kind": self.kind, "step": self.step,
            "phase": self.phase, "layer": self.layer, "tensor": self.name,
            "prompt": self.prompt,
            "formula": None if self.kind == "formula" else self.formula,
            "explanation": None if self.kind == "formula" else self.explanation,
            "position": list(self.position) if self.position is not None else None,
            "given": [g.to_dict() for g in self.givens],
            "choices": list(self.choices),
            "expects": self.expects,
        }
        if reveal:
            out["answer"] = {
                "value": self.value,
                "shape": list(self.shape),
                "formula": LETTERS[self.choice] if self.choice is not None else None,
            }[self.kind]
            out["answer_text"] = self.expected
            if self.kind == "formula":
                out["formula"] = self.formula
                out["explanation"] = self.explanation
        return out


@dataclass(frozen=True)
class Verdict:
    """The grading of one answer."""

    correct: bool
    answer: str  # the learner's text
    expected: str  # the right answer, as text
    message: str  # one or two lines of feedback

    def to_dict(self) -> dict[str, object]:
        return {"status": "right" if self.correct else "wrong", "answer": self.answer,
                "expected": self.expected, "message": self.message}


# parsing answers ---------------------------------------------------------------------
_NUMBER_FORM = "expected a number such as -0.4213, 1.2e-3 or 3/16"
_SHAPE_FORM = ("expected a shape such as 16x4, (16, 4) or 16,4 — a single number for a vector "
               "(e.g. 4), 'scalar' for a single number")


def parse_number(text: str) -> float:
    """A number the way a learner types it: `-0.25`, `−0.25`, `1.2e-3`, `1.2×10^-3`, `3/16`."""
    t = text.strip().replace("−", "-").replace("–", "-").replace(" ", "")
    if not t:
        raise AnswerError(f"the answer is empty: {_NUMBER_FORM}")
    t = re.sub(r"[x×*]10\^", "e", t, flags=re.IGNORECASE)
    if "," in t:
        raise AnswerError(f"'{text.strip()}' is not a number ({_NUMBER_FORM}; use a point "
                          "for decimals)")
    try:
        if t.count("/") == 1:
            num, den = t.split("/")
            value = float(num) / float(den)
        else:
            value = float(t)
    except (ValueError, ZeroDivisionError):
        raise AnswerError(f"'{text.strip()}' is not a number: {_NUMBER_FORM}") from None
    if not math.isfinite(value):
        raise AnswerError(f"'{text.strip()}' is not a finite number: {_NUMBER_FORM}")
    return value


def parse_shape(text: str) -> tuple[int, ...]:
    """A shape in any usual spelling: `6x4`, `6×4`, `(6, 4)`, `[6,4]`, `6,4`, `6 4`, `(4,)`,
    `4`, `scalar` or `()`."""
    t = text.strip().lower()
    if not t:
        raise AnswerError(f"the answer is empty: {_SHAPE_FORM}")
    if t in ("scalar", "()", "[]", "0-d", "0d", "a scalar", "a number"):
        return ()
    inner = t
    if inner[0] in "([" and inner[-1] in ")]":
        inner = inner[1:-1]
    inner = inner.strip()
    if inner.endswith(","):  # "(4,)", as Python writes a 1-tuple
        inner = inner[:-1].strip()
    parts = re.split(r"\s*[x×*,]\s*|\s+", inner)
    if not parts or not all(p.isdigit() for p in parts) or any(int(p) == 0 for p in parts):
        raise AnswerError(f"'{text.strip()}' is not a shape: {_SHAPE_FORM}")
    return tuple(int(p) for p in parts)


def parse_choice(text: str, n: int) -> int:
    """A choice among `n`: a letter (`b`, `B`, `b)`), its number (`2`), or the formula."""
    t = text.strip().lower().rstrip(").:")
    if len(t) == 1 and t in LETTERS[:n]:
        return LETTERS.index(t)
    if t.isdigit() and 1 <= int(t) <= n:
        return int(t) - 1
    raise AnswerError(f"'{text.strip()}' is not one of the choices: expected a letter "
                      f"a–{LETTERS[n - 1]}")


def shape_text(shape: tuple[int, ...]) -> str:
    return "scalar" if not shape else "×".join(str(d) for d in shape) + (
        "  (a vector)" if len(shape) == 1 else "")


def value_tolerance(expected: float) -> float:
    """Right within RTOL relative, or to 3 significant digits (half a unit of the third)."""
    if expected == 0:
        return 1e-12
    digits = 0.5 * 10.0 ** (math.floor(math.log10(abs(expected))) - 2)
    return max(RTOL * abs(expected), digits) * (1 + 1e-9)


def check_answer(q: Question, text: str) -> Verdict:
    """Grade one answer; `AnswerError` if it cannot be read as the question's kind."""
    said = text.strip()
    if q.kind == "value":
        assert q.value is not None
        got = parse_number(text)
        err = abs(got - q.value)
        ok = err <= value_tolerance(q.value)
        rel = err / abs(q.value) if q.value else err
        off = f" (off by {100 * rel:.2g} %)" if rel < 1 else ""
        head = (f"right: {q.label} = {q.value:.6g}" if ok else
                f"not quite: {q.label} = {q.value:.6g}, you gave {said}{off}")
        return Verdict(ok, said, q.expected, f"{head}.  {q.formula}  — {q.explanation}")
    if q.kind == "shape":
        got_shape = parse_shape(text)
        ok = got_shape == q.shape
        note = ""
        if not ok and len(q.shape) == 1 and got_shape == (1, q.shape[0]):
            ok, note = True, f"  (bntui keeps it as a vector of {q.shape[0]}, one per feature)"
        head = (f"right: {q.name} is {shape_text(q.shape)}" if ok else
                f"not quite: {q.name} is {shape_text(q.shape)}, you gave "
                f"{shape_text(got_shape)}")
        return Verdict(ok, said, q.expected, f"{head}{note}.  {q.formula}")
    assert q.choice is not None
    picked = parse_choice(text, len(q.choices))
    ok = picked == q.choice
    head = (f"right: {q.formula}" if ok else
            f"not quite: you chose {LETTERS[picked]}) {q.choices[picked]}; "
            f"it is {LETTERS[q.choice]}) {q.formula}")
    return Verdict(ok, said, q.expected, f"{head}  — {q.explanation}")


# building questions ------------------------------------------------------------------
def _givens(ps: _Pass, step: TraceStep, pos: tuple[int, ...]) -> tuple[Given, ...]:
    out: list[Given] = []
    for source, pattern in _reads(ps, step):
        value, text = entry_of(ps, step, source, pattern, pos)
        if source == "X" and step.layer is not None and step.layer > 1:
            text += f"  (= A of layer {step.layer - 1})"
        if source == "logits":
            last = ps.network.blocks[-1]
            text += f"  (= {last.pre_name} of layer {last.index})"
        out.append(Given(text, value))
    return tuple(out)


def _shape_givens(ps: _Pass, step: TraceStep) -> tuple[Given, ...]:
    """The shapes of what the step is computed from (as 1-D arrays of the dimensions)."""
    out: list[Given] = []
    seen: set[str] = set()
    for source, _ in _reads(ps, step):
        source = "P" if source == "Py" else source
        if source in ("m", "eps", "Y", "alpha") or source in seen:
            continue
        seen.add(source)
        full, label = ps.tensor(source, step.layer)
        out.append(Given(label, np.asarray(full.shape), is_shape=True))
    return tuple(out)


def _value_ok(ps: _Pass, step: TraceStep) -> bool:
    words = step.words
    if words is None or words.copy or words.zero or not words.reads:
        return False  # a copy: nothing to work out; zero by construction: only rounding
    return bool(np.isfinite(step.value).all())


KINDS_BY_PREFERENCE = ("value", "formula", "shape")


def _eligible(ps: _Pass, kind: str) -> list[TraceStep]:
    steps = ps.trace.steps
    if kind == "value":
        return [s for s in steps if _value_ok(ps, s)]
    if kind == "shape":
        return [s for s in steps if s.words is not None and not s.words.copy]
    return [s for s in steps if s.words is not None and len(s.words.wrong) >= 3]


def _pick_position(step: TraceStep, rng: np.random.Generator) -> tuple[int, ...] | None:
    """An entry that is not vanishingly small next to the rest of the tensor."""
    v = np.asarray(step.value, dtype=np.float64)
    if v.ndim == 0:
        return ()
    big = float(np.max(np.abs(v))) if v.size else 0.0
    candidates = np.argwhere(np.abs(v) >= 1e-2 * big) if big > 0 else np.empty((0, v.ndim))
    if len(candidates) == 0:
        return None
    return tuple(int(k) for k in candidates[rng.integers(len(candidates))])


def _question(ps: _Pass, step: TraceStep, kind: str, number: int,
              rng: np.random.Generator) -> Question | None:
    where = "the loss" if step.layer is None else f"layer {step.layer}"
    common = dict(number=number, kind=kind, step=step.index, phase=step.phase,
                  layer=step.layer, name=step.name, formula=step.formula,
                  explanation=step.explanation, shape=step.shape)
    if kind == "value":
        pos = _pick_position(step, rng)
        if pos is None:
            return None
        givens = _givens(ps, step, pos)
        label = step.name + (f"[{', '.join(str(p) for p in pos)}]" if pos else "")
        prompt = (f"{step.phase}, {where}: {step.name} is hidden. What is {label}? "
                  "Work it out from the formula and the entries given.")
        return Question(**common, prompt=prompt, givens=givens, position=pos,  # type: ignore[arg-type]
                        value=float(np.asarray(step.value, dtype=np.float64)[pos]))
    if kind == "shape":
        prompt = (f"{step.phase}, {where}: what is the shape of {step.name}? "
                  f"(batch of m = {ps.trace.batch_size})")
        return Question(**common, prompt=prompt, givens=_shape_givens(ps, step))  # type: ignore[arg-type]
    assert step.words is not None
    right = step.formula
    wrong = list(step.words.wrong[:3])
    order = rng.permutation(len(wrong) + 1)
    options = [right, *wrong]
    choices = tuple(options[k] for k in order)
    prompt = (f"{step.phase}, {where}: the formula of {step.name} is hidden. "
              "Which one computes it?")
    return Question(**common, prompt=prompt, choices=choices,  # type: ignore[arg-type]
                    choice=choices.index(right))


def make_questions(trace: Trace, network: Network, y: np.ndarray, count: int = 5,
                   kind: str = "mixed", seed: int | Sequence[int] = 0) -> list[Question]:
    """`count` questions about `trace` (recorded from `network` on labels `y`), in the
    order of the pass.  The same arguments always give the same questions."""
    if kind not in KIND_CHOICES:
        raise BntuiError(f"kind must be one of {', '.join(KIND_CHOICES)} (got '{kind}')")
    if not 1 <= count <= MAX_COUNT:
        raise BntuiError(f"count must be between 1 and {MAX_COUNT} (got {count:,})")
    ps = _Pass(trace, network, np.asarray(y))
    rng = np.random.default_rng(seed)
    kinds = [kind] * count if kind != "mixed" else [
        str(k) for _ in range(count // 3 + 1) for k in rng.permutation(KINDS)][:count]
    pools = {k: _eligible(ps, k) for k in set(kinds)}
    for k, pool in pools.items():
        if not pool:
            raise BntuiError(f"this network has no step for a {k} question")
    left: dict[str, list[TraceStep]] = {k: [] for k in pools}
    picked: list[tuple[TraceStep, str]] = []
    for k in kinds:
        if not left[k]:  # every step asked once: start over, in a new order
            left[k] = [pools[k][int(t)] for t in rng.permutation(len(pools[k]))]
        picked.append((left[k].pop(), k))
    picked.sort(key=lambda sk: sk[0].index)
    out: list[Question] = []
    for step, k in picked:
        q = _question(ps, step, k, len(out) + 1, rng)
        if q is None:  # an all-zero tensor: ask its shape instead
            q = _question(ps, step, "shape", len(out) + 1, rng)
        assert q is not None
        out.append(q)
    return out


def question_at(trace: Trace, network: Network, y: np.ndarray, index: int,
                seed: int = 0) -> Question | None:
    """A question about step `index` of a trace (training or eval mode), as the
    stepper's exercise mode asks it: the entry of a hidden tensor when it can be worked
    out from the steps before, else its formula among wrong ones, else its shape; None for
    a step that only copies another (nothing to work out).  The same arguments give the
    same question."""
    ps = _Pass(trace, network, np.asarray(y))
    step = trace.steps[index]
    rng = np.random.default_rng([seed, index])
    # mostly values, sometimes the formula or the shape; the others if that one cannot be
    first = str(rng.choice(KINDS_BY_PREFERENCE, p=(0.6, 0.25, 0.15)))
    for kind in (first, *(k for k in KINDS_BY_PREFERENCE if k != first)):
        if step in _eligible(ps, kind):
            q = _question(ps, step, kind, 1, rng)
            if q is not None:
                return q
    return None


# a session of questions --------------------------------------------------------------
@dataclass
class Exercise:
    """A set of questions about one pass, the answers given so far and the score."""

    trace: Trace
    questions: list[Question]
    verdicts: list[Verdict | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.verdicts:
            self.verdicts = [None] * len(self.questions)

    def answer(self, number: int, text: str) -> Verdict:
        """Grade the answer to question `number` (1-based); `AnswerError` is not graded.
        A question already answered keeps its first verdict."""
        q = self.questions[number - 1]
        verdict = check_answer(q, text)
        if self.verdicts[number - 1] is None:
            self.verdicts[number - 1] = verdict
        return verdict

    def skip(self, number: int) -> Verdict:
        q = self.questions[number - 1]
        v = Verdict(False, "", q.expected, f"skipped: it is {q.expected}.  {q.formula}")
        if self.verdicts[number - 1] is None:
            self.verdicts[number - 1] = v
        return v

    @property
    def right(self) -> int:
        return sum(1 for v in self.verdicts if v is not None and v.correct)

    @property
    def answered(self) -> int:
        return sum(1 for v in self.verdicts if v is not None)

    def score_text(self) -> str:
        n = len(self.questions)
        text = f"score {self.right}/{self.answered}"
        if self.answered < n:
            text += f" ({n - self.answered} of {n} not answered)"
        return text


def exercise_trace(network: Network, X: np.ndarray, y: np.ndarray,
                   rows: int | None = 16, training: bool = True) -> tuple[Trace, np.ndarray]:
    """A trace of the first `rows` samples (small enough to work by hand), in training or
    eval mode, and the labels it used."""
    if rows is not None:
        if rows < 2 and any(b.bn is not None for b in network.blocks):
            raise BntuiError("rows must be at least 2 with BatchNorm (a batch of 1 has no "
                             "variance)")
        X, y = X[:rows], y[:rows]
    return record_trace(network, X, y, training=training), np.asarray(y)


def make_exercise(network: Network, X: np.ndarray, y: np.ndarray, count: int = 5,
                  kind: str = "mixed", seed: int | Sequence[int] = 0,
                  rows: int | None = 16, training: bool = True) -> Exercise:
    """Record a pass of `network` on the first `rows` samples and draw `count` questions."""
    trace, labels = exercise_trace(network, X, y, rows, training)
    return Exercise(trace, make_questions(trace, network, labels, count, kind, seed))
