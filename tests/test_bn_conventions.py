"""Named BatchNorm conventions (`bntui.engine.conventions`), each against its reference.

  torch     torch.nn.BatchNorm1d: training outputs, running mean/var, eval outputs
  keras     Keras 3's BatchNormalization (in a subprocess, when keras is installed), and
            its documented update (always)
  cs231n    CS231n assignment 2's checks (train-time means ≈ β, stds ≈ γ; test time after
            50 batches) and its `batchnorm_forward` written out
  karpathy  a torch model of makemore's block (parts 3 and 4): forward, backward through
            the Bessel-corrected variance, running mean and std
  seed-000, seed-003  the presets give the numbers of their old explicit settings

and how the conventions are reached: Python (`BatchNorm(d, convention=…)`, explicit
settings overriding), the command line, the app's optimizer pane, sessions on disk.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bntui.cli import main
from bntui.cli.parser import BN_CONVENTIONS
from bntui.engine import BatchNorm, BNOptions, BntuiError, RunConfig, Session, preset
from bntui.engine.conventions import CONVENTIONS, Settings, infer, table_rows
from bntui.engine.gradcheck import numeric_gradients, numeric_gradients_loop

ROOT = Path(__file__).resolve().parents[1]


def batches(n: int, m: int = 32, d: int = 4, seed: int = 0) -> list[np.ndarray]:
    """n batches (m, d) of a fixed distribution: shifted, scaled, correlated."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d))
    shift = rng.normal(size=d) * 3
    return [rng.normal(size=(m, d)) @ mix + shift for _ in range(n)]


# the table and the Python API ----------------------------------------------------------
def test_every_convention_builds_a_batchnorm_with_its_settings() -> None:
    for name, conv in CONVENTIONS.items():
        bn = BatchNorm(5, convention=name)
        assert bn.convention == name and bn.settings() == conv.settings
        assert bn.describe().startswith(f"BatchNorm(5, {name}: eps ")
        assert BNOptions.of(name).make(5, np.float64).settings() == conv.settings
    assert BatchNorm(5).convention == "torch" and BatchNorm(5).settings() == Settings()


def test_explicit_settings_override_the_convention() -> None:
    bn = BatchNorm(3, 0.01, convention="keras")
    assert bn.eps == 0.01 and bn.momentum == 0.99 and not bn.unbiased_running_var
    assert bn.describe() == ("BatchNorm(3, keras (eps overridden): eps 0.01, running = "
                             "0.99·old + 0.01·batch, biased running var, start 0, 1)")
    opts = BNOptions.of("karpathy", momentum=0.01)
    assert opts.convention == "karpathy" and opts.overridden() == ["momentum"]
    assert opts.train_var == "bessel" and opts.running_stat == "std"
    # a new convention replaces every setting first; the ones given with it override it
    changed = opts.with_changes(convention="cs231n", eps=1e-4)
    assert changed == BNOptions.of("cs231n", eps=1e-4)
    assert opts.with_changes(eps=1e-4) == dataclasses.replace(opts, eps=1e-4)


def test_an_unknown_convention_is_one_line_naming_them_all() -> None:
    with pytest.raises(BntuiError) as exc:
        BatchNorm(3, convention="tensorflow")
    msg = str(exc.value)
    assert "\n" not in msg and "'tensorflow'" in msg
    assert all(name in msg for name in CONVENTIONS)
    with pytest.raises(BntuiError, match="unknown BatchNorm convention"):
        RunConfig(bn=BNOptions(convention="nope")).validate()
    with pytest.raises(BntuiError, match="training variance"):
        BatchNorm(3, train_var="population")


def test_the_command_line_lists_the_engines_names() -> None:
    assert tuple(CONVENTIONS) == BN_CONVENTIONS
    assert [r["name"] for r in table_rows()] == list(CONVENTIONS)


