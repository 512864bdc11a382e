"""The `bntui` command: no sub-command opens the app; `train`, `gradcheck` and `walk`
run the engine headless and print text or JSON.

Bad input never ends in a traceback: it gets one line on stderr naming what is wrong and
exit status 2.  A run whose loss (or parameters, running statistics or optimizer state)
turned NaN or infinite exits with status 1.  NumPy's floating-point warnings are not
printed: a diverging run is reported once, in that line.

Ctrl-C is prompt even in the middle of a matrix product that takes minutes: the command
runs in a worker thread while the main thread waits for it.  On Ctrl-C, a `train` that
has something to write (`--save`, `--export-torch`) is asked to stop at the end of the
step it is in and writes what it trained, if that step ends within `GRACE` seconds;
otherwise the process says what was not written and exits at once, with status 130.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings

from bntui.cli.parser import UsageError, build_parser

GRACE = 2.0  # seconds a Ctrl-C'd `train --save` waits for its step to end
INTERRUPTED = threading.Event()  # set by Ctrl-C; training stops at the next step


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
    quiet_numbers()
    if args.command is None:
        from bntui.cli.app_entry import run_app

        return run_app(args)
    name = args.command if args.command != "lab" else f"lab {args.lab}"
    INTERRUPTED.clear()
    outcome: dict[str, object] = {}
    done = threading.Event()  # not Thread.join: a Ctrl-C inside join can leave the
    # thread looking finished when it is not (CPython 3.11)
    worker = threading.Thread(target=_run, args=(args, name, outcome, done), daemon=True,
                              name="bntui-command")
    worker.start()
    try:
        while not done.wait(0.25):
            pass
    except KeyboardInterrupt:
        INTERRUPTED.set()
        writes = [f for f in ("save", "export_torch") if getattr(args, f, None)]
        if not (writes and done.wait(GRACE)):
            _flush()
            lost = (" in the middle of a step: nothing was saved" if writes else "")
            print(f"bntui {name}: interrupted{lost}", file=sys.stderr, flush=True)
            os._exit(130)  # the worker may be inside a BLAS call for minutes
    return int(outcome.get("code", 1))  # type: ignore[call-overload]


def _run(args: object, name: str, outcome: dict[str, object],
         done: threading.Event) -> None:
    try:
        _command(args, name, outcome)
    finally:
        done.set()


def _command(args: object, name: str, outcome: dict[str, object]) -> None:
    from bntui.cli import commands
    from bntui.engine.errors import BntuiError, Diverged

    try:
        outcome["code"] = commands.run(args)  # type: ignore[arg-type]
    except Diverged as exc:
        print(f"bntui {name}: {exc}", file=sys.stderr)
        outcome["code"] = 1
    except BntuiError as exc:
        print(f"bntui {name}: error: {exc}", file=sys.stderr)
        outcome["code"] = 2
    except BrokenPipeError:
        outcome["code"] = 0
    except MemoryError:
        print(f"bntui {name}: error: out of memory (choose a smaller network, batch or "
              "dataset)", file=sys.stderr)
        outcome["code"] = 2


def quiet_numbers() -> None:
    """No RuntimeWarning (overflow, divide by zero, invalid value) reaches the user: the
    engine checks its results and says in one line when a run diverged."""
    warnings.filterwarnings("ignore", category=RuntimeWarning)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
