"""A training session: one dataset, one network, one optimizer, and their history.

`Session` is what the command line and the app drive: it builds everything from a
`RunConfig`, takes optimizer steps (full batch or mini-batches drawn from a seeded
generator), keeps the history of loss and accuracy, records traces and runs gradient
checks on the current batch.  A NaN or infinite loss stops training with a clear message
and puts back the parameters, running statistics and optimizer state of the last good
step.

What a view reads stays bounded on a big dataset: the inspection batch (the stepper's,
the gradient check's) is cut to `inspect_rows` rows when that is set (the app sets
`INSPECTION_ROWS`), plots read `plane_sample()`, and evaluations while training follow
engine/evaluation.py's schedule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bntui.engine import budget, evaluation
from bntui.engine.arch import parse_arch
from bntui.engine.config import RunConfig
from bntui.engine.csvfile import Progress
from bntui.engine.datasets import Dataset, load_dataset
from bntui.engine.errors import BntuiError
from bntui.engine.gradcheck import GradcheckReport, attach_to_trace, gradcheck
from bntui.engine.gradient_sources import step_function
from bntui.engine.network import Network, Parts
from bntui.engine.optimizers import Optimizer, make_optimizer, optimizer_class
from bntui.engine.regions import VIEW_ROWS, PlaneSample, plane_sample
from bntui.engine.threads import engine_threads
from bntui.engine.trace import Trace, record_trace


@dataclass
class History:
    """Loss and accuracy by step; evaluations (eval mode) every few steps.

    `eval_exact[i]` says whether evaluation `i` read every row of both splits, or was an
    estimate on a sample of rows (see engine/evaluation.py); the last one of every call
    to `Session.train` is exact."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    batch_accuracy: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float | None] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    eval_exact: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        # a history saved before estimates existed: every evaluation read every row
        missing = len(self.eval_step) - len(self.eval_exact)
        if missing > 0:
            self.eval_exact.extend([True] * missing)

    def to_dict(self) -> dict[str, list]:
        return {k: list(v) for k, v in self.__dict__.items()}


@dataclass
class Snapshot:
    """The state one training step changes: the flat parameters, the running statistics
    and the optimizer's state."""

    params: np.ndarray
    running: dict[str, np.ndarray]
    optimizer: tuple


@dataclass
class TrainResult:
    steps: int  # optimizer steps taken in this call
    seconds: float  # wall time of the training loop alone
    stopped: str | None = None  # why training stopped early, in one line
    # the exact evaluation (`Session.evaluate`'s figures) that ended the call, if one did
    evaluation: dict[str, float | None] | None = None


INSPECTION_ROWS = 2048  # the app's cut of the inspection batch (`Session.inspect_rows`)
DATASET_FIELDS = ("dataset", "seed", "samples", "noise", "val_fraction", "standardize",
                  "split", "n_train", "classes")  # the RunConfig fields `build_dataset` reads


def build_dataset(cfg: RunConfig, progress: Progress | None = None) -> Dataset:
    """The config's dataset (`progress`: see `load_dataset`)."""
    split = cfg.split
    return load_dataset(
        cfg.dataset, seed=cfg.seed, samples=cfg.samples, noise=cfg.noise,
        val_fraction=cfg.val_fraction, standardize=cfg.standardize, split=split,
        n_train=cfg.n_train, classes=cfg.classes, progress=progress,
    )


def same_dataset(a: RunConfig, b: RunConfig) -> bool:
    """Whether two configs build the same dataset (one can reuse the other's)."""
    return all(getattr(a, f) == getattr(b, f) for f in DATASET_FIELDS)


def build_parts(cfg: RunConfig) -> Parts:
    """The parts of the config's network: the engine's own, or a bug of the zoo's."""
    if cfg.bug is None:
        return Parts()
    from bntui.engine.labs.bugs import get_bug  # the zoo builds sessions: imported late

    return get_bug(cfg.bug).parts


def training_rows(cfg: RunConfig, dataset: Dataset) -> int:
    """The rows of one training batch: the batch size, or the whole training split."""
    n = dataset.n_train
    return n if cfg.batch_size is None or cfg.batch_size >= n else cfg.batch_size


def cost(cfg: RunConfig, dataset: Dataset, entries: int = 16,
         tensors: int = budget.TRAIN_TENSORS) -> budget.Estimate:
    """The memory and time the config's network needs on `dataset` (nothing allocated;
    `entries`, `tensors`: see `budget.estimate`)."""
    return budget.estimate(cfg.arch, dataset.n_features, dataset.n_classes,
                           training_rows(cfg, dataset), dtype=cfg.dtype,
                           optimizer_slots=len(optimizer_class(cfg.optimizer).slots),
                           entries=entries, tensors=tensors, gradients=cfg.gradients)


