"""Insert a code block into a file: pick the file, pick how, see the exact diff, say yes.

Steps, all from the keyboard: the target (a context file, the file under the tree's
cursor, the path the answer named, a file found with ctrl+o, or a typed new path), the
mode (replace the whole file, append, insert before a line, replace a range of lines, or
apply the block as a patch when it is a diff), the line numbers when the mode needs them,
then the preview: ``y`` writes exactly what is shown, ``n`` cancels, ``e`` opens the result
in ``$EDITOR`` (the app is suspended) and previews it again. Escape goes back a step.

A target the prompt was built from is checked first: when the file changed on disk since
(and not by our own inserts), inserting is refused, the change is shown, and ``r`` asks the
instruction again on the new content. The write itself is the main screen's (a worker).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from ..edits.code_blocks import CodeBlock
from ..edits.file_write import WriteError, read_text
from ..edits.insert import (
    InsertError,
    InsertMode,
    InsertPlan,
    parse_line_range,
    plan_insert,
    preview_diff,
    replan_with_text,
    resolve_target,
)
from ..project import ProjectFiles
from ..visible import visible, visible_content, visible_text

OTHER_PATH = "\0other"
FIND_FILE = "\0find"


@dataclass(frozen=True)
class InsertRequest:
    """What the dialog needs from the main screen (a snapshot; the dialog reads no widget)."""

    block: CodeBlock
    position: str
    """"2/3": the block's place among the answer's blocks."""
    project_dir: Path
    targets: tuple[str, ...]
    """Relative paths offered first, best guess first."""
    prompt_digests: Mapping[str, str] = field(default_factory=dict)
    """path -> digest of the text the prompt was built from."""
    prompt_texts: Mapping[str, str] = field(default_factory=dict)
    own_digests: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """path -> digests of contents the app itself wrote since (inserts, undos): not a change."""


@dataclass(frozen=True)
class InsertOutcome:
    """The dialog's answer: a confirmed plan to write, or a request to ask again."""

    plan: InsertPlan | None = None
    rerun: bool = False


@dataclass(frozen=True)
class StaleFile:
    """A target that changed on disk since the prompt was built."""

    rel: str
    diff: str
    """From the prompt's text to the file now ("" when the prompt's text is not known)."""
    deleted: bool = False


def check_stale(request: InsertRequest, rel: str) -> StaleFile | None:
    """Whether ``rel`` changed since the prompt (reads the file: call it in a worker)."""
    if rel not in request.prompt_digests:
        return None
    try:
        now = read_text(request.project_dir / rel, rel)
    except WriteError:
        now = None
    if now is None:
        return StaleFile(rel, "", deleted=True)
    digest = now.digest
    if digest == request.prompt_digests[rel] or digest in request.own_digests.get(rel, frozenset()):
        return None
    old = request.prompt_texts.get(rel)
    return StaleFile(rel, preview_diff(rel, old, now.text) if old is not None else "")


