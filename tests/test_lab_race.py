"""The optimizer race: one start for all, each racer exactly a lone Session, the state
through `inspect` (Adam's m̂ and v̂ by hand), and torch.optim on the race's own network."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lab_helpers import open_lab, wait_until

from bntui.cli import main
from bntui.engine.config import RunConfig
from bntui.engine.errors import BntuiError
from bntui.engine.labs.race import ALL, parse_lrs, parse_optimizers, race
from bntui.engine.optimizers import DEFAULT_LR
from bntui.engine.session import Session
from bntui.numbers import fmt

CFG = RunConfig(dataset="moons", samples=120, arch="6:tanh,5:relu,C", batch_size=16,
                steps=0)


@pytest.fixture(scope="module")
def result():
    return race(CFG, steps=12)


def test_every_racer_starts_from_the_same_loss(result) -> None:
    assert [r.optimizer for r in result.racers] == list(ALL)
    starts = {r.loss[0] for r in result.racers}
    assert len(starts) == 1  # bit for bit
    # and that start is the loss of the untouched network on the first batch
    s = Session(CFG)
    X, y = s.next_batch()
    assert s.network.loss(X, y, training=True) == result.racers[0].loss[0]
    finals = {r.final_loss for r in result.racers}
    assert len(finals) == len(ALL)  # then they part ways
    assert all(len(r.loss) == 12 and r.stopped is None for r in result.racers)


@pytest.mark.parametrize("name", ["sgd", "nesterov", "rmsprop", "adam"])
def test_a_racer_is_that_optimizer_trained_alone(result, name: str) -> None:
    alone = Session(RunConfig(dataset="moons", samples=120, arch="6:tanh,5:relu,C",
                              batch_size=16, optimizer=name, lr=DEFAULT_LR[name]))
    alone.train(steps=12)
    racer = result.racer(name)
    assert racer.loss == alone.history.loss  # bit-exact, batch order included
    assert racer.lr == DEFAULT_LR[name]
    ours, theirs = racer.session.network.params(), alone.network.params()
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)


def test_adam_state_by_hand_after_one_step() -> None:
    """After one step m = (1−β₁)g and v = (1−β₂)g², so m̂ = g and v̂ = g² exactly."""
    res = race(CFG, ["adam", "momentum"], steps=1)
    s = Session(CFG)
    X, y = s.next_batch()
    s.network.loss(X, y, training=True)
    g = s.network.backward(staged=False)
    for key in res.param_keys:
        st = res.racer("adam").state(key)
        assert st["t"] == 1.0
        assert st["bias1"] == pytest.approx(0.1, rel=1e-15)
        assert st["bias2"] == pytest.approx(0.001, rel=1e-12)
        np.testing.assert_allclose(st["m"], 0.1 * g[key], rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(st["m_hat"], g[key], rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(st["v_hat"], g[key] ** 2, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(res.racer("momentum").state(key)["velocity"], g[key],
                                   rtol=1e-12, atol=1e-300)


def test_adam_m_hat_is_m_over_the_bias_factor(result) -> None:
    adam = result.racer("adam")
    for key in ("1.W", "2.gamma", "3.beta"):
        st = adam.state(key)
        t = 12
        assert st["t"] == t
        np.testing.assert_allclose(st["m_hat"], st["m"] / (1 - 0.9**t), rtol=1e-14)
        np.testing.assert_allclose(st["v_hat"], st["v"] / (1 - 0.999**t), rtol=1e-14)
    summary = adam.state_summary("1.W")
    assert summary["m"] == pytest.approx(np.sqrt(np.mean(adam.state("1.W")["m"] ** 2)))
    assert result.racer("sgd").state("1.W") == {}


def test_the_race_follows_torch_optim() -> None:
    torch = pytest.importorskip("torch")
    names = {"nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
             "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.05),
             "adam": lambda p: torch.optim.Adam(p, lr=0.01)}
    res = race(CFG, list(names), steps=3)
    for name, factory in names.items():
        s = Session(CFG)  # the same start; its network computes the gradients
        t_params = {k: torch.tensor(p.copy(), requires_grad=True)
                    for k, p in s.network.params().items()}
        opt = factory(list(t_params.values()))
        for _ in range(3):
            for k, p in s.network.params().items():
                p[...] = t_params[k].detach().numpy()
            X, y = s.next_batch()
            s.network.loss(X, y, training=True)
            grads = s.network.backward(staged=False)
            for k, tp in t_params.items():
                tp.grad = torch.from_numpy(grads[k].copy())
            opt.step()
        final = res.racer(name).session.network.params()
        for k, tp in t_params.items():
            if k.endswith(".b"):
                # a bias before BatchNorm: its gradient is rounding noise, which Adam scales
                # up to a full step, so two correct orders of operations part ways there
                continue
            np.testing.assert_allclose(final[k], tp.detach().numpy(), rtol=1e-10, atol=1e-13,
                                       err_msg=f"{name} {k}")


def test_a_diverging_racer_stops_and_the_others_run_on() -> None:
    res = race(CFG, ["sgd", "adam"], steps=6, lrs={"sgd": 1e200})
    sgd, adam = res.racer("sgd"), res.racer("adam")
    assert sgd.stopped is not None and len(sgd.loss) < 6
    assert adam.stopped is None and len(adam.loss) == 6
    assert [r.optimizer for r in res.ranking()] == ["adam", "sgd"]


def test_parsing_names_and_learning_rates() -> None:
    assert parse_optimizers(None) == list(ALL)
    assert parse_optimizers(" Adam, sgd ") == ["adam", "sgd"]
    assert parse_lrs("sgd=0.5, adam=1e-3") == {"sgd": 0.5, "adam": 0.001}
    for bad, words in (("adam,nope", "unknown optimizer 'nope'"),
                       ("adam,adam", "named twice"), (",", "no optimizer")):
        with pytest.raises(BntuiError, match=words):
            parse_optimizers(bad)
    for bad, words in (("sgd", "name=value"), ("sgd=-1", "positive"), ("sgd=x", "positive")):
        with pytest.raises(BntuiError, match=words):
            parse_lrs(bad)


# command line ----------------------------------------------------------------------------
def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "lab", "race", "--samples", "120", "--steps", "10",
                         "--optimizers", "adam,momentum", "--param", "2.W")
    assert code == 0, err
    assert "update" in out and "rank" in out
    assert "optimizer state of 2.W" in out and "velocity rms" in out and "m̂ rms" in out
    assert "1 − β₁ᵗ" in out


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "lab", "race", "--samples", "120", "--steps", "5",
                         "--optimizers", "sgd,adam", "--lrs", "sgd=0.2", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [r["optimizer"] for r in data["racers"]] == ["sgd", "adam"]
    assert data["racers"][0]["lr"] == 0.2 and data["racers"][1]["lr"] == DEFAULT_LR["adam"]
    assert data["racers"][0]["loss"][0] == data["racers"][1]["loss"][0]
    assert data["param"] == "1.W" and set(data["ranking"]) == {"sgd", "adam"}
    st = data["state"]["adam"]
    assert {"m", "v", "m_hat", "v_hat", "bias1", "bias2", "t"} <= set(st)
    assert np.allclose(np.array(st["m_hat"]), np.array(st["m"]) / st["bias1"])


@pytest.mark.parametrize("argv, words", [
    (["--optimizers", "adam,rmsprp"], "unknown optimizer 'rmsprp'"),
    (["--lrs", "sgd=0"], "learning rate must be a positive"),
    (["--lrs", "sgd=0.1", "--optimizers", "adam"], "not in the race"),
    (["--param", "9.W", "--steps", "1"], "--param 9.W: not a parameter"),
    (["--every", "0"], "every must be at least 1"),
    (["--lr", "-2"], "learning rate must be a positive"),
])
def test_cli_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str],
                                   words: str) -> None:
    code, out, err = run(capsys, "lab", "race", "--samples", "60", *argv)
    assert code == 2 and out == ""
    assert words in err and len(err.strip().splitlines()) == 1


# the app ---------------------------------------------------------------------------------
async def test_app_lab_races_and_inspects() -> None:

    from textual.widgets import Button, Input, Select, Static

    from bntui.ui.app import BntuiApp
    from bntui.ui.form import Note
    from bntui.ui.labs.race import RaceLab

    app = BntuiApp(RunConfig(dataset="moons", samples=120, arch="6:tanh,C"))
    async with app.run_test(size=(120, 40)) as pilot:
        pane, view = await open_lab(
            app, pilot, RaceLab, "race",
            before=lambda v: setattr(v.query_one("#race-steps", Input), "value", "30"))
        ref = race(pane.config, steps=30)
        got = view.result
        assert [r.loss for r in got.racers] == [r.loss for r in ref.racers]
        rank = str(view.query_one("#race-rank", Static).render())
        assert rank.index(ref.ranking()[0].optimizer) < rank.index(ref.ranking()[-1].optimizer)
        # the inspector starts on adam and shows its bias factors and m̂
        state = str(view.query_one("#race-state", Static).render())
        assert "1 − β₁ᵗ" in state and "m̂" in state and "t = 30" in state
        view.query_one("#race-opt", Select).value = "momentum"
        view.query_one("#race-param", Select).value = "2.gamma"
        await pilot.pause()
        state = str(view.query_one("#race-state", Static).render())
        v = got.racer("momentum").state("2.gamma")["velocity"]
        assert "velocity" in state and f"rms {fmt(float(np.sqrt(np.mean(v * v))))}" in state
        view.query_one("#race-opt", Select).value = "sgd"
        await pilot.pause()
        assert "no state" in str(view.query_one("#race-state", Static).render())
        # bad input: one inline line, the race on screen stays
        view.query_one("#race-opts", Input).value = "adam,foo"
        view.query_one("#race-run", Button).press()
        await pilot.pause()
        assert "unknown optimizer 'foo'" in str(view.query_one(Note).render())
        assert view.result is got
        # a smaller race
        view.query_one("#race-opts", Input).value = "sgd,adam"
        view.query_one("#race-run", Button).press()
        await pilot.pause()
        await wait_until(lambda: pane.current is view and view.ready)
        assert [r.optimizer for r in view.result.racers] == ["sgd", "adam"]


def test_cli_counts_updates_without_an_off_by_one(capsys: pytest.CaptureFixture[str]) -> None:
    """The table's rows are updates 1 … steps (the loss each update started from), the
    last row is update `steps`, and the state is after t = steps updates."""
    assert main(["lab", "race", "--steps", "12", "--optimizers", "sgd,adam"]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines() if line[:3].strip().isdigit()
            and len(line.split()) == 3]
    assert rows[0] == "1" and rows[-1] == "12", rows
    assert "update 1 … 12" in out and "after t = 12 updates" in out
