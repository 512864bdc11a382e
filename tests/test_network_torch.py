"""Whole networks and optimizers against PyTorch, in float64.

Networks built by `Network.build` are rebuilt here, independently of the engine's own
autograd twin, as a `torch.nn.Sequential` of `Linear`, `BatchNorm1d` and activation
modules with copied weights; loss and every gradient agree to 1e-9 in training and eval
mode.  The two preset networks pass the engine's analytic-vs-autograd check with every
glossary tensor present, and each optimizer follows `torch.optim` step for step.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from bntui.engine import BNOptions, Network, Session, make_optimizer, parse_arch, preset

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL = 1e-9
ATOL = 1e-15
N_FEATURES, N_CLASSES, BATCH = 5, 3, 24

SPECS = [
    "5:sigmoid,4:relu,C",
    "8:tanh:nobn,6:elu=0.5,C:nobn",
    "6:leaky_relu=0.1,C:nobias",
    "7:identity,C",
    "6:leaky_relu,5:elu,C:nobias",
    "C:nobias",
]
BN_OPTIONS = {
    "torch-defaults": BNOptions(),
    "eps1e-3-mom0.3": BNOptions(eps=1e-3, momentum=0.3),
    "keras0.99": BNOptions(eps=0.01, momentum=0.99, momentum_style="keras"),
}
GLOSSARY_BN_GRADS = ("dZbn", "dgamma", "dbeta", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ",
                     "dW", "dX")


def assert_close(a, b, what: str, rtol: float = RTOL) -> None:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    if err <= ATOL:
        return
    rel = err / max(1e-12, float(np.max(np.abs(b))))
    assert rel < rtol, f"{what}: relative error {rel:.3e} (abs {err:.3e})"


def torch_momentum(opts: BNOptions) -> float:
    return opts.momentum if opts.momentum_style == "torch" else 1.0 - opts.momentum


def torch_activation(block):
    act = block.act
    if block.is_output or act.name == "identity":
        return torch.nn.Identity()
    return {
        "sigmoid": lambda: torch.nn.Sigmoid(),
        "tanh": lambda: torch.nn.Tanh(),
        "relu": lambda: torch.nn.ReLU(),
        "leaky_relu": lambda: torch.nn.LeakyReLU(negative_slope=act.alpha),
        "elu": lambda: torch.nn.ELU(alpha=act.alpha),
    }[act.name]()


def torch_twin(network: Network, opts: BNOptions):
    """A torch.nn.Sequential with the network's weights, and its layers per block."""
    layers, per_block = [], []
    for block in network.blocks:
        d = block.dense
        lin = torch.nn.Linear(d.fan_in, d.fan_out, bias=d.has_bias).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(d.W.T.copy()))
            if d.has_bias:
                lin.bias.copy_(torch.from_numpy(d.params["b"].copy()))
        mods = {"dense": lin}
        layers.append(lin)
        if block.bn is not None:
            bn = torch.nn.BatchNorm1d(d.fan_out, eps=opts.eps,
                                      momentum=torch_momentum(opts)).double()
            with torch.no_grad():
                bn.weight.copy_(torch.from_numpy(block.bn.gamma.copy()))
                bn.bias.copy_(torch.from_numpy(block.bn.beta.copy()))
            mods["bn"] = bn
            layers.append(bn)
        layers.append(torch_activation(block))
        per_block.append(mods)
    return torch.nn.Sequential(*layers), per_block


def build(spec: str, opts: BNOptions, seed: int) -> Network:
    rng = np.random.default_rng(seed)
    net = Network.build(parse_arch(spec), N_FEATURES, N_CLASSES, rng, bn=opts)
    for bn in net.batchnorms():  # non-trivial scale and shift
        bn.gamma = rng.uniform(0.5, 1.5, bn.num_features) * rng.choice([-1.0, 1.0],
                                                                        bn.num_features)
        bn.beta = 0.3 * rng.standard_normal(bn.num_features)
    return net


def batch(rng: np.random.Generator, n: int = BATCH):
    X = rng.standard_normal((n, N_FEATURES)) * rng.uniform(0.5, 3.0, N_FEATURES) + 1.0
    y = rng.integers(0, N_CLASSES, n)
    k = min(n, N_CLASSES)
    y[:k] = np.arange(k)  # every class present, when there is room
    return X, y


