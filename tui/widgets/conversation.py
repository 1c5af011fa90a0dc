"""The conversation area on the right of the screen."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import VerticalScroll

from tui.model_loader import ModelStatus
from tui.widgets.welcome_panel import WelcomePanel


class Conversation(VerticalScroll):
    """A scrolling column of conversation items.

    For now the only item is the welcome panel; instructions and the model's replies are
    appended here once generation exists.
    """

    def __init__(
        self,
        project_dir: Path,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.project_dir = project_dir
        self.border_title = "Conversation"

    def compose(self) -> ComposeResult:
        yield WelcomePanel(self.project_dir)

    async def show_model_status(self, status: ModelStatus) -> None:
        await self.query_one(WelcomePanel).show_model_status(status)
