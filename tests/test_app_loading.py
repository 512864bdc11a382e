"""The app on big data (issue 12): the first screen before the data, the data loaded in a
thread worker with its progress, keys pressed meanwhile, a CSV that fails to load, loads
that replace each other; what the views read of a big set (the stepper's batch and the
plots' points, sizes shown); and what a run costs besides its steps (the region maps and
the curves at their own cadence, the curves' points on the engine's schedule).

The loader is held back where a test needs to act while it loads (`HeldLoads`); every
assertion is about counts and states, never about how fast this machine is.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest
from app_helpers import HeldLoads, idle_training, send_key, settle, text, until
from textual.widgets import Input, Select, TabbedContent

from bntui.engine import RunConfig
from bntui.engine.session import INSPECTION_ROWS
from bntui.ui.app import BntuiApp
from bntui.ui.dataset_pane import CSV, DatasetPane
from bntui.ui.form import Note
from bntui.ui.loading_panel import LoadingPanel
from bntui.ui.plots import LossPlot
from bntui.ui.region_view import PlaneView
from bntui.ui.training_pane import CURVES_EVERY, RegionView

SIZE = (120, 40)
ARCH = "16:relu,C"


def big_config(path: Path, **changes: object) -> RunConfig:
    return replace(RunConfig(dataset=str(path), arch=ARCH, batch_size=256), **changes)


# loading ----------------------------------------------------------------------------------
async def test_the_first_screen_comes_before_the_data_and_keys_wait_for_it(
        held: HeldLoads, big_csv: Path) -> None:
    """While the CSV loads, the stepper is on screen with the loading panel and the
    status line saying what loads; the keys that act on the session wait for it and then
    run in order, the others act at once."""
    held.held.add(str(big_csv))
    app = BntuiApp(big_config(big_csv))
    async with app.run_test(size=SIZE) as pilot:
        assert await until(lambda: app.load_status is not None and held.started)
        assert app.session is None
        panel = app.query_one(LoadingPanel)
        assert await until(lambda: panel.display)
        said = text(panel.query_one("#loading-text"))
        assert said.startswith("loading big.csv") and "20,001 lines" in said
        assert text(app.query_one("#status")).startswith("loading big.csv")
        for key in ("n", "n", "t", "2"):
            send_key(app, key)
        assert await until(lambda: app.query_one(TabbedContent).active == "training")
        assert app.index == 0 and app.run_id == 0  # waiting, not lost and not acted on
        held.release()
        await settle(app, pilot)
        await idle_training(app, pilot)
        assert app.session.step_count == 1 and app.index == 2  # n, n, then t: in order
        assert app._waiting == [] and app.load_status is None
        assert not panel.display


async def test_a_csv_that_fails_to_load_is_one_line_and_the_app_is_usable(
        tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text("x1,x2,label\n1,2,0\n3,oops,1\n4,5,0\n")
    app = BntuiApp(RunConfig(dataset=str(broken), arch=ARCH))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.session.config.dataset == "seed-toy"  # the default preset, usable
        panel = app.query_one(LoadingPanel)
        line = text(panel.query_one("#loading-text"))
        assert panel.display and panel.has_class("-error")
        assert line.startswith("✗") and "'oops' is not a number" in line
        assert "opened the seed-softmax preset instead" in line and "\n" not in line
        assert not [n for n in app._notifications if n.severity == "error"]
        await pilot.press("n")  # a key closes the line and does what it does
        assert app.index == 1 and app.load_error == "" and not panel.display


async def test_a_newer_load_replaces_an_older_one(held: HeldLoads, big_csv: Path) -> None:
    """A CSV applied in the Dataset pane loads behind the current session; a dataset
    applied after it wins, and the older load, when it ends, changes nothing."""
    app = BntuiApp(RunConfig(dataset="moons", arch=ARCH))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        held.held.add(str(big_csv))
        app.query_one("#ds-name", Select).value = CSV
        app.query_one("#ds-csv", Input).value = str(big_csv)
        app.query_one(DatasetPane).apply()
        assert await until(lambda: str(big_csv) in held.started)
        assert app.session.config.dataset == "moons"  # the old session, still usable
        await pilot.press("t")
        await idle_training(app, pilot)
        app.query_one("#ds-name", Select).value = "circles"
        app.query_one(DatasetPane).apply()
        assert await until(lambda: app.session.config.dataset == "circles")
        held.release()
        assert await until(lambda: held.go.is_set())
        await pilot.pause(0.3)
        assert app.session.config.dataset == "circles" and app.load_status is None
        assert text(app.query_one(DatasetPane).query_one(Note)).startswith("✓ applied")
        assert "circles" in text(app.query_one("#ds-info"))


async def test_a_change_that_keeps_the_dataset_is_built_at_once() -> None:
    app = BntuiApp(RunConfig(dataset="moons", arch=ARCH))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        old = app.session
        app.load(old.config.with_overrides(arch="8:tanh,C"))
        assert app.session is not old and app.session.dataset is old.dataset
        await pilot.press("r")
        assert app.session.dataset is old.dataset and app.session.step_count == 0


# what the views read of a big set ------------------------------------------------------------
async def test_the_stepper_and_the_plots_read_samples_and_say_so(big_csv: Path) -> None:
    app = BntuiApp(big_config(big_csv))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.trace.batch_size == 256
        assert "batch: 256 of 16,000 rows" in text(app.query_one("#where"))
        await pilot.press("2")
        view = app.query_one(RegionView)
        assert await until(lambda: len(view.labels) == 2000)
        legend = "".join(seg.text for seg in view._lines[-1])
        assert "2,000 of 16,000 rows" in legend
        await pilot.press("3")
        info = text(app.query_one("#ds-info"))
        assert "plots: 2,000 of 16,000 training rows" in info
        assert "first row read as a header (its cell 'x1' is not a number)" in info
        assert len(app.query_one(DatasetPane).query_one(PlaneView).labels) == 2000
        await pilot.press("6", "g")
        assert await until(lambda: app.check is not None, 60)
        await pilot.pause()
        summary = text(app.query_one("#check-summary"))
        assert "the stepper's batch: 256 of 16,000 rows" in summary
    # full batch: the stepper's batch is cut to INSPECTION_ROWS, a prefix of the split
    app = BntuiApp(big_config(big_csv, batch_size=None))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.session.batch_size == 16_000
        assert app.trace.batch_size == INSPECTION_ROWS
        assert f"batch: {INSPECTION_ROWS:,} of 16,000 rows" in text(app.query_one("#where"))


# what a run costs besides its steps ----------------------------------------------------------
async def test_a_run_draws_maps_and_curves_at_their_cadence_and_evaluates_on_the_grid(
        big_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Playing on the training tab: the engine's plane sample is drawn once; the region
    maps and the curves are redrawn at most at their cadence (counted against the time
    the run took, however many steps that was); the curves' points are the engine's
    estimates on its grid of steps, plus one where the run ended."""
    import bntui.engine.session as session_module
    import bntui.ui.state as state_module

    counts = {"plane": 0, "maps": 0, "replots": 0, "shown": 0}

    def counting(name: str, real):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            counts[name] += 1
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(session_module, "plane_sample",
                        counting("plane", session_module.plane_sample))
    monkeypatch.setattr(state_module, "regions_of", counting("maps", state_module.regions_of))
    monkeypatch.setattr(LossPlot, "replot", counting("replots", LossPlot.replot))
    monkeypatch.setattr(RegionView, "show_regions", counting("shown", RegionView.show_regions))
    import time

    app = BntuiApp(big_config(big_csv))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        await pilot.pause(0.3)
        session = app.session
        every = session.eval_interval()
        before = dict(counts)
        t0 = time.monotonic()
        send_key(app, "space")
        assert await until(lambda: session.step_count >= 40 * every, timeout=300)
        send_key(app, "space")
        await idle_training(app, pilot)
        seconds = time.monotonic() - t0
        played = {k: counts[k] - before[k] for k in counts}
        # +3: the map or curves a run starts on, the complete snapshot it ends with, and
        # the one with the exact figures that replace the pause's estimate
        assert played["maps"] <= seconds / 0.5 + 3, (played, seconds)
        assert played["shown"] <= played["maps"] + 1
        assert played["replots"] <= seconds / CURVES_EVERY + 3, (played, seconds)
        assert counts["plane"] == 1  # once per session, by the loader
        h = session.history
        assert h.eval_step[:-1] == [every * k for k in range(1, len(h.eval_step))]
        assert h.eval_step[-1] == session.step_count
        assert not any(h.eval_exact[:-1])  # estimates on 2 × 2,048 of 20,000 rows
        # the pause ends on an estimate too; every row is evaluated behind it
        assert await until(lambda: not app.evaluating and h.eval_exact[-1], timeout=60)
        await pilot.pause(0.05)
        assert h.eval_step[-1] == session.step_count
        status = text(app.query_one("#train-status"))
        assert "train acc ≈" not in status and "estimated on" not in status


