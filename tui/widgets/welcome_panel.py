"""The first thing in the conversation area: what is open, and what works so far."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from textual.widgets import Markdown

from ..model_loader import ModelStatus
from ..visible import visible

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def escape_markdown(text: str) -> str:
    """Escape what Markdown would treat as inline syntax (for text inside a paragraph)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def code_span(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def model_line(status: ModelStatus) -> str:
    """The "Model:" paragraph. Download progress lines stay in the status bar."""
    if status.state == "ready" and status.summary is not None:
        s = status.summary
        context = f"context {s.n_ctx} tokens" if s.n_ctx > 0 else "context length not recorded"
        details = ", ".join([s.file_type, s.format_name, s.architecture, context])
        lines = [
            f"**Model:** {escape_markdown(s.name)} ({escape_markdown(details)})",
            f"File: {code_span(s.path.name)}",
            *(f"Note: {escape_markdown(note)}" for note in s.notes),
        ]
        return "  \n".join(lines)
    if status.state == "error":
        return f"**Model:** not loaded: {escape_markdown(status.error or status.text)}"
    if status.state == "downloading":
        return "**Model:** downloading the default model (progress in the status bar)…"
    return "**Model:** loading…"


def welcome_markdown(project_dir: Path, status: ModelStatus) -> str:
    # The model's name and notes come from its file (or a server): shown, never acted on.
    return visible("\n\n".join(
        [
            f"**Project:** {code_span(str(project_dir))}",
            model_line(status),
            "Write an instruction below; **ctrl+j** (or alt+enter) sends it, Enter adds a new "
            "line, **escape** stops the answer. In the file tree, space or Enter adds a file to "
            "the context; **ctrl+o** finds one by name. **F1** lists every key.",
        ]
    ))


class WelcomePanel(Markdown):
    """Markdown that follows the model status; the newest status always wins."""

    def __init__(
        self,
        project_dir: Path,
        status: ModelStatus | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        self.project_dir = project_dir
        self._shown = welcome_markdown(project_dir, status or ModelStatus.starting())
        self._wanted = self._shown
        self._update_lock = asyncio.Lock()
        super().__init__(self._shown, name=name, id=id, classes=classes)

    @property
    def source(self) -> str:
        """The Markdown text currently displayed."""
        return self._shown

    async def show_model_status(self, status: ModelStatus) -> None:
        markdown = welcome_markdown(self.project_dir, status)
        self._wanted = markdown
        async with self._update_lock:
            # Updates are serialised; one overtaken by a newer status is skipped.
            if markdown != self._wanted or markdown == self._shown:
                return
            await self.update(markdown)
            self._shown = markdown
