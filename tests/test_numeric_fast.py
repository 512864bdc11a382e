"""The batched numerical gradients equal the textbook loop's, entry by entry, and find the
same kink crossings (the loop is an independent implementation: the network's own
forward with one override at a time)."""

from __future__ import annotations

import numpy as np
import pytest

from bntui.engine import RunConfig, Session, preset
from bntui.engine.gradcheck import numeric_gradients, numeric_gradients_loop
from bntui.engine.loss import SoftmaxCrossEntropy

CONFIGS = [
    preset("seed-softmax"),
    RunConfig(dataset="moons", arch="5:relu,4:tanh:nobn,C", batch_size=40),
    RunConfig(dataset="iris", arch="6:elu=0.5,5:leaky_relu=0.1,C:nobias"),
    RunConfig(dataset="blobs", arch="4:sigmoid:nobn,C:nobn"),
]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.dataset}:{c.arch}")
def test_batched_equals_loop(cfg: RunConfig, training: bool) -> None:
    s = Session(cfg)
    s.train(steps=3)
    X, y = s.inspection_batch()
    before = s.network.state()
    fast = numeric_gradients(s.network, X, y, training=training, rng=np.random.default_rng(1))
    loop = numeric_gradients_loop(s.network, X, y, training=training,
                                  rng=np.random.default_rng(1))
    after = s.network.state()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    for block in s.network.blocks:
        a, b = fast[block.index], loop[block.index]
        assert a.keys() == b.keys()
        for name in a:
            ia, va, ka = a[name]
            ib, vb, kb = b[name]
            assert np.array_equal(ia, ib)
            if name == "db" and block.bn is not None and training:
                continue  # zero by construction: both are rounding noise
            scale = max(1e-12, float(np.max(np.abs(vb))))
            assert np.max(np.abs(va - vb)) <= 1e-5 * scale, (block.index, name)
            assert np.array_equal(ka, kb), (block.index, name)


def test_threads_give_the_same_numbers() -> None:
    """The columns and tensors run on several threads; the numbers must not depend on it."""
    session = Session(RunConfig(dataset="moons", arch="8:tanh,6:relu,C", samples=120))
    X, y = session.inspection_batch()
    one = numeric_gradients(session.network, X, y, threads=1)
    three = numeric_gradients(session.network, X, y, threads=3)
    assert one.keys() == three.keys()
    for layer, grads in one.items():
        assert grads.keys() == three[layer].keys()
        for name, (idx, vals, kink) in grads.items():
            idx3, vals3, kink3 = three[layer][name]
            np.testing.assert_array_equal(idx, idx3)
            np.testing.assert_array_equal(vals, vals3, err_msg=f"{layer}.{name}")
            np.testing.assert_array_equal(kink, kink3)


def _engine_losses(logits_fm: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.array([SoftmaxCrossEntropy().forward(v.T.copy(), y) for v in logits_fm])


def test_variant_loss_equals_the_engine_loss() -> None:
    """The batched loss shifts by the unperturbed row's top class; the engine by each
    row's own max.  Small perturbations (ties reordered included) and ones so large that
    e^x overflows with the base shift (the fallback) both give the engine's loss."""
    loss_of = SoftmaxCrossEntropy().variant_losses

    rng = np.random.default_rng(3)
    C, N = 4, 50
    base = rng.normal(size=(C, N))
    base[:, 0] = 1.0  # a tie in the base row
    y = rng.integers(0, C, N)
    top = base.argmax(axis=0)
    small = base + rng.normal(scale=1e-6, size=(6, C, N))
    huge = base + np.where(rng.random((2, C, N)) < 0.1, 800.0, 0.0)
    for variants, rtol in ((small, 1e-14), (huge, 1e-14)):
        want = _engine_losses(variants, y)
        with np.errstate(over="ignore"):  # as the callers run it
            got = loss_of(variants.copy(), y, top)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-15)
