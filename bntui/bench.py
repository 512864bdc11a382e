"""Benchmarks, side by side in one run: `python -m bntui.bench [--quick] [--app] [--scale-only]`.

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
  4. scale: generated CSVs of 10³ … 10⁶ rows (10 features, 4 classes), 64:relu,64:relu,C,
     batch 256: CSV load seconds, headless steps/s (training only), 300 steps end to end
     (`bntui train` as a subprocess, with its final evaluation) and its peak memory, and
     the app as a learner runs it (`bntui.bench_app`: its command in tmux; the first
     screen, the data loaded, steps/s while playing on the training tab, against the
     headless rate of the same round, and its peak memory);
     `--scale-only` runs this table alone, `--scale-rows 1000,100000` picks the sizes;
  5. with --app, the app's responsiveness (benchmarks/app_timing.py's measures).
torch is optional: its columns say "—" without it.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import bntui
from bntui.bench_app import AppRun, app_in_terminal, has_tmux
from bntui.engine import BatchNorm, RunConfig, Session, load_dataset, preset
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


# 4. scale -----------------------------------------------------------------------------
SCALE_ROWS = (1_000, 10_000, 100_000, 1_000_000)
SCALE_ARCH = "64:relu,64:relu,C"
SCALE_BATCH = 256
SCALE_STEPS = 300


def write_scale_csv(path: str | os.PathLike[str], rows: int, seed: int = 0) -> Path:
    """A CSV of `rows` rows: a header, 10 normal features (6 decimals) and a class label
    0–3 (the arg-max of a noisy random projection, so the classes can be learned)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(10, 4))
    target = Path(path)
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(",".join(f"x{j + 1}" for j in range(10)) + ",label\n")
        for start in range(0, rows, 100_000):  # a block at a time: bounded memory
            X = rng.normal(size=(min(100_000, rows - start), 10))
            y = np.argmax(np.tanh(X @ W) + 0.3 * rng.normal(size=(len(X), 4)), axis=1)
            np.savetxt(handle, np.column_stack([X, y]), delimiter=",",
                       fmt=["%.6f"] * 10 + ["%d"])
    return target


def _scale_config(path: Path) -> RunConfig:
    return RunConfig(dataset=str(path), arch=SCALE_ARCH, batch_size=SCALE_BATCH,
                     steps=SCALE_STEPS)


# `bntui train` in a fresh interpreter that reports its own peak memory at the end:
# VmHWM, the high-water mark of this program's pages (Linux), not ru_maxrss, which also
# counts the pages of the process it was forked from (here the benchmark, 200+ MB).
_TRAIN_AND_PEAK = """
import resource, sys
from bntui.cli import main
code = main(sys.argv[1:])
try:
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kib //= 1024 if sys.platform == "darwin" else 1
print(f"peak-kib {kib}", file=sys.stderr)
sys.exit(code)
"""


def _end_to_end(path: Path) -> tuple[float, float]:
    """Seconds and peak resident MB of `bntui train` (300 steps) in a fresh interpreter."""
    argv = [sys.executable, "-c", _TRAIN_AND_PEAK, "train", "--dataset", str(path), "--arch",
            SCALE_ARCH, "--batch-size", str(SCALE_BATCH), "--steps", str(SCALE_STEPS),
            "--json"]
    t0 = time.perf_counter()
    res = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    peak = [line for line in res.stderr.splitlines() if line.startswith("peak-kib ")]
    if res.returncode != 0 or not peak:
        raise RuntimeError(f"bntui train failed on {path}: {res.stderr}")
    return seconds, int(peak[-1].split()[1]) / 1024


async def _app_steps_per_second(path: Path, seconds: float) -> float:
    """Steps/s of the app in Textual's headless Pilot, playing on the training tab (its
    plots redrawn, nothing written to a terminal): the table's fallback without tmux."""
    from bntui.ui.app import BntuiApp

    app = BntuiApp(_scale_config(path))
    async with app.run_test(size=(120, 40)) as pilot:
        while app.session is None:
            await pilot.pause(0.05)
        await pilot.press("2")  # the training tab: loss, accuracy and regions drawn
        await pilot.pause(0.5)
        session = app.session
        start, t0 = session.step_count, time.perf_counter()
        await pilot.press("space")
        await asyncio.sleep(seconds)
        await pilot.press("space")
        rate = (session.step_count - start) / (time.perf_counter() - t0)
        await pilot.pause(0.3)
    return rate


