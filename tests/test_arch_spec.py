"""The architecture spec: parsing, defaults, round trips, errors, and parameter counts.

Good specs parse to the expected blocks and survive `to_string`; bad specs raise
`BntuiError` naming the offending token and block; random text never raises anything
else; random valid specs (hypothesis) parse to what was drawn, round-trip, and build
networks whose `n_params()` is Σ fan_in·fan_out + bias + 2·width for BatchNorm.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bntui.engine import ArchSpec, BlockSpec, BntuiError, Network, parse_arch

GOOD = {
    "32:sigmoid,16:relu,10": (
        BlockSpec(32, activation="sigmoid"),
        BlockSpec(16, activation="relu"),
        BlockSpec(10, activation="identity"),
    ),
    "4:nobias": (BlockSpec(4, activation="identity", bias=False),),
    "64:tanh:nobn,64:tanh:nobn,C": (
        BlockSpec(64, norm=None, activation="tanh"),
        BlockSpec(64, norm=None, activation="tanh"),
        BlockSpec(None, activation="identity"),
    ),
    "16,C": (BlockSpec(16), BlockSpec(None, activation="identity")),
    "32:ln:relu,16:gn=4,C:rms": (
        BlockSpec(32, norm="ln"),
        BlockSpec(16, norm="gn", groups=4),
        BlockSpec(None, norm="rms", activation="identity"),
    ),
    "12:GN(3):tanh,8:nonorm,C:ln": (
        BlockSpec(12, norm="gn", groups=3, activation="tanh"),
        BlockSpec(8, norm=None),
        BlockSpec(None, norm="ln", activation="identity"),
    ),
    " 8 : Leaky_ReLU(0.2) , c : SOFTMAX ": (
        BlockSpec(8, activation="leaky_relu", alpha=0.2),
        BlockSpec(None, activation="identity"),
    ),
    "8:lrelu=0.3,7:linear,6:elu,5:elu=2,C": (
        BlockSpec(8, activation="leaky_relu", alpha=0.3),
        BlockSpec(7, activation="identity"),
        BlockSpec(6, activation="elu"),
        BlockSpec(5, activation="elu", alpha=2.0),
        BlockSpec(None, activation="identity"),
    ),
    "8:bias:bn:relu,C:nobias:nobn": (
        BlockSpec(8),
        BlockSpec(None, norm=None, activation="identity", bias=False),
    ),
    "1:nobn:nobias:sigmoid,classes": (
        BlockSpec(1, norm=None, activation="sigmoid", bias=False),
        BlockSpec(None, activation="identity"),
    ),
}


@pytest.mark.parametrize("spec", list(GOOD))
def test_good_specs(spec: str) -> None:
    arch = parse_arch(spec)
    assert isinstance(arch, ArchSpec)
    assert arch.blocks == GOOD[spec]
    text = arch.to_string()
    assert parse_arch(text) == arch
    assert parse_arch(text).to_string() == text  # the canonical form is a fixed point


def test_defaults() -> None:
    arch = parse_arch("12,7,C")
    hidden, out = arch.blocks[:-1], arch.blocks[-1]
    for b in hidden:
        assert b.batchnorm and b.bias and b.activation == "relu" and b.alpha is None
    assert out.batchnorm and out.bias and out.activation == "identity" and out.width is None
    assert arch.to_string() == "12:relu,7:relu,C"
    assert arch.widths(5) == [12, 7, 5]
    net = Network.build(arch, 3, 5, np.random.default_rng(0))
    assert [b.act.name for b in net.blocks] == ["relu", "relu", "identity"]
    assert [b.bn is not None for b in net.blocks] == [True, True, True]
    assert [b.dense.has_bias for b in net.blocks] == [True, True, True]
    assert net.blocks[-1].is_output and not net.blocks[0].is_output


def test_leaky_relu_default_alpha_is_torchs() -> None:
    net = Network.build(parse_arch("4:leaky_relu,C"), 2, 2, np.random.default_rng(0))
    assert net.blocks[0].act.alpha == 0.01


# (spec, offending token, block number)
BAD = [
    ("0", "0", 1),
    ("abc", "abc", 1),
    ("32:sigmod", "sigmod", 1),
    ("32:relu:tanh", "relu", 1),  # a single block is the output: no activation at all
    ("32:relu:tanh,C", "tanh", 1),  # a hidden block has one activation
    ("32:bn:nobn", "nobn", 1),
    ("32:bias:nobias,C", "nobias", 1),
    ("32,16:relu", "relu", 2),  # the last block takes no activation
    ("C,10", "C", 1),
    ("leaky_relu=x", "leaky_relu=x", 1),
    ("8:leaky_relu=x,C", "leaky_relu=x", 1),
    ("8:leaky_relu=-1,C", "leaky_relu=-1", 1),
    ("8:elu=inf,C", "elu=inf", 1),
    ("8:elu=nan,C", "elu=nan", 1),
    ("8:relu=0.1,C", "relu=0.1", 1),
    ("8,4:softmax,C", "softmax", 2),
    ("8:relu,4:sigmoid,2:tnah,C", "tnah", 3),
    ("200000,C", "200000", 1),
    ("8::relu,C", "", 1),
    ("-3,C", "-3", 1),
    ("8,2.5,C", "2.5", 2),
    ("32:gn,C", "gn", 1),  # GroupNorm needs its groups
    ("8,30:gn=4,C", "gn=4", 2),  # 4 groups do not divide 30
    ("32:gn=0,C", "gn=0", 1),
    ("32:gn=x,C", "gn=x", 1),
    ("32:ln:bn,C", "bn", 1),  # one normalization per block
    ("32:rms:nonorm,C", "nonorm", 1),
    ("32:ln=3,C", "ln=3", 1),
]


@pytest.mark.parametrize(("spec", "token", "block"), BAD, ids=[b[0] for b in BAD])
def test_bad_specs_name_the_token_and_block(spec: str, token: str, block: int) -> None:
    with pytest.raises(BntuiError) as info:
        parse_arch(spec)
    msg = str(info.value)
    assert "\n" not in msg
    # the token is quoted (the parser reports it lower-cased, so compare without case)
    assert f"'{token.lower()}'" in msg.lower(), msg
    assert re.search(rf"\bblock {block}\b", msg), msg


def test_groupnorm_groups_must_divide_the_classes_at_build() -> None:
    """`C:gn=G` is known only once the dataset's classes are: the build refuses it."""
    arch = parse_arch("8,C:gn=2")
    Network.build(arch, 3, 4, np.random.default_rng(0))  # 2 divides 4
    with pytest.raises(BntuiError, match="2 groups do not divide 3 features"):
        Network.build(arch, 3, 3, np.random.default_rng(0))


