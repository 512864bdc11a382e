"""The `bntui` command: no sub-command opens the app; `train`, `gradcheck` and `walk`
run the engine headless and print text or JSON.

Bad input never ends in a traceback: it gets one line on stderr naming what is wrong and
exit status 2.  A run whose loss turned NaN or infinite exits with status 1.
"""

from __future__ import annotations

import sys

from bntui.cli.parser import UsageError, build_parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    if args.command is None:
        from bntui.cli.app_entry import run_app

        return run_app(args)
    from bntui.cli import commands
    from bntui.engine.errors import BntuiError

    name = args.command if args.command != "lab" else f"lab {args.lab}"
    try:
        return commands.run(args)
    except BntuiError as exc:
        print(f"bntui {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bntui {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
