"""One JSON convention for every `--json`: numbers that are not finite become null.

Strict JSON has no NaN or infinity (Python's `json` would write the invalid `NaN` and
`Infinity`).  Every command's JSON goes through `dumps`, which turns each NaN, +∞ or −∞
float — plain, NumPy scalar or inside an array, at any depth — into `null` and refuses
anything else that is not JSON (`allow_nan=False`), so a leak fails loudly in the tests
instead of writing a file another program cannot read.  The text output names what the
null stands for (a loss that became inf, a ratio that does not exist).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator

import numpy as np


def jsonable(value: object) -> object:
    """`value` with NumPy scalars and arrays made plain and non-finite floats made None."""
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def dumps(value: object) -> str:
    """The one JSON text of `value` (see the module's docstring)."""
    return json.dumps(jsonable(value), allow_nan=False)


def dump_chunks(head: dict, key: str, items: Iterable[object]) -> Iterator[str]:
    """The JSON text of `{**head, key: list(items)}` — the same text `dumps` gives — in
    pieces, one item at a time: a long list of big values (every tensor of a pass) is
    never held as Python objects all at once."""
    start = dumps(head)
    yield (start[:-1] + ", " if head else "{") + json.dumps(key) + ": ["
    for i, item in enumerate(items):
        yield (", " if i else "") + dumps(item)
    yield "]}"
