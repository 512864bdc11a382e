"""The computational graph of a block: its edges are the records' reads, its lanes a
faithful drawing of them, its focus the stepper's step."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bntui.engine.arch import parse_arch
from bntui.engine.graph import block_graph, focus, lanes, rows, text
from bntui.engine.network import Network
from bntui.engine.trace import record_trace


def _net(arch: str, seed: int = 0) -> tuple[Network, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    net = Network.build(parse_arch(arch), 3, 3, rng)
    return net, rng.normal(size=(10, 3)), rng.integers(0, 3, 10)


def test_a_batchnorm_block_is_drawn_as_worked_out_by_hand() -> None:
    net, _, _ = _net("6:tanh,C")
    g = block_graph(net, 1, training=True)
    assert g.names() == ["X", "Z", "mu", "Z0", "var", "std", "Znorm", "Zbn", "A"]
    edges = {n.name: n.inputs for n in g.nodes}
    assert edges["Z0"] == ("Z", "mu") and edges["Znorm"] == ("Z0", "std")
    assert edges["std"] == ("var",) and edges["A"] == ("Zbn",)
    assert set(g.find("Z").constants) == {"W", "b"}  # type: ignore[union-attr]
    # Z runs on past mu to Z0, Z0 on past var and std to Znorm: two lanes
    assert [a.rstrip() for a in lanes(g)] == ["●", "●", "├─●", "●─╯", "├─●", "│ ●", "●─╯",
                                              "●", "●"]


def test_in_eval_mode_the_statistics_do_not_depend_on_the_batch() -> None:
    net, _, _ = _net("6:tanh,C")
    g = block_graph(net, 1, training=False)
    assert g.find("mu").inputs == ()  # type: ignore[union-attr]  # mu = running_mean
    assert "running_mean" in g.find("mu").constants  # type: ignore[union-attr]
    assert lanes(g)[2].rstrip() == "│ ●"  # Z passes mu by, unread


@pytest.mark.parametrize("arch", ["6:ln:tanh,6:gn=2:relu,C:rms", "5:nobn:sigmoid,C"])
@pytest.mark.parametrize("training", [True, False])
def test_every_edge_is_a_read_of_its_record_and_every_lane_row_has_one_node(
        arch: str, training: bool) -> None:
    net, X, y = _net(arch)
    trace = record_trace(net, X, y, training)
    for layer in range(1, len(net.blocks) + 1):
        g = block_graph(net, layer, training)
        art = lanes(g)
        assert len(art) == len(g.nodes)
        for row, node in zip(art, g.nodes, strict=True):
            assert row.count("●") == 1
            if node.name == "X":
                continue
            step = next(s for s in trace.steps if s.phase == "forward" and s.name == node.name
                        and s.layer in (layer, None))
            sources = {g.node_of(src) for src, _ in step.words.reads}  # type: ignore[union-attr]
            assert set(node.inputs) <= sources
        # every input reaches its reader: a joint on its lane, or the reader's own lane
        for k, node in enumerate(g.nodes):
            joints = sum(art[k].count(c) for c in "├┤╰╯")
            assert len(node.inputs) - 1 <= joints <= len(node.inputs)


def test_the_focus_follows_the_step() -> None:
    net, X, y = _net("6:ln:tanh,C")
    trace = record_trace(net, X, y)
    g = block_graph(net, 1, True)
    assert focus(g, trace.find("Z0", 1, "forward")) == ("Z0", {"Z", "mu"})
    assert focus(g, trace.find("dZ0", 1, "backward")) == ("Z0", {"Znorm", "std", "var"})
    assert focus(g, trace.find("dA", 1, "backward")) == ("A", set())
    drawn = rows(g, trace, trace.find("dstd", 1, "backward"))
    std = next(r for r in drawn if r.name == "std")
    assert std.lit and std.grad.startswith("dstd mean")
    assert next(r for r in drawn if r.name == "Z").grad == ""  # not reached yet
    assert text(g, trace, trace.find("dgamma", 1))[-1].count("▶ γ") == 1


def test_the_output_block_ends_in_the_loss() -> None:
    net, X, y = _net("4:relu,C:rms")
    trace = record_trace(net, X, y)
    g = block_graph(net, 2, True)
    assert g.names()[-2:] == ["P", "loss"]
    assert g.find("P").inputs == ("Zrms",)  # type: ignore[union-attr]  # logits = Zrms
    assert g.find("loss").inputs == ("P",)  # type: ignore[union-attr]
    assert focus(g, trace.find("loss")) == ("loss", {"P"})


def test_walk_graph_lights_each_steps_node() -> None:
    r = subprocess.run([sys.executable, "-m", "bntui", "walk", "--graph", "--arch",
                        "6:ln:tanh,C", "--layer", "1"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    blocks = r.stdout.split("\n\n")[1:]
    assert len(blocks) > 15
    for b in blocks:
        head = b.splitlines()[0]
        name = head.split(" · ")[-1].split()[0]
        lit = [line for line in b.splitlines() if "▶" in line]
        assert len(lit) == 1, b
        node = name[1:] if "backward" in head and name.startswith("d") else name
        assert f"▶ {node}" in lit[0] or f"▶ {SYM.get(node, node)}" in lit[0] or name == "dA"


SYM = {"gamma": "γ", "beta": "β"}
