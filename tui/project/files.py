"""Project files: listing them (ignore rules applied) and checking one can be used as context.

A file is refused as context when it is binary (a NUL byte in its first 8 KB, as git
decides), larger than ``MAX_FILE_BYTES``, not UTF-8 text, or cannot be read; the refusal
carries a short reason the UI shows.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .gitignore import ProjectIgnore

MAX_FILE_BYTES = 256 * 1024
SNIFF_BYTES = 8 * 1024
MAX_LISTED_FILES = 50_000
"""The fuzzy finder lists at most this many files (a huge tree stays responsive)."""


@dataclass(frozen=True)
class FileRefusal(Exception):
    """Why a file cannot be used as context; ``reason`` is short ("binary file")."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def human_size(n: int) -> str:
    """Rounded up, so a file just over a limit never reads as equal to it."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{math.ceil(n / 1024)} KB"
    return f"{math.ceil(n / (1024 * 102.4)) / 10:.1f} MB"


def check_file(path: Path, max_bytes: int = MAX_FILE_BYTES) -> str | None:
    """Why the file cannot be context ("binary file", "too large: 300 KB > 256 KB"), or None.

    Reads at most the first 8 KB.
    """
    try:
        size = path.stat().st_size
        if not path.is_file():
            return "not a regular file"
        if size > max_bytes:
            return f"too large: {human_size(size)} (limit {human_size(max_bytes)})"
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or type(exc).__name__}"
    if b"\0" in head:
        return "binary file"
    return None


def read_text_file(path: Path, display: str | None = None, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The file's text; raises FileRefusal with the reason it cannot be context."""
    name = display or str(path)
    reason = check_file(path, max_bytes)
    if reason is not None:
        raise FileRefusal(name, reason)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileRefusal(name, f"cannot be read: {exc.strerror or type(exc).__name__}") from None
    if len(data) > max_bytes:  # grew since the check
        raise FileRefusal(name, f"too large: {human_size(len(data))} (limit {human_size(max_bytes)})")
    if b"\0" in data:
        raise FileRefusal(name, "binary file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileRefusal(name, "not UTF-8 text") from None


class ProjectFiles:
    """The files of one project directory as the UI sees them."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.ignore = ProjectIgnore(self.root)

    def relative(self, path: Path) -> str:
        """POSIX path relative to the root (the absolute path when outside the project)."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def resolve(self, rel_or_abs: str) -> Path:
        path = Path(rel_or_abs).expanduser()
        return path if path.is_absolute() else self.root / path

    def is_ignored(self, path: Path) -> bool:
        return self.ignore.is_path_ignored(path)

    def walk(self, limit: int = MAX_LISTED_FILES, cancelled=lambda: False) -> list[str]:
        """Every file not ignored, as sorted relative POSIX paths (at most ``limit``).

        Symlinked directories are not followed (no loops); ignored directories are never
        entered, so a big ``node_modules`` or ``build`` costs nothing.
        """
        found: list[str] = []
        stack = [PurePosixPath(".")]
        while stack and len(found) < limit and not cancelled():
            rel_dir = stack.pop()
            try:
                entries = sorted(os.scandir(self.root / rel_dir), key=lambda e: e.name)
            except OSError:
                continue
            subdirs = []
            for entry in entries:
                rel = rel_dir / entry.name
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if self.ignore.is_ignored(rel, is_dir):
                    continue
                if is_dir:
                    subdirs.append(rel)
                else:
                    found.append(rel.as_posix())
                    if len(found) >= limit:
                        break
            stack.extend(reversed(subdirs))
        return sorted(found)