def least_cost(cfg: RunConfig) -> budget.Estimate:
    """`cost` without loading the dataset: its shape as `least_shape` knows it (exact for
    the built-in sets, a lower bound for a CSV file), for refusing a network that cannot
    fit before the app or `serve` starts."""
    from bntui.engine.datasets import least_shape

    features, classes, rows = least_shape(cfg.dataset, samples=cfg.samples, noise=cfg.noise,
                                          classes=cfg.classes)
    fraction = cfg.val_fraction if cfg.val_fraction is not None else 0.2
    n_train = cfg.n_train or max(2, rows - round(fraction * rows))
    batch = n_train if cfg.batch_size is None else min(cfg.batch_size, n_train)
    return budget.estimate(cfg.arch, features, classes, batch, dtype=cfg.dtype,
                           optimizer_slots=len(optimizer_class(cfg.optimizer).slots),
                           gradients=cfg.gradients)


def build_network(cfg: RunConfig, dataset: Dataset, parts: Parts | None = None) -> Network:
    """The config's network for `dataset`; refused in one line if it cannot fit in the
    memory this machine has (`budget`), before anything is allocated."""
    est = cost(cfg, dataset)
    if not est.fits:
        raise BntuiError(est.refusal())
    arch = parse_arch(cfg.arch)
    dtype = np.float32 if cfg.dtype == "float32" else np.float64
    return Network.build(
        arch, dataset.n_features, dataset.n_classes, np.random.default_rng(cfg.seed),
        bn=cfg.bn, init=cfg.init, bias_init=cfg.bias_init, dtype=dtype,
        parts=parts if parts is not None else build_parts(cfg),
    )