def torch_loss_and_grads(model, per_block, X, y):
    model.zero_grad(set_to_none=True)
    Xt = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(model(Xt), torch.from_numpy(y))
    loss.backward()
    grads = {}
    for i, mods in enumerate(per_block, start=1):
        grads[f"{i}.W"] = mods["dense"].weight.grad.numpy().T
        if mods["dense"].bias is not None:
            grads[f"{i}.b"] = mods["dense"].bias.grad.numpy()
        if "bn" in mods:
            grads[f"{i}.gamma"] = mods["bn"].weight.grad.numpy()
            grads[f"{i}.beta"] = mods["bn"].bias.grad.numpy()
    return float(loss.item()), grads, Xt.grad.numpy()


def compare_pass(net: Network, model, per_block, X, y, training: bool, label: str) -> None:
    t_loss, t_grads, t_dX = torch_loss_and_grads(model, per_block, X, y)
    for staged in (True, False):
        # torch's training forward moved its running statistics once: so does our first
        loss = net.loss(X, y, training=training, update_running=staged)
        grads = net.backward(staged=staged)
        assert loss == pytest.approx(t_loss, rel=1e-12), label
        assert set(grads) == set(t_grads), (label, sorted(grads), sorted(t_grads))
        for key, g in grads.items():
            if key.endswith(".b") and net.blocks[int(key.split(".")[0]) - 1].bn is not None \
                    and training:
                # a bias right before BatchNorm: zero by construction, compare absolutely
                assert np.max(np.abs(g)) < 1e-14 and np.max(np.abs(t_grads[key])) < 1e-14
                continue
            assert_close(g, t_grads[key], f"{label} staged={staged} {key}")
        if staged:
            assert_close(net.blocks[0].cache["dX"], t_dX, f"{label} dX")


@pytest.mark.parametrize("opts_name", list(BN_OPTIONS))
@pytest.mark.parametrize("spec", SPECS)
def test_network_matches_torch(spec: str, opts_name: str) -> None:
    opts = BN_OPTIONS[opts_name]
    rng = np.random.default_rng(zlib.crc32(f"{spec}|{opts_name}".encode()))
    net = build(spec, opts, seed=int(rng.integers(1 << 30)))
    model, per_block = torch_twin(net, opts)
    assert net.n_params() == sum(p.numel() for p in model.parameters())

    model.train()
    X, y = batch(rng)
    compare_pass(net, model, per_block, X, y, training=True, label=f"{spec} train")

    # a few training forwards on both, so the running statistics are non-trivial
    for _ in range(4):
        Xb, _ = batch(rng)
        net.forward(Xb, training=True)
        model(torch.from_numpy(Xb))
    for block, mods in zip(net.blocks, per_block, strict=True):
        if block.bn is not None:
            assert_close(block.bn.running_mean, mods["bn"].running_mean.numpy(),
                         f"{spec} block {block.index} running_mean")
            assert_close(block.bn.running_var, mods["bn"].running_var.numpy(),
                         f"{spec} block {block.index} running_var")
            assert block.bn.num_batches_tracked == int(mods["bn"].num_batches_tracked)

    model.eval()
    X, y = batch(rng, 9)
    compare_pass(net, model, per_block, X, y, training=False, label=f"{spec} eval")
    X1, y1 = batch(rng, 1)  # eval mode takes a single sample
    compare_pass(net, model, per_block, X1, y1, training=False,
                 label=f"{spec} eval batch 1")


@pytest.fixture(scope="module")
def preset_reports():
    out = {}
    for name in ("seed-digits", "seed-softmax"):
        session = Session(preset(name))
        out[name] = (session, session.gradcheck(numeric=False))
    return out


