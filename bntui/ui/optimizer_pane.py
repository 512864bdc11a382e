"""The Optimizer pane: the six optimizers and their hyper-parameters, learning rate,
batch size, BatchNorm eps and momentum conventions, precision and seed."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, Select, Static

from bntui.engine.config import RunConfig
from bntui.engine.errors import BntuiError
from bntui.engine.optimizers import OPTIMIZERS, Optimizer
from bntui.ui.form import FormPane, Note, parse_number
from bntui.ui.messages import ConfigChange

HYPER = ("momentum", "beta1", "beta2", "rho")


class OptimizerPane(FormPane):
    DEFAULT_CSS = """
    OptimizerPane #opt-formula { height: auto; margin: 1 0; color: $accent; }
    OptimizerPane #opt-state { height: auto; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label("optimizer")
            yield Select([(n, n) for n in OPTIMIZERS], id="opt", allow_blank=False,
                         value="adam")
            yield Label("learning rate")
            yield Input(id="lr")
        with Horizontal(classes="row"):
            yield Label("momentum μ")
            yield Input(id="momentum", placeholder="0.9")
            yield Label("RMSprop ρ")
            yield Input(id="rho", placeholder="0.99")
        with Horizontal(classes="row"):
            yield Label("Adam β₁")
            yield Input(id="beta1", placeholder="0.9")
            yield Label("Adam β₂")
            yield Input(id="beta2", placeholder="0.999")
        with Horizontal(classes="row"):
            yield Label("batch size")
            yield Input(id="batch", placeholder="full batch")
            yield Label("seed")
            yield Input(id="seed", placeholder="0")
        with Horizontal(classes="row"):
            yield Label("BN ε")
            yield Input(id="bn-eps")
            yield Label("BN momentum")
            yield Input(id="bn-momentum")
        with Horizontal(classes="row"):
            yield Label("momentum style")
            yield Select([("torch: weight on the new batch", "torch"),
                          ("keras: weight on the old value", "keras")], id="bn-style",
                         allow_blank=False, value="torch")
            yield Label("precision")
            yield Select([("float64", "float64"), ("float32", "float32")], id="dtype",
                         allow_blank=False, value="float64")
        with Horizontal(classes="row"):
            yield Label("running stat")
            yield Select([("variance (torch)", "var"), ("std (seed 000)", "std")],
                         id="bn-running", allow_blank=False, value="var")
            yield Button("Apply", id="opt-apply", variant="primary")
        yield Note()
        yield Static(id="opt-formula")
        yield Static(id="opt-state")

    def load(self, config: RunConfig, optimizer: Optimizer, batch_size: int) -> None:
        self.query_one("#opt", Select).value = optimizer.name
        self.query_one("#lr", Input).value = f"{optimizer.lr:g}"
        hyper = optimizer.hyperparameters()
        for h in HYPER:
            self.query_one(f"#{h}", Input).value = f"{hyper[h]:g}" if h in hyper else ""
        self.query_one("#batch", Input).value = (
            "" if config.batch_size is None else str(config.batch_size))
        self.query_one("#seed", Input).value = str(config.seed)
        self.query_one("#bn-eps", Input).value = f"{config.bn.eps:g}"
        self.query_one("#bn-momentum", Input).value = f"{config.bn.momentum:g}"
        self.query_one("#bn-style", Select).value = config.bn.momentum_style
        self.query_one("#bn-running", Select).value = config.bn.running_stat
        self.query_one("#dtype", Select).value = config.dtype
        self.query_one("#opt-formula", Static).update(
            f"{optimizer.describe()}\n{optimizer.formula}\nbatch size {batch_size}")
        self.show_state(optimizer)

    def show_state(self, optimizer: Optimizer) -> None:
        """The optimizer's state for the first weight matrix (velocity, m, v, m̂, v̂, t)."""
        lines = [f"step count t = {optimizer.t}"]
        key = next(iter(optimizer.state), None)
        if key is not None:
            for name, value in optimizer.inspect(key).items():
                if hasattr(value, "shape") and getattr(value, "size", 1) > 1:
                    flat = value.reshape(-1)[:4]
                    lines.append(f"{key} {name}: " + ", ".join(f"{v:.3g}" for v in flat) + " …")
                elif name != "t":
                    lines.append(f"{key} {name}: {float(value):.6g}")
        self.query_one("#opt-state", Static).update("\n".join(lines))

    def changes(self) -> dict[str, Any]:
        def val(field: str) -> str:
            return self.query_one(f"#{field}", Input).value

        name = str(self.query_one("#opt", Select).value)
        hyper_allowed = OPTIMIZERS[name].hyper
        hyper = {}
        for h in HYPER:
            if h in hyper_allowed:
                v = parse_number(val(h), h, low=0, below=1, optional=True)
                if v is not None:
                    hyper[h] = float(v)
        return {
            "optimizer": name,
            "lr": parse_number(val("lr"), "learning rate", positive=True, optional=True),
            "hyper": tuple(sorted(hyper.items())),
            "batch_size": parse_number(val("batch"), "batch size", integer=True, low=1,
                                       optional=True),
            "seed": parse_number(val("seed"), "seed", integer=True, low=0, optional=True),
            "bn_eps": parse_number(val("bn-eps"), "BN ε", low=0, optional=True),
            "bn_momentum": parse_number(val("bn-momentum"), "BN momentum", low=0,
                                        optional=True),
            "bn_momentum_style": self.query_one("#bn-style", Select).value,
            "bn_running_stat": self.query_one("#bn-running", Select).value,
            "dtype": self.query_one("#dtype", Select).value,
        }

    @on(Button.Pressed, "#opt-apply")
    @on(Input.Submitted)
    def apply(self) -> None:
        try:
            changes = self.changes()
        except BntuiError as exc:
            self.show_error(str(exc))
            return
        self.post_message(ConfigChange(changes, self))
