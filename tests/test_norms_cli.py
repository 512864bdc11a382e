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

import numpy as np
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


# the labs, given an arch with LayerNorm, GroupNorm or RMSNorm --------------------------------
MIX = "8:ln:tanh,8:gn=2:relu,6:rms:tanh,C"  # three new layers, BatchNorm on the output


def one_line_refusal(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stdout == "" and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    for needle in needles:
        assert needle in res.stderr


@pytest.mark.parametrize("arch", ["8:ln:tanh,C", "8:tanh,8:gn=2:relu,C", "8:tanh,C:rms"])
def test_lab_bn_refuses_another_normalization_in_one_line(arch: str) -> None:
    """With vs without BatchNorm puts BN on every hidden block and removes it everywhere:
    neither twin would be the arch asked for, so it says so instead of swapping it."""
    one_line_refusal(cli("lab", "bn", "--arch", arch, "--steps", "2"),
                     "compares BatchNorm on every hidden block with no normalization",
                     "leave ln, gn=G and rms out")


def test_lab_batch_works_on_the_batchnorm_block_and_refuses_others() -> None:
    res = cli("lab", "batch", "--arch", MIX, "--steps", "3", "--json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["layer"] == 4  # the only BatchNorm: the output block
    one_line_refusal(cli("lab", "batch", "--arch", MIX, "--layer", "1", "--steps", "3"),
                     "layer 1 has no BatchNorm (it has LayerNorm", "layers with BatchNorm: 4")
    one_line_refusal(cli("lab", "batch", "--arch", "8:ln:tanh,C:rms", "--steps", "3"),
                     "no BatchNorm layer", "drop ':nobn', ':ln', ':gn=G' or ':rms'")


def test_lab_health_shows_each_normalizations_output() -> None:
    res = cli("lab", "health", "--arch", MIX, "--steps", "3", "--json")
    assert res.returncode == 0, res.stderr
    layers = json.loads(res.stdout)["layers"]
    assert [sorted(lay["hists"]) for lay in layers] == [
        ["A", "Z", "Zln"], ["A", "Z", "Zgn"], ["A", "Z", "Zrms"], ["Z", "Zbn"]]
    n = json.loads(res.stdout)["samples"]
    for lay in layers:
        for h in lay["hists"].values():
            assert sum(h["counts"]) == n * lay["width"]
    zln = layers[0]["hists"]["Zln"]  # γ ≈ 1, β ≈ 0 after 3 steps: each row mean ≈ β
    assert abs(zln["mean"]) < 0.1
    text = cli("lab", "health", "--arch", MIX, "--steps", "3")
    assert text.returncode == 0 and "norm output range" in text.stdout
    assert "Zrms " in text.stdout and "Zgn " in text.stdout


def test_lab_hsweep_race_and_exercise_run_on_the_new_layers() -> None:
    res = cli("lab", "hsweep", "--arch", "8:ln:tanh,6:rms:tanh,C:nobn", "--json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert {"1.gamma", "1.beta", "2.gamma"} <= set(d["tensors"])
    assert "2.beta" not in d["tensors"]  # RMSNorm has no β
    assert d["best"]["float64"]["error"] < 1e-6
    res = cli("lab", "race", "--arch", MIX, "--steps", "3", "--json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert "3.gamma" in d["param_keys"] and "3.beta" not in d["param_keys"]
    res = cli("lab", "exercise", "--arch", MIX, "--count", "4", "--json", "--reveal")
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)["questions"]) == 4


def test_lab_bugs_on_the_new_layers() -> None:
    """A normalization bug runs on an arch of its kind; a BatchNorm bug on an arch whose
    only BatchNorm is the output block finds it there; a bug without its layer is one
    line."""
    res = cli("lab", "bugs", "ln-batch-axis-mean", "--arch", "8:ln:tanh,C", "--steps", "3",
              "--json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["matches"] and "1.dmu" in d["failed"] and d["scenario"]["arch"] == "8:ln:tanh,C"
    res = cli("lab", "bugs", "var-unbiased-mixup", "--arch", "8:ln:tanh,C", "--steps", "3",
              "--json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["matches"] and "2.dZ0" in d["failed"] and "1.dZln" in d["failed"]
    one_line_refusal(cli("lab", "bugs", "rms-subtracts-mean", "--arch", "8:ln:tanh,C"),
                     "lives in RMSNorm", "no RMSNorm block")


# save, load and export -----------------------------------------------------------------------
SAVED = "8:ln:tanh,8:gn=2:relu,6:rms:tanh,C"  # BatchNorm only on the output block
SAVE_RUN = ("--arch", SAVED, "--batch-size", "16", "--seed", "3")


def history(res: subprocess.CompletedProcess[str]) -> list[float]:
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["history"]["loss"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path | None]:
    """6 mini-batch steps of SAVED, saved (and exported, with torch)."""
    folder = tmp_path_factory.mktemp("norms")
    session, model = folder / "s.npz", folder / "m.pt"
    export = ("--export-torch", str(model)) if HAS_TORCH else ()
    res = cli("train", *SAVE_RUN, "--steps", "6", "--save", str(session), *export, "--json")
    assert res.returncode == 0, res.stderr
    return session, model if HAS_TORCH else None


def test_a_saved_session_continues_bit_identically(saved: tuple[Path, Path | None]) -> None:
    """6 steps, saved, loaded, 5 more: every loss of the history is the one of 11 steps in
    one go (mini-batches, Adam's state, the batch order all restored)."""
    session, _ = saved
    resumed = history(cli("train", "--load", str(session), "--steps", "5", "--json",
                          "--history"))
    whole = history(cli("train", *SAVE_RUN, "--steps", "11", "--json", "--history"))
    assert len(resumed) == len(whole) == 11
    assert resumed == whole  # exactly: the same floats


def test_the_saved_arrays_are_each_layers_own(saved: tuple[Path, Path | None]) -> None:
    """γ and β for LayerNorm and GroupNorm, γ only for RMSNorm, running statistics only for
    the one BatchNorm; shapes per feature."""
    session, _ = saved
    with np.load(session, allow_pickle=False) as z:
        net = {k[len("network/"):]: z[k].shape for k in z.files if k.startswith("network/")}
    assert net == {
        "1.W": (2, 8), "1.b": (8,), "1.gamma": (8,), "1.beta": (8,),
        "2.W": (8, 8), "2.b": (8,), "2.gamma": (8,), "2.beta": (8,),
        "3.W": (8, 6), "3.b": (6,), "3.gamma": (6,),
        "4.W": (6, 2), "4.b": (2,), "4.gamma": (2,), "4.beta": (2,),
        "4.running_mean": (2,), "4.running_var": (2,), "4.running_std": (2,),
        "4.num_batches_tracked": ()}


def _edited(src: Path, dst: Path, arch: str | None = None, add: str | None = None) -> Path:
    with np.load(src, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(str(data["meta"][()]))
    if arch is not None:
        meta["config"]["arch"] = arch
    if add is not None:
        data[add] = np.zeros(6)
        meta["arrays"].append(add)
    data["meta"] = np.array(json.dumps(meta))
    with open(dst, "wb") as f:
        np.savez(f, **data)
    return dst


def test_loading_checks_the_arrays_against_each_layer(saved: tuple[Path, Path | None],
                                                      tmp_path: Path) -> None:
    """A file whose arrays do not fit the network its configuration rebuilds is one line:
    RMSNorm has no β, LayerNorm needs one; GroupNorm and LayerNorm of the same width hold
    the same arrays, so the configuration decides which is built."""
    session, _ = saved
    bad = _edited(session, tmp_path / "beta.npz", add="network/3.beta")
    one_line_refusal(cli("train", "--load", str(bad), "--steps", "1"),
                     "'network/3.beta' that the network does not have")
    bad = _edited(session, tmp_path / "ln.npz", arch="8:ln:tanh,8:gn=2:relu,6:ln:tanh,C")
    one_line_refusal(cli("train", "--load", str(bad), "--steps", "1"),
                     "no array 'network/3.beta', which the network needs")
    other = _edited(session, tmp_path / "gn.npz", arch="8:gn=4:tanh,8:gn=2:relu,6:rms:tanh,C")
    res = cli("train", "--load", str(other), "--steps", "0", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["network"].startswith("2 → 8 GN tanh")


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_the_torch_export_gives_the_engines_eval_logits(saved: tuple[Path, Path | None]
                                                        ) -> None:
    """The exported model, loaded with `load_torch`: nn.LayerNorm, nn.GroupNorm, nn.RMSNorm
    and nn.BatchNorm1d in order, and its logits are the engine's eval-mode logits of the
    saved session (to 1e-12), on the training set and on a batch of one."""
    import torch

    from bntui.engine import load_torch
    from bntui.engine.persist import load_session

    session_path, model_path = saved
    assert model_path is not None
    session = load_session(session_path)
    model = load_torch(model_path)
    kinds = [type(m).__name__ for m in model]
    assert [k for k in kinds if "Norm" in k] == ["LayerNorm", "GroupNorm", "RMSNorm",
                                                 "BatchNorm1d"]
    assert not model.training
    gn = next(m for m in model if isinstance(m, torch.nn.GroupNorm))
    assert (gn.num_groups, gn.num_channels, gn.eps) == (2, 8, 1e-5)
    rms = next(m for m in model if isinstance(m, torch.nn.RMSNorm))
    assert rms.eps == 1e-6 and rms.weight.shape == (6,)
    X = session.X_train
    ours = session.network.logits(X)
    np.testing.assert_array_equal(ours, session.network.forward(X, training=False))
    with torch.no_grad():
        theirs = model(torch.from_numpy(X)).numpy()
        one = model(torch.from_numpy(X[:1])).numpy()
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-12)
    np.testing.assert_allclose(one, ours[:1], rtol=0, atol=1e-12)
    # the trained γ, β really moved: the comparison is not of an untrained network
    assert np.abs(session.network.blocks[2].norm.gamma - 1).max() > 1e-3
