"""Reading a learner's CSV file: feature columns, then the class label in the last column.

:func:`read_csv` reads a plain file at C speed with numpy's own reader (``np.loadtxt``;
the labels go through one small converter, so text labels work).  Whatever it cannot
take as is — a bad or empty cell, a ragged row, a quoted number, a blank line of
spaces — sends the file to :func:`read_csv_precise`, the cell-by-cell reader, which
either reads it or raises the one-line error that names the row and column.  Both give
the same arrays for every file (tested on the bundled cases and on fuzzed files), so the
fast path only changes the time: a million rows in about a second instead of a minute.

The rules, in both readers: cells are stripped of spaces; lines whose cells are all empty
are skipped; numeric labels must be whole numbers ("3", "3.0") and sort as numbers, any
other labels sort as text.  The first line is a header when it does not look like a
sample of the file (:func:`header_decision`, one rule for both readers): a feature cell in
it is not a number, or its label stands out from every other row's — text where they are
all numbers, a number where they are all text, or the one class with a single row.  The
fast reader loads the first line as data and drops it once the label column is read, so
the file is read once.  The readers say what they decided in one line (`CsvData.note`).
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from bntui.engine.errors import BntuiError

__all__ = ["CsvData", "Stopped", "count_lines", "header_decision", "read_csv",
           "read_csv_precise"]


class CsvData(NamedTuple):
    """What a reader gives: features ``(N, D)`` float64, labels ``0..K-1``, the feature
    and class names, and one line saying whether the first row was read as a header and
    why ("first row read as a header (…)" or "no header (…)")."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    class_names: list[str]
    note: str


Progress = Callable[[int], object]  # called with the number of rows read so far
PROGRESS_ROWS = 50_000  # rows between two calls of a reader's `progress`


class _NotPlain(Exception):
    """The fast reader met something only the precise reader can judge."""


class Stopped(Exception):
    """Raised by a reader's `progress` to stop reading (the reader raises it again)."""


def read_csv(path: str, progress: Progress | None = None) -> CsvData:
    """Features ``(N, D)`` float64, labels ``0..K-1``, feature names and class names.
    `progress`, if given, is called every `PROGRESS_ROWS` rows with the rows read so far
    (from the reading thread; the precise reader, if it runs, counts again from 0); it may
    raise `Stopped` to stop reading."""
    try:
        fast = _read_plain(path, progress)
    except Exception as exc:  # anything unusual: the precise reader reads it or names the cell
        if isinstance(exc, Stopped) or isinstance(exc.__cause__, Stopped):
            raise Stopped from None  # (numpy hands a converter's exception on as a cause)
        fast = None
    return fast if fast is not None else read_csv_precise(path, progress)


def count_lines(path: str, block: int = 1 << 20) -> int:
    """The lines of a file (its newlines, plus a last line without one), read in blocks
    at C speed: what a reader's `progress` will count up to, about (a header and blank
    lines are lines, not rows).  0 for a file that cannot be read: the reader says why."""
    lines, last = 0, b"\n"
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(block):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:
        return 0
    return lines + (last != b"\n")


# the header rule ------------------------------------------------------------------------
def header_decision(first: list[str], later: Mapping[str, int]) -> tuple[bool, str]:
    """Whether the first row (its stripped cells, `first`) is a header, and a one-line
    note saying why, from the labels of the rows after it (`later`: label → rows).

    The rule: the first row is a header when a feature cell in it is not a number, or
    when its label stands out from every other row's label — text where they are all
    numbers, a number where they are all text, or the one class with a single row (a
    class name like "species" above a file whose classes each have many rows)."""
    for cell in first[:-1]:
        if not _is_number(cell):
            return True, f"first row read as a header (its cell {_shown(cell)} is not a number)"
    # an empty label is missing, not a class: the reader names its row
    label, later = first[-1], {other: count for other, count in later.items() if other}
    if not label:
        return False, "no header (the first row is all numbers and its label is empty)"
    if not later:
        return False, "no header (the first row is all numbers and no other row has a label)"
    numbers = [_is_number(other) for other in later]
    if not _is_number(label) and all(numbers):
        return True, (f"first row read as a header (its label {_shown(label)} is text, "
                      "every other label a number)")
    if _is_number(label) and not any(numbers):
        return True, (f"first row read as a header (its label {_shown(label)} is a number, "
                      "every other label text)")
    numeric = _is_number(label) and all(numbers)  # then "3" and "3.0" are one class

    def key(cell: str) -> object:
        whole = _whole_number(cell) if numeric else None
        return cell if whole is None else whole

    rows: Counter[object] = Counter()
    for other, count in later.items():
        rows[key(other)] += count
    if rows[key(label)]:
        return False, (f"no header (the first row is all numbers and its label "
                       f"{_shown(label)} is a class of other rows too)")
    single = next((other for other in later if rows[key(other)] == 1), None)
    if single is None:
        return True, (f"first row read as a header (its label {_shown(label)} would be the "
                      "only class with a single row)")
    return False, (f"no header (the first row is all numbers; its label {_shown(label)} is "
                   f"a class of one row, like {_shown(single)})")


