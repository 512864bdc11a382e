"""The h sweep: a V in both precisions, float32's bottom higher and further right, the
truncation side falling like h², and the centred difference checked on a known function."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lab_helpers import open_lab

from bntui.cli import main
from bntui.engine.config import RunConfig
from bntui.engine.errors import BntuiError
from bntui.engine.labs.hsweep import DEFAULT_ARCH, DEFAULT_HS, centred_difference, h_sweep, parse_hs
from bntui.engine.session import Session

CFG = RunConfig(dataset="moons", samples=80, arch=DEFAULT_ARCH)
DECADES = tuple(10.0 ** -k for k in range(1, 13))


@pytest.fixture(scope="module")
def sweep():
    return h_sweep(CFG, DECADES, samples=16, entries=4)


def test_the_curve_is_a_v_in_both_precisions(sweep) -> None:
    assert sweep.hs == sorted(DECADES, reverse=True)
    for dtype in ("float64", "float32"):
        errs = sweep.errors[dtype]
        _, best = sweep.best(dtype)
        assert errs[0] > 30 * best, dtype  # the largest h: truncation
        assert errs[-1] > 30 * best, dtype  # the smallest h: rounding
        i = errs.index(best)
        assert 0 < i < len(errs) - 1  # the bottom is inside the grid


def test_float32_bottoms_out_higher_and_at_a_larger_h(sweep) -> None:
    h64, e64 = sweep.best("float64")
    h32, e32 = sweep.best("float32")
    assert h32 > h64 and e32 > 1000 * e64
    assert 1e-7 <= h64 <= 1e-4 and e64 < 1e-7
    assert 1e-4 <= h32 <= 1e-1 and e32 < 3e-2
    # where rounding does not matter yet, the two precisions see the same truncation
    assert sweep.errors["float32"][0] == pytest.approx(sweep.errors["float64"][0], rel=1e-3)


def test_truncation_error_falls_like_h_squared(sweep) -> None:
    """Smooth network (tanh, BatchNorm): error ∝ h² on the large-h side."""
    assert sweep.slope("float64", 1e-2, 1e-3) == pytest.approx(2.0, abs=0.3)
    assert sweep.slope("float64", 1e-3, 1e-4) == pytest.approx(2.0, abs=0.3)
    # and the rounding side rises as h shrinks
    assert sweep.slope("float64", 1e-9, 1e-12) < -0.5
    assert not sweep.kinks


def test_centred_difference_of_a_known_loss() -> None:
    """On a network whose loss we can write down, (L(w+h) − L(w−h))/2h agrees with the
    hand derivative to O(h²): a single linear block, no BatchNorm, logits = X @ W + b."""
    s = Session(RunConfig(dataset="moons", samples=40, arch="C:nobn"))
    net, X, y = s.network, s.X_train[:10], s.y_train[:10]
    W, b = net.blocks[0].dense.W, net.blocks[0].dense.b
    logits = X @ W + b
    P = np.exp(logits - logits.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    P[np.arange(10), y] -= 1
    dW = X.T @ P / 10  # softmax + cross-entropy, by hand
    idx = np.arange(W.size)
    for h, tol in ((1e-2, 1e-4), (1e-5, 1e-9)):
        num = centred_difference(net, X, y, "1.W", idx, h)
        np.testing.assert_allclose(num, dW.reshape(-1), atol=tol)
    np.testing.assert_array_equal(W, s.network.params()["1.W"])  # put back exactly


def test_a_kinked_network_is_flagged() -> None:
    sw = h_sweep(CFG.with_overrides(arch="6:relu,C"), (1e-1, 1e-5, 1e-11), samples=8,
                 entries=2, dtypes=("float64",))
    assert sw.kinks and any("kink" in n for n in sw.notes)
    assert set(sw.errors) == {"float64"}


def test_parse_hs() -> None:
    assert parse_hs(None) == DEFAULT_HS and DEFAULT_HS[0] == 0.1 and DEFAULT_HS[-1] == 1e-12
    assert parse_hs("1e-3, 1e-1,1e-2") == (0.1, 0.01, 0.001)
    for bad, words in (("1e-1,x,1e-3", "must be a number"), ("1e-1,0,1e-3", "positive"),
                       ("1e-1,1e-2", "at least 3")):
        with pytest.raises(BntuiError, match=words):
            parse_hs(bad)


# command line ----------------------------------------------------------------------------
def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    hs = "1e-1,1e-3,1e-5,1e-7,1e-9,1e-11"
    code, out, err = run(capsys, "lab", "hsweep", "--samples", "60", "--hs", hs,
                         "--rows", "12", "--entries", "3")
    assert code == 0, err
    assert "error float64" in out and "error float32" in out
    assert out.count("◀ best") == 2 and "best h float64" in out
    assert "8 BN tanh" in out  # the lab's smooth default network
    code, out, err = run(capsys, "lab", "hsweep", "--samples", "60", "--hs", hs,
                         "--rows", "12", "--entries", "3", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["hs"] == [0.1, 1e-3, 1e-5, 1e-7, 1e-9, 1e-11]
    assert len(data["errors"]["float64"]) == len(data["errors"]["float32"]) == 6
    assert data["best"]["float64"]["h"] < data["best"]["float32"]["h"]
    assert data["samples"] == 12


@pytest.mark.parametrize("argv, words", [
    (["--hs", "1e-2,abc,1e-4"], "h must be a number (got 'abc')"),
    (["--hs", "1e-2,-1,1e-4"], "h must be a positive"),
    (["--rows", "1"], "rows must be at least 2"),
    (["--entries", "0"], "entries must be at least 1"),
    (["--dtype", "float16"], "invalid choice"),
    (["--dtype", "float32"], "--dtype does not apply to the h sweep"),
])
def test_cli_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str],
                                   words: str) -> None:
    code, out, err = run(capsys, "lab", "hsweep", "--samples", "60", *argv)
    assert code == 2 and out == ""
    assert words in err and len(err.strip().splitlines()) == 1


# the app ---------------------------------------------------------------------------------
async def test_app_lab_plots_the_sweep() -> None:

    from textual.widgets import Button, Input, Static

    from bntui.ui.app import BntuiApp
    from bntui.ui.form import Note
    from bntui.ui.labs.hsweep import HSweepLab, SweepPlot

    app = BntuiApp(RunConfig(dataset="moons", samples=120))
    async with app.run_test(size=(120, 40)) as pilot:
        pane, view = await open_lab(
            app, pilot, HSweepLab, "hsweep",
            before=lambda v: setattr(v.query_one("#hs-rows", Input), "value", "8"))
        # the lab's own smooth network on the app's dataset
        ref = h_sweep(pane.config.with_overrides(arch=DEFAULT_ARCH), samples=8)
        got = view.result
        assert got.errors == ref.errors and got.hs == list(DEFAULT_HS)
        summary = str(view.query_one("#hs-summary", Static).render())
        assert f"{ref.best('float64')[0]:.1e}" in summary
        assert f"{ref.best('float32')[0]:.1e}" in summary
        assert view.query_one(SweepPlot).size.height >= 10
        # bad input stays inline
        view.query_one("#hs-arch", Input).value = "8:wobble,C"
        view.query_one("#hs-run", Button).press()
        await pilot.pause()
        assert "wobble" in str(view.query_one(Note).render())
        assert view.result is got
