"""`bntui lab NAME`: the labs of the app, headless.

Each lab lives in its own module `bntui/cli/lab_<name>.py`, which defines

    HELP: str                               one line for `bntui lab --help`
    DESCRIPTION: str                        a paragraph for `bntui lab NAME --help`
    def add_arguments(p: ArgumentParser)    the lab's own flags (the run flags are added here)
    def run(args: Namespace) -> int         print text, or one JSON object with --json

and is listed in `LABS` below (name → module).  The run flags (`--preset`, `--dataset`,
`--arch`, `--optimizer`, …) are shared with `train`, so `config_from_args(args)` gives the
lab its starting configuration.
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

LABS: dict[str, str] = {
    # name: module under bntui.cli
    "bugs": "lab_bugs",
    "bn": "lab_bn",
    "batch": "lab_batch",
    "health": "lab_health",
    "race": "lab_race",
    "exercise": "lab_exercise",
    "hsweep": "lab_hsweep",
    "norms": "lab_norms",
}


def lab_module(name: str) -> ModuleType:
    return importlib.import_module(f"bntui.cli.{LABS[name]}")


def add_lab_parser(sub: argparse._SubParsersAction, parser_class: type, run_flags_help: str,
                   add_run_flags) -> None:
    """`bntui lab NAME ...`: one sub-parser per lab, each with the run flags."""
    lab = sub.add_parser("lab", help="run one of the labs headless (bugs, bn, batch, …)",
                         description="The app's labs, headless. Each prints a report, or one "
                         "JSON object with --json.")
    labs = lab.add_subparsers(dest="lab", parser_class=parser_class, metavar="LAB")
    labs.required = True
    for name in LABS:
        module = lab_module(name)
        p = labs.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                            epilog=run_flags_help,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        add_run_flags(p, steps_default_help="training steps of the lab (the lab's default)",
                      bug=False)
        module.add_arguments(p)
        if not any(a.dest == "json" for a in p._actions):
            p.add_argument("--json", action="store_true", help="print one JSON object")


def run_lab(args: argparse.Namespace) -> int:
    return int(lab_module(args.lab).run(args))