class Session:
    """Everything one learner's run needs, built from a `RunConfig`."""

    def __init__(self, config: RunConfig, dataset: Dataset | None = None) -> None:
        config.validate()
        self.config = config
        self.dataset = dataset if dataset is not None else build_dataset(config)
        parts = build_parts(config)
        self.network = build_network(config, self.dataset, parts)
        self.optimizer: Optimizer = make_optimizer(config.optimizer, config.lr,
                                                   cls=parts.optimizer, **dict(config.hyper))
        dtype = self.network.dtype
        self.X_train = self.dataset.X_train.astype(dtype, copy=False)
        self.y_train = self.dataset.y_train
        self.X_val = self.dataset.X_val.astype(dtype, copy=False)
        self.y_val = self.dataset.y_val
        self.batch_size = training_rows(config, self.dataset)
        self._batch_rng = np.random.default_rng([config.seed, 1])
        self._order: np.ndarray = np.arange(0)
        self._cursor = 0
        self.step_count = 0
        self.epoch = 0
        self.history = History()
        self.stopped: str | None = None
        # the most rows `inspection_batch` gives (None: the whole batch, as the command
        # line has it; the app sets INSPECTION_ROWS)
        self.inspect_rows: int | None = None
        self._sample: evaluation.Sample | None = None
        self._plane: PlaneSample | None = None
        self._exact_figures: dict[str, float | None] | None = None  # of the last exact one

    # batches -------------------------------------------------------------------------
    @property
    def full_batch(self) -> bool:
        return self.batch_size >= self.dataset.n_train

    @property
    def steps_per_epoch(self) -> int:
        n, b = self.dataset.n_train, self.batch_size
        return 1 if self.full_batch else max(1, n // b)

    def batch_state(self) -> tuple[np.ndarray, int, dict]:
        """Where the mini-batch generator stands: the shuffled order, the cursor in it and
        the generator's state (what a saved session keeps)."""
        return self._order, self._cursor, self._batch_rng.bit_generator.state

    def restore_batches(self, order: np.ndarray, cursor: int, rng_state: dict) -> None:
        """Put the mini-batch generator back where `batch_state` said it stood (the
        generator raises on a state that is not its own)."""
        self._batch_rng.bit_generator.state = rng_state
        self._order, self._cursor = order, cursor

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """The next (X, y) batch: the whole set, or the next slice of a seeded shuffle."""
        if self.full_batch:
            return self.X_train, self.y_train
        n, b = self.dataset.n_train, self.batch_size
        # Drop a last slice smaller than b: a batch of 1 cannot be batch-normalised.
        if self._cursor + b > len(self._order):
            self._order = self._batch_rng.permutation(n)
            self._cursor = 0
        idx = self._order[self._cursor:self._cursor + b]
        self._cursor += b
        return self.X_train[idx], self.y_train[idx]

    # training ------------------------------------------------------------------------
    def _snapshot(self, into: Snapshot | None = None) -> Snapshot:
        """What a NaN step must be able to undo: parameters, running statistics and the
        optimizer's state; `into`: the last snapshot, whose arrays are overwritten (only
        the newest is ever restored)."""
        net = self.network
        if into is None:
            running = {k: v.copy() for k, v in net.running_state().items()}
            return Snapshot(net.flat.params.copy(), running, self.optimizer.snapshot())
        np.copyto(into.params, net.flat.params)
        for k, v in net.running_state().items():
            into.running[k][...] = v
        into.optimizer = self.optimizer.snapshot(into=into.optimizer)
        return into

    def _restore(self, snap: Snapshot) -> None:
        self.network.flat.params[...] = snap.params
        self.network.load_running(snap.running)
        self.optimizer.restore(snap.optimizer)

    def train(
        self,
        steps: int | None = None,
        epochs: int | None = None,
        on_step: Callable[[Session], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        eval_every: int | None = None,
        exact_end: bool = True,
    ) -> TrainResult:
        """Take `steps` optimizer steps (or `epochs` passes over the training set).

        The network is evaluated (eval mode) every `eval_every` steps (default: the
        config's, else as engine/evaluation.py's `interval` says), on a sample of rows
        when the splits are large, and on every row when the call returns: after the
        last step, after a non-finite loss, and when `should_stop` pauses it — except
        with an explicit `eval_every`, whose points stay on their grid however the run
        is sliced into calls (the app pauses every 0.1 s; its curves must not depend on
        the clock).  `exact_end=False` leaves out the evaluation of every row at the end
        (the last step is evaluated only if the grid says so): the app, whose runs end
        at a key press, records an `estimate` instead, which costs the same at any size.
        """
        if steps is None and epochs is None:
            steps, epochs = self.config.steps, self.config.epochs
        if epochs is not None:
            if epochs < 0:
                raise BntuiError(f"epochs must be 0 or more (got {epochs})")
            steps = epochs * self.steps_per_epoch
        assert steps is not None
        if steps < 0:
            raise BntuiError(f"steps must be 0 or more (got {steps})")
        explicit = eval_every or self.config.eval_every
        every = explicit or evaluation.interval(steps, self.batch_size,
                                                self._eval_sample().rows)
        with engine_threads():
            t0 = time.perf_counter()
            self.stopped = None
            self._exact_figures = None
            with np.errstate(all="ignore"):  # a diverging run is reported once, below
                taken, eval_time = self._loop(steps, every, on_step, should_stop, exact_end)
            self.epoch = self.step_count // self.steps_per_epoch
            seconds = time.perf_counter() - t0 - eval_time
            h = self.history
            exact = bool(h.eval_step) and h.eval_step[-1] == self.step_count and h.eval_exact[-1]
            if exact_end and (self.stopped is not None or (taken and not exact
                                                            and not explicit)):
                self.evaluate(record=True)  # paused, or parameters put back after a NaN
                exact = True
        return TrainResult(taken, seconds, self.stopped,
                           self._exact_figures if exact else None)

    def _loop(
        self,
        steps: int,
        every: int,
        on_step: Callable[[Session], None] | None,
        should_stop: Callable[[], bool] | None,
        exact_end: bool = True,
    ) -> tuple[int, float]:
        net, opt = self.network, self.optimizer
        step = step_function(net, self.config.gradients)
        snapshot = self._snapshot()
        taken, eval_time = 0, 0.0
        for _ in range(steps):
            if should_stop is not None and should_stop():
                break
            Xb, yb = self.next_batch()
            loss, hits = step(Xb, yb)
            bad = (f"the loss became {loss}" if not math.isfinite(loss)
                   else net.nonfinite_running(quick=True))
            if bad is None:
                snapshot = self._snapshot(into=snapshot)
                opt.step_flat(net.flat)  # every parameter in one pass
                bad = net.nonfinite_params() or opt.nonfinite()
            if bad is not None:
                self._restore(snapshot)
                if bad.startswith("the loss"):
                    what = bad
                else:
                    what = f"{bad} became infinite or NaN"
                self.stopped = (
                    f"training stopped at step {self.step_count + 1}: {what} (learning rate "
                    f"{opt.lr:g} may be too high); the parameters, running statistics and "
                    f"optimizer state of step {self.step_count} were kept"
                )
                break
            self.step_count += 1
            taken += 1
            self.history.step.append(self.step_count)
            self.history.loss.append(loss)
            self.history.batch_accuracy.append(float(hits) / len(yb))
            last = exact_end and taken == steps
            if last or self.step_count % every == 0:
                e0 = time.perf_counter()
                if last:
                    self.evaluate(record=True)
                else:
                    self.estimate()
                eval_time += time.perf_counter() - e0
            if on_step is not None:
                on_step(self)
        return taken, eval_time

    def evaluate(self, record: bool = False) -> dict[str, float | None]:
        """Loss and accuracy on both splits, in eval mode (running statistics): every
        row, a chunk of rows at a time."""
        out = evaluation.figures(self.network, self.whole_splits())
        if record:
            self._record(out, exact=True)
        return out

    def whole_splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every row of both splits: what an exact evaluation reads."""
        return {"train": (self.X_train, self.y_train), "val": (self.X_val, self.y_val)}

    def record_exact(self, step: int, out: dict[str, float | None]) -> bool:
        """Record an exact evaluation made elsewhere (on a copy of the network taken at
        `step`, say, so that the session was not held meanwhile): only if the session is
        still at that step, in place of its estimate there.  True if recorded."""
        if step != self.step_count:
            return False
        self._record(out, exact=True)
        return True

    def _eval_sample(self) -> evaluation.Sample:
        if self._sample is None:
            self._sample = evaluation.Sample.draw(
                self.config.seed, (self.X_train, self.y_train), (self.X_val, self.y_val))
        return self._sample

    def eval_interval(self) -> int:
        """Steps between two estimates in a run of open-ended length (the app's play):
        engine/evaluation.py's `interval` for this batch size and sample, which keeps
        evaluating a small share of the training work at any size of the data."""
        return evaluation.interval(0, self.batch_size, self._eval_sample().rows)

    def estimate(self) -> dict[str, float | None]:
        """An evaluation on the sample, recorded in the history (exact when the sample is
        both whole splits; marked as an estimate otherwise)."""
        sample = self._eval_sample()
        out = evaluation.figures(self.network, sample.splits())
        self._record(out, exact=sample.exact)
        return out

    @property
    def eval_rows(self) -> tuple[int, int]:
        """(rows an estimate reads, rows of both splits)."""
        return self._eval_sample().rows, self.dataset.n_train + self.dataset.n_val

    def _record(self, out: dict[str, float | None], exact: bool) -> None:
        """Append an evaluation to the history; it replaces one of the same step."""
        h = self.history
        if h.eval_step and h.eval_step[-1] == self.step_count:
            for values in (h.eval_step, h.train_accuracy, h.val_accuracy, h.val_loss,
                           h.eval_exact):
                values.pop()
        h.eval_step.append(self.step_count)
        h.train_accuracy.append(float(out["train_accuracy"] or 0.0))
        h.val_accuracy.append(out["val_accuracy"])
        h.val_loss.append(out["val_loss"])
        h.eval_exact.append(exact)
        if exact:
            self._exact_figures = out

    # inspection ----------------------------------------------------------------------
    @property
    def inspection_rows(self) -> int:
        """Rows of the inspection batch: the batch size, cut to `inspect_rows`."""
        m = self.batch_size
        return m if self.inspect_rows is None else min(m, max(2, self.inspect_rows))

    def inspection_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """The batch the stepper, the BatchNorm view and the gradient check look at: the
        first `inspection_rows` rows of the training split — a prefix, not a draw: the
        split is a seeded shuffle (unless asked for "head" or "none"), so the prefix is a
        seeded sample of the set, the same rows at every step, and a view, not a copy."""
        m = self.inspection_rows
        return self.X_train[:m], self.y_train[:m]

    def plane_sample(self) -> PlaneSample:
        """The training rows the plots show and the plane they are drawn in: a sample of
        at most `VIEW_ROWS` rows, seeded by the config's seed, drawn once per session."""
        if self._plane is None:
            self._plane = plane_sample(self.dataset, VIEW_ROWS, self.config.seed)
        return self._plane

    def trace(self, training: bool = True) -> Trace:
        X, y = self.inspection_batch()
        return record_trace(self.network, X, y, training)

    def gradcheck(self, **kwargs: object) -> GradcheckReport:
        X, y = self.inspection_batch()
        return gradcheck(self.network, X, y, **kwargs)  # type: ignore[arg-type]

    def checked_trace(
        self, training: bool = True, **kwargs: object
    ) -> tuple[Trace, GradcheckReport]:
        report = self.gradcheck(training=training, **kwargs)
        trace = self.trace(training)
        attach_to_trace(trace, report)
        return trace, report
