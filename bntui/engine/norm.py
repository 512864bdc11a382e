"""What every normalization layer shares: parameters, the staged pass over its node
records, and the contract the network, the trace and the checks rely on.

A normalization layer (BatchNorm, LayerNorm, GroupNorm, RMSNorm) declares its tensors as
node records (`NODES`, see `bntui.engine.nodes`) beside the small methods that compute
them, names its output (`OUTPUT`: Zbn, Zln, Zgn, Zrms) and its parameters (`PARAMS`), and
gives its compact backward (`compact`).  This base runs the records in order — the staged
pass, every tensor kept in `cache` — so the pass is written once for every kind:

    forward(x, training=…)   the records of the mode, one by one (a node can be replaced,
                             `override`, for the numerical check), running statistics
                             updated by the layer's `update_running` (BatchNorm's only)
    backward(dy, staged=…)   the gradients' records in reverse-mode order (staged), or the
                             layer's compact formula; fills `grads`, returns dZ

A subclass of an engine layer that overrides one of the steps its records name (a bug of
the zoo, say) is not `FUSED`: it trains on its staged pass, never on a fast path that
would skip its change.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bntui.engine.errors import BntuiError
from bntui.engine.nodes import Derived, Node, Words, backward_nodes, forward_nodes

Values = dict[str, np.ndarray]


def steps_of(nodes: tuple[Node, ...], *extra: str) -> tuple[str, ...]:
    """The methods a layer's records name, and `extra` ones: a subclass overriding any
    of them is a variant."""
    return tuple(sorted({w.fn for n in nodes for t in (n.forward, n.backward)
                         for w in t.values() if w is not None and w.fn} | set(extra)))


class NormLayer:
    """The shared part of the normalization layers (see the module docstring)."""

    kind: ClassVar[str] = "norm"  # the trace's layer kind: "batchnorm", "layernorm", …
    title: ClassVar[str] = "Norm"  # how a learner names it: "BatchNorm", "LayerNorm", …
    short: ClassVar[str] = "norm"  # its token in the architecture spec: bn, ln, gn, rms
    OUTPUT: ClassVar[str] = "Zbn"
    PARAMS: ClassVar[tuple[str, ...]] = ("gamma", "beta")
    NODES: ClassVar[tuple[Node, ...]] = ()
    COMPACT: ClassVar[Words | None] = None  # the compact backward, one formula for dZ
    DERIVATION: ClassVar[tuple[Derived, ...]] = ()  # from the staged records to COMPACT
    STEPS: ClassVar[tuple[str, ...]] = ()
    FUSED: ClassVar[bool] = True  # False for a subclass that overrides a step
    # whether `train_forward` returns Znorm and the activation applies γ and β (BatchNorm's
    # fused block), rather than the layer's output
    AFFINE_IN_ACTIVATION: ClassVar[bool] = False
    _engine: ClassVar[type]  # the engine class a variant derives from

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "STEPS" in cls.__dict__:  # an engine layer: it declares its records' steps
            cls._engine = cls
            cls.FUSED = True
        elif "FUSED" not in cls.__dict__:
            engine = cls._engine
            cls.FUSED = all(getattr(cls, s) is getattr(engine, s) for s in engine.STEPS)

    def __init__(self, num_features: int, eps: float,
                 dtype: np.dtype | type = np.float64) -> None:
        if not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise BntuiError(f"{self.title} needs at least 1 feature (got {num_features})")
        if not (np.isfinite(eps) and eps >= 0):
            raise BntuiError(f"{self.title} eps must be a finite number ≥ 0 (got {eps})")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.dtype = np.dtype(dtype)
        self.params: dict[str, np.ndarray] = {
            name: (np.ones if name == "gamma" else np.zeros)(num_features, dtype=self.dtype)
            for name in self.PARAMS}
        self.grads: dict[str, np.ndarray] = {}
        self.cache: Values = {}
        self.training = True
        self._fused: tuple[np.ndarray, ...] | None = None

    # parameters and state ---------------------------------------------------------
    @property
    def gamma(self) -> np.ndarray:
        return self.params["gamma"]

    @gamma.setter
    def gamma(self, value: np.ndarray) -> None:
        self.params["gamma"][...] = value

    @property
    def beta(self) -> np.ndarray:
        return self.params["beta"]

    @beta.setter
    def beta(self, value: np.ndarray) -> None:
        self.params["beta"][...] = value

    def n_params(self) -> int:
        return sum(p.size for p in self.params.values())

    def running_state(self) -> dict[str, np.ndarray]:
        """Statistics kept between batches (BatchNorm's running mean and variance)."""
        return {}

    def layer_values(self, features: slice | None = None) -> Values:
        """The values the records read besides the tensors of the pass (parameters,
        running statistics, ε), for all features or a slice of them."""
        sl = slice(None) if features is None else features
        out = {k: v[sl] for k, v in self.params.items()}
        out.update({k: v[sl] for k, v in self.running_state().items()})
        out["eps"] = np.asarray(self.eps)
        return out

    def mode_keys(self, training: bool) -> tuple[str, ...]:
        """The order in which the records' modes are looked up."""
        return ("train",) if training else ("eval",)

    def context(self) -> dict[str, str]:
        """Fields the records' words name."""
        return {}

    def describe(self) -> str:
        """One line: the layer and its settings (stepper, walk, handouts)."""
        return f"{self.title}({self.num_features}, eps={self.eps:g})"

    def compact_words(self) -> Words | None:
        """The compact backward's formula (the layer's `COMPACT`)."""
        return self.COMPACT

    def derivation(self) -> tuple[Derived, ...]:
        """The steps from the staged records to `compact_words()` (`bntui derive`)."""
        return self.DERIVATION

    def update_running(self, v: Values) -> None:
        """Move running statistics towards this batch's (a layer without any: nothing)."""

    def _check(self, x: np.ndarray, training: bool) -> None:
        if x.ndim < 2 or x.shape[-1] != self.num_features:
            raise BntuiError(
                f"{self.title} expects (N, {self.num_features}) input, got shape {x.shape}")

    # the staged pass: the records, one by one ---------------------------------------
    def nodes_forward(self, v: Values, training: bool,
                      override: dict[str, np.ndarray] | None = None) -> Values:
        """Compute every forward record of this mode into `v` (which holds `Z` and the
        layer values) and return it; `override` replaces named nodes.  Touches no state of
        the layer, so stacks of variants (V, N, D) can go through it from any thread."""
        ov = override or {}
        for node, words in forward_nodes(self.NODES, self.mode_keys(training)):
            v[node.name] = ov[node.name] if node.name in ov else getattr(self, words.fn)(v)
        return v

    def forward(
        self,
        x: np.ndarray,
        training: bool = True,
        *,
        update_running: bool = True,
        override: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Normalise `x` (N, D), keeping every tensor in `cache`; `override` replaces a
        named node (the numerical gradient check perturbs them)."""
        x = np.asarray(x)
        self._check(x, training)
        self.training = training
        self.cache = {}  # let go of the last pass's tensors first (their memory is reused)
        ov = override or {}
        v = self.layer_values()
        v["Z"] = ov.get("Z", x)
        self.nodes_forward(v, training, ov)
        if training and update_running:
            self.update_running(v)
        self.cache = {n.name: v[n.name] for n in self.NODES if n.name in v and n.role != "param"}
        return self.cache[self.OUTPUT]

    def backward(self, dy: np.ndarray, staged: bool = True) -> np.ndarray:
        """Gradient of the input; fills `grads` and the gradients in `cache`.  `staged`:
        node by node (the records); else the compact formula (`compact`)."""
        c = self.cache
        if "Znorm" not in c:
            raise RuntimeError(f"{self.title}.backward called before forward")
        for node in self.NODES:
            c.pop(node.grad_name, None)
        grads = self._grad_buffers(np.result_type(dy, c["Znorm"]))
        out = "d" + self.OUTPUT
        if staged or not self.compact_applies():
            v = {**self.layer_values(), **c, out: dy}
            for node, words in backward_nodes(self.NODES, self.mode_keys(self.training)):
                v[node.grad_name] = getattr(self, words.fn)(v)
            for name in self.PARAMS:
                np.copyto(grads[name], v["d" + name])
            c.update({n.grad_name: v[n.grad_name] for n in self.NODES if n.grad_name in v})
            return c["dZ"]
        c[out] = dy
        dZ = c["dZ"] = self.compact(dy, c, grads)
        c.update({"d" + name: grads[name].copy() for name in self.PARAMS})
        return dZ

    def compact_applies(self) -> bool:
        """Whether the compact formula is this mode's backward (BatchNorm's is the
        training-mode one only)."""
        return True

    def compact(self, dy: np.ndarray, c: Values, grads: dict[str, np.ndarray]) -> np.ndarray:
        """dZ in one formula from the forward's tensors `c`, filling `grads` in place."""
        raise NotImplementedError

    def _grad_buffers(self, kind: np.dtype) -> dict[str, np.ndarray]:
        """The parameters' gradients, filled in place (they may be views of the network's
        flat buffer)."""
        g = self.grads
        for name in self.PARAMS:
            shape = self.params[name].shape
            if not (name in g and g[name].dtype == kind and g[name].shape == shape):
                g[name] = np.empty(shape, kind)
        return g

    # the training path: the staged forward without keeping its tensors -------------
    def train_forward(self, Z: np.ndarray, *, update_running: bool = True,
                      keep: bool = True) -> np.ndarray:
        """The output of a training-mode pass through the records, keeping only what
        `train_backward` reads (nothing with `keep=False`): the same numbers as
        `forward`, since the same steps compute them."""
        if not self.FUSED:
            raise RuntimeError(f"{type(self).__name__} overrides a step: train on forward()")
        self._check(Z, True)
        self.training = True
        self.cache = {}
        v = self.layer_values()
        v["Z"] = Z
        self.nodes_forward(v, True)
        if update_running:
            self.update_running(v)
        self._fused = (v,) if keep else None
        return v[self.OUTPUT]

    def train_backward(self, dy: np.ndarray) -> np.ndarray:
        """dZ by the compact formula from the last `train_forward`, the parameters'
        gradients into `grads` — as `backward(staged=False)`."""
        assert self._fused is not None, "train_backward before train_forward"
        (v,) = self._fused
        self._fused = None
        return self.compact(dy, v, self._grad_buffers(np.result_type(dy, v["Znorm"])))

    def infer(self, Z: np.ndarray) -> np.ndarray:
        """The eval-mode output without keeping the intermediates in `cache`."""
        self._check(Z, False)
        v = self.layer_values()
        v["Z"] = Z
        return self.nodes_forward(v, False)[self.OUTPUT]
