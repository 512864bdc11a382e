"""The Model pane: presets, the architecture as text and as an editor of blocks (width,
BatchNorm, activation, bias), and the parameter counts per layer and in total."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from bntui.engine.activations import ACTIVATION_NAMES
from bntui.engine.arch import ArchSpec, BlockSpec, parse_arch
from bntui.engine.config import PRESETS
from bntui.engine.errors import BntuiError
from bntui.engine.session import Session
from bntui.ui.form import FormPane, Note, parse_number
from bntui.ui.messages import ConfigChange


class BlockRow(Horizontal):
    """One block of the editor."""

    DEFAULT_CSS = """
    BlockRow { height: 3; }
    BlockRow > Label { width: 9; padding: 1 1 0 0; }
    BlockRow > Input { width: 10; }
    BlockRow > Select { width: 20; }
    BlockRow > Checkbox { width: auto; }
    BlockRow > Button { min-width: 5; width: 5; }
    """

    def __init__(self, spec: BlockSpec, number: int, output: bool) -> None:
        super().__init__()
        self.spec, self.number, self.output = spec, number, output

    def compose(self) -> ComposeResult:
        s = self.spec
        yield Label("output" if self.output else f"block {self.number}")
        yield Input("C" if s.width is None else str(s.width), classes="width")
        yield Checkbox("BN", s.norm is not None, classes="bn")
        options = [("softmax", "identity")] if self.output else [(a, a) for a in ACTIVATION_NAMES]
        yield Select(options, value="identity" if self.output else s.activation,
                     allow_blank=False, classes="act", disabled=self.output)
        yield Input("" if s.alpha is None else f"{s.alpha:g}", placeholder="α",
                    classes="alpha", disabled=self.output)
        yield Checkbox("bias", s.bias, classes="bias")
        yield Button("✕", classes="remove", disabled=self.output)

    def block(self) -> BlockSpec:
        w = self.query_one(".width", Input).value.strip()
        width = None if w.upper() == "C" else parse_number(
            w, f"width of {'the output' if self.output else f'block {self.number}'}",
            integer=True, low=1)
        alpha_text = self.query_one(".alpha", Input).value
        act = str(self.query_one(".act", Select).value)
        alpha = None
        if act in ("leaky_relu", "elu") and alpha_text.strip():
            alpha = parse_number(alpha_text, f"α of block {self.number}", low=0)
        keep = self.spec.norm or "bn"
        on = self.query_one(".bn", Checkbox).value
        return BlockSpec(width=None if width is None else int(width),
                         norm=keep if on else None,
                         groups=self.spec.groups if on and keep == "gn" else None,
                         activation=act, alpha=alpha,
                         bias=self.query_one(".bias", Checkbox).value)


class ModelPane(FormPane):

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label("preset")
            yield Select([(f"{k}", k) for k in PRESETS], id="preset", prompt="custom")
            yield Button("Load preset", id="load-preset")
        with Horizontal(classes="row"):
            yield Label("architecture")
            yield Input(id="arch", placeholder="32:sigmoid,16:relu,C")
            yield Button("Apply", id="apply-arch", variant="primary")
        yield Static("blocks 'width[:bn|nobn][:bias|nobias][:activation]', commas between; "
                     "the last block is the output (softmax); C = number of classes",
                     classes="hint")
        yield Vertical(id="blocks")
        with Horizontal(classes="row"):
            yield Button("+ block", id="add-block")
            yield Button("Apply blocks", id="apply-blocks", variant="primary")
        yield Note()
        yield Static(id="params")

    def load(self, session: Session) -> None:
        config, network = session.config, session.network
        self.query_one("#arch", Input).value = config.arch
        self._fill_blocks(parse_arch(config.arch))
        rows = network.param_table()
        lines = ["[b]layer  kind        shape             parameters[/b]"]
        for r in rows:
            lines.append(f"{r['layer']:>5}  {r['kind']:<10}  {r['shape']:<16}  {r['params']:>10,}")
        lines.append(f"{'':>5}  {'total':<10}  {'':<16}  {network.n_params():>10,}")
        lines.append(f"\n{network.describe()}")
        self.query_one("#params", Static).update("\n".join(lines))

    def _fill_blocks(self, arch: ArchSpec) -> None:
        box = self.query_one("#blocks", Vertical)
        box.remove_children()
        n = len(arch.blocks)
        box.mount_all(BlockRow(b, i + 1, i == n - 1) for i, b in enumerate(arch.blocks))

    def _rows(self) -> list[BlockRow]:
        return list(self.query(BlockRow))

    @on(Button.Pressed, "#load-preset")
    def load_preset(self) -> None:
        name = self.query_one("#preset", Select).value
        if name is Select.BLANK:
            self.show_error("choose a preset first")
            return
        self.post_message(ConfigChange({"preset": name}, self))

    @on(Button.Pressed, "#apply-arch")
    @on(Input.Submitted, "#arch")
    def apply_arch(self) -> None:
        spec = self.query_one("#arch", Input).value
        try:
            parse_arch(spec)
        except BntuiError as exc:
            self.show_error(str(exc))
            return
        self.post_message(ConfigChange({"arch": spec}, self))

    @on(Button.Pressed, "#add-block")
    def add_block(self) -> None:
        try:
            blocks = [r.block() for r in self._rows()]
        except BntuiError as exc:
            self.show_error(str(exc))
            return
        blocks.insert(len(blocks) - 1, BlockSpec(width=16))
        self._fill_blocks(ArchSpec(tuple(blocks)))

    @on(Button.Pressed, ".remove")
    def remove_block(self, event: Button.Pressed) -> None:
        row = event.button.parent
        try:
            blocks = [r.block() for r in self._rows() if r is not row]
        except BntuiError as exc:
            self.show_error(str(exc))
            return
        self._fill_blocks(ArchSpec(tuple(blocks)))

    @on(Button.Pressed, "#apply-blocks")
    def apply_blocks(self) -> None:
        try:
            spec = ArchSpec(tuple(r.block() for r in self._rows())).to_string()
            parse_arch(spec)
        except BntuiError as exc:
            self.show_error(str(exc))
            return
        self.query_one("#arch", Input).value = spec
        self.post_message(ConfigChange({"arch": spec}, self))
