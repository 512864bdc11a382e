"""The fast CSV reader (numpy's loadtxt) against the precise one (the cell-by-cell reader
bntui always had, kept as the fallback and as the reference here): the same arrays, bit for
bit, and the same one-line errors, on every CSV the tests know and on fuzzed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_datasets import BAD_CSVS, csv_texts

from bntui.engine.csvfile import CsvData, _read_plain, read_csv, read_csv_precise
from bntui.engine.errors import BntuiError

# files the fast path reads itself (the precise reader gives the same)
PLAIN = {
    "pets": "height,weight,animal\n1.0,2.0,dog\n3,4,cat\n5,6e0,dog\n7,8,bird\n\n9,10,cat\n",
    "plain": "0.5,1,2,7\n1.5,2,3,3\n2.5,3,4,7\n3.5,4,5,3.0\n",
    "numhead": "1,2,label\n1,2,0\n3,4,1\n",
    "const": "1,5,0\n2,5,1\n3,5,0\n4,5,1\n",
    "split": "".join(f"{i},{i * i},{i % 2}\n" for i in range(10)),
    "cli": "x1,x2,label\n" + "".join(f"{i % 7},{(i * 3) % 5},{'ab'[i % 2]}\n"
                                     for i in range(40)),
    "string labels, no header": "1,2,cat\n3,4,dog\n5,6,cat\n",
    "mixed labels are text": "1,2,1\n3,4,a\n5,6,10\n7,8,2\n",
    "3 and 3.0 are one class": "1,2,3\n3,4,3.0\n5,6,1e0\n7,8,1\n",
    "R-style quotes": '"x1","x2","species"\n1,2,"setosa"\n3,4,"virginica"\n5,6,"setosa" \n',
    "spaces and tabs": " 1 ,\t2\t, a \n3,4,b\n-0.0,1e-400,a\n",
    "windows lines": "a,b,c\r\n1,2,x\r\n3,4,y\r\n",
    "old mac lines": "a,b,c\r1,2,x\r3,4,y\r",
    "byte order mark": "\ufeffa,b,c\n1,2,x\n3,4,y\n",
    "no last newline": "1,2,0\n3,4,1",
    "empty header names": "a,,label\n1,2,x\n3,4,y\n",
    "blank lines first": "\n\nh1,h2,y\n1,2,0\n3,4,1\n",
    "unicode labels": "1,2,chat\n3,4,éléphant\n5,6,猫\n",
    "wide numbers": "1e300,-1e-300,0\n1.7976931348623157e308,5e-324,1\n",
}
# files only the precise reader reads (the fast path hands them over)
PRECISE = {
    "quoted numbers": '"1","2",a\n"3","4",b\n',
    "a quoted comma": '1,2,"a,b"\n3,4,c\n',
    "a line of spaces": "1,2,a\n   \n3,4,b\n",
    "a line of commas": "1,2,a\n,,\n3,4,b\n",
    "underscores": "1_0,2,a\n3,4,b\n",
    "other digits": "١,2,a\n3,4,b\n",
    "a doubled quote": '1,2,"a""b"\n3,4,c\n',
    "quote inside": '1,2,a"b\n3,4,c\n',
    "quoted newline": '1,2,"a\nb"\n3,4,c\n',
    "a space before a quote": '1,2, "a"\n3,4,"a"\n5,6,b\n',
    "numbers only in the header label": "1,2,nan\n3,4,1\n5,6,2\n",
}


def outcome(reader, path: Path) -> tuple:  # type: ignore[no-untyped-def]
    try:
        X, y, features, classes, note = reader(str(path))
    except BntuiError as exc:
        return ("error", str(exc))
    X = np.ascontiguousarray(X)
    return ("ok", X.shape, X.dtype.str, X.tobytes(), y.dtype.str, y.tolist(), features,
            classes, note)


def assert_same(path: Path) -> tuple:
    precise = outcome(read_csv_precise, path)
    assert outcome(read_csv, path) == precise
    fast = _read_plain_or_none(path)
    if fast is not None:  # when the fast path answers, it answers the same
        assert outcome(lambda p: fast, path) == precise
    return precise


def _read_plain_or_none(path: Path):  # type: ignore[no-untyped-def]
    try:
        return _read_plain(str(path))
    except Exception:
        return None


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_files_are_read_fast_and_equal(tmp_path: Path, name: str) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(PLAIN[name].encode("utf-8"))
    assert _read_plain(str(path)) is not None, "the fast path should read this file"
    assert assert_same(path)[0] == "ok"


@pytest.mark.parametrize("name", sorted(PRECISE))
def test_other_files_fall_back_to_the_precise_reader(tmp_path: Path, name: str) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(PRECISE[name].encode("utf-8"))
    assert _read_plain_or_none(path) is None
    assert_same(path)


@pytest.mark.parametrize(("content", "fragment"), BAD_CSVS)
def test_bad_files_give_the_same_one_line_error(tmp_path: Path, content: str,
                                                 fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    kind, message = assert_same(path)
    assert kind == "error" and fragment in message and "\n" not in message


def test_missing_directory_and_binary_files(tmp_path: Path) -> None:
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81,\x90\n")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    for path, fragment in ((tmp_path / "missing.csv", "not found"),
                           (folder, "is a directory"), (binary, "not UTF-8")):
        kind, message = assert_same(path)
        assert kind == "error" and fragment in message


def test_header_and_labels_as_a_learner_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "iris.csv"
    path.write_text('"sepal length","sepal width","species"\n5.1,3.5,"setosa"\n'
                    '7.0,3.2,"versicolor"\n6.3,3.3,"virginica"\n4.9,3.0,"setosa"\n')
    X, y, features, classes, _ = read_csv(str(path))
    assert features == ["sepal length", "sepal width"]
    assert classes == ["setosa", "versicolor", "virginica"]
    assert y.tolist() == [0, 1, 2, 0] and X.shape == (4, 2)
    no_header = tmp_path / "plain.csv"
    no_header.write_text("5.1,3.5,2\n7.0,3.2,10\n6.3,3.3,2\n")
    X, y, features, classes, _ = read_csv(str(no_header))
    assert features == ["x1", "x2"] and classes == ["2", "10"] and y.tolist() == [0, 1, 0]


def test_a_generated_scale_csv(tmp_path: Path) -> None:
    from bntui.bench import write_scale_csv

    path = write_scale_csv(tmp_path / "scale.csv", 20_000)
    assert _read_plain(str(path)) is not None
    kind, shape, *_ = assert_same(path)
    assert kind == "ok" and shape == (20_000, 10)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=csv_texts())
def test_fuzzed_csvs_read_the_same(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_text(text)
    assert_same(path)


CELLS = ["1", "-2.5", " 3 ", "4e1", "0", "nan", "inf", "", " ", "\t", "\xa0", "a", "b",
         '"a"', ' "b"', '"c" ', '"', "1_0", "١", "3.0", "x y", "é"]


@st.composite
def nasty_csvs(draw: st.DrawFn) -> str:
    width = draw(st.integers(1, 4))
    rows = [[draw(st.sampled_from(CELLS)) for _ in range(width + draw(st.integers(-1, 1)))]
            for _ in range(draw(st.integers(0, 8)))]
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return end.join(",".join(row) for row in rows) + draw(st.sampled_from(["", end]))


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=st.one_of(nasty_csvs(), st.text(max_size=60)))
def test_nasty_csvs_read_the_same(tmp_path: Path, text: str) -> None:
    path = tmp_path / "nasty.csv"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    assert_same(path)


# the header decision --------------------------------------------------------------------
def iris_rows(labels: str = "names") -> list[str]:
    """iris as a learner exports it: 4 measurements, then the species (or its number)."""
    from sklearn.datasets import load_iris

    bunch = load_iris()
    names = [str(n) for n in bunch.target_names] if labels == "names" else ["0", "1", "2"]
    return [",".join(f"{v:g}" for v in x) + f",{names[t]}"
            for x, t in zip(bunch.data, bunch.target, strict=True)]


def read_both(path: Path) -> CsvData:
    """Both readers (and the fast path, when it answers) agree; the precise reader's answer."""
    kind, *rest = assert_same(path)
    assert kind == "ok", rest
    return read_csv_precise(str(path))


