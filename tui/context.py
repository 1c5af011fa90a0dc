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

    @property
    def total_tokens(self) -> int:
        return sum(entry.tokens or 0 for entry in self._files.values())

    @property
    def all_counted(self) -> bool:
        return all(entry.tokens is not None for entry in self._files.values())

    def token_map(self) -> dict[str, int]:
        return {entry.path: entry.tokens or 0 for entry in self._files.values()}
