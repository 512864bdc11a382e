"""The engine's BLAS threads: one for its own heavy calls, unless the user chose a number.

The engine's matrices are small enough that a multi-threaded BLAS spends more time waking
its threads than multiplying (on 2 cores, one run took 56 s with every core against 7 s
with one).  `bntui/__init__.py` sets ``OPENBLAS_NUM_THREADS=1`` (and the OpenMP and MKL
variables), which only works if numpy is not imported yet; a notebook that imported numpy
first gets every core.  So training and evaluation run inside :func:`engine_threads`,
which limits the BLAS libraries to one thread (threadpoolctl) and puts the old number
back when the outermost call returns: the notebook's own NumPy work keeps its threads.

An explicit setting wins: if the user set one of those variables (before or after
importing bntui, to anything but the "1" bntui put there), nothing is limited.  Setting
and lifting the limit costs 10–30 µs (measured on 2 cores), once per call to `train` or
`evaluate`, against about a millisecond per training step.  Without threadpoolctl it is a
no-op.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType
from typing import Any

import bntui

__all__ = ["engine_threads", "user_chose_threads"]


def user_chose_threads() -> bool:
    """Whether the environment names a thread count that bntui did not put there."""
    for var in bntui.THREAD_VARIABLES:
        value = os.environ.get(var)
        if value is not None and not (var in bntui.THREAD_DEFAULTS and value == "1"):
            return True
    return False


class _EngineThreads:
    """The limit, shared: set by the first call to enter, lifted by the last to leave
    (calls nest, and the app trains in a worker thread while the main thread may
    evaluate)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._limiter: Any = None
        self._module: Any = None

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0 and not user_chose_threads():
                self._limiter = self._limit()
            self._depth += 1

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._limiter is not None:
                self._limiter.restore_original_limits()
                self._release()
                self._limiter = None

    def _threadpoolctl(self) -> Any:
        if self._module is None:
            try:
                import threadpoolctl
            except ImportError:
                self._module = False
            else:
                self._module = threadpoolctl
        return self._module

    def _limit(self) -> Any:
        """One BLAS thread; returns threadpoolctl's limiter (None without it)."""
        tpc = self._threadpoolctl()
        if not tpc:
            return None
        get = getattr(tpc, "get_cached_controller", None) or tpc.ThreadpoolController
        try:
            return get().limit(limits=1, user_api="blas")
        except Exception:  # a library threadpoolctl cannot drive: keep its threads
            return None
        finally:
            self._release()

    def _release(self) -> None:
        """Let any thread set OpenBLAS's pool next: threadpoolctl ≥ 3.8 lets only the
        thread that set it last set it again, and the app trains in worker threads."""
        openblas = getattr(self._module, "OpenBLASController", None)
        clear = getattr(openblas, "clear_controlling_thread", None)
        if clear is not None:
            clear()


_ENGINE_THREADS = _EngineThreads()


def engine_threads() -> _EngineThreads:
    """``with engine_threads():`` one BLAS thread inside, unless the user chose."""
    return _ENGINE_THREADS
