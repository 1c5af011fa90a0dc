"""This session's inserts into the project and their undo (plain Python, no Textual).

The main screen asks here where a code block may go, writes a confirmed plan, and undoes
the last write; the insert dialog is told which contents of a file are our own doing.
Workers call ``write`` and ``undo_last`` from threads: one write or undo runs at a time, in
the order asked, and the bookkeeping sits behind the same lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from ..prompt import text_digest
from .insert import InsertPlan, apply_plan
from .target import InsertError, resolve_target
from .undo import UndoStore

ExpectWrite = Callable[[Path, "bytes | None"], None]
"""Told before a file is written (the path and the bytes, None for a removal): the project
watcher then knows the change is ours and does not mark the file "changed on disk"."""

RECENT_TARGETS = 10
"""How many files written to lately are offered again as targets."""


class ProjectEdits:
    """Undo snapshots, the digests of what our inserts and undos wrote, the files written lately."""

    def __init__(self, project_dir: Path, expect_write: ExpectWrite | None = None) -> None:
        self.project_dir = project_dir
        self.undo_store = UndoStore(project_dir)
        self._expect_write = expect_write or (lambda path, data: None)
        self._lock = threading.Lock()
        self._own_digests: dict[str, set[str]] = {}
        self._recent: list[str] = []  # latest first

    def targets(self, path_hint: str | None, prompt_paths: Iterable[str], context_paths: Iterable[str],
                cursor_file: str | None = None) -> tuple[str, ...]:
        """The files to offer for a block, best guess first: the path the answer names, the
        files its prompt was built from, the context, files written to lately, the tree's cursor."""
        found: list[str] = []
        if path_hint:
            try:
                found.append(resolve_target(self.project_dir, path_hint)[0])
            except InsertError:
                pass  # a hint outside the project or unusable: the other guesses stand
        with self._lock:
            recent = list(self._recent)
        for group in (prompt_paths, context_paths, recent, [cursor_file] if cursor_file else []):
            found += [path for path in group if path not in found]
        return tuple(found)

    def own_digests(self) -> dict[str, frozenset[str]]:
        """path -> digests of contents we wrote (a snapshot for the insert dialog)."""
        with self._lock:
            return {path: frozenset(digests) for path, digests in self._own_digests.items()}

    def write(self, plan: InsertPlan) -> list[str]:
        """Carry out a confirmed plan (snapshot first). Returns warnings about durability;
        raises ``InsertError`` with the file untouched."""
        warnings: list[str] = []
        with self._lock:
            apply_plan(plan, self.undo_store, lambda p: self._expect_write(p.path, p.new_bytes), warnings.append)
            self._recent = [plan.rel, *(path for path in self._recent if path != plan.rel)][:RECENT_TARGETS]
            self._own_digests.setdefault(plan.rel, set()).add(text_digest(plan.new_text))
        return warnings

    def undo_last(self) -> tuple[str, str | None] | None:
        """Put the last written file back. Returns (path, its text now; None when the insert
        had created it and it is removed), or None when there is nothing to undo. Raises
        ``UndoError`` or ``OSError`` with the file untouched."""
        with self._lock:
            entry = self.undo_store.last()
            if entry is None:
                return None
            try:
                expected = entry.before()
            except OSError:
                expected = None  # the undo itself says why it cannot be read
            self._expect_write(self.project_dir / entry.path, expected)
            restored = self.undo_store.undo(entry)
            text = restored.decode("utf-8", "surrogateescape") if restored is not None else None
            if text is not None:
                self._own_digests.setdefault(entry.path, set()).add(text_digest(text))
            return entry.path, text
