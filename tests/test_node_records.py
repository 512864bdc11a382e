"""The node records are the one home of every tensor's words: rewording one record
rewords every view at once; the records' shape rules, readings and wrong formulas hold on
real passes; eval mode describes the running statistics it uses, in every format."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from bntui.cli import main
from bntui.engine import RunConfig, Session, preset
from bntui.engine.batchnorm import BatchNorm
from bntui.engine.glossary import rows as glossary_rows
from bntui.engine.labs.exercise import make_exercise
from bntui.engine.nodes import FORWARD, find
from bntui.engine.trace import Trace

NETS = [
    preset("seed-softmax"),
    preset("seed-digits"),
    RunConfig(dataset="moons", arch="6:tanh:nobias,5:sigmoid,4:relu:nobn,3:elu=0.5,C:nobn",
              seed=2),
    RunConfig(dataset="blobs", arch="5:leaky_relu=0.1:nobn,4:identity,C:nobias", seed=1),
    RunConfig(dataset="iris", arch="C"),
]


def traces(cfg: RunConfig) -> list[Trace]:
    s = Session(cfg.with_overrides(batch_size=24, dataset=cfg.dataset))
    s.train(steps=3, eval_every=10**9)
    return [s.trace(True), s.trace(False)]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


# one home ----------------------------------------------------------------------------------
REWORDED = "var = the mean square of Z0 (reworded)"
WHY = "a reworded explanation of the variance"


@pytest.fixture
def reworded(monkeypatch: pytest.MonkeyPatch) -> None:
    """BatchNorm's `var` record, training mode, reworded in the one place it lives."""
    node = find(BatchNorm.NODES, "var")
    words = replace(node.forward["train"], formula=REWORDED, why=WHY)
    new = replace(node, forward={**node.forward, "train": words})
    monkeypatch.setattr(BatchNorm, "NODES",
                        tuple(new if n is node else n for n in BatchNorm.NODES))


@pytest.mark.usefixtures("reworded")
def test_rewording_one_record_rewords_every_view(capsys: pytest.CaptureFixture[str]) -> None:
    s = Session(preset("seed-softmax"))
    step = s.trace(True).find("var", 1, FORWARD)
    assert (step.formula, step.explanation) == (REWORDED, WHY)  # the stepper shows these
    text = run(capsys, "walk", "--preset", "seed-softmax", "--tensor", "var")
    assert REWORDED in text and WHY in text
    walk = json.loads(run(capsys, "walk", "--preset", "seed-softmax", "--json"))
    (var,) = [st for st in walk["steps"] if st["name"] == "var"]
    assert (var["formula"], var["explanation"]) == (REWORDED, WHY)
    for form in ("md", "html"):
        doc = run(capsys, "walk", "--preset", "seed-softmax", "--format", form)
        assert REWORDED in doc and WHY in doc, form
    X, y = s.inspection_batch()
    ex = make_exercise(s.network, X, y, count=40, kind="formula", seed=0)
    asked = [q for q in ex.questions if q.name == "var"]
    assert asked and all(q.formula == REWORDED and REWORDED in q.choices for q in asked)
    assert ("var", "per-feature batch variance (biased)", REWORDED) in glossary_rows()
    # the question is still asked: its wrong formulas are keyed by the node, not by text
    assert len(asked[0].choices) == 4


@pytest.mark.usefixtures("reworded")
async def test_the_stepper_shows_a_reworded_record() -> None:
    """The same reworded record, in the app: the stepper at the var step shows it."""
    from bntui.ui.app import BntuiApp

    app = BntuiApp(preset("seed-softmax"))
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(300):
            if app.trace is not None and app.query("#formula"):
                break
            await pilot.pause(0.02)
        assert app.trace is not None
        at = app.trace.find("var", 1, FORWARD).index
        while app.index < at:
            await pilot.press("n")
        await pilot.pause()
        assert str(app.query_one("#formula").render()) == REWORDED
        assert str(app.query_one("#why").render()) == WHY


