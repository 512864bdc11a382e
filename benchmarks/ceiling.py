"""How fast could a NumPy training step on seed-digits be?  `python benchmarks/ceiling.py`

The issue asks for the engine at 1.5× PyTorch's steps/s.  This measures what plain NumPy
can reach on this machine, beside the engine and PyTorch, in one run (interleaved bursts,
medians of the per-round ratios).  Two hand-fused steps of the seed-digits network
(64 → 32 BN sigmoid → 16 BN relu → 10 BN softmax, full batch), written for this network
alone — no caches for the stepper, no per-block bookkeeping, buffers reused in place:

  * row-major: tensors (N, D), as the engine stores them;
  * feature-major: tensors (D, N), so every per-feature broadcast and every sum over the
    batch runs along contiguous rows (NumPy's ufuncs are much faster on them when D is
    10 or 16, and the per-feature dot products are np.vecdot's).

Both fill the network's own flat gradient buffer and step it with the engine's Adam, and
their losses are checked against the engine's before anything is timed (to 1e-12), so the
comparison is between the same arithmetic.  What is left when the bookkeeping is gone:
the float64 exp (NumPy's is not vectorised on AVX2: about 5 ns an element, against about
1 ns in PyTorch's SLEEF) and the cost of each NumPy call on small tensors.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

import bntui  # noqa: F401  (one BLAS thread, freed memory kept: as the engine runs)
from bntui.bench import torch_twin
from bntui.engine import Session, preset
from bntui.engine.kernels import coldot, ones, rowdot


def fused_step(session: Session, feature_major: bool) -> Callable[[], float]:
    """One training step of `session`'s network, hand-fused; returns the loss."""
    net, opt = session.network, session.optimizer
    flat = net.flat
    assert flat is not None and [b.act.name for b in net.blocks[:2]] == ["sigmoid", "relu"]
    dense = [b.dense for b in net.blocks]
    bns = [b.bn for b in net.blocks]
    X, y = session.X_train, session.y_train
    m = X.shape[0]
    one, rows, C = ones(m, X.dtype), np.arange(m), net.n_classes
    onesC = ones(C, X.dtype)
    XT = np.ascontiguousarray(X.T)
    eps = bns[0].eps  # type: ignore[union-attr]

    def col(v: np.ndarray) -> np.ndarray:  # a per-feature vector against the layout
        return v[:, None] if feature_major else v

    def step() -> float:
        A, saved = (XT if feature_major else X), []
        for i in range(3):
            W, b = dense[i].params["W"], dense[i].params["b"]
            gamma, beta = bns[i].params["gamma"], bns[i].params["beta"]  # type: ignore
            Z = W.T @ A if feature_major else A @ W
            Z += col(b)
            mu = (Z @ one if feature_major else one @ Z) * (1.0 / m)
            Z0 = Z - col(mu)
            var = (rowdot(Z0, Z0) if feature_major else coldot(Z0, Z0)) / m
            std = np.sqrt(var + eps)
            Znorm = Z0
            Znorm *= col(1.0 / std)
            Zbn = Znorm * col(gamma)
            Zbn += col(beta)
            if i == 0:
                An = np.negative(Zbn)
                np.exp(An, out=An)
                An += 1.0
                np.reciprocal(An, out=An)
            elif i == 1:
                An = np.maximum(Zbn, 0.0)
            else:
                An = Zbn
            saved.append((A, Znorm, std, Zbn, An))
            A = An
        if feature_major:
            top = A.argmax(axis=0)
            shifted = A - A[top, rows]
            e = np.exp(shifted)
            e[top, rows] = 0.0
            rest = onesC @ e
            e[top, rows] = 1.0
            e /= 1.0 + rest
            loss = -float((shifted[y, rows] - np.log1p(rest)).mean())
            d = e
            d[y, rows] -= 1.0
        else:
            top = A.argmax(axis=1)
            shifted = A - A[rows, top][:, None]
            e = np.exp(shifted)
            e[rows, top] = 0.0
            rest = e @ onesC
            e[rows, top] = 1.0
            e /= (1.0 + rest)[:, None]
            loss = -float((shifted[rows, y] - np.log1p(rest)).mean())
            d = e
            d[rows, y] -= 1.0
        d /= m
        for i in (2, 1, 0):
            Ain, Znorm, std, Zbn, An = saved[i]
            if i == 0:
                d = d * An
                d *= 1.0 - An
            elif i == 1:
                d = d * (Zbn > 0)
            g, bg = dense[i].grads, bns[i].grads  # type: ignore[union-attr]
            scale = bns[i].params["gamma"] / std  # type: ignore[union-attr]
            if feature_major:
                np.matmul(d, one, out=bg["beta"])
                bg["gamma"][...] = rowdot(d, Znorm)
            else:
                np.matmul(one, d, out=bg["beta"])
                coldot(d, Znorm, out=bg["gamma"])
            dZ = Znorm * col(-scale * bg["gamma"] / m)
            dZ += d * col(scale)
            dZ -= col(scale * bg["beta"] / m)
            if feature_major:
                np.matmul(Ain, dZ.T, out=g["W"])
                np.matmul(dZ, one, out=g["b"])
                if i > 0:
                    d = dense[i].params["W"] @ dZ
            else:
                np.matmul(Ain.T, dZ, out=g["W"])
                np.matmul(one, dZ, out=g["b"])
                if i > 0:
                    d = dZ @ dense[i].params["W"].T
        opt.step_flat(flat)
        return loss

    return step


