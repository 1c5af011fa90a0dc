"""Reading a text file as it is, and writing one without ever leaving it half written.

``read_text`` keeps everything needed to write the file back the way it was: the text with
its own line endings, the dominant newline (for added lines), whether it ends with a
newline, and its permission bits. ``atomic_write`` writes a temporary file in the same
folder, fsyncs it, gives it the file's mode, and renames it over the file (then fsyncs the
folder): a crash, a full disk or a permission problem leaves the old file as it was. A
read-only file is refused even when its folder would allow the rename.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from codeup_tui.engine.atomic_file import atomic_write_bytes, default_mode
from ..prompt import text_digest

TEMP_SUFFIX = ".codeup-tmp"
"""Our temporary files end so (the watcher knows them)."""

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "its folder does not exist",
    errno.ENOTDIR: "a part of its path is not a folder",
    errno.EISDIR: "it is a folder",
}


class WriteError(Exception):
    """A file could not be read or written; the message is one line and says why."""


def reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno or 0) or exc.strerror or type(exc).__name__


def split_lines(text: str) -> list[str]:
    """Lines with their endings ("\\n" or "\\r\\n"); the last may have none."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def dominant_newline(text: str) -> str:
    """"\\r\\n" when most line endings are CRLF, else "\\n"."""
    crlf = text.count("\r\n")
    return "\r\n" if crlf and crlf * 2 >= text.count("\n") else "\n"


@dataclass(frozen=True)
class TextFile:
    """A UTF-8 text file as read: its bytes, its text, and how it is written."""

    raw: bytes
    text: str
    mode: int
    """Permission bits (``stat.S_IMODE``)."""

    @property
    def newline(self) -> str:
        return dominant_newline(self.text)

    @property
    def final_newline(self) -> bool:
        return self.text.endswith("\n")

    @property
    def lines(self) -> list[str]:
        return split_lines(self.text)

    @property
    def digest(self) -> str:
        """The same digest the prompt records for a file's text (``tui.prompt.text_digest``)."""
        return text_digest(self.text)


def read_text(path: Path, display: str | None = None) -> TextFile | None:
    """The file as it is; None when it does not exist. WriteError when it is not a UTF-8
    text file or cannot be read."""
    name = display or str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise WriteError(f"cannot read {name}: {reason(exc)}") from None
    if not stat.S_ISREG(st.st_mode):
        raise WriteError(f"{name} is not a regular file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WriteError(f"cannot read {name}: {reason(exc)}") from None
    if b"\0" in raw[:8192]:
        raise WriteError(f"{name} is a binary file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise WriteError(f"{name} is not UTF-8 text") from None
    return TextFile(raw, text, stat.S_IMODE(st.st_mode))


def atomic_write(path: Path, data: bytes, *, mode: int | None = None, display: str | None = None) -> str | None:
    """Replace ``path``'s content with ``data`` atomically (see the module's doc).

    ``mode``: the permission bits to give it (None: the file's own, or a new file's default).
    A symlink is written through to its target. WriteError (one line) when it cannot be
    done; the file is then untouched and no temporary file is left behind. Returns None, or
    a warning (one line) when the file was written but may not survive a crash.
    """
    name = display or str(path)
    target = path.resolve() if path.is_symlink() else path
    folder = target.parent
    try:
        st = target.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise WriteError(f"cannot write {name}: {reason(exc)}") from None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise WriteError(f"cannot write {name}: it is not a regular file")
        # The mode bits first: os.access says yes to root whatever they are.
        if not st.st_mode & 0o222 or not os.access(target, os.W_OK):
            raise WriteError(f"cannot write {name}: the file is read-only")
        if mode is None:
            mode = stat.S_IMODE(st.st_mode)
    if mode is None:
        mode = default_mode()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        warning = atomic_write_bytes(target, data, mode, temp_suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise WriteError(f"cannot write {name}: {reason(exc)}") from None
    return None if warning is None else f"{name} was written, but {warning}: a crash now could undo it"
