"""The TUI's screens, one per module."""

from .file_finder import FileFinder
from .help import HelpScreen
from .main import MainScreen
from .prompt_view import PromptView
from .settings import SettingsScreen

__all__ = ["FileFinder", "HelpScreen", "MainScreen", "PromptView", "SettingsScreen"]
