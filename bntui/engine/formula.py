"""The records' formulas as arithmetic: one entry of a tensor recomputed from its text.

A node record's formula (`Words.formula`, e.g. `dZ0 = dZnorm / std + dvar · 2 · Z0 / m`)
is the one statement of how a tensor is computed that a learner reads.  This module parses
its right-hand side and evaluates it at one entry, with the numbers of the entries it
reads (`Words.reads`, e.g. `dZnorm[13, 1]`, `std[1]`) plugged in — so the drill-down shows
the formula with numbers and recomputes the entry, and a test can hold every formula's
text to the code that computes it.

The language is the records': numbers; names (γ β ε α are `gamma beta eps alpha`; `m` the
batch size, `D`/`S` the count a per-sample statistic averages, `P[i, yᵢ]` the probability
of the true class, `max` the largest entry of the row of `logits`); `+ − · / @`
(juxtaposition multiplies: `(1/m) Σᵢ Z`); unary `−`; `x²`, `xᵀ` (a vector's transpose is
itself), `√x`, `e^x`, `log x`, `tanh(x)`, `max(0, x)`; the sums `Σᵢ` (over the batch),
`Σⱼ` and `Σⱼ∈g` (over a row's features or a group's), each summing the product that
follows; comparisons `x > 0`, the bracket `[x > 0]` (1 or 0) and `a if c else b`.

A name evaluates to what its `reads` pattern gives at the entry: a number, or a vector
(a column for `:j`, a row for `i:`, a group for `iG`); operations broadcast; a sum reduces
its vector; `@` is a dot product.  A vector left at the end (softmax's row) is read at
the entry's own column.  Each value carries a *scale* — the same arithmetic on absolute
values — so a recomputation can be judged relative to the size of what it added up, not
of a result that cancels to nearly 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from bntui.engine.errors import BntuiError

GREEK = {"γ": "gamma", "β": "beta", "ε": "eps", "α": "alpha", "dγ": "dgamma", "dβ": "dbeta"}
SUMS = {"Σⱼ∈g": "Σⱼ∈g", "Σᵢ": "Σᵢ", "Σⱼ": "Σⱼ"}
_TOKEN = re.compile(r"""
    (?P<sum>Σⱼ∈g|Σᵢ|Σⱼ)
  | (?P<py>P\[i,\s*yᵢ\])
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<op>e\^|[−\-+·*/@()²³ᵀ√>\[\],])
  | (?P<name>d?[γβ]|[A-Za-z_][A-Za-z0-9_]*|[γβεα])
  | (?P<space>\s+)
