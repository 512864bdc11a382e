"""BatchNorm train vs eval: the same batch through batch statistics and through running
statistics, side by side per feature, and the chosen output (training mode, eval mode,
or their difference).  A network without BatchNorm (LayerNorm, GroupNorm, RMSNorm, or no
normalization) gets one line saying so: the others keep no running statistics.

One control chooses what the grid shows — no second switch that could disagree with it.
The numbers are the engine's (`train_vs_eval`, carried by the app's `Snapshot`).
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import var
from textual.widgets import Label, Select, Static

from bntui.engine.network import Network
from bntui.numbers import fmt as fmt_cell
from bntui.ui.live import LiveView
from bntui.ui.state import BNView, Snapshot
from bntui.ui.tensor_grid import TensorGrid

VIEWS = (("Zbn in training mode (batch statistics)", "Zbn_train"),
         ("Zbn in eval mode (running statistics)", "Zbn_eval"),
         ("training − eval", "Zbn_diff"))
SHOWN_FEATURES = 8
PANE_ID = "bn"


def no_batchnorm_line(network: Network) -> str:
    """What the pane says for a network without a BatchNorm layer, in one line, naming the
    normalizations it has instead (none of which keeps running statistics)."""
    titles = list(dict.fromkeys(b.norm.title for b in network.blocks
                                if b.norm is not None and not b.norm.running_state()))
    if not titles:
        return ("no BatchNorm layer in this network (no normalization at all): add a BN "
                "block (Model pane, 4) to compare training and eval mode")
    add = "add a BN block (Model pane, 4) to see one"
    names = titles[0] if len(titles) == 1 else f"{', '.join(titles[:-1])} and {titles[-1]}"
    verb = "keeps" if len(titles) == 1 else "keep"
    return (f"no BatchNorm layer in this network: {names} {verb} no running statistics and "
            f"{'has' if len(titles) == 1 else 'have'} no train/eval gap; {add}")


class BNPane(LiveView, Vertical):
    BINDS = ("snapshot", "active_tab")
    snapshot: var[Snapshot | None] = var(None, init=False)
    active_tab: var[str] = var("", init=False)  # drawn only while on screen

    def watch_active_tab(self) -> None:
        self.draw()

    def compose(self) -> ComposeResult:
        with Horizontal(id="bn-bar", classes="bar"):
            yield Label("layer")
            yield Select([], id="bn-layer", allow_blank=True, prompt="layer")
            yield Label("show")
            yield Select(VIEWS, id="bn-view", allow_blank=False, value="Zbn_diff")
        yield Static(id="bn-stats")
        yield TensorGrid(id="bn-grid")

    def watch_snapshot(self, old: Snapshot | None, new: Snapshot | None) -> None:
        if new is None or new.bn is None:
            return
        layers = [v.layer for v in new.bn]
        sel = self.query_one("#bn-layer", Select)
        if old is None or old.bn is None or [v.layer for v in old.bn] != layers:
            keep = sel.value if sel.value in layers else (layers[0] if layers else None)
            with self.prevent(Select.Changed):
                sel.set_options([(f"layer {i}", i) for i in layers])
                if keep is None:
                    sel.clear()
                else:
                    sel.value = keep
        self.draw()

    @property
    def view(self) -> str:
        return str(self.query_one("#bn-view", Select).value)

    def current(self) -> BNView | None:
        snap = self.snapshot
        layer = self.query_one("#bn-layer", Select).value
        if snap is None or snap.bn is None:
            return None
        return next((v for v in snap.bn if v.layer == layer), None)

    def draw(self) -> None:
        stats = self.query_one("#bn-stats", Static)
        grid = self.query_one(TensorGrid)
        snap, bn = self.snapshot, self.current()
        if snap is None or snap.bn is None or self.active_tab != PANE_ID:
            return
        # without a BatchNorm layer: one line, no menus or grid to pick from
        self.query_one("#bn-bar").display = bool(snap.bn)
        grid.display = bn is not None
        if bn is None:
            stats.update(Text(no_batchnorm_line(snap.session.network), style="yellow")
                         if not snap.bn else "choose a layer")
            grid.set_tensor(np.zeros((0, 0)))
            return
        out = bn.out
        t = Text()
        t.append(f"layer {bn.layer} · {bn.samples} samples × {bn.features} features · "
                 f"ε = {bn.eps:g} · running stats after {bn.batches} batches\n",
                 style="bold")
        t.append("feature   batch mean   running mean   batch std   running std", style="grey50")
        t.append(f"   (step {snap.parts.get('bn', snap.step):,})\n", style="grey50")
        bm, bv = out.get("batch_mu"), out.get("batch_std")
        for j in range(min(bn.features, SHOWN_FEATURES)):
            t.append(f"{j:>7}   {fmt_cell(bm[j]) if bm is not None else '—':>10}   "
                     f"{fmt_cell(out['running_mean'][j]):>12}   "
                     f"{fmt_cell(bv[j]) if bv is not None else '—':>9}   "
                     f"{fmt_cell(out['running_std'][j]):>11}\n")
        if bn.features > SHOWN_FEATURES:
            t.append(f"… {bn.features - SHOWN_FEATURES} more features\n", style="grey50")
        view = self.view
        label = dict((v, k) for k, v in VIEWS)[view]
        if view not in out:  # a batch of one has no training-mode statistics
            t.append(f"{label}: needs a batch of 2 or more; showing eval mode", style="yellow")
            view = "Zbn_eval"
        elif bn.diff_max is not None:
            t.append(f"max |training − eval| = {fmt_cell(bn.diff_max)}, mean "
                     f"{fmt_cell(bn.diff_mean or 0.0)}", style="yellow")
        stats.update(t)
        grid.border_title = dict((v, k) for k, v in VIEWS)[view]
        grid.set_tensor(out[view])

    @on(Select.Changed)
    def changed(self) -> None:
        self.draw()
