"""The derivation: each layer's compact backward from its staged records, every algebraic
step checked on a batch — at rounding level when right, far from it when wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from bntui.engine import derive as derivation
from bntui.engine.arch import parse_arch
from bntui.engine.errors import BntuiError
from bntui.engine.network import Network
from bntui.engine.nodes import Derived
from bntui.engine.trace import record_trace

ARCHS = {"batchnorm": "7:tanh,C", "layernorm": "7:ln:tanh,C", "groupnorm": "8:gn=4:tanh,C",
         "rmsnorm": "7:rms:tanh,C"}


def test_karpathys_bessel_variance_has_its_own_derivation() -> None:
    from bntui.engine.network import BNOptions

    rng = np.random.default_rng(5)
    net = Network.build(parse_arch("7:tanh,C"), 4, 3, rng, bn=BNOptions.of("karpathy"))
    X, y = rng.normal(size=(9, 4)), rng.integers(0, 3, 9)
    d = derivation.derive(net, record_trace(net, X, y), 1)
    assert d.worst < 1e-13 and d.staged_vs_compact <= 1e-13 * d.dz_scale
    assert d.steps[-1].formula == "dZ = (γ / std) · (dZbn − dβ / m − Znorm · dγ / (m − 1))"
    assert "(m − 1) · std³" in d.steps[2].formula


def _setup(arch: str, seed: int = 3):
    rng = np.random.default_rng(seed)
    net = Network.build(parse_arch(arch), 4, 3, rng)
    for b in net.blocks:  # parameters away from 1 and 0, so γ's place in the algebra shows
        if b.norm is not None:
            b.norm.gamma = rng.uniform(0.5, 2.0, b.norm.num_features)
    X, y = rng.normal(size=(23, 4)) * 2.0, rng.integers(0, 3, 23)
    return net, record_trace(net, X, y)


@pytest.mark.parametrize("kind", sorted(ARCHS))
def test_every_step_holds_at_rounding_level(kind: str) -> None:
    net, trace = _setup(ARCHS[kind])
    d = derivation.derive(net, trace, 1)
    assert d.kind == kind and len(d.steps) >= 3
    assert d.worst < 1e-13
    assert d.staged_vs_compact <= 1e-13 * d.dz_scale
    norm = net.blocks[0].norm
    # it starts at the staged record of dZ and ends at the compact formula training runs
    z = next(n for n in norm.NODES if n.name == "Z")
    assert d.steps[0].formula == z.words("backward", ("train",)).formula
    assert d.steps[-1].formula == norm.compact_words().formula


@pytest.mark.parametrize(("kind", "wrong"), [
    ("batchnorm", "dZ = dZ0 − Σᵢ dZ0"),
    ("batchnorm", "dZ = (γ / std) · (dZbn − (dβ − Znorm · dγ) / m)"),
    ("layernorm", "dZ = (1/std) · (dZnorm − (1/D) Σⱼ dZnorm)"),
    ("rmsnorm", "dZ = dZnorm / rms"),
])
def test_a_wrong_step_is_caught(kind: str, wrong: str, monkeypatch: pytest.MonkeyPatch) -> None:
    net, trace = _setup(ARCHS[kind])
    cls = type(net.blocks[0].norm)
    steps = (*net.blocks[0].norm.derivation(), Derived("wrong", wrong, ""))
    monkeypatch.setattr(cls, "derivation", lambda self: steps)
    d = derivation.derive(net, trace, 1)
    assert d.steps[-1].relative > 1e-3
    assert max(s.relative for s in d.steps[:-1]) < 1e-13


def test_it_needs_a_normalised_block_in_training_mode() -> None:
    net, trace = _setup("5:nobn:tanh,C:nobn")
    with pytest.raises(BntuiError, match="no normalization layer to derive"):
        derivation.derive(net, trace)
    net, trace = _setup("5:nobn:tanh,C")
    with pytest.raises(BntuiError, match=r"layer 1 has no normalization .*layers with one: 2"):
        derivation.derive(net, trace, 1)
    with pytest.raises(BntuiError, match="training-mode"):
        derivation.derive(net, replace(trace, training=False))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bntui", "derive", *args], capture_output=True,
                          text=True, timeout=120)


def test_derive_json_and_markdown() -> None:
    r = _cli("--json", "--arch", "8:ln:relu,C")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["kind"] == "layernorm" and out["worst_relative_difference"] < 1e-13
    assert out["steps"][0]["tag"] == "staged"
    md = _cli("--format", "md", "--steps", "5")
    assert md.returncode == 0 and md.stdout.startswith("# The compact BatchNorm backward")
    assert md.stdout.count("\n| [") >= 6


def test_derive_refuses_in_one_line() -> None:
    r = _cli("--arch", "8:nobn,C:nobn")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    r = _cli("--layer", "9")
    assert r.returncode == 2 and "layer 9 has no normalization" in r.stderr
