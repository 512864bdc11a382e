"""Seeded synthetic 2-D datasets: moons, circles, blobs, spiral and xor.

Pure NumPy (no scikit-learn), deterministic for a given ``np.random.Generator``.
:func:`generate` returns ``X`` (float64, shape ``(samples, 2)``, batch-first) and ``y``
(int64 class indices) with the rows shuffled so that the classes are interleaved, plus
the one-line description and the class names.  Option checking (samples, noise,
classes) lives here too, so that every mistake is a one-line :class:`BntuiError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bntui.engine.errors import BntuiError

GENERATED: tuple[str, ...] = ("moons", "circles", "blobs", "spiral", "xor")

MAX_SAMPLES = 1_000_000
CIRCLES_FACTOR = 0.5
BLOBS_RADIUS = 5.0


@dataclass(frozen=True)
class GeneratorSpec:
    """Defaults of one generator."""

    default_samples: int
    default_noise: float
    default_classes: int
    variable_classes: bool  # False: the generator always makes ``default_classes`` classes


SPECS: dict[str, GeneratorSpec] = {
    "moons": GeneratorSpec(200, 0.2, 2, False),
    "circles": GeneratorSpec(200, 0.1, 2, False),
    "blobs": GeneratorSpec(200, 1.0, 3, True),
    "spiral": GeneratorSpec(300, 0.2, 3, True),
    "xor": GeneratorSpec(200, 0.1, 2, False),
}


def describe(name: str, noise: float, classes: int) -> str:
    """One-line description of a generated dataset with these settings."""
    if name == "moons":
        return f"two interleaving half circles (noise {noise:g})"
    if name == "circles":
        return f"a small circle inside a larger one (noise {noise:g}, factor {CIRCLES_FACTOR:g})"
    if name == "blobs":
        return f"{classes} Gaussian blobs (std {noise:g})"
    if name == "spiral":
        return f"{classes}-arm spiral (noise {noise:g})"
    return f"XOR: class 1 when x1 and x2 have the same sign (noise {noise:g})"


def as_int(value: object, what: str) -> int:
    """``value`` as a Python int, or a BntuiError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BntuiError(f"{what} must be a whole number, not {value!r}")
    return int(value)


