"""Exception classes of the engine.

Every error a user can cause (a bad model file, no network for the default model, a bad
option) is a `CodeupError` whose `str()` is one line that says what is wrong and, where
possible, what to do. The command line prints that line and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path

from .terminal_text import printable  # re-exported: errors name untrusted text through it


class CodeupError(Exception):
    """Base class of the errors the engine reports to a user."""


class ModelFileError(CodeupError):
    """A model file could not be read: missing, unreadable, malformed or unsupported."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = printable(problem)
        super().__init__(f"{printable(self.path)}: {self.problem}")


class DefaultModelError(CodeupError):
    """The default model could not be fetched, extracted or verified."""


class UsageError(CodeupError):
    """An option or argument is out of range or inconsistent."""
