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
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from bntui.engine.errors import BntuiError


def check_lr(lr: float) -> float:
    """A learning rate must be a positive finite number."""
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise BntuiError(f"learning rate must be a positive number (got '{lr}')") from None
    if not math.isfinite(value) or value <= 0:
        raise BntuiError(f"learning rate must be a positive finite number (got {lr})")
    return value


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

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        for key, p in params.items():
            self._update(key, p, grads[key])

    def _update(self, key: str, p: np.ndarray, g: np.ndarray) -> None:
        p -= self.lr * g

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

    def _update(self, key: str, p: np.ndarray, g: np.ndarray) -> None:
        v = self._buf(key, "velocity", p)
        v *= self.momentum
        v += g
        p -= self.lr * v


@dataclass
class Nesterov(Momentum):
    name: ClassVar[str] = "nesterov"
    formula: ClassVar[str] = "v ← μ·v + g;  w ← w − η·(g + μ·v)"

    def _update(self, key: str, p: np.ndarray, g: np.ndarray) -> None:
        v = self._buf(key, "velocity", p)
        v *= self.momentum
        v += g
        p -= self.lr * (g + self.momentum * v)


@dataclass
class Adagrad(Optimizer):
    lr: float = 0.01
    eps: float = 1e-10
    name: ClassVar[str] = "adagrad"
    formula: ClassVar[str] = "G ← G + g²;  w ← w − η·g / (√G + ε)"
    hyper: ClassVar[tuple[str, ...]] = ("eps",)

    def _update(self, key: str, p: np.ndarray, g: np.ndarray) -> None:
        G = self._buf(key, "G", p)
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

    def _update(self, key: str, p: np.ndarray, g: np.ndarray) -> None:
        s = self._buf(key, "s", p)
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

    def _update(self, key: str, p: np.ndarray, g: np.ndarray) -> None:
        m = self._buf(key, "m", p)
        v = self._buf(key, "v", p)
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


def make_optimizer(name: str, lr: float | None = None, **hyper: float) -> Optimizer:
    """Build an optimizer by name (`sgd`, `momentum`, `nesterov`, `adagrad`, `rmsprop`, `adam`)."""
    key = name.strip().lower().replace("-", "_")
    if key not in OPTIMIZERS:
        raise BntuiError(f"unknown optimizer '{name}'; choose one of: {', '.join(OPTIMIZERS)}")
    cls = OPTIMIZERS[key]
    allowed = set(cls.hyper)
    for h, value in hyper.items():
        if h not in allowed:
            raise BntuiError(f"optimizer {key} has no hyper-parameter '{h}'")
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise BntuiError(f"{key} {h} must be a finite number ≥ 0 (got {value})")
        if h in ("beta1", "beta2", "rho", "momentum") and value >= 1:
            raise BntuiError(f"{key} {h} must be below 1 (got {value})")
    return cls(lr=DEFAULT_LR[key] if lr is None else lr, **hyper)
