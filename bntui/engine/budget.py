"""What a configuration will cost before anything is allocated: memory and time.

A network is a few matrices, but a width of 100,000 makes one of them 80 GB, and three
widths of 10,000 make a step take minutes.  Before a `Session` builds its network,
`estimate` reckons the memory training needs (parameters, gradients, the optimizer's
state, the copy kept to undo a diverging step, and the tensors of one batch);
`Estimate.refusal` is the one line that refuses what cannot fit in the memory this
machine has available, and `Estimate.warning` the one line (for the command line to
print, the app to ask about) when a step or the numerical gradient check will be very
slow.

The memory model (bytes, `s` = the dtype's size, `P` parameters, `k` the optimizer's
slots, `m` the batch rows, `W` the sum of the layers' widths)::

    resident  = s · P · (3 + 2k)          params, grads, slots; the undo copy of both
    batch     = s · m · (n_features + t W)  the tensors of one batch: t = 6 to train,
                                           16 for a trace (walk, gradcheck) that keeps
                                           every staged tensor
    transient = 8 · max(fan_in · width)   one layer's float64 initial draw

Time: a training step is about 6 · m · P floating-point operations (the forward's
matrix products once, the backward's twice) at the machine's matrix-product speed, plus
the passes over memory that are not matrix products: (18 + 14 k) ns per parameter (the
optimizer's update, the gradients) and 35 ns per entry of a batch's tensors (m · W:
BatchNorm, the activations) — fitted on this project's machine to steps from 50 ms to
2.3 s (two widths of 300 to 6,000, 160 to 1,438 rows; `python benchmarks/budget.py`
sets the estimates beside real steps and real peaks).  The numerical gradient check runs two
forward passes (2 · m · P each) per parameter and per sampled entry of an
intermediate.  The machine's speed is measured once, on a small matrix product, and only
when a configuration is big enough for it to matter: a small network costs nothing here.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass

import numpy as np

from bntui.engine.arch import ArchSpec, parse_arch

VERY_SLOW_STEP = 10.0  # seconds: a training step slower than this is worth a warning
VERY_SLOW_CHECK = 60.0  # seconds: the same for the numerical gradient check
SMALL_FLOPS = 2e8  # below this a step takes milliseconds: no measurement, no warning
HEADROOM = 0.9  # the share of the available memory a run may plan to use


@dataclass(frozen=True)
class Estimate:
    """What a configuration needs, before it is built."""

    params: int
    bytes: int
    step_seconds: float | None  # None: too small to measure
    check_seconds: float | None  # the numerical gradient check of every parameter
    available: int | None  # bytes this machine has available (None: unknown)
    describe: str  # "2 → 10000 → 10000 → 2"

    @property
    def fits(self) -> bool:
        return self.available is None or self.bytes <= HEADROOM * self.available

    def refusal(self) -> str:
        """One line: why this cannot run here."""
        return (f"the network {self.describe} has {count(self.params)} parameters and needs "
                f"about {size(self.bytes)} of memory to train; this machine has "
                f"{size(self.available or 0)} available (choose smaller widths)")

    def warning(self, *, check: bool = False) -> str | None:
        """One line when a step (or, with `check`, the numerical gradient check) will be
        very slow; None when it will not."""
        slow: list[str] = []
        if self.step_seconds is not None and self.step_seconds > VERY_SLOW_STEP:
            slow.append(f"one training step takes about {duration(self.step_seconds)}")
        if check and self.check_seconds is not None and self.check_seconds > VERY_SLOW_CHECK:
            slow.append(f"the numerical check of every parameter about "
                        f"{duration(self.check_seconds)} (--no-numeric skips it)")
        if not slow:
            return None
        return (f"the network {self.describe} has {count(self.params)} parameters and needs "
                f"about {size(self.bytes)}; on this machine " + " and ".join(slow))


NODES_PER_BLOCK = 20  # the intermediate tensors a gradient check samples, per block
TRAIN_TENSORS = 6  # (m × width) tensors per layer a training step holds at once
TRACE_TENSORS = 16  # the same for a recorded trace (measured: about 4 and 14)


def estimate(arch: str | ArchSpec, n_features: int, n_classes: int, batch_rows: int, *,
             dtype: str = "float64", optimizer_slots: int = 2, entries: int = 16,
             tensors: int = TRAIN_TENSORS, gradients: str = "analytic") -> Estimate:
    """The memory and time a network of `arch` needs to train on batches of `batch_rows`
    (and to check numerically with `entries` sampled entries per intermediate tensor;
    `tensors`: of one batch, held per layer — `TRACE_TENSORS` for a trace).  Training on
    numerical gradients (`gradients`) costs two forward passes per parameter a step."""
    spec = parse_arch(arch) if isinstance(arch, str) else arch
    widths = spec.widths(n_classes)
    fan_ins = [n_features, *widths[:-1]]
    params = 0
    for block, fan_in, width in zip(spec.blocks, fan_ins, widths, strict=True):
        norm_params = {None: 0, "rms": 1}.get(block.norm, 2)  # γ (and β) per feature
        params += fan_in * width + width * (int(block.bias) + norm_params)
    itemsize = np.dtype(dtype).itemsize
    m = max(int(batch_rows), 1)
    resident = itemsize * params * (3 + 2 * optimizer_slots)
    batch = itemsize * m * (n_features + tensors * sum(widths))
    transient = 8 * max(f * w for f, w in zip(fan_ins, widths, strict=True))
    step_flops = 6.0 * m * params
    if gradients == "numerical":
        step_flops = 2.0 * params * (2.0 * m * params)
    memory_seconds = (params * (18 + 14 * optimizer_slots) + 35 * m * sum(widths)) * 1e-9
    sampled = sum(NODES_PER_BLOCK * min(entries, m * w) for w in widths)
    check_flops = 2.0 * (params + sampled) * (2.0 * m * params)
    step = check = None
    if max(check_flops, step_flops) > SMALL_FLOPS:
        rate = flops_per_second(dtype)
        step, check = step_flops / rate + memory_seconds, check_flops / rate
    names = " → ".join(str(w) for w in [n_features, *widths])
    return Estimate(params, resident + batch + transient, step, check, available_memory(),
                    names)


def available_memory() -> int | None:
    """Bytes this machine can give a new allocation (MemAvailable, else free pages)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


@functools.cache
def flops_per_second(dtype: str = "float64") -> float:
    """This machine's matrix-product speed on one thread (measured once, ~5 ms)."""
    from bntui.engine.threads import engine_threads

    n = 192
    a = np.random.default_rng(0).random((n, n)).astype(dtype)
    with engine_threads():
        a @ a  # warm up
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / max(best, 1e-9)


def count(n: int) -> str:
    """12 → "12"; 1_234_567 → "1.2 M"; 10**10 → "10.0 G"."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return str(n)


def size(n: float) -> str:
    """Bytes in binary units: 1536 → "1.5 KiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def duration(seconds: float) -> str:
    """12 → "12 s"; 150 → "2.5 min"; 7200 → "2.0 h"; 2e6 → "23 days"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"
