"""Training on any gradient: the backward pass, centred differences, PyTorch autograd."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from bntui.engine import gradient_sources
from bntui.engine.arch import parse_arch
from bntui.engine.autograd import torch_available
from bntui.engine.config import RunConfig, preset
from bntui.engine.errors import BntuiError
from bntui.engine.network import Network
from bntui.engine.persist import load_session, save_session
from bntui.engine.session import Session

HAVE_TORCH = torch_available()


def _final_loss(source: str, steps: int = 200) -> tuple[float, Session]:
    s = Session(replace(preset("seed-softmax"), steps=steps, gradients=source))
    s.train(steps)
    return s.network.train_loss(s.X_train, s.y_train), s


def test_numerical_training_follows_analytic_training() -> None:
    """The issue's figure: 200 steps of seed-softmax end at the analytic run's loss to
    1e-6 (measured: ~1e-9); the loss moved a lot on the way, so it is not a tie at the
    start."""
    analytic, a = _final_loss("analytic")
    numerical, n = _final_loss("numerical")
    assert abs(numerical - analytic) < 1e-6
    assert a.history.loss[0] - analytic > 0.3
    # the running statistics were updated (seed 000's numerical training never did)
    bn = n.network.blocks[0].bn
    assert bn is not None and bn.num_batches_tracked == 200
    assert np.allclose(bn.running_std, a.network.blocks[0].bn.running_std, rtol=1e-5)
    assert np.isfinite(n.network.logits(n.X_train)).all()


@pytest.mark.skipif(not HAVE_TORCH, reason="needs PyTorch")
def test_autograd_training_follows_analytic_training() -> None:
    analytic, _ = _final_loss("analytic")
    autograd, _ = _final_loss("autograd")
    assert abs(autograd - analytic) < 1e-12


@pytest.mark.parametrize("arch", ["8:ln:tanh,6:relu,C", "6:gn=3:sigmoid,C:rms", "5:nobn:elu,C"])
def test_one_step_gradients_agree_for_every_layer_kind(arch: str) -> None:
    rng = np.random.default_rng(1)
    net = Network.build(parse_arch(arch), 3, 3, rng)
    X, y = rng.normal(size=(12, 3)), rng.integers(0, 3, 12)
    grads = {}
    for source in gradient_sources.SOURCES:
        if source == "autograd" and not HAVE_TORCH:
            continue
        n = copy.deepcopy(net)
        loss, hits = gradient_sources.step_function(n, source)(X, y)
        grads[source] = (loss, hits, n.flat.grads.copy())
    a_loss, a_hits, a = grads["analytic"]
    scale = np.abs(a).max()
    for source, (loss, hits, g) in grads.items():
        assert loss == a_loss and hits == a_hits  # the same forward pass
        tol = 1e-6 if source == "numerical" else 1e-12
        assert np.abs(g - a).max() <= tol * scale, source


def test_bad_sources_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BntuiError, match="gradients must be one of analytic, numerical"):
        replace(RunConfig(), gradients="guess").validate()
    import bntui.engine.autograd as autograd

    monkeypatch.setattr(autograd, "torch_available", lambda: False)
    with pytest.raises(BntuiError, match="needs PyTorch, which is not installed"):
        replace(RunConfig(), gradients="autograd").validate()


def test_the_source_is_saved_with_the_session(tmp_path) -> None:
    _, s = _final_loss("numerical", steps=3)
    path = save_session(s, tmp_path / "n.npz")
    back = load_session(path)
    assert back.config.gradients == "numerical"
    back.train(2)
    assert back.step_count == 5


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bntui", *args], capture_output=True,
                          text=True, timeout=120)


def test_train_reports_the_source_and_what_each_costs() -> None:
    r = _cli("train", "--preset", "seed-softmax", "--steps", "20", "--gradients",
             "numerical", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    g = out["gradients"]
    assert g["source"] == "numerical"
    cost = g["seconds_per_step"]
    assert set(cost) == set(gradient_sources.SOURCES)
    # 32 passes against one forward and backward: the numerical source is the dear one
    assert cost["numerical"] > 3 * cost["analytic"]
    plain = json.loads(_cli("train", "--preset", "seed-softmax", "--steps", "2",
                            "--json").stdout)
    assert plain["gradients"] == {"source": "analytic", "description": "the backward pass",
                                  "seconds_per_step": None}


def test_a_bad_source_on_the_command_line_is_one_line() -> None:
    r = _cli("train", "--gradients", "guess")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "--gradients" in r.stderr
