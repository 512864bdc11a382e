"""Zip bombs for the session-file tests: an ``.npz`` whose one member inflates to
gigabytes of zeros, written in milliseconds without ever holding those bytes.

The zeros are deflated once (one 1 MiB chunk, ended by a full flush, so the compressed
block does not depend on what came before and can be repeated) and their CRC-32 is
combined arithmetically (zlib's ``crc32_combine``), so a member of 8 GB costs about 8 MB
of file and no time.  The archive is a valid zip: ``zipfile`` reads every member, CRC
checked, and the big one with ZIP64 sizes.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

CHUNK = 1 << 20
STORED, DEFLATED = 0, 8  # zip compression methods


def npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    """The bytes of a ``.npy`` header (format 1.0) for an array of `descr` and `shape`."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _gf2_times(mat: list[int], vec: int) -> int:
    total, i = 0, 0
    while vec:
        if vec & 1:
            total ^= mat[i]
        vec >>= 1
        i += 1
    return total


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of A + B from crc(A), crc(B) and len(B) (zlib's crc32_combine)."""
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def zeros_crc(n: int) -> int:
    """The CRC-32 of `n` zero bytes, by doubling."""
    acc = 0
    block, block_len = zlib.crc32(bytes(1)), 1
    while n:
        if n & 1:
            acc = crc32_combine(acc, block, block_len)
        block = crc32_combine(block, block, block_len)
        block_len *= 2
        n >>= 1
    return acc


def _deflated(head: bytes, zeros: int) -> bytes:
    """Raw deflate of `head` then `zeros` zero bytes."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [co.compress(head), co.flush(zlib.Z_FULL_FLUSH)]
    count, rest = divmod(zeros, CHUNK)
    if count:
        block = co.compress(bytes(CHUNK)) + co.flush(zlib.Z_FULL_FLUSH)
        parts.append(block * count)
    if rest:
        parts.append(co.compress(bytes(rest)) + co.flush(zlib.Z_FULL_FLUSH))
    parts.append(co.flush())
    return b"".join(parts)


def write_bomb(path: Path, members: dict[str, bytes], bomb: str, head: bytes,
               zeros: int) -> Path:
    """Write a zip of `members` (name -> bytes, stored) then `bomb`: `head` followed by
    `zeros` zero bytes, deflated, its sizes in a ZIP64 extra field."""
    out = bytearray()
    central = bytearray()

    def add(name: str, data: bytes, crc: int, size: int, method: int) -> None:
        raw = name.encode()
        offset = len(out)
        big = size >= 0xFFFFFFFF or len(data) >= 0xFFFFFFFF or name == bomb
        extra = struct.pack("<HHQQ", 1, 16, size, len(data)) if big else b""
        csize, usize = (0xFFFFFFFF, 0xFFFFFFFF) if big else (len(data), size)
        version = 45 if big else 20
        out.extend(struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", version, 0, 0, method, 0,
                               0x21, crc, csize, usize, len(raw), len(extra)))
        out.extend(raw + extra + data)
        central.extend(struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", version, 3, version, 0,
                                   0, method, 0, 0x21, crc, csize, usize, len(raw),
                                   len(extra), 0, 0, 0, 0o644 << 16, offset))
        central.extend(raw + extra)

    for name, data in members.items():
        add(name, data, zlib.crc32(data), len(data), STORED)
    crc = crc32_combine(zlib.crc32(head), zeros_crc(zeros), zeros)
    add(bomb, _deflated(head, zeros), crc, len(head) + zeros, DEFLATED)
    count = len(members) + 1
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central),
                       len(out), 0)
    path.write_bytes(bytes(out + central + eocd))
    return path


def bomb_session(good: Path, path: Path, member: str, head: bytes, zeros: int) -> Path:
    """A copy of the session file `good` whose array `member` (``network/1.W``, ``meta``)
    is `head` then `zeros` zero bytes, deflated: the other entries are `good`'s."""
    entry = member + ".npy"
    with zipfile.ZipFile(good) as archive:
        rest = {n: archive.read(n) for n in archive.namelist() if n != entry}
    return write_bomb(path, rest, entry, head, zeros)
