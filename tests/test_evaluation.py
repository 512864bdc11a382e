"""Evaluation follows the work, not the data: the schedule of estimates, the exact
evaluation that ends every call to train, chunks equal to one pass, the history's marks,
and session files written before the marks existed.

Nothing here asserts where a chaotic trajectory ends: only which steps are evaluated,
that figures computed two ways agree, and that one seed gives one history."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bntui.engine import RunConfig, Session
from bntui.engine import evaluation as ev
from bntui.engine.persist import load_session, save_session

ARCH = "16:relu,16:relu,C"


def big(samples: int = 20_000, **changes: object) -> RunConfig:
    """A generated set whose splits (16,000 / 4,000 rows) exceed the estimate's sample."""
    return RunConfig(dataset="blobs", samples=samples, arch=ARCH, batch_size=256,
                     steps=300).with_overrides(**changes)


def assert_exact_figures(session: Session) -> None:
    """The history's last point is exact, at the current step, and is `evaluate()`."""
    h = session.history
    now = session.evaluate()
    assert h.eval_step[-1] == session.step_count and h.eval_exact[-1] is True
    assert h.train_accuracy[-1] == now["train_accuracy"]
    assert h.val_accuracy[-1] == now["val_accuracy"]
    assert h.val_loss[-1] == now["val_loss"]


