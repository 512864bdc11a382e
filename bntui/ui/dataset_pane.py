"""The Dataset pane: choose a dataset (or a CSV file), its size, noise and split; see its
numbers and a preview of its points (a PCA plane for more than two features): on a big
dataset, the engine's sample of them, with the sizes of every sample the app reads."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.markup import escape
from textual.widgets import Button, Input, Label, Select, Static

from bntui.engine.datasets import DATASET_NAMES, GENERATED, describe_datasets
from bntui.engine.errors import BntuiError
from bntui.engine.session import Session
from bntui.ui.form import FormPane, Note, parse_number
from bntui.ui.messages import ConfigChange
from bntui.ui.region_view import PlaneView

CSV = "csv file…"


class PreviewView(PlaneView):
    """The training points in the dataset's plane (PCA for more than two features)."""

    def replot(self, session: Session) -> None:
        dataset, view = session.dataset, session.plane_sample()
        plane = view.plane
        title = dataset.name if len(dataset.name) < 30 else "…" + dataset.name[-28:]
        if plane.explained is not None:
            title += f" — PCA, {100 * sum(plane.explained):.0f}% of variance"
        self.show_points(view.points, view.labels, plane.labels, title,
                         [str(n) for n in dataset.class_names], view.total)


def samples_line(session: Session) -> str:
    """What the app reads of a big dataset (empty when it reads every row)."""
    view, (read, rows) = session.plane_sample(), session.eval_rows
    if view.whole and read >= rows:
        return ""
    return (f"\n[dim]a big set, read in samples fixed by the seed — plots: {view.rows:,} of "
            f"{view.total:,} training rows · stepper: {session.inspection_rows:,} rows · "
            f"curves while training: ≈ on {read:,} of {rows:,} rows[/dim]")


class DatasetPane(FormPane):
    def compose(self) -> ComposeResult:
        kinds = {d["name"]: d["kind"] for d in describe_datasets()}
        options = [(f"{n} ({kinds[n]})", n) for n in DATASET_NAMES] + [(CSV, CSV)]
        with Horizontal(classes="row"):
            yield Label("dataset")
            yield Select(options, id="ds-name", allow_blank=False, value=DATASET_NAMES[0])
        with Horizontal(classes="row"):
            yield Label("CSV path")
            yield Input(placeholder="path/to/file.csv (label in the last column)",
                        id="ds-csv")
        with Horizontal(classes="row"):
            yield Label("samples")
            yield Input(placeholder="default", id="ds-samples")
            yield Label("noise")
            yield Input(placeholder="default", id="ds-noise")
        with Horizontal(classes="row"):
            yield Label("classes")
            yield Input(placeholder="default", id="ds-classes")
            yield Label("validation")
            yield Input(placeholder="0.2", id="ds-val")
        with Horizontal(classes="row"):
            yield Label("scaling")
            yield Select([("dataset default", "default"), ("standardize", "yes"),
                          ("none", "no")], id="ds-scale", allow_blank=False, value="default")
            yield Button("Apply", id="ds-apply", variant="primary")
        yield Static("samples, noise and classes apply to the generated sets "
                     f"({', '.join(GENERATED)})", classes="hint")
        yield Note()
        yield Static(id="ds-info")
        yield PreviewView(id="ds-preview")

    def load(self, session: Session) -> None:
        """Show the session's dataset and settings."""
        config, dataset = session.config, session.dataset
        name = config.dataset
        is_csv = name.lower().endswith(".csv")
        self.query_one("#ds-name", Select).value = CSV if is_csv else name
        self.query_one("#ds-csv", Input).value = name if is_csv else ""
        for field, key in (("ds-samples", "samples"), ("ds-noise", "noise"),
                           ("ds-classes", "classes"), ("ds-val", "val_fraction")):
            value = getattr(config, key)
            self.query_one(f"#{field}", Input).value = "" if value is None else f"{value:g}"
        scale = {None: "default", True: "yes", False: "no"}[config.standardize]
        self.query_one("#ds-scale", Select).value = scale
        self.remember("ds-samples", "ds-noise", "ds-classes", "ds-val", "ds-scale")
        self.query_one("#ds-info", Static).update(
            f"[b]{escape(dataset.name)}[/b]: {escape(dataset.description)}\n"
            f"{dataset.n_train} train / {dataset.n_val} validation · {dataset.n_features} "
            f"features · {dataset.n_classes} classes · scaling: {dataset.scaling}"
            + (f"\n[dim]{escape(dataset.note)}[/dim]" if dataset.note else "")
            + samples_line(session)
        )
        self.query_one(PreviewView).replot(session)

    def changes(self) -> dict[str, Any]:
        name = self.query_one("#ds-name", Select).value
        if name == CSV:
            name = self.query_one("#ds-csv", Input).value.strip()
            if not name:
                raise BntuiError("type the path of a .csv file first")
            if not name.lower().endswith(".csv"):
                raise BntuiError(f"'{name}' does not end in .csv")
        out: dict[str, Any] = {"dataset": name}
        fields = (("ds-samples", "samples", {"integer": True, "low": 4}),
                  ("ds-noise", "noise", {"low": 0}),
                  ("ds-classes", "classes", {"integer": True, "low": 2}),
                  ("ds-val", "val_fraction", {"low": 0, "below": 1}))
        for field, key, rules in fields:
            text = self.edited(field)
            if text is not None:
                what = "validation fraction" if key == "val_fraction" else key
                out[key] = parse_number(text, what, optional=True, **rules)
        scale = self.edited("ds-scale")
        if scale is not None:
            out["standardize"] = {"default": None, "yes": True, "no": False}[scale]
        return out

    @on(Button.Pressed, "#ds-apply")
    @on(Input.Submitted)
    def apply(self) -> None:
        try:
            changes = self.changes()
        except BntuiError as exc:
            self.show_error(str(exc))
            return
        self.post_message(ConfigChange(changes, self))
