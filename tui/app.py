"""The codeup-tui App: bindings, the model's lifecycle, the stylesheet."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import get_current_worker

from tui.messages import ModelLoaded, ModelLoadFailed, ModelLoadProgress
from tui.model_loader import (
    LoadCancelled,
    ModelFileLike,
    ModelSource,
    ModelStatus,
    ModelSummary,
    Stage,
    describe_error,
    open_model,
)
from tui.screens import MainScreen
from tui.widgets import FilePanel, InstructionEditor


class CodeupApp(App[None]):
    """A keyboard-driven coding assistant on one project directory.

    The model is resolved and opened by a thread worker, so the screen is up at once;
    ``model_status`` tracks it and the main screen displays it. The app owns the opened
    ``ModelFile`` (``model_file``) and closes it on exit.
    """

    CSS_PATH = "app.tcss"
    TITLE = "codeup-tui"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+q",
            "quit",
            "Quit",
            id="quit",
            priority=True,
            tooltip="Quit codeup-tui.",
        ),
        Binding(
            "ctrl+f",
            "focus_files",
            "Files",
            id="focus-files",
            tooltip="Move the focus to the project's file tree.",
        ),
        Binding(
            "ctrl+e",
            "focus_editor",
            "Editor",
            id="focus-editor",
            tooltip="Move the focus to the instruction editor.",
        ),
    ]

    model_status: reactive[ModelStatus] = reactive(ModelStatus.starting, init=False)
    """The model's state; the main screen shows it in the status bar and welcome panel."""

    def __init__(
        self,
        project_dir: Path | str,
        model_path: Path | str | None = None,
        *,
        model_source: ModelSource | None = None,
    ) -> None:
        """
        Args:
            project_dir: The project directory (already validated by the CLI).
            model_path: A model file, or None for the default model.
            model_source: Overrides where the model comes from (tests inject fakes here);
                when given, ``model_path`` must be None.
        """
        super().__init__()
        if model_source is not None and model_path is not None:
            raise ValueError("give model_path or model_source, not both")
        self.project_dir = Path(project_dir)
        self.model_source = model_source or ModelSource(
            path=None if model_path is None else Path(model_path)
        )
        self.model_file: ModelFileLike | None = None
        self._load_cancel = threading.Event()  # set on exit: stops a default-model download
        self.sub_title = str(self.project_dir)

    def get_default_screen(self) -> Screen[None]:
        return MainScreen(self.project_dir)

    def on_mount(self) -> None:
        self.load_model()

    def on_unmount(self) -> None:
        self._load_cancel.set()
        self.close_model()

    # -- model lifecycle -------------------------------------------------------------

    @work(thread=True, exclusive=True, group="model", name="load model", exit_on_error=False)
    def load_model(self) -> None:
        """Resolve and open the model (blocking calls, so in a thread)."""
        worker = get_current_worker()

        def progress(stage: Stage, text: str) -> None:
            if worker.is_cancelled:
                raise LoadCancelled
            self.post_message(ModelLoadProgress(stage, text))

        try:
            model = open_model(self.model_source, progress, self._load_cancel)
        except LoadCancelled:
            return
        except Exception as exc:  # shown to the user; the app keeps running
            self.log.error("model load failed", exc)
            self.post_message(ModelLoadFailed(describe_error(exc)))
            return
        try:
            summary = ModelSummary.from_model_file(model)
        except Exception as exc:
            model.close()
            self.post_message(ModelLoadFailed(describe_error(exc)))
            return
        if worker.is_cancelled or not self.post_message(ModelLoaded(model, summary)):
            model.close()

    def on_model_load_progress(self, message: ModelLoadProgress) -> None:
        self.model_status = ModelStatus.progress(message.stage, message.text)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        self.close_model()
        self.model_file = message.model
        self.model_status = ModelStatus.ready(message.summary)

    def on_model_load_failed(self, message: ModelLoadFailed) -> None:
        self.model_status = ModelStatus.failed(message.error)

    def close_model(self) -> None:
        """Close the open model file, if any (safe to call more than once)."""
        model, self.model_file = self.model_file, None
        if model is not None:
            model.close()

    # -- actions ---------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The focus actions only apply on a screen that has the widget.
        if action == "focus_files":
            return bool(self.screen.query(FilePanel))
        if action == "focus_editor":
            return bool(self.screen.query(InstructionEditor))
        return True

    def action_focus_files(self) -> None:
        self.screen.query_one(FilePanel).focus()

    def action_focus_editor(self) -> None:
        self.screen.query_one(InstructionEditor).focus()