""", re.VERBOSE)
KEYWORDS = ("if", "else", "log", "tanh", "max")


class FormulaError(BntuiError):
    """A formula the evaluator cannot read (a bug in a record's text)."""


def tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FormulaError(f"cannot read {text[pos:]!r} in the formula {text!r}")
        kind = m.lastgroup
        assert kind is not None
        if kind != "space":
            value = m.group()
            if kind == "name" and value in KEYWORDS:
                kind = "kw"
            if kind == "op" and value == "-":
                value = "−"
            if kind == "op" and value == "*":
                value = "·"
            out.append((kind, value))
        pos = m.end()
    return out


# the syntax tree ---------------------------------------------------------------------
@dataclass(frozen=True)
class Val:
    """A value in evaluation: the number(s), their scale and how they are written."""

    v: np.ndarray
    scale: np.ndarray
    text: str  # with numbers plugged in
    indexed: str  # with the names' entries: dZnorm[13, 1]


Env = Mapping[str, tuple[np.ndarray, str]]  # name → (value at the entry, its label)


def _num(x: np.ndarray | float) -> str:
    """A number or a vector as the substituted formula writes it."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        s = f"{float(a) + 0.0:.6g}".replace("-", "−")
        return f"({s})" if s.startswith("−") else s
    items = [f"{float(t):.4g}".replace("-", "−") for t in a.reshape(-1)[:3]]
    more = f", … ({a.size})" if a.size > 3 else ""
    return "[" + ", ".join(items) + more + "]"


class Node:
    def eval(self, env: Env) -> Val:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Num(Node):
    value: float
    written: str

    def eval(self, env: Env) -> Val:
        v = np.asarray(self.value)
        return Val(v, np.abs(v), self.written, self.written)


@dataclass(frozen=True)
class Name(Node):
    name: str  # the source name (gamma, k, Py, …)
    written: str  # as the formula writes it (γ, D, P[i, yᵢ], …)

    def eval(self, env: Env) -> Val:
        if self.name not in env:
            raise FormulaError(f"the formula reads {self.written}, which its record does "
                               "not list among its inputs")
        value, label = env[self.name]
        v = np.asarray(value, dtype=np.float64)
        return Val(v, np.abs(v), _num(v), label)


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "−", "√", "e^", "log", "tanh", "²", "ᵀ", "[]"
    x: Node

    def eval(self, env: Env) -> Val:
        a = self.x.eval(env)
        with np.errstate(all="ignore"):
            if self.op == "−":
                return Val(-a.v, a.scale, f"−{a.text}", f"−{a.indexed}")
            if self.op == "²":
                return Val(a.v * a.v, a.scale * a.scale, f"{a.text}²", f"{a.indexed}²")
            if self.op == "³":
                return Val(a.v ** 3, a.scale ** 3, f"{a.text}³", f"{a.indexed}³")
            if self.op == "ᵀ":
                return Val(a.v, a.scale, f"{a.text}ᵀ", f"{a.indexed}ᵀ")
            if self.op == "√":
                r = np.sqrt(a.v)
                return Val(r, np.sqrt(a.scale), f"√{a.text}", f"√{a.indexed}")
            if self.op == "e^":
                r = np.exp(a.v)
                return Val(r, np.exp(a.scale) if a.scale.size else r, f"e^{a.text}",
                           f"e^{a.indexed}")
            if self.op == "log":
                r = np.log(a.v)
                return Val(r, np.abs(r) + a.scale / np.abs(a.v), f"log {a.text}",
                           f"log {a.indexed}")
            if self.op == "tanh":
                r = np.tanh(a.v)
                return Val(r, np.abs(r) + a.scale, f"tanh({a.text})", f"tanh({a.indexed})")
            if self.op == "[]":
                r = a.v.astype(np.float64)
                return Val(r, r, f"[{a.text}]", f"[{a.indexed}]")
        raise FormulaError(f"unknown operation {self.op}")


def _wrap(text: str) -> str:
    return text if text.startswith("(") and text.endswith(")") else f"({text})"


@dataclass(frozen=True)
class Paren(Node):
    x: Node

    def eval(self, env: Env) -> Val:
        a = self.x.eval(env)
        return Val(a.v, a.scale, _wrap(a.text), f"({a.indexed})")


@dataclass(frozen=True)
class Binary(Node):
    op: str  # "+", "−", "·", "/", "@", ">"
    a: Node
    b: Node

    def eval(self, env: Env) -> Val:
        x, y = self.a.eval(env), self.b.eval(env)
        op = self.op
        with np.errstate(all="ignore"):
            if op == "+":
                v, s = x.v + y.v, x.scale + y.scale
            elif op == "−":
                v, s = x.v - y.v, x.scale + y.scale
            elif op == "·":
                v, s = x.v * y.v, x.scale * y.scale
            elif op == "/":
                v, s = x.v / y.v, x.scale / np.abs(y.v)
            elif op == "@":
                v, s = np.dot(x.v, y.v), np.dot(x.scale, y.scale)
            elif op == ">":
                v = (x.v > y.v).astype(np.float64)
                s = v
            else:  # pragma: no cover
                raise FormulaError(f"unknown operator {op}")
        return Val(np.asarray(v), np.asarray(s), f"{x.text} {op} {y.text}",
                   f"{x.indexed} {op} {y.indexed}")


@dataclass(frozen=True)
class Sum(Node):
    index: str  # "Σᵢ", "Σⱼ", "Σⱼ∈g"
    x: Node

    def eval(self, env: Env) -> Val:
        a = self.x.eval(env)
        terms = np.atleast_1d(a.v)
        total = np.sum(terms)
        first = " + ".join(_num(t) for t in terms[:3])
        more = f" + … {terms.size} terms" if terms.size > 3 else ""
        text = f"{self.index}({first}{more} = {_num(total)})"
        return Val(np.asarray(total), np.asarray(np.sum(a.scale)), text,
                   f"{self.index} {a.indexed}")


@dataclass(frozen=True)
class Max0(Node):
    """max(0, x)."""

    x: Node

    def eval(self, env: Env) -> Val:
        a = self.x.eval(env)
        return Val(np.maximum(0.0, a.v), a.scale, f"max(0, {a.text})", f"max(0, {a.indexed})")


@dataclass(frozen=True)
class Cond(Node):
    """a if c else b."""

    a: Node
    c: Node
    b: Node

    def eval(self, env: Env) -> Val:
        x, c, y = self.a.eval(env), self.c.eval(env), self.b.eval(env)
        pick = c.v > 0
        return Val(np.where(pick, x.v, y.v), np.where(pick, x.scale, y.scale),
                   f"{x.text} if {c.text} else {y.text}",
                   f"{x.indexed} if {c.indexed} else {y.indexed}")


# the parser: precedence climbing ----------------------------------------------------
class _Parser:
    def __init__(self, text: str, names: Mapping[str, str]) -> None:
        self.text = text
        self.toks = tokens(text)
        self.pos = 0
        self.names = names  # as written → source name

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise FormulaError(f"expected {value or 'more'} in the formula {self.text!r}")
        self.pos += 1
        return tok

    def parse(self) -> Node:
        node = self.cond()
        if self.peek() is not None:
            raise FormulaError(f"cannot read {self.peek()[1]!r} in {self.text!r}")  # type: ignore[index]
        return node

    def cond(self) -> Node:
        a = self.compare()
        if self.peek() == ("kw", "if"):
            self.take()
            c = self.compare()
            self.take("else")
            b = self.cond()
            return Cond(a, c, b)
        return a

    def compare(self) -> Node:
        a = self.additive()
        if self.peek() == ("op", ">"):
            self.take()
            return Binary(">", a, self.additive())
        return a

    def additive(self) -> Node:
        a = self.product()
        while self.peek() in (("op", "+"), ("op", "−")):
            op = self.take()[1]
            a = Binary(op, a, self.product())
        return a

    def _starts_atom(self) -> bool:
        tok = self.peek()
        if tok is None:
            return False
        kind, value = tok
        return (kind in ("num", "name", "py", "sum") or value in ("(", "√", "e^", "[")
                or (kind == "kw" and value in ("log", "tanh", "max")))

    def product(self) -> Node:
        a = self.unary()
        while True:
            tok = self.peek()
            if tok in (("op", "·"), ("op", "/"), ("op", "@")):
                op = self.take()[1]
                a = Binary(op, a, self.unary())
            elif self._starts_atom():  # juxtaposition: (1/m) Σᵢ Z
                a = Binary("·", a, self.unary())
            else:
                return a

    def unary(self) -> Node:
        tok = self.peek()
        if tok == ("op", "−"):
            self.take()
            return Unary("−", self.unary())
        if tok is not None and tok[0] == "sum":
            self.take()
            return Sum(tok[1], self.product())
        if tok == ("kw", "log"):
            self.take()
            return Unary("log", self.unary())
        return self.postfix()

    def postfix(self) -> Node:
        a = self.atom()
        while self.peek() in (("op", "²"), ("op", "³"), ("op", "ᵀ")):
            a = Unary(self.take()[1], a)
        return a

    def atom(self) -> Node:
        kind, value = self.take()
        if kind == "num":
            return Num(float(value), value)
        if kind == "py":
            return Name(self.names.get(value, "Py"), value)
        if kind == "name":
            return Name(self.names.get(value, GREEK.get(value, value)), value)
        if value == "(":
            inner = self.cond()
            self.take(")")
            return Paren(inner)
        if value == "[":
            inner = self.cond()
            self.take("]")
            return Unary("[]", inner)
        if value == "√":
            return Unary("√", self.atom())
        if value == "e^":
            return Unary("e^", self.atom())
        if kind == "kw" and value == "tanh":
            self.take("(")
            inner = self.cond()
            self.take(")")
            return Unary("tanh", inner)
        if kind == "kw" and value == "max":
            if self.peek() == ("op", "("):
                self.take("(")
                self.take("0")
                self.take(",")
                inner = self.cond()
                self.take(")")
                return Max0(inner)
            return Name("max", "max")  # softmax's shift: the row's largest logit
        raise FormulaError(f"cannot read {value!r} in the formula {self.text!r}")


def split(formula: str) -> tuple[str, str]:
    """(left-hand side, right-hand side) of `name = expression`."""
    lhs, sep, rhs = formula.partition(" = ")
    if not sep:
        raise FormulaError(f"the formula {formula!r} has no ' = '")
    return lhs.strip(), rhs.strip()


def parse(expression: str, names: Mapping[str, str] | None = None) -> Node:
    """The syntax tree of a formula's right-hand side; `names` maps a written name to the
    source it reads (`D` → `k`)."""
    return _Parser(expression, names or {}).parse()


@dataclass(frozen=True)
class Result:
    value: float
    scale: float
    substituted: str
    indexed: str


def evaluate(expression: str, env: Env, column: int | None = None,
             names: Mapping[str, str] | None = None) -> Result:
    """The expression's value at one entry, from `env` (written name's source → (value at
    the entry, label)); a vector result is read at `column`."""
    out = parse(expression, names).eval(env)
    v, s = np.asarray(out.v), np.asarray(out.scale)
    if v.ndim:
        if column is None or v.size <= column:
            raise FormulaError(f"{expression!r} gives a vector, not one entry")
        v, s = v.reshape(-1)[column], s.reshape(-1)[column]
    value = float(v)
    return Result(value, float(s) if math.isfinite(float(s)) else abs(value),
                  out.text, out.indexed)


def whole(node: Node, env: Mapping[str, np.ndarray], group: int = 1) -> np.ndarray:
    """The expression over whole tensors (the derivation's check): names are full arrays
    that broadcast (a per-feature vector over the rows; a per-sample statistic spread
    over its group's features), `Σᵢ` sums the batch axis, `Σⱼ`/`Σⱼ∈g` a row's features
    or each group of `group` of them (kept in place, so the sum broadcasts back)."""
    if isinstance(node, Num):
        return np.asarray(node.value)
    if isinstance(node, Name):
        if node.name not in env:
            raise FormulaError(f"the derivation reads {node.written}, which is not given")
        return np.asarray(env[node.name], dtype=np.float64)
    if isinstance(node, Paren):
        return whole(node.x, env, group)
    if isinstance(node, Sum):
        x = whole(node.x, env, group)
        if node.index == "Σᵢ":
            return np.sum(x, axis=-2)
        size = x.shape[-1] if node.index == "Σⱼ" else group
        g = x.reshape(*x.shape[:-1], -1, size)
        return np.broadcast_to(g.sum(axis=-1, keepdims=True), g.shape).reshape(x.shape)
    if isinstance(node, Binary):
        a, b = whole(node.a, env, group), whole(node.b, env, group)
        return {"+": np.add, "−": np.subtract, "·": np.multiply, "/": np.divide,
                "@": np.matmul}[node.op](a, b) if node.op != ">" else (a > b) * 1.0
    if isinstance(node, Unary):
        x = whole(node.x, env, group)
        ops = {"−": np.negative, "²": np.square, "³": lambda t: t ** 3, "√": np.sqrt,
               "e^": np.exp, "log": np.log, "tanh": np.tanh, "ᵀ": np.transpose,
               "[]": lambda t: t * 1.0}
        return ops[node.op](x)
    if isinstance(node, Max0):
        return np.maximum(0.0, whole(node.x, env, group))
    if isinstance(node, Cond):
        return np.where(whole(node.c, env, group) > 0, whole(node.a, env, group),
                        whole(node.b, env, group))
    raise FormulaError(f"cannot evaluate {node!r}")  # pragma: no cover


__all__ = ["FormulaError", "Result", "evaluate", "parse", "split", "tokens", "whole"]
