"""The normalization family through the command line, as a learner runs it: gradient checks
of networks using LayerNorm, GroupNorm and RMSNorm (`bntui gradcheck --arch … --json`),
save/load and the torch export of such networks, and every lab given such an arch.

Independent references: numerical gradients (centred differences of the network's own
loss), PyTorch autograd, PyTorch's own `nn.LayerNorm`/`GroupNorm`/`RMSNorm` (through the
export), the saved-and-reloaded run against the uninterrupted one, and the names of each
layer's tensors written out here by hand (not read from the records).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None

# every gradient each layer's check must report, written out by hand
LN_GRADS = {"dZln", "dbeta", "dgamma", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ"}
GN_GRADS = {"dZgn", "dbeta", "dgamma", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ"}
RMS_GRADS = {"dZrms", "dgamma", "dZnorm", "drms", "dms", "dZ"}
BN_GRADS = {"dZbn", "dbeta", "dgamma", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ"}
DENSE_GRADS = {"dW", "db", "dX"}
BY_TOKEN = {"ln": LN_GRADS, "gn": GN_GRADS, "rms": RMS_GRADS, "bn": BN_GRADS}


def cli(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m bntui ARGV` in a fresh process, from the repository's root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bntui", *argv], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env)


def norm_of(block: str) -> str | None:
    """The normalization token of one block of an arch ('bn' when none is written)."""
    tokens = block.split(":")[1:]
    for tok in tokens:
        if tok in ("ln", "rms", "bn") or tok.startswith("gn="):
            return tok.split("=")[0]
        if tok in ("nobn", "nonorm"):
            return None
    return "bn"


# gradient checks -----------------------------------------------------------------------------
GRADCHECKS = [
    ("16:ln:tanh,C", ()),
    ("12:gn=4:relu,C", ()),
    ("10:rms:sigmoid,C", ()),
    ("8:ln:tanh,8:gn=2:tanh,6:rms:tanh,C:nobn", ()),
    ("16:ln:tanh,C", ("--eval",)),
    ("8:gn=2:tanh,6:rms:tanh,C", ("--eval", "--steps", "5")),
    ("8:tanh,C:rms", ("--dataset", "spiral", "--classes", "4")),
    ("8:rms:tanh,C:ln", ("--dataset", "spiral", "--classes", "4")),
]


@pytest.mark.parametrize(("arch", "extra"), GRADCHECKS,
                         ids=[f"{a} {' '.join(e)}".strip() for a, e in GRADCHECKS])
def test_gradcheck_of_each_norm_through_the_cli(arch: str, extra: tuple[str, ...]) -> None:
    """Every gradient of the network is checked: numerical error below 1e-6, autograd below
    1e-9 (with torch); every tensor of each layer is there; only a Dense bias right before
    a BatchNorm is zero by construction, with BatchNorm's note."""
    res = cli("gradcheck", "--arch", arch, *extra, "--json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["arch"] == arch and d["torch"] == HAS_TORCH
    assert d["mode"] == ("eval" if "--eval" in extra else "training")
    blocks = arch.split(",")
    numeric = [c for c in d["checks"] if c["pair"] == "analytic_vs_numeric"]
    for i, block in enumerate(blocks, start=1):
        token = norm_of(block)
        want = set(DENSE_GRADS) | (BY_TOKEN[token] if token else {"dZ"})
        if i < len(blocks):
            want.add("dA")
        if token == "bn" and "--eval" in extra:
            want -= {"dmu", "dvar", "dstd"}  # mu and var are constants in eval mode
        got = {c["tensor"] for c in numeric if c["layer"] == i}
        assert got == want, (i, sorted(got ^ want))
    for c in numeric:
        zero = (norm_of(blocks[c["layer"] - 1]) == "bn" and c["tensor"] == "db"
                and "--eval" not in extra)
        if zero:
            assert c["status"] == "zero_by_construction"
            assert c["note"].startswith("BatchNorm subtracts the batch mean")
            continue
        if (c["layer"], c["tensor"]) == (len(blocks), "dmu") and norm_of(blocks[-1]) == "ln":
            # Σⱼ dlogits = 0 in every row and γ = 1 at the start: Σⱼ dZnorm = 0, so the
            # output LayerNorm's dmu = −Σⱼ dZ0 is 0 in exact arithmetic — flagged, not judged
            assert c["status"] == "near_zero" and c["max_abs"] < 1e-10, c
            continue
        assert c["status"] == "ok", c
        assert "BatchNorm" not in c["note"]
        assert c["rel_error"] < 1e-6, c
    assert d["max_rel_error"]["analytic_vs_numeric"] < 1e-6
    if HAS_TORCH:
        auto = [c for c in d["checks"] if c["pair"] == "analytic_vs_autograd"]
        assert {(c["layer"], c["tensor"]) for c in auto} == {
            (c["layer"], c["tensor"]) for c in numeric}
        assert all(c["rel_error"] < 1e-9 for c in auto if c["status"] == "ok")
        assert d["max_rel_error"]["analytic_vs_autograd"] < 1e-9
    assert not any("takes each statistic over" in n for n in d["notes"])


def test_gradcheck_text_names_the_layers_and_no_wasted_bias_outside_batchnorm() -> None:
    """The text report of a network without BatchNorm: every layer's tensors, no "zero by
    construction" row or note (a bias before LayerNorm, GroupNorm or RMSNorm is not
    wasted), and the check passes --tol."""
    res = cli("gradcheck", "--arch", "8:ln:tanh,8:gn=2:relu,6:rms:tanh,C:nobn", "--tol", "1e-6")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith("gradient check of 2 → 8 LN tanh → 8 GN relu → 6 RMS tanh → "
                          "2 softmax")
    for name in ("dZln", "dZgn", "dZrms", "drms", "dms", "dmu", "dvar"):
        assert f" {name} " in out
    assert "zero by construction" not in out and "BatchNorm" not in out


def test_a_collapsed_normalization_is_flagged() -> None:
    """LayerNorm over the 2 logits of moons normalises 2 values per sample: Znorm is ±1 up
    to ε, the gradients through it are ε-sized; the report says so instead of leaving a
    learner to puzzle over their relative errors."""
    res = cli("gradcheck", "--arch", "16:tanh,C:ln", "--json", "--no-autograd")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    (note,) = [n for n in d["notes"] if "takes each statistic over" in n]
    assert note.startswith("layer 2: LayerNorm takes each statistic over 2 features")
    # the gradient reaching the block below is ε-sized next to the loss's own
    dA = next(c for c in d["checks"] if c["layer"] == 1 and c["tensor"] == "dA")
    dlogit_scale = next(c for c in d["checks"] if c["layer"] == 2 and c["tensor"] == "dZln")
    assert dA["max_abs"] < 1e-3 * dlogit_scale["max_abs"]


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_gradcheck_notes_no_collapse_for_groups_of_four_or_rms_over_two() -> None:
    """RMSNorm does not centre: over 2 features a sample keeps its direction, nothing
    collapses; GroupNorm with groups of 4 keeps 3 degrees of freedom."""
    res = cli("gradcheck", "--arch", "8:gn=2:tanh,C:rms", "--json", "--no-numeric")
    d = json.loads(res.stdout)
    assert res.returncode == 0 and not d["notes"], d["notes"]
    assert d["max_rel_error"]["analytic_vs_autograd"] < 1e-9
