"""The engine picks its own BLAS thread count: one thread while it trains or evaluates,
even in a notebook that imported numpy before bntui; the user's explicit setting wins; the
notebook's own NumPy work keeps its threads after training."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import bntui
from bntui.engine.threads import engine_threads, user_chose_threads

VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

NOTEBOOK = """
import json
import numpy  # first, as a notebook does: bntui's environment default comes too late
from threadpoolctl import threadpool_info

def blas():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

before = blas()
from bntui.engine import RunConfig, Session

during = []
s = Session(RunConfig(dataset="moons", samples=400, arch="16:relu,C", steps=20))
s.train(on_step=lambda _: during.append(blas()))
s.evaluate()
print(json.dumps({"before": before, "during": during, "after": blas()}))
"""


def run_notebook(**env: str) -> dict[str, list]:
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    clean["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(bntui.__file__)), clean.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-c", NOTEBOOK], env={**clean, **env},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_numpy_imported_first_still_trains_on_one_blas_thread() -> None:
    out = run_notebook()
    assert out["before"], "no BLAS library found"
    assert out["during"] and all(threads == [1] * len(out["before"])
                                 for threads in out["during"])
    assert out["after"] == out["before"]  # the notebook's own work keeps its threads


def test_an_explicit_setting_wins() -> None:
    out = run_notebook(OPENBLAS_NUM_THREADS="2")
    asked = out["before"]  # what OpenBLAS made of "2" (at most the cores it sees)
    if (os.cpu_count() or 1) >= 2:
        assert asked == [2] * len(asked)
    assert all(threads == asked for threads in out["during"])
    assert out["after"] == asked


def test_who_chose_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in VARIABLES:
        monkeypatch.delenv(var, raising=False)
    assert not user_chose_threads()
    monkeypatch.setattr(bntui, "THREAD_DEFAULTS", VARIABLES)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the value bntui itself put there
    assert not user_chose_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # changed by the user afterwards
    assert user_chose_threads()
    monkeypatch.setattr(bntui, "THREAD_DEFAULTS", ())
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # set by the user before bntui
    assert user_chose_threads()


def test_the_limit_nests() -> None:
    with engine_threads(), engine_threads():
        pass
    with engine_threads():
        pass
