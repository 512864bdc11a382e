"""Named BatchNorm conventions: the settings each source a learner meets uses, in one table.

BatchNorm is one algorithm written several ways.  The sources differ in five settings,
each a keyword of `BatchNorm` and a field of `BNOptions`:

    eps                    inside the root: std = √(var + ε)
    momentum, momentum_style
                           the running average: torch's momentum is the weight of the new
                           batch (running = (1 − m)·old + m·batch), Keras's the weight of
                           the old value (running = m·old + (1 − m)·batch)
    unbiased_running_var   whether the running variance stores Σ Z0² / (m − 1) (torch) or
                           the biased Σ Z0² / m (Keras, CS231n)
    running_stat           "var": eval divides by √(running_var + ε); "std": a running
                           average of the batch std, which eval divides by as it is
    running_init           "zero_one" (running mean 0, variance 1), "zero_zero" (both 0:
                           CS231n's np.zeros), "first_batch" (the first batch's statistics)
    train_var              "biased" (training normalises with Σ Z0² / m, as every library
                           does) or "bessel" (Σ Z0² / (m − 1), Karpathy's makemore part 4)

`CONVENTIONS` names the combinations the sources use; `BatchNorm(d, convention="keras")`
starts from one, and any setting given explicitly overrides the convention's.  `summary`
says a set of settings in one line ("eps 1e-3, running = 0.99·old + 0.01·batch, biased
running var"): `BatchNorm.describe()`, `walk`, the stepper and `train` show it.

Sources: torch.nn.BatchNorm1d; keras.layers.BatchNormalization (Keras 3: momentum 0.99,
epsilon 1e-3, moving_variance of the biased batch variance); CS231n assignment 2's
`batchnorm_forward` (momentum 0.9 on the old value, `np.var`, running stats from
`np.zeros`); Karpathy's makemore part 3 (a running mean and std, 0.999·old + 0.001·batch)
and part 4 (the Bessel-corrected batch variance, ε 1e-5); and the two seeds of this
project (the presets `seed-softmax` and `seed-digits`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from bntui.engine.errors import BntuiError

DEFAULT = "torch"
MOMENTUM_STYLES = ("torch", "keras")
RUNNING_STATS = ("var", "std")
RUNNING_INITS = ("zero_one", "zero_zero", "first_batch")
TRAIN_VARS = ("biased", "bessel")


@dataclass(frozen=True)
class Settings:
    """The settings a convention fixes (the keywords of `BatchNorm` of the same names)."""

    eps: float = 1e-5
    momentum: float = 0.1
    momentum_style: str = "torch"
    unbiased_running_var: bool = True
    running_stat: str = "var"
    running_init: str = "zero_one"
    train_var: str = "biased"

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def new_weight(self) -> float:
        """The weight of the batch statistic in the running average."""
        return self.momentum if self.momentum_style == "torch" else 1.0 - self.momentum


SETTING_NAMES = tuple(f.name for f in fields(Settings))


@dataclass(frozen=True)
class Convention:
    """A named set of BatchNorm settings and where it comes from."""

    name: str
    settings: Settings
    source: str  # who writes BatchNorm this way


CONVENTIONS: dict[str, Convention] = {c.name: c for c in (
    Convention("torch", Settings(),
               "torch.nn.BatchNorm1d (the default)"),
    Convention("keras", Settings(eps=1e-3, momentum=0.99, momentum_style="keras",
                                 unbiased_running_var=False),
               "Keras 3 BatchNormalization"),
    Convention("cs231n", Settings(eps=1e-5, momentum=0.9, momentum_style="keras",
                                  unbiased_running_var=False, running_init="zero_zero"),
               "CS231n assignment 2, batchnorm_forward"),
    Convention("karpathy", Settings(eps=1e-5, momentum=0.001, running_stat="std",
                                    train_var="bessel"),
               "Karpathy's makemore, parts 3 (running mean and std) and 4 (Bessel)"),
    Convention("seed-000", Settings(eps=1e-8, momentum=0.3, running_stat="std"),
               "seed 000 (preset seed-softmax)"),
    Convention("seed-003", Settings(eps=0.01, momentum=0.99, momentum_style="keras",
                                    unbiased_running_var=False, running_init="first_batch"),
               "seed 003 (preset seed-digits)"),
)}


def convention(name: str) -> Convention:
    """The convention called `name`; an unknown name is one line listing the names."""
    try:
        return CONVENTIONS[name]
    except (KeyError, TypeError):
        raise BntuiError(f"unknown BatchNorm convention '{name}'; choose one of: "
                         f"{', '.join(CONVENTIONS)}") from None


def resolve(name: str, **explicit: Any) -> Settings:
    """The convention's settings with every explicit (not None) one in its place."""
    given = {k: v for k, v in explicit.items() if v is not None}
    unknown = sorted(set(given) - set(SETTING_NAMES))
    if unknown:
        raise BntuiError(f"unknown BatchNorm setting '{unknown[0]}'")
    return Settings(**{**convention(name).settings.as_dict(), **given})


