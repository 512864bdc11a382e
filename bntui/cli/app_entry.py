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
    from bntui.cli.commands import RUN_FLAGS, config_from_args, refuse_what_cannot_fit
    from bntui.engine.errors import BntuiError

    try:
        # no flags: the app's own first screen (the seed-softmax preset)
        config = config_from_args(args) if any(
            getattr(args, f, None) is not None for f in (*RUN_FLAGS, "steps")) else None
        if config is not None:
            refuse_what_cannot_fit(config)
    except BntuiError as exc:
        print(f"bntui: error: {exc}", file=sys.stderr)
        return 2
    BntuiApp(config=config).run()
    return 0
