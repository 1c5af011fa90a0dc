"""The multi-line editor where the user writes an instruction."""

from __future__ import annotations

from textual.widgets import TextArea


class InstructionEditor(TextArea):
    """A plain TextArea: Enter inserts a new line, Tab moves focus on.

    Nothing here sends text anywhere yet; sending arrives with text generation.
    """

    PLACEHOLDER = "Write an instruction. Enter adds a new line; sending comes with generation."

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
