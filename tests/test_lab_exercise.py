"""Exercise mode: the questions' right answers against values worked out by hand, the
parsing and grading of answers, seeds, `bntui lab exercise`, and the app's lab."""

from __future__ import annotations

import io
import json
import time
from dataclasses import replace

import numpy as np
import pytest

from bntui.cli import main
from bntui.engine import RunConfig, Session, preset
from bntui.engine.labs.exercise import (
    AnswerError,
    Exercise,
    Question,
    check_answer,
    make_exercise,
    parse_choice,
    parse_number,
    parse_shape,
)

SOFTMAX = preset("seed-softmax")
DEEP = RunConfig(dataset="moons", arch="6:tanh,5:sigmoid,4:relu:nobn,C", seed=3)


def session_and_batch(cfg: RunConfig, rows: int = 16):
    s = Session(cfg)
    X, y = s.inspection_batch()
    return s, X[:rows], y[:rows]


def hand_pass_softmax(session: Session, X: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """seed-softmax by hand: Dense without bias → BatchNorm → softmax + cross-entropy."""
    block = session.network.blocks[0]
    W = block.dense.params["W"]
    g, b, eps = block.bn.params["gamma"], block.bn.params["beta"], block.bn.eps
    m = X.shape[0]
    t: dict[str, np.ndarray] = {"X": X, "Z": X @ W}
    t["mu"] = t["Z"].sum(axis=0) / m
    t["Z0"] = t["Z"] - t["mu"]
    t["var"] = (t["Z0"] ** 2).sum(axis=0) / m
    t["std"] = np.sqrt(t["var"] + eps)
    t["Znorm"] = t["Z0"] / t["std"]
    t["Zbn"] = g * t["Znorm"] + b
    e = np.exp(t["Zbn"] - t["Zbn"].max(axis=1, keepdims=True))
    t["P"] = e / e.sum(axis=1, keepdims=True)
    t["loss"] = np.asarray(-np.log(t["P"][np.arange(m), y]).mean())
    Y = np.eye(t["P"].shape[1])[y]
    t["dlogits"] = (t["P"] - Y) / m
    dZbn = t["dZbn"] = t["dlogits"]
    t["dbeta"] = dZbn.sum(axis=0)
    t["dgamma"] = (dZbn * t["Znorm"]).sum(axis=0)
    t["dZnorm"] = dZbn * g
    t["dstd"] = (t["dZnorm"] * -t["Z0"] / t["std"] ** 2).sum(axis=0)
    t["dvar"] = t["dstd"] / (2 * t["std"])
    t["dZ0"] = t["dZnorm"] / t["std"] + t["dvar"] * 2 * t["Z0"] / m
    t["dmu"] = -t["dZ0"].sum(axis=0)
    t["dZ"] = t["dZ0"] + t["dmu"] / m
    t["dW"] = X.T @ t["dZ"]
    t["dX"] = t["dZ"] @ W.T
    return t


# what a learner does with the entries shown: the formula, applied to the givens
ACT = {
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: float(z > 0)),
    "tanh": (np.tanh, lambda z, a: 1 - a**2),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z, a: a * (1 - a)),
}


