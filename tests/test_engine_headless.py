"""The engine is headless: importing any of its modules loads no UI library, no
scikit-learn, no torch; `bntui.handout` is a pure layout of a trace (no CLI)."""

from __future__ import annotations

import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import bntui.engine

HEAVY = ("textual", "rich", "plotext", "textual_plotext", "sklearn", "torch")


def engine_modules() -> list[str]:
    """Every module under bntui/engine, recursively (labs included)."""
    names = ["bntui.engine"]
    for info in pkgutil.walk_packages(bntui.engine.__path__, "bntui.engine."):
        names.append(info.name)
    return names


def test_the_walk_finds_every_source_file() -> None:
    root = Path(bntui.engine.__file__).parent
    files = {p for p in root.rglob("*.py")}
    modules = engine_modules()
    assert len(modules) == len(files)
    assert "bntui.engine.labs.race" in modules


def test_each_engine_module_alone_imports_nothing_heavy() -> None:
    """Each module in a fresh interpreter (one after another would hide a module that
    imports rich, once another already has)."""
    code = (
        "import importlib, sys\n"
        f"heavy = {HEAVY!r}\n"
        "for name in sys.argv[1:]:\n"
        "    before = set(sys.modules)\n"
        "    importlib.import_module(name)\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    for name in [*engine_modules(), "bntui.cli.commands", "bntui.handout"]:
        res = subprocess.run([sys.executable, "-c", code, name], capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "", f"{name} loads {res.stdout.strip()}"


def test_engine_sources_name_no_ui_module() -> None:
    root = Path(bntui.engine.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        for mod in ("textual", "rich", "plotext", "bntui.ui", "bntui.cli"):
            assert f"import {mod}" not in text and f"from {mod}" not in text, path


def test_handout_does_not_import_the_command_line() -> None:
    import bntui.handout

    text = inspect.getsource(bntui.handout)
    assert "bntui.cli" not in text


def test_engine_gradcheck_is_the_module() -> None:
    import bntui.engine.gradcheck as gc

    assert inspect.ismodule(gc)
    assert callable(gc.gradcheck)
