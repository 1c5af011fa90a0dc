"""Replacing a file's content atomically: a temporary file in the same folder, fsync, then
`os.replace` onto the name, and an fsync of the folder so the rename itself is durable.
A crash or a failed write leaves either the old file or the new one, never half of one.
Once the rename is done the file holds the new bytes: a failure after it (the folder's fsync
or close) is returned as a warning, never raised as if the file were unchanged.

Used for model files (formats/gguf_writer.py), the TUI's config and the user's source files
(tui/config.py, tui/edits/file_write.py).
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def default_mode() -> int:
    """0o666 less the umask, as a new file would get (read from /proc rather than by setting
    the umask, which is process-wide and would race other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


_FSYNC_UNSUPPORTED = (errno.EINVAL, errno.ENOTSUP, errno.EBADF)
"""What a file system that cannot fsync a folder answers: nothing to warn about."""


def fsync_folder(folder: Path) -> str | None:
    """Make a rename in `folder` durable (best effort: not every system opens or syncs a
    folder). None, or why it may not be durable (one line) when the sync or close failed."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return None
    warning = None
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _FSYNC_UNSUPPORTED:
            warning = f"syncing its folder failed ({e.strerror or e})"
    try:
        os.close(fd)
    except OSError as e:
        warning = warning or f"closing its folder failed ({e.strerror or e})"
    return warning


def atomic_write_bytes(path: Path, data: bytes, mode: int, *, temp_suffix: str = ".tmp") -> str | None:
    """Make `path` hold exactly `data` with permission bits `mode`, atomically. Raises
    OSError when it cannot; `path` is then untouched and no temporary file is left.
    Returns None, or a warning (one line) when `path` was replaced but the rename may not
    survive a crash (see `fsync_folder`)."""
    folder = path.parent
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=temp_suffix, dir=folder)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
        # Done: `path` holds `data`. Nothing after this point may report a failure.
        return fsync_folder(folder)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
