"""Small numerical kernels shared by the layers.

`colsum(x)` sums an (N, D) tensor (or a stack (V, N, D) of them) over its batch axis as a
matrix-vector product with a vector of ones (one BLAS call, about three times faster than
`x.sum(axis=0)` on the shapes the engine trains on; the sum is as accurate, in a
different order).  `coldot(a, b)` gives the per-feature dot products Σᵢ a[i, j]·b[i, j]
(BatchNorm's variance and dγ): on feature-major arrays each is a dot product of two
contiguous columns, `np.vecdot`, about twice as fast as the `einsum` it falls back to.
"""

from __future__ import annotations

import numpy as np

_ONES: dict[tuple[int, str], np.ndarray] = {}


def ones(n: int, dtype: np.dtype) -> np.ndarray:
    """A cached, read-only vector of `n` ones."""
    key = (n, np.dtype(dtype).str)
    v = _ONES.get(key)
    if v is None:
        if len(_ONES) > 64:
            _ONES.clear()
        v = np.ones(n, dtype=dtype)
        v.flags.writeable = False
        _ONES[key] = v
    return v


def colsum(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Σᵢ x[..., i, :]: the sum over the batch axis of an (N, D) array or of a stack
    (V, N, D) of them."""
    if x.dtype.kind != "f" or x.ndim < 2:
        return np.sum(x, axis=-2, out=out)
    return np.matmul(ones(x.shape[-2], x.dtype), x, out=out)


_VECDOT = getattr(np, "vecdot", None)  # NumPy ≥ 2.0


def _batch_contiguous(a: np.ndarray) -> bool:
    """Whether the batch axis (−2) of `a` runs along contiguous memory (feature-major)."""
    return a.ndim >= 2 and (a.strides[-2] == a.itemsize or a.shape[-2] == 1)


def coldot(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Σᵢ a[..., i, :] · b[..., i, :] for two real arrays of the same shape, (N, D) or
    stacks (V, N, D); each feature's dot product is computed on its own, so a block of
    features gives the same numbers as the whole array."""
    if (_VECDOT is not None and a.dtype == b.dtype and a.dtype.kind == "f"
            and _batch_contiguous(a) and _batch_contiguous(b)):
        return _VECDOT(a, b, axis=-2, out=out)
    return np.einsum("...ij,...ij->...j", a, b, out=out)


def rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot products along the last axis of two arrays of the same shape: np.vecdot, or
    einsum before NumPy 2.0."""
    if _VECDOT is not None:
        return _VECDOT(a, b)
    return np.einsum("...n,...n->...", a, b)
