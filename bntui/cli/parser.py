"""The argument parser of `bntui`: sub-commands, shared flags and value checks.

Every check here turns bad input into one line (`UsageError`), which `main` prints with
exit status 2; argparse's own multi-line usage dump on error is replaced.
"""

from __future__ import annotations

import argparse
import math

from bntui import __version__


class UsageError(Exception):
    """A command-line mistake, in one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def positive_float(what: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number (got '{text}')") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(
                f"{what} must be a positive finite number (got '{text}')"
            )
        return value

    return parse


def nonneg_float(what: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number (got '{text}')") from None
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"{what} must be a finite number ≥ 0 (got '{text}')")
        return value

    return parse


def fraction(what: str):
    def parse(text: str) -> float:
        value = nonneg_float(what)(text)
        if value >= 1:
            raise argparse.ArgumentTypeError(f"{what} must be below 1 (got '{text}')")
        return value

    return parse


def int_at_least(what: str, low: int, high: int | None = None):
    """A whole number from `low` (to `high`, when a larger one could only exhaust the
    machine: the engine's own limit, named where the value is used)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} must be a whole number (got '{text}')"
            ) from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{what} must be at least {low} (got {value})")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{what} must be at most {high:,} (got {value:,})")
        return value

    return parse


def path(what: str):
    """A file name that is not empty (an empty one would silently mean 'nowhere')."""
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{what} must name a file (got an empty name)")
        if "\0" in text:
            raise argparse.ArgumentTypeError(f"{what} must not contain a NUL character")
        return text

    return parse


RUN_FLAGS_HELP = """
presets:  seed-softmax, seed-digits (a preset sets everything; explicit flags override it)
datasets: seed-toy, digits, iris, wine, breast-cancer, moons, circles, blobs, spiral, xor,
          or the path of a .csv file (numeric features, label in the last column)
arch:     blocks 'width[:norm][:bias|nobias][:activation]' joined by commas; the last
          block is the output (softmax + cross-entropy), C = as many as the classes.
          norm: bn (BatchNorm, the default), ln (LayerNorm), gn=G (GroupNorm, G groups
          dividing the width), rms (RMSNorm), nobn or nonorm (none)
          e.g. '32:sigmoid,16:relu,10'  '4:nobias'  '64:tanh:nobn,C'  '16:ln:tanh,8:gn=4,C'
          activations: identity sigmoid tanh relu leaky_relu[=α] elu[=α]
optimizers: sgd momentum nesterov adagrad rmsprop adam
"""


# the names of `bntui.engine.conventions.CONVENTIONS` (the engine checks the name given;
# a test keeps this list the same as the engine's)
BN_CONVENTIONS = ("torch", "keras", "cs231n", "karpathy", "seed-000", "seed-003")


