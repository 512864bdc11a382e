"""The headless sub-commands: `train`, `gradcheck` and `walk`.

Each turns the parsed flags into a `RunConfig` (a preset, then explicit flags on top),
drives an engine `Session`, and prints text or one JSON object.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import BinaryIO

import numpy as np

from bntui.cli.render import Progress, compact, table
from bntui.engine.config import DEFAULT_CONFIG, RunConfig, preset
from bntui.engine.errors import BntuiError, Diverged
from bntui.engine.jsonable import dumps
from bntui.engine.session import Session
from bntui.engine.threads import engine_threads
from bntui.numbers import fmt, fmt_err

HYPER_FLAGS = ("momentum", "beta1", "beta2", "rho")


def config_from_args(args: argparse.Namespace, default: RunConfig = DEFAULT_CONFIG) -> RunConfig:
    """The preset (or `default`: the defaults, or a lab's own setting) with every flag the
    user gave on top."""
    bug = getattr(args, "bug", None)
    if getattr(args, "preset", None):
        base = preset(args.preset)
    elif bug is not None:
        from bntui.engine.labs.bugs import scenario_config

        base = scenario_config(bug)
    else:
        base = default
    if args.dataset is not None:
        base = base.with_dataset(args.dataset)
    if args.optimizer is not None:
        base = base.with_optimizer(args.optimizer)
    changes: dict[str, object] = {
        name: getattr(args, name, None)
        for name in ("dataset", "samples", "noise", "classes", "val_fraction", "standardize",
                     "arch", "optimizer", "lr", "batch_size", "seed", "dtype", "epochs",
                     "eval_every", "gradients")
    }
    if args.command in ("train", "serve", "lab", None):
        changes["steps"] = args.steps
    hyper = dict(base.hyper)
    hyper.update({h: getattr(args, h) for h in HYPER_FLAGS if getattr(args, h, None) is not None})
    changes["hyper"] = tuple(sorted(hyper.items())) if hyper else None
    changes["bn_convention"] = args.bn_convention
    changes["bn_eps"] = args.bn_eps
    changes["bn_momentum"] = args.bn_momentum
    changes["bn_momentum_style"] = args.bn_momentum_style
    changes["bug"] = bug
    cfg = base.with_overrides(**changes)
    cfg.validate()
    return cfg


def refuse_what_cannot_fit(config: RunConfig) -> None:
    """Before the app or `serve` starts: a network that cannot fit in memory is one line
    (its dataset's shape from `least_shape`, nothing loaded)."""
    from bntui.engine.session import least_cost

    est = least_cost(config)
    if not est.fits:
        raise BntuiError(est.refusal())


def run(args: argparse.Namespace) -> int:
    if args.command == "lab":
        from bntui.cli.labs import run_lab

        return run_lab(args)
    commands = {"train": train, "gradcheck": gradcheck, "walk": walk, "serve": serve,
                "derive": derive}
    return commands[args.command](args)


def serve(args: argparse.Namespace) -> int:
    """Check the run flags here (a bad one is a line and exit 2, not a page that never
    starts), then pass the ones given on to the app each browser opens."""
    from bntui.cli.serve import serve as run_server

    refuse_what_cannot_fit(config_from_args(args))
    app_args: list[str] = []
    for name in (*RUN_FLAGS, "steps"):
        value = getattr(args, name, None)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            app_args.append(flag if value else f"--no-{name.replace('_', '-')}")
        else:
            app_args += [flag, str(value)]
    return run_server(args.host, args.port, app_args, args.max_sessions)


def _session(args: argparse.Namespace) -> Session:
    """The session the flags describe; its cost reckoned before anything is allocated
    (refused in one line if it cannot fit, a warning line if it will be very slow)."""
    from bntui.engine.session import build_dataset, cost

    config = config_from_args(args)
    dataset = build_dataset(config)
    checking = args.command == "gradcheck" and not args.no_numeric
    from bntui.engine.budget import TRACE_TENSORS, TRAIN_TENSORS

    traced = args.command in ("gradcheck", "walk", "derive")
    est = cost(config, dataset, entries=getattr(args, "entries", 16),
               tensors=TRACE_TENSORS if traced else TRAIN_TENSORS)
    if not est.fits:
        raise BntuiError(est.refusal())
    warning = est.warning(check=checking)
    if warning:
        print(f"bntui {args.command}: warning: {warning} (Ctrl-C stops)", file=sys.stderr,
              flush=True)
    return Session(config, dataset)


def _pretrain(session: Session, steps: int | None, quiet: bool) -> None:
    """Train before checking or walking, when --steps asks for it."""
    if steps:
        result = _train_with_progress(session, steps, quiet)
        if result.stopped:
            raise Diverged(result.stopped)


def _train_with_progress(session: Session, steps: int | None, quiet: bool,
                         epochs: int | None = None):
    total = steps if epochs is None else epochs * session.steps_per_epoch
    bar = Progress(total or 0, enabled=not quiet)
    start = session.step_count
    from bntui.cli import INTERRUPTED

    try:
        return session.train(
            steps=steps, epochs=epochs,
            on_step=lambda s: bar.update(s.step_count - start, s.history.loss[-1]),
            should_stop=INTERRUPTED.is_set,
        )
    finally:
        bar.close()


# train -------------------------------------------------------------------------------
def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.3g} s" if seconds >= 1 else f"{seconds * 1e3:.3g} ms"


def _gradient_report(args: argparse.Namespace, session: Session) -> dict[str, object]:
    """Where the run's gradients came from; when --gradients was given, what one step's
    gradients cost from each source, measured side by side on one batch."""
    from bntui.engine.gradient_sources import DESCRIPTIONS, seconds_per_step

    source = session.config.gradients
    out: dict[str, object] = {"source": source, "description": DESCRIPTIONS[source],
                              "seconds_per_step": None}
    if getattr(args, "gradients", None) is not None:
        X, y = session.inspection_batch()
        with engine_threads():
            out["seconds_per_step"] = seconds_per_step(session.network, X, y)
    return out


RUN_FLAGS = ("preset", "bug", "dataset", "samples", "noise", "classes", "val_fraction",
             "standardize", "arch", "dtype", "optimizer", "lr", "momentum", "beta1", "beta2",
             "rho", "batch_size", "seed", "bn_convention", "bn_eps", "bn_momentum",
             "bn_momentum_style", "gradients")


def _loaded_session(args: argparse.Namespace) -> Session:
    from bntui.engine.persist import load_session

    given = [f"--{f.replace('_', '-')}" for f in RUN_FLAGS if getattr(args, f, None) is not None]
    if given:
        raise BntuiError(f"--load resumes a saved session as it was; it cannot be combined "
                         f"with {', '.join(given)}")
    return load_session(args.load)


def _check_outputs(args: argparse.Namespace) -> None:
    """Where the run is to be written, checked before any training: a missing folder, a
    folder without permission or a missing torch is one line now, not a lost run later."""
    from bntui.engine.files import check_writable

    if args.save is not None:
        check_writable(args.save, "session file")
    if args.export_torch is not None:
        from bntui.engine.export import _import_torch

        _import_torch()
        check_writable(args.export_torch, "torch export")


def _write_outputs(args: argparse.Namespace, session: Session, out: dict) -> str | None:
    """Save and export; a write that fails now (a full disk, say) saves the session to a
    file of its own in the temporary folder instead, so the run is never lost.  The
    failure's line, or None."""
    from bntui.engine.persist import save_session

    failed: str | None = None
    if args.save is not None:
        try:
            out["saved"] = str(save_session(session, args.save))
        except BntuiError as exc:
            failed = str(exc)
    if args.export_torch is not None and failed is None:
        from bntui.engine.export import export_torch

        try:
            export_torch(session.network, args.export_torch)
            out["exported"] = args.export_torch
        except BntuiError as exc:
            failed = str(exc)
    if failed is not None and "saved" not in out:
        import tempfile
        import time

        rescue = os.path.join(tempfile.gettempdir(),
                              f"bntui-session-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.npz")
        try:
            out["saved"] = str(save_session(session, rescue))
            failed += f"; the trained session was saved to {rescue} instead"
        except BntuiError as exc:
            failed += f"; saving it to {rescue} failed too ({exc})"
    return failed


def train(args: argparse.Namespace) -> int:
    _check_outputs(args)
    session = _loaded_session(args) if args.load is not None else _session(args)
    cfg = session.config
    loaded = args.load is not None
    steps = args.steps if loaded else (None if cfg.epochs is not None else cfg.steps)
    epochs = args.epochs if loaded else cfg.epochs
    if loaded and steps is None and epochs is None:
        steps = 0
    result = _train_with_progress(session, steps, args.json, epochs=epochs)
    net = session.network
    with engine_threads():
        final_loss = net.train_loss(session.X_train, session.y_train)
    ev = result.evaluation or session.evaluate()  # the one that ended training, or now
    out = {
        "preset": args.preset,
        "dataset": session.dataset.name,
        "dataset_note": session.dataset.note or None,
        "arch": cfg.arch,
        "network": net.describe(),
        "params": net.n_params(),
        "optimizer": session.optimizer.name,
        "hyperparameters": session.optimizer.hyperparameters(),
        "batch_size": session.batch_size,
        "seed": cfg.seed,
        "dtype": cfg.dtype,
        "bn": cfg.bn.report(),
        "steps": session.step_count,
        "steps_this_run": result.steps,
        "epochs": session.epoch,
        "final_loss": final_loss,
        "train_loss_eval": ev["train_loss"],
        "train_accuracy": ev["train_accuracy"],
        "val_accuracy": ev["val_accuracy"],
        "val_loss": ev["val_loss"],
        "seconds": result.seconds,
        "steps_per_second": result.steps / result.seconds if result.seconds > 0 else None,
        "gradients": _gradient_report(args, session),
        "stopped": result.stopped,
    }
    from bntui.cli import INTERRUPTED

    interrupted = INTERRUPTED.is_set()
    if interrupted:
        out["stopped"] = f"interrupted (Ctrl-C) after {session.step_count} steps"
    failed = _write_outputs(args, session, out)
    if args.json:
        if args.history:
            out["history"] = session.history.to_dict()
        print(dumps(out))
    else:
        ds = session.dataset
        print(f"dataset    {ds.name}: {ds.n_train} train / {ds.n_val} validation, "
              f"{ds.n_features} features, {ds.n_classes} classes ({ds.scaling})")
        if ds.note:
            print(f"           {ds.note}")
        print(f"network    {net.describe()}   ({net.n_params():,} parameters)")
        print(f"optimizer  {session.optimizer.describe()}, batch {session.batch_size}, "
              f"seed {cfg.seed}, {cfg.dtype}")
        if net.batchnorms():
            print(f"batchnorm  {cfg.bn.describe()}")
        print(f"trained    {result.steps:,} steps in {result.seconds:.2f} s"
              + (f" ({result.steps / result.seconds:,.0f} steps/s)" if result.seconds else ""))
        grads = out["gradients"]
        if grads["seconds_per_step"]:
            costs = "   ".join(f"{k} {_ms(v)}" for k, v in grads["seconds_per_step"].items())
            print(f"gradients  {grads['source']} ({grads['description']}); one step's "
                  f"gradients: {costs}")
        print(f"final loss {final_loss:.6g}   (training mode, whole training set)")
        acc = ev["train_accuracy"]
        print(f"accuracy   train {100 * acc:.2f} %" if acc is not None else "accuracy   train —",
              end="")
        va = ev["val_accuracy"]
        print(f"   validation {100 * va:.2f} % ({ds.n_val} samples)" if va is not None
              else "   validation — (no validation split)")
        if "saved" in out:
            print(f"saved      {out['saved']}")
        if "exported" in out:
            print(f"exported   {args.export_torch} (torch.nn.Sequential; "
                  "bntui.engine.load_torch reads it)")
    if failed is not None:
        print(f"bntui train: error: {failed}", file=sys.stderr)
        return 2
    if interrupted:
        print(f"bntui train: interrupted after {session.step_count} steps"
              + ("; what was trained is written above" if "saved" in out or "exported" in out
                 else ""), file=sys.stderr)
        return 130
    if result.stopped:
        print(f"bntui train: {result.stopped}", file=sys.stderr)
        return 1
    return 0


# gradcheck ---------------------------------------------------------------------------
def gradcheck(args: argparse.Namespace) -> int:
    session = _session(args)
    _pretrain(session, args.steps, args.json)
    report = session.gradcheck(
        training=not args.eval, h=args.h, samples=args.entries, seed=session.config.seed,
        numeric=not args.no_numeric, autograd=not args.no_autograd, relative=not args.absolute_h,
    )
    worst = report.max_rel_error()
    verdict = None
    if session.config.bug is not None and not args.no_numeric:
        from bntui.engine.labs.bugs import judge

        verdict = judge(session.config.bug, session.network, report)
    if args.json:
        out = report.to_dict()
        out.update(dataset=session.dataset.name, arch=session.config.arch,
                   mode="eval" if args.eval else "training", steps=session.step_count,
                   batch_size=session.batch_size, bug=session.config.bug)
        if verdict is not None:
            out["bug_verdict"] = verdict.to_dict()
        print(dumps(out))
    else:
        lines = [
            [str(r.layer), r.tensor, fmt_err(r.numeric.rel_error if r.numeric else None),
             r.entries, fmt_err(r.autograd.rel_error if r.autograd else None),
             "; ".join(r.notes)]
            for r in report.rows()
        ]
        bug = f", with the bug {session.config.bug}" if session.config.bug else ""
        print(f"gradient check of {session.network.describe()} on {session.batch_size} samples "
              f"of {session.dataset.name} ({'eval' if args.eval else 'training'} mode{bug}, "
              f"loss {report.loss:.6g})")
        print(table(["layer", "tensor", "vs numerical", "entries", "vs autograd", "note"], lines))
        print()
        print("max relative error (judged entries): "
              f"numerical {fmt_err(worst['analytic_vs_numeric'])}, "
              f"autograd {fmt_err(worst['analytic_vs_autograd'])}")
        for note in report.trap_notes():
            print(f"note: {note}")
        if verdict is not None:
            v = verdict.to_dict()
            print(f"bug {verdict.bug}: {len(verdict.failed)} tensors fail (relative error above "
                  f"{verdict.tolerance:g} against the numerical gradients of its own forward): "
                  + ("exactly the ones it must break" if verdict.matches else
                     f"not as declared — failing {' '.join(v['failed']) or 'none'}; "
                     f"declared {' '.join(v['declared']) or 'none'}"))
    if args.tol is not None:
        judged = [v for v in worst.values() if v is not None]
        # NaN compares false with everything: an error that is not a number fails
        if judged and not all(v <= args.tol for v in judged):
            if not args.json:
                print(f"bntui gradcheck: a relative error exceeds --tol {args.tol:g}",
                      file=sys.stderr)
            return 1
    return 0


# walk --------------------------------------------------------------------------------
def walk(args: argparse.Namespace) -> int:
    """Text, JSON or a handout (md, html), on stdout or written atomically to --output."""
    form = args.format or ("json" if args.json else "text")
    if args.json and form != "json":
        raise BntuiError(f"--json means --format json; it cannot go with --format {form}")
    args.json = form == "json"
    if args.output is None:
        return _walk(args, form)
    import contextlib
    import io

    from bntui.engine.files import check_writable, write_atomic

    what = "handout" if form in ("md", "html") else "output file"
    check_writable(args.output, what)
    codes: list[int] = []

    def write(handle: BinaryIO) -> None:  # straight into the file, not held in memory
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=True)
        try:
            with contextlib.redirect_stdout(text):
                codes.append(_walk(args, form))
        finally:
            text.detach()

    write_atomic(args.output, write, what)
    return codes[0]


