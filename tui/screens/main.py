"""The main screen: files | conversation, the instruction editor, the status line."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer

from tui.model_loader import ModelStatus
from tui.widgets import Conversation, FilePanel, InstructionEditor, StatusBar


class MainScreen(Screen[None]):
    """Lays the widgets out and keeps them in step with the app's model status."""

    AUTO_FOCUS = "InstructionEditor"

    def __init__(self, project_dir: Path) -> None:
        super().__init__()
        self.project_dir = project_dir

    def compose(self) -> ComposeResult:
        with Horizontal(id="workspace"):
            yield FilePanel(self.project_dir, id="files")
            yield Conversation(self.project_dir, id="conversation")
        yield InstructionEditor(id="editor")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        # The app owns the model; this screen only displays its status.
        self.watch(self.app, "model_status", self._show_model_status)

    async def _show_model_status(self, status: ModelStatus) -> None:
        self.query_one(StatusBar).show_status(status)
        await self.query_one(Conversation).show_model_status(status)
