"""Evaluation of a training session: what it reads, when it runs, and in what pieces.

An evaluation is the loss and accuracy of both splits in eval mode (running statistics):
the points of the history's accuracy and validation curves.  On a big dataset one full
evaluation costs hundreds of training steps, so while training it follows the work, not
the data:

* **estimates** at a fixed interval of steps, on a fixed seeded sample of at most
  ``SAMPLE_ROWS`` rows of each split (a split that small is read whole, so on small
  datasets every point is exact);
* the interval is chosen from counted rows, never from the clock, so that one seed gives
  one history on every machine: rows evaluated stay within ``EVAL_SHARE`` of the work of
  the rows trained, a trained row counting as ``TRAIN_ROW_COST`` evaluated rows (forward,
  backward and update against an eval-mode forward; measured on 64:relu,64:relu,C), with
  at most about ``POINTS`` evaluations per call, as before;
* an **exact** evaluation (every row of both splits) when `Session.train` returns;
* every evaluation runs ``CHUNK_ROWS`` rows at a time, so memory stays bounded at any size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bntui.engine.network import Network
from bntui.engine.threads import engine_threads

EVAL_SHARE = 0.1  # evaluated rows, at most this share of the training work
TRAIN_ROW_COST = 2  # one trained row costs about two evaluated rows (measured: 2.2)
POINTS = 100  # at most about this many evaluations in one call to train
SAMPLE_ROWS = 2048  # rows of each split an estimate reads
CHUNK_ROWS = 4096  # rows of one forward pass of an evaluation

Figures = dict[str, float | None]


def interval(steps: int, batch_size: int, rows: int) -> int:
    """Steps between two estimates of `rows` rows, in a call of `steps` steps."""
    per_step = EVAL_SHARE * TRAIN_ROW_COST * batch_size  # evaluated rows a step pays for
    return max(1, steps // POINTS, math.ceil(rows / per_step))


class Interrupted(Exception):
    """An evaluation given up between two chunks because `should_stop()` turned true."""


def loss_and_accuracy(network: Network, X: np.ndarray, y: np.ndarray,
                      chunk: int = CHUNK_ROWS,
                      should_stop: Callable[[], bool] | None = None,
                      ) -> tuple[float | None, float | None]:
    """Mean loss and accuracy of `(X, y)` in eval mode, `chunk` rows at a time (the same
    figures as one pass over all rows, to rounding); (None, None) without rows.
    `should_stop` is asked before every chunk; when it says so, `Interrupted` is raised."""
    n = len(y)
    if n == 0:
        return None, None
    total, hits = 0.0, 0
    for start in range(0, n, chunk):
        if should_stop is not None and should_stop():
            raise Interrupted
        Xc, yc = X[start:start + chunk], y[start:start + chunk]
        logits = network.logits(Xc)  # eval mode, nothing kept: the same numbers as forward
        loss = network.loss_layer.forward(logits, yc)
        if n <= chunk:  # one pass: its own figure, to the last bit
            total = loss
        else:
            total += loss * len(yc)
        hits += int(np.count_nonzero(logits.argmax(axis=1) == yc))
    return (total if n <= chunk else total / n), hits / n


def figures(network: Network, splits: dict[str, tuple[np.ndarray, np.ndarray]],
            should_stop: Callable[[], bool] | None = None) -> Figures:
    """``{split}_loss`` and ``{split}_accuracy`` of every split (`Interrupted` if
    `should_stop()` turns true between two chunks), on the engine's BLAS threads."""
    out: Figures = {}
    with engine_threads(), np.errstate(all="ignore"):  # a diverged network: inf, not a warning
        for split, (X, y) in splits.items():
            out[f"{split}_loss"], out[f"{split}_accuracy"] = loss_and_accuracy(
                network, X, y, should_stop=should_stop)
    return out


@dataclass
class Sample:
    """The rows estimates read: at most `SAMPLE_ROWS` of each split, drawn once."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    exact: bool  # every row of both splits

    @classmethod
    def draw(cls, seed: int, train: tuple[np.ndarray, np.ndarray],
             val: tuple[np.ndarray, np.ndarray], size: int = SAMPLE_ROWS) -> Sample:
        """A seeded sample (its own generator: the batches' stay untouched), rows in
        their order in the set."""
        parts = []
        for k, (X, y) in enumerate((train, val)):
            if len(y) <= size:
                parts.append((X, y))
                continue
            rng = np.random.default_rng([seed, 2, k])
            idx = np.sort(rng.choice(len(y), size=size, replace=False))
            parts.append((X[idx], y[idx]))
        exact = len(train[1]) <= size and len(val[1]) <= size
        return cls(parts[0], parts[1], exact)

    @property
    def rows(self) -> int:
        return len(self.train[1]) + len(self.val[1])

    def splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {"train": self.train, "val": self.val}
