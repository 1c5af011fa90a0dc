"""F2: the settings form. Edit the fields, ctrl+s saves them to the config file, escape
closes without saving.

With a model on a server, one more field: the server's model (``remote_model``), with the
models the server lists beside it; only one of them is accepted.

Only the fields the user changed are checked and written: an untouched field keeps the
config file's value (and a command-line flag's value is never written to the file). A
field made empty goes back to its default. Invalid values are refused, each with its
message under the field, and nothing is saved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static

from ..config import FIELDS, ConfigError, Settings, check_model_file, format_value, parse_text

REMOTE_MODEL = "remote_model"
SaveSettings = Callable[[Mapping[str, object]], str]
"""Writes the changed settings (None: back to the default) and applies them; returns what to
tell the user. Raises ConfigError when the file cannot be written (nothing is saved then)."""


class SettingsScreen(ModalScreen[bool]):
    """One line per setting: its name, its value (editable), what the default is.

    Dismissed with True once saved, False when cancelled or nothing changed.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="settings-save", priority=True,
                tooltip="Save the settings to the config file and use them."),
        Binding("escape", "cancel", "Cancel", id="settings-cancel", tooltip="Close the settings without saving."),
        Binding("down", "app.focus_next", "Next", show=False, id="settings-next",
                tooltip="The next field (tab works too)."),
        Binding("up", "app.focus_previous", "Previous", show=False, id="settings-previous",
                tooltip="The previous field (shift+tab works too)."),
    ]

    def __init__(self, settings: Settings, config_path: Path, save: SaveSettings,
                 remote_models: Sequence[str] | None = None, remote_model: str | None = None,
                 in_use: Mapping[str, str] | None = None) -> None:
        """``in_use``: what a field's setting amounts to now, shown instead of its hint (the
        template: "in use: model: ChatML")."""
        super().__init__()
        self.in_use = dict(in_use or {})
        self.settings = settings
        self.config_path = config_path
        self.save = save
        self.remote_models = tuple(remote_models) if remote_models is not None else None
        """The server's models (None: a local model, no such field)."""
        self.names = [spec.name for spec in FIELDS] + ([REMOTE_MODEL] if self.remote_models is not None else [])
        self.initial = {spec.name: format_value(getattr(settings, spec.name)) for spec in FIELDS}
        self.initial[REMOTE_MODEL] = remote_model or ""
        """The text each field started with: a field still showing it is not changed."""
        self.refused: dict[str, str] = {}
        """The text of each field refused by the last save (its message stays until it is edited)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="settings"):
            with VerticalScroll(id="settings-form", can_focus=False):  # tab goes field to field
                for spec in FIELDS:
                    with Horizontal(classes="setting-row", id=f"row-{spec.name}"):
                        yield Label(spec.label, classes="setting-label")
                        yield Input(self.initial[spec.name], id=f"setting-{spec.name}", classes="setting-input",
                                    select_on_focus=False)
                        # what the setting amounts to now says more than its default (the column is narrow)
                        hint = f"in use: {self.in_use[spec.name]}" if spec.name in self.in_use else spec.hint
                        yield Static(hint, classes="setting-hint", markup=False)
                    yield Static("", id=f"error-{spec.name}", classes="setting-error", markup=False)
                if self.remote_models is not None:
                    with Horizontal(classes="setting-row", id=f"row-{REMOTE_MODEL}"):
                        yield Label("Remote model", classes="setting-label")
                        yield Input(self.initial[REMOTE_MODEL], id=f"setting-{REMOTE_MODEL}", classes="setting-input",
                                    select_on_focus=False)
                        listed = ", ".join(self.remote_models) or "none listed"
                        yield Static(f"server's: {listed}", classes="setting-hint", markup=False)
                    yield Static("", id=f"error-{REMOTE_MODEL}", classes="setting-error", markup=False)
            yield Static(
                f"Config file: {self.config_path}. The model file, context size and threads apply "
                "when codeup-tui restarts; the rest from the next answer. An empty field is the default.",
                id="settings-note",
                markup=False,
            )
        yield Footer()

    def on_mount(self) -> None:
        box = self.query_one("#settings", Vertical)
        box.border_title = "Settings"
        self.field_input(FIELDS[0].name).focus()

    def field_input(self, name: str) -> Input:
        return self.query_one(f"#setting-{name}", Input)

    def show_error(self, name: str, message: str | None) -> None:
        """The message under the field (None: clear it)."""
        error = self.query_one(f"#error-{name}", Static)
        error.update(f"✗ {message}" if message else "")
        error.set_class(bool(message), "-shown")
        self.query_one(f"#row-{name}", Horizontal).set_class(bool(message), "-invalid")

    @on(Input.Changed, ".setting-input")
    def _edited(self, event: Input.Changed) -> None:
        assert event.input.id is not None
        name = event.input.id.removeprefix("setting-")
        if name in self.refused and event.value != self.refused[name]:
            del self.refused[name]
            self.show_error(name, None)

    @on(Input.Submitted, ".setting-input")
    def _next_field(self) -> None:
        self.focus_next()

    def changes(self) -> tuple[dict[str, object], dict[str, str]]:
        """The changed fields' values (None: back to the default), and the refused ones' problems."""
        changes: dict[str, object] = {}
        errors: dict[str, str] = {}
        for spec in FIELDS:
            text = self.field_input(spec.name).value
            if text.strip() == self.initial[spec.name].strip():
                continue
            try:
                value = parse_text(spec.name, text)
                if spec.name == "model" and value is not None:
                    check_model_file(str(value))  # the file is kept as typed ("~/..." stays)
            except ValueError as exc:
                errors[spec.name] = str(exc)
                continue
            changes[spec.name] = value
        if self.remote_models is not None:
            text = self.field_input(REMOTE_MODEL).value.strip()
            if text != self.initial[REMOTE_MODEL].strip():
                if text and self.remote_models and text not in self.remote_models:
                    errors[REMOTE_MODEL] = f"the server has no model {text!r}; it has: {', '.join(self.remote_models)}"
                else:
                    changes[REMOTE_MODEL] = text or None
        return changes, errors

    def action_save(self) -> None:
        changes, errors = self.changes()
        self.refused = {name: self.field_input(name).value for name in errors}
        for name in self.names:
            self.show_error(name, errors.get(name))
        if errors:
            first = next(name for name in self.names if name in errors)
            self.field_input(first).focus()
            self.query_one(f"#row-{first}").scroll_visible()
            count = "1 value is" if len(errors) == 1 else f"{len(errors)} values are"
            self.notify(f"Not saved: {count} not valid (marked ✗).", severity="error")
            return
        if not changes:
            self.notify("Nothing changed.")
            self.dismiss(False)
            return
        try:
            note = self.save(changes)
        except ConfigError as exc:
            self.notify(str(exc), title="Not saved", severity="error", timeout=10)
            return
        self.notify(note, title="Settings saved")
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