@pytest.mark.parametrize("spec", ["", "   ", "\t"])
def test_empty_spec(spec: str) -> None:
    with pytest.raises(BntuiError, match="empty"):
        parse_arch(spec)


@pytest.mark.parametrize(("spec", "block"), [(",,", 1), ("8,,C", 2), ("8,4,", 3), (",C", 1)])
def test_empty_block(spec: str, block: int) -> None:
    with pytest.raises(BntuiError, match=rf"block {block} is empty"):
        parse_arch(spec)


@pytest.mark.parametrize("spec", ["²", "²,C", "8,³:relu,C", "1" * 5000],
                         ids=["superscript-2", "superscript-2-C", "superscript-3", "5000-digits"])
def test_odd_digits_raise_bntui_error(spec: str) -> None:
    """`str.isdigit()` accepts '²' and a 5000-digit width, but `int()` refuses both."""
    with pytest.raises(BntuiError):
        parse_arch(spec)


def test_to_string_keeps_every_digit_of_alpha() -> None:
    arch = parse_arch("8:leaky_relu=0.123456789,C")
    assert arch.blocks[0].alpha == 0.123456789
    assert parse_arch(arch.to_string()) == arch


def test_output_width_must_match_the_classes() -> None:
    with pytest.raises(BntuiError, match="classes"):
        Network.build(parse_arch("8,4"), 3, 5, np.random.default_rng(0))


# hypothesis -----------------------------------------------------------------------
SPEC_CHARS = "0123456789cC:,=(). _-abdeilmnorstuwxyfgkh²٣\t"


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=SPEC_CHARS, max_size=30)))
def test_random_text_raises_only_bntui_error(text: str) -> None:
    try:
        arch = parse_arch(text)
    except BntuiError as e:
        assert str(e)
        return
    assert arch.blocks  # whatever parsed is a usable spec that round-trips
    assert parse_arch(arch.to_string()) == arch


ACT_SPELLINGS = {
    "identity": ["identity", "linear", "none"],
    "sigmoid": ["sigmoid"],
    "tanh": ["tanh"],
    "relu": ["relu"],
    "leaky_relu": ["leaky_relu", "lrelu", "leaky", "leakyrelu", "leaky-relu"],
    "elu": ["elu"],
}
ALPHAS = st.floats(0.0, 10.0, allow_nan=False, allow_infinity=False)