def diff_text(diff: str) -> Text:
    """The diff with added lines green and removed ones red (their +/- stay for NO_COLOR)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for line in diff.splitlines():
        style = ""
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        text.append_text(visible_text(line + "\n", style))  # the file's lines: shown, never acted on
    return text


class InsertDialog(ModalScreen[InsertOutcome | None]):
    """The insert steps (see the module's doc)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="insert-back", tooltip="Go back a step (the first step closes)."),
        Binding("ctrl+o", "find_target", "Find file", id="insert-find",
                tooltip="Pick the target from the project's files (fuzzy finder)."),
        Binding("y", "write", "Write", id="insert-write", tooltip="Write the change shown to the file."),
        Binding("n", "cancel", "Cancel", id="insert-cancel", tooltip="Close: nothing is written."),
        Binding("e", "edit", "$EDITOR", id="insert-edit",
                tooltip="Open the result in $EDITOR (the app waits), then preview it again."),
        Binding("r", "rerun", "Re-run", id="insert-rerun",
                tooltip="The file changed since the prompt: ask the instruction again on its new content."),
    ]

    STEPS = ("target", "path", "mode", "lines", "preview", "stale")

    def __init__(self, request: InsertRequest) -> None:
        super().__init__()
        self.request = request
        self.step = "target"
        self.target: str | None = None
        self.target_exists = False
        self.mode: InsertMode | None = None
        self.plan: InsertPlan | None = None
        self.stale: StaleFile | None = None

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="insert"):
            yield Static("", id="insert-question", markup=False)
            yield OptionList(id="insert-targets")
            yield Input(placeholder="path/in/the/project.py", id="insert-path")
            yield OptionList(id="insert-modes")
            yield Input(id="insert-lines")
            with VerticalScroll(id="insert-preview"):
                yield Static("", id="insert-diff", markup=False)
            yield Static("", id="insert-error", markup=False)
            yield Static("", id="insert-keys", markup=False)

    def on_mount(self) -> None:
        block = self.request.block
        title = f"Insert block {self.request.position} ({visible(block.label())})"
        self.query_one("#insert", Vertical).border_title = title
        targets = self.query_one("#insert-targets", OptionList)
        for rel in self.request.targets:
            targets.add_option(Option(visible(rel), id=rel))
        targets.add_option(Option("Find a project file… (ctrl+o)", id=FIND_FILE))
        targets.add_option(Option("Another path (a new file)…", id=OTHER_PATH))
        self._show("target")

    def _show(self, step: str, error: str = "") -> None:
        self.step = step
        showing = {
            "target": ("#insert-targets",),
            "path": ("#insert-path",),
            "mode": ("#insert-modes",),
            "lines": ("#insert-lines",),
            "preview": ("#insert-preview",),
            "stale": ("#insert-preview",),
        }[step]
        for selector in ("#insert-targets", "#insert-path", "#insert-modes", "#insert-lines", "#insert-preview"):
            self.query_one(selector).display = selector in showing
        question, keys = self._texts(step)
        self.query_one("#insert-question", Static).update(visible_content(question))
        self.query_one("#insert-keys", Static).update(keys)
        self.show_error(error)
        self.query_one(showing[0]).focus()
        self.refresh_bindings()

    def _texts(self, step: str) -> tuple[str, str]:
        target = self.target or ""
        if step == "target":
            return "Insert into which file?", "Enter: choose · ctrl+o: find a file · escape: close"
        if step == "path":
            return "Path of the file (relative to the project; a new file is created):", \
                "Enter: next · escape: back"
        if step == "mode":
            what = "a new file" if not self.target_exists else target
            return f"How should the block go into {what}?", "Enter: choose · escape: back"
        if step == "lines":
            assert self.mode is not None
            if self.mode is InsertMode.at_line:
                return f"Insert before which line of {target}? (one past the last line appends)", \
                    "Enter: preview · escape: back"
            return f"Replace which lines of {target}? (e.g. 12-20)", "Enter: preview · escape: back"
        if step == "stale":
            assert self.stale is not None
            what = "was deleted" if self.stale.deleted else "changed on disk"
            return (f"Not inserted: {self.stale.rel} {what} since the prompt was built; "
                    "the answer was written for the old content."), \
                "r: re-run the instruction on the new content · escape: back · n: close"
        assert self.plan is not None
        return f"{self.plan.rel}: {self.plan.mode.value} · {self.plan.summary}", \
            "y: write · n: cancel · e: edit in $EDITOR · escape: back"

    def show_error(self, message: str) -> None:
        error = self.query_one("#insert-error", Static)
        error.update(visible_content(message))
        error.display = bool(message)

    # -- steps ----------------------------------------------------------------------------------

    @on(OptionList.OptionSelected, "#insert-targets")
    def _target_picked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        option_id = event.option.id or ""
        if option_id == OTHER_PATH:
            self._show("path")
        elif option_id == FIND_FILE:
            self.action_find_target()
        else:
            self.choose_target(option_id)

    @on(Input.Submitted, "#insert-path")
    def _path_typed(self, event: Input.Submitted) -> None:
        event.stop()
        self.choose_target(event.value)

    def action_find_target(self) -> None:
        if self.step not in ("target", "path"):
            return
        from .file_finder import FileFinder

        def picked(result) -> None:
            if result is not None:
                self.choose_target(result[0])

        self.app.push_screen(FileFinder(ProjectFiles(self.request.project_dir), set()), picked)

    def choose_target(self, raw: str) -> None:
        try:
            rel, path = resolve_target(self.request.project_dir, raw)
        except InsertError as exc:
            self.show_error(str(exc))
            return
        if path.is_dir():
            self.show_error(f"{rel} is a folder; name a file")
            return
        self.target = rel
        self.check_target(rel)

    @work(thread=True, exclusive=True, group="insert-check", exit_on_error=False)
    def check_target(self, rel: str) -> None:
        stale = check_stale(self.request, rel)
        exists = (self.request.project_dir / rel).exists()
        self.app.call_from_thread(self._target_checked, rel, stale, exists)

    def _target_checked(self, rel: str, stale: StaleFile | None, exists: bool) -> None:
        if rel != self.target:
            return
        self.target_exists = exists
        if stale is not None:
            self.stale = stale
            body = diff_text(stale.diff) if stale.diff else Text(
                "(the file is gone)" if stale.deleted else "(what it held then is not known: a resumed answer)")
            self.query_one("#insert-diff", Static).update(body)
            self._show("stale")
            return
        modes = self.query_one("#insert-modes", OptionList)
        modes.clear_options()
        choices = self._modes(exists)
        for mode in choices:
            label = "create the file with the block" if not exists and mode is not InsertMode.patch else mode.value
            modes.add_option(Option(label, id=mode.name))
        self._show("mode")
        default = InsertMode.patch if self.request.block.is_diff else (
            InsertMode.append if exists else InsertMode.replace)
        modes.highlighted = choices.index(default) if default in choices else 0

    def _modes(self, exists: bool) -> list[InsertMode]:
        modes = list(InsertMode) if exists else [InsertMode.replace]
        if not self.request.block.is_diff and InsertMode.patch in modes:
            modes.remove(InsertMode.patch)
        if not exists and self.request.block.is_diff:
            modes.append(InsertMode.patch)
        return modes

    @on(OptionList.OptionSelected, "#insert-modes")
    def _mode_picked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.mode = InsertMode[event.option.id or "append"]
        if self.mode.needs_lines:
            lines = self.query_one("#insert-lines", Input)
            lines.value = ""
            lines.placeholder = "12" if self.mode is InsertMode.at_line else "12-20"
            self._show("lines")
        else:
            self.make_plan(None, None)

    @on(Input.Submitted, "#insert-lines")
    def _lines_typed(self, event: Input.Submitted) -> None:
        event.stop()
        assert self.mode is not None
        try:
            start, end = parse_line_range(event.value, self.mode)
        except InsertError as exc:
            self.show_error(str(exc))
            return
        self.make_plan(start, end)

    @work(thread=True, exclusive=True, group="insert-plan", exit_on_error=False)
    def make_plan(self, line: int | None, end: int | None) -> None:
        assert self.target is not None and self.mode is not None
        try:
            plan = plan_insert(self.request.project_dir, self.target, self.request.block.text, self.mode, line, end)
        except InsertError as exc:
            self.app.call_from_thread(self.show_error, str(exc))
            return
        self.app.call_from_thread(self.show_plan, plan, diff_text(plan.diff), plan.summary)

    def show_plan(self, plan: InsertPlan, shown: Text | None = None, _summary: str | None = None) -> None:
        """Show the plan's diff (``shown``: already rendered in the worker that made it)."""
        self.plan = plan
        self.query_one("#insert-diff", Static).update(shown if shown is not None else diff_text(plan.diff))
        self.query_one("#insert-preview", VerticalScroll).scroll_home(animate=False)
        self._show("preview")

    # -- keys --------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("write", "edit"):
            return self.step == "preview"
        if action == "rerun":
            return self.step == "stale"
        if action == "cancel":
            return self.step in ("preview", "stale")
        if action == "find_target":
            return self.step in ("target", "path")
        return True

    def action_back(self) -> None:
        back = {
            "target": None,
            "path": "target",
            "mode": "target",
            "stale": "target",
            "lines": "mode",
            "preview": "lines" if self.mode is not None and self.mode.needs_lines else "mode",
        }[self.step]
        if back is None:
            self.dismiss(None)
        else:
            self._show(back)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_write(self) -> None:
        if self.step == "preview" and self.plan is not None:
            self.dismiss(InsertOutcome(plan=self.plan))

    def action_rerun(self) -> None:
        if self.step == "stale":
            self.dismiss(InsertOutcome(rerun=True))

    def action_edit(self) -> None:
        """The result in $VISUAL/$EDITOR (vi when neither is set); the app is suspended meanwhile."""
        if self.step != "preview" or self.plan is None:
            return
        command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        suffix = Path(self.plan.rel).suffix
        with tempfile.TemporaryDirectory(prefix="codeup-edit-") as folder:
            path = Path(folder) / f"insert{suffix}"
            path.write_bytes(self.plan.new_bytes)
            try:
                argv = [*shlex.split(command), str(path)]
                try:
                    with self.app.suspend():
                        code = subprocess.call(argv)
                except SuspendNotSupported:
                    if not self.app.is_headless:
                        self.show_error("this terminal cannot hand the screen to an editor")
                        return
                    code = subprocess.call(argv, stdin=subprocess.DEVNULL)  # tests: a scripted editor
                edited = path.read_bytes()
            except (OSError, ValueError) as exc:
                self.show_error(f"cannot run the editor ({command}): {getattr(exc, 'strerror', None) or exc}")
                return
        if code != 0:
            self.show_error(f"the editor ({command}) exited with status {code}; the result is as before")
            return
        try:
            text = edited.decode("utf-8")
        except UnicodeDecodeError:
            self.show_error("the edited result is not UTF-8 text; not used")
            return
        if text == self.plan.new_text:
            self.show_error("")
            return
        self.show_plan(replan_with_text(self.plan, text))
