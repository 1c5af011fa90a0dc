"""Messages posted by the TUI's workers and widgets.

``@dataclass`` Messages (posting/toolong style): the fields are the payload, and a handler
is named after the class (``on_model_load_progress`` and so on). Workers post them from
their thread; ``post_message`` is thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from .model_loader import ModelSummary, Stage
from .prompt import Budget


@dataclass
class ModelLoadProgress(Message):
    """The model load moved on: downloading the default model, or loading the file."""

    stage: Stage
    text: str


@dataclass
class ModelLoaded(Message):
    """The backend's model is ready."""

    summary: ModelSummary


@dataclass
class ModelLoadFailed(Message):
    """The model could not be resolved or loaded; ``error`` is one line."""

    error: str


@dataclass
class FileCounted(Message):
    """A selected file was read and its tokens counted."""

    path: str
    text: str
    tokens: int


@dataclass
class FileRefused(Message):
    """A selected file cannot be context; ``reason`` is short ("binary file")."""

    path: str
    reason: str


@dataclass
class BudgetCounted(Message):
    """The prompt as it stands now was counted (the draft instruction and the files)."""

    budget: Budget
    estimated: bool = False
    """The counts are estimates (a server that cannot tokenize)."""


@dataclass
class SendRefused(Message):
    """A send was refused before generation started; ``reason`` is one message."""

    reason: str


@dataclass
class GenerationProgress(Message):
    """New answer text (coalesced over ~50 ms) and the live timings."""

    exchange_id: int
    text: str
    timings: Any


@dataclass
class GenerationFinished(Message):
    """The generation ended; ``stop_reason`` is a StopReason value ("eos", "cancelled", ...)."""

    exchange_id: int
    text: str
    stop_reason: str
    error: str | None
    timings: Any


@dataclass
class HistoryFailed(Message):
    """The history file cannot be used (corrupt, unwritable); history is off from now on."""

    reason: str


@dataclass
class FilesChangedOnDisk(Message, bubble=False):
    """The project watcher's batch of changes (``tui.watch.ChangeBatch``), debounced: posted
    to the app from the watcher's thread, which passes it on to the main screen."""

    batch: Any


@dataclass
class SettingsApplied(Message, bubble=False):
    """The app took new settings (F2): the prompt format and the answer's room may differ."""


@dataclass
class GitStatesRead(Message):
    """``git status`` was read: absolute path -> "M" (modified) or "U" (untracked)."""

    states: dict


@dataclass
class Notice(Message):
    """Something a worker tells the user (shown as a notification)."""

    text: str
    title: str = ""
    severity: str = "information"
    timeout: float | None = None


@dataclass
class SavedStateLoaded(Message):
    """At start: the project's saved draft, the selection still usable, (path, why not) for
    the rest, and the instructions to recall."""

    draft: str
    kept: list
    dropped: list
    instructions: list


@dataclass
class ConversationLoaded(Message):
    """A saved conversation was read to resume: its turns and its last files checked."""

    conversation_id: str
    turns: list
    kept: list
    dropped: list


@dataclass
class PromptBuilt(Message):
    """The exact prompt the model would get now, and its summary line (for the prompt view)."""

    prompt: str
    title: str


@dataclass
class FileWritten(Message):
    """A confirmed insert was written: ``text`` is the file's new text (None: not text)."""

    path: str
    text: str | None
    note: str


@dataclass
class InsertUndone(Message):
    """The last insert was undone: ``text`` is the file's text again (None: it was removed)."""

    path: str
    text: str | None


@dataclass
class ExchangeOpened(Message):
    """A send passed its checks: show its exchange (the answer's pieces follow). ``request``
    is a ``tui.session.SendRequest``, ``turn`` the ``PastTurn`` being answered, ``files``
    (path -> text) every file the prompt was built from."""

    exchange_id: int
    request: Any
    turn: Any
    files: dict
