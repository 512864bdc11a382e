"""The engine stores activations feature-major ((N, D) views of contiguous (D, N) arrays;
see `Dense.forward`): a speed property the benchmarks rely on, so it is pinned here, and
the values must not depend on the memory order of what comes in."""

from __future__ import annotations

import numpy as np

from bntui.engine import Session, preset


def test_every_tensor_of_a_pass_is_feature_major() -> None:
    s = Session(preset("seed-digits"))
    net = s.network
    X, y = s.X_train[:200], s.y_train[:200]
    net.loss(X, y, training=True)
    net.backward(staged=False)
    for block in net.blocks:
        for name in ("Z", "Z0", "Znorm", "Zbn", "A", "dA", "dZbn", "dZ"):
            t = block.cache[name]
            assert t.shape == (200, block.dense.fan_out)
            assert t.flags.f_contiguous and not t.flags.c_contiguous, (block.index, name)
        if block.index > 1:
            assert block.cache["dX"].flags.f_contiguous, block.index
    assert net.loss_layer.cache["dlogits"].flags.f_contiguous


def test_values_do_not_depend_on_the_input_layout() -> None:
    """Row-major and column-major copies of the same batch: the same loss and gradients,
    bit for bit (only the memory order differs, not the arithmetic)."""
    s = Session(preset("seed-digits"))
    net = s.network
    X, y = s.X_train[:300], s.y_train[:300]
    results = []
    for order in ("C", "F"):
        Xo = np.array(X, order=order)
        loss = net.loss(Xo, y, training=True, update_running=False)
        grads = {k: g.copy() for k, g in net.backward(staged=True).items()}
        results.append((loss, grads, net.blocks[0].cache["Znorm"].copy()))
    (l1, g1, z1), (l2, g2, z2) = results
    assert l1 == l2
    np.testing.assert_array_equal(z1, z2)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k], err_msg=k)


def test_every_normalization_keeps_the_tensors_feature_major() -> None:
    """LayerNorm, GroupNorm and RMSNorm blocks (issue 14) store their pass feature-major
    too."""
    from bntui.engine import RunConfig

    s = Session(RunConfig(dataset="moons", arch="16:ln:tanh,8:gn=4:relu,C:rms"))
    net = s.network
    X, y = s.X_train[:100], s.y_train[:100]
    net.loss(X, y, training=True)
    net.backward(staged=False)
    for block in net.blocks:
        for name in ("Z", "Znorm", block.pre_name, "A", "dA", "dZ"):
            t = block.cache[name]
            assert t.shape == (100, block.dense.fan_out)
            assert t.flags.f_contiguous and not t.flags.c_contiguous, (block.index, name)
