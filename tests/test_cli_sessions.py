"""`bntui train --save / --load / --export-torch` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from zip_helpers import bomb_session, npy_header

import bntui
from bntui.cli import main

ROOT = Path(bntui.__file__).resolve().parents[1]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("extra", [[], ["--batch-size", "16", "--optimizer", "momentum"]])
def test_save_then_load_equals_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       extra: list[str]) -> None:
    path = tmp_path / "run.npz"
    base = ["train", "--dataset", "moons", "--samples", "100", *extra]
    first = run_json(capsys, *base, "--steps", "12", "--save", str(path), "--history")
    assert first["saved"] == str(path) and path.exists()
    resumed = run_json(capsys, "train", "--load", str(path), "--steps", "8", "--history")
    whole = run_json(capsys, *base, "--steps", "20", "--history")
    assert resumed["steps"] == whole["steps"] == 20 and resumed["steps_this_run"] == 8
    assert resumed["final_loss"] == whole["final_loss"]
    assert resumed["history"]["loss"] == whole["history"]["loss"]


def test_load_refuses_other_flags_and_bad_files(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.npz"
    run_json(capsys, "train", "--dataset", "moons", "--steps", "3", "--save", str(path))
    assert main(["train", "--load", str(path), "--lr", "0.5"]) == 2
    assert "cannot be combined with --lr" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(path.read_bytes()[:200])
    assert main(["train", "--load", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.npz" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--load", str(tmp_path / "missing.npz")]) == 2


def test_export_torch_matches_the_engine(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    from bntui.engine import load_torch
    from bntui.engine.persist import load_session

    path, model_path = tmp_path / "run.npz", tmp_path / "model.pt"
    run_json(capsys, "train", "--dataset", "wine", "--steps", "15", "--save", str(path),
             "--export-torch", str(model_path))
    session = load_session(path)
    model = load_torch(model_path)
    X = session.X_val
    ours = session.network.forward(X, training=False, update_running=False)
    with torch.no_grad():
        theirs = model(torch.tensor(X)).numpy()
    assert np.max(np.abs(ours - theirs)) <= 1e-10 * max(1.0, np.max(np.abs(ours)))


# `bntui train --load` runs in a process of its own, whose peak memory is measured by its
# parent: the child's ru_maxrss (KiB on Linux)
MEASURED = """
import resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run([sys.executable, "-m", "bntui", "train", "--load", sys.argv[1]],
                      capture_output=True, text=True)
seconds = time.perf_counter() - start
sys.stderr.write(done.stderr)
print(done.returncode, seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _nan_gamma(good: Path, path: Path) -> Path:
    with np.load(good, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data["network/1.gamma"][3] = np.nan
    np.savez(path, **data)
    return path


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
@pytest.mark.parametrize("case", ["bomb", "nan"])
def test_hostile_session_files_get_one_line_in_small_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    """An 8 MB file whose first weight matrix inflates to 8 GB of zeros, and a file with a
    NaN weight: exit 2, one line on stderr naming the file, in the memory of an empty
    run."""
    good = tmp_path / "good.npz"
    run_json(capsys, "train", "--dataset", "moons", "--arch", "8:tanh,C", "--steps", "3",
             "--save", str(good))
    if case == "bomb":
        path = bomb_session(good, tmp_path / "bomb.npz", "network/1.W",
                            npy_header("<f8", (100_000, 10_000)), 8 * 10**9)
        expect = ("array 'network/1.W' has shape (100000, 10000), but the network rebuilt "
                  "from its configuration needs (2, 8)")
    else:
        path = _nan_gamma(good, tmp_path / "nan.npz")
        expect = "layer 1's gamma holds NaN (array 'network/1.gamma')"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", MEASURED, str(path)], capture_output=True,
                          text=True, env=env, timeout=300)
    code, seconds, peak_kib = done.stdout.split()
    lines = done.stderr.splitlines()
    assert int(code) == 2, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0] == f"bntui train: error: session file {str(path)!r}: {expect}"
    assert int(peak_kib) < 300 * 1024, peak_kib  # measured 40 MB; 1.1 GB for 1 GiB before
    assert float(seconds) < 60, seconds  # measured 1.2 s, the start of Python and numpy
