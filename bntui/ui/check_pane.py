"""The Gradient check pane: relative errors per layer and tensor, analytic vs numerical
vs autograd, coloured by how good they are, with the traps named."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Static

from bntui.engine.gradcheck import GradcheckReport
from bntui.ui.stepper import error_style


class CheckRequest(Message):
    """Run the gradient check."""


class CheckPane(Vertical):
    DEFAULT_CSS = """
    CheckPane { padding: 0 1; }
    CheckPane #check-bar { height: 3; }
    CheckPane #check-summary { height: auto; padding: 1 0 0 1; }
    CheckPane DataTable { height: 1fr; }
    CheckPane #check-notes { height: auto; max-height: 8; color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal(id="check-bar"):
            yield Button("Run gradient check (g)", id="run-check", variant="primary")
            yield Static("not run yet: press g", id="check-summary")
        yield DataTable(id="check-table", zebra_stripes=True, cursor_type="row")
        yield Static(id="check-notes")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("layer", "tensor", "vs numerical", "entries", "vs autograd", "note")
        self.app.load_pane(self)  # type: ignore[attr-defined]

    def busy(self, text: str) -> None:
        self.query_one("#check-summary", Static).update(Text(text, style="italic yellow"))

    def show(self, report: GradcheckReport, seconds: float) -> None:
        table = self.query_one(DataTable)
        table.clear()
        rows: dict[tuple[int, str], dict[str, object]] = {}
        for c in report.checks:
            row = rows.setdefault((c.layer, c.tensor), {"n": None, "a": None, "notes": []})
            row["n" if c.pair == "analytic_vs_numeric" else "a"] = c
            if c.status != "ok":
                row["notes"].append(c.status.replace("_", " "))  # type: ignore[union-attr]
            if c.kink_entries:
                row["notes"].append(f"{c.kink_entries} across a kink")  # type: ignore[union-attr]
        for (layer, tensor), row in rows.items():
            cells: list[object] = [str(layer), tensor]
            n, a = row["n"], row["a"]
            for c in (n, a):
                if c is None:
                    cells.append(Text("—", style="grey50"))
                else:
                    err = c.rel_error  # type: ignore[union-attr]
                    style = "grey50" if c.status != "ok" else error_style(err)  # type: ignore[union-attr]
                    cells.append(Text("—" if err is None else f"{err:.2e}", style=style))
                if c is n:
                    cells.append(f"{n.entries}/{n.total}" if n else "")  # type: ignore[union-attr]
            cells.append("; ".join(dict.fromkeys(row["notes"])))  # type: ignore[arg-type]
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
        s.append(f"({seconds:.1f} s, loss {report.loss:.6g})", style="grey50")
        self.query_one("#check-summary", Static).update(s)
        notes = []
        seen = set()
        for c in report.checks:
            if c.note and c.status not in seen:
                seen.add(c.status)
                notes.append(f"• {c.status.replace('_', ' ')}: {c.note}")
        notes += [f"• {n}" for n in report.notes]
        self.query_one("#check-notes", Static).update("\n".join(notes))

    @on(Button.Pressed, "#run-check")
    def run(self) -> None:
        self.post_message(CheckRequest())
