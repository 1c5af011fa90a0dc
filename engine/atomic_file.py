"""Replacing a file's content atomically: a temporary file in the same folder, fsync, then
`os.replace` onto the name, and an fsync of the folder so the rename itself is durable.
A crash or a failed write leaves either the old file or the new one, never half of one.

Used for model files (formats/gguf_writer.py), the TUI's config and the user's source files
(tui/config.py, tui/edits/file_write.py).
"""

from __future__ import annotations

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


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: not every system opens a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int, *, temp_suffix: str = ".tmp") -> None:
    """Make `path` hold exactly `data` with permission bits `mode`, atomically. Raises
    OSError when it cannot; `path` is then untouched and no temporary file is left."""
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
        fsync_folder(folder)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
