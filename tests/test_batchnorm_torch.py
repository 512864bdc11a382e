"""bntui's BatchNorm against `torch.nn.BatchNorm1d` in float64.

Training-mode forward, backward (dx, dgamma, dbeta), the running statistics after several
training steps on different batches, and the eval-mode forward and backward, to 1e-9
relative; the batch-size-1 error; and the seeds' conventions (Keras-style momentum, a
biased running variance, seed 000's running std) against a hand-written reference.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from bntui.engine import BatchNorm, BntuiError

torch = pytest.importorskip("torch")

RTOL = 1e-9
ATOL = 1e-14  # absolute floor, for tensors whose entries are all (nearly) zero
BATCH_ONE = "expected more than 1 value per feature when training"  # DESIGN's wording
# torch 2.x says "Expected more than 1 value per channel when training, got input size ..."
TORCH_BATCH_ONE = r"(?i)expected more than 1 value per (channel|feature) when training"

SHAPES = [(2, 1), (2, 5), (3, 1), (7, 3), (64, 16), (1000, 4)]
# name: (per-feature offset, per-feature spread)
INPUTS = {
    "standard": (0.0, 1.0),
    "offset1e4": (1e4, 1.0),
    "tiny": (0.0, 1e-4),
    "tiny_offset": (3.0, 1e-6),
}
# (eps, momentum): torch's defaults and two others
SETTINGS = [(1e-5, 0.1), (1e-3, 0.3), (0.01, 0.01)]
N_STEPS = 6


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| / max |b|, with a floor on the denominator."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(1e-12, float(np.max(np.abs(b)))))


def assert_close(a: np.ndarray, b: np.ndarray, what: str, rtol: float = RTOL,
                 floor: float = ATOL) -> None:
    """Relative error below `rtol`, or an absolute error below `floor`."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    abs_err = float(np.max(np.abs(a - b)))
    if abs_err <= floor:
        return
    r = rel_err(a, b)
    assert r < rtol, f"{what}: relative error {r:.3e} (abs {abs_err:.3e}, floor {floor:.1e})"


def floors(x: np.ndarray, dy: np.ndarray, gamma: np.ndarray, eps: float) -> dict[str, float]:
    """Absolute floors for the gradients of one training batch, from its conditioning.

    `Z − mu` loses about ε_mach · |mean| / std of its relative precision (κ = |mean| / std
    is 1e4 for the offset inputs, 3e6 for the tiny ones), and a gradient can be much
    smaller than the terms that make it (with a batch of 2, dx ∝ 1 − Znorm² ≈ eps / var):
    no float64 implementation, torch's included, gets it to 1e-9 relative then (checked
    against 50-digit arithmetic).  The floor is 1e-13 · κ · the scale of the terms.
    """
    mean, var = x.mean(axis=0), x.var(axis=0)
    std = np.sqrt(var + eps)
    kappa = max(1.0, float(np.max(np.abs(mean) / std)))
    n, dy_max = x.shape[0], float(np.max(np.abs(dy)))
    znorm_max = float(np.max(np.abs((x - mean) / std)))
    return {
        "dx": 1e-13 * kappa * float(np.max(np.abs(gamma) / std)) * dy_max + ATOL,
        "dgamma": 1e-13 * kappa * n * dy_max * max(1.0, znorm_max) + ATOL,
        "dbeta": 1e-13 * n * dy_max + ATOL,
        "out": 1e-13 * kappa * float(np.max(np.abs(gamma))) + ATOL,
    }


def make_batch(rng: np.random.Generator, shape: tuple[int, int], kind: str) -> np.ndarray:
    offset, spread = INPUTS[kind]
    n, d = shape
    # a different offset and spread for each feature, around the kind's values
    off = offset * rng.uniform(0.5, 1.5, d)
    sc = spread * rng.uniform(0.5, 2.0, d)
    return off + sc * rng.standard_normal((n, d))


def twins(d: int, eps: float, momentum: float, rng: np.random.Generator):
    """Our BatchNorm and torch's with the same (non-trivial) gamma and beta."""
    ours = BatchNorm(d, eps=eps, momentum=momentum)
    ours.gamma = rng.uniform(0.5, 2.0, d) * rng.choice([-1.0, 1.0], d)
    ours.beta = rng.standard_normal(d)
    theirs = torch.nn.BatchNorm1d(d, eps=eps, momentum=momentum).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.gamma.copy()))
        theirs.bias.copy_(torch.from_numpy(ours.beta.copy()))
    return ours, theirs


