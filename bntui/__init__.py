"""bntui: learn batch normalization and backpropagation by stepping through them."""

import os
import sys

# The engine's matrices are small (a few thousand rows): a multi-threaded BLAS spends more
# time waking and spinning its threads than multiplying, and its spinning threads starve
# the app's training worker (measured: 18 vs 728 steps in 3 s of play on seed-digits).
# One thread unless the user asked otherwise; this only works before numpy is imported
# (after, bntui/engine/threads.py limits the engine's own heavy calls).  THREAD_DEFAULTS
# names the variables set here, so the engine can tell them from the user's.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
THREAD_DEFAULTS = tuple(var for var in THREAD_VARIABLES if var not in os.environ)
for _var in THREAD_DEFAULTS:
    os.environ[_var] = "1"


def _keep_freed_memory() -> None:
    """Ask glibc to reuse freed memory for large arrays instead of handing it back.

    Every pass makes new (N, D) arrays and drops the last pass's; by default glibc maps
    arrays above 128 KiB to fresh pages and unmaps them when freed, so each pass pays a
    page fault per 4 KiB (measured: a BatchNorm forward at 4096 × 256 takes 8–9 ms that way
    and 5–5.7 ms with freed memory kept; PyTorch keeps a cache of its own for the same
    reason).  Up to 1 GiB of freed memory stays with the process.  glibc only; a no-op
    elsewhere or when BNTUI_MALLOC=default.
    """
    if not sys.platform.startswith("linux") or os.environ.get("BNTUI_MALLOC") == "default":
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):  # not glibc
        pass


_keep_freed_memory()

__version__ = "0.1.0"
