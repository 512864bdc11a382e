"""The layer-health lab: histograms, saturated and dead units, update ratios and the
pointer to the first non-finite tensor, each checked against a pass computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lab_helpers import open_lab, wait_until

from bntui.cli import main
from bntui.engine.config import RunConfig
from bntui.engine.labs.health import (
    Histogram,
    first_nonfinite,
    health_check,
    layer_health,
    run_health,
)
from bntui.engine.session import Session
from bntui.engine.trace import record_trace

MOONS = RunConfig(dataset="moons", samples=120, steps=0)


def session(arch: str, **kw: object) -> Session:
    return Session(MOONS.with_overrides(arch=arch, **kw))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# histograms ------------------------------------------------------------------------------
def test_histograms_count_the_hand_computed_tensors() -> None:
    s = session("5:tanh,C")
    s.train(steps=10)
    layers = layer_health(s.network, s.X_train, bins=7)
    d, bn = s.network.blocks[0].dense, s.network.blocks[0].bn
    Z = s.X_train @ d.W + d.b
    mu, var = Z.mean(axis=0), Z.var(axis=0)
    Zbn = bn.gamma * (Z - mu) / np.sqrt(var + bn.eps) + bn.beta
    for name, ref in (("Z", Z), ("Zbn", Zbn), ("A", np.tanh(Zbn))):
        h = layers[0].hists[name]
        counts, edges = np.histogram(ref, bins=7)
        assert h.counts == counts.tolist(), name
        np.testing.assert_allclose(h.edges, edges, rtol=1e-12, atol=1e-12)
        assert sum(h.counts) == ref.size
        assert h.mean == pytest.approx(ref.mean(), abs=1e-12)
    assert set(layers[1].hists) == {"Z", "Zbn"}  # the output block: logits, no A


def test_a_histogram_leaves_non_finite_values_out() -> None:
    h = Histogram.of("Z", np.array([1.0, np.nan, 2.0, np.inf, 3.0]), bins=2)
    assert h.nonfinite == 2 and sum(h.counts) == 3 and (h.min, h.max) == (1.0, 3.0)
    huge = Histogram.of("Z", np.array([-1e308, 0.0, 1e308, 1e308]), bins=4)
    assert huge.counts == [1, 0, 1, 2] and huge.edges[0] == -1e308 and huge.edges[-1] == 1e308
    empty = Histogram.of("Z", np.array([np.nan, -np.inf]))
    assert empty.counts == [] and empty.min is None and empty.nonfinite == 2


# saturated and dead units ----------------------------------------------------------------
@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_saturation_matches_the_definition(act: str) -> None:
    s = session(f"6:{act}:nobn,C")
    d = s.network.blocks[0].dense
    d.W[...] *= 40.0  # push most units into the flat tails
    d.W[:, 0] = 0.0
    d.b[0] = 30.0  # unit 0: saturated on every sample
    d.W[:, 1] = 0.0
    d.b[1] = 0.0  # unit 1: at the steepest point on every sample
    Z = s.X_train @ d.W + d.b
    if act == "sigmoid":
        A = sigmoid(Z)
        sat = (A < 0.01) | (A > 0.99)
    else:
        sat = np.abs(np.tanh(Z)) > 0.99
    lay = layer_health(s.network, s.X_train)[0]
    assert lay.saturation == pytest.approx(sat.mean(), abs=1e-15)
    assert lay.stuck_units == np.flatnonzero(sat.mean(axis=0) >= 0.99).tolist()
    assert 0 in lay.stuck_units and 1 not in lay.stuck_units
    assert lay.dead_units is None


def test_dead_relus_are_units_never_positive() -> None:
    s = session("6:relu:nobn,C")
    d = s.network.blocks[0].dense
    d.W[:, 2] = 0.0
    d.b[2] = -1.0  # dead: Z = −1 for every sample
    d.W[:, 4] = 0.0
    d.b[4] = 0.0  # Z = 0 everywhere: ≤ 0, so dead too
    Z = s.X_train @ d.W + d.b
    lay = layer_health(s.network, s.X_train)[0]
    assert lay.dead_units == np.flatnonzero((Z <= 0).all(axis=0)).tolist()
    assert {2, 4} <= set(lay.dead_units)
    assert lay.saturation is None and lay.stuck_units is None


# update ratios ---------------------------------------------------------------------------
def test_update_ratio_is_one_sgd_step_on_a_copy() -> None:
    s = session("5:tanh,C", optimizer="sgd", lr=0.3)
    s.train(steps=5)
    before = s.network.state()
    report = health_check(s)
    # the session is untouched
    after = s.network.state()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert s.step_count == 5
    # by hand: full batch, so the next batch is the whole set; ΔW = −η·g
    s.network.loss(s.X_train, s.y_train, training=True, update_running=False)
    grads = s.network.backward(staged=False)
    for u in report.updates:
        w = s.network.params()[u.key]
        assert u.norm == pytest.approx(np.linalg.norm(w), rel=1e-12)
        assert u.update_norm == pytest.approx(0.3 * np.linalg.norm(grads[u.key]), rel=1e-9,
                                              abs=1e-15)
    w1 = next(u for u in report.updates if u.key == "1.W")
    assert w1.ratio == pytest.approx(w1.update_norm / w1.norm)
    bias = next(u for u in report.updates if u.key == "1.b")
    assert bias.verdict == "≈0 by construction" and bias.ratio < 1e-9
    assert report.first_nonfinite is None


# the first non-finite tensor -------------------------------------------------------------
def test_an_infinite_weight_is_pointed_at_and_the_trace_names_the_first_tensor() -> None:
    s = session("4:tanh:nobn,4:tanh:nobn,C")
    s.network.blocks[1].dense.W[0, 0] = np.inf
    report = health_check(s)
    nf = report.first_nonfinite
    assert nf is not None
    assert (nf.when, nf.phase, nf.layer, nf.name, nf.inf, nf.nan) == (
        "now", "parameter", 2, "W", 1, 0)
    # in the pass itself, layer 1 is all finite; layer 2's Z is the first to break
    with np.errstate(all="ignore"):
        trace = record_trace(s.network, s.X_train, s.y_train)
    first = first_nonfinite(trace)
    assert (first.phase, first.layer, first.name) == ("forward", 2, "Z")
    assert all(np.isfinite(st.value).all() for st in trace.steps[:first.index])
    A1 = np.tanh(s.X_train @ s.network.blocks[0].dense.W + s.network.blocks[0].dense.b)
    assert np.isfinite(A1).all() and not np.isfinite(A1 @ s.network.blocks[1].dense.W).all()


def test_a_nan_in_the_input_is_the_first_tensor() -> None:
    s = session("4:relu,C")
    s.X_train = s.X_train.copy()
    s.X_train[3, 1] = np.nan
    nf = health_check(s).first_nonfinite
    assert (nf.phase, nf.layer, nf.name, nf.nan) == ("forward", 1, "X", 1)


def test_a_huge_learning_rate_blows_up_after_the_guarded_steps() -> None:
    """The session's NaN guard rolls the bad step back; the health check takes it on a
    copy and names where the first infinity appears."""
    report = run_health(MOONS.with_overrides(arch="8:relu:nobn,C", optimizer="sgd",
                                             lr=1e200), steps=3)
    assert report.stopped is not None and "loss became" in report.stopped
    assert report.steps == 1  # the guard kept the last good step
    nf = report.first_nonfinite
    assert nf is not None and nf.when == "after one more step"
    # W ← W − 1e200·g is still finite (|W| ~ 1e199) and so are layer 1's Z and A; the
    # next product A₁ @ W₂ overflows
    assert (nf.phase, nf.layer, nf.name) == ("forward", 2, "Z")
    big = next(u for u in report.updates if u.key == "2.W")
    assert big.ratio > 1e100 and big.verdict == "large"


def test_health_report_on_a_healthy_run() -> None:
    report = run_health(MOONS.with_overrides(arch="8:sigmoid,6:relu,C"), steps=30)
    assert [lay.activation for lay in report.layers] == ["sigmoid", "relu", "softmax"]
    assert report.layers[0].saturation is not None and report.layers[1].dead_units is not None
    assert report.first_nonfinite is None and report.stopped is None
    assert len(report.updates) == 12  # W, b, gamma, beta of three blocks
    assert all(u.ratio is not None and np.isfinite(u.ratio) for u in report.updates)


# command line ----------------------------------------------------------------------------
def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_table_and_pointer(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "lab", "health", "--samples", "120", "--steps", "20",
                         "--arch", "6:sigmoid,6:relu,C", "--layer", "2")
    assert code == 0, err
    assert "dead ReLUs" in out and "update-to-data ratio" in out
    assert "first non-finite tensor: none" in out
    assert "histograms of layer 2" in out


def test_cli_json_and_a_blow_up(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "lab", "health", "--samples", "120", "--steps", "3",
                         "--arch", "8:relu:nobn,C", "--optimizer", "sgd", "--lr", "1e200",
                         "--json")
    assert code == 0, err
    data = json.loads(out)  # valid JSON: infinities written as null
    assert data["first_nonfinite"]["name"] == "Z" and data["first_nonfinite"]["layer"] == 2
    assert data["stopped"] and len(data["layers"]) == 2
    hist = data["layers"][0]["hists"]["Z"]
    assert len(hist["edges"]) == len(hist["counts"]) + 1
    assert {"key", "ratio", "verdict"} <= set(data["updates"][0])


@pytest.mark.parametrize("argv, words", [
    (["--steps", "-1"], "steps must be at least 0"),
    (["--bins", "1"], "bins must be at least 2"),
    (["--layer", "7", "--steps", "1"], "the network has layers 1–3"),
    (["--optimizer", "nope"], "unknown optimizer 'nope'"),
])
def test_cli_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str],
                                   words: str) -> None:
    code, out, err = run(capsys, "lab", "health", "--samples", "60", *argv)
    assert code == 2 and out == ""
    assert words in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


# the app ---------------------------------------------------------------------------------
async def test_app_lab_draws_the_engine_report() -> None:

    from textual.widgets import Button, Input, Select, Static

    from bntui.ui.app import BntuiApp
    from bntui.ui.form import Note
    from bntui.ui.labs.health import HealthLab, HistPlot

    config = RunConfig(dataset="moons", samples=120, arch="6:sigmoid,5:relu,C")
    app = BntuiApp(config)
    async with app.run_test(size=(120, 40)) as pilot:
        pane, view = await open_lab(app, pilot, HealthLab, "health")
        # what is drawn is the engine's report for the app's config and the lab's 200 steps
        ref = run_health(pane.config, steps=200)
        got = view.result
        assert got.network == ref.network and got.steps == ref.steps == 200
        assert got.layers[0].hists["Z"].counts == ref.layers[0].hists["Z"].counts
        assert [u.ratio for u in got.updates] == [u.ratio for u in ref.updates]
        assert "every tensor" in str(view.query_one("#health-summary", Static).render())
        # the layer picker: layer 2 (relu) shows its three histograms
        view.query_one("#health-layer", Select).value = 2
        await pilot.pause()
        shown = [p for p in view.query(HistPlot) if p.display]
        assert len(shown) == 3
        # the output layer has no A histogram
        view.query_one("#health-layer", Select).value = 3
        await pilot.pause()
        assert [p.id for p in view.query(HistPlot) if p.display] == [
            "health-hist-Z", "health-hist-Zbn"]
        # bad input: an inline message, the last results stay
        view.query_one("#health-steps", Input).value = "-3"
        view.query_one("#health-run", Button).press()
        await pilot.pause()
        assert "steps" in str(view.query_one(Note).render())
        assert view.result is got and view.ready
        # a blow-up: the pointer shows in red
        view.query_one("#health-steps", Input).value = "3"
        view.load(config.with_overrides(arch="8:relu:nobn,C", optimizer="sgd", lr=1e200))
        await wait_until(lambda: pane.current is view and view.ready)
        assert view.result.first_nonfinite is not None
        assert "first non-finite tensor" in str(view.query_one("#health-summary",
                                                                Static).render())