# the schedule --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("steps", "batch", "rows", "every"),
    [
        (300, 256, 4096, 80),  # 10^5-row CSV: 2 × 2048 sampled rows, 51.2 rows paid a step
        (300, 256, 2000, 40),  # a 2,000-row set, read whole
        (3000, 256, 2000, 40),
        (5000, 1500, 1797, 50),  # seed-digits, full batch: about 100 points, as before
        (30000, 16, 16, 300),  # seed-softmax
        (12, 16, 80, 25),
        (10, 1, 4096, 20480),
    ],
)
def test_interval_follows_the_counted_work(steps: int, batch: int, rows: int,
                                           every: int) -> None:
    assert ev.interval(steps, batch, rows) == every
    # the share of the work that estimates take stays within the budget
    if every > max(1, steps // ev.POINTS):
        assert rows / (every * batch * ev.TRAIN_ROW_COST) <= ev.EVAL_SHARE


@pytest.mark.parametrize(("samples", "batch"), [(20_000, 64), (20_000, 256), (200, None)])
def test_which_steps_are_evaluated_and_marked(samples: int, batch: int | None) -> None:
    s = Session(big(samples, batch_size=batch))
    every = ev.interval(300, s.batch_size, s._eval_sample().rows)
    s.train(steps=300)
    h = s.history
    grid = list(range(every, 300, every))
    assert h.eval_step == [*grid, 300]
    small = s.dataset.n_train <= ev.SAMPLE_ROWS and s.dataset.n_val <= ev.SAMPLE_ROWS
    assert h.eval_exact == [small] * len(grid) + [True]
    assert len(h.eval_step) == len(h.train_accuracy) == len(h.val_accuracy) == len(h.val_loss)
    assert_exact_figures(s)


def test_estimates_read_a_fixed_sample_and_change_no_step() -> None:
    a, b, none = Session(big()), Session(big()), Session(big())
    a.train()
    b.train()
    none.train(eval_every=10**9)
    assert a.history.to_dict() == b.history.to_dict()  # one seed, one history
    assert a.history.loss == none.history.loss  # evaluating never touches training
    sample = a._eval_sample()
    assert len(sample.train[1]) == len(sample.val[1]) == ev.SAMPLE_ROWS and not sample.exact
    assert sample.train[0].shape == (ev.SAMPLE_ROWS, a.dataset.n_features)


def test_explicit_eval_every_wins_and_stays_on_its_grid() -> None:
    s = Session(big(eval_every=7))
    s.train(steps=30)
    assert s.history.eval_step == [7, 14, 21, 28, 30]
    t = Session(big())
    calls = iter(range(10**6))
    t.train(steps=30, eval_every=7, should_stop=lambda: next(calls) == 10)  # pause at 10
    assert t.history.eval_step == [7]  # no point at the pause: the grid, however sliced
    t.train(steps=20, eval_every=7)
    assert t.history.eval_step == [7, 14, 21, 28, 30]


# exact evaluations -----------------------------------------------------------------------
def test_the_end_of_training_is_exact_and_reported() -> None:
    s = Session(big())
    result = s.train(steps=100)
    assert_exact_figures(s)
    assert result.evaluation == s.evaluate()
    assert s.train(steps=0).evaluation is None  # nothing trained, nothing evaluated


def test_a_pause_through_should_stop_is_evaluated_exactly() -> None:
    s = Session(big())
    every = ev.interval(300, s.batch_size, s._eval_sample().rows)
    calls = iter(range(10**6))
    pause = every + 5
    result = s.train(steps=300, should_stop=lambda: next(calls) == pause)
    assert result.steps == pause and s.step_count == pause
    assert s.history.eval_step == [every, pause]
    assert s.history.eval_exact == [False, True]
    assert_exact_figures(s)
    assert result.evaluation == s.evaluate()


def test_a_pause_on_an_estimate_replaces_it() -> None:
    s = Session(big())
    every = ev.interval(300, s.batch_size, s._eval_sample().rows)
    calls = iter(range(10**6))
    s.train(steps=300, should_stop=lambda: next(calls) == every)
    assert s.history.eval_step == [every] and s.history.eval_exact == [True]
    assert_exact_figures(s)


def test_a_nan_stop_is_evaluated_exactly_after_the_parameters_are_put_back() -> None:
    cfg = RunConfig(dataset="moons", samples=8000, arch="16:relu:nobn,C:nobn",
                    optimizer="sgd", lr=1e6, batch_size=64, steps=100)
    s = Session(cfg)
    result = s.train()
    assert result.stopped is not None
    assert_exact_figures(s)
    assert math.isfinite(s.history.val_loss[-1])
    assert result.evaluation == s.evaluate()


# chunks -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_chunked_evaluation_equals_one_pass(dtype: str) -> None:
    s = Session(big(dtype=dtype))
    s.train(steps=40)
    net, X, y = s.network, s.X_train, s.y_train
    logits = net.forward(X, training=False, update_running=False)
    whole_loss = net.loss_layer.forward(logits, y)
    whole_acc = float(np.mean(logits.argmax(axis=1) == y))
    tol = 1e-12 if dtype == "float64" else 1e-5
    for chunk in (1000, 4096, 7, len(y)):
        loss, acc = ev.loss_and_accuracy(net, X, y, chunk)
        assert loss == pytest.approx(whole_loss, rel=tol)
        assert acc == whole_acc
    assert ev.loss_and_accuracy(net, X, y, len(y)) == (whole_loss, whole_acc)
    assert ev.loss_and_accuracy(net, X[:0], y[:0]) == (None, None)


def test_evaluation_is_bounded_by_the_chunk() -> None:
    """What an evaluation leaves in the layers is one chunk's tensors, not a split's."""
    s = Session(big())
    s.evaluate()
    assert all(len(a) <= ev.CHUNK_ROWS for b in s.network.blocks for a in b.cache.values()
               if isinstance(a, np.ndarray) and a.ndim == 2)


def test_an_evaluation_stops_between_chunks_when_asked() -> None:
    """`should_stop` is asked before every chunk; saying so raises Interrupted at once."""
    s = Session(big())
    asked: list[int] = []

    def stop_at_third() -> bool:
        asked.append(1)
        return len(asked) == 3

    with pytest.raises(ev.Interrupted):
        ev.figures(s.network, s.whole_splits(), should_stop=stop_at_third)
    assert len(asked) == 3  # 16,000 training rows are four chunks: it stopped in the middle
    assert ev.figures(s.network, s.whole_splits(), should_stop=lambda: False) == s.evaluate()


def test_an_exact_evaluation_made_on_a_copy_is_recorded_only_at_its_step() -> None:
    """What the app does behind a paused run: evaluate a copy, record it if still current."""
    import copy

    s = Session(big())
    s.train(steps=300, exact_end=False)
    assert s.history.eval_exact[-1] is False
    step, frozen = s.step_count, copy.deepcopy(s.network)
    figures = ev.figures(frozen, s.whole_splits())
    assert s.record_exact(step, figures)
    assert_exact_figures(s)
    assert len(s.history.eval_step) == len(set(s.history.eval_step))  # replaced, not added
    s.train(steps=5, exact_end=False)
    n = len(s.history.eval_step)
    assert not s.record_exact(step, figures)  # stale: the session moved on
    assert len(s.history.eval_step) == n


# the history's marks, in files and in --json ---------------------------------------------
def test_a_session_file_from_before_the_marks_loads(tmp_path: Path) -> None:
    s = Session(big(samples=200))
    s.train(steps=30)
    path = tmp_path / "old.npz"
    save_session(s, path)
    with np.load(path, allow_pickle=False) as archive:
        members = {k: archive[k] for k in archive.files}
    meta = json.loads(str(members["meta"]))
    del meta["history"]["eval_exact"]  # as a file written before it existed
    members["meta"] = np.array(json.dumps(meta))
    np.savez(path, **members)
    old = load_session(path)
    assert old.history.eval_step == s.history.eval_step
    assert old.history.eval_exact == [True] * len(s.history.eval_step)
    old.train(steps=10)
    assert len(old.history.eval_exact) == len(old.history.eval_step)


def test_train_json_history_says_which_points_are_exact(
        capsys: pytest.CaptureFixture[str]) -> None:
    from bntui.cli import main

    code = main(["train", "--dataset", "blobs", "--samples", "20000", "--arch", ARCH,
                 "--batch-size", "64", "--steps", "60", "--json", "--history"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    h = out["history"]
    assert h["eval_step"][-1] == 60 and h["eval_exact"][-1] is True
    assert len(h["eval_exact"]) == len(h["eval_step"])
    assert out["train_accuracy"] == h["train_accuracy"][-1]
    assert out["val_accuracy"] == h["val_accuracy"][-1]
