"""The Optimizer pane: the six optimizers and their hyper-parameters, learning rate,
batch size, the BatchNorm convention (a named one fills eps, momentum, its style and the
running statistic, which an edit then overrides), precision and seed; and the
optimizer's state (velocity, m, v, m̂, v̂, t) as the app's `Snapshot` carries it."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import var
from textual.widgets import Button, Input, Label, Select, Static

from bntui.engine.conventions import CONVENTIONS
from bntui.engine.conventions import DEFAULT as DEFAULT_CONVENTION
from bntui.engine.errors import BntuiError
from bntui.engine.gradient_sources import DESCRIPTIONS, SOURCES
from bntui.engine.optimizers import OPTIMIZERS
from bntui.engine.session import Session
from bntui.numbers import fmt
from bntui.ui.form import FormPane, Note, exact, parse_number
from bntui.ui.messages import ConfigChange
from bntui.ui.state import OptimizerView, Snapshot

HYPER = ("momentum", "beta1", "beta2", "rho")


SLOT_NAMES = {"velocity": "velocity", "m_hat": "m̂", "v_hat": "v̂"}
SCALAR_NAMES = {"bias1": "1 − β₁ᵗ", "bias2": "1 − β₂ᵗ"}


def state_text(view: OptimizerView) -> Text:
    """The optimizer's state: per parameter and slot, its root mean square and its largest
    entry with where it is (a slot's first entries can be a pixel that is never lit)."""
    t = Text()
    t.append(f"optimizer state after t = {view.t} updates", style="bold")
    scalars = next((v for v in view.scalars.values() if v), {})
    for name, value in scalars.items():
        t.append(f"   {SCALAR_NAMES.get(name, name)} = {fmt(value)}")
    if not any(view.slots.values()):
        t.append("\n(no state: plain SGD steps by −η·g alone)", style="grey50")
        return t
    t.append("\nper slot: root mean square · the largest entry, and where it is",
             style="grey50")
    for key, slots in view.slots.items():
        for i, slot in enumerate(slots):
            head = f"{key} ({'×'.join(map(str, slot.shape))})" if i == 0 else ""
            where = ", ".join(map(str, slot.at))
            t.append(f"\n{head:<14}", style="bold")
            t.append(f"{SLOT_NAMES.get(slot.name, slot.name):<9}")
            t.append(f"rms {fmt(slot.rms):>9} · largest {fmt(slot.largest):>9} at [{where}]")
    return t


class OptimizerPane(FormPane):
    BINDS = ("session", "snapshot", "active_tab")
    snapshot: var[Snapshot | None] = var(None, init=False)
    active_tab: var[str] = var("", init=False)  # the state is drawn only while on screen

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
            yield Label("BN convention")
            yield Select([(n, n) for n in CONVENTIONS], id="bn-convention",
                         allow_blank=False, value=DEFAULT_CONVENTION)
            yield Label("gradients")
            yield Select([(n, n) for n in SOURCES], id="gradients", allow_blank=False,
                         value="analytic")
        with Horizontal(classes="row"):
            yield Label("BN ε")
            yield Input(id="bn-eps")
            yield Label("BN momentum")
            yield Input(id="bn-momentum")
        with Horizontal(classes="row"):
            yield Label("momentum style")
            yield Select([("torch (new batch)", "torch"),
                          ("keras (old value)", "keras")], id="bn-style",
                         allow_blank=False, value="torch")
            yield Label("precision")
            yield Select([("float64", "float64"), ("float32", "float32")], id="dtype",
                         allow_blank=False, value="float64")
        with Horizontal(classes="row"):
            yield Label("running stat")
            yield Select([("var (torch)", "var"), ("std (seed 000)", "std")],
                         id="bn-running", allow_blank=False, value="var")
            yield Button("Apply", id="opt-apply", variant="primary")
        yield Note()
        yield Static(id="opt-formula")
        yield Static(id="opt-state")

    def load(self, session: Session) -> None:
        config, optimizer, batch_size = session.config, session.optimizer, session.batch_size
        self._current_hyper = dict(config.hyper)
        self.query_one("#opt", Select).value = optimizer.name
        self.query_one("#lr", Input).value = exact(optimizer.lr)
        hyper = optimizer.hyperparameters()
        for h in HYPER:
            self.query_one(f"#{h}", Input).value = exact(hyper[h]) if h in hyper else ""
        self.query_one("#batch", Input).value = (
            "" if config.batch_size is None else str(config.batch_size))
        self.query_one("#seed", Input).value = str(config.seed)
        self.query_one("#bn-convention", Select).value = config.bn.convention
        self.query_one("#bn-eps", Input).value = exact(config.bn.eps)
        self.query_one("#bn-momentum", Input).value = exact(config.bn.momentum)
        self.query_one("#bn-style", Select).value = config.bn.momentum_style
        self.query_one("#bn-running", Select).value = config.bn.running_stat
        self.query_one("#dtype", Select).value = config.dtype
        self.query_one("#gradients", Select).value = config.gradients
        self.remember("opt", "lr", *HYPER, "batch", "seed", "bn-convention", "bn-eps",
                      "bn-momentum", "bn-style", "bn-running", "dtype", "gradients")
        self.query_one("#opt-formula", Static).update(
            f"{optimizer.describe()}\n{optimizer.formula}\nbatch size {batch_size}, "
            f"gradients from {DESCRIPTIONS[config.gradients]}\n"
            f"BatchNorm {config.bn.describe()}")

    @on(Select.Changed, "#bn-convention")
    def fill_convention(self, event: Select.Changed) -> None:
        """A convention picked: its settings fill the BatchNorm fields (edit them after to
        override it); the session's own convention picked again: the session's values."""
        event.stop()
        loaded = getattr(self, "_loaded", {})
        name = str(event.value)
        if name not in CONVENTIONS or "bn-convention" not in loaded:
            return
        if name == loaded["bn-convention"]:
            values = {f: loaded[f] for f in ("bn-eps", "bn-momentum", "bn-style", "bn-running")}
        else:
            c = CONVENTIONS[name].settings
            values = {"bn-eps": exact(c.eps), "bn-momentum": exact(c.momentum),
                      "bn-style": c.momentum_style, "bn-running": c.running_stat}
        for field, value in values.items():
            self.query_one(f"#{field}").value = value  # type: ignore[attr-defined]

    def watch_snapshot(self) -> None:
        self.draw_state()

    def watch_active_tab(self) -> None:
        self.draw_state()

    def draw_state(self) -> None:
        snap = self.snapshot
        if snap is not None and snap.optimizer is not None and self.active_tab == "optimizer":
            self.query_one("#opt-state", Static).update(state_text(snap.optimizer))

    def changes(self) -> dict[str, Any]:
        """Only what the learner edited: a new optimizer starts from its own defaults."""
        out: dict[str, Any] = {}
        name = self.edited("opt")
        if name is not None:
            out["optimizer"] = name
        allowed = OPTIMIZERS[str(self.query_one("#opt", Select).value)].hyper
        numbers = (("lr", "lr", "learning rate", {"positive": True}),
                   ("batch", "batch_size", "batch size", {"integer": True, "low": 1}),
                   ("seed", "seed", "seed", {"integer": True, "low": 0}),
                   ("bn-eps", "bn_eps", "BN ε", {"low": 0}),
                   ("bn-momentum", "bn_momentum", "BN momentum", {"low": 0}))
        for field, key, what, rules in numbers:
            text = self.edited(field)
            if text is not None:
                out[key] = parse_number(text, what, optional=True, **rules)
        hyper = dict(self._current_hyper) if name is None else {}
        for h in HYPER:
            text = self.edited(h)
            if text is not None and h in allowed:
                value = parse_number(text, h, low=0, below=1, optional=True)
                if value is None:
                    hyper.pop(h, None)
                else:
                    hyper[h] = float(value)
        out["hyper"] = tuple(sorted(hyper.items()))
        for field, key in (("bn-convention", "bn_convention"), ("bn-style", "bn_momentum_style"),
                           ("bn-running", "bn_running_stat"), ("dtype", "dtype"),
                           ("gradients", "gradients")):
            value = self.edited(field)
            if value is not None:
                out[key] = value
        return out

    @on(Button.Pressed, "#opt-apply")
    @on(Input.Submitted)
    def apply(self) -> None:
        try:
            changes = self.changes()
        except BntuiError as exc:
            self.show_error(str(exc))
            return
        self.post_message(ConfigChange(changes, self))
