"""The TUI's widgets, one per module."""

from tui.widgets.context_list import ContextList
from tui.widgets.conversation import Conversation
from tui.widgets.exchange import Exchange
from tui.widgets.file_panel import FilePanel
from tui.widgets.instruction_editor import InstructionEditor
from tui.widgets.status_bar import StatusBar
from tui.widgets.welcome_panel import WelcomePanel

__all__ = [
    "ContextList",
    "Conversation",
    "Exchange",
    "FilePanel",
    "InstructionEditor",
    "StatusBar",
    "WelcomePanel",
]
