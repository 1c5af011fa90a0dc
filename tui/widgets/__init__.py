"""The TUI's widgets, one per module."""

from tui.widgets.conversation import Conversation
from tui.widgets.file_panel import FilePanel
from tui.widgets.instruction_editor import InstructionEditor
from tui.widgets.status_bar import StatusBar
from tui.widgets.welcome_panel import WelcomePanel

__all__ = ["Conversation", "FilePanel", "InstructionEditor", "StatusBar", "WelcomePanel"]
