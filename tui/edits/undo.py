"""One snapshot per write into the user's files, so an insert can be undone byte for byte.

Snapshots live in ``<project>/.codeup/undo/``, two files per write: ``<n>.before`` (the
file's bytes before the write; absent when the write created the file) and ``<n>.json``
(the path, its mode, and the SHA-256 of the bytes written). One flat folder: a folder per
snapshot would make the project watcher add and drop an inotify watch at every write. The snapshot is made before the file is written, so a
crash in between loses nothing. Undo restores ``before`` only while the file still holds
exactly what was written: a file edited since is refused, never overwritten.

``.codeup/`` is kept out of git twice over: a ``.gitignore`` of ``*`` inside it, and a
``.codeup/`` line in the repository's ``info/exclude``; nothing is ever committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tui.edits.file_write import WriteError, atomic_write, reason

STATE_FOLDER = ".codeup"
MAX_SNAPSHOTS = 100
EXCLUDE_LINE = ".codeup/"


class UndoError(Exception):
    """Why an undo was refused (one line)."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class UndoEntry:
    stem: Path
    """``.codeup/undo/<n>``: the snapshot's files are this plus ``.before`` and ``.json``."""
    path: str
    """The file, relative to the project (POSIX)."""
    existed: bool
    mode: int | None
    after_sha256: str
    created: float

    @property
    def number(self) -> int:
        return int(self.stem.name)

    @property
    def files(self) -> tuple[Path, Path]:
        return self.stem.with_name(self.stem.name + ".before"), self.stem.with_name(self.stem.name + ".json")

    def before(self) -> bytes | None:
        return self.files[0].read_bytes() if self.existed else None


def find_git_dir(start: Path) -> Path | None:
    """The git directory of the repository holding ``start`` (a ``.git`` folder, or the one a
    ``.git`` file points to: worktrees share their common directory's ``info/exclude``)."""
    for folder in [start, *start.parents]:
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            try:
                text = dot_git.read_text(encoding="utf-8").strip()
            except OSError:
                return None
            if not text.startswith("gitdir:"):
                return None
            git_dir = Path(text[len("gitdir:"):].strip())
            git_dir = git_dir if git_dir.is_absolute() else folder / git_dir
            common = git_dir / "commondir"
            if common.is_file():
                try:
                    rel = common.read_text(encoding="utf-8").strip()
                except OSError:
                    return git_dir
                return (git_dir / rel).resolve()
            return git_dir
    return None


class UndoStore:
    """The snapshots of one project."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = Path(project_dir)
        self.folder = self.project_dir / STATE_FOLDER / "undo"

    def ensure_excluded(self) -> None:
        """Create ``.codeup/`` kept out of git (see the module's doc); best effort for the
        exclude file (a read-only repository still has the inner .gitignore)."""
        state = self.project_dir / STATE_FOLDER
        state.mkdir(exist_ok=True)
        inner = state / ".gitignore"
        if not inner.exists():
            atomic_write(inner, b"# codeup-tui's undo snapshots: never committed\n*\n", display=str(inner))
        git_dir = find_git_dir(self.project_dir)
        if git_dir is None:
            return
        exclude = git_dir / "info" / "exclude"
        try:
            current = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
            if EXCLUDE_LINE in (line.strip() for line in current.splitlines()):
                return
            text = current + ("" if not current or current.endswith("\n") else "\n") + EXCLUDE_LINE + "\n"
            atomic_write(exclude, text.encode("utf-8"), display=str(exclude))
        except (OSError, UnicodeDecodeError, WriteError):
            pass

    def entries(self) -> list[UndoEntry]:
        """Every complete snapshot, oldest first."""
        found = []
        try:
            metas = [p for p in self.folder.iterdir() if p.suffix == ".json" and p.stem.isdigit()]
        except OSError:
            return []
        for meta_path in sorted(metas, key=lambda p: int(p.stem)):
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                found.append(UndoEntry(meta_path.with_suffix(""), meta["path"], meta["existed"], meta["mode"],
                                       meta["after_sha256"], meta["created"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a snapshot cut short by a crash: never complete, never used
        return found

    def last(self) -> UndoEntry | None:
        entries = self.entries()
        return entries[-1] if entries else None

    def record(self, rel: str, before: bytes | None, mode: int | None, after: bytes) -> UndoEntry:
        """Snapshot ``before`` (None: the file does not exist yet) ahead of writing ``after``.
        WriteError when the snapshot cannot be saved (then nothing should be written)."""
        self.ensure_excluded()
        self.folder.mkdir(parents=True, exist_ok=True)
        entries = self.entries()
        number = (entries[-1].number + 1) if entries else 1
        created = time.time()
        entry = UndoEntry(self.folder / f"{number:06d}", rel, before is not None, mode, sha256(after), created)
        before_file, meta_file = entry.files
        try:
            if before is not None:
                atomic_write(before_file, before, mode=0o600, display="the undo snapshot")
            meta = {"path": rel, "existed": before is not None, "mode": mode, "after_sha256": entry.after_sha256,
                    "created": created}
            # Written last: a snapshot without its .json (a crash in between) is never used.
            atomic_write(meta_file, json.dumps(meta).encode("utf-8"), mode=0o600, display="the undo snapshot")
        except WriteError:
            self.discard(entry)
            raise
        for old in entries[: max(0, len(entries) + 1 - MAX_SNAPSHOTS)]:
            self.discard(old)
        return entry

    def discard(self, entry: UndoEntry) -> None:
        """Forget a snapshot (its write failed, or it was undone): the .json first."""
        for path in reversed(entry.files):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                return

    def undo(self, entry: UndoEntry) -> bytes | None:
        """Put the file back as it was before ``entry``'s write; returns the bytes restored
        (None: the write had created the file, which is removed). UndoError when the file
        changed since the write (or is gone), or cannot be written."""
        path = self.project_dir / entry.path
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            raise UndoError(f"{entry.path} was deleted since the insert; nothing undone") from None
        except OSError as exc:
            raise UndoError(f"cannot read {entry.path}: {reason(exc)}") from None
        if sha256(current) != entry.after_sha256:
            raise UndoError(f"{entry.path} changed since the insert; not undone (that would lose the changes)")
        try:
            before = entry.before()
        except OSError as exc:
            raise UndoError(f"the undo snapshot of {entry.path} cannot be read: {reason(exc)}") from None
        try:
            if before is None:
                os.unlink(path)
            else:
                atomic_write(path, before, mode=entry.mode, display=entry.path)
        except WriteError as exc:
            raise UndoError(str(exc)) from None
        except OSError as exc:
            raise UndoError(f"cannot remove {entry.path}: {reason(exc)}") from None
        self.discard(entry)
        return before
