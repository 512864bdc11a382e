"""Save SVG screenshots of the app's main screens to assets/, each with a PNG beside it.

    python scripts/screenshots.py

Drives the app headless at 120 × 40 with Textual's Pilot (the same way the tests do),
saves `app.save_screenshot()` SVGs and turns each into a PNG with cairosvg.  Seeds default
to 0, so the pictures are the same on every run (the gradient check's duration is shown as
0.0 s).
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import cairosvg
from textual.pilot import Pilot
from textual.widgets import Input, Select

from bntui.engine import RunConfig, preset
from bntui.ui.app import BntuiApp
from bntui.ui.registry import PANES

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SIZE = (120, 40)
# cairosvg cannot load the SVG's web font: a local monospace face keeps the columns
# aligned, and the plots' braille dots come from a face that has them
PNG_FONT = "DejaVu Sans Mono"
BRAILLE_FONT = "DejaVu Sans"
TEXT_RUN = re.compile(r"<text ([^>]*)>([^<]*)</text>")


async def settle(app: BntuiApp, pilot: Pilot) -> None:
    for _ in range(200):
        if app.session is not None and all(app.query(p.make) for p in PANES):
            break
        await pilot.pause(0.02)
    await pilot.pause()


async def wait_for(condition: Callable[[], object], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the app did not reach the state to photograph")
        await asyncio.sleep(0.02)


async def quiet(app: BntuiApp, pilot: Pilot) -> None:
    """Workers done, no toasts, no focus ring or click flash."""
    await app.workers.wait_for_complete()
    await pilot.pause(0.3)
    app.screen.set_focus(None)
    app.clear_notifications()
    await pilot.pause()


async def train(app: BntuiApp, pilot: Pilot, steps: int) -> None:
    await pilot.press("2")
    app.query_one("#n-steps", Input).value = str(steps)
    await pilot.click("#run-n")
    await wait_for(lambda: app.session.step_count == steps and not app.playing)
    await quiet(app, pilot)


async def check(app: BntuiApp, pilot: Pilot) -> None:
    await pilot.press("g")
    await wait_for(lambda: app.check is not None)
    await quiet(app, pilot)
    app.check = replace(app.check, seconds=0.0)  # the same record, its time shown as 0.0 s
    await pilot.pause()


async def stepper(app: BntuiApp, pilot: Pilot) -> None:
    """The stepper on dZ of layer 2, its gradient checked three ways."""
    await check(app, pilot)
    await pilot.press("1")
    for _ in range(app.trace.index_of("dZ", 2)):
        await pilot.press("n")


async def training(app: BntuiApp, pilot: Pilot) -> None:
    await train(app, pilot, 300)


async def gradcheck(app: BntuiApp, pilot: Pilot) -> None:
    await check(app, pilot)
    await pilot.press("6")


async def model(app: BntuiApp, pilot: Pilot) -> None:
    """The seed-digits preset: 64 → 32 BN sigmoid → 16 BN relu → 10 BN softmax."""
    await pilot.press("4")
    app.query_one("#preset", Select).value = "seed-digits"
    await pilot.click("#load-preset")
    await wait_for(lambda: app.session.dataset.name == "digits")
    await quiet(app, pilot)


async def bn(app: BntuiApp, pilot: Pilot) -> None:
    """Batch vs running statistics after 50 steps."""
    await train(app, pilot, 50)
    await pilot.press("7")


async def lab(app: BntuiApp, pilot: Pilot, lab_id: str) -> None:
    """Open the Labs pane on `lab_id` and wait until its results are drawn."""
    from bntui.ui.labs_pane import LabsPane

    await pilot.press("8")
    await wait_for(lambda: app.query(LabsPane))
    pane = app.query_one(LabsPane)
    pane.show_lab(lab_id)
    await wait_for(lambda: pane.current is not None and lab_id == pane.current.LAB_ID
                   and pane.current.ready, timeout=120)
    await quiet(app, pilot)


async def exercise(app: BntuiApp, pilot: Pilot) -> None:
    """The Exercise lab on its first BatchNorm value question, answered to 4 digits."""
    from bntui.ui.labs.exercise import ExerciseLab

    await lab(app, pilot, "exercise")
    view = app.query_one(ExerciseLab)
    q = view.question
    bn_values = ("Z0", "std", "Znorm", "dgamma", "dstd", "dvar", "dZ0", "dZ")
    while q is not None and not (q.kind == "value" and q.name in bn_values):
        right = {"value": repr(q.value), "shape": "x".join(map(str, q.shape)) or "scalar",
                 "formula": "abcd"[q.choice or 0]}[q.kind]
        view.submit(right)
        view.next_question()
        q = view.question
    assert q is not None and q.value is not None
    field = view.query_one("#ex-answer", Input)
    field.value = f"{q.value:.4g}"
    view.submit(field.value)
    await quiet(app, pilot)


async def start(app: BntuiApp, pilot: Pilot) -> None:
    """The first screen of a bare `bntui`: the start panel over the stepper."""
    await pilot.pause(0.3)


async def tour(app: BntuiApp, pilot: Pilot) -> None:
    """The guided tour at its Znorm stop."""
    await pilot.press("w", "enter", "enter", "enter")
    await pilot.pause(0.3)


async def stepper_exercise(app: BntuiApp, pilot: Pilot) -> None:
    """Exercise mode in the stepper: dZ0 of layer 1 hidden and asked."""
    for _ in range(app.trace.index_of("dZ0", 1)):
        await pilot.press("n")
    await pilot.press("x")
    await pilot.pause(0.3)


async def stepper_layernorm(app: BntuiApp, pilot: Pilot) -> None:
    """The stepper on mu of a LayerNorm block: one mean per sample (m × 1)."""
    for _ in range(app.trace.index_of("mu", 1)):
        await pilot.press("n")
    await pilot.pause(0.3)


async def inside_graph(app: BntuiApp, pilot: Pilot) -> None:
    """The stepper's graph view at dZ0 of a LayerNorm block: the node lit, its inputs."""
    app.index = app.trace.index_of("dZ0", 1)
    await pilot.press("v")
    await pilot.pause(0.3)