def check(dtype: str, steps: int = 5) -> None:
    """The fused steps' losses equal the engine's, step by step (same start)."""
    cfg = preset("seed-digits").with_overrides(dtype=dtype)
    engine = Session(cfg)
    engine.train(steps=steps, eval_every=10**9)
    tol = 1e-12 if dtype == "float64" else 1e-5
    for fm in (False, True):
        step = fused_step(Session(cfg), fm)
        got = [step() for _ in range(steps)]
        np.testing.assert_allclose(got, engine.history.loss, rtol=tol,
                                   err_msg=f"fused step, feature_major={fm}")


def measure(dtype: str, rounds: int = 15, burst: int = 20) -> dict[str, float]:
    """PyTorch's seconds per step over each contender's, medians of the rounds' ratios."""
    cfg = preset("seed-digits").with_overrides(dtype=dtype)
    engine = Session(cfg)
    row, feat = fused_step(Session(cfg), False), fused_step(Session(cfg), True)
    twin = torch_twin(Session(cfg))
    if twin is None:
        raise SystemExit("benchmarks/ceiling.py compares against PyTorch: install torch")

    def timed(fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        for _ in range(burst):
            fn()
        return (time.perf_counter() - t0) / burst

    contenders: dict[str, Callable[[], float]] = {
        "engine": lambda: engine.train(steps=burst, eval_every=10**9).seconds / burst,
        "fused, row-major": lambda: timed(row),
        "fused, feature-major": lambda: timed(feat),
    }
    for fn in contenders.values():
        fn()
    ratios: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        theirs = timed(twin)
        for name, fn in contenders.items():
            ratios[name].append(theirs / fn())
    return {k: statistics.median(v) for k, v in ratios.items()}


def main() -> None:
    quick = "--quick" in sys.argv
    print("| seed-digits, full batch | " + " | ".join(
        ["engine / PyTorch", "fused row-major / PyTorch", "fused feature-major / PyTorch"])
        + " |")
    print("|---|---|---|---|")
    for dtype in ("float64", "float32"):
        check(dtype)
        r = measure(dtype, rounds=5 if quick else 15)
        print(f"| {dtype} | " + " | ".join(f"{v:.2f}×" for v in r.values()) + " |")


if __name__ == "__main__":
    main()
