"""Handouts: `bntui walk --format md|html` against the trace it renders, HTML that parses
and balances, escaping, and `--output` (atomic, or one line and exit 2)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from bntui.cli import main
from bntui.engine import RunConfig, Session, TraceStep, preset
from bntui.engine.trace import Trace
from bntui.handout import HandoutInfo, html_page, markdown
from bntui.numbers import fmt

SOFTMAX = ["--preset", "seed-softmax"]
MOONS = ["--dataset", "moons", "--arch", "8:tanh,C"]


def walk(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["walk", *args])
    out, err = capsys.readouterr()
    return code, out, err


def md_table_rows(section: str) -> list[list[str]]:
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows[2:]]


def sections(md: str) -> list[tuple[str, str]]:
    """(heading, body) of each step."""
    parts = re.split(r"^### ", md, flags=re.M)[1:]
    return [(p.splitlines()[0], p) for p in parts]


def test_markdown_has_every_step_in_order_with_formula_and_full_small_tensors(capsys):
    code, md, err = walk(capsys, *SOFTMAX, "--format", "md")
    assert code == 0 and err == ""
    trace = Session(preset("seed-softmax")).trace()
    steps = sections(md)
    assert len(steps) == len(trace.steps) == 22
    assert md.index("## Forward pass") < md.index("## Backward pass")
    for (head, body), step in zip(steps, trace.steps, strict=True):
        assert head.startswith(f"{step.index + 1}/22 · {step.where} · {step.kind} · "
                               f"`{step.name}`")
        assert f"`{step.formula}`" in body
        assert step.explanation.split()[0] in body
        value = np.asarray(step.value)
        if value.ndim == 0:
            assert f"**{fmt(float(value))}**" in body
            continue
        grid = value if value.ndim == 2 else value[None, :]
        rows = md_table_rows(body)
        assert len(rows) == grid.shape[0]  # 16 × 4 and smaller: shown whole
        for row, expect in zip(rows, grid, strict=True):
            assert row[1:] == [fmt(float(v)) for v in expect]
    assert "| dataset | seed-toy" in md and "| mode | training (batch statistics) |" in md


def test_markdown_of_a_big_tensor_shows_a_corner_and_its_stats(capsys):
    code, md, _ = walk(capsys, *MOONS, "--format", "md", "--tensor", "Z", "--layer", "1")
    assert code == 0
    (head, body), = sections(md)
    assert "(160 × 8)" in head
    assert "top-left 16 × 8 of 160 × 8" in body
    z = Session(RunConfig(dataset="moons", arch="8:tanh,C")).trace().find("Z", 1).value
    assert f"mean {fmt(float(z.mean()))}" in body and f"max {fmt(float(z.max()))}" in body
    rows = md_table_rows(body)
    assert len(rows) == 17 and rows[-1][0] == "⋮"  # 16 rows, then ⋮


def test_checked_handout_gives_each_gradient_its_errors(capsys):
    code, md, _ = walk(capsys, *SOFTMAX, "--format", "md", "--check", "--phase", "backward")
    assert code == 0
    body = dict(sections(md))
    dw = next(b for h, b in body.items() if "`dW`" in h)
    assert re.search(r"Gradient check \(relative error\): vs numerical \d\.\d\de-\d\d \(good\)",
                     dw)
    assert "## Forward pass" not in md


class Balance(HTMLParser):
    VOID = {"meta", "br", "img", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_html_is_standalone_and_well_formed(capsys):
    code, page, _ = walk(capsys, *SOFTMAX, "--format", "html", "--check")
    assert code == 0
    assert page.startswith("<!DOCTYPE html>")
    parser = Balance()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert parser.tags >= {"html", "head", "body", "style", "table", "section", "h3"}
    assert not parser.tags & {"script", "link", "img", "iframe"}
    assert not any(k in ("src", "href") for k, _ in parser.attrs)  # nothing from outside
    assert "http" not in page
    assert page.count("<section") == 22
    assert "dβ = Σᵢ dZbn" in page and "(good)" in page


def test_text_that_looks_like_markup_is_escaped():
    step = TraceStep(0, "forward", 1, "dense", "Z<b>", np.array([[1.0, -2.0]]),
                     "Z = X < W & b > 0", "<script>alert(1)</script> * _x_")
    trace = Trace([step], loss=0.5, training=True, batch_size=1)
    info = HandoutInfo("set <1>", "net & co", "1 sample", "training", "0 steps", "bntui walk")
    page = html_page(trace, info)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Z = X &lt; W &amp; b &gt; 0" in page and "Z&lt;b&gt;" in page
    parser = Balance()
    parser.feed(page)
    assert parser.errors == [] and parser.stack == []
    md = markdown(trace, info)
    assert "\\<script\\>" in md and "\\* \\_x\\_" in md
    assert "`Z = X < W & b > 0`" in md  # code spans are literal


def test_output_writes_the_same_document_atomically(capsys, tmp_path):
    _, stdout_md, _ = walk(capsys, *SOFTMAX, "--format", "md")
    target = tmp_path / "walk.md"
    target.write_text("old")
    code, out, err = walk(capsys, *SOFTMAX, "--format", "md", "--output", str(target))
    assert (code, out, err) == (0, "", "")
    assert target.read_text(encoding="utf-8") == stdout_md
    assert [p.name for p in tmp_path.iterdir()] == ["walk.md"]  # no temporary file left
    code, _, _ = walk(capsys, *SOFTMAX, "--json", "--output", str(tmp_path / "w.json"))
    assert code == 0 and len(json.loads((tmp_path / "w.json").read_text())["steps"]) == 22


@pytest.mark.parametrize("where", ["missing/dir/walk.md", "."])
def test_output_that_cannot_be_written_is_one_line_and_exit_2(capsys, tmp_path, where):
    target = tmp_path / where
    code, out, err = walk(capsys, *SOFTMAX, "--format", "html", "--output", str(target))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "cannot write" in err
    assert "Traceback" not in err
    assert not Path(tmp_path / "missing").exists()


def test_json_stays_an_alias_and_text_stays_the_default(capsys):
    code, out, _ = walk(capsys, *SOFTMAX, "--json", "--tensor", "mu")
    assert code == 0 and json.loads(out)["steps"][0]["name"] == "mu"
    code, out2, _ = walk(capsys, *SOFTMAX, "--format", "json", "--tensor", "mu")
    assert json.loads(out2) == json.loads(out)
    code, text, _ = walk(capsys, *SOFTMAX, "--tensor", "mu")
    assert code == 0 and text.startswith("walk of 2 → 4 BN softmax")
    code, out, err = walk(capsys, *SOFTMAX, "--json", "--format", "md")
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, out, err = walk(capsys, *SOFTMAX, "--format", "pdf")
    assert code == 2 and "invalid choice" in err
