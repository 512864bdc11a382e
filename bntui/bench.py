"""Benchmarks, side by side in one run: `python -m bntui.bench [--quick] [--app]`.

Prints Markdown tables (medians of repeated runs; engine and PyTorch run in alternating
bursts and the ratio is the median of the rounds' ratios, since these machines are noisy):
  1. training throughput on seed-digits (1,500 × 64, full batch, the seed's network and
     optimizer): steps/s of the engine against the same network in PyTorch, float64 and
     float32;
  2. BatchNorm at (N, D) = (1500, 32), (4096, 256), (65536, 512): forward + backward with
     the compact backward against `torch.nn.BatchNorm1d` with autograd, the compact and the
     staged backward alone, and the bytes moved per second against a NumPy copy;
  3. the numerical gradient check of the seed-digits network: a naive loop (one entry, two
     full forward passes at a time) against the engine's, on one thread and on every core;
  4. with --app, the app's responsiveness (benchmarks/app_timing.py's measures).
torch is optional: its columns say "—" without it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

import bntui
from bntui.engine import BatchNorm, Session, preset
from bntui.engine.activations import Activation
from bntui.engine.gradcheck import numeric_gradients

IDENTITY = Activation()  # an output block's: A = Zbn


def _median_time(fn: Callable[[], object], repeats: int, number: int = 1) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


# 1. training throughput ------------------------------------------------------------
def torch_twin(session: Session):
    """The session's network as torch modules with the same weights, and an Adam."""
    torch = _torch()
    if torch is None:
        return None
    from bntui.engine.export import to_torch

    model = to_torch(session.network).train()
    cfg = session.config
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr or 1e-3)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    X = torch.tensor(session.X_train, dtype=dtype)
    y = torch.tensor(session.y_train, dtype=torch.long)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()

    return step


def _bursts(fn: Callable[[], object], seconds: float = 0.02) -> Callable[[], float]:
    """`fn` repeated enough times for a burst of about `seconds`; returns seconds per call
    (one call of a small kernel is too short to time on a busy machine)."""
    t0 = time.perf_counter()
    fn()
    n = max(1, int(seconds / max(time.perf_counter() - t0, 1e-7)))

    def burst() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n

    return burst


def _interleaved(ours: Callable[[], object], theirs: Callable[[], object] | None,
                 rounds: int) -> tuple[float, float | None, float | None]:
    """Median seconds of `ours` and `theirs`, run in alternating bursts, and the median of
    the per-round ratios theirs / ours (a noisy machine slows both sides of a round).
    `ours` may return the seconds of its own that count (a float); else it is timed whole."""
    ours()
    if theirs is not None:
        theirs()
    a, b, r = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        own = ours()
        a.append(own if isinstance(own, float) else time.perf_counter() - t0)
        if theirs is not None:
            t0 = time.perf_counter()
            own = theirs()
            b.append(own if isinstance(own, float) else time.perf_counter() - t0)
            r.append(b[-1] / a[-1])
    if theirs is None:
        return statistics.median(a), None, None
    return statistics.median(a), statistics.median(b), statistics.median(r)


def bench_training(repeats: int, steps: int) -> list[str]:
    rows = ["| seed-digits, full batch | engine steps/s | PyTorch steps/s | engine / PyTorch |",
            "|---|---|---|---|"]
    for dtype in ("float64", "float32"):
        cfg = preset("seed-digits").with_overrides(dtype=dtype)
        session = Session(cfg)
        twin = torch_twin(Session(cfg))
        ours, theirs, ratio = _interleaved(  # the steps' seconds, without the final
            lambda s=session: s.train(steps=steps, eval_every=10**9).seconds,  # evaluation
            (lambda t=twin: [t() for _ in range(steps)]) if twin else None, 4 * repeats)
        rows.append(f"| {dtype} | {steps / ours:,.0f} | "
                    f"{'—' if theirs is None else f'{steps / theirs:,.0f}'} | "
                    f"{'—' if ratio is None else f'{ratio:.2f}×'} |")
    return rows


