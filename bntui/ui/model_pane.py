"""The Model pane: presets, the architecture as text and as an editor of blocks (width,
normalization — BatchNorm, LayerNorm, GroupNorm with its groups, RMSNorm or none —,
activation, bias), and the parameter counts per layer and in total.

The text and the rows say the same thing: Apply (the text) rebuilds the session and the
rows follow it; a change in a row rewrites the text at once (not yet applied: "Apply
blocks" or Apply does that).  Every check is the engine's: a row that does not make a
valid architecture (GroupNorm's groups not dividing the width, say) leaves the text as it
was and says why in the pane's one inline line, in `parse_arch`'s words.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from bntui.engine.activations import ACTIVATION_NAMES
from bntui.engine.arch import NORMS, OPTIONS, ArchSpec, BlockSpec, parse_arch
from bntui.engine.config import PRESETS
from bntui.engine.errors import BntuiError
from bntui.engine.session import Session
from bntui.ui.form import FormPane, Note, parse_number
from bntui.ui.messages import ConfigChange

NO_NORM = "none"  # the norm menu's value for a block without normalization
NORM_CHOICES = [(n.upper(), n) for n in NORMS] + [(NO_NORM, NO_NORM)]
HINT = (f"blocks 'width[:{'|'.join(o for o in OPTIONS if 'bias' not in o)}]"
        "[:bias|nobias][:activation]', commas between; the last is the output (softmax); "
        "C = classes, G = groups")


def default_groups(width: str) -> str:
    """GroupNorm's groups offered when a block switches to GN: 2 for an even width, else 1
    (the learner types another divisor)."""
    w = width.strip()
    return "2" if w.isascii() and w.isdigit() and int(w) % 2 == 0 else "1"


class BlockRow(Horizontal):
    """One block of the editor."""

    DEFAULT_CSS = """
    BlockRow { height: 3; }
    BlockRow > Label { width: 8; padding: 1 1 0 0; }
    BlockRow > Input { padding: 0 1; }
    BlockRow > Select > SelectCurrent { padding: 0 1; }
    BlockRow > .width { width: 9; }
    BlockRow > .norm { width: 11; }
    BlockRow > .groups { width: 6; }
    BlockRow > .act { width: 1fr; max-width: 17; min-width: 12; }
    BlockRow > .alpha { width: 9; }
    BlockRow > Checkbox { width: auto; }
    BlockRow > Button { min-width: 5; width: 5; }
    """

    def __init__(self, spec: BlockSpec, number: int, output: bool) -> None:
        super().__init__()
        self.spec, self.number, self.output = spec, number, output

    @property
    def where(self) -> str:
        return "the output" if self.output else f"block {self.number}"

    def compose(self) -> ComposeResult:
        s = self.spec
        yield Label("output" if self.output else f"block {self.number}")
        yield Input("C" if s.width is None else str(s.width), classes="width",
                    tooltip="width: a positive integer, or C (as many as the classes)")
        yield Select(NORM_CHOICES, value=s.norm or NO_NORM, allow_blank=False,
                     classes="norm", tooltip="normalization: BatchNorm, LayerNorm, "
                     "GroupNorm, RMSNorm or none")
        yield Input("" if s.groups is None else str(s.groups), placeholder="G",
                    classes="groups", disabled=s.norm != "gn",
                    tooltip="GroupNorm's number of groups (divides the width)")
        options = [("softmax", "identity")] if self.output else [(a, a) for a in ACTIVATION_NAMES]
        yield Select(options, value="identity" if self.output else s.activation,
                     allow_blank=False, classes="act", disabled=self.output)
        yield Input("" if s.alpha is None else f"{s.alpha:g}", placeholder="α",
                    classes="alpha", disabled=self.output)
        yield Checkbox("bias", s.bias, classes="bias")
        yield Button("✕", classes="remove", disabled=self.output)

    @on(Select.Changed, ".norm")
    def norm_changed(self, event: Select.Changed) -> None:
        """The groups field is GroupNorm's: enabled (and filled) only for GN."""
        groups = self.query_one(".groups", Input)
        groups.disabled = event.value != "gn"
        if event.value == "gn" and not groups.value.strip():
            groups.value = default_groups(self.query_one(".width", Input).value)

    def block(self) -> BlockSpec:
        """The row as a block; raises BntuiError naming a field that is not a value (how
        the blocks fit together is `parse_arch`'s to say)."""
        w = self.query_one(".width", Input).value.strip()
        width = None if w.upper() == "C" else parse_number(
            w, f"width of {self.where}", integer=True, low=1)
        alpha_text = self.query_one(".alpha", Input).value
        act = str(self.query_one(".act", Select).value)
        alpha = None
        if act in ("leaky_relu", "elu") and alpha_text.strip():
            alpha = parse_number(alpha_text, f"α of block {self.number}", low=0)
        chosen = str(self.query_one(".norm", Select).value)
        norm = None if chosen == NO_NORM else chosen
        groups = None
        if norm == "gn":
            groups = int(parse_number(self.query_one(".groups", Input).value,  # type: ignore[arg-type]
                                      f"groups of {self.where}", integer=True, low=1))
        return BlockSpec(width=None if width is None else int(width), norm=norm,
                         groups=groups, activation=act, alpha=alpha,
                         bias=self.query_one(".bias", Checkbox).value)


