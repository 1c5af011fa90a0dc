"""F2: the settings form. Edit the fields, ctrl+s saves them to the config file, escape
closes without saving.

Only the fields the user changed are checked and written: an untouched field keeps the
config file's value (and a command-line flag's value is never written to the file). A
field made empty goes back to its default. Invalid values are refused, each with its
message under the field, and nothing is saved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static

from tui.config import FIELDS, ConfigError, Settings, check_model_file, format_value, parse_text

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
                 in_use: Mapping[str, str] | None = None) -> None:
        """``in_use``: what a field's setting amounts to now, shown instead of its hint (the
        template: "in use: model: ChatML")."""
        super().__init__()
        self.in_use = dict(in_use or {})
        self.settings = settings
        self.config_path = config_path
        self.save = save
        self.initial = {spec.name: format_value(getattr(settings, spec.name)) for spec in FIELDS}
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
        return changes, errors

    def action_save(self) -> None:
        changes, errors = self.changes()
        self.refused = {name: self.field_input(name).value for name in errors}
        for spec in FIELDS:
            self.show_error(spec.name, errors.get(spec.name))
        if errors:
            first = next(spec for spec in FIELDS if spec.name in errors)
            self.field_input(first.name).focus()
            self.query_one(f"#row-{first.name}").scroll_visible()
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
