"""F1: every key of the app, grouped by where it applies, with its binding id.

The keys shown are the ones in force: a config file's ``[keys]`` remapping included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

BindingGroups = Sequence[tuple[str, Iterable[BindingType]]]
KeysText = Callable[[Binding], str]
"""A binding's keys as shown: "^j, alt+⏎" (``CodeupApp.keys_text``, which knows the keymap)."""


def _bindings(items: Iterable[BindingType]) -> list[Binding]:
    return [item for item in items if isinstance(item, Binding)]


def help_markdown(groups: BindingGroups, keys_text: KeysText) -> str:
    """A Markdown table per group: keys, what they do, and the binding id (for a keymap)."""
    out = ["Remap a key by its id in the config file's [keys] table (see the README). "
           "Enter in the editor adds a new line.", ""]
    for title, items in groups:
        rows = [b for b in _bindings(items) if b.id]
        if not rows:
            continue
        out += [f"**{title}**", "", "| Key | Action | Id |", "|---|---|---|"]
        for binding in rows:
            keys = keys_text(binding).replace("|", "\\|")  # a "|" key must not end the cell
            what = binding.tooltip or binding.description
            out.append(f"| {keys} | {what} | `{binding.id}` |")
        out.append("")
    return "\n".join(out)


class HelpScreen(ModalScreen[None]):
    """The key reference, built from the Bindings themselves so it never goes stale."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,q", "dismiss(None)", "Close", id="help-close", tooltip="Close the help."),
    ]

    def __init__(self, groups: BindingGroups, keys_text: KeysText) -> None:
        super().__init__()
        self.groups = groups
        self.keys_text = keys_text

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(help_markdown(self.groups, self.keys_text), id="help-text")

    def on_mount(self) -> None:
        help_box = self.query_one("#help", VerticalScroll)
        help_box.border_title = "Keys (F1)"
        help_box.focus()