def from_givens(q: Question, session: Session) -> float:
    v = [np.asarray(g.value, dtype=float) for g in q.givens]
    name = q.name
    if name == "A" or q.givens[0].label.startswith("dA"):  # through the activation
        f, df = ACT[session.network.blocks[q.layer - 1].act.name]
        if name == "A":
            return float(f(v[0]))
        # the record gives what the slope needs: dA and A (sigmoid, tanh) or Z (relu)
        g = {given.label.split("[")[0]: float(given.value) for given in q.givens}
        pre = g.get("Zbn", g.get("Z"))
        return float(g["dA"] * df(pre, g.get("A")))
    rules = {
        "Z": lambda: float(v[0] @ v[1] + (v[2] if len(v) > 2 else 0.0)),
        "mu": lambda: float(v[0].mean()),
        "Z0": lambda: float(v[0] - v[1]),
        "var": lambda: float((v[0] ** 2).mean()),
        "std": lambda: float(np.sqrt(v[0] + v[1])),
        "Znorm": lambda: float(v[0] / v[1]),
        "Zbn": lambda: float(v[1] * v[0] + v[2]),
        "P": lambda: float(np.exp(v[0] - v[0].max())[q.position[1]]
                           / np.exp(v[0] - v[0].max()).sum()),
        "loss": lambda: float(-np.log(v[0]).sum() / v[1]),
        "dlogits": lambda: float((v[0] - v[1]) / v[2]),
        "dbeta": lambda: float(v[0].sum()),
        "dgamma": lambda: float((v[0] * v[1]).sum()),
        "dZnorm": lambda: float(v[0] * v[1]),
        "dstd": lambda: float((v[0] * -v[1] / v[2] ** 2).sum()),
        "dvar": lambda: float(v[0] / (2 * v[1])),
        "dZ0": lambda: float(v[0] / v[1] + v[2] * 2 * v[3] / v[4]),
        "dmu": lambda: float(-v[0].sum()),
        "dZ": lambda: float(v[0] + v[1] / v[2]),
        "dW": lambda: float((v[0] * v[1]).sum()),
        "db": lambda: float(v[0].sum()),
        "dX": lambda: float(v[0] @ v[1]),
    }
    return rules[name]()


# engine ----------------------------------------------------------------------------------
def test_value_answers_equal_a_pass_worked_out_by_hand():
    s, X, y = session_and_batch(SOFTMAX)
    hand = hand_pass_softmax(s, X, y)
    ex = make_exercise(s.network, X, y, count=60, kind="value", seed=1)
    asked = {q.name for q in ex.questions}
    # every computed tensor of the pass is asked about (copies and X are not)
    assert asked == set(hand) - {"X", "dZbn"}
    for q in ex.questions:
        assert q.value == pytest.approx(float(hand[q.name][q.position]), rel=1e-9, abs=1e-15)
        # and the entries shown are enough to work it out
        assert from_givens(q, s) == pytest.approx(q.value, rel=1e-9, abs=1e-15)


def test_value_answers_follow_from_the_givens_in_a_deeper_network():
    s, X, y = session_and_batch(DEEP, rows=12)
    ex = make_exercise(s.network, X, y, count=150, kind="value", seed=2, rows=12)
    names = {(q.layer, q.name) for q in ex.questions}
    assert {(1, "Z"), (1, "dZ0"), (2, "A"), (2, "dZbn"), (3, "dZ"), (3, "db"), (3, "dX"),
            (None, "loss"), (None, "P"), (None, "dlogits")} <= names
    assert (1, "db") not in names  # zero by construction before BatchNorm: not asked
    for q in ex.questions:
        assert from_givens(q, s) == pytest.approx(q.value, rel=1e-9, abs=1e-13), q.label
        big = np.abs(ex.trace.steps[q.step].value).max()
        assert abs(q.value) >= 1e-2 * big  # no entry that is only rounding


def test_shapes_and_formula_choices():
    s, X, y = session_and_batch(SOFTMAX)
    hand = hand_pass_softmax(s, X, y)
    shapes = make_exercise(s.network, X, y, count=20, kind="shape", seed=0)
    for q in shapes.questions:
        if q.name in hand:
            assert q.shape == hand[q.name].shape
        assert check_answer(q, "x".join(map(str, q.shape)) or "scalar").correct
    formulas = make_exercise(s.network, X, y, count=20, kind="formula", seed=0)
    for q in formulas.questions:
        step = formulas.trace.steps[q.step]
        assert step.formula.startswith(q.choices[q.choice])
        assert len(set(q.choices)) == 4
        assert set(q.choices) - {q.formula} == set(step.words.wrong[:3])  # the record's
        assert q.to_dict()["formula"] is None  # hidden while asked
    by_name = {q.name: q for q in formulas.questions}
    assert "dβ = Σᵢ Zbn" in by_name["dbeta"].choices  # seed 000's mistake
    assert "std = √var + ε" in by_name["std"].choices
    assert "var = (1/(m−1)) Σᵢ Z0²" in by_name["var"].choices
    assert "dlogits = P − Y" in by_name["dlogits"].choices  # the missing 1/m


