"""`bntui train --save / --load / --export-torch` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bntui.cli import main


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
