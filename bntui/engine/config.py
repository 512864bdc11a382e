"""A run's whole configuration, and the presets that rerun the two seed experiments.

`RunConfig` names everything a run needs: the dataset and its options, the architecture
spec, the optimizer and its hyper-parameters, the BatchNorm conventions, the batch size,
the length of training and the seed.  A preset is a complete `RunConfig`; explicit
command-line flags (or app edits) override its fields with `dataclasses.replace`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from bntui.engine.errors import BntuiError
from bntui.engine.network import BNOptions

DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class RunConfig:
    dataset: str = "moons"
    samples: int | None = None
    noise: float | None = None
    classes: int | None = None
    val_fraction: float | None = None  # None: the dataset's default (0.2; 0 for seed-toy)
    standardize: bool | None = None
    split: str = "random"
    n_train: int | None = None
    arch: str = "16:relu,16:relu,C"
    init: str = "uniform"
    bias_init: str = "uniform"
    optimizer: str = "adam"
    lr: float | None = None
    hyper: tuple[tuple[str, float], ...] = ()
    batch_size: int | None = None  # None: the full training set
    steps: int = 500
    epochs: int | None = None
    seed: int = 0
    dtype: str = "float64"
    bn: BNOptions = field(default_factory=BNOptions)
    eval_every: int | None = None  # None: engine/evaluation.py's schedule
    bug: str | None = None  # a mistake of the bug zoo built into the network (lab bugs)
    gradients: str = "analytic"  # where training's gradients come from (gradient_sources)

    def with_overrides(self, **changes: object) -> RunConfig:
        """A copy with the given fields replaced; `None` values are ignored."""
        real = {k: v for k, v in changes.items() if v is not None}
        bn_changes = {k[3:]: real.pop(k) for k in list(real) if k.startswith("bn_")}
        cfg = replace(self, **real)
        if bn_changes:  # a new convention first, then the settings given on top of it
            cfg = replace(cfg, bn=cfg.bn.with_changes(**bn_changes))
        return cfg

    def with_dataset(self, name: str) -> RunConfig:
        """Switch datasets: the old split goes, the output block follows the new classes."""
        if name == self.dataset:
            return self
        from bntui.engine.arch import ArchSpec, parse_arch

        arch = parse_arch(self.arch)
        out = replace(arch.blocks[-1], width=None)
        return replace(self, dataset=name, split="random", n_train=None, val_fraction=None,
                       standardize=None, samples=None, noise=None, classes=None,
                       arch=ArchSpec((*arch.blocks[:-1], out)).to_string())

    def with_optimizer(self, name: str) -> RunConfig:
        """Switch optimizers: the old one's learning rate and hyper-parameters go."""
        if name == self.optimizer:
            return self
        return replace(self, optimizer=name, lr=None, hyper=())

    def validate(self) -> None:
        if self.steps < 0:
            raise BntuiError(f"steps must be 0 or more (got {self.steps})")
        if self.epochs is not None and self.epochs < 0:
            raise BntuiError(f"epochs must be 0 or more (got {self.epochs})")
        if self.batch_size is not None and self.batch_size < 1:
            raise BntuiError(f"batch size must be at least 1 (got {self.batch_size})")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise BntuiError(f"learning rate must be a positive finite number (got {self.lr})")
        if self.dtype not in DTYPES:
            raise BntuiError(f"dtype must be one of {', '.join(DTYPES)} (got '{self.dtype}')")
        if self.eval_every is not None and self.eval_every < 1:
            raise BntuiError(f"eval-every must be at least 1 (got {self.eval_every})")
        from bntui.engine.gradient_sources import check_source

        check_source(self.gradients)
        # what building the session would refuse, found without loading or allocating
        # anything: the app and `serve` must refuse a bad flag before any screen starts
        from bntui.engine.arch import parse_arch
        from bntui.engine.datasets import check_dataset
        from bntui.engine.optimizers import make_optimizer

        arch = parse_arch(self.arch)
        check_dataset(self.dataset, seed=self.seed, samples=self.samples, noise=self.noise,
                      val_fraction=self.val_fraction, standardize=self.standardize,
                      split=self.split, classes=self.classes)
        make_optimizer(self.optimizer, self.lr, **dict(self.hyper))
        self.bn.make(1, "float64")  # the BatchNorm conventions, checked by the layer
        if self.bug is not None and self.bn.train_var != "biased":
            raise BntuiError(
                "the bug zoo's mistakes are written for the biased training variance; "
                f"--bug cannot go with train_var '{self.bn.train_var}' (convention "
                f"{self.bn.convention})")
        if self.batch_size == 1 and any(b.batchnorm for b in arch.blocks):
            raise BntuiError(
                "batch size 1 with BatchNorm: expected more than 1 value per feature when "
                "training (use a batch size of 2 or more, or an architecture without bn)")
        if self.bug is not None:
            from bntui.engine.labs.bugs import get_bug  # the zoo imports this module

            bug = get_bug(self.bug)
            need = getattr(bug.parts.optimizer, "name", None)  # a variant of an optimizer
            if need is not None and self.optimizer != need:
                raise BntuiError(f"the bug {bug.id} needs the {need} optimizer "
                                 f"(got {self.optimizer}; add --optimizer {need})")
            norm = bug.needs  # a bug in a normalization needs a block of that kind
            if norm is not None and not any(b.norm == norm for b in arch.blocks):
                name = {"bn": "BatchNorm", "ln": "LayerNorm", "gn": "GroupNorm",
                        "rms": "RMSNorm"}[norm]
                token = "gn=4" if norm == "gn" else norm
                raise BntuiError(f"the bug {bug.id} lives in {name}, and the arch "
                                 f"'{self.arch}' has no {name} block (write :{token} in "
                                 f"a block, e.g. '16:{token}:tanh,C')")


PRESETS: dict[str, tuple[str, RunConfig]] = {
    "seed-softmax": (
        "seed 000: the 16-point toy set, Dense 2→4 (no bias) → BatchNorm → softmax, "
        "SGD lr 1, full batch, 30,000 steps (the seed reports cost 0.0017 at step 27,000)",
        RunConfig(
            dataset="seed-toy",
            val_fraction=0.0,
            arch="4:nobias",
            init="normal0.01",
            optimizer="sgd",
            lr=1.0,
            steps=30_000,
            # seed 000: eps 1e-8, a 0.7/0.3 running average of mean and std
            bn=BNOptions.of("seed-000"),
        ),
    ),
    "seed-digits": (
        "seed 003: scikit-learn digits / 16, first 1,500 train, 297 validate; "
        "64→32 BN sigmoid → 16 BN relu → 10 BN softmax; Adam lr 1e-3; 5,000 full-batch steps "
        "(the seed reports 92.59 % validation accuracy)",
        RunConfig(
            dataset="digits",
            split="head",
            n_train=1500,
            arch="32:sigmoid,16:relu,10",
            init="uniform",
            bias_init="zeros",
            optimizer="adam",
            lr=1e-3,
            steps=5_000,
            # seed 003: eps 0.01, Keras-style momentum 0.99 on the old value, biased
            # running variance, running statistics started from the first batch
            bn=BNOptions.of("seed-003"),
        ),
    ),
}

DEFAULT_CONFIG = RunConfig()


def preset(name: str) -> RunConfig:
    key = name.strip().lower()
    if key not in PRESETS:
        raise BntuiError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}")
    return PRESETS[key][1]
