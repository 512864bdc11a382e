"""The normalization family in every headless view: `bntui walk` (text, JSON, handouts),
the exercises and the glossary.

Independent references: the order of every step of a pass written out by hand, each
statistic recomputed here with NumPy from the walk's own Z (a LayerNorm's mu is the row
mean of Z, a GroupNorm's the mean of each row's group, an RMSNorm's ms the row mean of
Z²), and every exercise answer worked out from the entries it gives.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from bntui.cli import main
from bntui.engine import RunConfig, Session, glossary
from bntui.engine.groupnorm import GroupNorm
from bntui.engine.labs.exercise import Question, check_answer, make_exercise, question_at
from bntui.engine.layernorm import LayerNorm
from bntui.engine.rmsnorm import RMSNorm

ARCH = "6:ln:tanh,8:gn=2:relu,5:rms:sigmoid,C"
DATA = ["--dataset", "moons", "--samples", "40"]

LN_FORWARD = ["Z", "mu", "Z0", "var", "std", "Znorm", "Zln", "A"]
GN_FORWARD = ["Z", "mu", "Z0", "var", "std", "Znorm", "Zgn", "A"]
RMS_FORWARD = ["Z", "ms", "rms", "Znorm", "Zrms", "A"]
BN_OUT_FORWARD = ["Z", "mu", "Z0", "var", "std", "Znorm", "Zbn"]
LN_BACKWARD = ["dA", "dZln", "dbeta", "dgamma", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ",
               "dW", "db", "dX"]
GN_BACKWARD = ["dA", "dZgn", "dbeta", "dgamma", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ",
               "dW", "db", "dX"]
RMS_BACKWARD = ["dA", "dZrms", "dgamma", "dZnorm", "drms", "dms", "dZ", "dW", "db", "dX"]
BN_OUT_BACKWARD = ["dZbn", "dbeta", "dgamma", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ",
                   "dW", "db", "dX"]
# the whole pass of ARCH, in order, written out by hand: (phase, layer, kind, name)
PASS = (
    [("forward", 1, "input", "X")]
    + [("forward", 1, "dense" if n == "Z" else "activation" if n == "A" else "layernorm", n)
       for n in LN_FORWARD]
    + [("forward", 2, "dense" if n == "Z" else "activation" if n == "A" else "groupnorm", n)
       for n in GN_FORWARD]
    + [("forward", 3, "dense" if n == "Z" else "activation" if n == "A" else "rmsnorm", n)
       for n in RMS_FORWARD]
    + [("forward", 4, "dense" if n == "Z" else "batchnorm", n) for n in BN_OUT_FORWARD]
    + [("forward", None, "loss", n) for n in ("P", "loss")]
    + [("backward", None, "loss", "dlogits")]
    + [("backward", 4, "output" if n == "dZbn" else "dense" if n in ("dW", "db", "dX")
        else "batchnorm", n) for n in BN_OUT_BACKWARD]
    + [("backward", 3, "activation" if n in ("dA", "dZrms") else "dense"
        if n in ("dW", "db", "dX") else "rmsnorm", n) for n in RMS_BACKWARD]
    + [("backward", 2, "activation" if n in ("dA", "dZgn") else "dense"
        if n in ("dW", "db", "dX") else "groupnorm", n) for n in GN_BACKWARD]
    + [("backward", 1, "activation" if n in ("dA", "dZln") else "dense"
        if n in ("dW", "db", "dX") else "layernorm", n) for n in LN_BACKWARD]
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def walk_json() -> dict:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["walk", "--arch", ARCH, *DATA, "--json"]) == 0
    return json.loads(buf.getvalue())


# walk ----------------------------------------------------------------------------------------
def test_walk_json_has_every_step_of_the_pass_in_order(walk_json: dict) -> None:
    steps = walk_json["steps"]
    assert [(s["phase"], s["layer"], s["kind"], s["name"]) for s in steps] == PASS
    assert walk_json["normalization"] == [
        {"layer": 1, "kind": "layernorm", "describe": "LayerNorm(6, eps=1e-05)",
         "convention": None},
        {"layer": 2, "kind": "groupnorm",
         "describe": "GroupNorm(2 groups of 4, 8, eps=1e-05)", "convention": None},
        {"layer": 3, "kind": "rmsnorm", "describe": "RMSNorm(5, eps=1e-06)",
         "convention": None},
        {"layer": 4, "kind": "batchnorm", "convention": "torch",
         "describe": walk_json["normalization"][3]["describe"]},
    ]
    assert walk_json["normalization"][3]["describe"].startswith("BatchNorm(2, torch")


def test_walk_statistics_are_per_sample_and_equal_numpys(walk_json: dict) -> None:
    """Each statistic recomputed from the walk's own Z: per sample (m × 1, m × G), not per
    feature; and each output is the textbook formula applied to Z."""
    m = walk_json["batch_size"]
    t = {(s["layer"], s["name"]): np.asarray(s["value"], dtype=float)
         for s in walk_json["steps"] if s["phase"] == "forward"}
    shapes = {(s["layer"], s["name"]): tuple(s["shape"]) for s in walk_json["steps"]}
    # LayerNorm over the 6 features of each sample
    Z = t[1, "Z"]
    assert shapes[1, "mu"] == shapes[1, "var"] == shapes[1, "std"] == (m, 1)
    np.testing.assert_allclose(t[1, "mu"][:, 0], Z.mean(axis=1), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(t[1, "var"][:, 0], Z.var(axis=1), rtol=1e-12)
    ln = (Z - Z.mean(axis=1, keepdims=True)) / np.sqrt(Z.var(axis=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(t[1, "Zln"], ln, rtol=1e-10, atol=1e-12)  # γ = 1, β = 0
    # GroupNorm: 2 groups of 4 features, each sample's own
    Z = t[2, "Z"]
    assert shapes[2, "mu"] == shapes[2, "var"] == (m, 2)
    groups = Z.reshape(m, 2, 4)
    np.testing.assert_allclose(t[2, "mu"], groups.mean(axis=2), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(t[2, "var"], groups.var(axis=2), rtol=1e-12)
    gn = ((groups - groups.mean(axis=2, keepdims=True))
          / np.sqrt(groups.var(axis=2, keepdims=True) + 1e-5)).reshape(m, 8)
    np.testing.assert_allclose(t[2, "Zgn"], gn, rtol=1e-10, atol=1e-12)
    # RMSNorm: no centring, ε 1e-6
    Z = t[3, "Z"]
    assert shapes[3, "ms"] == shapes[3, "rms"] == (m, 1)
    np.testing.assert_allclose(t[3, "ms"][:, 0], (Z**2).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(t[3, "Zrms"], Z / np.sqrt((Z**2).mean(axis=1, keepdims=True)
                                                         + 1e-6), rtol=1e-12)
    # and the one BatchNorm: per feature, over the batch
    assert shapes[4, "mu"] == (2,)
    np.testing.assert_allclose(t[4, "mu"], t[4, "Z"].mean(axis=0), rtol=1e-12, atol=1e-15)


def test_walk_backward_invariants_of_per_sample_normalizations(walk_json: dict) -> None:
    """What centring per sample implies, checked on the walk's gradients: shifting all of
    a sample's features (a group's, for GroupNorm) leaves the output unchanged, so the
    Dense bias's gradient sums to 0 over them — a bias before LayerNorm is only partly
    wasted (its mean), unlike before BatchNorm (all of it)."""
    g = {(s["layer"], s["name"]): np.asarray(s["value"], dtype=float)
         for s in walk_json["steps"] if s["phase"] == "backward"}
    for layer, size in ((1, 6), (2, 4)):
        dZ, db = g[layer, "dZ"], g[layer, "db"]
        scale = np.abs(dZ).max()
        rows = dZ.reshape(dZ.shape[0], -1, size).sum(axis=2)
        assert np.abs(rows).max() < 1e-12 * scale * size
        assert np.abs(db.reshape(-1, size).sum(axis=1)).max() < 1e-11 * np.abs(db).max()
        assert np.abs(db).max() > 1e-6  # …while db itself is not zero
    dZ = g[3, "dZ"]  # RMSNorm does not centre: no such invariant
    assert np.abs(dZ.sum(axis=1)).max() > 1e-6 * np.abs(dZ).max()


def test_walk_text_names_each_blocks_normalization(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "walk", "--arch", ARCH, *DATA, "--layer", "2")
    head, *norms = out.splitlines()[:5]
    assert head.startswith("walk of 2 → 6 LN tanh → 8 GN relu → 5 RMS sigmoid → 2 BN softmax")
    assert norms[:3] == ["  layer 1: LayerNorm(6, eps=1e-05)",
                         "  layer 2: GroupNorm(2 groups of 4, 8, eps=1e-05)",
                         "  layer 3: RMSNorm(5, eps=1e-06)"]
    assert norms[3].startswith("  layer 4: BatchNorm(2, torch")
    for formula in ("mu = (1/S) Σⱼ∈g Z", "var = (1/S) Σⱼ∈g Z0²", "Zgn = γ · Znorm + β",
                    "dZ = dZ0 + dmu / S"):
        assert formula in out
    assert "· groupnorm · mu  (32×2)" in out  # 40 samples, 32 of them for training
    out = run(capsys, "walk", "--arch", "6:tanh:nobn,C:nobn", *DATA, "--layer", "1")
    assert out.splitlines()[1] == "  no normalization layer"


@pytest.mark.parametrize("form", ["md", "html"])
def test_handouts_name_the_normalizations_and_show_each_statistic(
        capsys: pytest.CaptureFixture[str], form: str) -> None:
    out = run(capsys, "walk", "--arch", ARCH, *DATA, "--format", form)
    if form == "md":
        assert re.search(r"^\| normalization \| layer 1 LayerNorm\(6, eps=1e-05\); layer 2 "
                         r"GroupNorm\(2 groups of 4, 8, eps=1e-05\); layer 3 RMSNorm\(5, "
                         r"eps=1e-06\); layer 4 BatchNorm\(2, torch: eps 1e-5", out, re.M)
        heads = re.findall(r"^### \d+/(\d+) · (.*?) · (\w+) · `(\w+)`", out, re.M)
        assert [(f"layer {la}" if la else "loss", k, n) for _, la, k, n in PASS] == [
            (w, k, n) for _, w, k, n in heads]
        # a per-sample statistic is a column: one row per sample (16 shown of 32)
        mu = out.split("· layernorm · `mu` (32 × 1)")[1].split("###")[0]
        assert "top-left 16 × 1 of 32 × 1" in mu
        assert "| | 0 |" in mu.replace("|  | 0 |", "| | 0 |")
    else:
        assert "<td><strong>normalization</strong></td><td>layer 1 LayerNorm(6, eps=1e-05)" in out
        assert out.count("<section") == len(PASS)
        assert "rmsnorm · <code>ms</code> (32 × 1)" in out
    for formula in ("ms = (1/D) Σⱼ Z²", "rms = √(ms + ε)", "Zrms = γ · Znorm",
                    "mu = (1/D) Σⱼ Z", "dZ = dZnorm / rms + dms · 2 · Z / D"):
        assert formula in out


def test_handout_of_a_network_without_batchnorm_says_eval_is_training(
        capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "walk", "--arch", "6:ln:tanh,C:rms", *DATA, "--format", "md", "--eval",
              "--phase", "forward")
    assert "| mode | eval (the same as training: no BatchNorm, no running statistics) |" in out


# exercises -----------------------------------------------------------------------------------
ACT = {
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: float(z > 0)),
    "tanh": (np.tanh, lambda z, a: 1 - a**2),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z, a: a * (1 - a)),
}
OUTPUTS = ("Zbn", "Zln", "Zgn", "Zrms")


def from_givens(q: Question, session: Session) -> float:
    """What a learner computes from the entries a value question shows: the textbook
    formula of the tensor, applied to the givens in the order the prompt lists them."""
    v = [np.asarray(g.value, dtype=float) for g in q.givens]
    g = {given.label.split("[")[0].split(" ")[0]: float(np.sum(given.value))
         for given in q.givens}
    name = q.name
    if name == "A":
        return float(ACT[session.network.blocks[q.layer - 1].act.name][0](v[0]))
    if name in {"d" + o for o in OUTPUTS} and "dA" in g:  # through the activation
        df = ACT[session.network.blocks[q.layer - 1].act.name][1]
        pre = g.get(name[1:], g.get("Z"))
        return float(g["dA"] * df(pre, g.get("A")))
    rules = {
        "Z": lambda: float(v[0] @ v[1] + (v[2] if len(v) > 2 else 0.0)),
        "mu": lambda: float(v[0].mean()),
        "Z0": lambda: float(v[0] - v[1]),
        "var": lambda: float((v[0] ** 2).mean()),
        "ms": lambda: float((v[0] ** 2).mean()),
        "std": lambda: float(np.sqrt(v[0] + v[1])),
        "rms": lambda: float(np.sqrt(v[0] + v[1])),
        "Znorm": lambda: float(v[0] / v[1]),
        "Zbn": lambda: float(v[1] * v[0] + v[2]),
        "Zln": lambda: float(v[1] * v[0] + v[2]),
        "Zgn": lambda: float(v[1] * v[0] + v[2]),
        "Zrms": lambda: float(v[1] * v[0]),
        "P": lambda: float(np.exp(v[0] - v[0].max())[q.position[1]]
                           / np.exp(v[0] - v[0].max()).sum()),
        "loss": lambda: float(-np.log(v[0]).sum() / v[1]),
        "dlogits": lambda: float((v[0] - v[1]) / v[2]),
        "dbeta": lambda: float(v[0].sum()),
        "dgamma": lambda: float((v[0] * v[1]).sum()),
        "dZnorm": lambda: float(v[0] * v[1]),
        "dstd": lambda: float((v[0] * -v[1] / v[2] ** 2).sum()),
        "drms": lambda: float((v[0] * -v[1] / v[2] ** 2).sum()),
        "dvar": lambda: float(v[0] / (2 * v[1])),
        "dms": lambda: float(v[0] / (2 * v[1])),
        "dZ0": lambda: float(v[0] / v[1] + v[2] * 2 * v[3] / v[4]),
        "dmu": lambda: float(-v[0].sum()),
        # through the mean (BatchNorm, LayerNorm, GroupNorm), or RMSNorm's two branches
        "dZ": lambda: float(v[0] + v[1] / v[2] if len(v) == 3
                            else v[0] / v[1] + v[2] * 2 * v[3] / v[4]),
        "dW": lambda: float((v[0] * v[1]).sum()),
        "db": lambda: float(v[0].sum()),
        "dX": lambda: float(v[0] @ v[1]),
    }
    return rules[name]()


@pytest.fixture(scope="module")
def norm_session() -> Session:
    return Session(RunConfig(dataset="moons", arch="6:ln:tanh,8:gn=2:sigmoid,5:rms:relu,C:ln",
                             seed=4))


def test_every_step_of_a_norm_network_is_asked_and_its_givens_recompute_it(
        norm_session: Session) -> None:
    """Every forward and backward step that computes something is asked (the pool goes
    round before repeating), and each answer follows from the entries given: a LayerNorm
    mean from its sample's row (`Z[i, 0:D]`), a GroupNorm's from its group's columns, a
    per-sample statistic read at the row's group (`std[i, g]`), the count D or S."""
    s = norm_session
    X, y = s.inspection_batch()
    ex = make_exercise(s.network, X, y, count=200, kind="value", seed=5, rows=12)
    trace = ex.trace
    computable = {(st.layer, st.name) for st in trace.steps
                  if st.words is not None and st.words.reads and not st.words.copy
                  and not st.words.zero}
    asked = {(q.layer, q.name) for q in ex.questions}
    assert asked == computable
    assert {(1, "mu"), (2, "dstd"), (3, "ms"), (3, "drms"), (3, "dZ"), (4, "dmu")} <= asked
    for q in ex.questions:
        assert from_givens(q, s) == pytest.approx(q.value, rel=1e-9, abs=1e-15), q.label
        assert check_answer(q, f"{q.value:.6g}").correct
    # the per-sample patterns, read at one question each: a row, a group, the count
    by = {(q.layer, q.name): q for q in ex.questions}
    mu = by[1, "mu"]
    assert [g.label for g in mu.givens] == [f"Z[{mu.position[0]}, 0:6]", "D"]
    mu = by[2, "mu"]
    lo = 4 * mu.position[1]
    assert [g.label for g in mu.givens] == [f"Z[{mu.position[0]}, {lo}:{lo + 4}]", "S"]
    z0 = by[2, "Z0"]
    i, j = z0.position
    assert [g.label for g in z0.givens] == [f"Z[{i}, {j}]", f"mu[{i}, {j // 4}]"]
    assert by[2, "dZ"].givens[-1].label == "S" and float(by[2, "dZ"].givens[-1].value) == 4
    assert by[3, "dZ"].givens[-1].label == "D" and float(by[3, "dZ"].givens[-1].value) == 5
    assert by[1, "std"].givens[-1].label == "ε" and float(by[1, "std"].givens[-1].value) == 1e-5
    assert float(by[3, "rms"].givens[-1].value) == 1e-6