def test_the_describe_line_of_each_convention() -> None:
    lines = {name: BatchNorm(32, convention=name).describe() for name in CONVENTIONS}
    assert lines == {
        "torch": "BatchNorm(32, torch: eps 1e-5, running = 0.9·old + 0.1·batch, unbiased "
                 "running var, start 0, 1)",
        "keras": "BatchNorm(32, keras: eps 1e-3, running = 0.99·old + 0.01·batch, biased "
                 "running var, start 0, 1)",
        "cs231n": "BatchNorm(32, cs231n: eps 1e-5, running = 0.9·old + 0.1·batch, biased "
                  "running var, start 0, 0)",
        "karpathy": "BatchNorm(32, karpathy: eps 1e-5, training var ÷ (m − 1), running "
                    "mean, std = 0.999·old + 0.001·batch, start 0, 1)",
        "seed-000": "BatchNorm(32, seed-000: eps 1e-8, running mean, std = 0.7·old + "
                    "0.3·batch, start 0, 1)",
        "seed-003": "BatchNorm(32, seed-003: eps 0.01, running = 0.99·old + 0.01·batch, "
                    "biased running var, start from the first batch)",
    }


# torch ---------------------------------------------------------------------------------
def test_torch_convention_is_batchnorm1d() -> None:
    torch = pytest.importorskip("torch")
    data = batches(6)
    ours = BatchNorm(4, convention="torch")
    theirs = torch.nn.BatchNorm1d(4, dtype=torch.float64)
    for Z in data[:5]:
        got = ours.forward(Z, training=True)
        want = theirs(torch.tensor(Z)).detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-12)
    theirs.eval()
    np.testing.assert_allclose(ours.forward(data[5], training=False),
                               theirs(torch.tensor(data[5])).detach().numpy(), rtol=1e-12,
                               atol=1e-12)


# keras ---------------------------------------------------------------------------------
KERAS_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    data = np.load(sys.argv[1])
    bn = keras.layers.BatchNormalization(dtype="float64")
    out = {}
    for i in range(5):
        x = keras.ops.convert_to_tensor(data[f"b{i}"], dtype="float64")
        out[f"train{i}"] = keras.ops.convert_to_numpy(bn(x, training=True))
    out["moving_mean"] = keras.ops.convert_to_numpy(bn.moving_mean)
    out["moving_variance"] = keras.ops.convert_to_numpy(bn.moving_variance)
    x = keras.ops.convert_to_tensor(data["b5"], dtype="float64")
    out["eval"] = keras.ops.convert_to_numpy(bn(x, training=False))
    out["epsilon"], out["momentum"] = np.array(bn.epsilon), np.array(bn.momentum)
    np.savez(sys.argv[2], **out)
