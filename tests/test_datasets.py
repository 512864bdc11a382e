"""Tests of bntui.engine.datasets: built-in sets, generators, splits, scaling and CSV files."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bntui.engine.datasets import (
    DATASET_NAMES,
    GENERATED,
    Dataset,
    describe_datasets,
    load_dataset,
)
from bntui.engine.errors import BntuiError

EXPECTED_SHAPES = {
    # name: (n_rows, n_features, n_classes)
    "seed-toy": (16, 2, 4),
    "digits": (1797, 64, 10),
    "iris": (150, 4, 3),
    "wine": (178, 13, 3),
    "breast-cancer": (569, 30, 2),
    "moons": (200, 2, 2),
    "circles": (200, 2, 2),
    "blobs": (200, 2, 3),
    "spiral": (300, 2, 3),
    "xor": (200, 2, 2),
}


def check_arrays(ds: Dataset) -> None:
    for X, y in ((ds.X_train, ds.y_train), (ds.X_val, ds.y_val)):
        assert X.dtype == np.float64 and y.dtype == np.int64
        assert X.flags.c_contiguous and y.flags.c_contiguous
        assert X.ndim == 2 and X.shape[1] == ds.n_features
        assert y.shape == (X.shape[0],)
        assert np.all(np.isfinite(X))
        if y.size:
            assert y.min() >= 0 and y.max() < ds.n_classes
    assert len(ds.feature_names) == ds.n_features
    assert len(ds.class_names) == ds.n_classes
    assert ds.is_2d == (ds.n_features == 2)
    assert ds.n_train >= 2
    json.dumps(ds.summary())


# ---------------------------------------------------------------- built-in sets


def test_seed_toy_exact() -> None:
    ds = load_dataset("seed-toy")
    x1 = [1, 1, 0, 0, 4, 3, 2, 1, 7, 6, 5, 4, 9, 7, 6, 4]
    x2 = [8, 6, 4, 3, 8, 6, 4, 2, 6, 5, 4, 3, 4, 3, 2, 1]
    np.testing.assert_array_equal(ds.X_train, np.array([x1, x2], dtype=float).T)
    np.testing.assert_array_equal(ds.y_train, np.repeat([0, 1, 2, 3], 4))
    assert ds.X_train.shape == (16, 2) and ds.n_val == 0 and ds.X_val.shape == (0, 2)
    assert ds.scaling == "none" and ds.mean is None and ds.scale is None
    assert ds.n_classes == 4 and ds.is_2d
    check_arrays(ds)


def test_digits_head_split_divided_by_16() -> None:
    ds = load_dataset("digits", split="head", n_train=1500)
    assert ds.n_train + ds.n_val == 1797
    assert (ds.n_train, ds.n_val) == (1500, 297)
    assert ds.X_train.shape == (1500, 64)
    assert ds.scaling == "divided by 16"
    assert max(ds.X_train.max(), ds.X_val.max()) == 1.0 and ds.X_train.min() == 0.0
    check_arrays(ds)
    # head split keeps the original order
    again = load_dataset("digits", split="head", n_train=1500, seed=5)
    np.testing.assert_array_equal(ds.X_train, again.X_train)
    np.testing.assert_array_equal(ds.transform(np.full((1, 64), 16.0)), np.ones((1, 64)))


def test_digits_standardize_override() -> None:
    ds = load_dataset("digits", standardize=True)
    assert ds.scaling == "standardized"
    assert np.allclose(ds.X_train.mean(axis=0), 0.0)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_every_name_loads(name: str) -> None:
    n_rows, n_features, n_classes = EXPECTED_SHAPES[name]
    ds = load_dataset(name)
    assert ds.n_train + ds.n_val == n_rows
    assert ds.n_features == n_features and ds.n_classes == n_classes
    assert set(np.concatenate([ds.y_train, ds.y_val])) == set(range(n_classes))
    check_arrays(ds)
    if name != "seed-toy":
        assert ds.n_val == round(0.2 * n_rows)


@pytest.mark.parametrize("spelling", ["breast_cancer", "Breast-Cancer", " BREAST_CANCER "])
def test_name_spellings(spelling: str) -> None:
    assert load_dataset(spelling).name == "breast-cancer"


def test_describe_datasets_static() -> None:
    rows = describe_datasets()
    assert [r["name"] for r in rows] == list(DATASET_NAMES)
    kinds = {r["name"]: r["kind"] for r in rows}
    assert kinds["seed-toy"] == "toy" and kinds["iris"] == "scikit-learn"
    assert all(kinds[g] == "generated" for g in GENERATED)
    assert all(r["description"] and "\n" not in r["description"] for r in rows)


def test_import_does_not_load_sklearn() -> None:
    code = (
        "import sys, bntui.engine.datasets as d; d.describe_datasets(); "
        "d.load_dataset('moons'); d.load_dataset('seed-toy'); "
        "print('sklearn' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- generators


@pytest.mark.parametrize("name", GENERATED)
def test_generated_deterministic(name: str) -> None:
    a = load_dataset(name, seed=3)
    b = load_dataset(name, seed=3)
    c = load_dataset(name, seed=4)
    for field in ("X_train", "y_train", "X_val", "y_val"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.X_train, c.X_train)


@pytest.mark.parametrize("name", GENERATED)
def test_generated_options(name: str) -> None:
    ds = load_dataset(name, samples=40, noise=0.0, val_fraction=0.0)
    assert ds.n_train == 40 and ds.n_val == 0
    check_arrays(ds)
    assert np.bincount(ds.y_train).min() >= 2


def test_moons_without_noise() -> None:
    ds = load_dataset("moons", noise=0, standardize=False)
    X = np.concatenate([ds.X_train, ds.X_val])
    y = np.concatenate([ds.y_train, ds.y_val])
    upper = X[y == 0]
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0)
    assert "noise 0" in ds.description


def test_classes_option() -> None:
    assert load_dataset("spiral", classes=5).n_classes == 5
    assert load_dataset("blobs", classes=4, samples=8).n_classes == 4
    assert load_dataset("blobs").n_classes == 3


def test_xor_labels_follow_signs() -> None:
    ds = load_dataset("xor", noise=0.0, samples=400)
    same = np.sign(ds.X_train[:, 0]) == np.sign(ds.X_train[:, 1])
    np.testing.assert_array_equal(same.astype(np.int64), ds.y_train)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "moon"}, "unknown dataset 'moon'"),
        ({"name": "iris", "samples": 100}, "samples only applies to generated"),
        ({"name": "seed-toy", "noise": 0.1}, "noise only applies to generated"),
        ({"name": "digits", "classes": 3}, "classes only applies to generated"),
        ({"name": "moons", "samples": 3}, "samples must be at least 4"),
        ({"name": "moons", "samples": 10.5}, "samples must be a whole number"),
        ({"name": "moons", "samples": True}, "samples must be a whole number"),
        ({"name": "spiral", "samples": 5}, "2 per class"),
        ({"name": "moons", "noise": -0.1}, "noise must be 0 or more"),
        ({"name": "moons", "noise": float("nan")}, "noise must be a finite number"),
        ({"name": "moons", "noise": "big"}, "noise must be a number"),
        ({"name": "blobs", "classes": 1}, "classes must be at least 2"),
        ({"name": "moons", "classes": 3}, "moons always has 2 classes"),
        ({"name": "moons", "val_fraction": 1.0}, "val_fraction"),
        ({"name": "moons", "val_fraction": -0.1}, "val_fraction"),
        ({"name": "moons", "split": "sideways"}, "unknown split 'sideways'"),
        ({"name": "moons", "split": "head", "n_train": 1}, "n_train must be between 2"),
        ({"name": "moons", "split": "head", "n_train": 201}, "n_train must be between 2"),
        ({"name": "moons", "seed": -1}, "seed must be 0 or more"),
        ({"name": "moons", "standardize": "yes"}, "standardize must be"),
    ],
)
def test_option_errors(kwargs: dict, fragment: str) -> None:
    with pytest.raises(BntuiError, match=fragment) as info:
        load_dataset(**kwargs)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- splits and scaling


def test_random_split_is_a_partition() -> None:
    ds = load_dataset("moons", seed=1, val_fraction=0.25)
    assert (ds.n_train, ds.n_val) == (150, 50)
    whole = load_dataset("moons", seed=1, split="none")
    assert whole.n_val == 0
    rows = {tuple(r) for r in np.concatenate([ds.X_train, ds.X_val])}
    assert rows == {tuple(r) for r in whole.X_train}


def test_seed_toy_can_be_split() -> None:
    ds = load_dataset("seed-toy", val_fraction=0.25)
    assert (ds.n_train, ds.n_val) == (12, 4)
    assert load_dataset("seed-toy", n_train=10).n_val == 6


@pytest.mark.parametrize("name", ["iris", "wine", "breast-cancer", "blobs"])
def test_standardisation_uses_train_statistics(name: str) -> None:
    ds = load_dataset(name, seed=2)
    assert ds.scaling == "standardized"
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(ds.X_train.std(axis=0), 1.0, atol=1e-9)
    raw = load_dataset(name, seed=2, standardize=False)
    assert raw.scaling == "none" and raw.mean is None
    np.testing.assert_allclose(ds.mean, raw.X_train.mean(axis=0))
    np.testing.assert_allclose(ds.transform(raw.X_val), ds.X_val)
    np.testing.assert_allclose(ds.transform(raw.X_train[0]), ds.X_train[0])


def test_standardize_override_and_constant_column(tmp_path: Path) -> None:
    assert load_dataset("moons", standardize=True).scaling == "standardized"
    path = tmp_path / "const.csv"
    path.write_text("1,5,0\n2,5,1\n3,5,0\n4,5,1\n")
    ds = load_dataset(str(path), val_fraction=0)
    assert ds.scale is not None and ds.scale[1] == 1.0
    assert np.all(ds.X_train[:, 1] == 0.0)


def test_transform_rejects_wrong_width() -> None:
    ds = load_dataset("iris")
    with pytest.raises(BntuiError, match="4 features"):
        ds.transform(np.zeros((3, 2)))


# ---------------------------------------------------------------- CSV files


def test_csv_with_header_and_string_labels(tmp_path: Path) -> None:
    path = tmp_path / "pets.CSV"
    path.write_text(
        "height,weight,animal\n"
        "1.0,2.0,dog\n3,4,cat\n5,6e0,dog\n7,8,bird\n\n9,10,cat\n"
    )
    ds = load_dataset(str(path), standardize=False, val_fraction=0)
    assert ds.name == str(path)
    assert ds.feature_names == ["height", "weight"]
    assert ds.class_names == ["bird", "cat", "dog"]
    np.testing.assert_array_equal(ds.X_train, [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]])
    np.testing.assert_array_equal(ds.y_train, [2, 1, 2, 0, 1])
    assert ds.is_2d and ds.n_classes == 3
    check_arrays(ds)


def test_csv_without_header_integer_labels(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("0.5,1,2,7\n1.5,2,3,3\n2.5,3,4,7\n3.5,4,5,3.0\n")
    ds = load_dataset(path, val_fraction=0)
    assert ds.feature_names == ["x1", "x2", "x3"]
    assert ds.class_names == ["3", "7"]
    np.testing.assert_array_equal(ds.y_train, [1, 0, 1, 0])
    assert ds.scaling == "standardized" and not ds.is_2d
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0.0, atol=1e-12)


def test_csv_numeric_header_detected_by_label(tmp_path: Path) -> None:
    path = tmp_path / "numhead.csv"
    path.write_text("1,2,label\n1,2,0\n3,4,1\n")
    ds = load_dataset(str(path), val_fraction=0)
    assert ds.feature_names == ["1", "2"] and ds.n_train == 2


def test_csv_header_decision_is_the_dataset_note(tmp_path: Path) -> None:
    path = tmp_path / "numhead.csv"
    path.write_text("0,1,species\n" + "".join(f"{i},{i % 3},{'ab'[i % 2]}\n" for i in range(8)))
    ds = load_dataset(str(path), val_fraction=0)
    assert ds.n_train == 8 and ds.class_names == ["a", "b"] and ds.feature_names == ["0", "1"]
    assert ds.note == ("first row read as a header (its label 'species' would be the only "
                       "class with a single row)")
    assert ds.summary()["note"] == ds.note
    assert load_dataset("moons").note == ""  # only a read file has one


def test_csv_split_and_rejected_options(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("".join(f"{i},{i * i},{i % 2}\n" for i in range(10)))
    ds = load_dataset(str(path), seed=1)
    assert (ds.n_train, ds.n_val) == (8, 2)
    with pytest.raises(BntuiError, match="samples only applies to generated"):
        load_dataset(str(path), samples=10)


BAD_CSVS = [  # (content, a fragment of its one-line error); tests/test_csv_reader.py too
    ("", "is empty"),
    ("\n\n  \n", "is empty"),
    ("1\n2\n3\n", "only 1 column"),
    ("1,2,0\n3,4\n5,6,1\n", "row 2 has 2 columns but row 1 has 3"),
    ("a,b,y\n1,2,0\n3,abc,1\n", "row 3 column 2: 'abc' is not a number"),
    ("1,2,0\n3,,1\n", "row 2 column 2: the cell is empty"),
    ("1,2,0\nnan,4,1\n", "row 2 column 1: 'nan' is not a finite number"),
    ("1,2,0\n3,inf,1\n", "row 2 column 2: 'inf' is not a finite number"),
    ("1,2,0\n3,1e999,1\n", "row 2 column 2: '1e999' is not a finite number"),
    ("1,2,0\n3,4,0\n5,6,0\n", "only one class ('0')"),
    ("x,y,label\n1,2,cat\n3,4,cat\n", "only one class ('cat')"),
    ("1,2,0\n", "1 data rows; need at least 2"),
    ("a,b,label\n", "0 data rows; need at least 2"),
    ("1,2,0\n3,4,0.5\n", "row 2 column 3: label '0.5' is not a whole number"),
    ("1,2,0\n3,4,\n", "row 2 column 3: the label is empty"),
]


@pytest.mark.parametrize(("content", "fragment"), BAD_CSVS)
def test_csv_errors(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(BntuiError) as info:
        load_dataset(str(path))
    message = str(info.value)
    assert fragment in message and "bad.csv" in message and "\n" not in message


def test_csv_missing_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(BntuiError, match="not found"):
        load_dataset(str(tmp_path / "missing.csv"))
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(BntuiError, match="is a directory"):
        load_dataset(str(folder))
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81,\x90\n")
    with pytest.raises(BntuiError, match="not UTF-8"):
        load_dataset(str(binary))


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
cells = st.one_of(
    finite.map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["", "nan", "inf", "-inf", "abc", " 1 ", "1e400", "0x1"]),
)


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    n_rows = draw(st.integers(0, 12))
    n_cols = draw(st.integers(1, 5))
    messy = draw(st.booleans())
    lines = []
    if draw(st.booleans()):
        lines.append(",".join(f"f{j}" for j in range(n_cols)))
    for _ in range(n_rows):
        width = n_cols + (draw(st.integers(-1, 1)) if messy and draw(st.booleans()) else 0)
        row = [
            draw(cells if messy else finite.map(repr)) for _ in range(max(width - 1, 0))
        ]
        label = draw(st.one_of(st.integers(0, 4).map(str), st.sampled_from(["a", "b", "c"])))
        lines.append(",".join([*row, label]))
    return "\n".join(lines) + ("\n" if draw(st.booleans()) else "")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=csv_texts(), seed=st.integers(0, 1000), standardize=st.sampled_from([None, False]))
def test_csv_fuzz_loads_or_raises_bntui_error(
    tmp_path_factory: pytest.TempPathFactory, text: str, seed: int, standardize: bool | None
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "data.csv"
    path.write_text(text)
    try:
        ds = load_dataset(str(path), seed=seed, standardize=standardize)
    except BntuiError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    check_arrays(ds)
    rows = [line for line in text.splitlines() if line.strip()]
    assert ds.n_train + ds.n_val in (len(rows), len(rows) - 1)
    assert ds.n_classes >= 2
    assert ds.n_features == len(rows[0].split(",")) - 1


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_csv_arbitrary_text_never_crashes(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("text") / "any.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with contextlib.suppress(BntuiError):
        load_dataset(str(path))


def test_digits_read_without_sklearn_equal_load_digits() -> None:
    """The digits come from scikit-learn's bundled file without importing scikit-learn
    (over a second); they must be exactly `load_digits`'s, names included."""
    from sklearn.datasets import load_digits

    from bntui.engine.datasets import _digits_file, _sklearn_raw

    read = _digits_file()
    assert read is not None
    bunch = load_digits()
    np.testing.assert_array_equal(read[0], bunch.data)
    np.testing.assert_array_equal(read[1], bunch.target)
    X, y, features, classes = _sklearn_raw("digits")
    np.testing.assert_array_equal(X, bunch.data)
    np.testing.assert_array_equal(y, bunch.target)
    assert list(features) == list(bunch.feature_names)
    assert list(classes) == [str(c) for c in bunch.target_names]
    code = ("import sys; from bntui.engine import Session, preset; "
            "Session(preset('seed-digits')); print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