def _shown(cell: str, limit: int = 30) -> str:
    """A cell quoted for a one-line note, cut to `limit` characters."""
    return repr(cell if len(cell) <= limit else cell[:limit - 1] + "…")


# the fast reader ------------------------------------------------------------------------
def _first_record(path: str) -> tuple[list[str], int, int]:
    """The first record with a non-empty cell (stripped), the number of lines before it
    and the number of lines it takes, read the way the precise reader reads them."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        before = 0
        for row in reader:
            cells = [cell.strip() for cell in row]
            if any(cells):
                return cells, before, reader.line_num
            before = reader.line_num
    raise _NotPlain("no record")


def first_record(path: str) -> list[str]:
    """The cells of the file's first non-empty record (its header, or its first row)."""
    try:
        return _first_record(path)[0]
    except _NotPlain:
        return []


def _label(cell: str) -> str:
    """A label cell as the csv module reads it, then stripped; a quote anywhere but
    around the whole cell (or an empty label) is the precise reader's to judge."""
    if '"' in cell:
        end = cell.rstrip()
        inner = end[1:-1]
        if len(end) < 2 or cell[0] != '"' or end[-1] != '"' or '"' in inner:
            raise _NotPlain("quoted label")
        cell = inner
    label = cell.strip()
    if not label:
        raise _NotPlain("empty label")
    return label


def _read_plain(path: str, progress: Progress | None = None) -> CsvData | None:
    """The file through ``np.loadtxt``, or None when only the precise reader may judge."""
    first, before, through = _first_record(path)
    width = len(first)
    if width < 2:
        return None
    named_features = not all(_is_number(cell) for cell in first[:-1])
    codes: dict[str, int] = {}

    rows, left = 0, PROGRESS_ROWS  # the label converter runs once a row: it counts them

    def code(cell: str) -> int:
        nonlocal rows, left
        left -= 1
        if not left:
            rows, left = rows + PROGRESS_ROWS, PROGRESS_ROWS
            if progress is not None:
                progress(rows)
        label = _label(cell)
        k = codes.get(label)
        if k is None:
            k = codes[label] = len(codes)
        return k

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input contained no data": judged below
        table = np.loadtxt(path, delimiter=",", comments=None, dtype=np.float64, ndmin=2,
                           skiprows=through if named_features else before,
                           converters={width - 1: code}, encoding="utf-8-sig")
    if table.shape[1] != width:
        return None
    X, c = table[:, :-1], table[:, -1].astype(np.intp)
    names = list(codes)
    if named_features:
        header, note = header_decision(first, {})
    else:  # the first row was read as data: the label column says whether it is one
        if not len(c):
            return None
        rows = np.bincount(c[1:], minlength=len(names))
        header, note = header_decision(first, {names[k]: int(rows[k])
                                               for k in np.flatnonzero(rows)})
        if header:
            X, c = X[1:], c[1:]
    if len(c) < 2 or not np.isfinite(X).all():
        return None
    present = np.flatnonzero(np.bincount(c, minlength=len(names)))
    labels = [names[k] for k in present]
    keys: list[Any] = labels
    if all(_is_number(label) for label in labels):
        keys = [_whole_number(label) for label in labels]
        if None in keys:
            return None
    unique = sorted(set(keys))
    if len(unique) < 2:
        return None
    index = {key: k for k, key in enumerate(unique)}
    lookup = np.zeros(len(names), dtype=np.int64)
    lookup[present] = [index[key] for key in keys]
    return CsvData(X, lookup[c], _feature_names(first, header), [str(key) for key in unique],
                   note)


