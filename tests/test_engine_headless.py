"""The engine is headless: importing it loads no UI library, no scikit-learn, no torch."""

from __future__ import annotations

import subprocess
import sys


def test_engine_imports_no_ui_and_nothing_heavy() -> None:
    code = (
        "import sys, bntui.engine, bntui.cli.commands\n"
        "bad = [m for m in ('textual', 'rich', 'plotext', 'textual_plotext', 'sklearn', 'torch')"
        " if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ""


def test_engine_sources_name_no_ui_module() -> None:
    from pathlib import Path

    import bntui.engine

    root = Path(bntui.engine.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        for mod in ("textual", "rich", "plotext"):
            assert f"import {mod}" not in text and f"from {mod}" not in text, path
