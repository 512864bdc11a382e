"""Any entry's arithmetic: every node's formula text, with its inputs' numbers plugged
in, recomputes the value the layer's code computed (issue 15's drill-down)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from bntui.engine import batchnorm, groupnorm, layernorm, rmsnorm
from bntui.engine.activations import ACTIVATION_NAMES, make_activation
from bntui.engine.arch import parse_arch
from bntui.engine.config import preset
from bntui.engine.dense import Dense
from bntui.engine.entry import explain, parse_entry
from bntui.engine.errors import BntuiError
from bntui.engine.formula import parse, split
from bntui.engine.loss import SoftmaxCrossEntropy
from bntui.engine.network import Network
from bntui.engine.session import Session
from bntui.engine.trace import record_trace

ARCHS = [
    "5:sigmoid,4:relu,C",
    "6:ln:tanh,6:gn=3:leaky_relu=0.1,C:rms",
    "5:rms:elu=0.5,4:nobn:identity,C:nobn",
    "4:identity:nobias,6:gn=2:relu:nobias,C:ln",
]


def _every_entry_recomputes(net: Network, X: np.ndarray, y: np.ndarray, training: bool,
                            rng: np.random.Generator) -> int:
    trace = record_trace(net, X, y, training)
    checked = 0
    for step in trace.steps:
        v = np.asarray(step.value)
        spots = [()] if v.ndim == 0 else [tuple(int(rng.integers(n)) for n in v.shape)
                                          for _ in range(4)]
        for pos in spots:
            e = explain(trace, net, y, step, pos)
            assert e.error <= 1e-12, (step.layer, step.name, e.substituted, e.value)
            checked += 1
    return checked


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("arch", ARCHS)
def test_every_node_of_every_layer_kind_recomputes_from_its_formula(arch: str,
                                                                    training: bool) -> None:
    rng = np.random.default_rng(7)
    net = Network.build(parse_arch(arch), 3, 3, rng)
    X, y = rng.normal(size=(9, 3)), rng.integers(0, 3, 9)
    for _ in range(3):  # running statistics away from their start, for the eval pass
        net.train_step(X + rng.normal(size=X.shape), y)
    assert _every_entry_recomputes(net, X, y, training, rng) > 100


@pytest.mark.parametrize("name", ["seed-softmax", "seed-digits"])
def test_the_presets_conventions_recompute_too(name: str) -> None:
    """seed-softmax keeps a running std (the eval-std records), seed-digits Keras-style."""
    s = Session(replace(preset(name), steps=3))
    s.train(3)
    X, y = s.inspection_batch()
    rng = np.random.default_rng(0)
    for training in (True, False):
        _every_entry_recomputes(s.network, X[:40], y[:40], training, rng)


@pytest.mark.parametrize("convention", ["keras", "cs231n", "karpathy"])
def test_every_convention_recomputes(convention: str) -> None:
    from bntui.engine.network import BNOptions

    rng = np.random.default_rng(3)
    net = Network.build(parse_arch("5:tanh,C"), 3, 3, rng, bn=BNOptions.of(convention))
    X, y = rng.normal(size=(9, 3)), rng.integers(0, 3, 9)
    for _ in range(3):
        net.train_step(X + rng.normal(size=X.shape), y)
    for training in (True, False):
        _every_entry_recomputes(net, X, y, training, rng)


def _every_formula():
    layers = [batchnorm.NODES, groupnorm.NODES, layernorm.NODES, rmsnorm.NODES,
              Dense.NODES, SoftmaxCrossEntropy.NODES]
    for name in ACTIVATION_NAMES:
        layers.append(make_activation(name).nodes())
    for nodes in layers:
        for node in nodes:
            for table in (node.forward, node.backward):
                for words in table.values():
                    if words is not None and not words.copy and words.reads:
                        yield words


def test_every_record_formula_parses() -> None:
    """Every mode's formula, including those no test network above reaches."""
    count = 0
    for words in _every_formula():
        parse(split(words.formula.replace("{pre}", "Zbn"))[1],
              {"D": "k", "S": "k", "P[i, yᵢ]": "Py"})
        count += 1
    assert count > 60


def test_a_substitution_shows_a_sum_compactly() -> None:
    rng = np.random.default_rng(1)
    net = Network.build(parse_arch("4:relu,C"), 2, 2, rng)
    X, y = rng.normal(size=(30, 2)), rng.integers(0, 2, 30)
    trace = record_trace(net, X, y)
    mu = trace.find("mu", 1)
    e = explain(trace, net, y, mu, (2,))
    assert e.indexed == "mu[2] = (1 / m) · Σᵢ Z[:, 2]"
    assert "… 30 terms" in e.substituted and e.substituted.startswith("mu[2] = (1 / 30) · Σᵢ(")
    assert e.value == pytest.approx(np.mean(trace.find("Z", 1).value[:, 2]), rel=1e-12)
    assert [i.index for i in e.inputs] == ["Z[:, 2]", "m"]


@pytest.mark.parametrize(("text", "parsed"), [("dZ0[13,1]", ("dZ0", (13, 1))),
                                              (" mu [ 3 ] ", ("mu", (3,))),
                                              ("loss", ("loss", None)), ("loss[]", ("loss", ()))])
def test_entries_are_read(text: str, parsed: tuple) -> None:
    assert parse_entry(text) == parsed


@pytest.mark.parametrize("text", ["", "dZ0[1;2]", "3[1]", "dZ0[a]"])
def test_bad_entries_are_one_line(text: str) -> None:
    with pytest.raises(BntuiError, match="not a tensor name with an index"):
        parse_entry(text)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bntui", "walk", *args], capture_output=True,
                          text=True, timeout=120)


def test_walk_entry_json_has_the_issue_fields() -> None:
    r = _cli("--entry", "dZ0[13,1]", "--layer", "1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("name", "index", "value", "formula", "substituted", "inputs", "recomputed"):
        assert key in out
    assert out["index"] == [13, 1] and out["name"] == "dZ0"
    assert [i["name"] for i in out["inputs"]] == ["dZnorm", "std", "dvar", "Z0", "m"]
    assert abs(out["recomputed"] - out["value"]) <= 1e-12 * abs(out["value"])


def test_walk_json_gives_each_steps_inputs() -> None:
    r = _cli("--json", "--layer", "1", "--arch", "6:ln:tanh,C")
    steps = {s["name"]: s for s in json.loads(r.stdout)["steps"]}
    assert steps["Z0"]["inputs"] == ["Z", "mu"]
    assert steps["dZ0"]["inputs"] == ["dZnorm", "std", "dvar", "Z0", "k"]
    assert steps["Z"]["inputs"] == ["X", "W", "b"]


@pytest.mark.parametrize(("args", "says"), [
    (("--entry", "dZ0[999,1]", "--layer", "1"), "outside dZ0, which is 160 × 16"),
    (("--entry", "nosuch[0,0]"), "no tensor 'nosuch'"),
    (("--entry", "mu[0]"), "'mu' is in layers 1, 2, 3: say which with --layer"),
    (("--entry", "mu", "--layer", "1"), "say which entry of mu"),
    (("--entry", "mu[0]", "--layer", "1", "--format", "md"), "--entry prints text or JSON"),
])
def test_walk_entry_refuses_in_one_line(args: tuple[str, ...], says: str) -> None:
    r = _cli(*args)
    assert r.returncode == 2
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1
