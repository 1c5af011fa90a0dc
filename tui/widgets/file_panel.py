"""The project's files, as a tree on the left of the screen."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual.widgets import DirectoryTree


class FilePanel(DirectoryTree):
    """A DirectoryTree of the project directory.

    The root node itself is hidden (the panel's border title names the project), so the
    top-level entries start at the left edge of a narrow panel.
    """

    HIDDEN_NAMES: ClassVar[frozenset[str]] = frozenset({".git"})
    """Entry names never listed."""

    def __init__(
        self,
        project_dir: Path,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(project_dir, name=name, id=id, classes=classes)
        self.project_dir = project_dir
        self.show_root = False
        self.border_title = project_dir.name or str(project_dir)

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [path for path in paths if path.name not in self.HIDDEN_NAMES]