def bench_scale(repeats: int, sizes: tuple[int, ...], app_seconds: float = 5.0) -> list[str]:
    """The scale table: every measure of every size in one round, rounds repeated
    (interleaved, so a busy spell slows every size), medians; the app against the
    headless rate of its own round."""
    folder = Path(tempfile.mkdtemp(prefix="bntui-scale-"))
    paths = {n: write_scale_csv(folder / f"rows-{n}.csv", n) for n in sizes}
    load: dict[int, list[float]] = {n: [] for n in sizes}
    rate: dict[int, list[float]] = {n: [] for n in sizes}
    e2e: dict[int, list[float]] = {n: [] for n in sizes}
    peak: dict[int, list[float]] = {n: [] for n in sizes}
    app: dict[int, list[AppRun]] = {n: [] for n in sizes}
    terminal = has_tmux()
    for _ in range(repeats):
        for n, path in paths.items():
            t0 = time.perf_counter()
            dataset = load_dataset(str(path))
            load[n].append(time.perf_counter() - t0)
            session = Session(_scale_config(path), dataset)
            rate[n].append(SCALE_STEPS / session.train(steps=SCALE_STEPS).seconds)
            del session, dataset
            seconds, mb = _end_to_end(path)
            e2e[n].append(seconds)
            peak[n].append(mb)
            if terminal:
                app[n].append(app_in_terminal(path, app_seconds))
            else:  # no terminal to run it in: the app in Textual's Pilot, its rate alone
                app[n].append(AppRun(math.nan, math.nan, asyncio.run(
                    _app_steps_per_second(path, app_seconds)), None))
    med = statistics.median

    def cell(values: list[float], form: str) -> str:
        values = [v for v in values if v is not None and not math.isnan(v)]
        return format(med(values), form) if values else "—"

    rows = [f"| rows | CSV MB | load s | headless steps/s | {SCALE_STEPS} steps end to end s "
            "| peak MB (end to end) | app: first screen s | app: data loaded s "
            "| app steps/s while playing | app / headless | app peak MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, path in paths.items():
        runs = app[n]
        share = [r.rate / h for r, h in zip(runs, rate[n], strict=True)]
        rows.append(
            f"| {n:,} | {path.stat().st_size / 1e6:.1f} | {med(load[n]):.3f} | "
            f"{med(rate[n]):,.0f} | {med(e2e[n]):.2f} | {med(peak[n]):.0f} | "
            f"{cell([r.first for r in runs], '.2f')} | {cell([r.ready for r in runs], '.2f')} | "
            f"{cell([r.rate for r in runs], ',.0f')} | {100 * med(share):.0f} % | "
            f"{cell([r.peak_mb for r in runs], '.0f')} |")
    for path in paths.values():
        path.unlink()
    folder.rmdir()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bntui.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller shapes")
    parser.add_argument("--app", action="store_true", help="also time the app")
    parser.add_argument("--scale-only", action="store_true",
                        help="only the scale table (rows 10³ … 10⁶)")
    parser.add_argument("--scale-rows", default=",".join(map(str, SCALE_ROWS)),
                        help="the sizes of the scale table, comma-separated")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    shapes = [(1500, 32), (4096, 256)] + ([] if args.quick else [(65536, 512)])
    sizes = tuple(int(n) for n in args.scale_rows.split(","))
    print(f"bntui {bntui.__version__}, numpy {np.__version__}"
          + (f", torch {t.__version__}" if (t := _torch()) else ", no torch")
          + ", one BLAS thread, medians")
    blocks = [] if args.scale_only else [
        bench_training(repeats, 20 if args.quick else 50), bench_batchnorm(repeats, shapes),
        bench_gradcheck(1 if args.quick else 3)]
    blocks.append(bench_scale(1 if args.quick else 3, sizes))
    for block in blocks:
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