@pytest.mark.parametrize("name", ["seed-digits", "seed-softmax"])
def test_preset_analytic_matches_autograd(preset_reports, name: str) -> None:
    _, report = preset_reports[name]
    assert report.torch
    assert not report.notes, report.notes
    assert report.max_rel_error()["analytic_vs_numeric"] is None
    worst = report.max_rel_error()["analytic_vs_autograd"]
    assert worst is not None and worst < 1e-9
    auto = [c for c in report.checks if c.pair == "analytic_vs_autograd"]
    assert auto
    for c in auto:
        if c.status == "ok":
            assert c.rel_error is not None and c.rel_error < 1e-9, c
        else:  # only a bias right before BatchNorm may be left out
            assert c.status == "zero_by_construction" and c.tensor == "db", c
        assert c.entries == c.total


@pytest.mark.parametrize("name", ["seed-digits", "seed-softmax"])
def test_preset_report_names_every_bn_tensor(preset_reports, name: str) -> None:
    session, report = preset_reports[name]
    net = session.network
    bn_blocks = [b for b in net.blocks if b.bn is not None]
    assert bn_blocks
    for block in bn_blocks:
        names = {c.tensor for c in report.checks
                 if c.layer == block.index and c.pair == "analytic_vs_autograd"}
        expected = set(GLOSSARY_BN_GRADS) | ({"db"} if block.dense.has_bias else set())
        assert expected <= names, (block.index, sorted(expected - names))
        if not block.dense.has_bias:
            assert "db" not in names
        if not block.is_output:
            assert "dA" in names


def test_seed_digits_shape(preset_reports) -> None:
    session, _ = preset_reports["seed-digits"]
    assert session.network.n_params() == 2894
    assert [b.bn is not None for b in session.network.blocks] == [True, True, True]


# optimizers -------------------------------------------------------------------------
OPT_CASES = {
    # name: (lr, torch optimizer factory, {our state slot: torch state key})
    "sgd": (0.1, lambda p, lr: torch.optim.SGD(p, lr=lr), {}),
    "momentum": (0.05, lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
                 {"velocity": "momentum_buffer"}),
    "nesterov": (0.05, lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True),
                 {"velocity": "momentum_buffer"}),
    "adagrad": (0.05, lambda p, lr: torch.optim.Adagrad(p, lr=lr), {"G": "sum"}),
    "rmsprop": (0.01, lambda p, lr: torch.optim.RMSprop(p, lr=lr, alpha=0.99, eps=1e-8),
                {"s": "square_avg"}),
    "adam": (0.01, lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.9, 0.999), eps=1e-8),
             {"m": "exp_avg", "v": "exp_avg_sq"}),
}


