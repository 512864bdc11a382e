"""Engine functions behind the plots and the BN train/eval pane."""

from __future__ import annotations

import numpy as np

from bntui.engine import RunConfig, Session
from bntui.engine.batchnorm import BatchNorm, train_vs_eval
from bntui.engine.regions import decision_regions, plane_of


def test_plane_of_2d_data_is_the_identity() -> None:
    s = Session(RunConfig(dataset="moons"))
    plane = plane_of(s.dataset)
    assert np.allclose(plane.project(s.dataset.X_train), s.dataset.X_train)
    assert plane.explained is None


def test_pca_plane_is_orthonormal_and_ordered() -> None:
    s = Session(RunConfig(dataset="iris", arch="8,C"))
    plane = plane_of(s.dataset)
    assert np.allclose(plane.axes @ plane.axes.T, np.eye(2), atol=1e-12)
    P = plane.project(s.dataset.X_train)
    assert P[:, 0].var() >= P[:, 1].var()
    assert abs(P.mean(axis=0)).max() < 1e-12  # centred on the training mean
    assert 0 < sum(plane.explained) <= 1 + 1e-12


def test_decision_regions_match_the_networks_predictions() -> None:
    s = Session(RunConfig(dataset="blobs", steps=50))
    s.train()
    before = s.network.state()
    rm = decision_regions(s.network, s.dataset, cols=20, rows=10)
    assert rm.classes.shape == (10, 20)
    # a grid point classified the same as the network classifies it directly
    x = np.array([[rm.xs[3], rm.ys[7]]])
    assert s.network.predict(rm.plane.lift(x))[0] == rm.classes[7, 3]
    # no state was touched (eval mode, running stats unchanged)
    after = s.network.state()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_train_vs_eval_leaves_the_layer_alone_and_matches_by_hand() -> None:
    rng = np.random.default_rng(0)
    bn = BatchNorm(3)
    for _ in range(4):
        bn.forward(rng.normal(2.0, 3.0, (8, 3)))
    running = (bn.running_mean.copy(), bn.running_var.copy())
    Z = rng.normal(2.0, 3.0, (8, 3))
    out = train_vs_eval(bn, Z)
    assert np.array_equal(bn.running_mean, running[0])
    mu, var = Z.mean(0), Z.var(0)
    assert np.allclose(out["Znorm_train"], (Z - mu) / np.sqrt(var + bn.eps), rtol=1e-13)
    assert np.allclose(out["Znorm_eval"], (Z - running[0]) / np.sqrt(running[1] + bn.eps),
                       rtol=1e-13)
    assert np.allclose(out["Zbn_diff"], out["Zbn_train"] - out["Zbn_eval"])


def test_batch_of_two_always_normalises_to_plus_minus_one() -> None:
    bn = BatchNorm(4, eps=0.0)
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(2, 4)) * 100 + 7
    out = train_vs_eval(bn, Z)
    assert np.allclose(np.abs(out["Znorm_train"]), 1.0, rtol=1e-12)
