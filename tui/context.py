"""The files chosen as context: their order, text, token cost and warnings.

Plain Python, no Textual. The screen owns one ``ContextFiles``; workers fill in the text and
token counts, and the widgets render it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ContextFile:
    """One selected file. ``tokens`` is None until counted."""

    path: str  # relative POSIX path (absolute when outside the project)
    text: str | None = None
    tokens: int | None = None
    ignored: bool = False  # hidden by .gitignore but added explicitly
    changed: bool = False  # changed on disk since it was added or last sent (the "changed" badge)
    missing: bool = False  # deleted on disk: left out of prompts until it comes back


class ContextFiles:
    """An ordered set of selected files, by relative path."""

    def __init__(self) -> None:
        self._files: dict[str, ContextFile] = {}

    def __contains__(self, path: object) -> bool:
        return path in self._files

    def __iter__(self) -> Iterator[ContextFile]:
        return iter(list(self._files.values()))

    def __len__(self) -> int:
        return len(self._files)

    def get(self, path: str) -> ContextFile | None:
        return self._files.get(path)

    @property
    def paths(self) -> list[str]:
        return list(self._files)

    def add(self, path: str, *, ignored: bool = False) -> ContextFile:
        entry = self._files.get(path) or ContextFile(path, ignored=ignored)
        self._files[path] = entry
        return entry

    def remove(self, path: str) -> bool:
        return self._files.pop(path, None) is not None

    def clear(self) -> None:
        self._files.clear()

    def set_counted(self, path: str, text: str, tokens: int) -> bool:
        """Record a file's text and token count (False when it was dropped meanwhile)."""
        entry = self._files.get(path)
        if entry is None:
            return False
        self._files[path] = replace(entry, text=text, tokens=tokens)
        return True

    def mark_changed(self, path: str) -> bool:
        """The file changed on disk (it is there again, if it was missing)."""
        entry = self._files.get(path)
        if entry is None:
            return False
        self._files[path] = replace(entry, changed=True, missing=False)
        return True

    def mark_missing(self, path: str) -> bool:
        """The file was deleted on disk: kept in the list, left out of prompts."""
        entry = self._files.get(path)
        if entry is None:
            return False
        self._files[path] = replace(entry, missing=True, text=None, tokens=0)
        return True

    def rename(self, old: str, new: str) -> bool:
        """The file was renamed on disk: the entry follows it, in the same place in the order."""
        if old not in self._files or new in self._files:
            return False
        self._files = {(new if path == old else path): (replace(entry, path=new) if path == old else entry)
                       for path, entry in self._files.items()}
        return True

    def clear_changed(self, paths) -> None:
        """These files were sent as they are now: no badge any more."""
        for path in paths:
            entry = self._files.get(path)
            if entry is not None and entry.changed:
                self._files[path] = replace(entry, changed=False)

    @property
    def present_paths(self) -> list[str]:
        """The files a prompt takes (those not deleted on disk)."""
        return [path for path, entry in self._files.items() if not entry.missing]

    @property
    def total_tokens(self) -> int:
        return sum(entry.tokens or 0 for entry in self._files.values())

    @property
    def all_counted(self) -> bool:
        return all(entry.tokens is not None or entry.missing for entry in self._files.values())

    def token_map(self) -> dict[str, int]:
        return {entry.path: entry.tokens or 0 for entry in self._files.values()}
