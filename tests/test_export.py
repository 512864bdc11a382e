"""The PyTorch export: the exported Sequential computes what the engine computes.

Networks are trained a few steps with a `Session` (so the running statistics are not
their initial 0 and 1), exported with `to_torch`, and compared with the engine's
eval-mode forward on the training data and on fresh inputs (float64: 1e-10 relative;
float32: 1e-5), in train mode with batch statistics, after a save/load round trip, and
without torch installed.
"""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest

from bntui.engine import BNOptions, BntuiError, RunConfig, Session, preset
from bntui.engine.export import TORCH_MISSING, export_torch, layer_specs, load_torch, to_torch

torch = pytest.importorskip("torch")

SPECS = [
    "5:sigmoid,4:relu,C",
    "8:tanh:nobn,6:elu=0.5,C:nobn",
    "6:leaky_relu=0.1,C:nobias",
    "7:identity,C",
]
BN = {
    "torch": BNOptions(),
    # seed 003: Keras momentum on the old value, biased running var, first-batch init
    "seed003": BNOptions(eps=0.01, momentum=0.99, momentum_style="keras",
                         unbiased_running_var=False, running_init="first_batch"),
    # seed 000: a running average of std
    "seed000": BNOptions(eps=1e-8, momentum=0.3, running_stat="std"),
}
PRESETS = ("seed-digits", "seed-softmax")
CASES = [f"{spec}|{bn}" for spec in SPECS for bn in BN] + list(PRESETS)


def make_session(case: str, steps: int = 6, dtype: str = "float64") -> Session:
    if case in PRESETS:
        cfg = preset(case).with_overrides(dtype=dtype)
    else:
        spec, bn = case.split("|")
        cfg = RunConfig(dataset="wine", arch=spec, bn=BN[bn], batch_size=16, lr=0.05,
                        seed=3, dtype=dtype)
    session = Session(cfg)
    session.train(steps=steps, eval_every=steps)
    assert session.stopped is None
    return session


@pytest.fixture(scope="module")
def sessions() -> dict[str, Session]:
    return {case: make_session(case) for case in CASES}


def engine_eval(session: Session, X: np.ndarray) -> np.ndarray:
    return session.network.forward(X, training=False, update_running=False)


def torch_out(model, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(X))).numpy()


def fresh_inputs(session: Session, n: int = 37) -> np.ndarray:
    rng = np.random.default_rng(11)
    X = session.X_train
    scale = X.std(axis=0) + 0.1
    return (X.mean(axis=0) + 2.0 * scale * rng.standard_normal((n, X.shape[1]))).astype(X.dtype)


def assert_logits_close(got: np.ndarray, want: np.ndarray, rel: float, what: str) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.dtype, want.dtype)
    err = float(np.max(np.abs(got - want)))
    bound = rel * max(1.0, float(np.max(np.abs(want))))
    assert err <= bound, f"{what}: max abs difference {err:.3e} > {bound:.3e}"


@pytest.mark.parametrize("case", CASES)
def test_eval_mode_matches_engine(sessions: dict[str, Session], case: str) -> None:
    session = sessions[case]
    net = session.network
    for bn in net.batchnorms():  # the running statistics have moved
        assert bn.num_batches_tracked > 0
        assert np.any(bn.running_mean != 0)
    model = to_torch(net)
    assert not model.training
    assert net.n_params() == sum(p.numel() for p in model.parameters())
    assert all(p.dtype == torch.float64 for p in model.parameters())
    for what, X in (("train", session.X_train), ("fresh", fresh_inputs(session)),
                    ("one sample", session.X_train[:1])):
        want = engine_eval(session, X)
        got = torch_out(model, X)
        assert_logits_close(got, want, 1e-10, f"{case} {what}")
        np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))


@pytest.mark.parametrize("case", CASES)
def test_train_mode_uses_batch_statistics_like_engine(
    sessions: dict[str, Session], case: str
) -> None:
    session = sessions[case]
    model = copy.deepcopy(to_torch(session.network)).train()  # train mode moves its stats
    X = session.X_train[:40]
    want = session.network.forward(X, training=True, update_running=False)
    assert_logits_close(torch_out(model, X), want, 1e-10, f"{case} train mode")


@pytest.mark.parametrize("bn", ["torch", "keras-unbiased"])
def test_torch_conventions_keep_updating_alike(bn: str) -> None:
    """With torch's own conventions, training the export moves its running stats alike."""
    opts = BN["torch"] if bn == "torch" else BNOptions(eps=0.01, momentum=0.9,
                                                         momentum_style="keras")
    cfg = RunConfig(dataset="wine", arch="6:tanh,C", bn=opts, batch_size=16, seed=5)
    session = Session(cfg)
    session.train(steps=3, eval_every=3)
    model = to_torch(session.network).train()
    X = session.X_train[5:30]
    torch_out(model, X)
    session.network.forward(X, training=True)
    for block in session.network.blocks:
        tbn = model.get_submodule(f"bn{block.index}")
        np.testing.assert_allclose(tbn.running_mean.numpy(), block.bn.running_mean, rtol=1e-12)
        np.testing.assert_allclose(tbn.running_var.numpy(), block.bn.running_var, rtol=1e-12)
        assert int(tbn.num_batches_tracked) == block.bn.num_batches_tracked == 4


