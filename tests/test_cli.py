"""The `bntui` command line: JSON contracts, text output, and one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bntui.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_json_has_the_contract_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "train", "--dataset", "moons", "--steps", "50", "--json")
    assert code == 0, err
    data = json.loads(out)
    for key in ("dataset", "arch", "optimizer", "steps", "final_loss", "train_accuracy",
                "val_accuracy", "seconds"):
        assert key in data
    assert data["dataset"] == "moons" and data["steps"] == 50
    assert 0.0 <= data["train_accuracy"] <= 1.0 and 0.0 <= data["val_accuracy"] <= 1.0
    assert data["seconds"] > 0 and data["final_loss"] > 0
    assert err == ""  # no progress bar with --json (and not at a terminal)


def test_flags_override_the_preset(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "train", "--preset", "seed-softmax", "--steps", "10",
                       "--lr", "0.5", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["steps"] == 10 and data["hyperparameters"]["lr"] == 0.5
    assert data["optimizer"] == "sgd" and data["arch"] == "4:nobias"
    assert data["dataset"] == "seed-toy"


def test_new_dataset_on_a_preset_follows_its_classes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "train", "--preset", "seed-digits", "--dataset", "iris",
                         "--steps", "5", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["network"].startswith("4 → 32 BN sigmoid → 16 BN relu → 3 BN softmax")


def test_training_is_deterministic_for_a_seed(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("train", "--dataset", "spiral", "--batch-size", "32", "--steps", "40", "--json")
    a = json.loads(run(capsys, *args, "--seed", "3")[1])
    b = json.loads(run(capsys, *args, "--seed", "3")[1])
    c = json.loads(run(capsys, *args, "--seed", "4")[1])
    assert a["final_loss"] == b["final_loss"] and a["val_accuracy"] == b["val_accuracy"]
    assert a["final_loss"] != c["final_loss"]


def test_gradcheck_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "gradcheck", "--preset", "seed-softmax", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data["max_rel_error"]) == {"analytic_vs_numeric", "analytic_vs_autograd"}
    names = {c["tensor"] for c in data["checks"]}
    assert {"dZbn", "dgamma", "dbeta", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ", "dW",
            "dX"} <= names
    for c in data["checks"]:
        assert c["pair"] in ("analytic_vs_numeric", "analytic_vs_autograd")
        assert isinstance(c["layer"], int)
    assert data["max_rel_error"]["analytic_vs_numeric"] < 1e-6
    auto = data["max_rel_error"]["analytic_vs_autograd"]
    try:
        import torch  # noqa: F401
    except ImportError:
        assert auto is None
        assert any("PyTorch is not installed" in n for n in data["notes"])
    else:
        assert auto < 1e-9


def test_gradcheck_text_and_tol(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "gradcheck", "--dataset", "moons", "--arch", "4:relu,C",
                       "--no-autograd")
    assert code == 0
    assert "zero by construction" in out  # the bias before BatchNorm
    assert "dvar" in out and "vs numerical" in out
    code, _, err = run(capsys, "gradcheck", "--dataset", "moons", "--arch", "4:tanh,C",
                       "--no-autograd", "--tol", "1e-30")
    assert code == 1 and "--tol" in err


def test_walk_prints_formulas_and_tensors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "walk", "--preset", "seed-softmax")
    assert code == 0
    for text in ("Znorm = Z0 / std", "std = √(var + ε)", "dlogits = (P − Y) / m", "dZ0 ="):
        assert text in out
    assert "(16×4)" in out
    code, out, _ = run(capsys, "walk", "--preset", "seed-softmax", "--tensor", "Znorm", "--json")
    data = json.loads(out)
    assert [s["name"] for s in data["steps"]] == ["Znorm"]
    assert len(data["steps"][0]["value"]) == 16


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--dataset", "moon"], "unknown dataset 'moon'"),
        (["train", "--optimizer", "adamw"], "unknown optimizer 'adamw'"),
        (["train", "--arch", "32:sigmod,C"], "token 'sigmod'"),
        (["train", "--arch", "16:relu"], "the last block is the output"),
        (["train", "--lr", "-1"], "learning rate must be a positive finite number"),
        (["train", "--lr", "inf"], "learning rate must be a positive finite number"),
        (["train", "--lr", "x"], "learning rate must be a number"),
        (["train", "--batch-size", "1"], "expected more than 1 value per feature"),
        (["train", "--steps", "-3"], "steps must be at least 0"),
        (["train", "--dataset", "/no/such/file.csv"], "not found"),
        (["train", "--preset", "nope"], "unknown preset"),
        (["walk", "--layer", "7"], "no step matches"),
        (["serve", "--preset", "nope"], "unknown preset"),
        (["serve", "--port", "0"], "port must be at least 1"),
        (["serve", "--max-sessions", "0"], "max-sessions must be at least 1 (got 0)"),
        (["train", "--dataset", "iris", "--arch", "8,5"], "3 classes"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_bad_csv_contents(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,2,x\n3,zz,y\n")
    code, _, err = run(capsys, "train", "--dataset", str(bad))
    assert code == 2 and "row 3 column 2" in err and len(err.strip().splitlines()) == 1
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, _, err = run(capsys, "train", "--dataset", str(empty))
    assert code == 2 and "empty" in err


def test_csv_dataset_trains(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pts.csv"
    rows = ["x1,x2,label"] + [f"{i % 7},{(i * 3) % 5},{'ab'[i % 2]}" for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    code, out, err = run(capsys, "train", "--dataset", str(path), "--steps", "20", "--json")
    assert code == 0, err
    assert json.loads(out)["steps"] == 20
    assert json.loads(out)["dataset_note"] == (
        "first row read as a header (its cell 'x1' is not a number)")


def test_csv_header_decision_is_shown(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """A header of numbers ('0,1,label', as pandas writes numbered columns) is told
    from data by the label column, and the train report says what was decided."""
    path = tmp_path / "pts.csv"
    rows = ["0,1,label"] + [f"{i % 7},{(i * 3) % 5},{'ab'[i % 2]}" for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    code, out, err = run(capsys, "train", "--dataset", str(path), "--steps", "5")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("dataset    ") and "40 train" not in lines[0]
    assert "2 classes" in lines[0] and "32 train / 8 validation" in lines[0]
    assert lines[1] == ("           first row read as a header (its label 'label' would be "
                        "the only class with a single row)")
    path.write_text("\n".join(rows[1:]) + "\n")
    code, out, err = run(capsys, "train", "--dataset", str(path), "--steps", "5", "--json")
    assert code == 0, err
    assert json.loads(out)["dataset_note"].startswith("no header (")
    code, out, err = run(capsys, "train", "--dataset", "moons", "--steps", "5", "--json")
    assert code == 0 and json.loads(out)["dataset_note"] is None


def test_diverging_training_stops_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "train", "--dataset", "moons", "--arch", "16:relu:nobn,C:nobn",
                         "--optimizer", "sgd", "--lr", "1e6", "--steps", "200", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["stopped"] and "the loss became" in data["stopped"]
    assert data["steps"] < 200
    assert "Traceback" not in err and "the loss became" in err


def test_console_script_and_module_entry_points() -> None:
    for cmd in (["bntui", "--version"], [sys.executable, "-m", "bntui", "--version"]):
        exe = cmd if cmd[0] != "bntui" else [sys.executable, "-c",
                                              "from bntui.cli import main; main(['--version'])"]
        res = subprocess.run(exe, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0
        assert "bntui" in res.stdout


def test_help_of_each_command(capsys: pytest.CaptureFixture[str]) -> None:
    for sub in ("train", "gradcheck", "walk"):
        code, out, _ = run(capsys, sub, "--help")
        assert code == 0 and "--preset" in out and "--json" in out
