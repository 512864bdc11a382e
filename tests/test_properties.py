"""Property tests over random shapes and architectures: the staged backward against
autograd (when torch is installed) and against centred differences, and the BatchNorm
invariants inside whole networks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bntui.engine import BNOptions, Network, parse_arch
from bntui.engine.gradcheck import analytic_gradients, gradcheck

ACTS = ["sigmoid", "tanh", "relu", "leaky_relu=0.1", "elu", "elu=0.5", "identity"]


@st.composite
def networks(draw: st.DrawFn) -> tuple[Network, np.ndarray, np.ndarray]:
    n_features = draw(st.integers(1, 5))
    n_classes = draw(st.integers(2, 4))
    hidden = draw(st.lists(
        st.tuples(st.integers(1, 6), st.booleans(), st.sampled_from(ACTS), st.booleans()),
        min_size=0, max_size=3))
    out_bn, out_bias = draw(st.booleans()), draw(st.booleans())
    blocks = [f"{w}:{'bn' if bn else 'nobn'}:{act}:{'bias' if bias else 'nobias'}"
              for w, bn, act, bias in hidden]
    blocks.append(f"C:{'bn' if out_bn else 'nobn'}:{'bias' if out_bias else 'nobias'}")
    m = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**16))
    eps = draw(st.sampled_from([1e-5, 1e-3, 0.1]))
    rng = np.random.default_rng(seed)
    net = Network.build(parse_arch(",".join(blocks)), n_features, n_classes, rng,
                        bn=BNOptions(eps=eps))
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))
    X = rng.normal(size=(m, n_features)) * scale + rng.normal(size=n_features)
    y = rng.integers(0, n_classes, size=m)
    return net, X, y


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), st.booleans())
def test_staged_backward_matches_autograd(case: tuple, training: bool) -> None:
    pytest.importorskip("torch")
    net, X, y = case
    if not training:  # give the running statistics something to hold
        for _ in range(3):
            net.loss(X + 0.1, y, training=True)
    report = gradcheck(net, X, y, training=training, numeric=False)
    judged = [c for c in report.checks if c.judged]
    assert judged
    # Normwise: entries that are sums of cancelling O(1) terms (dZ in BatchNorm) carry
    # rounding errors of ~1e-16 of those terms, so an elementwise ratio on an entry of
    # 1e-8 can reach 1e-8 without anything being wrong.
    # (and a gradient that is itself such a remainder, 1e-7 from terms of 1, carries an
    # absolute rounding error of ~1e-16 of terms that reach ~100 when 1/std is large, as
    # in a batch of 2 with close values: hence the small absolute floor of 1e-13)
    for c in judged:
        assert c.abs_error <= 1e-10 * c.max_abs + 1e-13, (c.layer, c.tensor, c.abs_error,
                                                           c.max_abs)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_staged_backward_matches_centred_differences(case: tuple) -> None:
    net, X, y = case
    report = gradcheck(net, X, y, autograd=False, samples=6)
    for c in report.checks:
        if c.judged and c.max_abs > 1e-5:
            # loose bound: random nets can put a BatchNorm variance near 0 or sit a
            # sample near a kink the check did not cross; a wrong formula is off by O(1)
            assert c.rel_error < 1e-3, (c.layer, c.tensor, c.rel_error, net.describe(),
                                        X.tolist(), y.tolist(), c)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_batchnorm_invariants_inside_networks(case: tuple) -> None:
    net, X, y = case
    _, grads = analytic_gradients(net, X, y, training=True)
    for block in net.blocks:
        if block.bn is None:
            continue
        g = grads[block.index]
        dZ, Znorm = g["dZ"], block.cache["Znorm"]
        var, std, eps = block.cache["var"], block.cache["std"], block.bn.eps
        scale = np.abs(dZ).max() * X.shape[0] * max(1.0, np.abs(Znorm).max())
        # Σᵢ dZ = 0 exactly; Σᵢ dZ·Znorm = γ·dγ·ε / ((var + ε)·std), which is 0 at ε = 0
        assert np.abs(dZ.sum(axis=0)).max() <= 1e-12 * max(1.0, scale)
        expected = block.bn.gamma * g["dgamma"] * eps / ((var + eps) * std)
        assert np.abs((dZ * Znorm).sum(axis=0) - expected).max() <= 1e-11 * max(1.0, scale)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 20), st.integers(1, 6), st.integers(0, 1000))
def test_compact_and_staged_training_steps_agree(m: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    net = Network.build(parse_arch("5:tanh,C"), d, 3, rng)
    X, y = rng.normal(size=(m, d)), rng.integers(0, 3, m)
    net.loss(X, y, update_running=False)
    staged = {k: v.copy() for k, v in net.backward(staged=True).items()}
    net.loss(X, y, update_running=False)
    compact = net.backward(staged=False)
    scale = max(np.abs(v).max() for v in staged.values())
    # the bias before a BatchNorm has a gradient of 0 by construction: what both paths
    # give is the rounding of Σ dZ, whose terms reach (γ/std)·|dZbn| (≫ 1 when std is small)
    bn = net.blocks[0].bn
    dZ_terms = float(np.max(np.abs(bn.gamma / bn.cache["std"]))) * max(
        1.0, float(np.abs(net.blocks[0].cache["dZbn"]).max()))
    for k in staged:
        tol = 1e-13 * max(scale, 1.0)
        if k == "1.b":
            tol = 1e-14 * m * max(dZ_terms, 1.0)
        assert np.abs(staged[k] - compact[k]).max() <= tol, k
