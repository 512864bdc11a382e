"""Optimizers, apart from the layers: they read gradients and update parameters in place.

Each follows `torch.optim` (same defaults, same arithmetic order), so a run here and the
same run in PyTorch agree to rounding.  Per parameter (key like "1.W"):

    SGD        w ← w − η·g
    Momentum   v ← μ·v + g;                     w ← w − η·v
    Nesterov   v ← μ·v + g;                     w ← w − η·(g + μ·v)
    Adagrad    G ← G + g²;                      w ← w − η·g / (√G + ε)
    RMSprop    s ← ρ·s + (1−ρ)·g²;              w ← w − η·g / (√s + ε)
    Adam       m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  t ← t + 1
               m̂ = m / (1 − β₁ᵗ);  v̂ = v / (1 − β₂ᵗ);  w ← w − η·m̂ / (√v̂ + ε)

The state (velocity, G, s, m, v, m̂, v̂, the step count t and the bias factors) is readable
through `state` and `inspect(key)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bntui.engine.errors import BntuiError

if TYPE_CHECKING:
    from bntui.engine.flat import FlatParams


def check_lr(lr: float) -> float:
    """A learning rate must be a positive finite number."""
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise BntuiError(f"learning rate must be a positive number (got '{lr}')") from None
    if not math.isfinite(value) or value <= 0:
        raise BntuiError(f"learning rate must be a positive finite number (got {lr})")
    return value


@dataclass(frozen=True)
class SlotSummary:
    """One slot (velocity, m, v, …) of one parameter in a few numbers: its root mean
    square and its entry of largest size, with where it is (a slot's first entries can
    belong to a pixel that is never lit, and stay 0: these say something)."""

    name: str
    shape: tuple[int, ...]
    rms: float
    largest: float  # with its sign
    at: tuple[int, ...]


def slot_summary(name: str, value: np.ndarray) -> SlotSummary:
    v = np.asarray(value, dtype=np.float64)
    if v.size == 0:
        return SlotSummary(name, tuple(v.shape), 0.0, 0.0, ())
    flat = int(np.argmax(np.abs(np.nan_to_num(v, nan=np.inf))))
    at = tuple(int(i) for i in np.unravel_index(flat, v.shape))
    return SlotSummary(name, tuple(v.shape), float(np.sqrt(np.mean(v * v))), float(v[at]), at)


@dataclass
class Optimizer:
    """Base: plain SGD.  `step` updates every parameter in place from its gradient."""

    lr: float = 0.01
    name: ClassVar[str] = "sgd"
    formula: ClassVar[str] = "w ← w − η·g"
    hyper: ClassVar[tuple[str, ...]] = ()
    t: int = 0
    state: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lr = check_lr(self.lr)

    slots: ClassVar[tuple[str, ...]] = ()  # the state kept per parameter

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        for key, p in params.items():
            self._update(key, p, grads[key])

    def step_flat(self, flat: FlatParams) -> None:
        """One step on a network's flat buffers: every parameter in one pass.

        Element by element the same arithmetic as `step`, so the same numbers; the state
        of each parameter stays readable as `state[key][slot]` (views of flat buffers).
        """
        self.t += 1
        bufs = self._flat_slots(flat)
        self._apply(flat.params, flat.grads, bufs)
        self.__dict__["_stepped"] = tuple(bufs.items())  # what `nonfinite` reads

    def nonfinite(self) -> str | None:
        """The first state slot holding a NaN or ±inf ("Adam's v"); None when all are
        finite.  Right after `step_flat`, a sum per flat buffer: cheap enough for every
        step."""
        stepped = self.__dict__.get("_stepped")
        if stepped is not None:  # the flat buffers of the last step_flat
            total = 0.0
            for _, buf in stepped:
                total += np.add.reduce(buf)
            if math.isfinite(total):
                return None
            buffers: Iterable[tuple[str, np.ndarray]] = stepped
        else:
            buffers = ((n, v) for d in self.state.values() for n, v in d.items())
        for name, buf in buffers:
            if not np.isfinite(buf).all():
                return f"{self.name}'s {name}"
        return None

    def _update(self, key: str, p: np.ndarray, g: np.ndarray) -> None:
        self._apply(p, g, {name: self._buf(key, name, p) for name in self.slots})

    def _apply(self, p: np.ndarray, g: np.ndarray, slots: dict[str, np.ndarray]) -> None:
        """The update rule on any arrays: parameter, gradient, state slots."""
        p -= self.lr * g

    def snapshot(self, into: tuple | None = None
                 ) -> tuple[int, dict[str, dict[str, np.ndarray]] | dict[str, np.ndarray]]:
        """A copy of the state, for `restore` (one copy per slot once steps are flat).
        `into`: an earlier flat snapshot whose arrays are reused when they fit."""
        cached = self.__dict__.get("_flat")
        if cached is not None and self._flat_valid(cached):
            bufs = cached[3]
            old = into[1] if into is not None else None
            if (isinstance(old, dict) and old.keys() == bufs.keys()
                    and all(isinstance(v, np.ndarray) and v.shape == bufs[k].shape
                            and v.dtype == bufs[k].dtype for k, v in old.items())):
                for name, buf in bufs.items():
                    np.copyto(old[name], buf)
                return self.t, old
            return self.t, {name: buf.copy() for name, buf in bufs.items()}
        return self.t, {k: {n: v.copy() for n, v in d.items()} for k, d in self.state.items()}

    def restore(self, snap: tuple[int, dict]) -> None:
        """Put back the state of `snapshot()`, in place."""
        t, saved = snap
        self.t = t
        cached = self.__dict__.get("_flat")
        if saved and not isinstance(next(iter(saved.values())), dict):
            assert cached is not None and self._flat_valid(cached)
            for name, buf in cached[3].items():
                buf[...] = saved[name]
            return
        for key, slots in saved.items():
            for name, v in slots.items():
                self.state[key][name][...] = v
        for key in list(self.state):
            if key not in saved:
                del self.state[key]

    def _flat_valid(self, cached: tuple) -> bool:
        """Whether `state[key][slot]` are still the views of the flat buffers (a deep
        copy keeps the objects but makes each view an array of its own)."""
        bufs = cached[3]
        return (cached[1] is self.state and cached[2] == len(self.state)
                and all(self.state.get(k, {}).get(n) is v and v.base is bufs[n]
                        for k, n, v in cached[4]))

    def _flat_slots(self, flat: FlatParams) -> dict[str, np.ndarray]:
        """Flat state buffers whose slices are `state[key][slot]`, rebuilt (keeping the
        values) whenever `state` was replaced or changed from outside."""
        cached = self.__dict__.get("_flat")
        if cached is not None and cached[0] is flat and self._flat_valid(cached):
            return cached[3]
        bufs = {name: np.zeros(flat.size, dtype=flat.dtype) for name in self.slots}
        views = []
        for key, (sl, shape) in flat.layout.items():
            if not self.slots:
                break
            slot = self.state.setdefault(key, {})
            for name in self.slots:
                if name in slot:
                    bufs[name][sl] = np.asarray(slot[name]).ravel()
                view = slot[name] = bufs[name][sl].reshape(shape)
                views.append((key, name, view))
        self.__dict__["_flat"] = (flat, self.state, len(self.state), bufs, views)
        return bufs

    def _buf(self, key: str, name: str, like: np.ndarray) -> np.ndarray:
        slot = self.state.setdefault(key, {})
        if name not in slot:
            slot[name] = np.zeros_like(like)
        return slot[name]

    def hyperparameters(self) -> dict[str, float]:
        return {"lr": self.lr, **{h: getattr(self, h) for h in self.hyper}}

    def inspect(self, key: str) -> dict[str, np.ndarray | float]:
        """The state of one parameter, with derived quantities (m̂, v̂) where they exist."""
        return dict(self.state.get(key, {}))

    def summary(self, key: str) -> tuple[list[SlotSummary], dict[str, float]]:
        """The state of one parameter in a few numbers: each slot's summary, and the
        scalars (bias factors, …) but the step count."""
        state = self.inspect(key)
        slots = [slot_summary(n, v) for n, v in state.items()
                 if isinstance(v, np.ndarray) and v.ndim > 0]
        scalars = {n: float(v) for n, v in state.items()
                   if not (isinstance(v, np.ndarray) and v.ndim > 0) and n != "t"}
        return slots, scalars

    def describe(self) -> str:
        hp = ", ".join(f"{k}={v:g}" for k, v in self.hyperparameters().items())
        return f"{self.name}({hp})"


@dataclass
class SGD(Optimizer):
    pass


@dataclass
class Momentum(Optimizer):
    momentum: float = 0.9
    name: ClassVar[str] = "momentum"
    formula: ClassVar[str] = "v ← μ·v + g;  w ← w − η·v"
    hyper: ClassVar[tuple[str, ...]] = ("momentum",)
    slots: ClassVar[tuple[str, ...]] = ("velocity",)

    def _velocity(self, g: np.ndarray, slots: dict[str, np.ndarray]) -> np.ndarray:
        """v ← μ·v + g, in place."""
        v = slots["velocity"]
        v *= self.momentum
        v += g
        return v

    def _apply(self, p: np.ndarray, g: np.ndarray, slots: dict[str, np.ndarray]) -> None:
        p -= self.lr * self._velocity(g, slots)


@dataclass
class Nesterov(Momentum):
    name: ClassVar[str] = "nesterov"
    formula: ClassVar[str] = "v ← μ·v + g;  w ← w − η·(g + μ·v)"

    def _apply(self, p: np.ndarray, g: np.ndarray, slots: dict[str, np.ndarray]) -> None:
        v = self._velocity(g, slots)
        p -= self.lr * (g + self.momentum * v)


@dataclass
class Adagrad(Optimizer):
    lr: float = 0.01
    eps: float = 1e-10
    name: ClassVar[str] = "adagrad"
    formula: ClassVar[str] = "G ← G + g²;  w ← w − η·g / (√G + ε)"
    hyper: ClassVar[tuple[str, ...]] = ("eps",)
    slots: ClassVar[tuple[str, ...]] = ("G",)

    def _apply(self, p: np.ndarray, g: np.ndarray, slots: dict[str, np.ndarray]) -> None:
        G = slots["G"]
        G += g * g
        p -= self.lr * g / (np.sqrt(G) + self.eps)


@dataclass
class RMSprop(Optimizer):
    lr: float = 0.01
    rho: float = 0.99
    eps: float = 1e-8
    name: ClassVar[str] = "rmsprop"
    formula: ClassVar[str] = "s ← ρ·s + (1−ρ)·g²;  w ← w − η·g / (√s + ε)"
    hyper: ClassVar[tuple[str, ...]] = ("rho", "eps")
    slots: ClassVar[tuple[str, ...]] = ("s",)

    def _apply(self, p: np.ndarray, g: np.ndarray, slots: dict[str, np.ndarray]) -> None:
        s = slots["s"]
        s *= self.rho
        s += (1.0 - self.rho) * (g * g)
        p -= self.lr * g / (np.sqrt(s) + self.eps)


@dataclass
class Adam(Optimizer):
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    name: ClassVar[str] = "adam"
    formula: ClassVar[str] = "m̂ = m / (1 − β₁ᵗ);  v̂ = v / (1 − β₂ᵗ);  w ← w − η·m̂ / (√v̂ + ε)"
    hyper: ClassVar[tuple[str, ...]] = ("beta1", "beta2", "eps")

    def bias_factors(self) -> tuple[float, float]:
        """(1 − β₁ᵗ, 1 − β₂ᵗ) at the current step count t."""
        return 1.0 - self.beta1**self.t, 1.0 - self.beta2**self.t

    slots: ClassVar[tuple[str, ...]] = ("m", "v")

    def _apply(self, p: np.ndarray, g: np.ndarray, slots: dict[str, np.ndarray]) -> None:
        m, v = slots["m"], slots["v"]
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        v *= self.beta2
        v += (1.0 - self.beta2) * (g * g)
        bc1, bc2 = self.bias_factors()
        # torch.optim.Adam's order of operations: same value as m̂ / (√v̂ + ε).
        denom = np.sqrt(v) / math.sqrt(bc2)
        denom += self.eps
        p -= (self.lr / bc1) * (m / denom)

    def inspect(self, key: str) -> dict[str, np.ndarray | float]:
        out: dict[str, np.ndarray | float] = dict(self.state.get(key, {}))
        if "m" in out and self.t > 0:
            bc1, bc2 = self.bias_factors()
            out["m_hat"] = out["m"] / bc1
            out["v_hat"] = out["v"] / bc2
            out["bias1"], out["bias2"] = bc1, bc2
        out["t"] = float(self.t)
        return out


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "adam": Adam,
}
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.05,
              "rmsprop": 0.005, "adam": 0.01}


def optimizer_class(name: str) -> type[Optimizer]:
    """The optimizer class of `name`, or one line naming the choices."""
    key = name.strip().lower().replace("-", "_")
    if key not in OPTIMIZERS:
        raise BntuiError(f"unknown optimizer '{name}'; choose one of: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[key]


def make_optimizer(name: str, lr: float | None = None, *, cls: type[Optimizer] | None = None,
                   **hyper: float) -> Optimizer:
    """Build an optimizer by name (`sgd`, `momentum`, `nesterov`, `adagrad`, `rmsprop`,
    `adam`); `cls`, a subclass of that optimizer (a variant of the bug zoo), instead of it."""
    key = optimizer_class(name).name
    if cls is not None and not issubclass(cls, OPTIMIZERS[key]):
        raise BntuiError(f"{cls.__name__} is a variant of {cls.name}, not of {key} "
                         f"(use --optimizer {cls.name})")
    cls = cls if cls is not None else OPTIMIZERS[key]
    allowed = set(cls.hyper)
    for h, value in hyper.items():
        if h not in allowed:
            raise BntuiError(f"optimizer {key} has no hyper-parameter '{h}'")
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise BntuiError(f"{key} {h} must be a finite number ≥ 0 (got {value})")
        if h in ("beta1", "beta2", "rho", "momentum") and value >= 1:
            raise BntuiError(f"{key} {h} must be below 1 (got {value})")
    return cls(lr=DEFAULT_LR[key] if lr is None else lr, **hyper)
