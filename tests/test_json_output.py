"""One JSON convention for every --json: non-finite numbers are null, nothing else leaks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import bntui
from bntui.engine.jsonable import dumps, jsonable


def strict_loads(text: str) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_null_at_any_depth() -> None:
    value = {"a": math.inf, "b": [1.0, -math.inf, {"c": math.nan}], "d": np.float32("nan"),
             "e": np.array([1.0, np.inf]), "f": (np.float64(2.5), np.int64(3)), "g": "inf"}
    out = strict_loads(dumps(value))
    assert out == {"a": None, "b": [1.0, None, {"c": None}], "d": None, "e": [1.0, None],
                   "f": [2.5, 3], "g": "inf"}
    assert jsonable(np.float64(0.5)) == 0.5


def test_dumps_refuses_what_is_not_json() -> None:
    with pytest.raises(TypeError):
        dumps({"x": object()})


def test_every_command_writes_json_through_the_one_helper() -> None:
    """No module of the command line calls json.dumps itself (persist's file header is
    not command output)."""
    root = Path(bntui.__file__).parent
    for path in [*root.rglob("*.py")]:
        if path.name in ("jsonable.py", "persist.py"):
            continue
        assert "json.dumps" not in path.read_text(), path
