"""Decision regions and 2-D views of a dataset, for plots.

2-D datasets are drawn in their own plane.  Higher-dimensional ones are drawn in the
plane of their first two principal components (PCA by SVD of the centred training
features): each grid point (u, v) of that plane is mapped back to feature space as
`mean + u·pc1 + v·pc2` and classified there, so the map shows what the network does on
that slice of its input space.

A plot never reads every row of a big dataset: `plane_sample` draws a fixed, seeded
sample of at most `VIEW_ROWS` training rows (every row of a smaller set), computes the
plane from them and projects them once.  The decision regions then cost one eval-mode
pass over the grid, whatever the size of the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bntui.engine.datasets import Dataset
from bntui.engine.network import Network

VIEW_ROWS = 2000  # training rows a plot of the data shows (and its PCA reads), at most


@dataclass
class Plane:
    """A 2-D view: the identity for 2-D data, else the first two principal components."""

    mean: np.ndarray
    axes: np.ndarray  # (2, D): rows are the plane's directions
    labels: tuple[str, str]
    explained: tuple[float, float] | None = None  # share of variance, for PCA

    def project(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) @ self.axes.T

    def lift(self, P: np.ndarray) -> np.ndarray:
        return self.mean + P @ self.axes


def _plane(X: np.ndarray, feature_names: list[str]) -> Plane:
    d = X.shape[1]
    if d == 2:
        names = feature_names[:2] if len(feature_names) >= 2 else ["x1", "x2"]
        return Plane(np.zeros(2), np.eye(2), (names[0], names[1]))
    if d == 1:
        return Plane(np.zeros(1), np.array([[1.0], [0.0]]), (feature_names[0], "—"))
    mean = X.mean(axis=0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    var = s**2
    share = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    return Plane(mean, vt[:2], ("PC1", "PC2"), (float(share[0]), float(share[1])))


def plane_of(dataset: Dataset) -> Plane:
    """The plane of every training row (see `plane_sample` for a bounded one)."""
    return _plane(dataset.X_train, dataset.feature_names)


def sample_rows(n: int, limit: int, seed: int) -> np.ndarray | None:
    """Indices of a seeded sample of `limit` of `n` rows, in their order in the set (its
    own generator, so no other draw moves); None when `n <= limit`: every row."""
    if n <= limit:
        return None
    rng = np.random.default_rng([seed, 3])
    return np.sort(rng.choice(n, size=limit, replace=False))


@dataclass
class PlaneSample:
    """The training rows a plot shows, projected once: a seeded sample of at most
    `VIEW_ROWS` rows (all of a smaller set) and the plane computed from them."""

    plane: Plane
    points: np.ndarray  # (rows, 2) the sampled training rows, projected
    labels: np.ndarray  # (rows,)
    total: int  # training rows in the set

    @property
    def rows(self) -> int:
        return len(self.labels)

    @property
    def whole(self) -> bool:
        """Every training row is shown."""
        return self.rows == self.total


def plane_sample(dataset: Dataset, rows: int = VIEW_ROWS, seed: int = 0) -> PlaneSample:
    """The plane of a seeded sample of at most `rows` training rows, and those rows in it
    (for a set of at most `rows` rows: every row, the same plane as `plane_of`)."""
    idx = sample_rows(dataset.n_train, rows, seed)
    X = dataset.X_train if idx is None else dataset.X_train[idx]
    y = dataset.y_train if idx is None else dataset.y_train[idx]
    plane = _plane(X, dataset.feature_names)
    return PlaneSample(plane, plane.project(X), y, dataset.n_train)


@dataclass
class RegionMap:
    """Predicted class on a grid over the plane, and the (sampled) training points."""

    xs: np.ndarray  # (cols,)
    ys: np.ndarray  # (rows,)
    classes: np.ndarray  # (rows, cols) int
    points: np.ndarray  # (N, 2) projected training points (a sample of a big set)
    labels: np.ndarray  # (N,)
    plane: Plane
    total: int = 0  # training rows the points are drawn from

    @property
    def whole(self) -> bool:
        """The points are every training row."""
        return len(self.labels) >= self.total


def decision_regions(
    network: Network, data: Dataset | PlaneSample, cols: int = 60, rows: int = 30,
    margin: float = 0.1,
) -> RegionMap:
    """Classify a grid over the data's plane in eval mode (no statistics are changed).
    `data`: a dataset (its plane sample is drawn, seed 0) or a `PlaneSample` drawn once
    and reused, so that a map costs the grid alone."""
    view = data if isinstance(data, PlaneSample) else plane_sample(data)
    plane, P = view.plane, view.points
    lo, hi = P.min(axis=0), P.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    lo, hi = lo - margin * span, hi + margin * span
    xs = np.linspace(lo[0], hi[0], cols)
    ys = np.linspace(lo[1], hi[1], rows)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    X = plane.lift(grid).astype(network.dtype)
    with np.errstate(all="ignore"):
        pred = network.predict(X)
    return RegionMap(xs, ys, pred.reshape(rows, cols), P, view.labels, plane, view.total)
