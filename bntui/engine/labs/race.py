"""Optimizer race: several optimizers train the same network from the same start.

Every racer is an ordinary `Session` built from one `RunConfig` with only the optimizer
(and its learning rate) changed, so all of them start from identical initial weights
(the network is drawn from `config.seed`) and see the mini-batches in the same order
(the batch generator is seeded from `config.seed` too).  Their loss at step 0 is the
same number; from there each follows its own update rule (see `optimizers.py`):

    sgd       w ← w − η·g
    momentum  v ← μ·v + g;  w ← w − η·v
    nesterov  v ← μ·v + g;  w ← w − η·(g + μ·v)
    adagrad   G ← G + g²;  w ← w − η·g / (√G + ε)
    rmsprop   s ← ρ·s + (1−ρ)·g²;  w ← w − η·g / (√s + ε)
    adam      m̂ = m / (1 − β₁ᵗ);  v̂ = v / (1 − β₂ᵗ);  w ← w − η·m̂ / (√v̂ + ε)

Each racer's optimizer state per parameter (velocity, G, s, m, v, m̂, v̂, the bias
factors 1 − β₁ᵗ and 1 − β₂ᵗ) is read through `Optimizer.inspect(key)`.  A racer whose
loss turns NaN stops there (the session's guard keeps its last good step); the others
run on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bntui.engine.config import RunConfig
from bntui.engine.errors import BntuiError
from bntui.engine.optimizers import DEFAULT_LR, OPTIMIZERS, check_lr
from bntui.engine.session import Session, build_dataset

DEFAULT_STEPS = 200
ALL = tuple(OPTIMIZERS)  # sgd momentum nesterov adagrad rmsprop adam
# how the state slots are written on screen
SLOT_LABELS = {"velocity": "velocity", "G": "G", "s": "s", "m": "m", "v": "v",
               "m_hat": "m̂", "v_hat": "v̂", "bias1": "1 − β₁ᵗ", "bias2": "1 − β₂ᵗ", "t": "t"}


def parse_optimizers(text: str | None) -> list[str]:
    """'adam,sgd' → ['adam', 'sgd']; None or empty → all six.  Unknown or repeated
    names raise BntuiError."""
    if text is None or not text.strip():
        return list(ALL)
    names: list[str] = []
    for part in text.split(","):
        key = part.strip().lower().replace("-", "_")
        if not key:
            continue
        if key not in OPTIMIZERS:
            raise BntuiError(f"unknown optimizer '{part.strip()}'; choose from: {', '.join(ALL)}")
        if key in names:
            raise BntuiError(f"optimizer '{key}' is named twice")
        names.append(key)
    if not names:
        raise BntuiError("no optimizer named; choose from: " + ", ".join(ALL))
    return names


def parse_lrs(text: str | None) -> dict[str, float]:
    """'adam=0.01,sgd=0.5' → {'adam': 0.01, 'sgd': 0.5}."""
    out: dict[str, float] = {}
    if text is None or not text.strip():
        return out
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise BntuiError(f"learning rates are written name=value (got '{part.strip()}')")
        name, value = (s.strip() for s in part.split("=", 1))
        key = parse_optimizers(name)[0]
        out[key] = check_lr(value)
    return out


@dataclass
class Racer:
    """One optimizer's run."""

    optimizer: str
    lr: float
    describe: str  # e.g. "adam(lr=0.01, beta1=0.9, ...)"
    formula: str
    steps: list[int]
    loss: list[float]  # loss[i]: the batch loss before update i + 1 (loss[0]: the start)
    stopped: str | None
    session: Session = field(repr=False, compare=False)

    @property
    def final_loss(self) -> float | None:
        return self.loss[-1] if self.loss else None

    def state(self, key: str) -> dict[str, np.ndarray | float]:
        """The optimizer's state for one parameter (`Optimizer.inspect`)."""
        return self.session.optimizer.inspect(key)

    def state_summary(self, key: str | None = None) -> dict[str, float]:
        """Each state slot's root mean square, over one parameter or over all of them;
        scalars (t, bias factors) as they are."""
        keys = [key] if key is not None else list(self.session.network.params())
        sums: dict[str, float] = {}
        sizes: dict[str, int] = {}
        scalars: dict[str, float] = {}
        for k in keys:
            for name, value in self.state(k).items():
                if isinstance(value, np.ndarray) and value.ndim > 0:
                    v = value.astype(np.float64)
                    sums[name] = sums.get(name, 0.0) + float(np.sum(v * v))
                    sizes[name] = sizes.get(name, 0) + v.size
                else:
                    scalars[name] = float(value)
        out = {name: float(np.sqrt(sums[name] / sizes[name])) for name in sums}
        out.update(scalars)
        return out

    def to_dict(self, key: str | None = None) -> dict[str, object]:
        return {
            "optimizer": self.optimizer, "lr": self.lr, "describe": self.describe,
            "formula": self.formula, "steps": list(self.steps), "loss": list(self.loss),
            "final_loss": self.final_loss, "stopped": self.stopped,
            "state_rms": self.state_summary(key),
        }


