"""The TUI's widgets, one per module."""

from .context_list import ContextList
from .conversation import Conversation
from .exchange import Exchange
from .file_panel import FilePanel
from .instruction_editor import InstructionEditor
from .status_bar import StatusBar
from .welcome_panel import WelcomePanel

__all__ = [
    "ContextList",
    "Conversation",
    "Exchange",
    "FilePanel",
    "InstructionEditor",
    "StatusBar",
    "WelcomePanel",
]
