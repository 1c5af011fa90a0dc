"""The TUI's screens, one per module."""

from tui.screens.file_finder import FileFinder
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.prompt_view import PromptView
from tui.screens.settings import SettingsScreen

__all__ = ["FileFinder", "HelpScreen", "MainScreen", "PromptView", "SettingsScreen"]
