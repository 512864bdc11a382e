"""Datasets for bntui: the seed toy set, scikit-learn's bundled sets, generators and CSV.

:func:`load_dataset` turns a name (or a path ending in ``.csv``) into a :class:`Dataset`:
float64 features, batch-first ``(N, D)``, int64 labels ``0..K-1``, split into train and
validation parts and scaled with statistics of the training split only.  Everything is
offline and deterministic for a seed; scikit-learn is imported only when one of its
bundled datasets is asked for.  Mistakes raise :class:`BntuiError` with one line.
"""

from __future__ import annotations

import difflib
import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from bntui.engine import generators
from bntui.engine.csvfile import Progress, check_readable, first_record, read_csv
from bntui.engine.errors import BntuiError
from bntui.engine.generators import GENERATED

__all__ = ["DATASET_NAMES", "GENERATED", "Dataset", "builds_quickly", "describe_datasets",
           "load_dataset"]

DATASET_NAMES: tuple[str, ...] = (
    "seed-toy", "digits", "iris", "wine", "breast-cancer",
    "moons", "circles", "blobs", "spiral", "xor",
)
SPLITS: tuple[str, ...] = ("random", "head", "none")

_SKLEARN = {"digits": "load_digits", "iris": "load_iris", "wine": "load_wine",
            "breast-cancer": "load_breast_cancer"}
_STATIC = {
    "seed-toy": "16 points in 2-D, 4 classes: the toy set of the seed notebook",
    "digits": "8x8 handwritten digit images: 64 pixel intensities 0-16, 10 classes",
    "iris": "iris flowers: 4 measurements, 3 species",
    "wine": "wine chemical analysis: 13 measurements, 3 cultivars",
    "breast-cancer": "breast tumour measurements: 30 features, malignant or benign",
}
_STANDARDIZED_BY_DEFAULT = ("iris", "wine", "breast-cancer", "blobs")

_TOY_X1 = [1, 1, 0, 0, 4, 3, 2, 1, 7, 6, 5, 4, 9, 7, 6, 4]
_TOY_X2 = [8, 6, 4, 3, 8, 6, 4, 2, 6, 5, 4, 3, 4, 3, 2, 1]
_TOY_Y = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]


