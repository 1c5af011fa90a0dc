"""The project's saved conversations: Enter resumes one, d deletes one (after a yes)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ..history import BackgroundHistory, ConversationSummary
from ..visible import visible, visible_text


@dataclass(frozen=True)
class HistoryOutcome:
    """What the history screen did: the conversation to resume (or None), those deleted."""

    resume: str | None = None
    deleted: frozenset[str] = field(default_factory=frozenset)


def when(timestamp: float, now: float | None = None) -> str:
    """"14:03" today, "05-02 14:03" this year, else "2023-05-02"."""
    moment, today = time.localtime(timestamp), time.localtime(now)
    if moment[:3] == today[:3]:
        return time.strftime("%H:%M", moment)
    if moment.tm_year == today.tm_year:
        return time.strftime("%m-%d %H:%M", moment)
    return time.strftime("%Y-%m-%d", moment)


def summary_line(conversation: ConversationSummary, current: bool = False, now: float | None = None) -> Text:
    turns = f"{conversation.turns} turn" + ("" if conversation.turns == 1 else "s")
    line = Text.assemble(
        ("• " if current else "  ", "bold"),
        (f"{when(conversation.updated, now):>11}", "dim"),
        (f" {turns:>8}  ", "dim"),
        visible_text(conversation.title),  # the first instruction: it may hold pasted controls
    )
    line.no_wrap = True
    line.overflow = "ellipsis"
    return line


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; y or Enter says yes, n or escape no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "dismiss(True)", "Yes", id="confirm-yes", tooltip="Yes, do it."),
        Binding("n,escape", "dismiss(False)", "No", id="confirm-no", tooltip="No, leave it."),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(visible(self.question), id="confirm-question", markup=False)
            yield Static("y / Enter: yes · n / escape: no", id="confirm-keys", markup=False)


class HistoryScreen(ModalScreen[HistoryOutcome]):
    """This project's conversations, the most recent first (read in a thread worker)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,ctrl+l", "close", "Close", id="history-close", tooltip="Close the history."),
        Binding(
            "d,delete",
            "delete",
            "Delete",
            id="history-delete",
            tooltip="Delete the highlighted conversation (asks first).",
        ),
    ]

    def __init__(self, history: BackgroundHistory, project: str, current: str | None = None,
                 busy: str | None = None) -> None:
        """
        Args:
            history: The store (its calls run on its own thread).
            project: The project's key.
            current: The conversation on the main screen (marked in the list).
            busy: A conversation that cannot be deleted now (its answer is streaming).
        """
        super().__init__()
        self.history = history
        self.project = project
        self.current = current
        self.busy = busy
        self.conversations: list[ConversationSummary] | None = None
        """None until listed (and when history is off)."""
        self.deleted: set[str] = set()

    def compose(self) -> ComposeResult:
        with Vertical(id="history"):
            yield OptionList(id="history-list")
            yield Static("reading the history…", id="history-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one("#history", Vertical).border_title = "History of this project"
        self.query_one(OptionList).focus()
        self.list_conversations()

    @work(thread=True, exclusive=True, group="history-list", exit_on_error=False)
    def list_conversations(self) -> None:
        project = self.project
        conversations = self.history.submit(lambda store: store.list_conversations(project)).result()
        self.app.call_from_thread(self._show, conversations)

    def _show(self, conversations: list[ConversationSummary] | None, deleted: str | None = None) -> None:
        if deleted is not None:
            self.deleted.add(deleted)
        self.conversations = conversations
        options = self.query_one(OptionList)
        highlighted = options.highlighted
        options.clear_options()
        hint = self.query_one("#history-hint", Static)
        if conversations is None:
            hint.update(f"History is off: {self.history.failure or 'unavailable'}")
            return
        now = time.time()
        options.add_options(Option(summary_line(c, c.id == self.current, now), id=c.id) for c in conversations)
        if conversations:
            options.highlighted = min(highlighted or 0, len(conversations) - 1)
            count = f"{len(conversations)} conversation" + ("" if len(conversations) == 1 else "s")
            hint.update(f"{count} · Enter: resume · d: delete · escape: close")
        else:
            hint.update("No saved conversations for this project yet. escape: close")

    def _highlighted(self) -> ConversationSummary | None:
        options = self.query_one(OptionList)
        if not self.conversations or options.highlighted is None:
            return None
        return self.conversations[options.highlighted]

    @on(OptionList.OptionSelected, "#history-list")
    def resume(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(HistoryOutcome(resume=event.option.id, deleted=frozenset(self.deleted)))

    def action_close(self) -> None:
        self.dismiss(HistoryOutcome(deleted=frozenset(self.deleted)))

    def action_delete(self) -> None:
        conversation = self._highlighted()
        if conversation is None:
            self.app.bell()
            return
        if conversation.id == self.busy:
            self.notify("It is still answering: stop it first (escape on the main screen).", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.delete(conversation.id)

        turns = f"{conversation.turns} turn" + ("" if conversation.turns == 1 else "s")
        self.app.push_screen(ConfirmScreen(f"Delete “{conversation.title}” ({turns})?"), answered)

    @work(thread=True, exclusive=True, group="history-list", exit_on_error=False)
    def delete(self, conversation_id: str) -> None:
        project = self.project

        def delete_and_list(store) -> list[ConversationSummary]:
            store.delete_conversation(conversation_id)
            return store.list_conversations(project)

        conversations = self.history.submit(delete_and_list).result()
        self.app.call_from_thread(self._show, conversations, conversation_id if conversations is not None else None)
