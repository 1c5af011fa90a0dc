"""One line at the bottom of the screen: the model's state."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from tui.model_loader import ModelStatus


class StatusBar(Static):
    """Shows a ModelStatus: "loading…", download progress, the model summary, or an error.

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
        self.show_status(self.status)

    @property
    def text(self) -> str:
        """The line as displayed (before any truncation to the screen width)."""
        return self.status.text

    def show_status(self, status: ModelStatus) -> None:
        self.status = status
        self.set_class(status.busy, "-busy")
        self.set_class(status.state == "ready", "-ready")
        self.set_class(status.state == "error", "-error")
        self.update(Content(status.text))
