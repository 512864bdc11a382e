"""Writing a file so that a crash never leaves half of it: one helper for every writer.

Sessions (`persist.save_session`), torch exports, `walk` handouts and `--output` files all
go through `write_atomic`: the bytes go to a temporary file in the target's own folder,
are flushed and fsync'ed, take the existing target's permissions (else what `open` would
give), and the temporary file is renamed over the target (through a symlink: the link
stays, its target is replaced); the folder is fsync'ed so the rename survives a crash.  A
failed write leaves the old file untouched and raises one `BntuiError` line that names
the file: `check_writable` says the same before any long work starts.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from bntui.engine.errors import BntuiError


def _label(what: str, path: str | os.PathLike[str]) -> str:
    return f"{what} {os.fspath(path)!r}" if what else repr(os.fspath(path))


def check_writable(path: str | os.PathLike[str], what: str = "") -> Path:
    """The real path to write (symlinks followed), or one line saying why it cannot be."""
    label = _label(what, path)
    real = Path(os.path.realpath(path))
    if real.is_dir():
        raise BntuiError(f"{label}: cannot write: it is a directory")
    folder = real.parent
    if not folder.is_dir():
        raise BntuiError(f"{label}: cannot write: directory '{folder}' does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BntuiError(f"{label}: cannot write: directory '{folder}' is not writable")
    return real


def write_atomic(path: str | os.PathLike[str], data: bytes | str | Callable[[BinaryIO], None],
                 what: str = "") -> Path:
    """Write `data` (bytes, text as UTF-8, or a function that writes into a binary file
    handle) to `path` atomically; `what` names the file in error messages
    ("session file", "handout")."""
    label = _label(what, path)
    real = check_writable(path, what)
    mode = _file_mode(real)
    tmp_name: str | None = None
    try:
        with tempfile.NamedTemporaryFile("wb", delete=False, dir=real.parent,
                                         prefix=f".{real.name}.", suffix=".tmp") as handle:
            tmp_name = handle.name
            if callable(data):
                data(handle)
            else:
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, real)
        tmp_name = None
    except OSError as exc:
        raise BntuiError(f"{label}: cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
    _fsync_directory(real.parent)
    return Path(path)


def _file_mode(real: Path) -> int:
    """The existing target's permissions, else what a plain `open` would give."""
    try:
        return real.stat().st_mode & 0o7777
    except OSError:
        pass
    umask = 0o022
    try:  # reading the umask without os.umask(), which is not thread safe
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o666 & ~umask


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (best effort: not every system can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
