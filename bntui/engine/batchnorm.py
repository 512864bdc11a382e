"""BatchNorm over the batch axis of an (N, D) tensor, with every intermediate kept.

Forward, node by node (m = batch size; statistics per feature):
    mu    = (1/m) Σᵢ Z                  Z0    = Z − mu
    var   = (1/m) Σᵢ Z0²  (biased)      std   = √(var + eps)
    Znorm = Z0 / std                    Zbn   = gamma · Znorm + beta

Backward has two paths that agree to rounding:
  * staged: node by node through the graph above, keeping every gradient
    (dZbn, dgamma, dbeta, dZnorm, dstd, dvar, dZ0, dmu, dZ) for the stepper;
  * compact: dZ = (gamma / std) · (dZbn − (dbeta + Znorm · dgamma) / m), for training.

Defaults follow `torch.nn.BatchNorm1d`: eps 1e-5 inside the root, momentum 0.1 on the
new value, running stats start at 0 and 1, `running_var` stores the unbiased variance,
eval mode normalises with the running statistics, batch size 1 in training is refused.
The seeds' conventions are options: Keras-style momentum on the old value, a biased
running variance, a running average of `std` instead of `var`, running stats started
from the first batch.
"""

from __future__ import annotations

import numpy as np

from bntui.engine.errors import BntuiError
from bntui.engine.kernels import coldot, colsum