def torch_pass(bn, x: np.ndarray, dy: np.ndarray):
    """Output, dx, dgamma, dbeta of one torch pass in the module's current mode."""
    bn.zero_grad(set_to_none=True)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = bn(xt)
    (out * torch.from_numpy(dy)).sum().backward()
    return (out.detach().numpy(), xt.grad.numpy(), bn.weight.grad.numpy(),
            bn.bias.grad.numpy())


@pytest.mark.parametrize(("eps", "momentum"), SETTINGS)
@pytest.mark.parametrize("kind", list(INPUTS))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_matches_torch(shape: tuple[int, int], kind: str, eps: float, momentum: float) -> None:
    rng = np.random.default_rng(zlib.crc32(repr((shape, kind, eps, momentum)).encode()))
    ours, theirs = twins(shape[1], eps, momentum, rng)
    theirs.train()
    for step in range(N_STEPS):
        x = make_batch(rng, shape, kind)
        dy = rng.standard_normal(shape)
        out = ours.forward(x, training=True)
        dx = ours.backward(dy)
        t_out, t_dx, t_dgamma, t_dbeta = torch_pass(theirs, x, dy)
        fl = floors(x, dy, ours.gamma, eps)
        assert_close(out, t_out, f"step {step} forward", floor=fl["out"])
        assert_close(dx, t_dx, f"step {step} dx (staged)", floor=fl["dx"])
        assert_close(ours.grads["gamma"], t_dgamma, f"step {step} dgamma", floor=fl["dgamma"])
        assert_close(ours.grads["beta"], t_dbeta, f"step {step} dbeta", floor=fl["dbeta"])
        dx_compact = ours.backward(dy, staged=False)
        assert_close(dx_compact, t_dx, f"step {step} dx (compact)", floor=fl["dx"])
        assert_close(ours.running_mean, theirs.running_mean.numpy(), f"step {step} running_mean")
        assert_close(ours.running_var, theirs.running_var.numpy(), f"step {step} running_var")
    assert ours.num_batches_tracked == int(theirs.num_batches_tracked) == N_STEPS

    # eval mode: normalise with the running statistics, which must not move
    theirs.eval()
    mean_before, var_before = ours.running_mean.copy(), ours.running_var.copy()
    x = make_batch(rng, shape, kind)
    dy = rng.standard_normal(shape)
    out = ours.forward(x, training=False)
    dx = ours.backward(dy)
    t_out, t_dx, t_dgamma, t_dbeta = torch_pass(theirs, x, dy)
    assert_close(out, t_out, "eval forward")
    assert_close(dx, t_dx, "eval dx")
    assert_close(ours.grads["gamma"], t_dgamma, "eval dgamma")
    assert_close(ours.grads["beta"], t_dbeta, "eval dbeta")
    np.testing.assert_array_equal(ours.running_mean, mean_before)
    np.testing.assert_array_equal(ours.running_var, var_before)


def test_defaults_are_torchs() -> None:
    ours, theirs = BatchNorm(3), torch.nn.BatchNorm1d(3)
    assert ours.eps == theirs.eps
    assert ours.momentum == theirs.momentum
    np.testing.assert_array_equal(ours.running_mean, theirs.running_mean.numpy())
    np.testing.assert_array_equal(ours.running_var, theirs.running_var.numpy())
    np.testing.assert_array_equal(ours.gamma, theirs.weight.detach().numpy())
    np.testing.assert_array_equal(ours.beta, theirs.bias.detach().numpy())