def _walk_entry(args: argparse.Namespace, session: Session, trace, form: str) -> int:
    """`walk --entry`: one entry's formula, its inputs' numbers, the entry recomputed."""
    from bntui.engine.entry import explain, find_step, parse_entry

    if form in ("md", "html"):
        raise BntuiError("--entry prints text or JSON, not a handout (drop --format)")
    name, index = parse_entry(args.entry)
    step = find_step(trace, name, args.layer, args.phase)
    if index is None:
        dims = " × ".join(str(n) for n in step.shape) or "a scalar"
        raise BntuiError(f"say which entry of {name} ({dims}), e.g. --entry '{name}"
                         f"[{', '.join('0' for _ in step.shape)}]'" if step.shape else
                         f"--entry '{name}'")
    e = explain(trace, session.network, session.inspection_batch()[1], step, index)
    if args.json:
        print(dumps(e.to_dict()))
        return 0
    print(f"{e.label}   {step.where} · {step.phase} · {step.kind}")
    print(f"  formula     {e.formula}")
    print(f"  entries     {e.indexed}")
    print(f"  numbers     {e.substituted}")
    print(f"  value       {e.value:.17g}")
    print(f"  recomputed  {e.recomputed:.17g}   (relative difference {e.error:.1e})")
    for i in e.inputs:
        v = np.asarray(i.value)
        shown = fmt(float(v)) if v.ndim == 0 else compact(v, 1, 8)
        print(f"  input       {i.index} = {shown}")
    if e.note:
        print(f"  note        {e.note}")
    return 0