@pytest.mark.parametrize("case", ["5:sigmoid,4:relu,C|seed003", "seed-digits", "seed-softmax"])
def test_float32_network_gives_float32_model(case: str) -> None:
    session = make_session(case, steps=3, dtype="float32")
    assert session.network.dtype == np.float32
    model = to_torch(session.network)
    assert all(t.dtype == torch.float32 for t in model.state_dict().values()
               if t.is_floating_point())
    for X in (session.X_train, fresh_inputs(session)):
        assert_logits_close(torch_out(model, X), engine_eval(session, X), 1e-5, case)


def test_structure_and_conventions(sessions: dict[str, Session]) -> None:
    nn = torch.nn
    model = to_torch(sessions["6:leaky_relu=0.1,C:nobias|seed003"].network)
    assert [name for name, _ in model.named_children()] == ["dense1", "bn1", "act1",
                                                            "dense2", "bn2"]
    assert isinstance(model.act1, nn.LeakyReLU) and model.act1.negative_slope == 0.1
    assert model.dense2.bias is None and model.dense1.bias is not None
    assert model.bn1.eps == 0.01
    assert model.bn1.momentum == pytest.approx(0.01, abs=1e-15)  # keras 0.99 → torch 0.01
    assert not any(isinstance(m, nn.Softmax | nn.LogSoftmax) for m in model.modules())

    net = sessions["8:tanh:nobn,6:elu=0.5,C:nobn|torch"].network
    model = to_torch(net)
    assert [type(m).__name__ for m in model] == [
        "Linear", "Tanh", "Linear", "BatchNorm1d", "ELU", "Linear"]
    assert model.act2.alpha == 0.5
    np.testing.assert_array_equal(model.dense1.weight.detach().numpy(), net.blocks[0].dense.W.T)

    net = sessions["7:identity,C|torch"].network
    model = to_torch(net)
    assert isinstance(model.act1, nn.Identity)
    assert int(model.bn1.num_batches_tracked) == net.blocks[0].bn.num_batches_tracked
    np.testing.assert_array_equal(model.bn1.running_var.numpy(), net.blocks[0].bn.running_var)
    np.testing.assert_array_equal(model.bn2.weight.detach().numpy(), net.blocks[1].bn.gamma)


def test_running_std_becomes_running_var(sessions: dict[str, Session]) -> None:
    net = sessions["seed-softmax"].network
    bn = net.blocks[0].bn
    model = to_torch(net)
    np.testing.assert_allclose(model.bn1.running_var.numpy() + bn.eps, bn.running_std**2,
                               rtol=1e-15)


def test_running_std_below_sqrt_eps_is_refused() -> None:
    session = make_session("5:sigmoid,4:relu,C|seed000", steps=2)
    bn = session.network.blocks[1].bn
    bn.running_std[2] = 0.5 * np.sqrt(bn.eps)
    with pytest.raises(BntuiError, match=r"block 2 BatchNorm.*feature 3"):
        to_torch(session.network)


def test_logits_feed_cross_entropy(sessions: dict[str, Session]) -> None:
    session = sessions["seed-digits"]
    logits = torch_out(to_torch(session.network), session.X_val)
    loss = torch.nn.CrossEntropyLoss()(torch.from_numpy(logits), torch.from_numpy(session.y_val))
    engine = session.evaluate()["val_loss"]
    assert float(loss) == pytest.approx(engine, rel=1e-10)


def test_torch_random_state_untouched(sessions: dict[str, Session]) -> None:
    before = torch.get_rng_state()
    to_torch(sessions["seed-digits"].network)
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", ["6:leaky_relu=0.1,C:nobias|seed003", "seed-softmax"])
def test_export_load_round_trip(tmp_path, case: str, dtype: str) -> None:
    session = make_session(case, steps=3, dtype=dtype)
    path = tmp_path / "model.pt"
    export_torch(session.network, path)
    loaded = load_torch(str(path))
    model = to_torch(session.network)
    assert not loaded.training
    assert [n for n, _ in loaded.named_children()] == [n for n, _ in model.named_children()]
    assert [s[0] for s in layer_specs(session.network)] == [n for n, _ in model.named_children()]
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    X = fresh_inputs(session)
    np.testing.assert_array_equal(torch_out(loaded, X), torch_out(model, X))


def test_load_rejects_other_files(tmp_path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(BntuiError, match="not a bntui torch export"):
        load_torch(other)
    with pytest.raises(BntuiError, match="cannot read"):
        load_torch(tmp_path / "missing.pt")


def test_missing_torch_is_a_clear_error(
    sessions: dict[str, Session], monkeypatch, tmp_path
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    net = sessions["7:identity,C|torch"].network
    for call in (lambda: to_torch(net), lambda: export_torch(net, tmp_path / "m.pt"),
                 lambda: load_torch(tmp_path / "m.pt")):
        with pytest.raises(BntuiError) as info:
            call()
        assert str(info.value) == TORCH_MISSING