def overridden(name: str, settings: Settings) -> list[str]:
    """The settings that differ from the convention's own, in table order."""
    own = convention(name).settings
    return [k for k in SETTING_NAMES if getattr(settings, k) != getattr(own, k)]


def infer(settings: Settings) -> str:
    """The name of the first convention with exactly these settings; the default's name
    when none has them (what a session saved before conventions had names loads as)."""
    for c in CONVENTIONS.values():
        if c.settings == settings:
            return c.name
    return DEFAULT


def number(x: float, powers: bool = False) -> str:
    """A setting's number as a learner writes it: 0.01, 0.999, 1e-5; with `powers`, a
    power of ten below 0.01 as one (an eps of 1e-3, not 0.001)."""
    if powers and 0 < x < 0.01 and f"{x:.0e}".startswith("1e") and float(f"{x:.0e}") == x:
        return f"{x:.0e}".replace("e-0", "e-")
    return f"{x:g}".replace("e-0", "e-")


def summary(s: Settings) -> str:
    """The settings in one line: eps, the training variance if it is not the biased
    one, the running update, what is kept and where it starts ("eps 1e-5, running =
    0.9·old + 0.1·batch, unbiased running var, start 0, 1")."""
    w = s.new_weight
    parts = [f"eps {number(s.eps, powers=True)}"]
    if s.train_var == "bessel":
        parts.append("training var ÷ (m − 1)")
    if s.running_stat == "std":
        parts.append(f"running mean, std = {number(1.0 - w)}·old + {number(w)}·batch")
    else:
        parts.append(f"running = {number(1.0 - w)}·old + {number(w)}·batch")
        parts.append(f"{'unbiased' if s.unbiased_running_var else 'biased'} running var")
    parts.append({"zero_one": "start 0, 1", "zero_zero": "start 0, 0",
                  "first_batch": "start from the first batch"}[s.running_init])
    return ", ".join(parts)


def headline(name: str, s: Settings) -> str:
    """`name: summary`, with the settings given on top of the convention named:
    "keras: eps 1e-3, …" or "keras (eps overridden): eps 0.01, …"."""
    changed = overridden(name, s)
    tag = f"{name} ({', '.join(changed)} overridden)" if changed else name
    return f"{tag}: {summary(s)}"


def table_rows() -> list[dict[str, str]]:
    """One row per convention, for the README and the help: name, the one-line summary
    and the source."""
    return [{"name": c.name, "settings": summary(c.settings), "source": c.source}
            for c in CONVENTIONS.values()]


__all__ = ["CONVENTIONS", "DEFAULT", "MOMENTUM_STYLES", "RUNNING_INITS", "RUNNING_STATS",
           "SETTING_NAMES", "TRAIN_VARS", "Convention", "Settings", "convention", "headline",
           "infer", "overridden", "resolve", "summary", "table_rows"]
