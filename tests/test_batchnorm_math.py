"""The mathematics of bntui's BatchNorm, without torch.

Staged and compact backward agree (hypothesis over shapes, offsets, scales and eps); the
cache keeps every glossary name; the per-feature identities of the input gradient hold;
the training output ignores a per-feature affine change of its input; small examples
worked by hand; and the analytic dx matches centred differences.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bntui.engine import BatchNorm
from bntui.engine.batchnorm import NODES
from bntui.engine.nodes import backward_nodes

GLOSSARY_FORWARD = ("Z", "mu", "Z0", "var", "std", "Znorm", "Zbn")
GLOSSARY_BACKWARD = ("dZbn", "dgamma", "dbeta", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ")


@st.composite
def bn_cases(draw):
    """A BatchNorm with random gamma/beta, an input batch and an upstream gradient."""
    n = draw(st.integers(2, 64))
    d = draw(st.integers(1, 16))
    seed = draw(st.integers(0, 2**32 - 1))
    log_scale = draw(st.floats(-3.0, 3.0))  # spreads from 1e-3 to 1e3
    log_offset = draw(st.floats(-3.0, 4.0))  # offsets from 1e-3 to 1e4
    log_eps = draw(st.floats(-8.0, -1.0))
    rng = np.random.default_rng(seed)
    scale = 10.0 ** (log_scale + rng.uniform(-0.5, 0.5, d))
    offset = rng.choice([-1.0, 1.0], d) * 10.0 ** (log_offset + rng.uniform(-0.5, 0.5, d))
    x = offset + scale * rng.standard_normal((n, d))
    bn = BatchNorm(d, eps=10.0**log_eps)
    bn.gamma = rng.uniform(0.2, 3.0, d) * rng.choice([-1.0, 1.0], d)
    bn.beta = rng.standard_normal(d)
    dy = rng.standard_normal((n, d))
    return bn, x, dy


def term_scale(bn: BatchNorm, dy: np.ndarray) -> np.ndarray:
    """Per feature, the size of the terms dZ is made of: |γ| / std · max |dy|.

    dZ itself can be far smaller (with a batch of 2 and eps ≪ var it is ∝ eps / var), so
    agreement is measured against this scale, not against |dZ|.
    """
    return np.abs(bn.gamma) / bn.cache["std"] * np.max(np.abs(dy), axis=0)


def conditioning(x: np.ndarray, bn: BatchNorm) -> np.ndarray:
    """Per feature κ = |mean| / std: `Z − mu` keeps only ε_mach · κ of relative precision."""
    return np.maximum(1.0, np.abs(x.mean(axis=0)) / bn.cache["std"])


@settings(max_examples=150, deadline=None)
@given(bn_cases())
def test_staged_and_compact_backward_agree(case) -> None:
    bn, x, dy = case
    bn.forward(x, training=True)
    staged = bn.backward(dy).copy()
    compact = bn.backward(dy, staged=False).copy()
    scale = term_scale(bn, dy)
    err = np.max(np.abs(staged - compact), axis=0) / scale
    # 1e-12 while the offset is within 100× the spread; beyond, the rounding of Z − mu
    # (the staged path sees Σ Z0 ≠ 0, the compact one assumes it) grows like ε_mach · κ.
    tol = 1e-12 * np.maximum(1.0, conditioning(x, bn) / 100.0)
    assert np.all(err < tol), (err, tol)
    # relative to the size of dZ itself, whenever dZ is not a cancellation remainder
    big = np.max(np.abs(compact), axis=0) > 1e-3 * scale
    if big.any() and np.all(conditioning(x, bn) <= 100.0):
        rel = np.max(np.abs(staged - compact), axis=0)[big] / np.max(np.abs(compact), axis=0)[big]
        assert np.all(rel < 1e-9), rel


@pytest.mark.parametrize("eps", [0.0, 1e-12, 1e-5, 0.1])
def test_staged_and_compact_agree_on_a_well_conditioned_batch(eps: float) -> None:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((32, 8)) * 2.0 + 0.5
    dy = rng.standard_normal((32, 8))
    bn = BatchNorm(8, eps=eps)
    bn.gamma = rng.uniform(0.5, 2.0, 8)
    bn.forward(x)
    a = bn.backward(dy).copy()
    b = bn.backward(dy, staged=False)
    assert np.max(np.abs(a - b)) / np.max(np.abs(b)) < 1e-12


def test_cache_has_every_glossary_name() -> None:
    """The records name exactly the glossary's tensors, and the staged pass keeps each."""
    assert {n.name for n in NODES if n.role != "param"} == set(GLOSSARY_FORWARD)
    grads = {n.grad_name for n, _ in backward_nodes(NODES, ("train",))}
    assert grads | {"dZbn"} == set(GLOSSARY_BACKWARD)
    rng = np.random.default_rng(0)
    bn = BatchNorm(3)
    x = rng.standard_normal((5, 3))
    bn.forward(x)
    for name in GLOSSARY_FORWARD:
        assert name in bn.cache, name
    assert not any(name in bn.cache for name in GLOSSARY_BACKWARD)
    bn.backward(rng.standard_normal((5, 3)))
    for name in GLOSSARY_FORWARD + GLOSSARY_BACKWARD:
        assert name in bn.cache, name
    shapes = {"mu": (3,), "var": (3,), "std": (3,), "dgamma": (3,), "dbeta": (3,),
              "dstd": (3,), "dvar": (3,), "dmu": (3,)}
    for name in GLOSSARY_FORWARD + GLOSSARY_BACKWARD:
        assert bn.cache[name].shape == shapes.get(name, (5, 3)), name
    np.testing.assert_array_equal(bn.cache["dgamma"], bn.grads["gamma"])
    np.testing.assert_array_equal(bn.cache["dbeta"], bn.grads["beta"])


