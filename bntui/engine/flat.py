"""Every parameter of a network in one flat buffer, every gradient in another.

Each layer's `params[name]` and `grads[name]` are views into the two buffers, so an
optimizer can update all parameters in one pass over one vector (the same arithmetic,
element by element, as a pass per parameter, so the same numbers), and a snapshot of the
parameters is one copy.  Layers fill their gradient views in place (`out=`).

A network's layers never change after it is built, so the views stay its arrays; a deep
copy of a network makes new buffers for the copy (`Network.__deepcopy__`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

Layer = object  # anything with `params` and `grads` dicts of arrays


class FlatParams:
    """The parameters and gradients of `layers` as views into two 1-D buffers."""

    def __init__(self, named_layers: Iterable[tuple[str, Layer]], dtype: np.dtype) -> None:
        self.entries: list[tuple[str, Layer, str, slice, tuple[int, ...]]] = []
        offset = 0
        for prefix, layer in named_layers:
            for name, p in layer.params.items():  # type: ignore[attr-defined]
                sl = slice(offset, offset + p.size)
                self.entries.append((f"{prefix}.{name}", layer, name, sl, p.shape))
                offset += p.size
        self.size = offset
        self.dtype = np.dtype(dtype)
        self.params = np.empty(offset, dtype=self.dtype)
        self.grads = np.zeros(offset, dtype=self.dtype)
        self.layout = {key: (sl, shape) for key, _, _, sl, shape in self.entries}
        self._param_views: list[np.ndarray] = []
        self._grad_views: list[np.ndarray] = []
        for _, layer, name, sl, shape in self.entries:
            self.params[sl] = layer.params[name].ravel()  # type: ignore[attr-defined]
            pv = self.params[sl].reshape(shape)
            gv = self.grads[sl].reshape(shape)
            layer.params[name] = pv  # type: ignore[attr-defined]
            layer.grads[name] = gv  # type: ignore[attr-defined]
            self._param_views.append(pv)
            self._grad_views.append(gv)
