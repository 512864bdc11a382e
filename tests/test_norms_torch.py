"""LayerNorm, GroupNorm and RMSNorm against torch's layers of the same name, and against
their own invariants: forward and backward, training and eval, staged and compact."""

from __future__ import annotations

import numpy as np
import pytest

from bntui.engine import GroupNorm, LayerNorm, RMSNorm
from bntui.engine.arch import parse_arch
from bntui.engine.network import Network
from bntui.engine.nodes import backward_nodes, forward_nodes

torch = pytest.importorskip("torch")

# (engine layer, torch layer, width) on odd widths; GroupNorm's groups of 1, 3 and 7
CASES = {
    "layernorm-7": (lambda: LayerNorm(7), lambda: torch.nn.LayerNorm(7), 7),
    "layernorm-1e-3": (lambda: LayerNorm(5, eps=1e-3), lambda: torch.nn.LayerNorm(5, eps=1e-3), 5),
    "groupnorm-3x3": (lambda: GroupNorm(3, 9), lambda: torch.nn.GroupNorm(3, 9), 9),
    "groupnorm-7x1": (lambda: GroupNorm(7, 7), lambda: torch.nn.GroupNorm(7, 7), 7),
    "groupnorm-1x5": (lambda: GroupNorm(1, 5, eps=1e-4),
                      lambda: torch.nn.GroupNorm(1, 5, eps=1e-4), 5),
    "rmsnorm-5": (lambda: RMSNorm(5), lambda: torch.nn.RMSNorm(5, eps=1e-6), 5),
    "rmsnorm-11": (lambda: RMSNorm(11, eps=1e-3), lambda: torch.nn.RMSNorm(11, eps=1e-3), 11),
}


def rel(a: np.ndarray, b: np.ndarray, floor: float = 1e-300) -> float:
    """max |a − b| / max |b|; `floor` bounds the scale from below (a gradient that is zero
    in exact arithmetic — GroupNorm's groups of one — is rounding noise in torch)."""
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), floor))


def _pair(case: str, seed: int):
    make, make_torch, d = CASES[case]
    rng = np.random.default_rng(seed)
    layer, ref = make(), make_torch().double()
    layer.gamma = rng.normal(size=d)
    if "beta" in layer.params:
        layer.beta = rng.normal(size=d)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.gamma))
        if "beta" in layer.params:
            ref.bias.copy_(torch.tensor(layer.beta))
    return layer, ref, d, rng


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("m", [1, 3, 13])
@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_and_backward_equal_torch(case: str, m: int, training: bool) -> None:
    if case == "groupnorm-7x1" and m == 1:
        pytest.skip("torch refuses a GroupNorm whose batch holds one value per group")
    layer, ref, d, rng = _pair(case, m)
    ref.train(training)
    X = rng.normal(size=(m, d)) * 3.0 + 1.5
    dy = rng.normal(size=(m, d))
    xt = torch.tensor(X, requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.tensor(dy))
    for staged in (True, False):
        out = layer.forward(X, training=training)
        dX = layer.backward(dy, staged=staged)
        assert rel(out, yt.detach().numpy()) < 1e-9
        assert rel(dX, xt.grad.numpy(), floor=1e-3) < 1e-9
        assert rel(layer.grads["gamma"], ref.weight.grad.numpy(), floor=1e-3) < 1e-9
        if "beta" in layer.params:
            assert rel(layer.grads["beta"], ref.bias.grad.numpy()) < 1e-9
    # the same numbers in both modes: nothing is averaged over the batch
    assert np.array_equal(layer.forward(X, training=True), layer.forward(X, training=False))


@pytest.mark.parametrize("case", sorted(CASES))
def test_staged_and_compact_agree_and_keep_every_node(case: str) -> None:
    layer, _, d, rng = _pair(case, 5)
    X, dy = rng.normal(size=(17, d)), rng.normal(size=(17, d))
    layer.forward(X)
    staged = layer.backward(dy, staged=True)
    names = {n.name for n, _ in forward_nodes(layer.NODES, ("train",))}
    grads = {n.grad_name for n, _ in backward_nodes(layer.NODES, ("train",))}
    assert names | grads <= set(layer.cache)  # every forward and backward node, by name
    compact = layer.backward(dy, staged=False)
    assert np.max(np.abs(staged - compact)) <= 1e-12 * np.max(np.abs(staged))


