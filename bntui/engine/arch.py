"""The architecture spec: a short text that describes a network's blocks.

Grammar (whitespace is ignored, case-insensitive)::

    spec   := block ("," block)*
    block  := width (":" option)*
    width  := a positive integer | "C"        (C = as many as the dataset has classes)
    option := norm | "bias" | "nobias" | activation
    norm   := "bn" | "ln" | "gn=G" | "rms" | "nobn"      (G may be written gn(4))
    activation := identity | sigmoid | tanh | relu | leaky_relu[=α] | elu[=α]
                  (α may also be written in parentheses: leaky_relu(0.1))

Each block is Dense → normalization → activation.  The normalization is BatchNorm (`bn`,
the default), LayerNorm (`ln`), GroupNorm with G groups (`gn=G`; G must divide the
width) or RMSNorm (`rms`); `nobn` (or `nonorm`) leaves it out.  The last block is the
output: its result is the logits that feed softmax + cross-entropy, so it takes no
activation (writing `softmax` there is allowed and means the same).  Defaults: BatchNorm
on, bias on, activation relu.  Examples::

    32:sigmoid,16:relu,10        the seed-digits network (64 → 32 → 16 → 10)
    4:nobias                     the seed-softmax network (2 → 4, no bias)
    64:tanh:nobn,64:tanh:nobn,C  a plain MLP without BatchNorm
    32:ln:relu,16:gn=4,C:rms     LayerNorm, GroupNorm (4 groups), RMSNorm
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bntui.engine.activations import ACTIVATION_NAMES, canonical_activation
from bntui.engine.errors import BntuiError

_ALPHA = re.compile(r"^([a-z_\-]+)\s*(?:=\s*([^()]+)|\(\s*([^()]*)\s*\))$")
OPTIONS = ("bn", "ln", "gn=G", "rms", "nobn", "bias", "nobias")
NORMS = ("bn", "ln", "gn", "rms")  # the normalization tokens (gn takes its groups)
NO_NORM = ("nobn", "nonorm")
MAX_GROUPS = 100_000
MAX_ALPHA = 1000.0  # a steeper slope than this only overflows


@dataclass(frozen=True)
class BlockSpec:
    """One Dense → normalization → activation block."""

    width: int | None  # None: as many as the dataset's classes ("C")
    norm: str | None = "bn"  # "bn", "ln", "gn", "rms" or None
    activation: str = "relu"
    alpha: float | None = None
    bias: bool = True
    groups: int | None = None  # GroupNorm's number of groups

    @property
    def batchnorm(self) -> bool:
        """Whether the block's normalization is a BatchNorm."""
        return self.norm == "bn"

    def to_string(self, output: bool = False) -> str:
        parts = ["C" if self.width is None else str(self.width)]
        if self.norm is None:
            parts.append("nobn")
        elif self.norm == "gn":
            parts.append(f"gn={self.groups}")
        elif self.norm != "bn":
            parts.append(self.norm)
        if not output:
            act = self.activation
            parts.append(act if self.alpha is None else f"{act}={self.alpha!r}")
        if not self.bias:
            parts.append("nobias")
        return ":".join(parts)


@dataclass(frozen=True)
class ArchSpec:
    """A parsed architecture: hidden blocks and the output block, in order."""

    blocks: tuple[BlockSpec, ...] = field(default_factory=tuple)

    def to_string(self) -> str:
        n = len(self.blocks)
        return ",".join(b.to_string(output=i == n - 1) for i, b in enumerate(self.blocks))

    def widths(self, n_classes: int) -> list[int]:
        return [n_classes if b.width is None else b.width for b in self.blocks]


def _fail(spec: str, pos: int, token: str, block_no: int, why: str) -> BntuiError:
    return BntuiError(
        f"arch '{spec}': token '{token}' (block {block_no}, character {pos + 1}): {why}"
    )


_NORM = re.compile(r"^(bn|ln|gn|rms)\s*(?:=\s*([^()]*)|\(\s*([^()]*)\s*\))?$")


def _groups(spec: str, pos: int, tok: str, block_no: int, value: str | None,
            width: int | None) -> int:
    """GroupNorm's number of groups from `gn=G`, checked against a known width."""
    if value is None or not value.strip():
        raise _fail(spec, pos, tok, block_no,
                    "GroupNorm needs its number of groups: write gn=G, e.g. gn=4")
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 6 or int(value) < 1:
        raise _fail(spec, pos, tok, block_no,
                    "the number of groups of gn=G must be a positive integer")
    g = int(value)
    if width is not None and width % g:
        raise _fail(spec, pos, tok, block_no,
                    f"{g} groups do not divide the width {width} (G must divide it)")
    return g