""")


def test_keras_convention_is_keras3_batchnormalization(tmp_path: Path) -> None:
    """Keras 3 (torch backend) in a subprocess, so that keras leaves this process alone:
    training outputs, the moving mean and (biased) variance after 5 batches, eval."""
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed (the documented formula is checked below)")
    pytest.importorskip("torch")
    data = batches(6, m=16, d=3, seed=4)
    np.savez(tmp_path / "in.npz", **{f"b{i}": b for i, b in enumerate(data)})
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(tmp_path / "in.npz"),
                    str(tmp_path / "out.npz")], check=True, env=env, timeout=300,
                   capture_output=True)
    ref = np.load(tmp_path / "out.npz")
    ours = BatchNorm(3, convention="keras")
    assert ours.eps == float(ref["epsilon"]) and ours.momentum == float(ref["momentum"])
    for i, Z in enumerate(data[:5]):
        np.testing.assert_allclose(ours.forward(Z, training=True), ref[f"train{i}"],
                                   rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.running_mean, ref["moving_mean"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.running_var, ref["moving_variance"], rtol=1e-6)
    np.testing.assert_allclose(ours.forward(data[5], training=False), ref["eval"],
                               rtol=1e-6, atol=1e-6)


def test_keras_convention_follows_its_documented_formula() -> None:
    """keras.io: moving_mean = moving_mean · momentum + mean(batch) · (1 − momentum), the
    same for moving_var with the batch's (biased) variance; momentum 0.99, epsilon 1e-3;
    moving statistics start at 0 and 1; training normalises with the batch's."""
    data = batches(4, m=10, d=3, seed=2)
    ours = BatchNorm(3, convention="keras")
    mean, var = np.zeros(3), np.ones(3)
    for Z in data:
        out = ours.forward(Z, training=True)
        np.testing.assert_allclose(out, (Z - Z.mean(0)) / np.sqrt(Z.var(0) + 1e-3),
                                   rtol=1e-12, atol=1e-12)
        mean = mean * 0.99 + Z.mean(0) * (1 - 0.99)
        var = var * 0.99 + Z.var(0) * (1 - 0.99)
    np.testing.assert_allclose(ours.running_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(ours.running_var, var, rtol=1e-12)


# cs231n --------------------------------------------------------------------------------
def cs231n_batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                             bn_param: dict) -> np.ndarray:
    """CS231n assignment 2's `batchnorm_forward`, as its skeleton and notes define it."""
    mode = bn_param["mode"]
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    _, D = x.shape
    running_mean = bn_param.get("running_mean", np.zeros(D, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(D, dtype=x.dtype))
    if mode == "train":
        sample_mean, sample_var = x.mean(axis=0), x.var(axis=0)
        out = gamma * (x - sample_mean) / np.sqrt(sample_var + eps) + beta
        running_mean = momentum * running_mean + (1 - momentum) * sample_mean
        running_var = momentum * running_var + (1 - momentum) * sample_var
    else:
        out = gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta
    bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
    return out


def cs231n_activations(rng: np.random.RandomState, W1: np.ndarray, W2: np.ndarray) -> np.ndarray:
    X = rng.randn(200, 50)
    return np.maximum(0, X.dot(W1)).dot(W2)


def test_cs231n_train_time_means_are_beta_and_stds_are_gamma() -> None:
    """The notebook's check: a two-layer net's activations, normalised in training mode
    with γ = (1, 2, 3), β = (11, 12, 13), have per-feature means β and stds γ."""
    rng = np.random.RandomState(231)
    X = rng.randn(200, 50)
    W1, W2 = rng.randn(50, 60), rng.randn(60, 3)
    a = np.maximum(0, X.dot(W1)).dot(W2)
    bn = BatchNorm(3, convention="cs231n")
    out = bn.forward(a, training=True)
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(0), 1, rtol=1e-6)
    bn.gamma, bn.beta = np.array([1.0, 2.0, 3.0]), np.array([11.0, 12.0, 13.0])
    out = bn.forward(a, training=True)
    np.testing.assert_allclose(out.mean(0), bn.beta, rtol=1e-12)
    np.testing.assert_allclose(out.std(0), bn.gamma, rtol=1e-6)
    np.testing.assert_allclose(out, cs231n_batchnorm_forward(
        a, bn.gamma, bn.beta, {"mode": "train"}), rtol=1e-12)


def test_cs231n_test_time_after_50_batches() -> None:
    """The notebook's test-time check: 50 training batches (running statistics from
    zeros, momentum 0.9 on the old value), then a test batch normalised with the running
    statistics has means ≈ 0 and stds ≈ 1 (noisier than training) — and the running
    statistics are those of CS231n's own `batchnorm_forward`."""
    rng = np.random.RandomState(231)
    W1, W2 = rng.randn(50, 60), rng.randn(60, 3)
    bn = BatchNorm(3, convention="cs231n")
    assert not bn.running_var.any() and not bn.running_mean.any()  # np.zeros, both
    param = {"mode": "train"}
    for _ in range(50):
        a = cs231n_activations(rng, W1, W2)
        bn.forward(a, training=True)
        cs231n_batchnorm_forward(a, np.ones(3), np.zeros(3), param)
    np.testing.assert_allclose(bn.running_mean, param["running_mean"], rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, param["running_var"], rtol=1e-12)
    a = cs231n_activations(rng, W1, W2)
    out = bn.forward(a, training=False)
    param["mode"] = "test"
    np.testing.assert_allclose(out, cs231n_batchnorm_forward(a, np.ones(3), np.zeros(3), param),
                               rtol=1e-12, atol=1e-12)
    assert np.all(np.abs(out.mean(0)) < 0.2), out.mean(0)
    assert np.all(np.abs(out.std(0) - 1) < 0.1), out.std(0)