FORWARD_NAMES = ("Z", "mu", "Z0", "var", "std", "Znorm", "Zbn")
BACKWARD_NAMES = ("dZbn", "dbeta", "dgamma", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ")

FORMULAS = {
    "mu": "mu = (1/m) Σᵢ Z",
    "Z0": "Z0 = Z − mu",
    "var": "var = (1/m) Σᵢ Z0²",
    "std": "std = √(var + ε)",
    "Znorm": "Znorm = Z0 / std",
    "Zbn": "Zbn = γ · Znorm + β",
    "dbeta": "dβ = Σᵢ dZbn",
    "dgamma": "dγ = Σᵢ dZbn · Znorm",
    "dZnorm": "dZnorm = dZbn · γ",
    "dstd": "dstd = Σᵢ dZnorm · (−Z0 / std²)",
    "dvar": "dvar = dstd / (2 · std)",
    "dZ0": "dZ0 = dZnorm / std + dvar · 2 · Z0 / m",
    "dmu": "dmu = −Σᵢ dZ0",
    "dZ": "dZ = dZ0 + dmu / m",
    "dZ_compact": "dZ = (γ / std) · (dZbn − (dβ + Znorm · dγ) / m)",
}
EVAL_FORMULAS = {
    "mu": "mu = running_mean",
    "var": "var = running_var",
    "std": "std = √(running_var + ε)",
    "dZ0": "dZ0 = dZnorm / std   (var is a constant in eval mode)",
    "dZ": "dZ = dZ0   (mu is a constant in eval mode)",
}
EXPLANATIONS = {
    "mu": "the mean of each feature over the batch",
    "Z0": "each feature centred on its batch mean",
    "var": "the biased variance of each feature over the batch",
    "std": "the standard deviation, with ε inside the root so it is never 0",
    "Znorm": "each feature scaled to mean 0 and variance ≈ 1",
    "Zbn": "learnable scale γ and shift β give the layer its range back",
    "dbeta": "β is added to every row, so its gradient sums dZbn over the batch",
    "dgamma": "γ multiplies Znorm, so its gradient sums dZbn · Znorm over the batch",
    "dZnorm": "the gradient reaching the normalised values through γ",
    "dstd": "std divides every row: the std branch of the graph",
    "dvar": "through the square root: d√u/du = 1 / (2√u)",
    "dZ0": "Z0 feeds Znorm directly and var through Z0²: both branches add up",
    "dmu": "mu is subtracted from every row: minus the sum of dZ0",
    "dZ": "Z reaches the loss through Z0 and through mu (which spreads 1/m to each row)",
}

MOMENTUM_STYLES = ("torch", "keras")
RUNNING_STATS = ("var", "std")
RUNNING_INITS = ("zero_one", "first_batch")


class BatchNorm:
    """Batch normalization of (N, D) inputs; `torch.nn.BatchNorm1d` semantics by default."""

    kind = "batchnorm"

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        *,
        momentum_style: str = "torch",
        unbiased_running_var: bool = True,
        running_stat: str = "var",
        running_init: str = "zero_one",
        dtype: np.dtype | type = np.float64,
    ) -> None:
        if num_features < 1:
            raise BntuiError(f"BatchNorm needs at least 1 feature (got {num_features})")
        if not (np.isfinite(eps) and eps >= 0):
            raise BntuiError(f"BatchNorm eps must be a finite number ≥ 0 (got {eps})")
        if not (np.isfinite(momentum) and 0 <= momentum <= 1):
            raise BntuiError(f"BatchNorm momentum must be between 0 and 1 (got {momentum})")
        if momentum_style not in MOMENTUM_STYLES:
            raise BntuiError(f"momentum style must be one of {MOMENTUM_STYLES}")
        if running_stat not in RUNNING_STATS:
            raise BntuiError(f"running statistic must be one of {RUNNING_STATS}")
        if running_init not in RUNNING_INITS:
            raise BntuiError(f"running init must be one of {RUNNING_INITS}")
        self.num_features = num_features
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.momentum_style = momentum_style
        self.unbiased_running_var = unbiased_running_var
        self.running_stat = running_stat
        self.running_init = running_init
        self.dtype = np.dtype(dtype)
        self.params: dict[str, np.ndarray] = {
            "gamma": np.ones(num_features, dtype=self.dtype),
            "beta": np.zeros(num_features, dtype=self.dtype),
        }
        self.grads: dict[str, np.ndarray] = {}
        self.cache: dict[str, np.ndarray] = {}
        self.training = True
        self.running_mean = np.zeros(num_features, dtype=self.dtype)
        self.running_var = np.ones(num_features, dtype=self.dtype)
        self.running_std = np.ones(num_features, dtype=self.dtype)
        self.num_batches_tracked = 0

    # parameters -------------------------------------------------------------------
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
        return 2 * self.num_features

    @property
    def new_weight(self) -> float:
        """The weight of the batch statistic in the running average."""
        return self.momentum if self.momentum_style == "torch" else 1.0 - self.momentum

    def running_state(self) -> dict[str, np.ndarray]:
        return {
            "running_mean": self.running_mean,
            "running_var": self.running_var,
            "running_std": self.running_std,
        }

    # forward ----------------------------------------------------------------------
    def forward(
        self,
        x: np.ndarray,
        training: bool = True,
        *,
        update_running: bool = True,
        override: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Normalise `x` (N, D); `override` replaces a named node (for gradient checks)."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise BntuiError(
                f"BatchNorm expects (N, {self.num_features}) input, got shape {x.shape}"
            )
        m = x.shape[0]
        self.training = training
        # let go of the last pass's tensors first: their memory is then reused for this
        # pass's instead of new pages being mapped (a rebind: a caller's copy of the old
        # dict keeps its arrays)
        self.cache = {}
        ov = override or {}
        c: dict[str, np.ndarray] = {}
        Z = c["Z"] = ov.get("Z", x)
        if training:
            if m < 2:
                raise BntuiError(
                    "expected more than 1 value per feature when training "
                    "(batch size 1 with BatchNorm)"
                )
            cols = None if ov else column_blocks(Z)
            if cols is not None:  # large and feature-major: every step a block at a time
                gamma, beta = self.params["gamma"], self.params["beta"]
                c.update(train_forward_by_columns(Z, self.eps, gamma, beta, cols))
                if update_running:
                    self._update_running(c["mu"], c["var"], c["std"], m)
                self.cache = c
                return c["Zbn"]
            mu = c["mu"] = ov["mu"] if "mu" in ov else colsum(Z) * (1.0 / m)
            if "Z0" in ov:
                Z0 = c["Z0"] = ov["Z0"]
                var = coldot(Z0, Z0) / m
            else:
                Z0, var = centre(Z, mu)
                c["Z0"] = Z0
            var = c["var"] = ov.get("var", var)
            std = c["std"] = ov["std"] if "std" in ov else np.sqrt(var + self.eps)
            if update_running:
                self._update_running(mu, var, std, m)
        else:
            mu = c["mu"] = ov["mu"] if "mu" in ov else self.running_mean.copy()
            Z0 = c["Z0"] = ov["Z0"] if "Z0" in ov else Z - mu
            if self.running_stat == "std":
                std = self.running_std
                var = c["var"] = ov["var"] if "var" in ov else std * std - self.eps
                std = c["std"] = ov["std"] if "std" in ov else (
                    np.sqrt(var + self.eps) if "var" in ov else std.copy()
                )
            else:
                var = c["var"] = ov["var"] if "var" in ov else self.running_var.copy()
                std = c["std"] = ov["std"] if "std" in ov else np.sqrt(var + self.eps)
        if "Znorm" in ov or "Zbn" in ov:
            Znorm = c["Znorm"] = ov["Znorm"] if "Znorm" in ov else Z0 * (1.0 / std)
            if "Zbn" in ov:
                Zbn = ov["Zbn"]
            else:
                Zbn = Znorm * self.params["gamma"]
                Zbn += self.params["beta"]
        else:
            Znorm, Zbn = normalise(Z0, 1.0 / std, self.params["gamma"], self.params["beta"])
            c["Znorm"] = Znorm
        c["Zbn"] = Zbn
        self.cache = c
        return Zbn

    def _update_running(self, mu: np.ndarray, var: np.ndarray, std: np.ndarray, m: int) -> None:
        w = self.new_weight
        batch_var = var * (m / (m - 1)) if self.unbiased_running_var else var
        if self.num_batches_tracked == 0 and self.running_init == "first_batch":
            self.running_mean[...] = mu
            self.running_var[...] = batch_var
            self.running_std[...] = std
        else:
            self.running_mean *= 1.0 - w
            self.running_mean += w * mu
            self.running_var *= 1.0 - w
            self.running_var += w * batch_var
            self.running_std *= 1.0 - w
            self.running_std += w * std
        self.num_batches_tracked += 1

    # backward ---------------------------------------------------------------------
    def backward(self, dy: np.ndarray, staged: bool = True) -> np.ndarray:
        """Gradient of the input; fills `grads` and the backward names of `cache`."""
        c = self.cache
        if "Znorm" not in c:
            raise RuntimeError("BatchNorm.backward called before forward")
        for name in BACKWARD_NAMES:
            c.pop(name, None)
        gamma = self.params["gamma"]
        Znorm, std = c["Znorm"], c["std"]
        m = dy.shape[0]
        c["dZbn"] = dy
        g = self.grads
        if not ("gamma" in g and g["gamma"].dtype == dy.dtype == Znorm.dtype
                and g["gamma"].shape == gamma.shape):
            kind = np.result_type(dy, Znorm)
            g["gamma"], g["beta"] = np.empty(gamma.shape, kind), np.empty(gamma.shape, kind)
        # g's arrays may be views of the network's flat gradient buffer: fill in place
        dgamma, dbeta = g["gamma"], g["beta"]
        if staged or not self.training:
            colsum(dy, out=dbeta)
            coldot(dy, Znorm, out=dgamma)
            c["dbeta"], c["dgamma"] = dbeta.copy(), dgamma.copy()
            return self._staged(dy, gamma, m)
        dZ = c["dZ"] = compact_backward(dy, Znorm, gamma / std, dgamma, dbeta)
        c["dbeta"], c["dgamma"] = dbeta.copy(), dgamma.copy()
        return dZ

    def _staged(self, dZbn: np.ndarray, gamma: np.ndarray, m: int) -> np.ndarray:
        c = self.cache
        Z0, std = c["Z0"], c["std"]
        dZnorm = c["dZnorm"] = dZbn * gamma
        dstd = c["dstd"] = -coldot(dZnorm, Z0) / (std * std)
        dvar = c["dvar"] = dstd / (2.0 * std)
        if self.training:
            dZ0 = c["dZ0"] = dZnorm / std + dvar * (2.0 / m) * Z0
            dmu = c["dmu"] = -dZ0.sum(axis=0)
            dZ = c["dZ"] = dZ0 + dmu / m
        else:  # mu and var are constants: only the direct branch reaches Z
            dZ0 = c["dZ0"] = dZnorm / std
            c["dmu"] = -dZ0.sum(axis=0)
            dZ = c["dZ"] = dZ0.copy()
        return dZ


