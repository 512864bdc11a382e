"""Element-wise activations, each with its local gradient written beside its forward.

An activation maps the block's `Zbn` (or `Z` without BatchNorm) to `A`; its backward turns
`dA` into `dZbn` (or `dZ`).  `kink_at_zero` marks functions whose derivative jumps at 0:
a centred difference whose two sides fall on either side of the jump is wrong by
construction, and the gradient check reports such crossings instead of hiding them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bntui.engine.errors import BntuiError


@dataclass(frozen=True)
class Activation:
    """Base class: identity.  Subclasses override `forward` and `local_grad`."""

    name: str = "identity"
    alpha: float | None = None

    formula: str = "A = Zbn"
    grad_formula: str = "dZbn = dA"

    @property
    def kink_at_zero(self) -> bool:
        return False

    @property
    def label(self) -> str:
        return self.name if self.alpha is None else f"{self.name}({self.alpha:g})"

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, x: np.ndarray, a: np.ndarray, da: np.ndarray) -> np.ndarray:
        """Gradient with respect to the input `x`, given the output `a` and `dA`."""
        return da


@dataclass(frozen=True)
class Sigmoid(Activation):
    name: str = "sigmoid"
    formula: str = "A = 1 / (1 + e^(−Zbn))"
    grad_formula: str = "dZbn = dA · A · (1 − A)"

    def forward(self, x: np.ndarray) -> np.ndarray:
        # exp(−x) overflows to inf for x < −709; 1 / (1 + inf) = 0 is the right limit.
        # In place, one buffer: this runs on every (N, D) tensor of every training step.
        with np.errstate(over="ignore"):
            out = np.negative(x)
            np.exp(out, out=out)
            out += 1.0
            return np.reciprocal(out, out=out)

    def backward(self, x: np.ndarray, a: np.ndarray, da: np.ndarray) -> np.ndarray:
        d = da * a  # (dA · A) · (1 − A), with one temporary fewer
        d *= 1.0 - a
        return d


@dataclass(frozen=True)
class Tanh(Activation):
    name: str = "tanh"
    formula: str = "A = tanh(Zbn)"
    grad_formula: str = "dZbn = dA · (1 − A²)"

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)

    def backward(self, x: np.ndarray, a: np.ndarray, da: np.ndarray) -> np.ndarray:
        return da * (1.0 - a * a)


@dataclass(frozen=True)
class ReLU(Activation):
    name: str = "relu"
    formula: str = "A = max(0, Zbn)"
    grad_formula: str = "dZbn = dA · [Zbn > 0]"

    @property
    def kink_at_zero(self) -> bool:
        return True

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0)

    def backward(self, x: np.ndarray, a: np.ndarray, da: np.ndarray) -> np.ndarray:
        return da * (x > 0)


@dataclass(frozen=True)
class LeakyReLU(Activation):
    name: str = "leaky_relu"
    alpha: float | None = 0.01
    formula: str = "A = Zbn if Zbn > 0 else α·Zbn"
    grad_formula: str = "dZbn = dA · (1 if Zbn > 0 else α)"

    @property
    def kink_at_zero(self) -> bool:
        return self.alpha != 1.0

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, x, self.alpha * x)

    def backward(self, x: np.ndarray, a: np.ndarray, da: np.ndarray) -> np.ndarray:
        # where, not a float64 mask of slopes: a float32 dA stays float32
        return np.where(x > 0, da, self.alpha * da)


@dataclass(frozen=True)
class ELU(Activation):
    name: str = "elu"
    alpha: float | None = 1.0
    formula: str = "A = Zbn if Zbn > 0 else α·(e^Zbn − 1)"
    grad_formula: str = "dZbn = dA · (1 if Zbn > 0 else A + α)"

    @property
    def kink_at_zero(self) -> bool:
        # The slope from the left at 0 is α; only α = 1 joins the right slope of 1.
        return self.alpha != 1.0

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0.0)))

    def backward(self, x: np.ndarray, a: np.ndarray, da: np.ndarray) -> np.ndarray:
        return da * np.where(x > 0, 1.0, a + self.alpha)


_KINDS: dict[str, type[Activation]] = {
    "identity": Activation,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
}
_ALIASES = {"linear": "identity", "none": "identity", "lrelu": "leaky_relu", "leaky": "leaky_relu",
            "leakyrelu": "leaky_relu", "leaky-relu": "leaky_relu"}

ACTIVATION_NAMES: tuple[str, ...] = tuple(_KINDS)


def canonical_activation(name: str) -> str | None:
    """The canonical name of an activation, or None if `name` is not one."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in _KINDS else None


def make_activation(name: str, alpha: float | None = None) -> Activation:
    """Build an activation by name; `alpha` only for leaky_relu and elu."""
    key = canonical_activation(name)
    if key is None:
        raise BntuiError(
            f"unknown activation '{name}'; choose one of: {', '.join(ACTIVATION_NAMES)}"
        )
    cls = _KINDS[key]
    if alpha is None:
        return cls()
    if key not in ("leaky_relu", "elu"):
        raise BntuiError(f"activation '{key}' takes no parameter (got {alpha:g})")
    if not np.isfinite(alpha) or alpha < 0:
        raise BntuiError(f"alpha of {key} must be a finite number ≥ 0 (got {alpha:g})")
    return cls(alpha=float(alpha))
