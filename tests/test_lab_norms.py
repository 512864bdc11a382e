"""Lab "Which normalization": five variants that differ only in their hidden blocks'
normalization share their start and their batches; one sample's output moves with its
batch under BatchNorm and is bit-identical under LayerNorm, GroupNorm, RMSNorm and none;
a batch of two collapses BatchNorm to ±√(var/(var+ε)) and nothing else; only BatchNorm has
a training/eval gap; the curves and the sweep are the runs they say.  Then the command
line and the app screen."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from app_helpers import text as shown
from lab_helpers import open_lab, wait_until

from bntui.cli import main
from bntui.engine.arch import parse_arch
from bntui.engine.errors import BntuiError
from bntui.engine.labs import norms as lab
from bntui.engine.session import Session, build_dataset

CFG = lab.LAB_DEFAULT  # moons, 32:tanh,32:tanh,C:nobn, SGD lr 1, 200 steps, full batch
PER_SAMPLE = ("ln", "gn", "rms")


@pytest.fixture(scope="module")
def trained() -> tuple[dict[str, Session], list[lab.Curve], lab.Probes]:
    dataset = build_dataset(CFG)
    sessions, curves, identical, copied = lab.train_variants(CFG, dataset)
    assert identical and copied == []
    return sessions, curves, lab.probe(sessions, CFG)


# building the variants -------------------------------------------------------------------
def test_variants_differ_only_in_the_hidden_normalization() -> None:
    archs = lab.variant_archs("16:tanh:nobias,6:relu:ln,C")
    assert list(archs) == list(lab.KINDS)
    specs = {k: parse_arch(a) for k, a in archs.items()}
    assert [b.norm for b in specs["bn"].blocks] == ["bn", "bn", "bn"]  # output as given
    assert [b.norm for b in specs["ln"].blocks] == ["ln", "ln", "bn"]
    assert [b.norm for b in specs["gn"].blocks] == ["gn", "gn", "bn"]
    assert [b.groups for b in specs["gn"].blocks[:2]] == [4, 2]  # the largest of 4, 2, 1
    assert [b.norm for b in specs["rms"].blocks] == ["rms", "rms", "bn"]
    assert [b.norm for b in specs["none"].blocks] == [None, None, "bn"]
    for spec in specs.values():  # widths, activations and biases as the arch says
        assert [(b.width, b.activation, b.bias) for b in spec.blocks] == [
            (16, "tanh", False), (6, "relu", True), (None, "identity", True)]
    assert lab.gn_groups("8:relu,7:relu,12:relu,C") == [4, 1, 4]
    assert lab.gn_groups("8:relu,12:relu,C", groups=2) == [2, 2]


@pytest.mark.parametrize(("arch", "groups", "why"), [
    ("C", None, "no hidden block"), ("32:tanh,C", 3, "does not divide the width 32"),
    ("8:relu,5:relu,C", 2, "does not divide the width 5"), ("8:relu,C", 0, "between 1"),
])
def test_variant_archs_refuse(arch: str, groups: int | None, why: str) -> None:
    with pytest.raises(BntuiError, match=why):
        lab.variant_archs(arch, groups)


@pytest.mark.parametrize("arch", ["32:tanh,32:tanh,C:nobn", "8:tanh:nobias,6:relu,C"])
def test_the_five_start_from_the_same_weights_and_see_the_same_batches(arch: str) -> None:
    """No normalization draws from the generator: the same seed gives every variant the
    same W and b, bit for bit, without copying."""
    cfg = replace(CFG, arch=arch, batch_size=16)
    dataset = build_dataset(cfg)
    sessions, identical, copied = lab.build_variants(cfg, dataset)
    assert identical and copied == []
    ref = sessions["bn"]
    for kind, s in sessions.items():
        assert s.dataset is dataset
        for a, b in zip(ref.network.blocks, s.network.blocks, strict=True):
            assert a.dense.W.tobytes() == b.dense.W.tobytes()
            assert (a.dense.b is None) == (b.dense.b is None)
            if a.dense.b is not None:
                assert a.dense.b.tobytes() == b.dense.b.tobytes()
        kinds = [type(b.norm).__name__ if b.norm else None for b in s.network.blocks[:-1]]
        assert set(kinds) == {lab.LABELS[kind] if kind != "none" else None}
    batches = {k: [s.next_batch()[0] for _ in range(12)] for k, s in sessions.items()}
    for k in lab.KINDS[1:]:  # more than one epoch of 160 / 16
        assert all(np.array_equal(x, y) for x, y in zip(batches["bn"], batches[k], strict=True))


# (a) one sample in 20 batches ------------------------------------------------------------
def test_a_sample_moves_with_its_batch_under_batchnorm_only(trained) -> None:
    _, _, p = trained
    spreads = {s.kind: s for s in p.spreads}
    assert p.batches == 20 and p.batch_size == lab.PROBE_BATCH
    bn = spreads["bn"]
    assert not bn.identical and min(bn.spread) > 0.1 and bn.logits_spread > 0.1
    for kind in (*PER_SAMPLE, "none"):
        s = spreads[kind]
        assert s.identical, kind  # bit-identical in every batch, whatever the batch mates
        assert s.spread == [0.0, 0.0] and s.logits_spread == 0.0
    assert [spreads[k].names[0] for k in lab.KINDS] == ["Zbn", "Zln", "Zgn", "Zrms", "Z"]


def test_layernorm_of_the_sample_is_its_own_formula(trained) -> None:
    """LayerNorm's output of the sample, in any of the batches, is what NumPy computes
    from that sample alone: (Z − mean) / √(var + ε) · γ + β over its own features."""
    sessions, _, p = trained
    net = sessions["ln"].network
    x = sessions["ln"].X_train[p.sample]
    d, norm = net.blocks[0].dense, net.blocks[0].norm
    z = x @ d.W + d.b
    by_hand = (z - z.mean()) / np.sqrt(z.var() + norm.eps) * norm.gamma + norm.beta
    got = np.array(next(s for s in p.spreads if s.kind == "ln").first)
    np.testing.assert_allclose(got, np.tile(by_hand, (len(got), 1)), rtol=0, atol=1e-12)


# (b) a batch of two ----------------------------------------------------------------------
def test_a_batch_of_two_collapses_batchnorm_only(trained) -> None:
    sessions, _, p = trained
    pairs = {s.kind: s for s in p.pairs}
    bn = pairs["bn"]
    assert bn.max_error is not None and bn.max_error < 1e-12  # ±√(var/(var+ε)), exactly
    z = np.array(bn.Znorm)
    assert np.all(np.sign(z[0]) == -np.sign(z[1]))  # only which sample is larger is left
    assert min(bn.near_one) > 0.5 and min(bn.median_abs) > 0.99  # 81 %, 100 % measured
    for kind in PER_SAMPLE:
        assert max(pairs[kind].near_one) < 0.2, kind  # 0–3 % measured
        assert pairs[kind].max_error is None
    assert pairs["none"].near_one is None and pairs["none"].Znorm is None
    # LayerNorm of the pair is each sample's own: the same as in any other batch
    net = sessions["ln"].network
    X = sessions["ln"].X_train
    net.forward(X[list(p.pair)], training=True, update_running=False)
    pair_out = net.blocks[0].cache["Zln"][0].copy()
    net.forward(X[[p.pair[0], *range(10)]], training=True, update_running=False)
    assert np.array_equal(pair_out, net.blocks[0].cache["Zln"][0])


# (c) training vs eval mode ---------------------------------------------------------------
def test_only_batchnorm_has_a_training_eval_gap(trained) -> None:
    _, _, p = trained
    gaps = {g.kind: g for g in p.gaps}
    bn = gaps["bn"]
    assert min(bn.gap) > 0.01 and bn.max_gap > 0.1 and bn.logits_gap > 0.01  # 0.19… measured
    for kind in (*PER_SAMPLE, "none"):
        g = gaps[kind]
        assert g.gap == [0.0, 0.0] and g.max_gap == 0.0 and g.logits_gap == 0.0, kind
        assert g.flipped == 0.0


# (d) curves and the sweep ----------------------------------------------------------------
def test_curves_are_the_runs_of_each_variant(trained) -> None:
    _, curves, _ = trained
    assert [c.kind for c in curves] == list(lab.KINDS)
    for c in curves:
        assert len(c.loss) == CFG.steps and c.stopped is None
        assert c.final_loss < 0.3 * c.start_loss  # every one trains at lr 1
        fresh = Session(replace(CFG, arch=c.arch))
        assert fresh.network.loss(fresh.X_train, fresh.y_train) == pytest.approx(
            c.start_loss, rel=1e-12)


def test_the_sweep_reuses_the_curves_at_the_configs_rate() -> None:
    cfg = replace(CFG, steps=15, arch="8:tanh,8:tanh,C:nobn")
    dataset = build_dataset(cfg)
    _, curves, _, _ = lab.train_variants(cfg, dataset)
    reused = lab.sweep_row(cfg, 1.0, 15, dataset, curves=curves)
    fresh = lab.sweep_row(cfg, 1.0, 15, dataset)
    for kind in lab.KINDS:
        assert reused.cells[kind].to_dict() == fresh.cells[kind].to_dict()


def test_the_sweep_at_a_small_and_a_large_rate() -> None:
    """Measured (seeds 0–3): at lr 0.01 every normalized network trains in 200 steps and
    the plain one is slow (final 0.40–0.44 vs 0.24–0.32); at lr 10 LayerNorm, GroupNorm and
    the plain network blow up (LN and GN end near 80)."""
    dataset = build_dataset(CFG)
    small = lab.sweep_row(CFG, 0.01, CFG.steps, dataset).cells
    assert small["none"].verdict == "slow"
    for kind in ("bn", *PER_SAMPLE):
        assert small[kind].final_loss < small["none"].final_loss, kind
        assert small[kind].verdict == "trains", kind
    large = lab.sweep_row(CFG, 10.0, CFG.steps, dataset).cells
    for kind in ("ln", "gn", "none"):
        assert large[kind].verdict == "diverged" and large[kind].final_loss > 5, kind


def test_bad_settings_are_refused() -> None:
    with pytest.raises(BntuiError, match="at least 1 training step"):
        lab.run_norms_lab(CFG, steps=0)
    with pytest.raises(BntuiError, match="sample must be between 0 and 159"):
        lab.run_norms_lab(CFG, steps=1, sample=160)
    with pytest.raises(BntuiError, match="positive"):
        lab.run_norms_lab(CFG, lrs=[0.0], steps=1)


# the command line ------------------------------------------------------------------------
def test_cli_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "norms", "--steps", "40", "--lrs", "0.1,1"]) == 0
    out = capsys.readouterr().out
    assert "GroupNorm: 32:gn=4:tanh,32:gn=4:tanh,C:nobn" in out
    assert "W and b bit-identical in all five" in out
    for head in ("(a) training sample 0", "(b) a batch of two", "(c) training vs eval",
                 "(d) training loss at lr 1", "learning-rate sweep: 40 steps", "trains at:"):
        assert head in out
    a = out[out.index("(a)"):out.index("(b)")]
    assert "LayerNorm  Zln     0        0        0       yes" in a
    assert "BatchNorm  Zbn" in a and a.count(" yes") == 4


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "norms", "--json", "--steps", "20", "--lrs", "0.1,3",
                 "--sweep-steps", "10", "--arch", "8:relu,6:relu,C", "--sample", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["lab"] == "norms" and data["steps"] == 20 and data["sweep_steps"] == 10
    assert data["gn_groups"] == [4, 2] and data["weights_identical"] is True
    assert data["archs"]["gn"] == "8:gn=4:relu,6:gn=2:relu,C"
    assert data["sample_in_batches"]["sample"] == 3
    kinds = ["bn", "ln", "gn", "rms", "none"]
    for part in ("sample_in_batches", "batch_of_two", "train_vs_eval"):
        assert [v["kind"] for v in data[part]["variants"]] == kinds
    assert [c["kind"] for c in data["curves"]] == kinds
    assert all(len(c["loss"]) == 20 for c in data["curves"])
    assert [r["lr"] for r in data["sweep"]] == [0.1, 3.0]
    assert set(data["sweep"][0]) == {"lr", *kinds}
    assert set(data["trains_at"]) == set(kinds)


@pytest.mark.parametrize("argv", [
    ["--lrs", "0.1,abc"], ["--lrs", "0,1"], ["--lrs", ""], ["--sweep-steps", "0"],
    ["--arch", "C"], ["--steps", "0"], ["--lr", "-1"], ["--groups", "3"], ["--groups", "0"],
    ["--sample", "-1"], ["--sample", "100000"], ["--batch-size", "1"],
    ["--arch", "8:relu,5:relu,C", "--groups", "2"],
])
def test_cli_bad_input_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lab", "norms", "--steps", "3", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err


# the app ---------------------------------------------------------------------------------
async def test_app_lab_shows_the_four_parts(monkeypatch) -> None:
    from textual.widgets import Input, Static
    from textual_plotext import PlotextPlot

    from bntui.engine import RunConfig
    from bntui.ui.app import BntuiApp
    from bntui.ui.form import Note
    from bntui.ui.labs.norms import NormsLab

    # a shorter default run keeps the test quick; the fields start from these values
    monkeypatch.setattr(lab, "LAB_DEFAULT", replace(CFG, steps=30,
                                                    arch="8:tanh,8:tanh,C:nobn"))
    monkeypatch.setattr(lab, "DEFAULT_LRS", (0.1, 10.0))
    app = BntuiApp(RunConfig(dataset="moons", arch="8:tanh,6:relu,C"))
    async with app.run_test(size=(120, 40)) as pilot:
        _, view = await open_lab(app, pilot, NormsLab, "norms")
        assert view.result is not None and [r.lr for r in view.result.sweep] == [0.1, 10.0]
        text = {pid: shown(view.query_one(pid, Static))
                for pid in ("#nl-summary", "#nl-a", "#nl-b", "#nl-c", "#nl-sweep")}
        assert "W, b bit-identical" in text["#nl-summary"]
        assert "LayerNorm" in text["#nl-a"] and "yes" in text["#nl-a"]
        assert "BatchNorm" in text["#nl-b"] and "%" in text["#nl-b"]
        assert "RMSNorm" in text["#nl-c"]
        assert "0.1" in text["#nl-sweep"] and "10" in text["#nl-sweep"]
        assert view.query_one("#nl-loss", PlotextPlot).plt._active.monitor.y  # data drawn
        # a bad field: one red line, the results stay, nothing runs
        before = view.result
        view.query_one("#nl-lrs", Input).value = "0.1,abc"
        await pilot.pause()
        assert "'abc' is not a number" in str(view.query_one(Note).render())
        await pilot.click("#nl-run")
        await pilot.pause()
        assert view.result is before and view.ready
        # another architecture: GroupNorm's groups follow its widths
        view.query_one("#nl-lrs", Input).value = "1"
        view.query_one("#nl-arch", Input).value = "6:relu,6:relu,C"
        view.query_one("#nl-steps", Input).value = "10"
        await pilot.pause()
        await pilot.click("#nl-run")
        await wait_until(lambda: view.ready and view.result is not before)
        assert view.result.archs["gn"] == "6:gn=2:relu,6:gn=2:relu,C"


async def test_app_keys_before_the_lab_is_mounted_do_not_crash(monkeypatch) -> None:
    from bntui.engine import RunConfig
    from bntui.ui.app import BntuiApp
    from bntui.ui.labs.norms import NormsLab
    from bntui.ui.labs_pane import LabsPane

    monkeypatch.setattr(lab, "LAB_DEFAULT", replace(CFG, steps=20, arch="8:tanh,8:tanh,C"))
    monkeypatch.setattr(lab, "DEFAULT_LRS", (1.0,))
    app = BntuiApp(RunConfig(dataset="moons"))
    async with app.run_test(size=(80, 24)) as pilot:
        # the Labs tab and keys at once, before the panes are mounted; then this lab, and
        # its fields and Run before its first result is drawn
        await pilot.press("8", "tab", "enter", "tab", "enter")
        await wait_until(lambda: app.query(LabsPane) and app.query_one(LabsPane).config
                         is not None, what="the Labs pane never opened")
        app.query_one(LabsPane).show_lab("norms")
        view = app.query_one(NormsLab)
        await pilot.press("tab", "enter", "tab", "tab", "enter")
        await pilot.pause()
        await wait_until(lambda: view.ready and view.result is not None
                         and all(w.is_finished for w in app.workers))
        assert app.is_running and view.result.archs["ln"] == "8:ln:tanh,8:ln:tanh,C"
