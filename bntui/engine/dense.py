"""Dense (fully connected) layer: `Z = X @ W (+ b)`, batch-first; its node records and code.

Local gradients, declared in `NODES` beside the code computing them:
    dW = Xᵀ @ dZ        db = Σᵢ dZ        dX = dZ @ Wᵀ
`backward` fills `grads` and returns `dX`; it never updates parameters (optimizers do).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bntui.engine.kernels import coldot, colsum
from bntui.engine.nodes import ANY, Node, Words, backward_nodes

INITS = ("uniform", "normal0.01", "he", "xavier")

Values = dict[str, np.ndarray]

_Z_WRONG = ("Z = W @ X{b}", "Z = Xᵀ @ W{b}", "Z = X · W{b}  (element by element)")

NODES: tuple[Node, ...] = (
    Node("X", "the block's input: the data, or the activation of the layer below",
         "m × fan_in", role="input", backward={
             ANY: Words("dX = dZ @ Wᵀ", "the gradient passed down to {below}",
                        fn="grad_input", reads=(("dZ", "i:"), ("W", "j:")),
                        wrong=("dX = Wᵀ @ dZ", "dX = dZ @ W", "dX = Xᵀ @ dZ")),
         }),
    Node("Z", "the Dense output X @ W + b", "m × fan_out", role="output", forward={
        "nobias": Words("Z = X @ W", "each unit's weighted sum of the inputs", fn="affine",
                        reads=(("X", "i:"), ("W", ":j")),
                        wrong=tuple(w.format(b="") for w in _Z_WRONG)),
        ANY: Words("Z = X @ W + b", "each unit's weighted sum of the inputs, plus its bias",
                   fn="affine", reads=(("X", "i:"), ("W", ":j"), ("b", "j")),
                   wrong=tuple(w.format(b=" + b") for w in _Z_WRONG)),
    }),
    Node("W", "the Dense weights", "fan_in × fan_out", role="param", backward={
        ANY: Words("dW = Xᵀ @ dZ", "each weight's gradient: its input times the gradient of "
                   "its output, summed over the batch", fn="grad_weight",
                   reads=(("X", ":i"), ("dZ", ":j")),
                   wrong=("dW = dZ @ Xᵀ", "dW = (1/m) Xᵀ @ dZ", "dW = X @ dZᵀ")),
    }),
    Node("b", "the Dense bias", "fan_out", role="param", step_scale="bias_scale", backward={
        "nobias": None,
        "train-before-bn": Words(
            "db = Σᵢ dZ", "zero up to rounding: BatchNorm subtracts the mean, so a bias "
            "here is wasted", fn="grad_bias", reads=(("dZ", ":j"),), zero=True,
            wrong=("db = (1/m) Σᵢ dZ", "db = dZ", "db = Σᵢ Z")),
        ANY: Words("db = Σᵢ dZ", "the bias is added to every row: its gradient sums dZ over "
                   "the batch", fn="grad_bias", reads=(("dZ", ":j"),),
                   wrong=("db = (1/m) Σᵢ dZ", "db = dZ", "db = Σᵢ Z")),
    }),
)


class Dense:
    """A fully connected layer with weights `W` of shape (fan_in, fan_out).

    `before_bn` (set when the network is built) says that a BatchNorm follows, which
    makes the bias's gradient zero in training mode.
    """

    kind = "dense"
    NODES: ClassVar[tuple[Node, ...]] = NODES

    def __init__(
        self,
        fan_in: int,
        fan_out: int,
        *,
        bias: bool = True,
        rng: np.random.Generator | None = None,
        init: str = "uniform",
        bias_init: str = "uniform",
        dtype: np.dtype | type = np.float64,
        before_bn: bool = False,
        bias_rng: np.random.Generator | None = None,
    ) -> None:
        rng = rng if rng is not None else np.random.default_rng(0)
        self.fan_in, self.fan_out, self.has_bias = fan_in, fan_out, bias
        self.before_bn = before_bn
        limit = 1.0 / np.sqrt(fan_in)
        # Drawn in (fan_out, fan_in) order, as torch.nn.Linear and seed 000 store it, then
        # transposed: the same generator gives the same weights as those layouts.
        shape = (fan_out, fan_in)
        if init == "uniform":  # torch.nn.Linear's default bound, and seed 003's
            W = rng.uniform(-limit, limit, shape).T
        elif init == "normal0.01":  # seed 000: randn · 0.01
            W = rng.standard_normal(shape).T * 0.01
        elif init == "he":
            W = rng.standard_normal(shape).T * np.sqrt(2.0 / fan_in)
        elif init == "xavier":
            W = rng.standard_normal(shape).T * np.sqrt(2.0 / (fan_in + fan_out))
        else:
            raise ValueError(f"unknown init {init!r}; one of {', '.join(INITS)}")
        self.params: dict[str, np.ndarray] = {"W": np.ascontiguousarray(W, dtype=dtype)}
        if bias:
            brng = bias_rng if bias_rng is not None else rng
            if bias_init == "zeros":
                b = np.zeros(fan_out)
            else:
                b = brng.uniform(-limit, limit, fan_out)
            self.params["b"] = b.astype(dtype)
        self.grads: dict[str, np.ndarray] = {}
        self.X: np.ndarray | None = None
        self.cache: Values = {}

    @property
    def W(self) -> np.ndarray:
        return self.params["W"]

    @property
    def b(self) -> np.ndarray | None:
        return self.params.get("b")

    def n_params(self) -> int:
        return sum(p.size for p in self.params.values())

    def layer_values(self) -> Values:
        return dict(self.params)

    def mode_keys(self, training: bool) -> tuple[str, ...]:
        keys = [] if self.has_bias else ["nobias"]
        if training and self.before_bn:
            keys.append("train-before-bn")
        return (*keys, "train" if training else "eval")

    # the steps the records name -----------------------------------------------------
    def affine(self, v: Values) -> np.ndarray:
        """Z = X W + b, stored feature-major: an (N, D) view of a contiguous (D, N) array
        (for a stack of inputs (V, N, D), each (N, D) the same way).

        Every tensor after it inherits that layout (NumPy keeps an input's memory order),
        so the per-feature work of the bias, BatchNorm and their gradients runs along
        contiguous columns of N values instead of N short rows of D: about twice as fast
        for D = 10 or 16.  Indexing, shapes and values are the same as row-major."""
        Z = np.matmul(v["W"].T, v["X"].swapaxes(-1, -2)).swapaxes(-1, -2)
        if "b" in v:
            Z += v["b"]
        return Z

    def grad_weight(self, v: Values) -> np.ndarray:
        X, dZ, out = v["X"], v["dZ"], self.grads.get("W")
        if (out is not None and out.dtype == dZ.dtype == X.dtype
                and out.shape == (self.fan_in, self.fan_out)):
            return np.matmul(X.T, dZ, out=out)
        out = self.grads["W"] = X.T @ dZ
        return out

    def grad_bias(self, v: Values) -> np.ndarray:
        dZ, out = v["dZ"], self.grads.get("b")
        if out is not None and out.dtype == dZ.dtype:
            return colsum(dZ, out=out)
        out = self.grads["b"] = colsum(dZ)
        return out

    def grad_input(self, v: Values) -> np.ndarray:
        return np.matmul(v["W"], v["dZ"].T).T  # feature-major, as Z

    def bias_scale(self, v: Values) -> np.ndarray:
        """The numerical check's step scale for b: the rms of the column of Z it shifts."""
        Z = v["Z"]
        return np.sqrt(coldot(Z, Z) / Z.shape[-2])

    # the pass ----------------------------------------------------------------------
    def forward(self, X: np.ndarray) -> np.ndarray:
        """Z for a batch X (N, fan_in), or a stack of batches (V, N, fan_in)."""
        self.X = X
        return self.affine({**self.params, "X": X})

    def backward(self, dZ: np.ndarray, need_dX: bool = True) -> np.ndarray | None:
        """Fill `grads` (in place when they are views of a network's flat buffer) and
        return dX (None when the caller needs no dX: the first layer in training)."""
        assert self.X is not None, "backward before forward"
        v = {**self.params, "X": self.X, "dZ": dZ}
        dX = None
        for node, words in backward_nodes(self.NODES, self.mode_keys(True)):
            if node.role == "input" and not need_dX:
                continue
            out = getattr(self, words.fn)(v)
            if node.role == "input":
                dX = out
        return dX

    def train_backward(self, dZ: np.ndarray, need_dX: bool) -> np.ndarray | None:
        """The fused backward of training: the records' steps (dW, db, dX) called
        directly, in the same order, without walking the records."""
        assert self.X is not None, "backward before forward"
        v = {**self.params, "X": self.X, "dZ": dZ}
        self.grad_weight(v)
        if self.has_bias:
            self.grad_bias(v)
        return self.grad_input(v) if need_dX else None

    # the numerical check's variants ------------------------------------------------
    def column_moves(self, name: str, j: int, steps: np.ndarray, X: np.ndarray) -> np.ndarray:
        """How column j of Z moves when each entry of column j of parameter `name` moves
        by its step: row i of the result is ∂Z[:, j]/∂W[i, j] · δᵢ = X[:, i] · δᵢ (one row
        for b: δ, since ∂Z/∂b = 1).  `X` is feature-major (fan_in, N)."""
        if name == "W":
            return X * steps[:, None]
        return np.full((1, X.shape[-1]), steps[0])
