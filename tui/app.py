"""The codeup-tui App: bindings, the model's lifecycle, the stylesheet."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import get_current_worker

from tui.backend import Backend, LocalBackend
from tui.messages import ModelLoaded, ModelLoadFailed, ModelLoadProgress
from tui.model_loader import (
    LoadCancelled,
    ModelSource,
    ModelStatus,
    Stage,
    describe_error,
)
from tui.screens import FileFinder, HelpScreen, MainScreen, PromptView
from tui.clipboard import osc52_sequence, save_to_file
from tui.terminal_keys import register_terminal_keys
from tui.widgets import FilePanel, InstructionEditor


class CodeupApp(App[None]):
    """A keyboard-driven coding assistant on one project directory.

    The model is loaded by the backend in a thread worker, so the screen is up at once;
    ``model_status`` tracks it and the main screen displays it. The app owns the backend
    (``backend``), the prompt template, the sampling settings, and closes the backend on
    exit.
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
        Binding("f1", "help", "Help", id="help", tooltip="Show every key (this list)."),
    ]

    model_status: reactive[ModelStatus] = reactive(ModelStatus.starting, init=False)
    """The model's state; the main screen shows it in the status bar and welcome panel."""

    def __init__(
        self,
        project_dir: Path | str,
        model_path: Path | str | None = None,
        *,
        model_source: ModelSource | None = None,
        backend: Backend | None = None,
        template: Any = None,
        sampling: Any = None,
        max_tokens: int = -1,
        n_ctx: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        """
        Args:
            project_dir: The project directory (already validated by the CLI).
            model_path: A model file, or None for the default model.
            model_source: Overrides where the model comes from (tests inject fakes here);
                when given, ``model_path`` must be None.
            backend: Overrides the whole backend (a fake in tests, later a remote one);
                when given, ``model_path`` and ``model_source`` must be None.
            template: A ``PromptTemplate`` or a template name (default: alpaca).
            sampling: ``engine.sampling.SamplingParams`` (None: the engine's defaults).
            max_tokens: Most tokens per answer (-1: until the model stops or the context is
                full); also the room kept for the answer (a quarter of the context when -1).
            n_ctx, n_threads: For the local model (None: the engine's defaults).
        """
        super().__init__()
        register_terminal_keys()  # alt+enter over SSH/tmux
        if model_source is not None and model_path is not None:
            raise ValueError("give model_path or model_source, not both")
        if backend is not None and (model_source is not None or model_path is not None):
            raise ValueError("give backend, or model_path/model_source, not both")
        self.project_dir = Path(project_dir)
        if backend is None:
            source = model_source or ModelSource(
                path=None if model_path is None else Path(model_path), n_ctx=n_ctx, n_threads=n_threads
            )
            backend = LocalBackend(source)
        self.backend: Backend = backend
        if template is None or isinstance(template, str):
            from engine.templates import load_template

            template = load_template(template or "alpaca")
        self.template = template
        self.sampling = sampling
        self.max_tokens = max_tokens
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
            if worker.is_cancelled or self._load_cancel.is_set():
                raise LoadCancelled
            self.post_message(ModelLoadProgress(stage, text))

        try:
            summary = self.backend.load(progress, self._load_cancel)
        except LoadCancelled:
            return
        except Exception as exc:  # shown to the user; the app keeps running
            self.log.error("model load failed", exc)
            self.post_message(ModelLoadFailed(describe_error(exc)))
            return
        if worker.is_cancelled or self._load_cancel.is_set() or not self.post_message(ModelLoaded(summary)):
            self.backend.close()

    def on_model_load_progress(self, message: ModelLoadProgress) -> None:
        self.model_status = ModelStatus.progress(message.stage, message.text)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        self.model_status = ModelStatus.ready(message.summary)

    def on_model_load_failed(self, message: ModelLoadFailed) -> None:
        self.model_status = ModelStatus.failed(message.error)

    def close_model(self) -> None:
        """Stop any generation and release the model (safe to call more than once)."""
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen) and screen._handle is not None:
                handle = screen._handle
                handle.cancel()
                deadline = time.monotonic() + 2.0
                while not handle.done and time.monotonic() < deadline:
                    time.sleep(0.01)
        self.backend.close()

    # -- clipboard -------------------------------------------------------------------

    def copy_to_clipboard(self, text: str) -> None:
        """OSC 52 (wrapped for tmux); a text too long for a terminal goes to a file."""
        self._clipboard = text
        sequence = osc52_sequence(text, in_tmux="TMUX" in os.environ)
        if sequence is None or self._driver is None:
            from engine.default_model import cache_dir

            try:
                path = save_to_file(text, cache_dir())
            except OSError as e:
                self.notify(f"Not copied: cannot write the clipboard file ({e.strerror or e}).", severity="error")
                return
            self.notify(f"Too long for the terminal's clipboard: saved to {path}", severity="warning")
            return
        self._driver.write(sequence)
        self.notify(f"Copied {len(text):,} characters (OSC 52).")

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

    def binding_groups(self) -> list[tuple[str, Iterable[BindingType]]]:
        """Every key, grouped by where it applies (for the help screen)."""
        return [
            ("Everywhere", self.BINDINGS),
            ("Main screen", MainScreen.BINDINGS),
            ("File tree", FilePanel.BINDINGS),
            ("File finder", FileFinder.BINDINGS),
            ("Prompt view", PromptView.BINDINGS),
            ("Help", HelpScreen.BINDINGS),
        ]

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
            return
        self.push_screen(HelpScreen(self.binding_groups()))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help: keys", "Show every key and its binding id (F1)", self.action_help)
        if isinstance(screen, MainScreen):
            for binding in MainScreen.BINDINGS:
                assert isinstance(binding, Binding)
                if screen.check_action(binding.action, ()) is not True:
                    continue
                keys = self.get_key_display(binding)
                yield SystemCommand(
                    f"{binding.description} ({keys})",
                    binding.tooltip,
                    lambda action=binding.action: screen.run_action(action),
                )