def test_question_at_every_step_of_a_norm_network(norm_session: Session) -> None:
    """The stepper's exercise mode, at every step: a value answer is the trace's own
    entry; a formula question offers the record's formula among its wrong ones (the
    LayerNorm mean taken over the batch axis among them)."""
    s = norm_session
    _, y = s.inspection_batch()
    trace = s.trace(True)
    offered: dict[tuple[int | None, str], set[str]] = {}
    for i, step in enumerate(trace.steps):
        for seed in range(3):
            q = question_at(trace, s.network, y, i, seed=seed)
            if q is None:
                assert step.words is None or step.words.copy or step.name == "X"
                continue
            if q.kind == "value":
                assert q.value == float(np.asarray(step.value)[q.position])
                assert from_givens(q, s) == pytest.approx(q.value, rel=1e-9, abs=1e-15)
            elif q.kind == "formula":
                assert q.choices[q.choice] == step.formula
                offered.setdefault((q.layer, q.name), set()).update(q.choices)
            else:
                assert check_answer(q, "x".join(str(d) for d in step.shape)).correct
    for (layer, name), choices in offered.items():
        if (layer, name) == (1, "mu"):
            assert any("over the batch axis" in c for c in choices)


def test_shape_questions_of_per_sample_statistics(norm_session: Session) -> None:
    s = norm_session
    X, y = s.inspection_batch()
    ex = make_exercise(s.network, X, y, count=200, kind="shape", seed=1, rows=12)
    by = {(q.layer, q.name): q for q in ex.questions}
    assert by[1, "mu"].shape == (12, 1) and check_answer(by[1, "mu"], "12x1").correct
    assert not check_answer(by[1, "mu"], "6").correct  # not per feature: per sample
    assert by[2, "var"].shape == (12, 2) and check_answer(by[2, "var"], "(12, 2)").correct
    assert by[3, "ms"].shape == (12, 1)
    assert by[1, "dgamma"].shape == (6,)


