"""Decision regions and 2-D views of a dataset, for plots.

2-D datasets are drawn in their own plane.  Higher-dimensional ones are drawn in the
plane of their first two principal components (PCA by SVD of the centred training
features): each grid point (u, v) of that plane is mapped back to feature space as
`mean + u·pc1 + v·pc2` and classified there, so the map shows what the network does on
that slice of its input space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bntui.engine.datasets import Dataset
from bntui.engine.network import Network


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


def plane_of(dataset: Dataset) -> Plane:
    X = dataset.X_train
    d = X.shape[1]
    if d == 2:
        names = dataset.feature_names[:2] if len(dataset.feature_names) >= 2 else ["x1", "x2"]
        return Plane(np.zeros(2), np.eye(2), (names[0], names[1]))
    if d == 1:
        return Plane(np.zeros(1), np.array([[1.0], [0.0]]), (dataset.feature_names[0], "—"))
    mean = X.mean(axis=0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    var = s**2
    share = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    return Plane(mean, vt[:2], ("PC1", "PC2"), (float(share[0]), float(share[1])))


@dataclass
class RegionMap:
    """Predicted class on a grid over the plane, and the training points projected."""

    xs: np.ndarray  # (cols,)
    ys: np.ndarray  # (rows,)
    classes: np.ndarray  # (rows, cols) int
    points: np.ndarray  # (N, 2) projected training points
    labels: np.ndarray  # (N,)
    plane: Plane


def decision_regions(
    network: Network, dataset: Dataset, cols: int = 60, rows: int = 30, margin: float = 0.1
) -> RegionMap:
    """Classify a grid over the data's plane in eval mode (no statistics are changed)."""
    plane = plane_of(dataset)
    P = plane.project(dataset.X_train)
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
    return RegionMap(xs, ys, pred.reshape(rows, cols), P, dataset.y_train, plane)
