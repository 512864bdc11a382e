"""The Gradient check pane: relative errors per layer and tensor, analytic vs numerical
vs autograd, coloured by how good they are, with the traps named."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import var
from textual.widgets import Button, DataTable, Static

from bntui.engine.gradcheck import GradcheckReport
from bntui.ui.live import LiveView
from bntui.ui.state import CheckRecord
from bntui.ui.stepper import error_style


class CheckRequest(Message):
    """Run the gradient check."""


class CheckPane(LiveView, Vertical):
    """The app's last `CheckRecord` (bound), or what is happening while there is none."""

    BINDS = ("check", "checking")
    check: var[CheckRecord | None] = var(None, init=False)
    checking: var[bool] = var(False, init=False)

    def compose(self) -> ComposeResult:
        with Horizontal(id="check-bar", classes="bar"):
            yield Button("Run gradient check (g)", id="run-check", variant="primary")
            yield Static("not run yet: press g", id="check-summary")
        yield DataTable(id="check-table", zebra_stripes=True, cursor_type="row")
        yield Static(id="check-notes")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("layer", "tensor", "vs numerical", "entries", "vs autograd", "note")
        self.busy("not run yet: press g")

    def watch_checking(self, checking: bool) -> None:
        if checking:
            self.busy("checking every gradient… (numerical differences take a while on big "
                      "networks)")
        else:  # ended, failed, or dropped with its session: what there is
            self.watch_check(self.check)

    def watch_check(self, record: CheckRecord | None) -> None:
        if record is not None:
            session = record.session
            self.show(record.report, record.seconds,
                      (session.inspection_rows, session.dataset.n_train))
        elif not self.checking:
            self.query_one(DataTable).clear()
            self.query_one("#check-notes", Static).update("")
            self.busy("not run yet: press g")

    def busy(self, text: str) -> None:
        self.query_one("#check-summary", Static).update(Text(text, style="italic yellow"))

    def show(self, report: GradcheckReport, seconds: float,
             rows: tuple[int, int] | None = None) -> None:
        """The report; `rows`: (rows checked, training rows), said when a part."""
        table = self.query_one(DataTable)
        table.clear()
        for row in report.rows():
            cells: list[object] = [str(row.layer), row.tensor]
            for c in (row.numeric, row.autograd):
                if c is None:
                    cells.append(Text("—", style="grey50"))
                else:
                    style = "grey50" if c.status != "ok" else error_style(c.rel_error)
                    text = "—" if c.rel_error is None else f"{c.rel_error:.2e}"
                    cells.append(Text(text, style=style))
                if c is row.numeric:
                    cells.append(row.entries)
            cells.append("; ".join(row.notes))
            table.add_row(*cells)
        worst = report.max_rel_error()
        s = Text()
        s.append("max relative error  ", style="bold")
        for key, label in (("analytic_vs_numeric", "numerical"), ("analytic_vs_autograd",
                                                                  "autograd")):
            v = worst[key]
            s.append(f"vs {label} ")
            s.append("—" if v is None else f"{v:.2e}", style=error_style(v))
            s.append("   ")
        part = "" if rows is None or rows[0] >= rows[1] else (
            f", the stepper's batch: {rows[0]:,} of {rows[1]:,} rows")
        s.append(f"({seconds:.1f} s, loss {report.loss:.6g}{part})", style="grey50")
        self.query_one("#check-summary", Static).update(s)
        self.query_one("#check-notes", Static).update(
            "\n".join(f"• {n}" for n in report.trap_notes()))

    @on(Button.Pressed, "#run-check")
    def run(self) -> None:
        self.post_message(CheckRequest())
