"""Messages posted by the TUI's workers and widgets.

``@dataclass`` Messages (posting/toolong style): the fields are the payload, and a handler
is named after the class (``on_model_load_progress`` and so on). Workers post them from
their thread; ``post_message`` is thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from tui.model_loader import ModelFileLike, ModelSummary, Stage


@dataclass
class ModelLoadProgress(Message):
    """The model load moved on: downloading the default model, or opening the file."""

    stage: Stage
    text: str


@dataclass
class ModelLoaded(Message):
    """The model file is open; the receiver owns it and must close it."""

    model: ModelFileLike
    summary: ModelSummary


@dataclass
class ModelLoadFailed(Message):
    """The model could not be resolved or opened; ``error`` is one line."""

    error: str
