"""Shows the exact prompt the model would get, as text, in a modal."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea

from ..visible import visible, visible_content


class PromptView(ModalScreen[None]):
    """The rendered prompt, read-only (it can be selected and scrolled). Shown through
    ``tui.visible``: a control sequence in a context file is seen as text (``\\x1b``), not
    acted on by the terminal; the prompt sent keeps it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,ctrl+r", "dismiss(None)", "Close", id="prompt-close", tooltip="Close the prompt view."),
    ]

    def __init__(self, prompt: str, summary: str) -> None:
        super().__init__()
        self.prompt = prompt
        self.summary = summary

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-view"):
            yield TextArea(visible(self.prompt), read_only=True, soft_wrap=True, show_line_numbers=False, id="prompt-text")
            yield Static(visible_content(self.summary), id="prompt-summary", markup=False)

    def on_mount(self) -> None:
        self.query_one("#prompt-view", Vertical).border_title = "Prompt (exactly as sent)"
        self.query_one(TextArea).focus()
