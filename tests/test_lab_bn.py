"""Lab "With vs without BatchNorm": the two networks share their start and their data, the
BN network trains at learning rates where the plain one diverges, and the pre-activation
spread is what NumPy computes by hand from the same weights.  Then the command line and
the app screen."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from lab_helpers import open_lab, wait_until

from bntui.cli import main
from bntui.engine.arch import parse_arch
from bntui.engine.errors import BntuiError
from bntui.engine.labs import chaos
from bntui.engine.labs import with_without_bn as lab

CFG = lab.LAB_DEFAULT  # moons, 32:tanh ×3, SGD lr 5, 200 steps


# building the twins ----------------------------------------------------------------------
def test_twin_archs_put_bn_on_every_hidden_block_and_remove_it_everywhere() -> None:
    bn_arch, plain_arch = lab.twin_archs("16:tanh:nobn,8:relu:nobias,C")
    bn, plain = parse_arch(bn_arch), parse_arch(plain_arch)
    assert [b.batchnorm for b in bn.blocks] == [True, True, True]  # output as the config says
    assert [b.batchnorm for b in plain.blocks] == [False, False, False]
    assert [b.bias for b in bn.blocks] == [True, False, True]
    assert [b.bias for b in plain.blocks] == [True, True, True]  # without BN a bias matters
    assert [b.activation for b in bn.blocks] == [b.activation for b in plain.blocks]
    with pytest.raises(BntuiError, match="no hidden block"):
        lab.twin_archs("C")


def test_twins_start_from_the_same_weights_and_see_the_same_batches() -> None:
    cfg = replace(CFG, batch_size=16)
    with_bn, without, identical, copied = lab.build_twins(cfg)
    assert identical and copied == []
    assert with_bn.dataset is without.dataset
    for a, b in zip(with_bn.network.blocks, without.network.blocks, strict=True):
        assert a.dense.W.tobytes() == b.dense.W.tobytes()  # bit-identical
        assert a.dense.b.tobytes() == b.dense.b.tobytes()
    assert [b.bn is not None for b in with_bn.network.blocks] == [True] * 4
    assert [b.bn is not None for b in without.network.blocks] == [False] * 4
    for _ in range(12):  # more than one epoch of 160 / 16 batches
        (Xa, ya), (Xb, yb) = with_bn.next_batch(), without.next_batch()
        assert np.array_equal(Xa, Xb) and np.array_equal(ya, yb)
    # the same weights give the same Z in the first block, by hand
    X = with_bn.X_train
    W, b = with_bn.network.blocks[0].dense.W, with_bn.network.blocks[0].dense.b
    for s in (with_bn, without):
        s.network.forward(X, training=True, update_running=False)
        assert np.array_equal(s.network.blocks[0].cache["Z"], X @ W + b)


def test_weights_are_copied_when_the_random_draws_differ() -> None:
    """Hidden blocks without bias: the plain twin (bias on) draws its biases in between,
    so its later W differ; the lab copies them and starts the extra biases at 0."""
    cfg = replace(CFG, arch="8:tanh:nobias,8:tanh:nobias,C")
    with_bn, without, identical, copied = lab.build_twins(cfg)
    assert not identical and "2.W" in copied
    for a, b in zip(with_bn.network.blocks, without.network.blocks, strict=True):
        assert np.array_equal(a.dense.W, b.dense.W)
    assert np.array_equal(without.network.blocks[0].dense.b, np.zeros(8))


# the effect ------------------------------------------------------------------------------
def test_only_the_bn_network_trains_at_a_high_learning_rate() -> None:
    """Measured (seed 0, 200 steps): at lr 10 the BN loss goes 0.88 → 0.001 while the
    plain one goes 0.71 → 33; at lr 0.3 both train (0.048 and 0.088)."""
    rows = {r.lr: r for r in lab.lr_sweep(CFG, [0.3, 10.0])}
    high, mid = rows[10.0], rows[0.3]
    assert high.bn.final_loss < 0.1 * high.bn.start_loss
    assert high.plain.final_loss > 5 * high.plain.start_loss
    assert (high.bn.verdict, high.plain.verdict) == ("trains", "diverged") and high.bn_only
    assert (mid.bn.verdict, mid.plain.verdict) == ("trains", "trains") and not mid.bn_only
    # both runs of a row start from the same weights: their first losses are the twins'
    twins = lab.build_twins(CFG)
    for session, start in zip(twins[:2], (high.bn.start_loss, high.plain.start_loss),
                              strict=True):
        assert session.network.loss(session.X_train, session.y_train) == pytest.approx(start,
                                                                                       rel=1e-12)


def test_side_by_side_training_records_losses_and_spreads() -> None:
    bn_run, plain_run, identical, _ = lab.train_twins(CFG, n_checkpoints=5)
    assert identical
    for run in (bn_run, plain_run):
        assert run.steps == list(range(1, 201)) and len(run.loss) == 200
        assert [s.layer for s in run.layers] == [1, 2, 3]
        assert all(s.steps == [0, 50, 100, 150, 200] for s in run.layers)
    assert bn_run.final_loss < 0.3 * bn_run.start_loss  # 0.88 → 0.16 measured
    assert plain_run.final_loss > 10 * plain_run.start_loss  # 0.71 → 40 measured
    # the plain network's last hidden layer ends saturated, the BN one's does not
    assert plain_run.layers[-1].saturated[-1] > 0.9  # 100 % measured
    assert bn_run.layers[-1].saturated[-1] < 0.2  # 6 % measured
    assert [s.name for s in bn_run.layers] == ["Zbn"] * 3
    assert [s.name for s in plain_run.layers] == ["Z"] * 3


def test_the_spread_at_step_0_is_what_numpy_computes_from_the_weights() -> None:
    bn_run, plain_run, _, _ = lab.train_twins(CFG, steps=1, n_checkpoints=2)
    with_bn, _, _, _ = lab.build_twins(CFG)
    X = with_bn.X_train
    d = with_bn.network.blocks[0].dense
    Z = X @ d.W + d.b
    first = plain_run.layers[0]
    assert first.steps[0] == 0
    assert np.allclose(first.quantiles[0], np.quantile(Z, lab.QUANTILES), rtol=0, atol=1e-12)
    # tanh' = 1 − tanh² falls under 5 % of its peak (1) where |x| > atanh(√0.95)
    assert first.saturated[0] == pytest.approx(np.mean(np.abs(Z) > np.arctanh(np.sqrt(0.95))))
    # with BN (γ = 1, β = 0 at the start) each feature has mean 0 and variance
    # var / (var + ε) over the batch: the whole layer has mean 0 and std just under 1
    var = Z.var(axis=0)
    bn_first = bn_run.layers[0]
    assert abs(bn_first.mean[0]) < 1e-12
    assert bn_first.std[0] == pytest.approx(np.sqrt(np.mean(var / (var + 1e-5))), rel=1e-10)


def test_checkpoints_and_verdicts() -> None:
    assert lab.checkpoints(200, 6) == [0, 40, 80, 120, 160, 200]
    assert lab.checkpoints(3, 6) == [0, 1, 2, 3]
    assert lab.checkpoints(0) == [0]
    chance = math.log(2)
    assert lab.verdict(0.7, 0.1, chance) == "trains"
    assert lab.verdict(0.7, 0.6, chance) == "slow"
    assert lab.verdict(0.7, 0.9, chance) == "diverged"
    assert lab.verdict(0.7, 0.1, chance, stopped=True) == "diverged"
    assert lab.verdict(0.7, float("nan"), chance) == "diverged"


@pytest.mark.parametrize(("text", "expected"), [
    ("0.01,0.1,1", [0.01, 0.1, 1.0]), (" 1e-3 , 10 ", [0.001, 10.0]), ("5", [5.0]),
])
def test_parse_lrs(text: str, expected: list[float]) -> None:
    assert lab.parse_lrs(text) == expected


@pytest.mark.parametrize(("text", "why"), [
    ("", "empty item"), ("0.1,,1", "empty item"), ("0.1,x", "'x' is not a number"),
    ("0,1", "positive"), ("-1", "positive"), ("inf", "positive"), ("nan", "positive"),
    (",".join(["1"] * 25), "at most"),
])
def test_parse_lrs_refuses(text: str, why: str) -> None:
    with pytest.raises(BntuiError, match=why):
        lab.parse_lrs(text)


# the command line ------------------------------------------------------------------------
def test_cli_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "bn", "--lrs", "0.3,10"]) == 0
    out = capsys.readouterr().out
    assert "with BN:    32:tanh,32:tanh,32:tanh,C" in out
    assert "W bit-identical in every block" in out
    assert "pre-activation spread over training" in out
    assert "only the BN network trains at: 10" in out
    assert out.count("\n1      with BN (Zbn)") == 1


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "bn", "--json", "--steps", "40", "--lrs", "0.1,10",
                 "--sweep-steps", "30", "--arch", "8:tanh,8:tanh,C"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["lab"] == "bn" and data["steps"] == 40 and data["sweep_steps"] == 30
    assert data["bn_arch"] == "8:tanh,8:tanh,C" and data["weights_identical"] is True
    assert data["lr"] == 5.0 and data["optimizer"] == "sgd"
    assert [r["lr"] for r in data["sweep"]] == [0.1, 10.0]
    for key in ("with_bn", "without_bn"):
        run = data[key]
        assert len(run["loss"]) == 40 and [s["layer"] for s in run["layers"]] == [1, 2]
        assert len(run["layers"][0]["quantiles"][0]) == 5
    assert set(data["sweep"][0]["bn"]) == {"start_loss", "final_loss", "verdict", "chaotic"}


def test_cli_flags_change_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "bn", "--json", "--dataset", "blobs", "--optimizer", "adam",
                 "--steps", "5", "--lrs", "0.01"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dataset"] == "blobs" and data["optimizer"] == "adam"
    assert data["lr"] == 0.01  # adam's default, not the lab's SGD rate


@pytest.mark.parametrize("argv", [
    ["--lrs", "0.1,abc"], ["--lrs", "0,1"], ["--lrs", ""], ["--sweep-steps", "0"],
    ["--arch", "C"], ["--steps", "0"], ["--lr", "-1"], ["--arch", "8:tanh,C", "--batch-size",
                                                         "1"],
])
def test_cli_bad_input_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lab", "bn", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err


# the app ---------------------------------------------------------------------------------
async def test_app_lab_draws_results_and_checks_its_fields(monkeypatch) -> None:
    from textual.widgets import Input, Static
    from textual_plotext import PlotextPlot

    from bntui.engine import RunConfig
    from bntui.ui.app import BntuiApp
    from bntui.ui.form import Note
    from bntui.ui.labs.with_without_bn import WithWithoutBNLab

    # a shorter default run keeps the test quick; the fields start from these values
    monkeypatch.setattr(lab, "LAB_DEFAULT", replace(CFG, steps=60))
    monkeypatch.setattr(lab, "DEFAULT_LRS", (0.3, 10.0))
    app = BntuiApp(RunConfig(dataset="moons", arch="8:tanh,6:relu,C"))
    async with app.run_test(size=(120, 40)) as pilot:
        _, view = await open_lab(app, pilot, WithWithoutBNLab, "bn")
        assert view.twins is not None and [r.lr for r in view.sweep] == [0.3, 10.0]
        summary = str(view.query_one("#bnl-summary", Static).render())
        assert "only BN trains at 10" in summary and "W bit-identical" in summary
        for pid in ("#bnl-loss", "#bnl-sweep", "#bnl-spread-bn", "#bnl-spread-plain"):
            assert view.query_one(pid, PlotextPlot).plt._active.monitor.y  # data drawn
        # a bad field: one red line, the results stay, nothing runs
        before = view.twins
        view.query_one("#bnl-lrs", Input).value = "0.1,abc"
        await pilot.pause()
        assert "'abc' is not a number" in str(view.query_one(Note).render())
        await pilot.click("#bnl-run")
        await pilot.pause()
        assert view.twins is before and view.ready
        # the app's own run: its dataset and architecture, twinned
        view.query_one("#bnl-lrs", Input).value = "1"
        view.query_one("#bnl-steps", Input).value = "20"
        view.query_one("#bnl-setting").value = "app"
        await pilot.pause()
        await pilot.click("#bnl-run")
        await wait_until(lambda: view.ready and view.result_config is not None
                    and view.result_config.arch == "8:tanh,6:relu,C")
        assert view.twins[1].arch == "8:nobn:tanh,6:nobn:relu,C:nobn"
        assert view.query_one("#bnl-lr", Input).value == "0.01"  # the app's adam rate


def test_chaotic_figures_are_measured_and_marked(capsys: pytest.CaptureFixture[str]) -> None:
    """At lr 5 the plain network's losses are chaotic (a 1e-14 nudge of its initial
    weights moves them by far more than 1e-5, measured: its last digits are the CPU's
    rounding), while the first steps are not; the text quotes chaotic figures with ≈."""
    r = lab.run_bn_lab(lab.LAB_DEFAULT, lrs=(1.0,), sweep_steps=20)
    plain = r.plain_run
    assert not plain.chaotic_at(1) and plain.chaotic_at(len(plain.loss))
    assert chaos.chaotic(plain.final_move)
    assert main(["lab", "bn", "--lrs", "1", "--sweep-steps", "20"]) == 0
    out = capsys.readouterr().out
    assert "≈40" in out and "≈ chaotic" in out


def test_the_sweep_says_edge_where_the_cpu_decides() -> None:
    """At lr 3 the plain network sits on the edge: whether it diverges depends on the CPU's
    rounding (measured: it diverged with this machine's OpenBLAS kernel and with
    Sandybridge's, and trained with Prescott's).  The sweep trains each run again from
    weights nudged in their 14th digit and calls a run whose verdict flips "edge", so the
    rates where only BN trains are the same on any CPU (three kernels measured)."""
    r = lab.run_bn_lab(lab.LAB_DEFAULT)
    assert r.bn_only_lrs == [0.001, 0.003, 0.01, 10.0]
    three = next(row for row in r.sweep if row.lr == 3.0)
    assert three.bn.verdict == "trains" and three.plain.verdict in ("edge", "trains")
