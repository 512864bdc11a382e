"""The gradient check itself: numerical gradients, its two traps, and that it can fail.

On the seed-softmax preset every judged check agrees to 1e-6 with no kink; a Dense bias
before BatchNorm is reported as zero by construction and left out; a ReLU input sitting
exactly at its kink is detected and left out; `rel_error` follows CS231n's formula; the
check leaves parameters and running statistics as they were; and a backward broken by
1 % is caught.  torch is optional: only the autograd cross-check needs it.
"""

from __future__ import annotations

import numpy as np
import pytest

from bntui.engine import Network, Session, parse_arch, preset, rel_error
from bntui.engine.batchnorm import BatchNorm
from bntui.engine.gradcheck import (
    analytic_gradients,
    entrywise_rel_error,
    gradcheck,
    numeric_gradients,
)


def relu_net(seed: int = 0, spec: str = "4:relu,C"):
    rng = np.random.default_rng(seed)
    net = Network.build(parse_arch(spec), 3, 3, rng)
    X = rng.standard_normal((12, 3)) * 2.0 + 0.5
    y = np.arange(12) % 3
    return net, X, y


def assert_same_state(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> None:
    assert set(before) == set(after)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


@pytest.fixture(scope="module")
def softmax_report():
    session = Session(preset("seed-softmax"))
    return session, session.gradcheck(autograd=False)


def test_seed_softmax_numeric_check(softmax_report) -> None:
    _, report = softmax_report
    assert not report.torch
    assert report.max_rel_error()["analytic_vs_autograd"] is None
    assert report.checks and all(c.pair == "analytic_vs_numeric" for c in report.checks)
    worst = report.max_rel_error()["analytic_vs_numeric"]
    assert worst is not None and worst < 1e-6
    for c in report.checks:
        assert c.kink_entries == 0, c  # no ReLU in this network
        assert c.status == "ok", c  # no bias, so nothing is zero by construction
        assert c.rel_error is not None and c.rel_error < 1e-6, c
    names = {c.tensor for c in report.checks}
    assert {"dW", "dgamma", "dbeta", "dZbn", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ",
            "dX"} <= names
    assert "db" not in names
    # every entry of every parameter is checked
    for c in report.checks:
        if c.tensor in ("dW", "dgamma", "dbeta"):
            assert c.entries == c.total


def test_bias_before_batchnorm_is_zero_by_construction() -> None:
    net, X, y = relu_net()
    report = gradcheck(net, X, y, autograd=False)
    db = [c for c in report.checks if c.tensor == "db"]
    assert {c.layer for c in db} == {1, 2}  # both blocks have a bias and BatchNorm
    for c in db:
        assert c.status == "zero_by_construction", c
        assert not c.judged
        assert c.max_abs < 1e-14  # the analytic db is rounding noise
        assert c.note
    judged = [c.rel_error for c in report.checks if c.judged]
    worst = report.max_rel_error()["analytic_vs_numeric"]
    assert worst == max(judged)
    assert worst < 1e-6


def test_bias_is_judged_in_eval_mode() -> None:
    net, X, y = relu_net()
    rng = np.random.default_rng(1)
    for _ in range(3):  # running statistics away from 0 and 1
        net.loss(rng.standard_normal((12, 3)) * 2 + 0.5, y)
    report = gradcheck(net, X, y, autograd=False, training=False)
    for c in report.checks:
        if c.tensor == "db":
            assert c.status == "ok", c
    for c in report.checks:
        if c.judged:
            assert c.rel_error < 1e-6, c


def _net_at_a_kink():
    """Block 1's ReLU input Zbn[0, 0] is exactly 0: beta[0] = −gamma[0] · Znorm[0, 0]."""
    net, X, y = relu_net(seed=2)
    net.loss(X, y, update_running=False)
    bn = net.blocks[0].bn
    bn.beta[0] = -(bn.gamma[0] * bn.cache["Znorm"][0, 0])
    net.loss(X, y, update_running=False)
    assert net.blocks[0].cache["Zbn"][0, 0] == 0.0
    return net, X, y


def test_a_crossed_kink_is_detected_and_left_out() -> None:
    net, X, y = _net_at_a_kink()
    report = gradcheck(net, X, y, autograd=False)
    kinked = [c for c in report.checks if c.kink_entries > 0]
    assert kinked, "no check reported the ReLU input sitting at 0"
    by_name = {c.tensor: c for c in kinked if c.layer == 1}
    # perturbing beta[0], gamma[0] or any weight feeding unit 0 moves Zbn[0, 0] off 0
    assert {"dbeta", "dgamma", "dW"} <= set(by_name)
    for c in kinked:
        assert c.entries + c.kink_entries <= c.total  # intermediates are sampled
        if c.tensor in ("dW", "db", "dgamma", "dbeta"):  # parameters: every entry
            assert c.entries + c.kink_entries == c.total
        if c.tensor == "db":  # block 1's bias is still zero by construction
            assert c.status == "zero_by_construction", c
            continue
        assert c.status in ("ok", "kink"), c
        if c.status == "ok":
            assert c.rel_error is not None and np.isfinite(c.rel_error)
            assert c.rel_error < 1e-6, c  # the other entries are fine
            assert "kink" in c.note
        else:
            assert c.entries == 0
    assert by_name["dbeta"].kink_entries == 1
    assert by_name["dbeta"].entries == by_name["dbeta"].total - 1
    assert report.max_rel_error()["analytic_vs_numeric"] < 1e-6


def test_the_excluded_kink_entry_really_is_wrong() -> None:
    """At the kink the centred difference sees half the slope: leaving it out is needed."""
    net, X, y = _net_at_a_kink()
    _, analytic = analytic_gradients(net, X, y)
    numeric = numeric_gradients(net, X, y, rng=np.random.default_rng(0))
    idx, vals, kink = numeric[1]["dbeta"]
    assert kink.tolist() == [True, False, False, False]
    a = analytic[1]["dbeta"].reshape(-1)[idx]
    assert rel_error(a[kink], vals[kink]) > 1e-4
    assert rel_error(a[~kink], vals[~kink]) < 1e-6
    # the numerical value is the analytic one plus half of row 0's dA (½ · slope jump of 1)
    dA00 = analytic[1]["dA"][0, 0]
    assert vals[0] == pytest.approx(a[0] + 0.5 * dA00, rel=1e-5, abs=1e-9)


def test_rel_error_by_hand() -> None:
    # max|a − b| / max(1e-8, max|a| + max|b|): one number for the whole tensor
    assert rel_error([1.0], [1.0]) == 0.0
    assert rel_error([1.0], [3.0]) == 0.5  # |1 − 3| / (1 + 3)
    assert rel_error([0.0], [0.0]) == 0.0  # no NaN: the 1e-8 floor
    assert rel_error([1e-9], [0.0]) == pytest.approx(1e-9 / 1e-8, rel=1e-15)
    assert rel_error([-2.0], [2.0]) == 1.0
    assert rel_error([1.0, 0.0], [1.0, 1.0]) == 0.5  # 1 / (1 + 1)
    assert rel_error([1.0, 2.0, 4.0], [1.0, 2.0, 5.0]) == pytest.approx(1 / 9, rel=1e-15)
    # a tiny entry is judged against the tensor's scale
    assert rel_error([1.0, 1e-7], [1.0, 2e-7]) == pytest.approx(1e-7 / 2, rel=1e-12)
    assert rel_error(np.zeros((2, 3)), np.zeros((2, 3))) == 0.0
    assert rel_error([], []) == 0.0


def test_entrywise_rel_error_by_hand() -> None:
    # CS231n: max over entries of |a − b| / max(1e-8, |a| + |b|)
    assert entrywise_rel_error([1.0, 0.0], [1.0, 1.0]) == 1.0
    assert entrywise_rel_error([1.0, 1e-7], [1.0, 2e-7]) == pytest.approx(1 / 3, rel=1e-12)
    assert entrywise_rel_error([0.0], [0.0]) == 0.0
    assert entrywise_rel_error([1e-9], [0.0]) == pytest.approx(0.1, rel=1e-12)


def test_gradcheck_leaves_the_state_alone() -> None:
    session = Session(preset("seed-softmax"))
    session.train(steps=5)  # running statistics that are not the initial ones
    before = session.network.state()
    session.gradcheck(autograd=False)
    session.gradcheck(autograd=False, training=False)
    session.checked_trace()
    assert_same_state(before, session.network.state())

    net, X, y = relu_net()
    for _ in range(2):
        net.loss(X * 1.5, y)
    before = net.state()
    gradcheck(net, X, y)  # with the autograd pass, when torch is installed
    gradcheck(net, X, y, training=False, relative=False)
    assert_same_state(before, net.state())


def test_a_broken_backward_is_caught(monkeypatch) -> None:
    """One step of the records (dZ0) 1 % off: dZ0 and everything it feeds fail."""
    original = BatchNorm.grad_centred
    monkeypatch.setattr(BatchNorm, "grad_centred", lambda self, v: original(self, v) * 1.01)
    session = Session(preset("seed-softmax"))
    report = session.gradcheck(autograd=False)
    worst = report.max_rel_error()["analytic_vs_numeric"]
    assert worst is not None and worst > 1e-3
    assert report.get(1, "dW").rel_error > 1e-3
    assert report.get(1, "dX").rel_error > 1e-3


def test_a_broken_backward_is_caught_by_autograd(monkeypatch) -> None:
    pytest.importorskip("torch")
    original = BatchNorm.grad_centred
    monkeypatch.setattr(BatchNorm, "grad_centred", lambda self, v: original(self, v) * 1.01)
    report = Session(preset("seed-softmax")).gradcheck(numeric=False)
    assert report.max_rel_error()["analytic_vs_autograd"] > 1e-3


def test_relative_and_absolute_steps_on_a_smooth_net() -> None:
    net, X, y = relu_net(seed=4, spec="5:tanh,4:sigmoid,C")
    # the absolute step h = 1e-5 is coarse for a small variance: truncation shows (~1e-6)
    for relative, tol in ((True, 1e-6), (False, 1e-4)):
        report = gradcheck(net, X, y, autograd=False, relative=relative)
        assert all(c.kink_entries == 0 for c in report.checks)
        assert report.max_rel_error()["analytic_vs_numeric"] < tol


def test_the_step_for_var_is_each_features_own() -> None:
    """One feature's batch variance of 8e-7 (ε = 1e-5) beside others of 0.005 and 0.24:
    the step must follow that feature's var + ε, not the tensor's rms, or the centred
    difference of 1/√(var + ε) is off by a percent (hypothesis found this case)."""
    from bntui.engine import BNOptions

    net = Network.build(parse_arch("C"), 1, 3, np.random.default_rng(0), bn=BNOptions(eps=1e-5))
    net.blocks[0].dense.params["W"][...] = [[0.0012062, -0.66835575, 0.101255]]
    net.blocks[0].dense.params["b"][...] = [-0.99600561, -0.84088426, -0.98443405]
    X, y = np.array([[0.7778708290465313], [2.2342599039778053]]), np.array([1, 0])
    _, analytic = analytic_gradients(net, X, y, training=True)
    idx, numeric, _ = numeric_gradients(net, X, y)[1]["dvar"]
    assert net.blocks[0].bn.cache["var"][0] < 1e-6
    np.testing.assert_allclose(numeric, analytic[1]["dvar"][idx], rtol=1e-6)


def test_a_bias_near_zero_gets_a_step_on_its_outputs_scale() -> None:
    """A Dense bias before BatchNorm stays at ~1e-12 while training (its gradient is zero
    by construction); in eval mode its gradient is real.  Its step must follow the scale
    of the Z it shifts, not its own (a relative step of 1e-17 gave an error of 0.87)."""
    s = Session(preset("seed-digits"))
    s.train(steps=5, eval_every=10**9)
    b = s.network.blocks[0].dense.params["b"]
    assert 0 < np.sqrt(np.mean(b**2)) < 1e-9
    report = s.gradcheck(training=False, autograd=False, samples=4)
    for layer in (1, 2, 3):
        check = report.get(layer, "db")
        assert check.status == "ok" and check.rel_error < 1e-6, (layer, check.rel_error)