def _case(draw, word: str) -> str:
    return word.upper() if draw(st.booleans()) else word


@st.composite
def block_text(draw, last: bool, n_classes: int):
    """(text of one block, the BlockSpec it should parse to)."""
    if last:
        width = draw(st.sampled_from([None, n_classes]))
    else:
        width = draw(st.integers(1, 40))
    options: list[str] = []
    norm = draw(st.sampled_from(["unset", None, "bn", "ln", "gn", "rms"]))
    groups = None
    if norm == "gn":
        if width is None:
            norm = "ln"  # the classes are not known to the parser: gn=G is checked at build
        else:
            groups = draw(st.sampled_from([g for g in range(1, width + 1) if width % g == 0]))
    if norm is None:
        options.append(draw(st.sampled_from(["nobn", "nonorm"])))
    elif norm != "unset":
        options.append(f"gn={groups}" if norm == "gn" else norm)
    bias = draw(st.sampled_from([None, True, False]))
    if bias is not None:
        options.append("bias" if bias else "nobias")
    act, alpha = ("identity", None) if last else ("relu", None)
    if last:
        if draw(st.booleans()):
            options.append("softmax")
    elif draw(st.booleans()):
        act = draw(st.sampled_from(sorted(ACT_SPELLINGS)))
        word = draw(st.sampled_from(ACT_SPELLINGS[act]))
        if act in ("leaky_relu", "elu") and draw(st.booleans()):
            alpha = draw(ALPHAS)
            word += f"={alpha!r}" if draw(st.booleans()) else f"({alpha!r})"
        options.append(word)
    options = draw(st.permutations(options))
    pieces = ["C" if width is None else str(width)] + [_case(draw, o) for o in options]
    sep = draw(st.sampled_from([":", " : ", ":  "]))
    spec = BlockSpec(
        width,
        norm="bn" if norm == "unset" else norm,
        groups=groups,
        activation=act,
        alpha=alpha,
        bias=True if bias is None else bias,
    )
    return sep.join(pieces), spec


@st.composite
def arch_text(draw):
    n_classes = draw(st.integers(2, 6))
    n_blocks = draw(st.integers(1, 4))
    parts = [draw(block_text(i == n_blocks - 1, n_classes)) for i in range(n_blocks)]
    text = draw(st.sampled_from([",", " , "])).join(p[0] for p in parts)
    return text, ArchSpec(tuple(p[1] for p in parts)), n_classes


@settings(max_examples=200, deadline=None)
@given(arch_text())
def test_random_valid_specs_parse_and_round_trip(case) -> None:
    text, expected, _ = case
    arch = parse_arch(text)
    assert arch == expected
    assert parse_arch(arch.to_string()) == arch


def expected_n_params(arch: ArchSpec, n_features: int, n_classes: int) -> int:
    total, fan_in = 0, n_features
    for block, width in zip(arch.blocks, arch.widths(n_classes), strict=True):
        total += fan_in * width
        total += width if block.bias else 0
        total += {None: 0, "rms": width}.get(block.norm, 2 * width)
        fan_in = width
    return total


@settings(max_examples=100, deadline=None)
@given(arch_text(), st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_built_networks_count_their_parameters(case, n_features, seed) -> None:
    text, _, n_classes = case
    arch = parse_arch(text)
    net = Network.build(arch, n_features, n_classes, np.random.default_rng(seed))
    assert net.n_params() == expected_n_params(arch, n_features, n_classes)
    assert sum(int(r["params"]) for r in net.param_table()) == net.n_params()
    assert len(net.blocks) == len(arch.blocks)
    assert net.blocks[-1].dense.fan_out == n_classes
    for block, spec in zip(net.blocks, arch.blocks, strict=True):
        assert (block.bn is not None) == spec.batchnorm
        assert (None if block.norm is None else block.norm.short) == spec.norm
        assert block.dense.has_bias == spec.bias
        if not block.is_output:
            assert block.act.name == spec.activation
    # and it runs: a forward pass gives one row of logits per sample
    X = np.random.default_rng(seed).standard_normal((4, n_features))
    assert net.forward(X).shape == (4, n_classes)


def test_seed_network_parameter_counts() -> None:
    digits = Network.build(parse_arch("32:sigmoid,16:relu,10"), 64, 10, np.random.default_rng(0))
    assert digits.n_params() == 2894
    assert sum(int(r["params"]) for r in digits.param_table()[:4]) == 2704
    toy = Network.build(parse_arch("4:nobias"), 2, 4, np.random.default_rng(0))
    assert toy.n_params() == 2 * 4 + 2 * 4
