"""The multi-line editor where the user writes an instruction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import TextArea

from ..history import unique_newest_first

DRAFT = -1
"""The recall position of the text being typed (0 is the newest earlier instruction)."""


class InstructionEditor(TextArea):
    """A plain TextArea: Enter inserts a new line, Tab moves focus on.

    Sending is the screen's binding (ctrl+j / alt+enter); the border subtitle shows the
    context budget of the prompt as it stands.

    Up on the first line walks back through earlier instructions (``recall_entries``,
    newest first) and down on the last line walks forward again, past the newest to the
    draft being typed, like a shell. Edits to a recalled entry stay with it while walking
    but never change the entries themselves.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "up",
            "recall_previous",
            "Previous instruction",
            id="recall-previous",
            show=False,
            tooltip="On the first line: the previous instruction, like a shell (else: up a line).",
        ),
        Binding(
            "down",
            "recall_next",
            "Next instruction",
            id="recall-next",
            show=False,
            tooltip="On the last line: the next instruction, then back to the draft (else: down a line).",
        ),
    ]

    PLACEHOLDER = "Write an instruction. ctrl+j or alt+enter sends; Enter adds a new line."

    def __init__(
        self,
        text: str = "",
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(
            text,
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            highlight_cursor_line=False,
            placeholder=self.PLACEHOLDER,
            name=name,
            id=id,
            classes=classes,
        )
        self.border_title = "Instruction"
        self.recall_entries: list[str] = []
        """Earlier instructions, newest first."""
        self.recall_position = DRAFT
        self._working: dict[int, str] = {}  # the text at each position walked through, as edited

    # -- the entries -------------------------------------------------------------------------

    def add_recall_entries(self, older: Sequence[str]) -> None:
        """Append instructions older than those already here (the saved ones, at start)."""
        self.recall_entries = unique_newest_first([*self.recall_entries, *older])

    def remember(self, instruction: str) -> None:
        """``instruction`` was just sent: it becomes the newest entry, and the walk restarts."""
        self.recall_entries = unique_newest_first([instruction, *self.recall_entries])
        self.reset_recall()

    def reset_recall(self) -> None:
        self.recall_position = DRAFT
        self._working.clear()

    # -- walking -------------------------------------------------------------------------------

    def action_recall_previous(self) -> None:
        at_top = self.navigator.is_first_wrapped_line(self.cursor_location)
        if at_top and self.recall_position + 1 < len(self.recall_entries):
            self._recall(self.recall_position + 1, cursor_at_end=True)
        elif at_top and self.recall_entries:
            self.app.bell()  # the oldest: the cursor stays where it is, as in a shell
        else:
            self.action_cursor_up()

    def action_recall_next(self) -> None:
        at_bottom = self.navigator.is_last_wrapped_line(self.cursor_location)
        if at_bottom and self.recall_position > DRAFT:
            self._recall(self.recall_position - 1, cursor_at_end=False)
        else:
            self.action_cursor_down()

    def _recall(self, position: int, *, cursor_at_end: bool) -> None:
        self._working[self.recall_position] = self.text
        self.recall_position = position
        default = "" if position == DRAFT else self.recall_entries[position]
        self.load_text(self._working.get(position, default))
        # Going back the cursor lands at the end (up walks on through the entry's lines);
        # going forward, at the end of the first line (down walks on through them).
        if cursor_at_end:
            self.move_cursor(self.document.end)
        else:
            self.move_cursor((0, len(self.document.get_line(0))))