def as_float(value: object, what: str) -> float:
    """``value`` as a finite Python float, or a BntuiError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise BntuiError(f"{what} must be a number, not {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise BntuiError(f"{what} must be a finite number, not {value!r}")
    return number


def resolve_options(
    name: str, samples: object, noise: object, classes: object
) -> tuple[int, float, int]:
    """Check the generator options of ``name``, filling in defaults; ``(samples, noise, K)``."""
    spec = SPECS[name]
    k = spec.default_classes
    if classes is not None:
        k = as_int(classes, "classes")
        if not spec.variable_classes and k != spec.default_classes:
            raise BntuiError(
                f"{name} always has {spec.default_classes} classes; "
                "classes only applies to blobs and spiral"
            )
        if k < 2:
            raise BntuiError(f"classes must be at least 2, not {k}")
    n = spec.default_samples if samples is None else as_int(samples, "samples")
    if n < 4:
        raise BntuiError(f"samples must be at least 4, not {n}")
    if n > MAX_SAMPLES:
        raise BntuiError(f"samples must be at most {MAX_SAMPLES:,}, not {n:,}")
    if n // k < 2:
        raise BntuiError(
            f"samples={n} is too few for {k} classes; need at least {2 * k} (2 per class)"
        )
    sigma = spec.default_noise if noise is None else as_float(noise, "noise")
    if sigma < 0:
        raise BntuiError(f"noise must be 0 or more, not {sigma:g}")
    return n, sigma, k


def _class_sizes(n: int, k: int) -> list[int]:
    """Split ``n`` points into ``k`` near-equal class sizes (earlier classes get the extra)."""
    return [n // k + (1 if j < n % k else 0) for j in range(k)]


def _moons(rng: np.random.Generator, n: int, noise: float, k: int) -> tuple[np.ndarray, ...]:
    n_out, n_in = _class_sizes(n, 2)
    t_out = np.linspace(0.0, np.pi, n_out)
    t_in = np.linspace(0.0, np.pi, n_in)
    outer = np.column_stack([np.cos(t_out), np.sin(t_out)])
    inner = np.column_stack([1.0 - np.cos(t_in), 0.5 - np.sin(t_in)])
    X = np.concatenate([outer, inner]) + rng.normal(0.0, noise, size=(n, 2))
    return X, np.repeat([0, 1], [n_out, n_in])


def _circles(rng: np.random.Generator, n: int, noise: float, k: int) -> tuple[np.ndarray, ...]:
    n_out, n_in = _class_sizes(n, 2)
    t_out = np.linspace(0.0, 2.0 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0.0, 2.0 * np.pi, n_in, endpoint=False)
    outer = np.column_stack([np.cos(t_out), np.sin(t_out)])
    inner = CIRCLES_FACTOR * np.column_stack([np.cos(t_in), np.sin(t_in)])
    X = np.concatenate([outer, inner]) + rng.normal(0.0, noise, size=(n, 2))
    return X, np.repeat([0, 1], [n_out, n_in])


def _blobs(rng: np.random.Generator, n: int, noise: float, k: int) -> tuple[np.ndarray, ...]:
    # Centres evenly spaced on a circle (random rotation), each blob isotropic with std noise.
    angles = rng.uniform(0.0, 2.0 * np.pi) + 2.0 * np.pi * np.arange(k) / k
    centres = BLOBS_RADIUS * np.column_stack([np.cos(angles), np.sin(angles)])
    y = np.repeat(np.arange(k), _class_sizes(n, k))
    X = centres[y] + rng.normal(0.0, noise, size=(n, 2))
    return X, y


def _spiral(rng: np.random.Generator, n: int, noise: float, k: int) -> tuple[np.ndarray, ...]:
    # CS231n: arm j has radius 0..1 and angle 4j..4(j+1) radians plus Gaussian angle noise.
    parts = []
    for j, size in enumerate(_class_sizes(n, k)):
        r = np.linspace(0.0, 1.0, size)
        t = np.linspace(4.0 * j, 4.0 * (j + 1), size) + rng.normal(0.0, noise, size=size)
        parts.append(np.column_stack([r * np.sin(t), r * np.cos(t)]))
    return np.concatenate(parts), np.repeat(np.arange(k), _class_sizes(n, k))


def _xor(rng: np.random.Generator, n: int, noise: float, k: int) -> tuple[np.ndarray, ...]:
    # Uniform in [-1, 1]^2 conditioned on the class, so both classes have n/2 points.
    n_diff, n_same = _class_sizes(n, 2)
    y = np.repeat([0, 1], [n_diff, n_same])
    magnitude = rng.uniform(0.0, 1.0, size=(n, 2))
    sign = rng.choice([-1.0, 1.0], size=n)
    second = np.where(y == 1, sign, -sign)
    X = magnitude * np.column_stack([sign, second]) + rng.normal(0.0, noise, size=(n, 2))
    return X, y


_MAKERS = {"moons": _moons, "circles": _circles, "blobs": _blobs, "spiral": _spiral, "xor": _xor}


def class_names(name: str, k: int) -> list[str]:
    """Readable names of the classes of a generated dataset."""
    if name == "moons":
        return ["upper moon", "lower moon"]
    if name == "circles":
        return ["outer", "inner"]
    if name == "xor":
        return ["opposite signs", "same sign"]
    word = "blob" if name == "blobs" else "arm"
    return [f"{word} {j}" for j in range(k)]


def generate(
    name: str, rng: np.random.Generator, samples: int, noise: float, classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Make ``samples`` shuffled points of generator ``name`` (options already checked)."""
    X, y = _MAKERS[name](rng, samples, noise, classes)
    order = rng.permutation(samples)
    X = np.ascontiguousarray(X[order], dtype=np.float64)
    y = np.ascontiguousarray(np.asarray(y)[order], dtype=np.int64)
    return X, y