def test_the_same_seed_gives_the_same_questions():
    s, X, y = session_and_batch(DEEP)

    def dump(seed: int) -> list[dict]:
        ex = make_exercise(s.network, X, y, count=8, seed=seed)
        return [q.to_dict(reveal=True) for q in ex.questions]

    assert dump(5) == dump(5)
    assert dump(5) != dump(6)
    kinds = {q["kind"] for q in dump(5)}
    assert kinds == {"value", "shape", "formula"}  # mixed mixes


def value_question(v: float) -> Question:
    return Question(number=1, kind="value", step=0, phase="forward", layer=1, name="Z0",
                    formula="Z0 = Z − mu", explanation="centred", shape=(4, 2),
                    prompt="?", position=(1, 0), value=v)


def test_answers_within_tolerance_or_three_significant_digits():
    q = value_question(0.123456)
    assert check_answer(q, "0.123456").correct
    assert check_answer(q, "0.1235").correct  # 1e-3 relative
    assert check_answer(q, "0.123").correct  # 3 significant digits
    assert not check_answer(q, "0.12").correct
    assert not check_answer(q, "-0.123456").correct
    verdict = check_answer(q, "0.2")
    assert "0.123456" in verdict.message and "Z0 = Z − mu" in verdict.message
    neg = value_question(-2.5e-4)
    for text in ("-0.00025", "−2.5e-4", "-2.5×10^-4", "-1/4000", " -0.000250 "):
        assert check_answer(neg, text).correct, text


@pytest.mark.parametrize("text", ["abc", "", "  ", "1,5", "nan", "inf", "1/0", "0.1.2", "--1"])
def test_a_number_that_cannot_be_read_is_not_graded(text):
    with pytest.raises(AnswerError, match="expected a number"):
        parse_number(text)


def test_shapes_in_several_spellings():
    for text in ("16x4", "16×4", "16 X 4", "(16, 4)", "[16,4]", "16,4", "16 4", "16*4"):
        assert parse_shape(text) == (16, 4), text
    assert parse_shape("(4,)") == parse_shape("4") == (4,)
    assert parse_shape("scalar") == parse_shape("()") == ()
    for bad in ("abc", "16x", "0x4", "4.5", "x4", "-4"):
        with pytest.raises(AnswerError, match="expected a shape"):
            parse_shape(bad)
    assert parse_choice("b", 4) == parse_choice("B)", 4) == parse_choice("2", 4) == 1
    for bad in ("e", "5", "maybe", ""):
        with pytest.raises(AnswerError, match="expected a letter a–d"):
            parse_choice(bad, 4)


def test_score_counts_right_and_wrong_not_unreadable():
    s, X, y = session_and_batch(SOFTMAX)
    ex = make_exercise(s.network, X, y, count=4, kind="value", seed=0)
    q1, q2, q3, _ = ex.questions
    assert ex.answer(1, f"{q1.value:.8g}").correct
    assert not ex.answer(2, f"{q2.value * 2 + 1:.8g}").correct
    with pytest.raises(AnswerError):
        ex.answer(3, "no idea")
    assert (ex.right, ex.answered) == (1, 2)
    assert not ex.skip(3).correct
    assert ex.score_text() == "score 1/3 (1 of 4 not answered)"
    ex.answer(2, f"{q2.value:.8g}")  # a second try does not change the score
    assert (ex.right, ex.answered) == (1, 3)
    assert isinstance(ex, Exercise) and q3.number == 3


# command line ----------------------------------------------------------------------------
BASE = ["lab", "exercise", "--preset", "seed-softmax", "--count", "4"]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([*BASE, *args])
    out, err = capsys.readouterr()
    return code, out, err


def right_and_wrong(q: dict) -> tuple[str, str]:
    if q["kind"] == "value":
        return repr(q["answer"]), repr(q["answer"] * 3 + 1)
    if q["kind"] == "shape":
        return "x".join(map(str, q["answer"])) or "scalar", "99x99"
    return q["answer"], "a" if q["answer"] != "a" else "b"