def test_a_numeric_looking_header_above_text_labels_is_a_header(tmp_path: Path) -> None:
    """The bug: `0,1,2,3,species` (pandas' numbered columns) was a sample of class
    'species', and a 4-class network was trained on iris' 3 classes."""
    path = tmp_path / "iris.csv"
    path.write_text("\n".join(["0,1,2,3,species", *iris_rows()]) + "\n")
    assert _read_plain(str(path)) is not None  # the fast path decides it, in one read
    data = read_both(path)
    assert data.X.shape == (150, 4)
    assert data.class_names == ["setosa", "versicolor", "virginica"]
    assert np.bincount(data.y).tolist() == [50, 50, 50]
    assert data.feature_names == ["0", "1", "2", "3"]
    assert data.note.startswith("first row read as a header") and "'species'" in data.note
    # and the precise reader decides the same when it is the one reading the file
    quoted = tmp_path / "quoted.csv"
    quoted.write_text("\n".join(["0,1,2,3,species", *iris_rows()[:-1], '"5.9",3,5.1,1.8,'
                                 "virginica"]) + "\n")
    assert _read_plain_or_none(quoted) is None
    data = read_both(quoted)
    assert data.X.shape == (150, 4) and len(data.class_names) == 3 and "'species'" in data.note


@pytest.mark.parametrize(("head", "labels", "why"), [
    ("0,1,2,3,4", "numbers", "would be the only class with a single row"),
    ("0,1,2,3,label", "numbers", "is text, every other label a number"),
    ("0,1,2,3,4", "names", "is a number, every other label text"),
    ("0,1,2,3,class", "names", "would be the only class with a single row"),
    ("0,1,2,3,target", "names", "would be the only class with a single row"),
    ("1,2,3,4,y", "names", "would be the only class with a single row"),
    ('0,1,2,3,"species"', "names", "would be the only class with a single row"),
    ("0,1,2,3,3.0", "numbers", "would be the only class with a single row"),
])
def test_numeric_looking_headers(tmp_path: Path, head: str, labels: str, why: str) -> None:
    path = tmp_path / "iris.csv"
    path.write_text("\n".join([head, *iris_rows(labels)]) + "\n")
    data = read_both(path)
    assert data.X.shape == (150, 4) and len(data.class_names) == 3
    assert data.feature_names == head.split(",")[:4]
    assert data.note.startswith("first row read as a header") and why in data.note


