"""Element-wise activations, each with its local gradient written beside its forward.

An activation maps the block's `Zbn` (or `Z` without BatchNorm) — `{pre}` in the words —
to `A`; its backward turns `dA` into `dZbn` (or `dZ`).  Each class declares, beside its
code, the formula of its forward and of its local gradient, the entries each reads and
the wrong formulas learners write; `nodes()` turns them into the two node records every
view reads (see `bntui.engine.nodes`).  `kink_at_zero` marks functions whose derivative
jumps at 0: a centred difference whose two sides fall on either side of the jump is
wrong by construction, and the gradient check reports such crossings instead of hiding
them.  `affine_forward` is the fused step of a BatchNorm block (A from Znorm, γ and β).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from bntui.engine.errors import BntuiError
from bntui.engine.nodes import ANY, Node, Reads, Words

# any activation f, as the glossary names it
GENERIC = Words("A = f({pre})", "the activation f, applied element by element")
GENERIC_GRAD = Words("d{pre} = dA · f′({pre})", "through the activation: multiply by its "
                     "local slope")


@dataclass(frozen=True)
class Activation:
    """Base class: identity.  Subclasses override `forward` and `local_grad`."""

    name: str = "identity"
    alpha: float | None = None

    formula: ClassVar[str] = "A = {pre}"
    grad_formula: ClassVar[str] = "d{pre} = dA"
    grad_reads: ClassVar[Reads] = (("dA", "ij"),)
    wrong: ClassVar[tuple[str, ...]] = ()
    grad_wrong: ClassVar[tuple[str, ...]] = ()
    backward_reads_input: ClassVar[bool] = False  # does `backward` read `x`, or only `a`?
    reads: ClassVar[Reads] = (("{pre}", "ij"),)  # what the forward formula reads
    copies: ClassVar[bool] = True  # the identity passes its input on: nothing to work out

    @property
    def kink_at_zero(self) -> bool:
        return False

    def nodes(self) -> tuple[Node, Node]:
        """The records of this activation: its input `{pre}` (whose gradient it computes)
        and its output `A`."""
        pre = Node("{pre}", "the activation's input", "m × D", role="input", backward={
            ANY: Words(self.grad_formula, "through the {label} activation: multiply by its "
                       "local slope", fn="backward", reads=self.grad_reads,
                       wrong=self.grad_wrong, copy=self.copies)})
        out = Node("A", "the activation's output f({pre})", "m × D", role="output", forward={
            ANY: Words(self.formula, "the {label} activation, applied element by element",
                       fn="forward", reads=self.reads, wrong=self.wrong,
                       copy=self.copies)})
        return pre, out

    def affine_forward(self, znorm: np.ndarray, gamma: np.ndarray,
                       beta: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """(Zbn, A) from Znorm: Zbn = Znorm · γ + β then A = f(Zbn), as the staged pass
        computes them; an activation whose backward reads only A may skip Zbn (None)."""
        pre = znorm * gamma
        pre += beta
        return pre, self.forward(pre)

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
    formula: ClassVar[str] = "A = 1 / (1 + e^(−{pre}))"
    grad_formula: ClassVar[str] = "d{pre} = dA · A · (1 − A)"
    grad_reads: ClassVar[Reads] = (("dA", "ij"), ("A", "ij"))
    wrong: ClassVar[tuple[str, ...]] = ("A = 1 / (1 − e^(−{pre}))", "A = 1 / (1 + e^{pre})",
                                        "A = e^(−{pre}) / (1 + e^(−{pre}))")
    grad_wrong: ClassVar[tuple[str, ...]] = ("d{pre} = dA · A", "d{pre} = dA · (1 − A)",
                                             "d{pre} = dA · A · (1 + A)")
    copies: ClassVar[bool] = False

    def forward(self, x: np.ndarray) -> np.ndarray:
        # exp(−x) overflows to inf for x < −709; 1 / (1 + inf) = 0 is the right limit.
        # In place, one buffer: this runs on every (N, D) tensor of every training step.
        with np.errstate(over="ignore"):
            out = np.negative(x)
            np.exp(out, out=out)
            out += 1.0
            return np.reciprocal(out, out=out)

    def backward(self, x: np.ndarray | None, a: np.ndarray, da: np.ndarray) -> np.ndarray:
        d = da * a  # (dA · A) · (1 − A), with one temporary fewer
        d *= 1.0 - a
        return d

    def affine_forward(self, znorm: np.ndarray, gamma: np.ndarray,
                       beta: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """A = 1 / (1 + e^−Zbn) straight from −Zbn = Znorm·(−γ) − β: exactly the staged
        A (negation commutes with rounding), one pass fewer, no Zbn (the backward reads
        only A)."""
        a = znorm * -gamma
        a -= beta
        with np.errstate(over="ignore"):
            np.exp(a, out=a)
        a += 1.0
        return None, np.reciprocal(a, out=a)


@dataclass(frozen=True)
class Tanh(Activation):
    name: str = "tanh"
    formula: ClassVar[str] = "A = tanh({pre})"
    grad_formula: ClassVar[str] = "d{pre} = dA · (1 − A²)"
    grad_reads: ClassVar[Reads] = (("dA", "ij"), ("A", "ij"))
    wrong: ClassVar[tuple[str, ...]] = ("A = tanh(−{pre})", "A = 2 · tanh({pre}) − 1",
                                        "A = (e^{pre} + e^(−{pre})) / (e^{pre} − e^(−{pre}))")
    grad_wrong: ClassVar[tuple[str, ...]] = ("d{pre} = dA · (1 − A)", "d{pre} = dA · A²",
                                             "d{pre} = dA · (1 + A²)")
    copies: ClassVar[bool] = False

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)

    def backward(self, x: np.ndarray, a: np.ndarray, da: np.ndarray) -> np.ndarray:
        return da * (1.0 - a * a)


@dataclass(frozen=True)
class ReLU(Activation):
    name: str = "relu"
    formula: ClassVar[str] = "A = max(0, {pre})"
    grad_formula: ClassVar[str] = "d{pre} = dA · [{pre} > 0]"
    grad_reads: ClassVar[Reads] = (("dA", "ij"), ("{pre}", "ij"))
    backward_reads_input: ClassVar[bool] = True
    copies: ClassVar[bool] = False
    wrong: ClassVar[tuple[str, ...]] = ("A = min(0, {pre})", "A = max(0, −{pre})",
                                        "A = |{pre}|")
    grad_wrong: ClassVar[tuple[str, ...]] = ("d{pre} = dA", "d{pre} = dA · [{pre} < 0]",
                                             "d{pre} = dA · {pre}")

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
    formula: ClassVar[str] = "A = {pre} if {pre} > 0 else α·{pre}"
    grad_formula: ClassVar[str] = "d{pre} = dA · (1 if {pre} > 0 else α)"
    grad_reads: ClassVar[Reads] = (("dA", "ij"), ("{pre}", "ij"), ("alpha", ""))
    reads: ClassVar[Reads] = (("{pre}", "ij"), ("alpha", ""))
    backward_reads_input: ClassVar[bool] = True
    copies: ClassVar[bool] = False
    wrong: ClassVar[tuple[str, ...]] = ("A = {pre} if {pre} > 0 else 0",
                                        "A = α·{pre} if {pre} > 0 else {pre}",
                                        "A = {pre} if {pre} > 0 else −α·{pre}")
    grad_wrong: ClassVar[tuple[str, ...]] = ("d{pre} = dA · (1 if {pre} > 0 else 0)",
                                             "d{pre} = dA · (α if {pre} > 0 else 1)",
                                             "d{pre} = dA · α")

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
    formula: ClassVar[str] = "A = {pre} if {pre} > 0 else α·(e^{pre} − 1)"
    grad_formula: ClassVar[str] = "d{pre} = dA · (1 if {pre} > 0 else A + α)"
    grad_reads: ClassVar[Reads] = (("dA", "ij"), ("{pre}", "ij"), ("A", "ij"), ("alpha", ""))
    reads: ClassVar[Reads] = (("{pre}", "ij"), ("alpha", ""))
    backward_reads_input: ClassVar[bool] = True
    copies: ClassVar[bool] = False
    wrong: ClassVar[tuple[str, ...]] = ("A = {pre} if {pre} > 0 else α·e^{pre}",
                                        "A = {pre} if {pre} > 0 else e^{pre} − α",
                                        "A = α·(e^{pre} − 1)")
    grad_wrong: ClassVar[tuple[str, ...]] = ("d{pre} = dA · (1 if {pre} > 0 else A)",
                                             "d{pre} = dA · (1 if {pre} > 0 else α)",
                                             "d{pre} = dA · (A + α)")

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
