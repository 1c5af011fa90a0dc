"""The multi-line editor where the user writes an instruction."""

from __future__ import annotations

from textual.widgets import TextArea


class InstructionEditor(TextArea):
    """A plain TextArea: Enter inserts a new line, Tab moves focus on.

    Sending is the screen's binding (ctrl+j / alt+enter); the border subtitle shows the
    context budget of the prompt as it stands.
    """

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
