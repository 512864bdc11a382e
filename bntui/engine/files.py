"""Writing a file so that a crash never leaves half of it: one helper for every writer.

Sessions (`persist.save_session`), torch exports, `walk` handouts and `--output` files all
go through `write_atomic`: the bytes go to a temporary file in the target's own folder,
are flushed and fsync'ed, take the existing target's permissions (else what `open` would
give), and the temporary file is renamed over the target (through a symlink: the link
stays, its target is replaced); the folder is fsync'ed so the rename survives a crash.  A
failed write leaves the old file untouched and raises one `BntuiError` line that names
the file: `check_writable` says the same before any long work starts.

A target that exists and is not a regular file — a named pipe, a device such as
/dev/null or /dev/stdout, a socket — is never replaced: it is written to as a stream,
which is what the user meant by naming it.  An empty name is refused.
"""

from __future__ import annotations

import contextlib
import os
import stat
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
    if not os.fspath(path).strip():
        raise BntuiError(f"{what or 'file'}: the file name is empty")
    if is_special(Path(path)):  # stat follows links: /dev/stdout is a link to a pipe
        if not os.access(path, os.W_OK):
            raise BntuiError(f"{label}: cannot write: permission denied")
        return Path(path)
    try:
        real = Path(os.path.realpath(path))
    except (OSError, ValueError) as exc:
        raise BntuiError(f"{label}: cannot write: {exc}") from None
    # os.path's tests say False on any error (Path's raise PermissionError on EACCES)
    if os.path.isdir(real):
        raise BntuiError(f"{label}: cannot write: it is a directory")
    folder = real.parent
    if not os.path.isdir(folder):
        why = ("is not readable" if os.path.exists(folder) or not os.access(
            _existing_ancestor(folder), os.X_OK) else "does not exist")
        raise BntuiError(f"{label}: cannot write: directory '{folder}' {why}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BntuiError(f"{label}: cannot write: directory '{folder}' is not writable")
    if os.path.exists(real) and not os.access(real, os.W_OK):
        raise BntuiError(f"{label}: cannot write: permission denied")
    return real


def is_special(real: Path) -> bool:
    """Whether `real` exists and is not a regular file (a pipe, a device, a socket)."""
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _existing_ancestor(folder: Path) -> Path:
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def write_atomic(path: str | os.PathLike[str], data: bytes | str | Callable[[BinaryIO], None],
                 what: str = "") -> Path:
    """Write `data` (bytes, text as UTF-8, or a function that writes into a binary file
    handle) to `path` atomically; `what` names the file in error messages
    ("session file", "handout")."""
    label = _label(what, path)
    real = check_writable(path, what)
    if is_special(real):
        _write_stream(real, data, label)
        return Path(path)
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


def _write_stream(real: Path, data: bytes | str | Callable[[BinaryIO], None],
                  label: str) -> None:
    """Write to a pipe or a device as it is: no temporary file, no rename."""
    try:
        with open(real, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    except OSError as exc:
        raise BntuiError(f"{label}: cannot write: {exc.strerror or exc}") from None


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
