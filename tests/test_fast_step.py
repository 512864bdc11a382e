"""`Session.train` runs `Network.train_step`, composed of each part's own fused methods
(Dense's forward, BatchNorm's `train_forward`/`train_backward`, the activation's
`affine_forward`, the loss's `train_backward`): the pass without the teaching
bookkeeping.  It must be the staged pass's arithmetic exactly: trained side by side with
`Network.loss` (the records, one by one) + `Network.backward(staged=False)` (the compact
BatchNorm backward) from the same start, every loss, parameter, running statistic and
optimizer slot is bit-identical.  A network with a variant part trains on that part's
staged pass."""

from __future__ import annotations

import numpy as np
import pytest

from bntui.engine import RunConfig, Session, preset
from bntui.engine.labs.bugs import buggy_session

CONFIGS = [
    preset("seed-digits").with_overrides(steps=8),
    preset("seed-digits").with_overrides(steps=8, dtype="float32"),
    RunConfig(dataset="moons", arch="8:tanh:nobn,6:elu=0.5,C:nobias", batch_size=40, steps=12,
              optimizer="rmsprop"),
    RunConfig(dataset="blobs", arch="6:leaky_relu=0.1:nobias,5:identity,C:nobn",
              optimizer="nesterov", lr=0.1, steps=10, batch_size=16),
    RunConfig(dataset="iris", arch="C", optimizer="sgd", lr=0.5, steps=6),
    # Z of 1,500 × 200 is over batchnorm.WHOLE_BYTES: the fused BatchNorm works a block of
    # features at a time, the staged one on the whole array
    RunConfig(dataset="digits", arch="200:sigmoid,200:relu,C", optimizer="sgd", lr=0.1,
              steps=2),
]


def full_pass_loop(s: Session, steps: int) -> tuple[list[float], list[float]]:
    """The reference: the teaching pass, then the optimizer on the flat buffers; the
    losses and the batch accuracies (arg-max of the logits)."""
    losses, accuracies = [], []
    for _ in range(steps):
        Xb, yb = s.next_batch()
        losses.append(s.network.loss(Xb, yb, training=True))
        accuracies.append(float(np.mean(s.network.loss_layer.cache["logits"].argmax(axis=1)
                                        == yb)))
        s.network.backward(staged=False)
        s.optimizer.step_flat(s.network.flat)
    return losses, accuracies


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.dataset}:{c.arch}:{c.dtype}")
def test_the_lean_step_is_the_full_pass_bit_for_bit(cfg: RunConfig) -> None:
    lean, full = Session(cfg), Session(cfg)
    assert lean.network.fused
    lean.train(steps=cfg.steps, eval_every=10**9)
    want, accuracies = full_pass_loop(full, cfg.steps)
    assert lean.history.loss == want
    assert lean.history.batch_accuracy == accuracies
    a, b = lean.network.state(), full.network.state()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    sa, sb = lean.optimizer.snapshot(), full.optimizer.snapshot()
    assert sa[0] == sb[0]
    for k in sa[1]:
        np.testing.assert_array_equal(sa[1][k], sb[1][k], err_msg=k)


@pytest.mark.parametrize("bug", ["dbeta-sum-zbn", "eps-outside-sqrt", "missing-1-over-m"])
def test_a_variant_part_trains_on_its_staged_pass(bug: str) -> None:
    """The bug zoo's parts override one step of the records: training must use it (the
    bugged losses, step by step, of the bugged network's own staged pass; the other parts
    keep their fused methods: a correct BatchNorm its compact backward)."""
    cfg = preset("seed-softmax")
    trained, by_hand = buggy_session(cfg, bug), buggy_session(cfg, bug)
    assert not trained.network.fused
    staged = not all(bn.FUSED for bn in trained.network.batchnorms())
    trained.train(steps=4, eval_every=10**9)
    want = []
    for _ in range(4):
        Xb, yb = by_hand.next_batch()
        want.append(by_hand.network.loss(Xb, yb, training=True))
        by_hand.network.backward(staged=staged)
        by_hand.optimizer.step_flat(by_hand.network.flat)
    assert trained.history.loss == want
    clean = Session(cfg)
    clean.train(steps=4, eval_every=10**9)
    assert clean.history.loss[1:] != want[1:]  # the bug changed training


def test_nan_rollback_restores_the_last_good_state_with_bn_and_adam() -> None:
    """The snapshot arrays are reused every step; what is put back must still be the state
    of the last finite loss: the parameters and Adam's slots from before its update, the
    running statistics that its forward pass left."""
    # Adam moves every weight by about lr a step: the logits overflow at the third step
    cfg = RunConfig(dataset="moons", arch="16:relu,C:nobn", optimizer="adam", lr=5e152,
                    steps=50)
    s = Session(cfg)
    seen: list[tuple[dict, int, dict]] = []

    def record(sess: Session) -> None:
        t, slots = sess.optimizer.snapshot()
        seen.append((sess.network.state(), t, {k: v.copy() for k, v in slots.items()}))

    record(s)
    s.train(on_step=record, eval_every=10**9)
    assert s.stopped is not None and "the loss became" in s.stopped
    assert len(seen) >= 3  # a few steps completed, so the buffers were reused
    params_then, t_then, slots_then = seen[-2]  # before the last completed update
    running_then = seen[-1][0]  # its forward pass's running statistics
    state = s.network.state()
    for k, v in state.items():
        want = running_then[k] if "running" in k or "batches" in k else params_then[k]
        np.testing.assert_array_equal(v, want, err_msg=k)
    t, slots = s.optimizer.snapshot()
    assert t == t_then
    for k in slots:
        np.testing.assert_array_equal(slots[k], slots_then[k], err_msg=k)
    loss = s.network.loss(s.X_train, s.y_train, training=True, update_running=False)
    assert loss == s.history.loss[-1]


@pytest.mark.parametrize("cfg", CONFIGS[:4], ids=lambda c: f"{c.dataset}:{c.arch}:{c.dtype}")
def test_the_lean_loss_is_the_staged_loss(cfg: RunConfig) -> None:
    """`Network.train_loss` (what `train --json` reports as final_loss) keeps nothing and
    updates no running statistic, and is the staged pass's loss bit for bit."""
    s = Session(cfg)
    s.train(steps=3, eval_every=10**9)
    before = s.network.state()
    lean = s.network.train_loss(s.X_train, s.y_train)
    assert all(not b.cache and b._fused is None for b in s.network.blocks)
    after = s.network.state()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    assert lean == s.network.loss(s.X_train, s.y_train, training=True, update_running=False)