def quadratic_grad(p: np.ndarray, curv: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The gradient of Σ curv·p²/2 + p³/30, plus a fixed per-step perturbation."""
    return curv * p + 0.1 * p * p + noise


@pytest.mark.parametrize("name", list(OPT_CASES))
def test_optimizer_matches_torch_optim(name: str) -> None:
    lr, factory, slots = OPT_CASES[name]
    rng = np.random.default_rng(42)
    shapes = {"1.W": (4, 3), "1.b": (3,), "2.gamma": (5,)}
    params = {k: rng.standard_normal(s) for k, s in shapes.items()}
    curv = {k: rng.uniform(0.1, 3.0, s) for k, s in shapes.items()}
    noise = [{k: 0.1 * rng.standard_normal(s) for k, s in shapes.items()} for _ in range(20)]
    t_params = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    t_opt = factory(list(t_params.values()), lr)
    opt = make_optimizer(name, lr)
    assert opt.name == name
    for step in range(20):
        grads = {k: quadratic_grad(p, curv[k], noise[step][k]) for k, p in params.items()}
        for k, tp in t_params.items():
            with torch.no_grad():
                tp.grad = torch.from_numpy(
                    quadratic_grad(tp.detach().numpy(), curv[k], noise[step][k]))
        opt.step(params, grads)
        t_opt.step()
        for k in params:
            assert_close(params[k], t_params[k].detach().numpy(), f"{name} step {step} {k}",
                         rtol=1e-12)
            state = t_opt.state[t_params[k]]
            for ours, theirs in slots.items():
                assert_close(opt.inspect(k)[ours], state[theirs].numpy(),
                             f"{name} step {step} {k} {ours}", rtol=1e-12)
    assert opt.t == 20


def test_adam_inspect_exposes_its_state() -> None:
    opt = make_optimizer("adam", 0.01)
    assert opt.inspect("w") == {"t": 0.0}
    rng = np.random.default_rng(5)
    p = {"w": rng.standard_normal(6)}
    m_ref, v_ref = np.zeros(6), np.zeros(6)
    for t in range(1, 8):
        g = rng.standard_normal(6)
        opt.step(p, {"w": g})
        m_ref = 0.9 * m_ref + 0.1 * g
        v_ref = 0.999 * v_ref + 0.001 * g * g
        info = opt.inspect("w")
        assert {"m", "v", "m_hat", "v_hat", "t", "bias1", "bias2"} <= set(info)
        assert info["t"] == t
        assert info["bias1"] == pytest.approx(1 - 0.9**t, rel=1e-15)
        assert info["bias2"] == pytest.approx(1 - 0.999**t, rel=1e-15)
        np.testing.assert_allclose(info["m"], m_ref, rtol=1e-13)
        np.testing.assert_allclose(info["v"], v_ref, rtol=1e-13)
        np.testing.assert_allclose(info["m_hat"], info["m"] / (1 - 0.9**t), rtol=1e-15)
        np.testing.assert_allclose(info["v_hat"], info["v"] / (1 - 0.999**t), rtol=1e-15)
    # the first step of Adam moves every weight by about lr: m̂ / (√v̂ + ε) = g / (|g| + ε)
    fresh = make_optimizer("adam", 0.01)
    w = {"w": np.array([1.0, -2.0, 3.0])}
    g = np.array([0.5, -7.0, 1e-3])
    fresh.step(w, {"w": g})
    np.testing.assert_allclose(w["w"], [1.0, -2.0, 3.0] - 0.01 * g / (np.abs(g) + 1e-8),
                               rtol=1e-14)


@pytest.mark.parametrize("flat", [False, True], ids=["per-parameter", "flat"])
@pytest.mark.parametrize("name", list(OPT_CASES))
def test_training_a_network_matches_torch(name: str, flat: bool) -> None:
    """20 optimizer steps on a BN network: engine + optimizer vs torch + torch.optim, with
    the optimizer stepping parameter by parameter or the whole flat buffer at once."""
    lr, factory, _ = OPT_CASES[name]
    opts = BNOptions()
    rng = np.random.default_rng(8)
    # no bias before BatchNorm: its gradient is rounding noise, which adaptive optimizers
    # blow up to lr-sized steps of arbitrary sign (and the running means carry the bias)
    net = build("6:tanh:nobias,5:relu:nobias,C:nobias", opts, seed=3)
    model, per_block = torch_twin(net, opts)
    model.train()
    t_params = []
    for mods in per_block:
        t_params.append(mods["dense"].weight)
        if mods["dense"].bias is not None:
            t_params.append(mods["dense"].bias)
        if "bn" in mods:
            t_params += [mods["bn"].weight, mods["bn"].bias]
    t_opt = factory(t_params, lr)
    opt = make_optimizer(name, lr)
    params = net.params()
    X, y = batch(rng, 32)
    for step in range(20):
        loss = net.loss(X, y, training=True)
        grads = net.backward(staged=False)
        if flat:
            assert net.flat is not None
            opt.step_flat(net.flat)
        else:
            opt.step(params, grads)
        t_opt.zero_grad()
        t_loss = F.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(y))
        t_loss.backward()
        t_opt.step()
        assert loss == pytest.approx(float(t_loss.item()), rel=1e-10), step
    for i, mods in enumerate(per_block, start=1):
        assert_close(params[f"{i}.W"], mods["dense"].weight.detach().numpy().T, f"{name} {i}.W")
        if "bn" in mods:
            assert_close(params[f"{i}.gamma"], mods["bn"].weight.detach().numpy(),
                         f"{name} {i}.gamma")
            assert_close(params[f"{i}.beta"], mods["bn"].bias.detach().numpy(),
                         f"{name} {i}.beta")
            bn = net.blocks[i - 1].bn
            assert_close(bn.running_mean, mods["bn"].running_mean.numpy(), f"{i} running_mean")
            assert_close(bn.running_var, mods["bn"].running_var.numpy(), f"{i} running_var")