def _feature_names(first: list[str], header: bool) -> list[str]:
    if header:
        return [name or f"x{j + 1}" for j, name in enumerate(first[:-1])]
    return [f"x{j + 1}" for j in range(len(first) - 1)]


# the precise reader ---------------------------------------------------------------------
def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _whole_number(cell: str) -> int | None:
    """``cell`` as an int if it is a whole number ("3", "3.0", "1e2"), else None."""
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        value = float(cell)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else None


def check_readable(path: str) -> None:
    """One line if `path` cannot be opened as a CSV file (before anything is read)."""
    what = f"CSV file {path!r}"
    if os.path.isdir(path):
        raise BntuiError(f"{what} is a directory, not a file")
    if not os.path.exists(path):
        raise BntuiError(f"{what} not found")
    if not os.access(path, os.R_OK):
        raise BntuiError(f"{what} could not be read: permission denied")


def read_csv_precise(path: str, progress: Progress | None = None) -> CsvData:
    """The cell-by-cell reader: slow, and the one that names a bad file's row and column
    (`progress` as in `read_csv`, over the rows it converts)."""
    what = f"CSV file {path!r}"
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            records = list(enumerate(csv.reader(handle), start=1))
    except FileNotFoundError:
        raise BntuiError(f"{what} not found") from None
    except IsADirectoryError:
        raise BntuiError(f"{what} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise BntuiError(f"{what} is not UTF-8 text") from None
    except csv.Error as exc:
        raise BntuiError(f"{what} could not be parsed: {exc}") from None
    except OSError as exc:
        raise BntuiError(f"{what} could not be read: {exc.strerror or exc}") from None

    rows = [(line, [cell.strip() for cell in row]) for line, row in records
            if any(cell.strip() for cell in row)]
    if not rows:
        raise BntuiError(f"{what} is empty")
    width = len(rows[0][1])
    if width < 2:
        raise BntuiError(f"{what} has only 1 column; need feature columns and a label in the "
                         "last column, separated by commas")
    for line, row in rows:
        if len(row) != width:
            raise BntuiError(
                f"{what} row {line} has {len(row)} columns but row {rows[0][0]} has {width}")

    first = rows[0][1]
    header, note = header_decision(first, Counter(row[-1] for _, row in rows[1:]))
    data = rows[1:] if header else rows
    if len(data) < 2:
        raise BntuiError(f"{what} has {len(data)} data rows; need at least 2")

    d = width - 1
    X = np.empty((len(data), d), dtype=np.float64)
    for i, (line, row) in enumerate(data):
        if progress is not None and i and i % PROGRESS_ROWS == 0:
            progress(i)
        for j in range(d):
            cell = row[j]
            where = f"{what} row {line} column {j + 1}"
            if not cell:
                raise BntuiError(f"{where}: the cell is empty, expected a number")
            try:
                value = float(cell)
            except ValueError:
                raise BntuiError(f"{where}: {cell!r} is not a number") from None
            if not math.isfinite(value):
                raise BntuiError(f"{where}: {cell!r} is not a finite number")
            X[i, j] = value

    labels = [row[-1] for _, row in data]
    for line, row in data:
        if not row[-1]:
            raise BntuiError(f"{what} row {line} column {width}: the label is empty")
    keys: list[Any] = labels
    if all(_is_number(label) for label in labels):
        keys = []
        for line, row in data:
            whole = _whole_number(row[-1])
            if whole is None:
                raise BntuiError(f"{what} row {line} column {width}: label {row[-1]!r} is not a "
                                 "whole number (the last column holds class labels)")
            keys.append(whole)
    unique = sorted(set(keys))
    if len(unique) < 2:
        raise BntuiError(f"{what} has only one class ({str(unique[0])!r}); need at least 2")
    index = {key: k for k, key in enumerate(unique)}
    y = np.array([index[key] for key in keys], dtype=np.int64)
    return CsvData(X, y, _feature_names(first, header), [str(key) for key in unique], note)
