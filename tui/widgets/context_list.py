"""The files in the context, with their token costs, under the file tree."""

from __future__ import annotations

from textual.widgets import Static

from ..context import ContextFiles
from ..prompt import short_count
from ..visible import printable, visible_content


class ContextList(Static):
    """One line per selected file: its path, token count and any warning.

    Every selected file is listed here, also those the tree does not show (an ignored file
    added from the file finder).
    """

    EMPTY = "No files in context. space: add · ctrl+o: find"

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(self.EMPTY, name=name, id=id, classes=classes, markup=False)
        self.text = self.EMPTY

    def show_files(self, files: ContextFiles, sent: set[str] | frozenset[str] = frozenset()) -> None:
        """List ``files``; those in ``sent`` are already in the conversation, unchanged (they
        are not sent again)."""
        if not len(files):
            self.text = self.EMPTY
            self.border_title = "Context"
        else:
            lines = []
            for entry in files:
                tokens = "…" if entry.tokens is None else short_count(entry.tokens)
                if entry.missing:
                    tokens = "gone"
                notes = (" (ignored)" if entry.ignored else "") + (" (sent)" if entry.path in sent else "")
                # Changed on disk since added or sent (re-read and recounted); deleted on disk.
                notes += (" (changed)" if entry.changed and not entry.missing else "") + (
                    " (missing)" if entry.missing else "")
                # The count first: a long path is cut at the right edge, the count never is.
                lines.append(f"{tokens:>4} {printable(entry.path)}{notes}")
            self.text = "\n".join(lines)
            self.border_title = f"Context: {len(files)} · {short_count(files.total_tokens)} tok"
        self.set_class(not len(files), "-empty")
        self.update(visible_content(self.text))