def test_each_cached_node_follows_its_formula() -> None:
    rng = np.random.default_rng(1)
    bn = BatchNorm(4, eps=1e-3)
    bn.gamma = rng.uniform(0.5, 2.0, 4)
    bn.beta = rng.standard_normal(4)
    x = rng.standard_normal((9, 4)) * 3 + 1
    dy = rng.standard_normal((9, 4))
    bn.forward(x)
    bn.backward(dy)
    c, g, m = bn.cache, bn.gamma, 9
    close = np.testing.assert_allclose
    close(c["mu"], x.mean(axis=0), rtol=1e-14)
    close(c["Z0"], x - c["mu"], rtol=1e-14)
    close(c["var"], x.var(axis=0), rtol=1e-13)
    close(c["std"], np.sqrt(c["var"] + 1e-3), rtol=1e-15)
    close(c["Znorm"], c["Z0"] / c["std"], rtol=1e-15)
    close(c["Zbn"], g * c["Znorm"] + bn.beta, rtol=1e-14, atol=1e-15)
    close(c["dbeta"], dy.sum(axis=0), rtol=1e-14)
    close(c["dgamma"], (dy * c["Znorm"]).sum(axis=0), rtol=1e-13)
    close(c["dZnorm"], dy * g, rtol=1e-15)
    close(c["dstd"], -(c["dZnorm"] * c["Z0"]).sum(axis=0) / c["std"] ** 2, rtol=1e-13)
    close(c["dvar"], c["dstd"] / (2 * c["std"]), rtol=1e-15)
    close(c["dZ0"], c["dZnorm"] / c["std"] + c["dvar"] * 2 * c["Z0"] / m, rtol=1e-13,
          atol=1e-15)
    close(c["dmu"], -c["dZ0"].sum(axis=0), rtol=1e-12, atol=1e-15)
    close(c["dZ"], c["dZ0"] + c["dmu"] / m, rtol=1e-13, atol=1e-15)


@settings(max_examples=100, deadline=None)
@given(bn_cases())
def test_input_gradient_identities(case) -> None:
    """Σᵢ dZ = 0 (the output ignores a shift) and Σᵢ dZ·Znorm = γ·dγ·eps / std³.

    The second is 0 only when eps = 0: with eps > 0 the output is not invariant to a
    scaling of its input (Znorm = Z0 / √(var + eps)), so dZ has a component along Znorm.
    """
    bn, x, dy = case
    bn.forward(x, training=True)
    for staged in (True, False):
        dZ = bn.backward(dy, staged=staged)
        c = bn.cache
        scale = term_scale(bn, dy)
        n = x.shape[0]
        tol = 1e-13 * n * scale * conditioning(x, bn)
        assert np.all(np.abs(dZ.sum(axis=0)) <= tol)
        expected = bn.gamma * c["dgamma"] * bn.eps / c["std"] ** 3
        got = (dZ * c["Znorm"]).sum(axis=0)
        assert np.all(np.abs(got - expected) <= tol), (got, expected, tol)


