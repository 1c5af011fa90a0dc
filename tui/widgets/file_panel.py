"""The project's files, as a tree on the left of the screen."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DirectoryTree
from textual.widgets.directory_tree import DirEntry
from textual.widgets.tree import TreeNode

from ..edits.undo import STATE_FOLDER
from ..visible import visible, visible_rich
from ..project import ProjectFiles, check_file
from ..project.git_status import MODIFIED, state_of
from ..prompt import short_count


class FilePanel(DirectoryTree):
    """A DirectoryTree of the project directory, ``.gitignore`` applied and ``.git`` hidden.

    Space or Enter on a file asks for it to be added to (or dropped from) the context: the
    panel posts ``ToggleRequested`` and the screen decides. Selected files carry a check
    mark and their token count; files that cannot be context (binary, too large) are marked
    with the reason. The root node itself is hidden (the panel's border title names the
    project), so the top-level entries start at the left edge of a narrow panel. Where git
    is present, a file git sees as modified is marked ``M`` and an untracked one ``U``
    (``show_git``). The tool's own ``.codeup/`` folder (undo snapshots) is not listed.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "space",
            "toggle_file",
            "Add/drop",
            id="toggle-file",
            tooltip="Add the file under the cursor to the context, or drop it (a folder opens).",
        ),
    ]

    @dataclass
    class ToggleRequested(Message):
        """The user asked to add or drop ``path`` (an absolute path to a file)."""

        path: Path

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
        self.project = ProjectFiles(project_dir)
        self.show_root = False
        self.border_title = visible(project_dir.name or str(project_dir))
        self.selected: dict[Path, int | None] = {}
        """Selected files (absolute paths) and their token counts (None: not counted yet)."""
        self.refusals: dict[Path, str] = {}
        """Files listed that cannot be context, with the reason."""
        self.git_states: dict[Path, str] = {}
        """Absolute path -> "M" or "U" (``git status``); empty without git."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        # Runs in the tree's loader thread: the ignore files and the 8 KB sniff are read here.
        kept = []
        for path in paths:
            if self.project.is_ignored(path) or (path.name == STATE_FOLDER and path.parent == self.project_dir):
                continue
            if not self._safe_is_dir(path):
                reason = check_file(path)
                if reason is not None:
                    self.refusals[path] = reason.split(":")[0]
            kept.append(path)
        return kept

    def show_selection(self, selected: dict[Path, int | None]) -> None:
        """Mark these files as selected (with their token counts) and redraw."""
        self.selected = dict(selected)
        self._invalidate()

    def show_git(self, states: dict[Path, str]) -> None:
        """Mark the files git sees as modified or untracked, and redraw."""
        if states != self.git_states:
            self.git_states = dict(states)
            self._invalidate()

    def reload_for_changes(self, ignore_changed: bool) -> None:
        """Files appeared or went on disk (or the ignore rules changed): list them again,
        keeping what is open and the cursor (Textual's reload does)."""
        if ignore_changed:
            self.project.ignore.clear()
        self.refusals.clear()
        self.reload()

    def process_label(self, label) -> Text:
        # A file's name is the repository's: shown, never acted on by the terminal.
        return visible_rich(super().process_label(label))

    def render_label(self, node: TreeNode[DirEntry], base_style: Style, style: Style) -> Text:
        label = super().render_label(node, base_style, style)
        if node.data is None or node._allow_expand:
            return label
        path = node.data.path
        git = state_of(self.git_states, path) if self.git_states else None
        if git is not None:
            label.append(f" {git}", style="bold yellow" if git == MODIFIED else "dim")
        if path in self.selected:
            tokens = self.selected[path]
            mark = Text("✓", style="bold green")
            label = Text.assemble(mark, label)
            label.append(f" {short_count(tokens)}" if tokens is not None else " …", style="dim")
        else:
            label = Text.assemble(" ", label)
            if path in self.refusals:
                label.append(f" ⊘ {self.refusals[path]}", style="dim italic")
        return label

    def action_toggle_file(self) -> None:
        node = self.cursor_node
        if node is None or node.data is None:
            return
        if node._allow_expand:
            self.action_toggle_node()
            return
        self.post_message(self.ToggleRequested(node.data.path))

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.post_message(self.ToggleRequested(event.path))
