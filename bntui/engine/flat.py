"""Every parameter of a network in one flat buffer, every gradient in another.

Each layer's `params[name]` and `grads[name]` are views into the two buffers, so an
optimizer can update all parameters in one pass over one vector (the same arithmetic,
element by element, as a pass per parameter, so the same numbers), and a snapshot of the
parameters is one copy.  Layers fill their gradient views in place (`out=`).

`valid()` tells whether the views are still the layers' arrays: a layer swapped after the
network was built, an array replaced instead of written into, or a deep copy breaks the
link, and the caller then steps parameter by parameter instead.
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

    def valid(self, named_layers: list[tuple[str, Layer]]) -> bool:
        """Whether every parameter and gradient of these layers is still its view.

        Not so once a layer was swapped or given new arrays after the network was built
        (the bug zoo does this), or after a deep copy (which copies views as separate
        arrays); the caller then takes the slower path, parameter by parameter.
        """
        i = 0
        for prefix, layer in named_layers:
            params, grads = layer.params, layer.grads  # type: ignore[attr-defined]
            for name, p in params.items():
                if i >= len(self.entries):
                    return False
                key, owner, pname, _, _ = self.entries[i]
                if (owner is not layer or pname != name or key != f"{prefix}.{name}"
                        or p is not self._param_views[i]
                        or grads.get(name) is not self._grad_views[i]):
                    return False
                i += 1
        return (i == len(self.entries) and self._param_views[0].base is self.params
                and self._grad_views[0].base is self.grads) if self.entries else False