def test_eval_mode_words_are_the_eval_records() -> None:
    """No eval-mode step says "over the batch" of a running statistic, or a gradient
    through mu or var; the running std convention names the running std."""
    s = Session(preset("seed-softmax"))
    s.train(steps=50, eval_every=10**9)
    tr = s.trace(False)
    bn = s.network.blocks[0].bn
    names = [st.name for st in tr.steps]
    assert "var" not in names  # the convention keeps a running std: no variance is used
    assert not {"dmu", "dvar", "dstd"} & set(names)
    std = tr.find("std", 1, FORWARD)
    assert std.formula == "std = running_std" and "running average" in std.explanation
    np.testing.assert_array_equal(std.value, bn.running_std)
    mu = tr.find("mu", 1, FORWARD)
    assert mu.formula == "mu = running_mean" and "over the batch" not in mu.explanation
    for name in ("dZ0", "dZ"):
        words = tr.find(name, 1).explanation
        assert "constant in eval mode" in words and "both branches" not in words
    digits = Session(preset("seed-digits"))
    digits.train(steps=2, eval_every=10**9)
    var = digits.trace(False).find("var", 1, FORWARD)
    assert var.formula == "var = running_var" and "biased" in var.explanation
    np.testing.assert_array_equal(var.value, digits.network.blocks[0].bn.running_var)


@pytest.mark.parametrize("cfg", NETS, ids=lambda c: c.arch)
def test_shape_rules_hold_on_real_passes(cfg: RunConfig) -> None:
    """Each record's shape rule, read with the pass's sizes, is the tensor's shape."""
    for tr in traces(cfg):
        s = Session(cfg)
        net = s.network
        for st in tr.steps:
            assert st.node is not None, st.name
            if st.layer is None:
                sizes = {"m": tr.batch_size, "C": net.n_classes}
            else:
                block = net.blocks[st.layer - 1]
                sizes = {"m": tr.batch_size, "D": block.dense.fan_out,
                         "fan_in": block.dense.fan_in, "fan_out": block.dense.fan_out,
                         "C": net.n_classes, "features": net.n_features}
            rule = st.node.shape
            want = () if rule == "scalar" else tuple(sizes[p.strip()] for p in rule.split("×"))
            assert st.shape == want, (st.where, st.name, rule)


@pytest.mark.parametrize("cfg", NETS, ids=lambda c: c.arch)
def test_every_computed_step_has_readings_and_three_wrong_formulas(cfg: RunConfig) -> None:
    """Every step that computes something (not a copy) in either mode says what it reads
    and offers three distinct wrong formulas, none of them the right one."""
    for tr in traces(cfg):
        for st in tr.steps:
            w = st.words
            assert w is not None
            if w.copy:
                continue
            assert w.reads, (st.where, st.name, tr.training)
            assert len(set(w.wrong)) >= 3 and st.formula not in w.wrong, (st.name, w.wrong)
            assert "{" not in st.formula + st.explanation + "".join(w.wrong), st.name


def test_the_gradient_check_checks_what_the_trace_shows() -> None:
    """The check's tensors, per block and in order, are the trace's backward steps."""
    for cfg in NETS[:3]:
        s = Session(cfg)
        for training in (True, False):
            report = s.gradcheck(training=training, autograd=False, samples=4)
            tr = s.trace(training)
            shown = [(st.layer, st.name) for st in tr.steps
                     if st.phase == "backward" and st.layer is not None]
            checked = list(dict.fromkeys((c.layer, c.tensor) for c in report.checks))
            assert checked == shown


@pytest.mark.parametrize("name", ["seed-softmax", "seed-digits"])
def test_walk_eval_describes_the_running_statistics_in_every_format(
        name: str, capsys: pytest.CaptureFixture[str]) -> None:
    kept = "running_std" if name == "seed-softmax" else "running_var"
    flags = ["walk", "--preset", name, "--steps", "3", "--eval", "--layer", "1"]
    for form in ("text", "json", "md", "html"):
        out = run(capsys, *flags, "--format", form)
        if form == "json":  # the words of the steps, as the JSON carries them
            out = "\n".join(f"{st['formula']} {st['explanation']} {st['name']}"
                            for st in json.loads(out)["steps"])
        assert "mu = running_mean" in out, form
        assert f"std = {kept}" in out or f"= √({kept} + ε)" in out, form
        assert "dmu" not in out and "dvar" not in out, form