def test_a_header_less_file_stays_header_less(tmp_path: Path) -> None:
    for labels in ("names", "numbers"):
        path = tmp_path / f"{labels}.csv"
        path.write_text("\n".join(iris_rows(labels)) + "\n")
        data = read_both(path)
        assert data.X.shape == (150, 4) and data.feature_names == ["x1", "x2", "x3", "x4"]
        assert data.note.startswith("no header") and "a class of other rows too" in data.note
    # a first label that is a class of other rows: "2" and "2.0" are one class
    path = tmp_path / "same.csv"
    path.write_text("1,2,2\n3,4,2.0\n5,6,1\n7,8,1\n")
    assert read_both(path)[0].shape == (4, 2)


def test_a_text_header_stays_a_header(tmp_path: Path) -> None:
    path = tmp_path / "iris.csv"
    path.write_text("\n".join(["sepal length,sepal width,petal length,petal width,species",
                               *iris_rows()]) + "\n")
    data = read_both(path)
    assert data.X.shape == (150, 4) and data.feature_names[0] == "sepal length"
    assert data.note == "first row read as a header (its cell 'sepal length' is not a number)"


def test_ambiguous_and_tiny_files_keep_their_first_row(tmp_path: Path) -> None:
    """When another class has a single row too, the first row's label does not stand out:
    the row is data, and the note says which other class is as small."""
    cases = {
        "1,2,a\n3,4,b\n5,6,b\n7,8,c\n": ("'a' is a class of one row, like 'c'", 4),
        "1,2,chat\n3,4,éléphant\n5,6,猫\n": ("like 'éléphant'", 3),
        "0,1,species\n5.1,3.5,setosa\n": ("like 'setosa'", 2),  # one data row: no telling
        "1,2,0\n3,4,1\n": ("like '1'", 2),
    }
    for i, (text, (why, rows)) in enumerate(cases.items()):
        path = tmp_path / f"{i}.csv"
        path.write_text(text)
        data = read_both(path)
        assert len(data.X) == rows, text
        assert data.note.startswith("no header") and why in data.note, data.note


def test_the_note_is_one_short_line(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    long_label = "a very long label\nwith a newline in it, written by a spreadsheet"
    path.write_text(f'0,1,"{long_label}"\n' + "1,2,a\n3,4,a\n5,6,b\n7,8,b\n")
    data = read_csv(str(path))
    assert len(data.X) == 4 and "\n" not in data.note and len(data.note) < 120, data.note
    assert data.note == read_csv_precise(str(path)).note


LABEL_SETS = [["setosa", "versicolor", "virginica"], ["0", "1"], ["3", "7", "10", "2"],
              ["cat", "dog"], ["b", "a", "c", "d"]]


@st.composite
def headed_csvs(draw: st.DrawFn) -> tuple[str, bool, int, int]:
    """A small CSV whose classes have 2 rows or more, with or without a header whose
    feature cells are numbers; the text, whether it has a header, its rows and classes."""
    classes = draw(st.sampled_from(LABEL_SETS))
    k = draw(st.integers(2, len(classes)))
    width = draw(st.integers(1, 4))
    labels = [c for c in classes[:k] for _ in range(draw(st.integers(2, 5)))]
    labels = draw(st.permutations(labels))
    number = st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: f"{v:g}")
    rows = [",".join([*(draw(number) for _ in range(width)), label]) for label in labels]
    header = draw(st.booleans())
    if header:
        fresh = ["species", "label", "class", "target", "y", "99", "4.0", "-1"]
        name = draw(st.sampled_from([f for f in fresh if f not in classes[:k]
                                     and not (f == "4.0" and "4" in classes[:k])]))
        rows.insert(0, ",".join([*(str(j) for j in range(width)), name]))
    return "\n".join(rows) + "\n", header, len(labels), k


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=headed_csvs())
def test_numeric_headers_are_told_from_data(tmp_path: Path,
                                            case: tuple[str, bool, int, int]) -> None:
    """Whatever the labels, a header of numbers above classes of 2 rows or more is a
    header, and the same file without it has none; both readers agree."""
    text, header, rows, k = case
    path = tmp_path / "data.csv"
    path.write_text(text)
    data = read_both(path)
    assert len(data.X) == rows and len(data.class_names) == k
    assert data.note.startswith("first row read as a header" if header else "no header"), data.note