# The compact backward works in blocks of rows once dZbn is larger than WHOLE_BYTES (it no
# longer fits the core's caches); a block of dZbn, Znorm and dZ (about 3 × BLOCK_BYTES)
# stays in the last-level cache between the passes over it.  Measured at 65,536 × 512:
# blocks of 32 KiB 343 ms (Python's per-block overhead wins), 64 KiB 221, 256 KiB 200,
# 1 MiB 173, the whole array at once 199.
WHOLE_BYTES = 2 * 1024 * 1024
BLOCK_BYTES = 1024 * 1024


def row_blocks(x: np.ndarray) -> range | None:
    """Starts of the row blocks to work in, or None to work on the whole array (small,
    or not row-major: a block of rows of a column-major array is not contiguous)."""
    m, d = x.shape
    rows = max(16, BLOCK_BYTES // max(1, d * x.itemsize))
    if rows >= m or x.nbytes <= WHOLE_BYTES or not x.flags.c_contiguous:
        return None
    return range(0, m, rows)


def column_blocks(x: np.ndarray) -> list[slice] | None:
    """Column blocks of a large feature-major (column-major) array, or None.  A block of
    columns is contiguous and its features' statistics are its own, so each step of the
    pass can run on it while it is in cache."""
    m, d = x.shape
    if x.nbytes <= WHOLE_BYTES or not x.flags.f_contiguous or x.flags.c_contiguous:
        return None
    cols = max(1, BLOCK_BYTES // max(1, m * x.itemsize))
    return None if cols >= d else [slice(j, j + cols) for j in range(0, d, cols)]


def train_forward_by_columns(Z: np.ndarray, eps: float, gamma: np.ndarray,
                              beta: np.ndarray, cols: list[slice]) -> dict[str, np.ndarray]:
    """The training-mode forward, a block of features at a time: Z is read from memory
    once and Z0, Znorm and Zbn written once (the whole-array passes make ten)."""
    m, d = Z.shape
    dtype = np.result_type(Z, gamma, beta)
    out = {"mu": np.empty(d, dtype), "var": np.empty(d, dtype), "std": np.empty(d, dtype)}
    for name in ("Z0", "Znorm", "Zbn"):
        out[name] = np.empty(Z.shape, dtype, order="F")
    for sl in cols:
        z = Z[:, sl]
        mu = np.multiply(colsum(z), 1.0 / m, out=out["mu"][sl])
        z0 = np.subtract(z, mu, out=out["Z0"][:, sl])
        var = np.divide(coldot(z0, z0), m, out=out["var"][sl])
        std = np.sqrt(var + eps, out=out["std"][sl])
        zn = np.multiply(z0, 1.0 / std, out=out["Znorm"][:, sl])
        zb = np.multiply(zn, gamma[sl], out=out["Zbn"][:, sl])
        zb += beta[sl]
    return out


def centre(Z: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Z0 = Z − mu and var = (1/m) Σ Z0², the sum taken block by block while the block
    of Z0 is still in cache when Z is large (one pass of memory traffic fewer)."""
    m = Z.shape[0]
    starts = row_blocks(Z)
    if starts is None:
        Z0 = Z - mu
        return Z0, coldot(Z0, Z0) / m
    Z0 = np.empty_like(Z)
    var = np.zeros(Z.shape[1], dtype=Z0.dtype)
    part = np.empty_like(var)
    step = starts.step
    for i in starts:
        b = np.subtract(Z[i:i + step], mu, out=Z0[i:i + step])
        var += coldot(b, b, out=part)
    var /= m
    return Z0, var


def normalise(Z0: np.ndarray, inv_std: np.ndarray, gamma: np.ndarray,
              beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Znorm = Z0 · (1/std) and Zbn = γ · Znorm + β, block by block when Z0 is large (the
    block of Znorm is read back from cache)."""
    starts = row_blocks(Z0)
    if starts is None:
        Znorm = Z0 * inv_std
        Zbn = Znorm * gamma
        Zbn += beta
        return Znorm, Zbn
    Znorm = np.empty_like(Z0, dtype=np.result_type(Z0, inv_std))
    Zbn = np.empty_like(Znorm, dtype=np.result_type(Znorm, gamma, beta))
    step = starts.step
    for i in starts:
        zn = np.multiply(Z0[i:i + step], inv_std, out=Znorm[i:i + step])
        zb = np.multiply(zn, gamma, out=Zbn[i:i + step])
        zb += beta
    return Znorm, Zbn


def compact_backward(dy: np.ndarray, Znorm: np.ndarray, scale: np.ndarray,
                     dgamma: np.ndarray, dbeta: np.ndarray) -> np.ndarray:
    """dZ = (γ/std) · (dZbn − (dβ + Znorm · dγ) / m), filling `dgamma` and `dbeta`.

    `scale` is γ/std.  Written as passes over blocks of rows small enough to stay in
    cache: the sums dβ = Σ dZbn and dγ = Σ dZbn·Znorm read each block once from memory,
    and dZ reads dZbn and Znorm once more and writes once — about 5 passes of memory
    traffic where the same formula on whole arrays makes 12, and the staged path 17.
    """
    m, d = dy.shape
    cols = column_blocks(dy) if Znorm.flags.f_contiguous else None
    if cols is not None:  # feature-major: each block of features on its own, in cache
        dZ = np.empty_like(dy)
        for sl in cols:
            b, zn, sc = dy[:, sl], Znorm[:, sl], scale[sl]
            db = colsum(b, out=dbeta[sl])
            dg = coldot(b, zn, out=dgamma[sl])
            out = np.multiply(zn, -sc * dg / m, out=dZ[:, sl])
            out += b * sc
            out -= sc * db / m
        return dZ
    starts = row_blocks(dy)
    if starts is None:
        colsum(dy, out=dbeta)
        coldot(dy, Znorm, out=dgamma)
        dZ = Znorm * (-scale * dgamma / m)
        dZ += dy * scale
        dZ -= scale * dbeta / m
        return dZ
    rows = starts.step
    dbeta[...] = 0
    dgamma[...] = 0
    part = np.empty(d, dtype=dy.dtype)
    for i in starts:
        b, zb = dy[i:i + rows], Znorm[i:i + rows]
        dbeta += colsum(b, out=part)
        dgamma += coldot(b, zb, out=part)
    k1 = -scale * dgamma / m
    k0 = -scale * dbeta / m
    dZ = np.empty_like(dy)
    tmp = np.empty((rows, d), dtype=dy.dtype)
    for i in starts:
        out, t = dZ[i:i + rows], tmp[:min(rows, m - i)]
        np.multiply(Znorm[i:i + rows], k1, out=out)
        np.multiply(dy[i:i + rows], scale, out=t)
        out += t
        out += k0
    return dZ


def train_vs_eval(bn: BatchNorm, Z: np.ndarray) -> dict[str, np.ndarray]:
    """The same batch through batch statistics and through running statistics.

    Returns both normalisations and their difference, leaving the layer untouched
    (no running statistics are updated, the cache is restored).
    """
    saved, saved_training = bn.cache, bn.training
    try:
        out: dict[str, np.ndarray] = {}
        if Z.shape[0] >= 2:
            bn.forward(Z, training=True, update_running=False)
            out["batch_mu"], out["batch_var"] = bn.cache["mu"], bn.cache["var"]
            out["Znorm_train"], out["Zbn_train"] = bn.cache["Znorm"], bn.cache["Zbn"]
        bn.forward(Z, training=False)
        out["running_mean"], out["running_var"] = bn.cache["mu"], bn.cache["var"]
        out["Znorm_eval"], out["Zbn_eval"] = bn.cache["Znorm"], bn.cache["Zbn"]
        if "Zbn_train" in out:
            out["Zbn_diff"] = out["Zbn_train"] - out["Zbn_eval"]
        return out
    finally:
        bn.cache, bn.training = saved, saved_training
