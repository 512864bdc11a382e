"""BatchNorm train vs eval: the same batch through batch statistics and through running
statistics, side by side per feature, and the difference of the outputs."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Select, Static, Switch

from bntui.engine.batchnorm import train_vs_eval
from bntui.engine.network import Network
from bntui.numbers import fmt as fmt_cell
from bntui.ui.tensor_grid import TensorGrid

VIEWS = (("Zbn training", "Zbn_train"),
         ("Zbn eval", "Zbn_eval"),
         ("train − eval", "Zbn_diff"))


class BNPane(Vertical):
    DEFAULT_CSS = """
    BNPane { padding: 0 1; }
    BNPane #bn-bar { height: 3; }
    BNPane #bn-bar > Label { padding: 1 1 0 1; }
    BNPane #bn-layer { width: 16; }
    BNPane #bn-view { width: 1fr; max-width: 44; }
    BNPane #bn-stats { height: auto; max-height: 12; }
    """

    def on_mount(self) -> None:
        self.app.load_pane(self)  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        with Horizontal(id="bn-bar"):
            yield Label("layer")
            yield Select([], id="bn-layer", allow_blank=True, prompt="layer")
            yield Label("show")
            yield Select(VIEWS, id="bn-view", allow_blank=False, value="Zbn_diff")
            yield Label("eval mode")
            yield Switch(False, id="bn-eval")
        yield Static(id="bn-stats")
        yield TensorGrid(id="bn-grid")

    def set_layers(self, network: Network) -> None:
        layers = [b.index for b in network.blocks if b.bn is not None]
        sel = self.query_one("#bn-layer", Select)
        sel.set_options([(f"layer {i}", i) for i in layers])
        if layers:
            sel.value = layers[0]
        self._network = network

    def refresh_view(self, network: Network, X: np.ndarray) -> None:
        """Run the batch through the network up to the chosen BatchNorm and compare."""
        self._network = network
        sel = self.query_one("#bn-layer", Select).value
        stats = self.query_one("#bn-stats", Static)
        if sel is Select.BLANK or not isinstance(sel, int):
            stats.update("this network has no BatchNorm layer: add one in the Model pane")
            self.query_one(TensorGrid).set_tensor(np.zeros((0, 0)))
            return
        block = network.blocks[sel - 1]
        assert block.bn is not None
        with np.errstate(all="ignore"):
            network.forward(X, training=True, update_running=False)
            Z = block.cache["Z"]
            out = train_vs_eval(block.bn, Z)
        view = str(self.query_one("#bn-view", Select).value)
        if self.query_one("#bn-eval", Switch).value and view != "Zbn_diff":
            view = "Zbn_eval"
        t = Text()
        t.append(f"layer {sel}: {Z.shape[0]} samples × {Z.shape[1]} features · "
                 f"ε = {block.bn.eps:g} · running stats after "
                 f"{block.bn.num_batches_tracked} batches\n", style="bold")
        t.append("feature   batch mean   running mean   batch std   running std\n",
                 style="grey50")
        bm, bv = out.get("batch_mu"), out.get("batch_std")
        for j in range(min(Z.shape[1], 8)):
            t.append(f"{j:>7}   {fmt_cell(bm[j]) if bm is not None else '—':>10}   "
                     f"{fmt_cell(out['running_mean'][j]):>12}   "
                     f"{fmt_cell(bv[j]) if bv is not None else '—':>9}   "
                     f"{fmt_cell(out['running_std'][j]):>11}\n")
        if Z.shape[1] > 8:
            t.append(f"… {Z.shape[1] - 8} more features\n", style="grey50")
        if "Zbn_diff" in out:
            d = np.abs(out["Zbn_diff"])
            t.append(f"max |training − eval| = {fmt_cell(float(d.max()))}, mean "
                     f"{fmt_cell(float(d.mean()))}", style="yellow")
        stats.update(t)
        self.query_one(TensorGrid).set_tensor(out.get(view, out["Zbn_eval"]))

    @on(Select.Changed)
    @on(Switch.Changed)
    def changed(self) -> None:
        self.app.refresh_bn_pane()  # type: ignore[attr-defined]