def parse_arch(spec: str) -> ArchSpec:
    """Parse an architecture spec (see the module docstring) or raise BntuiError."""
    if not isinstance(spec, str) or not spec.strip():
        raise BntuiError("arch is empty; write blocks like '32:sigmoid,16:relu,C'")
    raw_blocks = spec.split(",")
    blocks: list[BlockSpec] = []
    offset = 0
    for bi, raw in enumerate(raw_blocks):
        block_no = bi + 1
        last = bi == len(raw_blocks) - 1
        if not raw.strip():
            raise BntuiError(
                f"arch '{spec}': block {block_no} is empty (character {offset + 1}); "
                "blocks are separated by single commas"
            )
        tokens: list[tuple[str, int]] = []
        pos = offset
        for piece in raw.split(":"):
            lead = len(piece) - len(piece.lstrip())
            tokens.append((piece.strip().lower(), pos + lead))
            pos += len(piece) + 1
        offset += len(raw) + 1
        width_tok, wpos = tokens[0]
        if width_tok in ("c", "classes", "out"):
            width: int | None = None
        elif width_tok.isascii() and width_tok.isdigit():
            if len(width_tok) > 6:
                raise _fail(spec, wpos, width_tok, block_no, "a width above 100000 is too large")
            width = int(width_tok)
            if width < 1:
                raise _fail(spec, wpos, width_tok, block_no, "a width must be at least 1")
            if width > 100_000:
                raise _fail(spec, wpos, width_tok, block_no, "a width above 100000 is too large")
        else:
            why = "a block starts with its width (a positive integer, or C for the classes)"
            raise _fail(spec, wpos, width_tok or "", block_no, why)
        if width is None and not last:
            raise _fail(spec, wpos, width_tok, block_no, "only the last block can have width C")
        norm: str | None = "unset"
        groups: int | None = None
        bias: bool | None = None
        act: str | None = None
        alpha: float | None = None
        for tok, tpos in tokens[1:]:
            if not tok:
                raise _fail(spec, tpos, tok, block_no, "empty option (two ':' in a row?)")
            norm_tok = _NORM.match(tok)
            if norm_tok or tok in NO_NORM:
                if norm != "unset":
                    raise _fail(spec, tpos, tok, block_no,
                                "a block has one normalization (bn, ln, gn=G, rms or nobn)")
                if tok in NO_NORM:
                    norm = None
                    continue
                assert norm_tok is not None
                norm = norm_tok.group(1)
                value = norm_tok.group(2) if norm_tok.group(2) is not None else norm_tok.group(3)
                if norm == "gn":
                    groups = _groups(spec, tpos, tok, block_no, value, width)
                elif value is not None:
                    raise _fail(spec, tpos, tok, block_no, f"{norm} takes no parameter")
                continue
            if tok in ("bias", "nobias"):
                if bias is not None:
                    raise _fail(spec, tpos, tok, block_no, "bias is set twice")
                bias = tok == "bias"
                continue
            name, value = tok, None
            match = _ALPHA.match(tok)
            if match:
                name = match.group(1)
                value = match.group(2) if match.group(2) is not None else match.group(3)
            if name == "softmax" and value is None:
                if not last:
                    why = "softmax belongs to the output (last) block only"
                    raise _fail(spec, tpos, tok, block_no, why)
                continue
            canon = canonical_activation(name)
            if canon is None:
                why = (
                    f"not a width, activation or option; activations: "
                    f"{', '.join(ACTIVATION_NAMES)}; options: {', '.join(OPTIONS)}"
                )
                raise _fail(spec, tpos, tok, block_no, why)
            if act is not None:
                raise _fail(spec, tpos, tok, block_no, "a block has one activation")
            if last:
                why = (
                    "the last block is the output: it feeds softmax + cross-entropy and "
                    "takes no activation (add an output block, e.g. ',C')"
                )
                raise _fail(spec, tpos, tok, block_no, why)
            if value is not None:
                if canon not in ("leaky_relu", "elu"):
                    raise _fail(spec, tpos, tok, block_no, f"{canon} takes no parameter")
                try:
                    alpha = float(value)
                except ValueError:
                    raise _fail(
                        spec, tpos, tok, block_no, f"α of {canon} must be a number"
                    ) from None
                if not (alpha == alpha and 0 <= alpha <= MAX_ALPHA):
                    raise _fail(spec, tpos, tok, block_no,
                                f"α of {canon} must be between 0 and {MAX_ALPHA:g}")
            act = canon
        blocks.append(
            BlockSpec(
                width=width,
                norm="bn" if norm == "unset" else norm,
                groups=groups,
                activation="identity" if last else (act or "relu"),
                alpha=alpha,
                bias=True if bias is None else bias,
            )
        )
    return ArchSpec(tuple(blocks))