def test_cli_exercise_on_a_norm_network_grades_every_value_right(
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["lab", "exercise", "--arch", "6:ln:tanh,8:gn=4:relu,C:rms", "--count", "25",
            "--kind", "value", "--seed", "2", "--json"]
    d = json.loads(run(capsys, *argv, "--reveal"))
    assert {q["tensor"] for q in d["questions"]} & {"mu", "ms", "rms", "dms", "dmu"}
    answers = ";".join(f"{q['answer']:.6g}" for q in d["questions"])
    graded = json.loads(run(capsys, *argv, "--answers", answers))
    assert graded["score"]["right"] == 25


# the glossary --------------------------------------------------------------------------------
def test_glossary_has_every_normalizations_tensors_with_their_own_words() -> None:
    rows = glossary.rows()
    names = [r[0] for r in rows]
    assert len(names) == len(set(names))  # each row names one tensor of one layer
    assert all(meaning.strip() and formula.strip() for _, meaning, formula in rows)
    for title, forward, backward in (("LayerNorm", LN_FORWARD, LN_BACKWARD),
                                     ("GroupNorm", GN_FORWARD, GN_BACKWARD),
                                     ("RMSNorm", RMS_FORWARD, RMS_BACKWARD)):
        own = [n for n in names if n.endswith(f"({title})")]
        expected = [n for n in forward + backward if n not in ("Z", "A", "dA", "dW", "db",
                                                                "dX")]
        assert own == [f"{n} ({title})" for n in expected]
        assert f"dZ ({title}, compact)" in names
    row = dict((r[0], r) for r in rows)
    # the records' own words: per sample, not per feature
    assert row["mu (LayerNorm)"][1:] == ("per-sample mean over its D features",
                                         "mu = (1/D) Σⱼ Z")
    assert row["mu"][2] == "mu = (1/m) Σᵢ Z"  # BatchNorm's row is unchanged
    assert row["dZgn (GroupNorm)"][2] == "dZgn = dA · f′(Zgn)"
    assert row["Zrms (RMSNorm)"][2] == "Zrms = γ · Znorm"
    for layer in (LayerNorm, GroupNorm, RMSNorm):
        assert layer.title in glossary.TITLE