def test_batch_size_one_in_training_is_refused_like_torch() -> None:
    x = np.array([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=TORCH_BATCH_ONE):
        torch.nn.BatchNorm1d(3).double().train()(torch.from_numpy(x))
    bn = BatchNorm(3)
    with pytest.raises(BntuiError, match=BATCH_ONE):
        bn.forward(x, training=True)
    # refused before anything moved
    assert bn.num_batches_tracked == 0
    np.testing.assert_array_equal(bn.running_mean, np.zeros(3))
    np.testing.assert_array_equal(bn.running_var, np.ones(3))


def test_batch_size_one_in_eval_matches_torch() -> None:
    rng = np.random.default_rng(7)
    ours, theirs = twins(4, 1e-5, 0.1, rng)
    for _ in range(5):  # non-trivial running statistics
        x = 5.0 + 2.0 * rng.standard_normal((8, 4))
        ours.forward(x, training=True)
        theirs.train()(torch.from_numpy(x))
    theirs.eval()
    x1 = rng.standard_normal((1, 4))
    dy = rng.standard_normal((1, 4))
    out = ours.forward(x1, training=False)
    dx = ours.backward(dy)
    t_out, t_dx, t_dgamma, t_dbeta = torch_pass(theirs, x1, dy)
    assert out.shape == (1, 4)
    assert_close(out, t_out, "eval forward, batch 1")
    assert_close(dx, t_dx, "eval dx, batch 1")
    assert_close(ours.grads["gamma"], t_dgamma, "eval dgamma, batch 1")
    assert_close(ours.grads["beta"], t_dbeta, "eval dbeta, batch 1")


def _train_both(ours: BatchNorm, theirs, rng: np.random.Generator, steps: int = 8,
                n: int = 10, d: int = 3) -> list[np.ndarray]:
    batches = []
    theirs.train()
    for _ in range(steps):
        x = 2.0 + 3.0 * rng.standard_normal((n, d))
        batches.append(x)
        ours.forward(x, training=True)
        theirs(torch.from_numpy(x))
    return batches


def test_keras_momentum_099_is_torch_momentum_001() -> None:
    rng = np.random.default_rng(3)
    ours = BatchNorm(3, eps=0.01, momentum=0.99, momentum_style="keras")
    theirs = torch.nn.BatchNorm1d(3, eps=0.01, momentum=0.01).double()
    assert ours.new_weight == pytest.approx(0.01, rel=1e-15)
    _train_both(ours, theirs, rng)
    assert_close(ours.running_mean, theirs.running_mean.numpy(), "keras running_mean")
    assert_close(ours.running_var, theirs.running_var.numpy(), "keras running_var")
    theirs.eval()
    x = rng.standard_normal((5, 3))
    assert_close(ours.forward(x, training=False), theirs(torch.from_numpy(x)).detach().numpy(),
                 "keras eval forward")


def test_biased_running_var_stores_the_biased_variance() -> None:
    rng = np.random.default_rng(4)
    ours = BatchNorm(3, momentum=0.2, unbiased_running_var=False)
    unbiased = BatchNorm(3, momentum=0.2)
    theirs = torch.nn.BatchNorm1d(3, momentum=0.2).double()
    batches = _train_both(ours, theirs, rng)
    for x in batches:
        unbiased.forward(x, training=True)
    mean, var = np.zeros(3), np.ones(3)
    for x in batches:  # the same average, of the biased (ddof=0) batch variance
        mean = 0.8 * mean + 0.2 * x.mean(axis=0)
        var = 0.8 * var + 0.2 * x.var(axis=0, ddof=0)
    assert_close(ours.running_mean, mean, "biased running_mean")
    assert_close(ours.running_var, var, "biased running_var", rtol=1e-12)
    # the running mean does not depend on the variance convention; the default is torch's
    assert_close(ours.running_mean, theirs.running_mean.numpy(), "running_mean vs torch")
    assert_close(unbiased.running_var, theirs.running_var.numpy(), "unbiased running_var")
    assert np.all(ours.running_var < unbiased.running_var)


def test_seed_003_conventions_first_batch_init() -> None:
    """Keras momentum 0.99, biased variance, running stats started from the first batch."""
    rng = np.random.default_rng(5)
    bn = BatchNorm(3, eps=0.01, momentum=0.99, momentum_style="keras",
                   unbiased_running_var=False, running_init="first_batch")
    batches = [rng.standard_normal((12, 3)) * 2 + 1 for _ in range(5)]
    mean, var = batches[0].mean(axis=0), batches[0].var(axis=0)
    for x in batches[1:]:
        mean = 0.99 * mean + 0.01 * x.mean(axis=0)
        var = 0.99 * var + 0.01 * x.var(axis=0)
    for x in batches:
        bn.forward(x, training=True)
    assert_close(bn.running_mean, mean, "first-batch running_mean", rtol=1e-12)
    assert_close(bn.running_var, var, "first-batch running_var", rtol=1e-12)


def test_seed_000_running_std() -> None:
    """Seed 000: a 0.7/0.3 running average of std (not var), used as-is in eval mode."""
    rng = np.random.default_rng(6)
    eps = 1e-8
    bn = BatchNorm(2, eps=eps, momentum=0.3, running_stat="std")
    mean, std = np.zeros(2), np.ones(2)
    for _ in range(5):
        x = rng.standard_normal((16, 2)) * 3 - 1
        bn.forward(x, training=True)
        mean = 0.7 * mean + 0.3 * x.mean(axis=0)
        std = 0.7 * std + 0.3 * np.sqrt(x.var(axis=0) + eps)
    assert_close(bn.running_mean, mean, "running_mean", rtol=1e-12)
    assert_close(bn.running_std, std, "running_std", rtol=1e-12)
    x = rng.standard_normal((4, 2))
    assert_close(bn.forward(x, training=False), (x - mean) / std, "eval with running std",
                 rtol=1e-12)