def derive(args: argparse.Namespace) -> int:
    """`bntui derive`: the compact backward from the staged records, each step checked."""
    from bntui.engine import derive as derivation

    form = args.format or ("json" if args.json else "text")
    if args.json and form != "json":
        raise BntuiError(f"--json means --format json; it cannot go with --format {form}")
    session = _session(args)
    _pretrain(session, args.steps, form != "text")
    trace = session.trace(training=True)
    d = derivation.derive(session.network, trace, args.layer)
    if form == "json":
        print(dumps(d.to_dict()))
        return 0
    head = (f"layer {d.layer} of {session.network.describe()}, on {trace.batch_size} samples "
            f"of {session.dataset.name} (m = {trace.batch_size}), training mode")
    print(derivation.markdown(d, head) if form == "md" else derivation.text(d, head), end="")
    return 0


def walk_command_line(args: argparse.Namespace) -> str:
    """`bntui walk` with the flags that were given, to print in a handout's header."""
    words = ["bntui", "walk"]
    for name in (*RUN_FLAGS, "steps", "phase", "layer", "tensor", "eval", "check", "rows",
                 "cols", "graph", "format"):
        value = getattr(args, name, None)
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        words += [flag] if value is True else [flag, str(value)]
    return " ".join(words)


def _walk(args: argparse.Namespace, form: str) -> int:
    session = _session(args)
    _pretrain(session, args.steps, form != "text" or args.output is not None)
    training = not args.eval
    if args.check:
        trace, _ = session.checked_trace(training=training)
    else:
        trace = session.trace(training)
    if args.entry is not None:
        return _walk_entry(args, session, trace, form)
    steps = [
        s for s in trace.steps
        if (args.phase is None or s.phase == args.phase)
        and (args.layer is None or s.layer == args.layer)
        and (args.tensor is None or s.name.lower() == args.tensor.lower())
    ]
    if not steps:
        raise BntuiError("no step matches --phase/--layer/--tensor "
                         f"(layers 1–{len(session.network.blocks)})")
    if form in ("md", "html"):
        from bntui.handout import handout, info_for

        info = info_for(session, trace, walk_command_line(args))
        print(handout(form, trace, info, steps, rows=args.rows or 16, cols=args.cols or 8),
              end="")
        return 0
    if args.json:  # a step at a time: every tensor's values as JSON would be ~100 B each
        from bntui.engine.jsonable import dump_chunks
        from bntui.engine.sources import PassSources, step_inputs

        sources = PassSources(trace, session.network, session.inspection_batch()[1])
        head = {"dataset": session.dataset.name, "arch": session.config.arch,
                "mode": "training" if training else "eval", "loss": trace.loss,
                "batch_size": trace.batch_size,
                "normalization": [{"layer": b.index, "kind": b.norm.kind,
                                   "describe": b.norm.describe(),
                                   "convention": getattr(b.norm, "convention", None)}
                                  for b in session.network.blocks if b.norm is not None]}
        for chunk in dump_chunks(head, "steps", ({
                "index": s.index, "phase": s.phase, "layer": s.layer, "kind": s.kind,
                "name": s.name, "shape": list(s.shape), "formula": s.formula,
                "explanation": s.explanation, "inputs": step_inputs(sources, s),
                "stats": s.stats(), "checks": s.checks, "notes": s.notes,
                "value": s.value} for s in steps)):
            sys.stdout.write(chunk)
        sys.stdout.write("\n")
        return 0
    total = len(trace.steps)
    graphs: dict[int, object] = {}
    print(f"walk of {session.network.describe()} on {trace.batch_size} samples of "
          f"{session.dataset.name} ({'training' if training else 'eval'} mode): "
          f"{total} steps, loss {trace.loss:.6g}")
    norms = [b for b in session.network.blocks if b.norm is not None]
    for b in norms:  # each normalization as it is set (a BatchNorm's convention in force)
        print(f"  layer {b.index}: {b.norm.describe()}")  # type: ignore[union-attr]
    if not norms:
        print("  no normalization layer")
    for s in steps:
        shape = "×".join(str(d) for d in s.shape) or "scalar"
        st = s.stats()
        print()
        print(f"[{s.index + 1}/{total}] {s.phase} · {s.where} · {s.kind} · {s.name}  ({shape})")
        print(f"  {s.formula}")
        print(f"  {s.explanation}")
        if s.value.size > 1:
            print(f"  min {fmt(st['min'])}  mean {fmt(st['mean'])}  max {fmt(st['max'])}  "
                  f"std {fmt(st['std'])}")
        if s.checks:
            print("  relative error: " + ", ".join(
                f"vs {k} {fmt_err(v)}" for k, v in s.checks.items()))
        for note in s.notes:
            print(f"  note: {note}")
        if args.graph:
            from bntui.engine import graph

            layer = s.layer if s.layer is not None else len(session.network.blocks)
            if layer not in graphs:
                graphs[layer] = graph.block_graph(session.network, layer, training)
            print("    " + "\n    ".join(graph.text(graphs[layer], trace, s)))  # type: ignore[arg-type]
            continue
        print("    " + compact(s.value, args.rows or 6, args.cols or 8).replace("\n", "\n    "))
    return 0