def test_cli_json_questions_hide_the_answers_unless_revealed(capsys):
    code, out, err = run_cli(capsys, "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["count"] == 4 and len(data["questions"]) == 4
    assert all("answer" not in q for q in data["questions"])
    code, out, _ = run_cli(capsys, "--json", "--reveal")
    revealed = json.loads(out)["questions"]
    assert all("answer" in q for q in revealed)
    assert [q["prompt"] for q in revealed] == [q["prompt"] for q in data["questions"]]


def test_cli_scripted_session_keeps_the_score(capsys):
    _, out, _ = run_cli(capsys, "--json", "--reveal")
    qs = json.loads(out)["questions"]
    answers = [right_and_wrong(qs[0])[0], right_and_wrong(qs[1])[1], "???", "skip"]
    code, out, err = run_cli(capsys, "--answers", ";".join(answers))
    assert code == 0 and err == ""
    assert out.count("✓") == 1 and out.count("✗") == 2
    assert "not graded" in out
    assert out.rstrip().endswith("score 1/3 (1 of 4 not answered)")
    code, out, _ = run_cli(capsys, "--json", "--answers", ";".join(answers[:3]))
    data = json.loads(out)
    assert [g["status"] for g in data["grading"]] == ["right", "wrong", "invalid"]
    assert data["score"] == {"right": 1, "answered": 2, "total": 4}


def test_cli_reads_piped_answers_and_ends_cleanly_at_eof(capsys, monkeypatch):
    _, out, _ = run_cli(capsys, "--json", "--reveal")
    qs = json.loads(out)["questions"]
    right = right_and_wrong(qs[0])[0]
    monkeypatch.setattr("sys.stdin", io.StringIO(f"what?\n{right}\n"))
    code, out, err = run_cli(capsys)
    assert code == 0 and err == "" and "Traceback" not in out
    assert "try again" in out  # the unreadable answer is asked again, not graded
    assert "(end of input)" in out
    assert out.rstrip().endswith("score 1/1 (3 of 4 not answered)")


@pytest.mark.parametrize("args", [["--kind", "values"], ["--count", "0"], ["--rows", "1"],
                                  ["--answers", "1;2;3;4;5"], ["--dataset", "nope"]])
def test_cli_bad_input_is_one_line_and_exit_2(capsys, args):
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# the app ---------------------------------------------------------------------------------
async def wait(condition, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        import asyncio

        await asyncio.sleep(0.02)


async def test_app_lab_grades_one_right_and_one_wrong_answer():
    from textual.widgets import Input, TabbedContent

    from bntui.ui.app import BntuiApp
    from bntui.ui.form import Note
    from bntui.ui.labs_pane import LabsPane

    app = BntuiApp(replace(SOFTMAX, steps=10))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(lambda: app.session is not None and app.query(LabsPane))
        await pilot.press("8")  # the Labs pane, then the Exercise lab in its list
        await wait(lambda: app.query_one(TabbedContent).active == "labs")
        pane = app.query_one(LabsPane)
        pane.show_lab("exercise")
        await wait(lambda: pane.current is not None and pane.current.LAB_ID == "exercise"
                   and pane.current.ready)
        assert app.query_one(TabbedContent).active == "labs"
        lab = pane.current
        note = lab.query_one("#ex-feedback", Note)
        field = lab.query_one("#ex-answer", Input)

        async def answer(text: str) -> str:
            field.focus()
            field.value = text
            await pilot.press("enter")
            await pilot.pause()
            return str(note.render())

        # the question the app asks is the engine's, on the app's own network and batch
        s = Session(SOFTMAX)
        X, y = s.inspection_batch()
        same = make_exercise(s.network, X, y, count=10, seed=[SOFTMAX.seed, 0])
        assert [q.prompt for q in lab.exercise.questions] == [q.prompt for q in same.questions]
        q = lab.question
        right = {"value": f"{q.value!r}", "shape": "x".join(map(str, q.shape)) or "scalar",
                 "formula": "abcd"[q.choice or 0]}[q.kind]
        assert "not a" in await answer("zzz")  # unreadable: a message, no score
        assert lab.exercise.answered == 0
        assert "right" in await answer(right)
        await pilot.press("enter")  # Enter again: the next question
        assert lab.current == 1
        q2 = lab.question
        wrong = {"value": f"{(q2.value or 0) * 3 + 1!r}", "shape": "99x99",
                 "formula": "abcd"[((q2.choice or 0) + 1) % 4]}[q2.kind]
        assert "not quite" in await answer(wrong)
        assert (lab.exercise.right, lab.exercise.answered) == (1, 2)
        assert "score 1/2" in str(lab.query_one("#ex-head").render())


def test_question_at_each_step_of_the_pass() -> None:
    """The stepper's exercise mode: one question per step, the same on every call; a
    value question's answer is the trace's own entry; a copy step asks nothing."""
    from bntui.engine import Session, preset
    from bntui.engine.labs.exercise import check_answer, question_at

    session = Session(preset("seed-softmax"))
    _, y = session.inspection_batch()
    trace = session.trace(True)
    kinds = set()
    for i, step in enumerate(trace.steps):
        q = question_at(trace, session.network, y, i)
        if step.name in ("X", "dZbn"):  # the input batch; dZbn = dlogits, a copy
            assert q is None, step.name
            continue
        assert q is not None and q.step == i and q.name == step.name
        again = question_at(trace, session.network, y, i)
        assert again is not None and again.to_dict(reveal=True) == q.to_dict(reveal=True)
        kinds.add(q.kind)
        if q.kind == "value":
            assert q.value == float(np.asarray(step.value)[q.position])
            assert check_answer(q, f"{q.value:.6g}").correct
            assert not check_answer(q, f"{2 * q.value + 1:.6g}").correct
        elif q.kind == "formula":
            assert q.choices[q.choice] == q.formula
    assert "value" in kinds and len(kinds) >= 2


def test_the_eval_pass_asks_about_what_eval_computes() -> None:
    """In eval mode the questions are the eval records': mu is the running mean (given
    as such), the gradients stop at Z0 (no dmu, no dvar), and every value answer is the
    eval trace's own entry, worked out from the entries given."""
    from bntui.engine.labs.exercise import check_answer, question_at

    session = Session(preset("seed-digits").with_overrides(steps=3))
    session.train(steps=3, eval_every=10**9)
    _, y = session.inspection_batch()
    trace = session.trace(False)
    assert not any(s.name in ("dmu", "dvar", "dstd") for s in trace.steps)
    bn = session.network.blocks[0].bn
    for i, step in enumerate(trace.steps):
        for seed in range(4):
            q = question_at(trace, session.network, y, i, seed=seed)
            if q is None:
                continue
            if q.kind == "value":
                assert q.value == float(np.asarray(step.value)[q.position])
                assert check_answer(q, f"{q.value:.6g}").correct
            if q.kind == "formula":
                assert q.choices[q.choice] == step.formula
    mu = trace.find("mu", 1, "forward")
    assert mu.formula == "mu = running_mean"
    ex = make_exercise(session.network, *session.inspection_batch(), count=30, kind="value",
                       seed=1, training=False)
    asked = [q for q in ex.questions if q.name == "mu" and q.layer == 1]
    for q in asked:
        (given,) = q.givens
        assert given.label.startswith("running_mean[")
        assert float(given.value) == float(bn.running_mean[q.position[-1]]) == q.value


def test_cli_asks_about_the_eval_pass(capsys: pytest.CaptureFixture[str]) -> None:
    """`bntui lab exercise --eval`: the questions are the eval records' (the running
    statistics), and every value is graded right when given."""
    argv = ["lab", "exercise", "--preset", "seed-softmax", "--steps", "20", "--eval",
            "--count", "12", "--kind", "value", "--json", "--reveal"]
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["mode"] == "eval"
    formulas = {q["tensor"]: q["formula"] for q in d["questions"]}
    assert formulas.get("mu", "mu = running_mean") == "mu = running_mean"
    assert not {"dmu", "dvar", "dstd"} & set(formulas)
    answers = ";".join(f"{q['answer']:.6g}" for q in d["questions"])
    assert main([*argv[:-2], "--answers", answers, "--json"]) == 0
    graded = json.loads(capsys.readouterr().out)
    assert graded["score"]["right"] == 12
