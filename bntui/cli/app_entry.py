"""Opening the Textual app from the command line (kept apart so `train` never imports it)."""

from __future__ import annotations

import argparse
import sys


def run_app(args: argparse.Namespace) -> int:
    try:
        from bntui.ui.app import BntuiApp
    except ImportError:
        from bntui.cli.parser import build_parser

        build_parser().print_help()
        return 0
    from bntui.cli.commands import config_from_args
    from bntui.engine.errors import BntuiError

    try:
        config = config_from_args(args)
    except BntuiError as exc:
        print(f"bntui: error: {exc}", file=sys.stderr)
        return 2
    BntuiApp(config=config).run()
    return 0