def add_run_flags(p: argparse.ArgumentParser, *, steps_default_help: str,
                  bug: bool = True) -> None:
    g = p.add_argument_group("what to run")
    g.add_argument("--preset", help="seed-softmax or seed-digits")
    if bug:
        g.add_argument("--bug", metavar="BUG_ID",
                       help="build one of the bug zoo's mistakes into the network (bntui lab "
                       "bugs lists them); without --preset, the bug's own scenario")
    g.add_argument("--dataset", help="a dataset name or a .csv path")
    g.add_argument("--samples", type=int_at_least("samples", 4),
                   help="points to generate (generated datasets)")
    g.add_argument("--noise", type=nonneg_float("noise"), help="noise (generated datasets)")
    g.add_argument("--classes", type=int_at_least("classes", 2),
                   help="classes (blobs, spiral)")
    g.add_argument("--val-fraction", type=fraction("val fraction"),
                   help="share held out for validation (default 0.2; 0 for seed-toy)")
    g.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                   help="standardise features with the training split's mean and std")
    g.add_argument("--arch", help="architecture spec, e.g. '32:sigmoid,16:relu,C' or "
                   "'16:ln:tanh,C' (norms: bn ln gn=G rms nobn)")
    g.add_argument("--dtype", choices=("float64", "float32"), help="default float64")
    o = p.add_argument_group("optimizer")
    o.add_argument("--optimizer", help="sgd, momentum, nesterov, adagrad, rmsprop or adam")
    o.add_argument("--lr", type=positive_float("learning rate"), help="learning rate")
    o.add_argument("--momentum", type=fraction("momentum"), help="momentum / nesterov μ")
    o.add_argument("--beta1", type=fraction("beta1"), help="Adam β₁ (0.9)")
    o.add_argument("--beta2", type=fraction("beta2"), help="Adam β₂ (0.999)")
    o.add_argument("--rho", type=fraction("rho"), help="RMSprop ρ (0.99)")
    o.add_argument("--batch-size", type=int_at_least("batch size", 1),
                   help="mini-batch size (default: the full training set)")
    o.add_argument("--steps", type=int_at_least("steps", 0), help=steps_default_help)
    o.add_argument("--seed", type=int_at_least("seed", 0), help="seed of every random choice (0)")
    o.add_argument("--gradients", choices=("analytic", "numerical", "autograd"),
                   help="where training's gradients come from: the backward pass (analytic, "
                   "the default), centred differences of every parameter, or PyTorch autograd")
    b = p.add_argument_group("BatchNorm")
    b.add_argument("--bn-convention", metavar="NAME",
                   help="a named convention: " + ", ".join(BN_CONVENTIONS) + " (torch; a "
                   "preset sets its own); --bn-eps/--bn-momentum/--bn-momentum-style "
                   "given too override it")
    b.add_argument("--bn-eps", type=nonneg_float("bn eps"), help="ε inside the root (1e-5)")
    b.add_argument("--bn-momentum", type=nonneg_float("bn momentum"),
                   help="running-stat momentum (0.1, weight of the new batch)")
    b.add_argument("--bn-momentum-style", choices=("torch", "keras"),
                   help="torch: weight on the new value; keras: weight on the old value")