# 2. BatchNorm forward + backward ---------------------------------------------------
def bench_batchnorm(repeats: int, shapes: list[tuple[int, int]]) -> list[str]:
    """Forward + backward as training runs them (the layer's fused methods) against
    torch.nn.BatchNorm1d, and the two backward paths alone (the same staged forward pass
    feeds both)."""
    torch = _torch()
    rows = ["| (N, D) | fwd + bwd, compact | fwd + bwd, PyTorch | compact / PyTorch "
            "| backward, compact | backward, staged | staged / compact | compact GB/s "
            "| NumPy copy GB/s |", "|---|---|---|---|---|---|---|---|---|"]
    rng = np.random.default_rng(0)
    for n, d in shapes:
        # the layout the engine's Dense layers hand to BatchNorm: feature-major
        x = np.asfortranarray(rng.normal(size=(n, d)))
        dy = np.asfortranarray(rng.normal(size=(n, d)))
        bn = BatchNorm(d)

        def both(bn: BatchNorm = bn, x: np.ndarray = x, dy: np.ndarray = dy) -> None:
            # what training runs: the fused forward, Zbn = γ·Znorm + β, the compact backward
            IDENTITY.affine_forward(bn.train_forward(x), bn.gamma, bn.beta)
            bn.train_backward(dy)

        theirs = None
        if torch is not None:
            tbn = torch.nn.BatchNorm1d(d).double()
            tx = torch.tensor(np.ascontiguousarray(x), requires_grad=True)  # its own layout
            tdy = torch.tensor(np.ascontiguousarray(dy))

            def torch_pass(tbn=tbn, tx=tx, tdy=tdy) -> None:
                tx.grad = None
                tbn.zero_grad(set_to_none=True)
                tbn(tx).backward(tdy)

            theirs = torch_pass
        fwd_bwd, torch_time, vs_torch = _interleaved(
            _bursts(both), _bursts(theirs) if theirs else None, 3 * repeats)
        bn.forward(x, training=True)
        compact, staged, staged_ratio = _interleaved(
            _bursts(lambda bn=bn, dy=dy: bn.backward(dy, staged=False)),
            _bursts(lambda bn=bn, dy=dy: bn.backward(dy, staged=True)), 3 * repeats)
        copy_burst = _bursts(lambda x=x: x.copy(order="K"))
        copy = statistics.median(copy_burst() for _ in range(repeats))
        # bytes a pass must at least touch: read x, dy; write y, dx (8 bytes each)
        moved = 4 * x.nbytes
        rows.append(
            f"| ({n:,}, {d}) | {fwd_bwd * 1e3:.2f} ms | "
            f"{'—' if torch_time is None else f'{torch_time * 1e3:.2f} ms'} | "
            f"{'—' if vs_torch is None else f'{1 / vs_torch:.2f}×'} | "
            f"{compact * 1e3:.2f} ms | {staged * 1e3:.2f} ms | {staged_ratio:.2f}× | "
            f"{moved / fwd_bwd / 1e9:.1f} | {2 * x.nbytes / copy / 1e9:.1f} |"
        )
    return rows


# 3. numerical gradient check -------------------------------------------------------
def naive_numeric(session: Session, h: float = 1e-5) -> None:
    """Every parameter entry, two full forward passes each: the textbook loop."""
    net = session.network
    X, y = session.inspection_batch()
    for _, p in net.named_params():
        flat = p.reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + h
            lp = net.loss(X, y, update_running=False)
            flat[j] = old - h
            lm = net.loss(X, y, update_running=False)
            flat[j] = old
            _ = (lp - lm) / (2 * h)


def bench_gradcheck(repeats: int) -> list[str]:
    session = Session(preset("seed-digits"))
    X, y = session.inspection_batch()
    n = session.network.n_params()
    cores = os.cpu_count() or 1
    naive = _median_time(lambda: naive_numeric(session), 1)
    one = _median_time(lambda: numeric_gradients(session.network, X, y, threads=1), repeats)
    every = _median_time(lambda: numeric_gradients(session.network, X, y, threads=cores),
                         repeats)
    covers = f"{n:,} parameters and 16 entries of every intermediate"
    return ["| numerical check of seed-digits | seconds | what it covers |", "|---|---|---|",
            f"| naive loop | {naive:.2f} | {n:,} parameters |",
            f"| engine, 1 thread | {one:.2f} | {covers} |",
            f"| engine, {cores} threads (`bntui gradcheck`) | {every:.2f} | {covers} |",
            f"| naive / engine | {naive / every:.1f}× | |"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bntui.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller shapes")
    parser.add_argument("--app", action="store_true", help="also time the app")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    shapes = [(1500, 32), (4096, 256)] + ([] if args.quick else [(65536, 512)])
    print(f"bntui {bntui.__version__}, numpy {np.__version__}"
          + (f", torch {t.__version__}" if (t := _torch()) else ", no torch")
          + ", one BLAS thread, medians")
    for block in (bench_training(repeats, 20 if args.quick else 50),
                  bench_batchnorm(repeats, shapes), bench_gradcheck(1 if args.quick else 3)):
        print()
        print("\n".join(block))
    if args.app:
        import importlib.util
        from pathlib import Path

        path = Path(__file__).resolve().parent.parent / "benchmarks" / "app_timing.py"
        spec = importlib.util.spec_from_file_location("app_timing", path)
        if spec and spec.loader:
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            print()
            mod.main()


if __name__ == "__main__":
    main()
