"""The fuzzy file finder: type to filter the project's files, Enter adds the highlighted one."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from ..project import ProjectFiles, fuzzy_filter
from ..visible import visible_rich

FinderResult = tuple[str, bool]
"""(relative path, whether it is ignored by .gitignore) of the file picked."""


class FileFinder(ModalScreen[FinderResult | None]):
    """Lists every file ``.gitignore`` does not hide (walked in a thread worker).

    Typing an exact path to an ignored file offers it as well, marked: an explicit add
    of an ignored file works, with a warning.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close", id="finder-close", tooltip="Close the finder."),
        Binding("down", "cursor(1)", "Next", show=False, id="finder-next"),
        Binding("up", "cursor(-1)", "Previous", show=False, id="finder-previous"),
    ]

    def __init__(self, project: ProjectFiles, selected: set[str]) -> None:
        super().__init__()
        self.project = project
        self.selected = selected
        self.candidates: list[str] = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        with Vertical(id="finder"):
            yield Input(placeholder="Type to filter files; Enter adds or drops", id="finder-query")
            yield OptionList(id="finder-results")
            yield Static("listing files…", id="finder-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one("#finder", Vertical).border_title = "Find a file"
        self.query_one(Input).focus()
        self.list_files()

    @work(thread=True, exclusive=True, group="finder", exit_on_error=False)
    def list_files(self) -> None:
        worker = get_current_worker()
        files = self.project.walk(cancelled=lambda: worker.is_cancelled)
        if not worker.is_cancelled:
            self.app.call_from_thread(self._files_listed, files)

    def _files_listed(self, files: list[str]) -> None:
        self.candidates = files
        self.loaded = True
        self.refilter()

    @on(Input.Changed, "#finder-query")
    def refilter(self) -> None:
        query = self.query_one(Input).value.strip()
        results = self.query_one(OptionList)
        options: list[Option] = []
        ignored = self._explicit_ignored(query)
        if ignored is not None:
            options.append(Option(Text.assemble(("+ ", "bold"), ignored, (" (ignored by .gitignore)", "italic")),
                                  id=f"ignored:{ignored}"))
        for path, positions in fuzzy_filter(query, self.candidates):
            label = Text(path)
            for position in positions:
                label.stylize("bold underline", position, position + 1)
            mark = Text("✓ " if path in self.selected else "  ", style="green")
            options.append(Option(Text.assemble(mark, visible_rich(label)), id=f"path:{path}"))
        results.clear_options()
        results.add_options(options)
        if options:
            results.highlighted = 0
        hint = f"{len(options)} of {len(self.candidates)} files" if self.loaded else "listing files…"
        self.query_one("#finder-hint", Static).update(hint)

    def _explicit_ignored(self, query: str) -> str | None:
        """The query as a path to an existing file that the list does not offer (ignored)."""
        if not query or query in self.candidates:
            return None
        path = self.project.resolve(query)
        try:
            if not path.is_file():
                return None
        except OSError:
            return None
        rel = self.project.relative(path)
        if PurePosixPath(rel).parts[:1] == (".git",):
            return None
        return rel

    def action_cursor(self, step: int) -> None:
        results = self.query_one(OptionList)
        if results.option_count:
            current = results.highlighted or 0
            results.highlighted = max(0, min(results.option_count - 1, current + step))

    @on(Input.Submitted, "#finder-query")
    def pick_highlighted(self) -> None:
        results = self.query_one(OptionList)
        if results.highlighted is None:
            self.app.bell()
            return
        self._pick(results.get_option_at_index(results.highlighted).id or "")

    @on(OptionList.OptionSelected, "#finder-results")
    def pick_option(self, event: OptionList.OptionSelected) -> None:
        self._pick(event.option.id or "")

    def _pick(self, option_id: str) -> None:
        kind, _, path = option_id.partition(":")
        if path:
            self.dismiss((path, kind == "ignored"))
