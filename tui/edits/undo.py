"""One snapshot per write into the user's files, so an insert can be undone byte for byte.

Snapshots live in ``<project>/.codeup/undo/``, two files per write: ``<n>.before`` (the
file's bytes before the write; absent when the write created the file) and ``<n>.json``
(the path, its mode, and the SHA-256 of the bytes written). One flat folder: a folder per
snapshot would make the project watcher add and drop an inotify watch at every write. The snapshot is made before the file is written, so a
crash in between loses nothing. Undo restores ``before`` only while the file still holds
exactly what was written: a file edited since is refused, never overwritten.

``.codeup/`` is kept out of git twice over: a ``.gitignore`` of ``*`` inside it, and a
``.codeup/`` line in the repository's ``info/exclude``; nothing is ever committed.

Nothing on disk is trusted: a repository can commit a ``.codeup/undo/`` of its own. Every
record carries an HMAC-SHA256 (``mac``) over the project's path, the record and the digest of
its ``.before`` bytes, keyed with a secret kept outside every project (``undo.key`` in
codeup-tui's data folder), so a planted or edited record (or a swapped ``.before``) is refused,
and left as it is. The path a record names goes through the insert's own check
(``insert.resolve_target``: inside the project, symlinks resolved, not a folder) before
anything is read or written. Snapshot files are written as files of their own, never through
a symlink found where they go, and ``.codeup`` or its ``undo`` folder being a symlink (or
not a folder) stops both snapshots and undo.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from codeup_tui.engine.atomic_file import atomic_write_bytes
from codeup_tui.engine.terminal_text import printable
from .file_write import TEMP_SUFFIX, WriteError, atomic_write, reason
from .target import InsertError, resolve_target

STATE_FOLDER = ".codeup"
MAX_SNAPSHOTS = 100
EXCLUDE_LINE = ".codeup/"
KEY_FILE = "undo.key"
"""In codeup-tui's data folder (``tui.history.data_dir``): the records' HMAC key."""
KEY_BYTES = 32


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
    mac: str = ""
    """HMAC of the record (see the module's doc); "" in a record without one."""

    @property
    def number(self) -> int:
        return int(self.stem.name)

    @property
    def files(self) -> tuple[Path, Path]:
        return self.stem.with_name(self.stem.name + ".before"), self.stem.with_name(self.stem.name + ".json")

    def before(self) -> bytes | None:
        """The ``.before`` bytes (None: the write created the file). OSError unless it is a
        regular file of its own (a symlink planted there could name /dev/zero)."""
        if not self.existed:
            return None
        fd = os.open(self.files[0], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            with os.fdopen(fd, "rb") as f:
                fd = -1
                return f.read()
        finally:
            if fd >= 0:
                os.close(fd)

    def record(self) -> dict:
        """The fields the .json holds, but the MAC."""
        return {"path": self.path, "existed": self.existed, "mode": self.mode, "after_sha256": self.after_sha256,
                "created": self.created}


def undo_key() -> bytes:
    """The records' HMAC key, made on first use: in the user's data folder, outside every
    project, so a repository cannot ship records that pass. WriteError when it cannot be
    read or made."""
    from ..history import data_dir

    folder = data_dir()
    path = folder / KEY_FILE
    try:
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{KEY_FILE}.", dir=folder)  # 0600
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(secrets.token_bytes(KEY_BYTES))
                    f.flush()
                    os.fsync(f.fileno())
                try:
                    os.link(tmp, path)  # never over a key another session made meanwhile
                except FileExistsError:
                    pass
            finally:
                os.unlink(tmp)
            key = path.read_bytes()
    except OSError as exc:
        raise WriteError(f"cannot keep the undo key {path}: {reason(exc)}") from None
    if len(key) != KEY_BYTES:
        raise WriteError(f"{path} is not an undo key (remove it: a new one is made, older snapshots are refused)")
    return key


def record_mac(key: bytes, project_dir: Path, entry: UndoEntry, before: bytes | None) -> str:
    """The HMAC of ``entry`` in ``project_dir``, with its ``before`` bytes (see the module's doc)."""
    message = json.dumps({"project": str(Path(project_dir).resolve()), "snapshot": entry.stem.name,
                          "record": entry.record(), "before_sha256": None if before is None else sha256(before)},
                         sort_keys=True)
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


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

    def check_folders(self) -> None:
        """WriteError when ``.codeup`` or ``.codeup/undo`` is there but is not a folder of its
        own (a symlink committed to send snapshots, or their reads, elsewhere)."""
        root = self.project_dir.resolve()
        for rel in (STATE_FOLDER, f"{STATE_FOLDER}/undo"):
            try:
                st = os.lstat(root / rel)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise WriteError(f"cannot use {rel}/: {reason(exc)}") from None
            if not stat.S_ISDIR(st.st_mode):
                raise WriteError(f"{rel} is not a folder (a symlink?); undo snapshots are not kept there")

    def ensure_excluded(self) -> None:
        """Create ``.codeup/`` kept out of git (see the module's doc); best effort for the
        exclude file (a read-only repository still has the inner .gitignore)."""
        self.check_folders()
        state = self.project_dir / STATE_FOLDER
        state.mkdir(exist_ok=True)
        inner = state / ".gitignore"
        if not os.path.lexists(inner):
            _write_own(inner, b"# codeup-tui's undo snapshots: never committed\n*\n", str(inner))
        git_dir = find_git_dir(self.project_dir)
        if git_dir is None:
            return
        exclude = git_dir / "info" / "exclude"
        if exclude.is_symlink():
            return  # a project that is no clone (an unpacked archive) can hold a .git/ of its own making
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
                entry = UndoEntry(meta_path.with_suffix(""), meta["path"], meta["existed"], meta["mode"],
                                  meta["after_sha256"], meta["created"], meta.get("mac", ""))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue  # a snapshot cut short by a crash: never complete, never used
            if not (isinstance(entry.path, str) and isinstance(entry.existed, bool) and isinstance(entry.mac, str)
                    and isinstance(entry.after_sha256, str) and (entry.mode is None or type(entry.mode) is int)
                    and isinstance(entry.created, (int, float))):
                continue  # not a record of ours at all
            found.append(entry)
        return found

    def last(self) -> UndoEntry | None:
        entries = self.entries()
        return entries[-1] if entries else None

    def record(self, rel: str, before: bytes | None, mode: int | None, after: bytes) -> UndoEntry:
        """Snapshot ``before`` (None: the file does not exist yet) ahead of writing ``after``.
        WriteError when the snapshot cannot be saved (then nothing should be written)."""
        key = undo_key()
        self.ensure_excluded()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.check_folders()
        entries = self.entries()
        number = self._next_number()
        created = time.time()
        entry = UndoEntry(self.folder / f"{number:06d}", rel, before is not None, mode, sha256(after), created)
        entry = replace(entry, mac=record_mac(key, self.project_dir, entry, before))
        before_file, meta_file = entry.files
        try:
            if before is not None:
                _write_own(before_file, before, "the undo snapshot")
            meta = dict(entry.record(), mac=entry.mac)
            # Written last: a snapshot without its .json (a crash in between) is never used.
            _write_own(meta_file, json.dumps(meta).encode("utf-8"), "the undo snapshot")
        except WriteError:
            self.discard(entry)
            raise
        for old in entries[: max(0, len(entries) + 1 - MAX_SNAPSHOTS)]:
            self.discard(old)
        return entry

    def _next_number(self) -> int:
        """One past every numbered file in the folder, records or not: a new snapshot never
        lands on a file that was there before it."""
        try:
            numbers = [int(p.name.split(".")[0]) for p in self.folder.iterdir() if p.name.split(".")[0].isdigit()]
        except OSError:
            numbers = []
        return max(numbers, default=0) + 1

    def verify(self, entry: UndoEntry) -> tuple[Path, bytes | None]:
        """(the file to restore, its bytes before the write) once ``entry`` is known to be a
        record this user's codeup-tui made in this project, unchanged, naming a file inside
        it. UndoError (one line) otherwise; the snapshot is then left as it is."""
        name = f"undo snapshot {entry.stem.name}"
        try:
            self.check_folders()
            key = undo_key()
        except WriteError as exc:
            raise UndoError(f"{exc}; nothing undone") from None
        try:
            before = entry.before()
        except OSError as exc:
            raise UndoError(f"the {name} cannot be read: {reason(exc)}; nothing undone") from None
        if not entry.mac or not hmac.compare_digest(entry.mac, record_mac(key, self.project_dir, entry, before)):
            raise UndoError(f"the {name} was not made here by codeup-tui, or was changed since; "
                            "not used (left in .codeup/undo/)")
        try:
            rel, path = resolve_target(self.project_dir, entry.path)
        except InsertError as exc:
            raise UndoError(f"the {name} names {printable(entry.path)!r}: {exc}; nothing undone") from None
        return path, before

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
        (None: the write had created the file, which is removed). UndoError when the snapshot
        is not to be trusted (``verify``), the file changed since the write (or is gone), or
        it cannot be written."""
        path, before = self.verify(entry)
        shown = printable(entry.path)
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            raise UndoError(f"{shown} was deleted since the insert; nothing undone") from None
        except OSError as exc:
            raise UndoError(f"cannot read {shown}: {reason(exc)}") from None
        if sha256(current) != entry.after_sha256:
            raise UndoError(f"{shown} changed since the insert; not undone (that would lose the changes)")
        try:
            if before is None:
                os.unlink(path)
            else:
                atomic_write(path, before, mode=entry.mode, display=shown)
        except WriteError as exc:
            raise UndoError(str(exc)) from None
        except OSError as exc:
            raise UndoError(f"cannot remove {shown}: {reason(exc)}") from None
        self.discard(entry)
        return before


def _write_own(path: Path, data: bytes, display: str) -> None:
    """Write one of our own files (0600): a symlink found at ``path`` is replaced, never
    written through."""
    try:
        atomic_write_bytes(path, data, 0o600, temp_suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise WriteError(f"cannot write {display}: {reason(exc)}") from None