def test_input_gradient_is_orthogonal_to_znorm_when_eps_is_zero() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 5)) * 4 - 2
    dy = rng.standard_normal((20, 5))
    bn = BatchNorm(5, eps=0.0)
    bn.forward(x)
    for staged in (True, False):
        dZ = bn.backward(dy, staged=staged)
        scale = np.max(np.abs(dZ))
        assert np.max(np.abs(dZ.sum(axis=0))) < 1e-13 * 20 * scale
        assert np.max(np.abs((dZ * bn.cache["Znorm"]).sum(axis=0))) < 1e-13 * 20 * scale


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 40),
    st.integers(1, 8),
    st.integers(0, 2**32 - 1),
    st.floats(-2.0, 2.0),
)
def test_training_output_ignores_a_positive_affine_change(n, d, seed, log_a) -> None:
    """With eps = 0, BN(a·x + c) = BN(x) per feature for every a > 0 and every c."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * rng.uniform(1.0, 3.0, d)
    a = 10.0 ** (log_a + rng.uniform(-0.5, 0.5, d))
    c = rng.uniform(-100.0, 100.0, d)
    bn = BatchNorm(d, eps=0.0)
    bn.gamma = rng.uniform(0.5, 2.0, d)
    bn.beta = rng.standard_normal(d)
    y0 = bn.forward(x, training=True, update_running=False).copy()
    y1 = bn.forward(a * x + c, training=True, update_running=False)
    assert np.max(np.abs(y1 - y0)) / max(1e-12, float(np.max(np.abs(y0)))) < 1e-9


def test_affine_invariance_with_a_tiny_eps() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 3)) * 2  # variance ≥ 1, so eps = 1e-12 is negligible
    bn = BatchNorm(3, eps=1e-12)
    y0 = bn.forward(x, update_running=False).copy()
    y1 = bn.forward(3.0 * x - 7.0, update_running=False)
    assert np.max(np.abs(y1 - y0)) / np.max(np.abs(y0)) < 1e-9


def test_a_batch_of_two_normalises_to_plus_minus_one() -> None:
    bn = BatchNorm(1, eps=0.0)
    out = bn.forward(np.array([[1.0], [3.0]]))
    # mu = 2, Z0 = [−1, 1], var = (1 + 1) / 2 = 1, std = 1, Znorm = [−1, 1]
    np.testing.assert_array_equal(bn.cache["mu"], [2.0])
    np.testing.assert_array_equal(bn.cache["var"], [1.0])
    np.testing.assert_array_equal(bn.cache["Znorm"], [[-1.0], [1.0]])
    np.testing.assert_array_equal(out, [[-1.0], [1.0]])
    # any two distinct values: Znorm = ±(x₂ − x₁)/2 / (|x₂ − x₁|/2) = ±1
    out = bn.forward(np.array([[-7.25], [100.5]]))
    np.testing.assert_allclose(out, [[-1.0], [1.0]], rtol=1e-15)


def test_three_by_one_by_hand() -> None:
    """x = [0, 3, 6], eps = 3, γ = 2, β = 0.5, momentum 0.1, dy = [1, 0, 0].

    forward:  mu = (0 + 3 + 6) / 3 = 3            Z0 = [−3, 0, 3]
              var = (9 + 0 + 9) / 3 = 6           std = √(6 + 3) = 3
              Znorm = [−1, 0, 1]                  Zbn = 2·Znorm + 0.5 = [−1.5, 0.5, 2.5]
    running:  mean = 0.9·0 + 0.1·3 = 0.3
              var  = 0.9·1 + 0.1·(18 / 2) = 0.9 + 0.9 = 1.8   (unbiased: Σ Z0² / (m − 1))
    backward: dbeta = Σ dy = 1                    dgamma = Σ dy·Znorm = −1
              dZnorm = γ·dy = [2, 0, 0]
              dstd = −Σ dZnorm·Z0 / std² = −(2·−3) / 9 = 2/3
              dvar = dstd / (2·std) = (2/3) / 6 = 1/9
              dZ0 = dZnorm / std + dvar·2·Z0 / m = [2/3, 0, 0] + (2/27)·[−3, 0, 3]
                  = [2/3 − 2/9, 0, 2/9] = [4/9, 0, 2/9]
              dmu = −Σ dZ0 = −6/9 = −2/3
              dZ = dZ0 + dmu / m = [4/9 − 2/9, −2/9, 2/9 − 2/9] = [2/9, −2/9, 0]
    compact:  dZ = (γ/std)·(dy − (dβ + Znorm·dγ)/m) = (2/3)·([1, 0, 0] − [2, 1, 0]/3)
                 = (2/3)·[1/3, −1/3, 0] = [2/9, −2/9, 0]
    """
    bn = BatchNorm(1, eps=3.0, momentum=0.1)
    bn.gamma = [2.0]
    bn.beta = [0.5]
    x = np.array([[0.0], [3.0], [6.0]])
    out = bn.forward(x)
    c = bn.cache
    np.testing.assert_array_equal(c["mu"], [3.0])
    np.testing.assert_array_equal(c["Z0"], [[-3.0], [0.0], [3.0]])
    np.testing.assert_array_equal(c["var"], [6.0])
    np.testing.assert_array_equal(c["std"], [3.0])
    np.testing.assert_array_equal(c["Znorm"], [[-1.0], [0.0], [1.0]])
    np.testing.assert_array_equal(out, [[-1.5], [0.5], [2.5]])
    np.testing.assert_allclose(bn.running_mean, [0.3], rtol=1e-15)
    np.testing.assert_allclose(bn.running_var, [1.8], rtol=1e-15)
    dy = np.array([[1.0], [0.0], [0.0]])
    dZ = bn.backward(dy)
    close = np.testing.assert_allclose
    close(c["dbeta"], [1.0], rtol=1e-15)
    close(c["dgamma"], [-1.0], rtol=1e-15)
    close(c["dZnorm"], [[2.0], [0.0], [0.0]], rtol=1e-15)
    close(c["dstd"], [2 / 3], rtol=1e-15)
    close(c["dvar"], [1 / 9], rtol=1e-15)
    close(c["dZ0"], [[4 / 9], [0.0], [2 / 9]], rtol=1e-15)
    close(c["dmu"], [-2 / 3], rtol=1e-15)
    close(dZ, [[2 / 9], [-2 / 9], [0.0]], rtol=1e-15, atol=1e-16)
    close(bn.backward(dy, staged=False), [[2 / 9], [-2 / 9], [0.0]], rtol=1e-15, atol=1e-16)
    # eval mode with those running stats: (x − 0.3) / √(1.8 + 3)·2 + 0.5
    ev = bn.forward(x, training=False)
    close(ev, 2 * (x - 0.3) / np.sqrt(4.8) + 0.5, rtol=1e-15)


@pytest.mark.parametrize(("n", "d", "eps", "offset", "scale"), [
    (2, 3, 1e-5, 0.0, 1.0),
    (3, 1, 1e-5, 0.0, 1.0),
    (8, 4, 1e-3, 5.0, 2.0),
    (17, 5, 0.1, -3.0, 0.1),
    (32, 2, 1e-8, 100.0, 10.0),
])
@pytest.mark.parametrize("training", [True, False])
def test_dx_matches_centred_differences(n, d, eps, offset, scale, training) -> None:
    rng = np.random.default_rng(n * 100 + d)
    bn = BatchNorm(d, eps=eps)
    bn.gamma = rng.uniform(0.5, 2.0, d) * rng.choice([-1.0, 1.0], d)
    bn.beta = rng.standard_normal(d)
    bn.running_mean[...] = offset + rng.standard_normal(d)
    bn.running_var[...] = scale**2 * rng.uniform(0.5, 2.0, d)
    x = offset + scale * rng.standard_normal((n, d))
    R = rng.standard_normal((n, d))

    def loss(xx: np.ndarray) -> float:
        return float(np.sum(bn.forward(xx, training=training, update_running=False) * R))

    loss(x)
    analytic = bn.backward(R).copy()
    numeric = np.empty_like(x)
    for idx in np.ndindex(*x.shape):
        h = 1e-5 * max(scale, abs(x[idx]))
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        numeric[idx] = (loss(xp) - loss(xm)) / (2 * h)
    err = np.max(np.abs(analytic - numeric)) / max(1e-12, float(np.max(np.abs(numeric))))
    if n == 2 and training:
        # a batch of two is ±1 up to eps: dx is an eps-sized remainder; judge it absolutely
        assert np.max(np.abs(analytic - numeric)) < 1e-7 * np.max(np.abs(bn.gamma)) / scale
    else:
        assert err < 1e-7, err


def test_gamma_and_beta_gradients_match_centred_differences() -> None:
    rng = np.random.default_rng(9)
    bn = BatchNorm(3, eps=1e-4)
    bn.gamma = rng.uniform(0.5, 2.0, 3)
    bn.beta = rng.standard_normal(3)
    x = rng.standard_normal((10, 3)) * 2 + 1
    R = rng.standard_normal((10, 3))
    bn.forward(x, update_running=False)
    bn.backward(R)
    for name in ("gamma", "beta"):
        p = bn.params[name]
        numeric = np.empty(3)
        for j in range(3):
            old = p[j]
            p[j] = old + 1e-6
            lp = float(np.sum(bn.forward(x, update_running=False) * R))
            p[j] = old - 1e-6
            lm = float(np.sum(bn.forward(x, update_running=False) * R))
            p[j] = old
            numeric[j] = (lp - lm) / 2e-6
        np.testing.assert_allclose(bn.grads[name], numeric, rtol=1e-7)


@pytest.mark.parametrize("m, d, block_rows", [(37, 5, 16), (64, 3, 16), (3000, 100, 1000)])
def test_compact_backward_in_blocks_equals_the_staged_one(monkeypatch, m, d, block_rows):
    """Large batches take the blocked path (sums and dZ a block of rows at a time, the last
    block partial): the same gradients as the staged path, to rounding."""
    from bntui.engine import batchnorm as bn_mod

    monkeypatch.setattr(bn_mod, "WHOLE_BYTES", 0)
    monkeypatch.setattr(bn_mod, "BLOCK_BYTES", block_rows * d * 8)
    rng = np.random.default_rng(m)
    bn = BatchNorm(d)
    bn.gamma = rng.normal(size=d)
    bn.beta = rng.normal(size=d)
    x = rng.normal(size=(m, d)) * 3 + 1
    dy = rng.normal(size=(m, d))
    bn.forward(x)
    staged = bn.backward(dy, staged=True).copy()
    dgamma, dbeta = bn.grads["gamma"].copy(), bn.grads["beta"].copy()
    compact = bn.backward(dy, staged=False)
    scale = np.abs(staged).max()
    np.testing.assert_allclose(compact, staged, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(bn.grads["gamma"], dgamma, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn.grads["beta"], dbeta, rtol=1e-12, atol=1e-12)
    # the invariants of the exact gradient hold in the blocked one too
    assert np.abs(compact.sum(axis=0)).max() <= 1e-11 * scale * m


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("m, d, block", [(37, 5, 2), (300, 40, 7), (64, 3, 1)])
def test_blocked_pass_equals_the_whole_array_pass(monkeypatch, order, m, d, block):
    """Large tensors go through BatchNorm in blocks: of rows when row-major (the sums are
    carried across blocks), of features when feature-major (each block on its own, the
    last one partial).  Every forward tensor and every gradient is the whole-array pass's,
    to rounding."""
    from bntui.engine import batchnorm as bn_mod

    rng = np.random.default_rng(m + d)
    x = np.array(rng.normal(size=(m, d)) * 3 + 1, order=order)
    dy = np.array(rng.normal(size=(m, d)), order=order)

    def run() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        bn = BatchNorm(d)
        bn.gamma = np.linspace(0.5, 2.0, d)
        bn.beta = np.linspace(-1.0, 1.0, d)
        bn.forward(x)
        bn.backward(dy, staged=False)
        running = {k: v.copy() for k, v in bn.running_state().items()}
        return {k: v.copy(order="K") for k, v in bn.cache.items()}, running | {
            "dgamma": bn.grads["gamma"].copy(), "dbeta": bn.grads["beta"].copy()}

    whole, whole_grads = run()
    unit = block * (m if order == "F" else d) * 8  # `block` columns or rows
    monkeypatch.setattr(bn_mod, "WHOLE_BYTES", 0)
    monkeypatch.setattr(bn_mod, "BLOCK_BYTES", unit)
    if order == "F":
        assert bn_mod.column_blocks(x) is not None
    else:
        assert bn_mod.row_blocks(x) is not None
    blocked, blocked_grads = run()
    assert blocked.keys() == whole.keys()
    for k in whole:
        np.testing.assert_allclose(blocked[k], whole[k], rtol=1e-13, atol=1e-13, err_msg=k)
    for k in whole_grads:
        np.testing.assert_allclose(blocked_grads[k], whole_grads[k], rtol=1e-13, atol=1e-12,
                                   err_msg=k)
    assert blocked["Zbn"].flags.f_contiguous == (order == "F")


@pytest.mark.parametrize("order", ["C", "F"])
def test_coldot_is_the_per_feature_dot_product(order: str) -> None:
    """BatchNorm's variance and dγ sum over the batch with `coldot` (np.vecdot on
    feature-major arrays, einsum otherwise): against math.fsum, column by column."""
    import math

    from bntui.engine.kernels import coldot

    rng = np.random.default_rng(7)
    a = np.array(rng.normal(size=(301, 6)) * 1e3, order=order)
    b = np.array(rng.normal(size=(301, 6)), order=order)
    want = [math.fsum(a[:, j] * b[:, j]) for j in range(6)]
    np.testing.assert_allclose(coldot(a, b), want, rtol=1e-13)
    out = np.empty(6)
    assert coldot(a, b, out=out) is out