class ModelPane(FormPane):

    def __init__(self) -> None:
        super().__init__()
        self._rows_text = ""  # the architecture the rows make, as last written to the text
        self._row_error = False  # the note shows why the rows make no architecture

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label("preset")
            yield Select([(f"{k}", k) for k in PRESETS], id="preset", prompt="custom")
            yield Button("Load preset", id="load-preset")
        with Horizontal(classes="row"):
            yield Label("architecture")
            yield Input(id="arch", placeholder="32:sigmoid,16:ln:relu,C")
            yield Button("Apply", id="apply-arch", variant="primary")
        yield Static(HINT, classes="hint", markup=False)
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
        self._rows_text = arch.to_string()
        self._row_error = False
        box.mount_all(BlockRow(b, i + 1, i == n - 1) for i, b in enumerate(arch.blocks))

    def _rows(self) -> list[BlockRow]:
        return list(self.query(BlockRow))

    def rows_arch(self) -> str:
        """The architecture the rows make, checked by `parse_arch` (BntuiError if none)."""
        spec = ArchSpec(tuple(r.block() for r in self._rows())).to_string()
        parse_arch(spec)
        return spec

    # the rows → the text, at every change of a row ------------------------------------
    @on(Select.Changed, "BlockRow .norm")
    @on(Select.Changed, "BlockRow .act")
    @on(Input.Changed, "BlockRow Input")
    @on(Checkbox.Changed, "BlockRow Checkbox")
    def row_changed(self) -> None:
        """Write the rows' architecture into the text, or say inline why they make none
        (the text keeps what it had).  The rows' own first values, as they mount, change
        nothing."""
        try:
            spec = self.rows_arch()
        except NoMatches:  # rows still being mounted
            return
        except BntuiError as exc:
            self._row_error = True
            self.show_error(str(exc))
            return
        if self._row_error:
            self._row_error = False
            self.query_one(Note).clear()
        if spec != self._rows_text:
            self._rows_text = spec
            self.query_one("#arch", Input).value = spec

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

    def _rebuild(self, blocks: list[BlockSpec]) -> None:
        """New rows (a block added or removed) and the text following them; rows that make
        no architecture stay as they are, with `parse_arch`'s line."""
        spec = ArchSpec(tuple(blocks)).to_string()
        try:
            arch = parse_arch(spec)
        except BntuiError as exc:
            self.show_error(str(exc))
            return
        self._fill_blocks(arch)
        self.query_one("#arch", Input).value = spec

    @on(Button.Pressed, "#add-block")
    def add_block(self) -> None:
        try:
            blocks = [r.block() for r in self._rows()]
        except BntuiError as exc:
            self.show_error(str(exc))
            return
        blocks.insert(len(blocks) - 1, BlockSpec(width=16))
        self._rebuild(blocks)

    @on(Button.Pressed, ".remove")
    def remove_block(self, event: Button.Pressed) -> None:
        row = event.button.parent
        try:
            blocks = [r.block() for r in self._rows() if r is not row]
        except BntuiError as exc:
            self.show_error(str(exc))
            return
        self._rebuild(blocks)

    @on(Button.Pressed, "#apply-blocks")
    def apply_blocks(self) -> None:
        try:
            spec = self.rows_arch()
        except BntuiError as exc:
            self.show_error(str(exc))
            return
        self.query_one("#arch", Input).value = spec
        self.post_message(ConfigChange({"arch": spec}, self))
