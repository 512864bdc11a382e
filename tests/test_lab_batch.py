"""Lab "Batch size": a batch of two normalises to ±√(var/(var+ε)) (hand-derived), batch
statistics and both modes agree with torch.nn.BatchNorm1d, a sample's eval-mode output
does not depend on its batch while its training-mode output does, and the training-vs-eval
gap grows as the batch shrinks.  Then the command line and the app screen."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from lab_helpers import open_lab, wait_until

from bntui.cli import main
from bntui.engine.batchnorm import BatchNorm
from bntui.engine.errors import BntuiError
from bntui.engine.labs import batch_size as lab
from bntui.engine.session import Session

CFG = replace(lab.LAB_DEFAULT, steps=150)  # moons, 16:relu,16:relu,C, adam, batches of 8


@pytest.fixture(scope="module")
def trained() -> Session:
    session = Session(CFG)
    session.train(steps=CFG.steps)
    return session


# (b) a batch of two ----------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_a_batch_of_two_normalises_to_plus_minus_sqrt_var_over_var_eps(seed: int) -> None:
    """By hand: mu = (z₁+z₂)/2, so Z0 = ±δ with δ = (z₁−z₂)/2, var = δ², and
    Znorm = ±δ / √(δ² + ε): the magnitude √(var/(var+ε)) for both rows, opposite signs."""
    rng = np.random.default_rng(seed)
    D = 12
    scale = 10.0 ** rng.uniform(-4, 3, D)  # from differences far below √ε to large ones
    Z = rng.standard_normal((2, D)) * scale
    eps = [1e-5, 1e-3, 0.01, 1e-8][seed % 4]
    bn = BatchNorm(D, eps=eps)
    bn.forward(Z, training=True)
    Znorm = bn.cache["Znorm"]
    delta = (Z[0] - Z[1]) / 2.0
    expected = delta / np.sqrt(delta * delta + eps)
    np.testing.assert_allclose(Znorm[0], expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(Znorm[1], -expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.abs(Znorm[0]), lab.pair_znorm_magnitude(Z, eps), rtol=1e-12)
    big = np.abs(delta) > 100 * np.sqrt(eps)
    assert np.all(np.abs(np.abs(Znorm[:, big]) - 1) < 1e-4)  # ±1 once δ ≫ √ε


def test_pair_demo_on_a_trained_network(trained: Session) -> None:
    p = lab.pair_demo(trained)
    assert p.max_error < 1e-12
    assert np.all(np.sign(p.Znorm[0]) == -np.sign(p.Znorm[1]))
    np.testing.assert_allclose(p.var, ((p.Z[0] - p.Z[1]) / 2) ** 2, rtol=1e-12)
    assert p.rows[0] != p.rows[1]
    # eval mode has no such constraint: its values are spread out
    assert np.std(np.abs(p.Znorm_eval)) > 0.1


# (a) batch vs running statistics, against torch ------------------------------------------
def test_batch_and_running_statistics_match_torch(trained: Session) -> None:
    torch = pytest.importorskip("torch")
    net = trained.network
    bn = net.blocks[0].bn
    idx = np.arange(8)
    Z = lab.layer_input(net, trained.X_train[idx], 1)
    ref = torch.nn.BatchNorm1d(bn.num_features, eps=bn.eps, momentum=bn.momentum,
                               dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(bn.gamma))
        ref.bias.copy_(torch.from_numpy(bn.beta))
        ref.running_mean.copy_(torch.from_numpy(bn.running_mean))
        ref.running_var.copy_(torch.from_numpy(bn.running_var))
        ref.eval()
        eval_out = ref(torch.from_numpy(Z)).numpy()
        ref.train()
        train_out = ref(torch.from_numpy(Z)).numpy()
    from bntui.engine.batchnorm import train_vs_eval

    out = train_vs_eval(bn, Z)
    np.testing.assert_allclose(out["Zbn_train"], train_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["Zbn_eval"], eval_out, rtol=1e-12, atol=1e-12)
    # torch moved its running stats by momentum · (batch − running), unbiased variance:
    # recover the batch statistics from that step and compare them to ours
    m = bn.momentum
    mu = (ref.running_mean.numpy() - (1 - m) * bn.running_mean) / m
    var_unbiased = (ref.running_var.numpy() - (1 - m) * bn.running_var) / m
    np.testing.assert_allclose(out["batch_mu"], mu, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out["batch_var"] * 8 / 7, var_unbiased, rtol=1e-9, atol=1e-12)


def test_batch_vs_running_reports_the_layer_untouched(trained: Session) -> None:
    before = trained.network.state()
    s = lab.batch_vs_running(trained, batches=6)
    after = trained.network.state()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # looking changes nothing
    bn = trained.network.blocks[0].bn
    assert s.layer == 1 and s.batch_size == 8 and s.batch_mu.shape == (6, 16)
    assert np.array_equal(s.running_mean, bn.running_mean)
    assert np.array_equal(s.running_var, bn.running_var)
    assert np.all(s.batch_var >= 0) and s.mean_abs_zbn_diff > 0
    # batch means scatter around the running mean (it is their moving average)
    assert np.all(s.batch_mu.std(axis=0) > 0)


# (c) one sample in many batches ----------------------------------------------------------
def test_eval_output_of_a_sample_does_not_depend_on_its_batch(trained: Session) -> None:
    before = trained.network.state()
    o = lab.sample_in_batches(trained, sample=5, batches=15)
    assert all(np.array_equal(before[k], v) for k, v in trained.network.state().items())
    assert o.logits_train.shape == o.logits_eval.shape == (15, 2)
    assert o.spread_eval <= 1e-12  # measured exactly 0
    assert o.spread_train > 0.1  # 1.1–3.1 measured over seeds
    # eval mode: the same as the sample alone (running statistics need no batch)
    alone = trained.network.forward(trained.X_train[[5]], training=False, update_running=False)
    np.testing.assert_allclose(o.logits_eval, np.repeat(alone, 15, axis=0), rtol=0, atol=1e-12)
    assert o.label == int(trained.y_train[5])


def test_sample_in_batches_refuses_bad_input(trained: Session) -> None:
    with pytest.raises(BntuiError, match="sample must be between"):
        lab.sample_in_batches(trained, sample=10_000)
    with pytest.raises(BntuiError, match="batch mate"):
        lab.sample_in_batches(trained, batch_size=1)


# (d) the gap by batch size ---------------------------------------------------------------
def test_the_train_eval_gap_shrinks_as_the_batch_grows() -> None:
    """Measured over seeds 0–5 (150 steps): mean |Zbn_train − Zbn_eval| of layer 1 is
    0.68–0.89 at batch 2, 0.43–0.51 at 4, 0.18–0.28 at 16 and 0.005–0.015 full batch."""
    gaps = lab.size_gap(CFG, [2, 4, 16, None])
    assert [g.label for g in gaps] == ["2", "4", "16", "full"]
    assert [g.batch_size for g in gaps] == [2, 4, 16, 160]
    z = [g.zbn_gap for g in gaps]
    assert z[0] > z[1] > z[2] > z[3]
    assert z[0] > 0.4 and z[3] < 0.05
    assert gaps[0].flipped > 0.1 and gaps[0].flipped > gaps[2].flipped
    for g in gaps:
        assert 0 <= g.acc_train_mode <= 1 and 0 <= g.acc_eval_mode <= 1 and g.stopped is None


def test_mode_gap_full_batch_matches_a_direct_pass(trained: Session) -> None:
    full = Session(replace(CFG, batch_size=None))
    full.train(steps=20)
    g = lab.mode_gap(full)
    net = full.network
    loss_t = net.loss(full.X_train, full.y_train, training=True, update_running=False)
    loss_e = net.loss(full.X_train, full.y_train, training=False, update_running=False)
    assert g.loss_train_mode == pytest.approx(loss_t, rel=1e-12)
    assert g.loss_eval_mode == pytest.approx(loss_e, rel=1e-12)


@pytest.mark.parametrize(("text", "expected"), [
    ("2,4,8,full", [2, 4, 8, None]), (" 16 , ALL ", [16, None]), ("64", [64]),
])
def test_parse_sizes(text: str, expected: list[int | None]) -> None:
    assert lab.parse_sizes(text) == expected


@pytest.mark.parametrize(("text", "why"), [
    ("", "empty item"), ("2,,4", "empty item"), ("1", "at least 2"), ("0", "at least 2"),
    ("2.5", "not a whole number"), ("two", "not a whole number"),
    (",".join(["2"] * 17), "at most"),
])
def test_parse_sizes_refuses(text: str, why: str) -> None:
    with pytest.raises(BntuiError, match=why):
        lab.parse_sizes(text)


def test_the_lab_needs_a_batchnorm_layer() -> None:
    with pytest.raises(BntuiError, match="no BatchNorm layer"):
        lab.run_batch_lab(replace(CFG, arch="8:nobn,C:nobn", steps=2), [2])


# the command line ------------------------------------------------------------------------
def test_cli_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "batch", "--steps", "100", "--sizes", "2,16,full"]) == 0
    out = capsys.readouterr().out
    for part in ("(a) batch statistics vs running statistics", "(b) a batch of two",
                 "(c) training sample 0", "(d) training vs eval mode by batch size"):
        assert part in out
    assert "eval mode: spread 0, class" in out
    assert "\n2      " in out and "\nfull   " in out


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "batch", "--json", "--steps", "30", "--sizes", "2,full",
                 "--batch-size", "4", "--layer", "2", "--sample", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["lab"] == "batch" and data["batch_size"] == 4 and data["layer"] == 2
    assert data["batch_vs_running"]["layer"] == 2 and data["pair"]["max_error"] < 1e-12
    assert data["sample_in_batches"]["sample"] == 3
    assert data["sample_in_batches"]["spread_eval"] <= 1e-12
    assert [g["size"] for g in data["size_gap"]] == ["2", "full"]
    assert data["lr"] == 0.01 and data["optimizer"] == "adam"


@pytest.mark.parametrize("argv", [
    ["--sizes", "1,2"], ["--sizes", "2,x"], ["--sizes", ""], ["--layer", "9"],
    ["--layer", "0"], ["--sample", "100000"], ["--arch", "8:nobn,C:nobn"],
    ["--batch-size", "1"], ["--dataset", "nope"],
])
def test_cli_bad_input_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lab", "batch", "--steps", "2", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err


# the app ---------------------------------------------------------------------------------
async def test_app_lab_draws_results_and_checks_its_fields(monkeypatch) -> None:
    from textual.widgets import Input, Static
    from textual_plotext import PlotextPlot

    from bntui.engine import RunConfig
    from bntui.engine.labs import with_without_bn
    from bntui.ui.app import BntuiApp
    from bntui.ui.form import Note
    from bntui.ui.labs.batch_size import BatchSizeLab

    monkeypatch.setattr(lab, "LAB_DEFAULT", replace(lab.LAB_DEFAULT, steps=60))
    monkeypatch.setattr(lab, "DEFAULT_SIZES", (2, 8, None))
    # the first lab of the list runs when the pane opens: keep it short too
    monkeypatch.setattr(with_without_bn, "LAB_DEFAULT",
                        replace(with_without_bn.LAB_DEFAULT, steps=20))
    monkeypatch.setattr(with_without_bn, "DEFAULT_LRS", (1.0,))
    app = BntuiApp(RunConfig(dataset="moons", arch="8:tanh,6:relu,C"))
    async with app.run_test(size=(120, 40)) as pilot:
        _, view = await open_lab(app, pilot, BatchSizeLab, "batch")
        await wait_until(lambda: view.result is not None)
        r = view.result
        assert r.config.arch == "8:tanh,6:relu,C"  # the app's architecture
        assert r.batch_size == 8 and [g.label for g in r.gaps] == ["2", "8", "full"]
        summary = str(view.query_one("#bsl-summary", Static).render())
        assert "(b) batch of 2" in summary and "(d)" in summary
        for pid in ("#bsl-stats", "#bsl-pair", "#bsl-sample", "#bsl-gap"):
            assert view.query_one(pid, PlotextPlot).plt._active.monitor.y
        # a bad field: one red line, the results stay
        view.query_one("#bsl-batch", Input).value = "1"
        await pilot.pause()
        assert "batch must be at least 2" in str(view.query_one(Note).render())
        await pilot.click("#bsl-run")
        await pilot.pause()
        assert view.result is r and view.ready
        # a new run with other sizes
        view.query_one("#bsl-batch", Input).value = "4"
        view.query_one("#bsl-sizes", Input).value = "2,full"
        await pilot.click("#bsl-run")
        await wait_until(lambda: view.ready and view.result is not r)
        assert view.result.batch_size == 4 and [g.label for g in view.result.gaps] == ["2",
                                                                                       "full"]
        # the engine failing (a bug, here): one line in the lab, the app keeps running
        def broken(*args, **kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(lab, "run_batch_lab", broken)
        view.query_one("#bsl-batch", Input).value = "3"
        await pilot.click("#bsl-run")
        await wait_until(lambda: view.ready and "boom" in str(view.query_one(Note).render()))
        assert "internal error: RuntimeError: boom" in str(view.query_one(Note).render())
        assert app.is_running