ZERO_EPS = {"layernorm": lambda d: LayerNorm(d, eps=0.0),
            "groupnorm-3": lambda d: GroupNorm(3, d, eps=0.0),
            "rmsnorm": lambda d: RMSNorm(d, eps=0.0)}


@pytest.mark.parametrize("kind", sorted(ZERO_EPS))
def test_the_input_gradient_is_orthogonal_to_what_the_layer_removes(kind: str) -> None:
    """Per sample (and group): Σⱼ dZ = 0 where the mean is removed, and Σⱼ dZ · Znorm = 0
    — the directions the normalization cannot see.  Exact with ε = 0 (with ε the second
    sum is Σⱼ dZnorm · Znorm · ε / (var + ε) / std, not 0)."""
    rng = np.random.default_rng(9)
    d = 12
    layer = ZERO_EPS[kind](d)
    layer.gamma = rng.normal(size=d)
    X, dy = rng.normal(size=(6, d)) * 4.0 - 2.0, rng.normal(size=(6, d))
    layer.forward(X)
    dZ = layer.backward(dy)
    groups = getattr(layer, "num_groups", 1)
    g = dZ.reshape(6, groups, -1)
    zn = layer.cache["Znorm"].reshape(g.shape)
    scale = np.abs(g).max()
    assert np.abs((g * zn).sum(axis=-1)).max() < 1e-13 * scale * d
    if layer.kind != "rmsnorm":
        assert np.abs(g.sum(axis=-1)).max() < 1e-13 * scale * d
    else:  # RMSNorm does not centre: the sum is not removed
        assert np.abs(g.sum(axis=-1)).max() > 1e-3 * scale


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_training_path_is_the_staged_forward_with_the_compact_backward(case: str) -> None:
    layer, _, d, rng = _pair(case, 3)
    X, dy = rng.normal(size=(8, d)), rng.normal(size=(8, d))
    out = layer.forward(X)
    compact = layer.backward(dy, staged=False)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    assert np.array_equal(layer.train_forward(X), out)
    assert np.array_equal(layer.train_backward(dy), compact)
    for k, v in grads.items():
        assert np.array_equal(layer.grads[k], v)
    assert np.array_equal(layer.infer(X), out)


@pytest.mark.parametrize("arch", ["16:ln:tanh,C", "12:gn=4:relu,9:rms:sigmoid,C:ln",
                                  "10:rms:elu,C:gn=3"])
def test_a_network_of_each_trains_bit_identically_to_its_staged_pass(arch: str) -> None:
    rng = np.random.default_rng(0)
    net = Network.build(parse_arch(arch), 4, 3, rng)
    X, y = rng.normal(size=(21, 4)), rng.integers(0, 3, 21)
    loss = net.loss(X, y)
    grads = {k: v.copy() for k, v in net.backward(staged=False).items()}
    loss2, _ = net.train_step(X, y)
    assert loss2 == loss
    for k, v in net.grads().items():
        assert np.array_equal(v, grads[k]), k


def test_a_network_equals_its_torch_twin_in_training_mode() -> None:
    """The whole network against torch's modules (not the engine's autograd twin)."""
    from bntui.engine.export import to_torch

    rng = np.random.default_rng(4)
    net = Network.build(parse_arch("12:ln:tanh,12:gn=4:relu,6:rms:sigmoid,C:nobn"), 5, 3, rng)
    for b in net.blocks:
        if b.norm is not None:
            b.norm.gamma = rng.normal(size=b.norm.num_features)
            if "beta" in b.norm.params:
                b.norm.beta = rng.normal(size=b.norm.num_features)
    X, y = rng.normal(size=(9, 5)), rng.integers(0, 3, 9)
    loss = net.loss(X, y)
    net.backward()
    model = to_torch(net).train()
    out = torch.nn.functional.cross_entropy(model(torch.tensor(X)), torch.tensor(y))
    out.backward()
    assert abs(out.item() - loss) < 1e-12
    for i, b in enumerate(net.blocks, 1):
        lin = model.get_submodule(f"dense{i}")
        assert rel(b.dense.grads["W"], lin.weight.grad.numpy().T) < 1e-9
        if b.norm is not None:
            mod = model.get_submodule(f"{b.norm.short}{i}")
            assert rel(b.norm.grads["gamma"], mod.weight.grad.numpy()) < 1e-9