# karpathy ------------------------------------------------------------------------------
def karpathy_block(torch, h, gain, bias, run_mean, run_std):  # type: ignore[no-untyped-def]
    """makemore's BatchNorm: part 4's training pass (Bessel's correction, ε 1e-5) and
    part 3's running mean and std (0.999·old + 0.001·batch; the std the pass divides by)."""
    bnmeani = h.mean(0, keepdim=True)
    bnvar = h.var(0, keepdim=True, unbiased=True)
    bnraw = (h - bnmeani) * (bnvar + 1e-5) ** -0.5
    hpreact = gain * bnraw + bias
    with torch.no_grad():
        bnstdi = (bnvar + 1e-5) ** 0.5
        run_mean = 0.999 * run_mean + 0.001 * bnmeani
        run_std = 0.999 * run_std + 0.001 * bnstdi
    return hpreact, run_mean, run_std


@pytest.mark.parametrize("staged", [True, False], ids=["staged", "compact"])
def test_karpathy_convention_is_makemores_block(staged: bool) -> None:
    torch = pytest.importorskip("torch")
    data = batches(7, m=24, d=5, seed=3)
    rng = np.random.default_rng(9)
    gain, bias = rng.normal(size=5) + 1, rng.normal(size=5)
    ours = BatchNorm(5, convention="karpathy")
    ours.gamma, ours.beta = gain, bias
    run_mean, run_std = torch.zeros(1, 5, dtype=torch.float64), torch.ones(1, 5,
                                                                            dtype=torch.float64)
    for Z in data[:6]:
        h = torch.tensor(Z, requires_grad=True)
        g = torch.tensor(gain, requires_grad=True)
        b = torch.tensor(bias, requires_grad=True)
        out, run_mean, run_std = karpathy_block(torch, h, g, b, run_mean, run_std)
        dout = rng.normal(size=Z.shape)
        (out * torch.tensor(dout)).sum().backward()
        got = ours.forward(Z, training=True)
        np.testing.assert_allclose(got, out.detach().numpy(), rtol=1e-12, atol=1e-12)
        dZ = ours.backward(dout, staged=staged)
        np.testing.assert_allclose(dZ, h.grad.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ours.grads["gamma"], g.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(ours.grads["beta"], b.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.running_mean, run_mean.numpy()[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours.running_std, run_std.numpy()[0], rtol=1e-12)
    # eval: makemore's `(hpreact - bnmean_running) / bnstd_running`
    Z = data[6]
    want = gain * (Z - run_mean.numpy()) / run_std.numpy() + bias
    np.testing.assert_allclose(ours.forward(Z, training=False), want, rtol=1e-12, atol=1e-12)


def test_karpathy_staged_and_compact_backward_agree() -> None:
    rng = np.random.default_rng(5)
    for m in (2, 3, 17, 200):
        Z = rng.normal(size=(m, 6)) * rng.uniform(0.1, 10, size=6)
        bn = BatchNorm(6, convention="karpathy")
        bn.gamma, bn.beta = rng.normal(size=6), rng.normal(size=6)
        dy = rng.normal(size=Z.shape)
        bn.forward(Z, training=True, update_running=False)
        staged = bn.backward(dy, staged=True)
        dg, db = bn.grads["gamma"].copy(), bn.grads["beta"].copy()
        compact = bn.backward(dy, staged=False)
        # on the scale of the terms that cancel (with m = 2, dZ itself is nearly 0)
        scale = np.max(np.abs(dy * bn.gamma / bn.cache["std"]))
        assert np.max(np.abs(staged - compact)) <= 1e-12 * scale, m
        np.testing.assert_allclose(bn.grads["gamma"], dg, rtol=1e-12)
        np.testing.assert_allclose(bn.grads["beta"], db, rtol=1e-12)
        # the fused pass: the staged forward's numbers and the compact backward's, exactly
        fused = BatchNorm(6, convention="karpathy")
        fused.gamma, fused.beta = bn.gamma, bn.beta
        np.testing.assert_array_equal(fused.train_forward(Z, update_running=False),
                                      bn.cache["Znorm"])
        np.testing.assert_array_equal(fused.train_backward(dy), compact)


def test_karpathy_trace_shows_its_own_words() -> None:
    s = Session(RunConfig(dataset="moons", arch="4:relu,C", bn=BNOptions.of("karpathy")))
    trace = s.trace(True)
    assert trace.find("var", 1).formula == "var = (1/(m−1)) Σᵢ Z0²"
    assert trace.find("dZ0", 1).formula == "dZ0 = dZnorm / std + dvar · 2 · Z0 / (m − 1)"
    Z0 = trace.find("Z0", 1).value
    np.testing.assert_allclose(trace.find("var", 1).value, Z0.var(0, ddof=1), rtol=1e-12)
    assert trace.find("std", 1, "forward").formula == "std = √(var + ε)"
    ev = s.trace(False)
    assert ev.find("std", 1).formula == "std = running_std"  # eval divides by it


# the fused training path and the gradient checks ----------------------------------------
KARPATHY = [
    RunConfig(dataset="moons", arch="6:tanh,5:relu,C", batch_size=40, steps=10,
              bn=BNOptions.of("karpathy")),
    # 1,500 × 200: the fused BatchNorm works a block of features at a time
    RunConfig(dataset="digits", arch="200:sigmoid,C", optimizer="sgd", lr=0.1, steps=2,
              bn=BNOptions.of("karpathy")),
    RunConfig(dataset="iris", arch="5:elu,C", steps=6, bn=BNOptions.of("cs231n")),
]


@pytest.mark.parametrize("cfg", KARPATHY, ids=lambda c: f"{c.bn.convention}:{c.arch}")
def test_the_lean_step_is_the_full_pass_bit_for_bit(cfg: RunConfig) -> None:
    from test_fast_step import full_pass_loop

    lean, full = Session(cfg), Session(cfg)
    assert lean.network.fused
    lean.train(steps=cfg.steps, eval_every=10**9)
    want, _ = full_pass_loop(full, cfg.steps)
    assert lean.history.loss == want
    a, b = lean.network.state(), full.network.state()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("training", [True, False])
def test_batched_numerical_gradients_equal_the_loop_for_karpathy(training: bool) -> None:
    s = Session(RunConfig(dataset="moons", arch="5:relu,4:tanh,C", batch_size=40,
                          bn=BNOptions.of("karpathy")))
    s.train(steps=3)
    X, y = s.inspection_batch()
    fast = numeric_gradients(s.network, X, y, training=training, rng=np.random.default_rng(1))
    loop = numeric_gradients_loop(s.network, X, y, training=training,
                                  rng=np.random.default_rng(1))
    for block in s.network.blocks:
        a, b = fast[block.index], loop[block.index]
        assert a.keys() == b.keys()
        for name in a:
            if name == "db" and training:
                continue  # zero by construction: both are rounding noise
            scale = max(1e-12, float(np.max(np.abs(b[name][1]))))
            assert np.max(np.abs(a[name][1] - b[name][1])) <= 1e-5 * scale, (block.index, name)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_gradcheck_of_a_karpathy_network(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    code, out, err = run(capsys, "gradcheck", "--bn-convention", "karpathy", "--json")
    assert code == 0, err
    worst = json.loads(out)["max_rel_error"]
    assert worst["analytic_vs_numeric"] < 1e-6
    assert worst["analytic_vs_autograd"] < 1e-9


# seed-000 and seed-003: the presets' numbers as before -----------------------------------
OLD_PRESET_BN = {  # what config.py wrote out before the conventions had names
    "seed-softmax": BNOptions(eps=1e-8, momentum=0.3, running_stat="std"),
    "seed-digits": BNOptions(eps=0.01, momentum=0.99, momentum_style="keras",
                             unbiased_running_var=False, running_init="first_batch"),
}


@pytest.mark.parametrize("name,steps", [("seed-softmax", 300), ("seed-digits", 6)])
def test_the_presets_use_their_seed_conventions_with_the_same_numbers(name: str,
                                                                      steps: int) -> None:
    cfg = preset(name)
    assert cfg.bn.convention == {"seed-softmax": "seed-000", "seed-digits": "seed-003"}[name]
    old = OLD_PRESET_BN[name]
    assert cfg.bn.settings() == old.settings() and cfg.bn.overridden() == []
    a = Session(cfg.with_overrides(steps=steps))
    b = Session(dataclasses.replace(cfg, steps=steps, bn=old))
    a.train(steps=steps, eval_every=10**9)
    b.train(steps=steps, eval_every=10**9)
    assert a.history.loss == b.history.loss
    sa, sb = a.network.state(), b.network.state()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


# the command line ------------------------------------------------------------------------
def test_train_json_reports_the_convention(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "train", "--dataset", "moons", "--steps", "5",
                         "--bn-convention", "cs231n", "--json")
    assert code == 0, err
    bn = json.loads(out)["bn"]
    assert bn["convention"] == "cs231n" and bn["overridden"] == []
    assert bn["running_init"] == "zero_zero" and bn["momentum"] == 0.9
    assert bn["describe"].startswith("cs231n: eps 1e-5")
    code, out, _ = run(capsys, "train", "--dataset", "moons", "--steps", "5", "--json")
    assert json.loads(out)["bn"]["convention"] == "torch"
    code, out, _ = run(capsys, "train", "--preset", "seed-digits", "--steps", "2", "--json")
    assert json.loads(out)["bn"]["convention"] == "seed-003"


def test_explicit_flags_override_the_convention(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "train", "--dataset", "moons", "--steps", "5",
                         "--bn-convention", "keras", "--bn-eps", "0.01",
                         "--bn-momentum-style", "torch", "--json")
    assert code == 0, err
    bn = json.loads(out)["bn"]
    assert bn["convention"] == "keras" and bn["eps"] == 0.01
    assert bn["momentum_style"] == "torch" and bn["momentum"] == 0.99
    assert not bn["unbiased_running_var"]  # the rest stays Keras's
    assert bn["overridden"] == ["eps", "momentum_style"]
    # a preset's convention, replaced by the flag
    code, out, _ = run(capsys, "train", "--preset", "seed-softmax", "--steps", "3",
                       "--bn-convention", "karpathy", "--json")
    assert json.loads(out)["bn"]["convention"] == "karpathy"


def test_text_output_names_the_convention(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "train", "--dataset", "moons", "--steps", "3",
                       "--bn-convention", "karpathy")
    assert code == 0
    assert "batchnorm  karpathy: eps 1e-5, training var ÷ (m − 1)" in out


def test_an_unknown_convention_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("train", "gradcheck", "walk"):
        code, out, err = run(capsys, cmd, "--dataset", "moons", "--bn-convention", "pytorch")
        assert code == 2 and out == ""
        assert err.count("\n") == 1, err
        assert "unknown BatchNorm convention 'pytorch'" in err
        assert "torch, keras, cs231n, karpathy, seed-000, seed-003" in err


def test_walk_shows_the_convention_of_each_batchnorm(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("walk", "--dataset", "moons", "--arch", "4:relu,3:relu:nobn,C",
            "--bn-convention", "keras", "--layer", "1", "--tensor", "Znorm")
    code, out, err = run(capsys, *args)
    assert code == 0, err
    head = out.splitlines()[:3]
    assert head[1] == "  layer 1: " + BatchNorm(4, convention="keras").describe()
    assert head[2] == "  layer 3: " + BatchNorm(2, convention="keras").describe()
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    data = json.loads(out)
    bns = [b for b in data["normalization"] if b["kind"] == "batchnorm"]
    assert [b["layer"] for b in bns] == [1, 3]
    assert bns[0]["convention"] == "keras"
    assert bns[0]["describe"] == BatchNorm(4, convention="keras").describe()


def test_a_bug_cannot_go_with_the_bessel_variance(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "gradcheck", "--bug", "var-unbiased-mixup", "--bn-convention",
                       "karpathy")
    assert code == 2 and "biased training variance" in err and err.count("\n") == 1


# sessions on disk ------------------------------------------------------------------------
def test_a_saved_session_keeps_its_convention(tmp_path: Path) -> None:
    from bntui.engine.persist import load_session, save_session

    cfg = RunConfig(dataset="moons", arch="4:relu,C", steps=4,
                    bn=BNOptions.of("karpathy", eps=1e-4))
    s = Session(cfg)
    s.train(steps=4)
    loaded = load_session(save_session(s, tmp_path / "k.npz"))
    assert loaded.config.bn == cfg.bn
    assert loaded.network.blocks[0].bn.describe() == s.network.blocks[0].bn.describe()
    np.testing.assert_array_equal(loaded.network.blocks[0].bn.running_std,
                                  s.network.blocks[0].bn.running_std)


@pytest.mark.parametrize("cfg,want", [
    (preset("seed-digits").with_overrides(steps=2), "seed-003"),
    (RunConfig(dataset="moons", arch="4:relu,C", bn=BNOptions(eps=1e-3)), "torch"),
], ids=["seed-003", "custom"])
def test_an_old_session_without_a_convention_still_loads(tmp_path: Path, cfg: RunConfig,
                                                         want: str) -> None:
    from bntui.engine.persist import load_session, save_session

    s = Session(cfg)
    s.train(steps=2)
    path = save_session(s, tmp_path / "new.npz")
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(str(data["meta"][()]))
    for key in ("convention", "train_var"):  # what an older bntui wrote: neither
        del meta["config"]["bn"][key]
    data["meta"] = np.array(json.dumps(meta))
    with open(tmp_path / "old.npz", "wb") as f:
        np.savez(f, **data)
    loaded = load_session(tmp_path / "old.npz")
    assert loaded.config.bn.convention == want
    assert loaded.config.bn.settings() == cfg.bn.settings()
    assert infer(cfg.bn.settings()) == want


# export to torch -------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CONVENTIONS))
def test_every_convention_exports_with_eval_mode_exact(name: str) -> None:
    torch = pytest.importorskip("torch")
    from bntui.engine import to_torch

    s = Session(RunConfig(dataset="moons", arch="6:relu,C", batch_size=32,
                          bn=BNOptions.of(name)))
    s.train(steps=20)
    model = to_torch(s.network)
    X = s.X_val
    np.testing.assert_allclose(model(torch.tensor(X)).detach().numpy(),
                               s.network.forward(X, training=False), rtol=1e-10, atol=1e-10)
    # training mode: torch normalises with the biased variance, Karpathy's training pass
    # with Bessel's (export.py says so); every other convention trains the same
    model.train()
    got = model(torch.tensor(X)).detach().numpy()
    want = s.network.forward(X, training=True, update_running=False)
    same = np.allclose(got, want, rtol=1e-10, atol=1e-10)
    assert same == (name != "karpathy")


# the app -------------------------------------------------------------------------------
async def test_the_optimizer_pane_picks_a_convention_and_an_edit_overrides_it() -> None:
    from app_helpers import settle, text, until
    from textual.widgets import Button, Input, Select

    from bntui.ui.app import BntuiApp
    from bntui.ui.form import Note
    from bntui.ui.optimizer_pane import OptimizerPane
    from bntui.ui.stepper import StepperPane
    from bntui.ui.tensor_grid import TensorGrid

    app = BntuiApp(RunConfig(dataset="moons", arch="4:relu,C", bn=BNOptions.of("seed-003")))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        # the stepper names the convention at a BatchNorm step (the grid's title)
        app.index = app.trace.index_of("Znorm", 1)
        await pilot.pause()
        title = str(app.query_one(StepperPane).query_one(TensorGrid).border_title)
        assert "layer 1: BatchNorm(4, seed-003: eps 0.01" in title
        await pilot.press("5")
        pane = app.query_one(OptimizerPane)
        assert pane.query_one("#bn-convention", Select).value == "seed-003"
        assert "BatchNorm seed-003: eps 0.01" in text(pane.query_one("#opt-formula"))

        async def apply() -> str:
            pane.query_one(Note).clear()
            pane.query_one("#opt-apply", Button).press()
            assert await until(lambda: text(pane.query_one(Note)) != "")
            await pilot.pause()
            return text(pane.query_one(Note))

        pane.query_one("#bn-convention", Select).value = "keras"
        assert await until(lambda: pane.query_one("#bn-eps", Input).value == "0.001")
        assert pane.query_one("#bn-momentum", Input).value == "0.99"
        assert pane.query_one("#bn-style", Select).value == "keras"
        pane.query_one("#bn-eps", Input).value = "0.005"  # an edit overrides the convention
        assert (await apply()).startswith("✓")
        bn = app.session.config.bn
        assert bn == BNOptions.of("keras", eps=0.005)
        assert app.session.network.blocks[0].bn.describe().startswith(
            "BatchNorm(4, keras (eps overridden): eps 0.005")
        # picking a convention fills every field from the table: no override left
        pane.query_one("#bn-convention", Select).value = "karpathy"
        assert await until(lambda: pane.query_one("#bn-running", Select).value == "std")
        assert (await apply()).startswith("✓")
        assert app.session.config.bn == BNOptions.of("karpathy")