async def inside_entry(app: BntuiApp, pilot: Pilot) -> None:
    """One entry's arithmetic at dZ0 of the first block, its inputs in their own grids."""
    app.index = app.trace.index_of("dZ0", 1)
    await pilot.pause(0.1)
    await pilot.press("i")
    await pilot.pause(0.3)


MOONS = RunConfig(dataset="moons", arch="8:tanh,6:relu,C", steps=300)
SHOTS: dict[str, tuple[RunConfig | None, Callable[[BntuiApp, Pilot], Awaitable[None]]]] = {
    "start": (None, start),  # None: as `bntui` with no flags, so the start panel shows
    "tour": (replace(preset("seed-softmax"), steps=100), tour),
    "stepper": (MOONS, stepper),
    "training": (MOONS, training),
    "gradcheck": (MOONS, gradcheck),
    "model": (replace(preset("seed-softmax"), steps=100), model),
    "bn": (MOONS, bn),
    "stepper-exercise": (replace(preset("seed-softmax"), steps=100), stepper_exercise),
    "stepper-layernorm": (replace(MOONS, arch="16:ln:tanh,8:gn=4:relu,C:rms"),
                          stepper_layernorm),
    "inside-graph": (replace(MOONS, arch="8:ln:tanh,6:relu,C"), inside_graph),
    "inside-entry": (MOONS, inside_entry),
    # the labs: "lab-<id>": (config, lambda app, pilot: lab(app, pilot, "<id>")),
    "lab-bugs": (MOONS, lambda app, pilot: lab(app, pilot, "bugs")),
    "lab-bn": (MOONS, lambda app, pilot: lab(app, pilot, "bn")),
    "lab-batch": (RunConfig(), lambda app, pilot: lab(app, pilot, "batch")),
    "lab-exercise": (replace(preset("seed-softmax"), steps=100), exercise),
    "lab-health": (replace(MOONS, arch="16:sigmoid,16:relu,C"),
                   lambda app, pilot: lab(app, pilot, "health")),
    "lab-race": (MOONS, lambda app, pilot: lab(app, pilot, "race")),
    "lab-hsweep": (MOONS, lambda app, pilot: lab(app, pilot, "hsweep")),
    "lab-norms": (MOONS, lambda app, pilot: lab(app, pilot, "norms")),
}


async def shoot(name: str, config: RunConfig | None,
                arrange: Callable[[BntuiApp, Pilot], Awaitable[None]]) -> Path:
    app = BntuiApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await arrange(app, pilot)
        await pilot.pause()
        svg_path = Path(app.save_screenshot(f"{name}.svg", str(ASSETS)))
    png_path = svg_path.with_suffix(".png")
    cairosvg.svg2png(bytestring=for_png(svg_path.read_text(encoding="utf-8")).encode("utf-8"),
                     write_to=str(png_path))
    return svg_path


def for_png(svg: str) -> str:
    """The SVG with fonts cairosvg can find on this machine (the .svg file keeps its own)."""

    def run(m: re.Match[str]) -> str:
        attrs, body = m.groups()
        if any("\u2800" <= c <= "\u28ff" for c in body):
            attrs += f' style="font-family: {BRAILLE_FONT}"'
            x, length = re.search(r'x="([\d.]+)"', attrs), re.search(r'textLength="([\d.]+)"',
                                                                     attrs)
            if x and length and body:  # one position a character: braille stays in its cell
                x0, cell = float(x.group(1)), float(length.group(1)) / len(body)
                xs = " ".join(f"{x0 + i * cell:.1f}" for i in range(len(body)))
                attrs = attrs.replace(x.group(0), f'x="{xs}"')
        return f"<text {attrs}>{body}</text>"

    return TEXT_RUN.sub(run, svg.replace("Fira Code", PNG_FONT))


def handout() -> Path | None:
    """assets/handout.png: the seed-softmax HTML handout as headless Chromium draws it."""
    import shutil
    import subprocess
    import tempfile

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("handout: no chromium on PATH, skipped", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "handout.html"
        subprocess.run([sys.executable, "-m", "bntui", "walk", "--preset", "seed-softmax",
                        "--format", "html", "--check", "--output", str(page)], check=True)
        out = ASSETS / "handout.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", "--window-size=1100,1300",
                        f"--screenshot={out}", page.as_uri()],
                       check=True, capture_output=True, timeout=120)
    return out


def main(argv: list[str]) -> int:
    """All the screenshots, or only those named on the command line."""
    ASSETS.mkdir(exist_ok=True)
    if not argv or "handout" in argv:
        if (path := handout()) is not None:
            print(path.relative_to(ASSETS.parent))
        argv = [n for n in argv if n != "handout"]
        if not argv and "handout" in sys.argv[1:]:
            return 0
    unknown = [n for n in argv if n not in SHOTS]
    if unknown:
        print(f"unknown screenshot {unknown[0]!r}; one of {', '.join(SHOTS)}", file=sys.stderr)
        return 2
    for name, (config, arrange) in SHOTS.items():
        if argv and name not in argv:
            continue
        path = asyncio.run(shoot(name, config, arrange))
        print(f"{path.relative_to(ASSETS.parent)} (+ .png)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