def build_parser() -> Parser:
    top = Parser(
        prog="bntui",
        description="Learn batch normalization and backpropagation by stepping through them. "
        "With no command, opens the app.",
        epilog=RUN_FLAGS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"bntui {__version__}")
    add_run_flags(top, steps_default_help="steps for the app's 'train' button")
    sub = top.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")

    tr = sub.add_parser("train", help="train headless and report loss and accuracy",
                        description="Train a network headless and report loss and accuracy.",
                        epilog=RUN_FLAGS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_flags(tr, steps_default_help="optimizer steps (500; a preset sets its own)")
    tr.add_argument("--epochs", type=int_at_least("epochs", 0),
                    help="passes over the training set (instead of --steps)")
    tr.add_argument("--eval-every", type=int_at_least("eval every", 1),
                    help="steps between evaluations (default: a schedule that keeps them "
                         "within ~10 %% of the training work, at most ~100 a run)")
    tr.add_argument("--history", action="store_true", help="include the history in --json")
    tr.add_argument("--load", metavar="FILE", type=path("--load"),
                    help="resume a saved session (its configuration, weights, optimizer state "
                    "and history); only --steps/--epochs may be given with it")
    tr.add_argument("--save", metavar="FILE", type=path("--save"),
                    help="save the whole session after training (a versioned .npz, written "
                    "atomically); training N, saving, loading and training M more gives the "
                    "same numbers as N + M in one go")
    tr.add_argument("--export-torch", metavar="FILE", type=path("--export-torch"),
                    help="save the trained network as a torch.nn.Sequential (needs torch)")
    tr.add_argument("--json", action="store_true", help="print one JSON object")

    gc = sub.add_parser("gradcheck", help="check every gradient: analytic, numerical, autograd",
                        description="Check the gradient of every parameter and every "
                        "intermediate tensor: analytic vs numerical (centred differences) vs "
                        "PyTorch autograd (when torch is installed).",
                        epilog=RUN_FLAGS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_flags(gc, steps_default_help="train this many steps first (0)")
    gc.add_argument("--h", type=positive_float("h"), default=1e-5,
                    help="step of the centred difference (1e-5), relative to each tensor's "
                    "scale unless --absolute-h")
    gc.add_argument("--absolute-h", action="store_true", help="use h itself as the step")
    gc.add_argument("--entries", type=int_at_least("entries", 1), default=16,
                    help="entries checked numerically per intermediate tensor (16); every "
                    "parameter entry is always checked")
    gc.add_argument("--eval", action="store_true", help="check in eval mode (running stats)")
    gc.add_argument("--no-numeric", action="store_true", help="skip the numerical column")
    gc.add_argument("--no-autograd", action="store_true", help="skip the autograd column")
    gc.add_argument("--tol", type=positive_float("tol"),
                    help="exit 1 if a judged relative error exceeds this")
    gc.add_argument("--json", action="store_true", help="print one JSON object")

    sv = sub.add_parser("serve", help="serve the app to web browsers (textual-serve)",
                        description="Serve the app in a web browser through textual-serve, "
                        "so a teacher can show it to a class. Listens on 127.0.0.1 unless "
                        "--host says otherwise.",
                        epilog=RUN_FLAGS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_flags(sv, steps_default_help="steps for the app's 'train' button")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (127.0.0.1); 0.0.0.0 lets your network in")
    sv.add_argument("--port", type=int_at_least("port", 1), default=8000,
                    help="port to listen on (8000)")
    sv.add_argument("--max-sessions", type=int_at_least("max-sessions", 1), default=8,
                    help="apps running at once, one per browser tab (8; each takes about "
                    "80 MB); a tab beyond them is told to try again later")

    from bntui.cli.labs import add_lab_parser

    add_lab_parser(sub, Parser, RUN_FLAGS_HELP, add_run_flags)

    wk = sub.add_parser("walk", help="print every step of one forward + backward pass",
                        description="Print the trace of one forward + backward pass: each "
                        "step's formula, shape and a compact view of the tensor.",
                        epilog=RUN_FLAGS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_flags(wk, steps_default_help="train this many steps first (0)")
    wk.add_argument("--phase", choices=("forward", "backward"), help="only this phase")
    wk.add_argument("--layer", type=int_at_least("layer", 1), help="only this layer")
    wk.add_argument("--tensor", help="only tensors with this name (e.g. Znorm, dZ)")
    wk.add_argument("--eval", action="store_true", help="walk the eval-mode pass")
    wk.add_argument("--graph", action="store_true",
                    help="draw each step's block as its computational graph: the step's node "
                    "lit (▶), the nodes it reads marked (•), values and gradients beside")
    wk.add_argument("--entry", metavar="NAME[i,j]",
                    help="one entry's arithmetic: its formula with the numbers it reads "
                    "plugged in, recomputed (e.g. 'dZ0[13,1]'; with --layer)")
    wk.add_argument("--check", action="store_true",
                    help="run the gradient check and show each gradient's relative errors")
    wk.add_argument("--rows", type=int_at_least("rows", 1),
                    help="rows of each tensor to show (6; 16 in md/html)")
    wk.add_argument("--cols", type=int_at_least("cols", 1),
                    help="columns of each tensor to show (8)")
    wk.add_argument("--format", choices=("text", "json", "md", "html"),
                    help="text (default), json, md (a Markdown handout) or html (a "
                    "standalone page)")
    wk.add_argument("--output", metavar="FILE", type=path("--output"),
                    help="write to FILE (atomically) instead of stdout")
    wk.add_argument("--json", action="store_true", help="the same as --format json")

    dv = sub.add_parser("derive", help="derive the compact normalization backward, step by step",
                        description="Derive a normalization layer's compact backward from its "
                        "staged graph, one algebraic step at a time, each checked on the "
                        "current batch (the largest difference between its two sides).",
                        epilog=RUN_FLAGS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_flags(dv, steps_default_help="train this many steps first (0)")
    dv.add_argument("--layer", type=int_at_least("layer", 1),
                    help="the block whose normalization to derive (the first that has one)")
    dv.add_argument("--format", choices=("text", "md", "json"), help="text (default), md, json")
    dv.add_argument("--json", action="store_true", help="the same as --format json")
    return top
