"""The codeup-tui App: bindings, the model's lifecycle, the stylesheet."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import get_current_worker

from codeup_tui.engine.chat_template import MODEL_TEMPLATE
from .backend import Backend, LocalBackend
from .config import RESTART_FIELDS, SAMPLING_FIELDS, Config, Settings, config_path, load_config, save_config
from .messages import FilesChangedOnDisk, ModelLoaded, ModelLoadFailed, ModelLoadProgress, SettingsApplied
from .model_loader import (
    LoadCancelled,
    ModelSource,
    ModelStatus,
    ModelSummary,
    Stage,
    describe_error,
)
from .history import default_history_path
from .project import ProjectFiles
from .prompt import CODING_SYSTEM
from .screens import FileFinder, HelpScreen, MainScreen, PromptView, SettingsScreen
from .screens.history import ConfirmScreen, HistoryScreen
from .screens.insert_dialog import InsertDialog
from .session import Session
from .clipboard import osc52_sequence, save_to_file
from .terminal_keys import register_terminal_keys
from .watch import ProjectWatcher
from .widgets import Conversation, FilePanel, InstructionEditor
from .visible import visible

WATCH_ENV = "CODEUP_TUI_WATCH"
"""``poll``: watch the project by polling (network file systems); ``off``: do not watch it."""


class CodeupApp(App[None]):
    """A keyboard-driven coding assistant on one project directory.

    The model is loaded by the backend in a thread worker, so the screen is up at once;
    ``model_status`` tracks it and the main screen displays it. The app owns the backend
    (``backend``), the prompt template, the sampling settings (``settings``, and the config
    file they are saved to), and closes the backend on exit. The config file's ``[keys]``
    remap bindings by id (Textual's keymap), everywhere: footer, help and palette included.
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
        Binding(
            "f2",
            "settings",
            "Settings",
            id="settings",
            tooltip="Change the model, context, template and sampling; saved to the config file.",
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
        backend: Backend | None = None,
        template: Any = None,
        sampling: Any = None,
        max_tokens: int | None = None,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        settings: Settings | None = None,
        config: Config | None = None,
        lora: tuple = (),
        seed: int | None = None,
    ) -> None:
        """
        Args:
            project_dir: The project directory (already validated by the CLI).
            model_path: A model file, or None for the default model.
            model_source: Overrides where the model comes from (tests inject fakes here);
                when given, ``model_path`` must be None.
            backend: Overrides the whole backend (a fake in tests, later a remote one);
                when given, ``model_path`` and ``model_source`` must be None.
            template: A ``PromptTemplate`` or a template name (default: ``model``, the model
                file's own chat template once it is loaded; alpaca for a file without one).
            sampling: ``engine.sampling.SamplingParams`` (None: the engine's defaults).
            max_tokens: Most tokens per answer (-1: until the model stops or the context is
                full); also the room kept for the answer (a quarter of the context when -1).
            n_ctx, n_threads: For the local model (None: the engine's defaults).
            lora: LoRA adapters ((file, scale), ...) applied to the local model.
            settings: The settings (the CLI passes the merged flags, file and defaults): the
                template, sampling, answer limit, context size and threads not given above
                are derived from them; None: the settings are read from the arguments above.
            seed: The sampling seed, with ``settings`` (None: a random one).
            config: The config file the settings screen saves to, with its key remapping
                (None: the default file, nothing remapped).
        """
        # NO_COLOR: Textual's own answer is a grey-scale filter, which still writes colour
        # escapes; in "ANSI" mode it drops every colour instead and its widgets show cursors
        # and selections in reverse video (the :nocolor rules), so no colour is relied on.
        super().__init__(ansi_color=True if os.environ.get("NO_COLOR") is not None else None)
        register_terminal_keys()  # alt+enter over SSH/tmux
        if settings is not None:
            # One source: what the arguments leave out, the settings say.
            template = settings.template if template is None else template
            sampling = settings.sampling_params(seed) if sampling is None else sampling
            max_tokens = settings.max_tokens if max_tokens is None else max_tokens
            n_ctx = settings.n_ctx if n_ctx is None else n_ctx
            n_threads = settings.threads if n_threads is None else n_threads
        if max_tokens is None:
            max_tokens = -1
        if model_source is not None and model_path is not None:
            raise ValueError("give model_path or model_source, not both")
        if backend is not None and (model_source is not None or model_path is not None):
            raise ValueError("give backend, or model_path/model_source, not both")
        self.project_dir = Path(project_dir)
        if backend is None:
            source = model_source or ModelSource(
                path=None if model_path is None else Path(model_path), n_ctx=n_ctx, n_threads=n_threads,
                lora=tuple(lora),
            )
            backend = LocalBackend(source)
        self.backend: Backend = backend
        self.template_name: str = MODEL_TEMPLATE if template is None else getattr(template, "name", template)
        """The template setting: ``model`` follows the loaded model's own chat template."""
        self.template = self._resolve_template(self.template_name) if isinstance(template, (str, type(None))) else template
        self.sampling = sampling
        self.max_tokens = max_tokens
        if settings is None:
            source = getattr(backend, "source", None)
            settings = Settings(
                model=getattr(source, "path", None),
                n_ctx=getattr(source, "n_ctx", None),
                threads=getattr(source, "n_threads", None),
                max_tokens=max_tokens,
                template=self.template_name,
            ).updated({name: getattr(sampling, name) for name in SAMPLING_FIELDS if sampling is not None})
        self.settings = settings
        self.config = config or Config(config_path()[0])
        self.keymap: dict[str, str] = dict(self.config.keys)
        if self.keymap:
            self.set_keymap(self.keymap)
        self._load_cancel = threading.Event()  # set on exit: stops a default-model download
        self.watcher: ProjectWatcher | None = None
        """Watches the project on disk (started in a worker; stopped, threads joined, at exit)."""
        self._watch_lock = threading.Lock()
        self._watch_closed = False
        self.sub_title = visible(str(self.project_dir))

    def get_default_screen(self) -> Screen[None]:
        # The screen is a view over the session (tui/session.py): the conversation and its history.
        return MainScreen(self.project_dir, Session(ProjectFiles(self.project_dir), default_history_path()))

    def on_mount(self) -> None:
        self.load_model()
        if os.environ.get(WATCH_ENV, "").strip().lower() != "off":
            self.start_watching()

    def on_unmount(self) -> None:
        self._load_cancel.set()
        self.stop_watching()
        self.close_model()

    # -- the project on disk ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="watch", name="watch project", exit_on_error=False)
    def start_watching(self) -> None:
        """Start the project watcher (adding inotify watches over a big tree takes a while)."""
        polling = os.environ.get(WATCH_ENV, "").strip().lower() == "poll"
        watcher = ProjectWatcher(self.project_dir, self._changes_seen, polling=polling)
        try:
            watcher.start()
        except Exception as exc:  # an unreadable project folder: the app works without it
            self.log.error("cannot watch the project", exc)
            watcher.stop()
            return
        with self._watch_lock:
            closed = self._watch_closed
            if not closed:
                self.watcher = watcher
        if closed:  # the app ended while the watcher started
            watcher.stop()

    def _changes_seen(self, batch) -> None:
        # On the watcher's thread: post (never wait on the UI; at exit it waits on us).
        self.post_message(FilesChangedOnDisk(batch))

    def on_files_changed_on_disk(self, message: FilesChangedOnDisk) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                screen.post_message(FilesChangedOnDisk(message.batch))

    def stop_watching(self) -> None:
        """Stop the watcher and join its threads (safe to call twice)."""
        with self._watch_lock:
            self._watch_closed = True
            watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.stop()

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
        if self.template_name == MODEL_TEMPLATE:
            self.template = self._resolve_template(self.template_name, message.summary)
        self.model_status = ModelStatus.ready(message.summary)

    def _resolve_template(self, name: str, summary: ModelSummary | None = None) -> Any:
        """The template ``name`` stands for: ``model`` is the loaded model's chat template
        (with the coding system line; alpaca until the model is loaded, and for a file
        without one), any other name a TOML template."""
        from codeup_tui.engine.templates import load_template

        if name != MODEL_TEMPLATE:
            return load_template(name)
        if summary is None and self.model_status.state == "ready":
            summary = self.model_status.summary
        own = getattr(summary, "chat_template", None)
        if own is None:
            return load_template("alpaca")
        return replace(own, system=CODING_SYSTEM) if own.supports_system else own

    @property
    def template_label(self) -> str:
        """Which prompt format is in use, as the status bar, F2 and ctrl+r name it."""
        from codeup_tui.engine.chat_template import format_label

        return format_label(self.template)

    def on_model_load_failed(self, message: ModelLoadFailed) -> None:
        self.model_status = ModelStatus.failed(message.error)

    def close_model(self) -> None:
        """Stop any generation and release the model (safe to call more than once)."""
        for screen in self.screen_stack:
            handle = screen.generation_handle if isinstance(screen, MainScreen) else None
            if handle is not None:
                handle.cancel()
                deadline = time.monotonic() + 2.0
                while not handle.done and time.monotonic() < deadline:
                    time.sleep(0.01)
        self.backend.close()

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Textual's notify, through ``tui.visible``: a message or title may hold a file name,
        a path from an undo record or a server's text, which must not drive the terminal."""
        super().notify(visible(message), title=visible(title), severity=severity, timeout=timeout, markup=markup)

    # -- clipboard -------------------------------------------------------------------

    def copy_to_clipboard(self, text: str) -> None:
        """OSC 52 (wrapped for tmux); a text too long for a terminal goes to a file."""
        self._clipboard = text
        sequence = osc52_sequence(text, in_tmux="TMUX" in os.environ)
        if sequence is None or self._driver is None:
            from codeup_tui.engine.default_model import cache_dir

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
        if action == "settings":  # from the main screen (not over another modal)
            return isinstance(self.screen, MainScreen)
        return True

    def action_focus_files(self) -> None:
        self.screen.query_one(FilePanel).focus()

    def action_focus_editor(self) -> None:
        self.screen.query_one(InstructionEditor).focus()

    @classmethod
    def binding_groups(cls) -> list[tuple[str, Iterable[BindingType]]]:
        """Every key, grouped by where it applies (for the help screen)."""
        return [
            ("Everywhere", cls.BINDINGS),
            ("Main screen", MainScreen.BINDINGS),
            ("Instruction editor", InstructionEditor.BINDINGS),
            ("File tree", FilePanel.BINDINGS),
            ("Conversation (focused)", Conversation.BINDINGS),
            ("Insert a code block", InsertDialog.BINDINGS),
            ("File finder", FileFinder.BINDINGS),
            ("Prompt view", PromptView.BINDINGS),
            ("History", HistoryScreen.BINDINGS),
            ("Confirm", ConfirmScreen.BINDINGS),
            ("Settings", SettingsScreen.BINDINGS),
            ("Help", HelpScreen.BINDINGS),
        ]

    @classmethod
    def binding_ids(cls) -> set[str]:
        """The ids a config file's [keys] table may remap."""
        return {
            item.id for _title, items in cls.binding_groups() for item in items
            if isinstance(item, Binding) and item.id
        }

    def keys_text(self, binding: Binding) -> str:
        """The binding's keys as shown to the user, after the remapping: "^j, alt+⏎"."""
        keys = self.keymap.get(binding.id or "", binding.key)
        return ", ".join(self.get_key_display(Binding(key.strip(), binding.action)) for key in keys.split(","))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
            return
        self.push_screen(HelpScreen(self.binding_groups(), self.keys_text))

    # -- settings --------------------------------------------------------------------

    def action_settings(self) -> None:
        if isinstance(self.screen, MainScreen):
            remote_models = getattr(self.backend, "models", None)  # a server's: F2 offers them
            current = getattr(getattr(self.backend, "client", None), "model", None)
            self.push_screen(SettingsScreen(self.settings, self.config.path, self.save_settings,
                                            remote_models=remote_models, remote_model=current,
                                            in_use={"template": self.template_label}))

    def save_settings(self, changes: Mapping[str, object]) -> str:
        """Write the changed settings (None: back to the default) to the config file, then
        apply them; returns what to tell the user. Raises ConfigError, having saved nothing.

        The file is read again first, so edits made to it since the start are kept; fields
        the user did not change keep the file's value (a flag's value is not written).
        """
        fresh = load_config(self.config.path)
        changes = dict(changes)
        remote = dict(fresh.remote)
        if "remote_model" in changes:  # the server's model: a key of its own, read at the start
            remote_model = changes.pop("remote_model")
            remote.pop("remote_model", None)
            if remote_model:
                remote["remote_model"] = str(remote_model)
        values = {name: value for name, value in fresh.values.items() if name not in changes}
        values.update({name: value for name, value in changes.items() if value is not None})
        config = replace(fresh, values=values, remote=remote)
        save_config(config)
        self.config = config
        self.apply_settings(self.settings.updated(changes))
        note = f"Saved to {config.path}."
        if any(name in changes for name in RESTART_FIELDS) or remote != dict(fresh.remote):
            note += " The model, context size and threads apply when codeup-tui restarts."
        return note

    def apply_settings(self, settings: Settings) -> None:
        """Use ``settings`` from the next answer on (the template and sampling; the model's
        own settings need a restart)."""
        if settings.template != self.settings.template:
            self.template = self._resolve_template(settings.template)
            self.template_name = settings.template
        from codeup_tui.engine.sampling import SamplingParams

        self.sampling = replace(self.sampling or SamplingParams(),
                                **{name: getattr(settings, name) for name in SAMPLING_FIELDS})
        self.max_tokens = settings.max_tokens
        self.settings = settings
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                screen.post_message(SettingsApplied())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        bindings = {b.id: b for b in self.BINDINGS if isinstance(b, Binding)}
        yield SystemCommand("Help: keys", f"Show every key and its binding id ({self.keys_text(bindings['help'])})",
                            self.action_help)
        if isinstance(screen, MainScreen):
            # The app's own actions (quit and help are above) all apply on the main screen.
            app_bindings = [b for b in bindings.values() if b.id not in ("quit", "help")]
            for binding in [*app_bindings, *MainScreen.BINDINGS]:
                assert isinstance(binding, Binding)
                target = self if binding in app_bindings else screen
                if target is screen and screen.check_action(binding.action, ()) is not True:
                    continue
                keys = self.keys_text(binding)
                yield SystemCommand(
                    f"{binding.description} ({keys})",
                    binding.tooltip,
                    lambda action=binding.action, target=target: target.run_action(action),
                )
