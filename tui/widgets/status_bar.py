"""One line at the bottom of the screen: the model (or the server it runs on), the context
used, live speed."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from ..answer_stream import draft_text
from ..model_loader import ModelStatus
from ..visible import printable, visible_content


NAME_WIDTH = 20
"""The model name is cut to this many columns while speeds are shown (80 columns fit)."""


def speed_text(timings: Any, generating: bool, remote: bool = False) -> str:
    """"prompt 45/120" while the prompt is processed, then "prompt 310 t/s · gen 24.8 t/s"
    (and "· draft 78%" when speculative decoding guessed tokens).

    ``remote``: only the generation speed (a server's prompt time, seen from here, is the
    wait for its first token, network included; and 80 columns must also fit the host)."""
    total, evaluated = timings.prompt_tokens, timings.prompt_evaluated
    if generating and total and not timings.generated_tokens:
        return f"prompt: {evaluated} new of {total}"
    parts = []
    if not remote:
        if timings.prompt_tokens_per_second:
            parts.append(f"prompt {timings.prompt_tokens_per_second:.0f} t/s")
        elif total:
            parts.append("prompt cached")
    if timings.generation_tokens_per_second:
        parts.append(f"gen {timings.generation_tokens_per_second:.1f} t/s")
    if (drafts := draft_text(timings)):
        parts.append(drafts)
    return " · ".join(parts)


class StatusBar(Static):
    """The model status (loading…, download progress, the model summary or an error), then,
    once ready, the context used, the thread count and the last/live generation speed.

    CSS classes follow the state: ``-busy``, ``-ready`` or ``-error``.
    """

    def __init__(
        self,
        status: ModelStatus | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, markup=False)
        self.status = status or ModelStatus.starting()
        self.context_used = 0
        self.speed = ""
        self.prompt_format = ""
        """The prompt format in use ("model: ChatML", "alpaca"); shown while no speed is."""
        self.show_status(self.status)

    @property
    def text(self) -> str:
        """The line as displayed (before any truncation to the screen width)."""
        status = self.status
        if status.state != "ready" or status.summary is None:
            return status.text
        s = status.summary
        name = printable(s.name)  # from the model file or the server: one line, no controls
        name = name if not self.speed or len(name) <= NAME_WIDTH else name[: NAME_WIDTH - 1] + "…"
        # A remote model says where it runs instead of its file type; counts a server could
        # not make are estimates, and say so.
        where = printable(s.location or s.file_type)
        if s.estimated_counts:
            context = f"ctx ~{self.context_used}/{s.context_text}" + ("" if self.speed else " (estimated)")
        else:
            context = f"ctx {self.context_used}/{s.context_text}"
        parts = [name, where, context]
        if s.threads:
            parts.append(f"{s.threads} thr")
        if self.prompt_format and not self.speed:  # 80 columns: the speeds win the room
            parts.append(self.prompt_format)
        line = " · ".join(parts)
        return f"{line} │ {self.speed}" if self.speed else line

    def _refresh_text(self) -> None:
        self.update(visible_content(self.text))

    def show_status(self, status: ModelStatus) -> None:
        self.status = status
        self.set_class(status.busy, "-busy")
        self.set_class(status.state == "ready", "-ready")
        self.set_class(status.state == "error", "-error")
        self._refresh_text()

    def show_format(self, prompt_format: str) -> None:
        self.prompt_format = prompt_format
        self._refresh_text()

    def show_context(self, used: int) -> None:
        self.context_used = used
        self._refresh_text()

    def show_timings(self, timings: Any, generating: bool) -> None:
        summary = self.status.summary
        self.speed = speed_text(timings, generating, remote=bool(summary is not None and summary.location))
        if generating:
            self.context_used = timings.prompt_tokens + timings.generated_tokens
        self._refresh_text()