@dataclass
class RaceResult:
    network: str
    dataset: str
    batch_size: int
    seed: int
    steps: int
    racers: list[Racer]
    param_keys: list[str]

    def racer(self, name: str) -> Racer:
        for r in self.racers:
            if r.optimizer == name:
                return r
        raise KeyError(name)

    def ranking(self) -> list[Racer]:
        """Racers by final loss, best first; a stopped or empty run last."""
        def key(r: Racer) -> tuple[int, float]:
            bad = r.stopped is not None or r.final_loss is None
            return (1 if bad else 0, r.final_loss if r.final_loss is not None else np.inf)
        return sorted(self.racers, key=key)

    def to_dict(self, key: str | None = None) -> dict[str, object]:
        return {
            "network": self.network, "dataset": self.dataset, "batch_size": self.batch_size,
            "seed": self.seed, "steps": self.steps, "param_keys": self.param_keys,
            "racers": [r.to_dict(key) for r in self.racers],
            "ranking": [r.optimizer for r in self.ranking()],
        }


def racer_config(config: RunConfig, name: str, lr: float | None = None) -> RunConfig:
    """`config` with optimizer `name`: its given or default learning rate, and only the
    hyper-parameters it has (e.g. β₁ for adam, μ for momentum)."""
    cls = OPTIMIZERS[name]
    hyper = tuple((h, v) for h, v in config.hyper if h in cls.hyper)
    return config.with_overrides(optimizer=name, lr=lr if lr is not None else DEFAULT_LR[name],
                                 hyper=hyper)


def race(
    config: RunConfig,
    optimizers: list[str] | None = None,
    steps: int | None = None,
    lrs: dict[str, float] | None = None,
) -> RaceResult:
    """Train one session per optimizer for `steps` (the lab's default: 200) and collect
    their histories.  `lrs` maps optimizer name → learning rate (default: its own)."""
    names = list(ALL) if optimizers is None else [parse_optimizers(n)[0] for n in optimizers]
    if not names:
        raise BntuiError("no optimizer to race")
    n_steps = DEFAULT_STEPS if steps is None else steps
    if n_steps < 0:
        raise BntuiError(f"steps must be 0 or more (got {n_steps})")
    lrs = lrs or {}
    config.validate()
    dataset = build_dataset(config)
    racers: list[Racer] = []
    session: Session | None = None
    for name in names:
        session = Session(racer_config(config, name, lrs.get(name)), dataset=dataset)
        result = session.train(steps=n_steps)
        opt = session.optimizer
        racers.append(Racer(name, opt.lr, opt.describe(), opt.formula,
                            list(session.history.step), list(session.history.loss),
                            result.stopped, session))
    assert session is not None
    return RaceResult(session.network.describe(), dataset.name, session.batch_size,
                      config.seed, n_steps, racers, list(session.network.params()))
