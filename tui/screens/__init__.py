"""The TUI's screens, one per module."""

from tui.screens.main import MainScreen

__all__ = ["MainScreen"]