async def test_a_pause_on_a_big_set_is_evaluated_exactly_behind_it(
        big_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pause shows the estimate at once and says every row is being evaluated; the next
    run stops that evaluation between two chunks (nothing is recorded); the one after the
    next pause replaces the estimate with the figures of every row at that step."""
    import time

    from bntui.engine import evaluation

    real = evaluation.loss_and_accuracy
    gate = threading.Event()
    interrupted: list[int] = []

    def held(network, X, y, chunk=evaluation.CHUNK_ROWS, should_stop=None):  # type: ignore[no-untyped-def]
        while len(y) > evaluation.SAMPLE_ROWS and not gate.is_set():  # every row: held, as
            # a slow evaluation of a million rows would be (an estimate reads a sample)
            if should_stop is not None and should_stop():
                interrupted.append(1)
                raise evaluation.Interrupted
            time.sleep(0.01)
        return real(network, X, y, chunk, should_stop)

    monkeypatch.setattr(evaluation, "loss_and_accuracy", held)
    app = BntuiApp(big_config(big_csv))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        session = app.session
        h = session.history

        async def play_a_while_then_pause() -> None:
            start = session.step_count
            assert await until(lambda: session.step_count >= start + 3 * session.eval_interval(),
                               60)
            send_key(app, "space")
            await idle_training(app, pilot, runs=app.run_id)
            assert app.evaluating and h.eval_exact[-1] is False
            await pilot.pause(0.2)
            status = text(app.query_one("#train-status"))
            assert "train acc ≈" in status and "every row being evaluated" in status

        send_key(app, "space")
        await play_a_while_then_pause()
        send_key(app, "space")  # play again before the evaluation ends: it stops
        assert await until(lambda: interrupted and not app.evaluating, 20)
        await play_a_while_then_pause()
        gate.set()
        assert await until(lambda: not app.evaluating and h.eval_exact[-1], 60)
        await pilot.pause(0.1)
        monkeypatch.setattr(evaluation, "loss_and_accuracy", real)
        now = session.evaluate()
        assert h.eval_step[-1] == session.step_count
        assert (h.train_accuracy[-1], h.val_accuracy[-1], h.val_loss[-1]) == (
            now["train_accuracy"], now["val_accuracy"], now["val_loss"])
        assert len(interrupted) == 1
        status = text(app.query_one("#train-status"))
        assert f"train acc {100 * now['train_accuracy']:.1f} %" in status
        assert "≈" not in status