@dataclass
class Dataset:
    """A classification dataset split into training and validation parts."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    feature_names: list[str]
    class_names: list[str]
    description: str
    is_2d: bool
    scaling: str
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    note: str = ""  # one line on how the data was read: a CSV file's header decision

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_val(self) -> int:
        return int(self.X_val.shape[0])

    def transform(self, X_raw: np.ndarray) -> np.ndarray:
        """Scale raw points ``(n, D)`` (or one point ``(D,)``) the way the features were."""
        try:
            X = np.array(X_raw, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise BntuiError(f"points to transform are not numbers: {exc}") from None
        if X.ndim not in (1, 2) or X.shape[-1] != self.n_features:
            raise BntuiError(
                f"points to transform must have {self.n_features} features, got shape {X.shape}"
            )
        if self.mean is not None:
            X -= self.mean
        if self.scale is not None:
            X /= self.scale
        return np.ascontiguousarray(X)

    def summary(self) -> dict[str, Any]:
        """JSON-able overview: name, sizes, scaling, description and note."""
        return {"name": self.name, "n_train": self.n_train, "n_val": self.n_val,
                "n_features": self.n_features, "n_classes": int(self.n_classes),
                "scaling": self.scaling, "description": self.description, "note": self.note}


def describe_datasets() -> list[dict[str, str]]:
    """Name, kind and a one-line description of every built-in dataset (loads nothing)."""
    rows = []
    for name in DATASET_NAMES:
        if name in GENERATED:
            spec = generators.SPECS[name]
            text = generators.describe(name, spec.default_noise, spec.default_classes)
            kind = "generated"
        else:
            text, kind = _STATIC[name], ("toy" if name == "seed-toy" else "scikit-learn")
        rows.append({"name": name, "kind": kind, "description": text})
    return rows


def check_dataset(
    name: str, *, seed: int = 0, samples: int | None = None, noise: float | None = None,
    val_fraction: float | None = None, standardize: bool | None = None,
    split: str = "random", classes: int | None = None,
) -> tuple[str, str, float]:
    """Check `load_dataset`'s arguments without loading anything (a CSV file must exist
    and be readable); (the canonical name or "csv", the split, the validation share)."""
    key = _resolve_name(name)
    seed = generators.as_int(seed, "seed")
    if seed < 0:
        raise BntuiError(f"seed must be 0 or more, not {seed}")
    if key not in GENERATED:
        for option, value in (("samples", samples), ("noise", noise), ("classes", classes)):
            if value is not None:
                raise BntuiError(
                    f"option {option} only applies to generated datasets "
                    f"({', '.join(GENERATED)}), not to {key if key != 'csv' else name!r}"
                )
    if standardize is not None and not isinstance(standardize, (bool, np.bool_)):
        raise BntuiError(f"standardize must be true or false, not {standardize!r}")
    if not isinstance(split, str) or split.strip().lower() not in SPLITS:
        raise BntuiError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    split = split.strip().lower()
    if val_fraction is None:
        fraction = 0.0 if key == "seed-toy" else 0.2
    else:
        fraction = generators.as_float(val_fraction, "val_fraction")
        if not 0.0 <= fraction < 1.0:
            raise BntuiError(f"val_fraction must be at least 0 and below 1, not {fraction:g}")
    if key == "csv":
        check_readable(os.fspath(name))
    elif key in GENERATED:
        generators.resolve_options(key, samples, noise, classes)
    return key, split, fraction


_SKLEARN_SHAPES = {"digits": (64, 10, 1797), "iris": (4, 3, 150), "wine": (13, 3, 178),
                   "breast-cancer": (30, 2, 569)}  # features, classes, rows


def least_shape(name: str, *, samples: int | None = None, noise: float | None = None,
                classes: int | None = None) -> tuple[int, int, int]:
    """(features, classes, rows) of a dataset without loading it: exact for the built-in
    sets, a lower bound for a CSV file (its header's columns, 2 classes, 2 rows)."""
    key = _resolve_name(name)
    if key == "seed-toy":
        return 2, 4, len(_TOY_Y)
    if key in GENERATED:
        n, _, k = generators.resolve_options(key, samples, noise, classes)
        return 2, k, n
    if key in _SKLEARN_SHAPES:
        return _SKLEARN_SHAPES[key]
    try:
        first = first_record(os.fspath(name))
    except (OSError, UnicodeDecodeError, ValueError):
        first = ["", ""]
    return max(1, len(first) - 1), 2, 2


def load_dataset(
    name: str, *, seed: int = 0, samples: int | None = None, noise: float | None = None,
    val_fraction: float | None = None, standardize: bool | None = None,
    split: str = "random", n_train: int | None = None, classes: int | None = None,
    progress: Progress | None = None,
) -> Dataset:
    """Load dataset ``name`` (see ``DATASET_NAMES``) or a CSV file, split and scale it.

    ``val_fraction`` defaults to 0.2 (0 for seed-toy).  ``split`` is "random" (seeded
    shuffle), "head" (first rows train, no shuffle) or "none" (all rows train);
    ``n_train``, when given, fixes the number of training rows instead of ``val_fraction``.
    ``standardize=None`` picks the dataset's default scaling.  ``progress``: called with
    the rows read so far while a CSV file is read (see `csvfile.read_csv`).
    """
    key, split, fraction = check_dataset(
        name, seed=seed, samples=samples, noise=noise, val_fraction=val_fraction,
        standardize=standardize, split=split, classes=classes)
    data_rng, split_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    note = ""
    if key == "csv":
        path = os.fspath(name)
        X, y, feature_names, class_names, note = read_csv(path, progress)
        display_name = path
        description = (f"CSV file {os.path.basename(path)}: {X.shape[0]} rows, "
                       f"{X.shape[1]} features, {len(class_names)} classes")
    elif key in GENERATED:
        n, sigma, k = generators.resolve_options(key, samples, noise, classes)
        X, y = generators.generate(key, data_rng, n, sigma, k)
        display_name, feature_names = key, ["x1", "x2"]
        class_names = generators.class_names(key, k)
        description = generators.describe(key, sigma, k)
    elif key == "seed-toy":
        X = np.column_stack([_TOY_X1, _TOY_X2]).astype(np.float64)
        y = np.array(_TOY_Y, dtype=np.int64)
        display_name, feature_names, class_names = key, ["x1", "x2"], ["0", "1", "2", "3"]
        description = _STATIC[key]
    else:
        X, y, features, classes = _sklearn_raw(key)
        feature_names, class_names = list(features), list(classes)
        display_name, description = key, _STATIC[key]

    train_idx, val_idx = _split_indices(X.shape[0], split, fraction, n_train, split_rng)
    X_train, X_val = X[train_idx], X[val_idx]
    if standardize is None:
        mode = "divide" if key == "digits" else (
            "standardize" if key in _STANDARDIZED_BY_DEFAULT or key == "csv" else "none")
    else:
        mode = "standardize" if standardize else "none"
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    scaling = "none"
    if mode == "standardize":
        scaling = "standardized"
        with np.errstate(all="ignore"):  # extreme values are caught by the check below
            mean, scale = X_train.mean(axis=0), X_train.std(axis=0)
            scale[(X_train == X_train[0]).all(axis=0) | (scale == 0)] = 1.0
            for part in (X_train, X_val):  # rows copied out of X just above: in place
                part -= mean
                part /= scale
        if not (np.isfinite(X_train).all() and np.isfinite(X_val).all()):
            raise BntuiError(f"features of {display_name!r} are too extreme to standardize; "
                             "turn standardization off")
    elif mode == "divide":
        scale = np.full(X.shape[1], 16.0)
        scaling = "divided by 16"
        X_train /= scale
        X_val /= scale

    arr = np.ascontiguousarray
    return Dataset(
        name=display_name,
        X_train=arr(X_train, dtype=np.float64), y_train=arr(y[train_idx], dtype=np.int64),
        X_val=arr(X_val, dtype=np.float64), y_val=arr(y[val_idx], dtype=np.int64),
        n_classes=len(class_names), feature_names=list(feature_names),
        class_names=list(class_names), description=description,
        is_2d=X.shape[1] == 2, scaling=scaling, mean=mean, scale=scale, note=note,
    )


QUICK_ROWS = 20_000  # a generated set up to this size is made in milliseconds


def builds_quickly(name: object, samples: object = None) -> bool:
    """Whether `load_dataset(name, samples=…)` takes milliseconds: the toy set and the
    generated sets up to `QUICK_ROWS` rows (nothing to read, nothing heavy to import).
    CSV files and scikit-learn's sets are read (the app loads those in a worker), and so
    is any name this cannot judge (`load_dataset` will say what is wrong with it)."""
    try:
        key = _resolve_name(name)
    except BntuiError:
        return False
    if key == "seed-toy":
        return True
    if key not in GENERATED:
        return False
    if samples is None:
        return generators.SPECS[key].default_samples <= QUICK_ROWS
    return isinstance(samples, int) and samples <= QUICK_ROWS


def _resolve_name(name: object) -> str:
    """The canonical dataset name, or "csv" for a path ending in .csv."""
    if not isinstance(name, (str, os.PathLike)):
        raise BntuiError(f"dataset name must be text, not {name!r}")
    text = os.fspath(name)
    if not isinstance(text, str):
        raise BntuiError(f"dataset name must be text, not {name!r}")
    if text.lower().endswith(".csv"):
        return "csv"
    key = text.strip().lower().replace("_", "-")
    if key in DATASET_NAMES:
        return key
    close = difflib.get_close_matches(key, DATASET_NAMES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise BntuiError(
        f"unknown dataset {text!r}{hint}; choose one of: {', '.join(DATASET_NAMES)}, "
        "or a path to a .csv file"
    )


def _split_indices(
    n: int, split: str, fraction: float, n_train: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training and validation parts."""
    if n_train is not None:
        if split == "none":
            raise BntuiError("n_train does not apply to split 'none' (all rows train)")
        count = generators.as_int(n_train, "n_train")
        if not 2 <= count <= n:
            raise BntuiError(f"n_train must be between 2 and {n} (the dataset has {n} rows)")
    elif split == "none":
        count = n
    else:
        count = n - min(round(fraction * n), n - 2)
    # Rows keep their file order when nothing goes to validation (seed-toy stays exact).
    order = rng.permutation(n) if split == "random" and count < n else np.arange(n)
    return order[:count], order[count:]


def _digits_file() -> tuple[np.ndarray, np.ndarray] | None:
    """scikit-learn's digits (its own bundled CSV: 64 pixels, then the label), read without
    importing scikit-learn, which takes over a second; None if the file is not where
    scikit-learn keeps it (then `load_digits` reads it).  Tested equal to `load_digits`."""
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets/data/digits.csv.gz"
    try:
        with gzip.open(path, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    except (OSError, ValueError):
        return None
    if table.ndim != 2 or table.shape[1] != 65:
        return None
    return table[:, :64], table[:, 64].astype(np.int64)


@functools.cache
def _sklearn_raw(key: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    if key == "digits" and (read := _digits_file()) is not None:
        X, y = (np.ascontiguousarray(a) for a in read)
        X.setflags(write=False)
        y.setflags(write=False)
        names = tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8))
        return X, y, names, tuple(str(c) for c in range(10))
    try:
        from sklearn import datasets as sk_datasets
    except ImportError:
        raise BntuiError(f"dataset {key!r} needs scikit-learn, which is not installed") from None
    bunch = getattr(sk_datasets, _SKLEARN[key])()
    X = np.ascontiguousarray(bunch.data, dtype=np.float64)
    y = np.ascontiguousarray(bunch.target, dtype=np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    return (X, y, tuple(str(f) for f in bunch.feature_names),
            tuple(str(c) for c in bunch.target_names))
