"""Opening the Textual app from the command line (kept apart so `train` never imports it).

The command's exit status is the app's: 0 when the learner quits, 1 when the app crashed
(Textual shows the error and sets `App.return_code` to 1 on an unhandled exception), so
that a script, `bntui serve` or a test sees a crash as one.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.app import App


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
    from bntui.ui.quit_fast import exit_now_if_busy

    status = run_to_status(BntuiApp(config=config))
    exit_now_if_busy(status)  # a training step still inside a matrix product
    return status


def run_to_status(app: App[Any], *, headless: bool = False) -> int:
    """Run `app` until it exits; its exit status (a crash: 1; no return code, as when the
    terminal went away without one: 0)."""
    app.run(headless=headless)
    return app.return_code or 0
