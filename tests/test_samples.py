"""What the app reads of a big dataset is chosen in the engine, bounded and fixed by the
seed: the plots' plane sample (`regions.plane_sample`, `Session.plane_sample`), the
stepper's and the gradient check's batch (`Session.inspection_batch` under
`inspect_rows`: a prefix of the training split, which the split has shuffled), the
evaluation schedule of an open-ended run (`Session.eval_interval`, `exact_end=False`,
`Session.estimate`) and the CSV reader's progress.

Nothing here asserts where a trajectory ends: only which rows are read, how many, and
that one seed gives the same rows.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bntui.engine import RunConfig, Session
from bntui.engine import evaluation as ev
from bntui.engine.csvfile import (
    PROGRESS_ROWS,
    Stopped,
    count_lines,
    read_csv,
    read_csv_precise,
)
from bntui.engine.datasets import QUICK_ROWS, builds_quickly
from bntui.engine.regions import (
    VIEW_ROWS,
    decision_regions,
    plane_of,
    plane_sample,
    sample_rows,
)
from bntui.engine.session import INSPECTION_ROWS, same_dataset

ARCH = "16:relu,C"


def big(samples: int = 20_000, **changes: object) -> RunConfig:
    """A generated set bigger than every sample (16,000 training rows)."""
    return RunConfig(dataset="blobs", samples=samples, arch=ARCH, batch_size=256,
                     steps=50).with_overrides(**changes)


# the plots' sample -------------------------------------------------------------------
def test_sample_rows_is_seeded_sorted_bounded_and_none_for_a_small_set() -> None:
    a, b = sample_rows(10_000, 500, seed=3), sample_rows(10_000, 500, seed=3)
    assert a is not None and np.array_equal(a, b)
    assert len(a) == len(np.unique(a)) == 500 and np.all(np.diff(a) > 0)
    assert a.min() >= 0 and a.max() < 10_000
    assert not np.array_equal(a, sample_rows(10_000, 500, seed=4))
    assert sample_rows(500, 500, seed=3) is None  # every row


def test_plane_sample_of_a_big_set_is_bounded_and_fixed_by_the_seed() -> None:
    session = Session(big())
    ds = session.dataset
    one, same = plane_sample(ds, seed=0), plane_sample(ds, seed=0)
    assert one.rows == VIEW_ROWS and one.total == ds.n_train == 16_000 and not one.whole
    assert np.array_equal(one.points, same.points) and np.array_equal(one.labels, same.labels)
    other = plane_sample(ds, seed=1)
    assert not np.array_equal(one.points, other.points)
    # the points are training rows, projected in the plane of the sample
    idx = sample_rows(ds.n_train, VIEW_ROWS, 0)
    assert idx is not None
    assert np.allclose(one.points, one.plane.project(ds.X_train[idx]), atol=1e-12)
    assert np.array_equal(one.labels, ds.y_train[idx])


def test_plane_sample_of_a_small_set_is_every_row_and_the_whole_plane() -> None:
    session = Session(RunConfig(dataset="iris", arch="8,C"))
    ds = session.dataset
    view = plane_sample(ds)
    assert view.whole and view.rows == ds.n_train
    whole = plane_of(ds)
    assert np.array_equal(view.plane.axes, whole.axes)
    assert np.array_equal(view.points, whole.project(ds.X_train))


def test_the_session_draws_its_plane_sample_once_with_its_seed() -> None:
    session = Session(big(seed=5))
    view = session.plane_sample()
    assert session.plane_sample() is view  # drawn once: a map costs the grid alone
    assert np.array_equal(view.labels, plane_sample(session.dataset, seed=5).labels)
    regions = decision_regions(session.network, view, cols=12, rows=6)
    assert regions.classes.shape == (6, 12)
    assert regions.points is view.points and regions.total == 16_000 and not regions.whole
    # a grid point is classified as the network classifies it
    x = np.array([[regions.xs[4], regions.ys[2]]])
    assert session.network.predict(regions.plane.lift(x))[0] == regions.classes[2, 4]


# the stepper's batch --------------------------------------------------------------------
def test_the_inspection_batch_is_a_prefix_cut_to_inspect_rows() -> None:
    session = Session(replace(big(), batch_size=None))  # full batch: 16,000 rows
    X, y = session.inspection_batch()
    assert len(y) == 16_000  # the command line's batch: the whole batch
    session.inspect_rows = INSPECTION_ROWS
    X, y = session.inspection_batch()
    assert session.inspection_rows == len(y) == len(X) == INSPECTION_ROWS
    assert np.shares_memory(X, session.X_train)  # a view: the first rows, not a copy
    assert np.array_equal(X, session.X_train[:INSPECTION_ROWS])
    assert session.trace().batch_size == INSPECTION_ROWS
    # the split is a seeded shuffle: the prefix is a sample of the whole set, not its head
    again = Session(replace(big(), batch_size=None))
    again.inspect_rows = INSPECTION_ROWS
    assert np.array_equal(again.inspection_batch()[0], X)


def test_a_batch_smaller_than_the_cut_is_shown_whole() -> None:
    session = Session(big())  # batch 256
    session.inspect_rows = INSPECTION_ROWS
    assert session.inspection_rows == 256
    session.inspect_rows = 100
    assert session.inspection_rows == 100
    session.inspect_rows = 1  # BatchNorm needs two rows: never fewer
    assert session.inspection_rows == 2


# the evaluation schedule of an open-ended run ----------------------------------------------
def test_eval_interval_is_the_engine_schedule_of_an_open_ended_run() -> None:
    session = Session(big())
    read, rows = session.eval_rows
    assert (read, rows) == (2 * ev.SAMPLE_ROWS, 20_000)
    assert session.eval_interval() == ev.interval(0, 256, read) == 80


def test_without_exact_end_the_run_ends_on_the_grid_and_estimates_are_marked() -> None:
    session = Session(big())
    every = session.eval_interval()
    session.train(steps=every + 7, eval_every=every, exact_end=False)
    h = session.history
    assert h.eval_step == [every] and h.eval_exact == [False]  # no row-by-row end
    figures = session.estimate()  # what the app records where a run ends
    assert h.eval_step == [every, every + 7] and h.eval_exact == [False, False]
    assert h.train_accuracy[-1] == figures["train_accuracy"]
    # a small set's estimate reads every row: exact
    small = Session(RunConfig(dataset="moons", arch=ARCH))
    small.train(steps=3, eval_every=small.eval_interval(), exact_end=False)
    small.estimate()
    assert small.history.eval_exact[-1] is True
    assert small.history.val_loss[-1] == small.evaluate()["val_loss"]


def test_builds_quickly_tells_made_sets_from_read_ones() -> None:
    """The app builds the first kind at once and loads the second in a worker."""
    assert builds_quickly("seed-toy") and builds_quickly("moons")
    assert builds_quickly("spiral", QUICK_ROWS) and not builds_quickly("spiral", QUICK_ROWS + 1)
    for read in ("big.csv", "digits", "iris", "no-such-set", 3):
        assert not builds_quickly(read)


def test_same_dataset_names_the_fields_a_dataset_is_built_from() -> None:
    a = big()
    assert same_dataset(a, a.with_overrides(arch="8,C", optimizer="sgd", lr=0.1))
    assert not same_dataset(a, a.with_overrides(seed=1))
    assert not same_dataset(a, a.with_overrides(samples=10_000))


# the CSV reader's progress ----------------------------------------------------------------
def _csv(path: Path, rows: int, header: bool = True) -> Path:
    rng = np.random.default_rng(0)
    lines = ["a,b,label"] if header else []
    lines += [f"{x:.3f},{z:.3f},{'yes' if x > 0 else 'no'}"
              for x, z in rng.normal(size=(rows, 2))]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("reader", [read_csv, read_csv_precise])
def test_the_readers_count_their_rows_as_they_go(tmp_path: Path, reader) -> None:
    rows = 2 * PROGRESS_ROWS + 123
    path = _csv(tmp_path / "big.csv", rows)
    seen: list[int] = []
    X, y, *_ = reader(str(path), seen.append)
    assert len(y) == rows
    assert seen == [PROGRESS_ROWS, 2 * PROGRESS_ROWS]  # rising, never past the rows
    plain = reader(str(path))
    assert np.array_equal(plain[0], X) and np.array_equal(plain[1], y)


@pytest.mark.parametrize("reader", [read_csv, read_csv_precise])
def test_progress_can_stop_a_reader(tmp_path: Path, reader) -> None:
    """A load the app no longer waits for stops at its next report (the fast reader
    does not fall back to the precise one)."""
    path = _csv(tmp_path / "big.csv", 2 * PROGRESS_ROWS)
    seen: list[int] = []

    def stop(rows: int) -> None:
        seen.append(rows)
        raise Stopped

    with pytest.raises(Stopped):
        reader(str(path), stop)
    assert seen == [PROGRESS_ROWS]


def test_count_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    for text, lines in (("", 0), ("a,b\n", 1), ("a,b\n1,2", 2), ("a\n\n1\n", 3)):
        path.write_text(text)
        assert count_lines(str(path)) == lines
    assert count_lines(str(tmp_path / "missing.csv")) == 0
    assert count_lines(str(_csv(tmp_path / "b.csv", 10))) == 11
