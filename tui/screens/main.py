"""The main screen: files | conversation, the instruction editor, the status line.

It is a view over a ``tui.session.Session`` (the files chosen as context, the finished
turns, prepared prompts) and runs the generation. Slow things run in thread workers
(reading and counting files, counting the prompt, generating); they report back with the
messages in ``tui.messages``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, TextArea

from ..answer_stream import final_state, relay_answer
from ..context import ContextFiles
from ..edits import InsertError, UndoError
from ..edits.insert import InsertPlan
from ..edits.project_edits import ProjectEdits
from ..history import SavedFile, StoredTurn, default_history_path
from ..messages import (
    BudgetCounted,
    ExchangeOpened,
    FileCounted,
    FileRefused,
    FilesChangedOnDisk,
    FileWritten,
    GenerationFinished,
    GitStatesRead,
    GenerationProgress,
    ConversationLoaded,
    HistoryFailed,
    InsertUndone,
    Notice,
    PromptBuilt,
    SavedStateLoaded,
    SendRefused,
    SettingsApplied,
)
from ..model_loader import ModelStatus, describe_error
from ..project import FileRefusal, ProjectFiles, read_text_file
from ..project.git_status import git_states
from ..prompt import Budget, PastTurn, file_block, text_digest
from .file_finder import FileFinder, FinderResult
from .history import HistoryOutcome, HistoryScreen
from .insert_dialog import InsertDialog, InsertOutcome, InsertRequest
from .prompt_view import PromptView
from ..widgets import ContextList, Conversation, Exchange, FilePanel, InstructionEditor, StatusBar
from ..widgets.conversation import SelectedBlock
from ..session import PreparedPrompt, SendRequest, Services, Session

__all__ = ["MainScreen"]

BUDGET_DELAY = 0.3
"""The budget is recounted this long after the last edit."""
DRAFT_DELAY = 0.5
"""The instruction draft is saved this long after the last edit (and at exit)."""

class MainScreen(Screen[None]):
    """Lays the widgets out and runs the conversation."""

    AUTO_FOCUS = "InstructionEditor"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+j,alt+enter",
            "send",
            "Send",
            id="send",
            priority=True,
            tooltip="Send the instruction (with the files in the context) to the model.",
        ),
        Binding(
            "escape",
            "stop",
            "Stop",
            id="stop",
            tooltip="Stop the answer now (also while the prompt is processed); the text so far stays.",
        ),
        Binding(
            "ctrl+g",
            "regenerate",
            "Regenerate",
            id="regenerate",
            tooltip="Ask the last instruction again, replacing its answer.",
        ),
        Binding(
            "ctrl+o",
            "find_file",
            "Find file",
            id="find-file",
            tooltip="Find a file by name and add it to the context (or drop it).",
        ),
        Binding(
            "ctrl+r",
            "show_prompt",
            "Prompt",
            id="show-prompt",
            tooltip="Show the exact prompt the model would get now.",
        ),
        Binding(
            "ctrl+t",  # ctrl+y is the editor's redo; ctrl+b is tmux's prefix
            "copy_answer",
            "Copy",
            id="copy-answer",
            tooltip="Copy the last answer to the clipboard (OSC 52; works over SSH and in tmux).",
        ),
        Binding(
            "ctrl+n",
            "new_conversation",
            "New",
            id="new-conversation",
            show=False,
            tooltip="Start a new conversation (the context files stay selected).",
        ),
        Binding(
            "ctrl+l",  # ctrl+y is the editor's redo, ctrl+h a backspace in many terminals
            "show_history",
            "History",
            id="history",
            show=False,
            tooltip="List this project's saved conversations: Enter resumes one, d deletes one.",
        ),
        # Code blocks: alt+ keys work with the focus anywhere. A terminal sends alt+x as ESC x,
        # which Textual reads as alt+x carrying the character "x": without priority the
        # editor would type the x. ctrl+i is Tab and ctrl+z the editor's undo: neither is used.
        Binding(
            "alt+n",
            "next_block",
            "Next block",
            id="next-block",
            priority=True,
            show=False,
            tooltip="Select the next code block of the answers (the last one first).",
        ),
        Binding(
            "alt+p",
            "previous_block",
            "Previous block",
            id="previous-block",
            priority=True,
            show=False,
            tooltip="Select the previous code block of the answers.",
        ),
        Binding(
            "alt+i",
            "insert_block",
            "Insert block",
            id="insert-block",
            priority=True,
            show=False,
            tooltip="Insert the selected code block (the last one when none is) into a file: diff first, then y.",
        ),
        Binding(
            "alt+y",
            "copy_block",
            "Copy block",
            id="copy-block",
            priority=True,
            show=False,
            tooltip="Copy the selected code block (the last one when none is) to the clipboard (OSC 52).",
        ),
        Binding(
            "alt+u",
            "undo_insert",
            "Undo insert",
            id="undo-insert",
            priority=True,
            show=False,
            tooltip="Undo the last insert: the file back byte for byte (refused if it changed since).",
        ),
    ]

    def __init__(self, project_dir: Path, session: Session | None = None) -> None:
        super().__init__()
        self.project_dir = project_dir
        self.session = (session if session is not None
                        else Session(ProjectFiles(project_dir), history_path=default_history_path()))
        self.session.on_history_failed = self._history_failed
        self.project = self.session.project
        self.generating = False
        self._handle = None
        self._active: int | None = None  # the exchange being generated
        self._stop_requested = False
        self._ids = itertools.count(1)
        self._budget_timer: Timer | None = None
        self._pending_turn: PastTurn | None = None  # the turn being answered
        self._draft_timer: Timer | None = None
        self._editor_text = ""  # kept here: at unmount the editor may be gone already
        # Inserting code blocks (tui/edits): undo snapshots, what our own writes wrote.
        self.edits = ProjectEdits(project_dir, self._expect_write)

    @property
    def codeup(self) -> Services:
        """What the app provides (the backend, template, sampling, limits, model status)."""
        return cast(Services, self.app)

    # The session's state, under the names the screen has always had.
    @property
    def context(self) -> ContextFiles:
        return self.session.context

    @property
    def history(self) -> list[PastTurn]:
        return self.session.turns

    @property
    def budget(self) -> Budget | None:
        return self.session.budget

    @property
    def conversation_id(self) -> str | None:
        return self.session.conversation_id

    @property
    def _restored(self) -> bool:
        """The saved draft and selection are in."""
        return self.session.restored

    @property
    def generation_handle(self):
        """The running generation's handle, or None."""
        return self._handle

    def compose(self) -> ComposeResult:
        with Horizontal(id="workspace"):
            with Vertical(id="sidebar"):
                yield FilePanel(self.project_dir, id="files")
                yield ContextList(id="context")
            yield Conversation(self.project_dir, id="conversation")
        yield InstructionEditor(id="editor")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        # The app owns the model; this screen only displays its status.
        self.watch(self.app, "model_status", self._show_model_status)
        self.query_one(ContextList).show_files(self.context)
        self.load_saved_state()
        self.refresh_git()

    def on_unmount(self) -> None:
        # At exit: the draft as typed, and an answer still streaming as far as it got, then
        # wait (briefly) for the history thread to write them.
        self._save_draft_now()
        self.session.close()

    @property
    def model_ready(self) -> bool:
        return self.codeup.model_status.state == "ready"

    async def _show_model_status(self, status: ModelStatus) -> None:
        self.show_prompt_format()
        self.query_one(StatusBar).show_status(status)
        await self.query_one(Conversation).show_model_status(status)
        if status.state == "ready":
            for entry in self.context:
                if entry.tokens is None:
                    self.count_file(entry.path)
            self.request_budget()

    def show_prompt_format(self) -> None:
        """The status bar names the prompt format in use (it follows the model and F2)."""
        self.query_one(StatusBar).show_format(self.codeup.template_label)

    def on_settings_applied(self, message: SettingsApplied) -> None:
        self.show_prompt_format()
        self.request_budget()  # the template and the answer's room change the budget

    # -- files in the context -----------------------------------------------------------

    def on_file_panel_toggle_requested(self, message: FilePanel.ToggleRequested) -> None:
        self.toggle_file(self.project.relative(message.path), ignored=False)

    def toggle_file(self, rel: str, *, ignored: bool) -> None:
        """Add a file to the context, or drop it when it is there already."""
        if self.context.remove(rel):
            self._context_changed()
            return
        reason = self.query_one(FilePanel).refusals.get(self.project.resolve(rel))
        if reason is not None:
            self.notify(f"{rel}: {reason}; not added.", title="Cannot add file", severity="warning")
            return
        self.context.add(rel, ignored=ignored)
        if ignored:
            self.notify(f"{rel} is ignored by .gitignore; added because you asked.", severity="warning")
        self._context_changed()
        self.count_file(rel)

    def _context_changed(self) -> None:
        self.query_one(ContextList).show_files(self.context, self.session.sent_paths())
        self.query_one(FilePanel).show_selection(
            {self.project.resolve(entry.path): entry.tokens for entry in self.context}
        )
        self.request_budget()
        self._save_selection()

    @work(thread=True, group="tokens", exit_on_error=False)
    def count_file(self, rel: str) -> None:
        """Read a selected file and count its tokens (its block in the input, fence and all)."""
        try:
            text = read_text_file(self.project.resolve(rel), rel)
        except FileRefusal as refusal:
            self.post_message(FileRefused(rel, refusal.reason))
            return
        if not self.model_ready:
            return  # counted once the model is ready
        try:
            generator = self.codeup.backend.generator
            assert generator is not None  # the model is ready
            tokens = len(generator.tokenize_prompt(file_block(rel, text), add_bos=False))
        except Exception as exc:
            self.post_message(FileRefused(rel, f"cannot count its tokens: {describe_error(exc)}"))
            return
        self.post_message(FileCounted(rel, text, tokens))

    def on_file_counted(self, message: FileCounted) -> None:
        if self.context.set_counted(message.path, message.text, message.tokens):
            self._context_changed()

    def on_file_refused(self, message: FileRefused) -> None:
        self.context.remove(message.path)
        self._context_changed()
        self.notify(f"{message.path}: {message.reason}; not added.", title="Cannot add file", severity="warning")

    def action_find_file(self) -> None:
        def picked(result: FinderResult | None) -> None:
            if result is not None:
                self.toggle_file(result[0], ignored=result[1])

        self.app.push_screen(FileFinder(self.project, set(self.context.paths)), picked)

    # -- the budget ---------------------------------------------------------------------

    @on(TextArea.Changed, "#editor")
    def _instruction_changed(self, event: TextArea.Changed) -> None:
        self.request_budget()
        self._editor_text = event.text_area.text
        self._request_draft_save()

    def request_budget(self) -> None:
        """Recount the prompt as it stands, a moment after the last change."""
        if self._budget_timer is not None:
            self._budget_timer.stop()
        self._budget_timer = self.set_timer(BUDGET_DELAY, self._count_budget_now)

    def _count_budget_now(self) -> None:
        self._budget_timer = None
        files = self.session.budget_files()
        if not self.model_ready or files is None:
            return
        self.count_budget(self.query_one(InstructionEditor).text, files, tuple(self.history))

    @work(thread=True, exclusive=True, group="budget", exit_on_error=False)
    def count_budget(self, instruction: str, files: list[tuple[str, str]], history: tuple[PastTurn, ...]) -> None:
        try:
            prepared = self.measure(instruction, files, history)
        except Exception as exc:
            self.log.error("budget count failed", exc)
            return
        assert prepared.budget is not None and prepared.tokens is not None
        self.post_message(BudgetCounted(prepared.budget, prepared.tokens.estimated))

    def measure(
        self, instruction: str, files: list[tuple[str, str]], history: tuple[PastTurn, ...] | list[PastTurn]
    ) -> PreparedPrompt:
        """The prompt, rendered and tokenized once, and its budget (in a worker: it tokenizes
        what was not measured yet; a send right after the budget's count reuses it)."""
        app = self.codeup
        return self.session.prepare(app.template, instruction, files, history, counter=app.backend.generator,
                                    max_tokens=app.max_tokens)

    def on_budget_counted(self, message: BudgetCounted) -> None:
        self.session.budget = message.budget
        editor = self.query_one(InstructionEditor)
        # A server that cannot tokenize gives estimates (engine/remote.py): say so.
        estimated = "estimated: " if message.estimated else ""
        editor.border_subtitle = estimated + message.budget.line() + ("" if message.budget.fits else " · too long")
        editor.set_class(not message.budget.fits, "-over-budget")

    # -- sending and streaming --------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.generating
        if action == "regenerate":
            return bool(self.history) and not self.generating or None
        if action == "copy_answer":
            return bool(self.history) or None
        return True

    def action_copy_answer(self) -> None:
        if self.history:
            self.app.copy_to_clipboard(self.history[-1].response)

    def action_send(self) -> None:
        editor = self.query_one(InstructionEditor)
        instruction = editor.text.strip()
        if not instruction:
            self.notify("Write an instruction first.", severity="warning")
            return
        self._send(self.session.send_request(instruction))
        missing = [entry.path for entry in self.context if entry.missing]
        if missing:
            self.notify(f"Left out (deleted on disk): {', '.join(missing)}.", title="Context", severity="warning")

    def action_regenerate(self) -> None:
        if self.generating:
            return
        taken = self.session.regenerate()
        if taken is None:
            return
        request, last = taken
        exchanges = self.query_one(Conversation).exchanges
        if exchanges:
            exchanges[-1].remove()
        self._send(request, redo=last)

    def _send(self, request: SendRequest, redo: PastTurn | None = None) -> None:
        if not self.model_ready:
            status = self.codeup.model_status
            why = status.text if status.state == "error" else "the model is still loading"
            self.notify(f"Not sent: {why}.", severity="warning")
            if redo is not None:
                self.session.restore_turn(redo)
            return
        if self.generating:
            self.notify("Still answering: escape stops it.", severity="warning")
            return
        self.generating = True
        self._stop_requested = False
        self.refresh_bindings()
        self.generate(request)

    @work(thread=True, exclusive=True, group="generate", exit_on_error=False)
    def generate(self, request: SendRequest) -> None:
        """Check the prompt fits, open an exchange, then stream the answer into it."""
        exchange_id: int | None = None
        try:
            files = [(rel, read_text_file(self.project.resolve(rel), rel)) for rel in request.paths]
            prepared = self.measure(request.instruction, files, request.history)
            budget, tokens = prepared.budget, prepared.tokens
            assert budget is not None and tokens is not None
            if not budget.fits:
                self.post_message(SendRefused(budget.refusal()))
                return
            if self._stop_requested:
                self.post_message(SendRefused("Stopped before sending."))
                return
            turn = prepared.turn()
            exchange_id = next(self._ids)
            self.post_message(ExchangeOpened(exchange_id, request, turn, dict(files)))
            handle = prepared.start(self.codeup)
        except FileRefusal as refusal:
            self.post_message(SendRefused(f"Not sent: {refusal}."))
            return
        except Exception as exc:  # a bad prompt, an engine error: shown, the app goes on
            if exchange_id is None:
                self.post_message(SendRefused(f"Not sent: {describe_error(exc)}"))
            else:
                self.post_message(GenerationFinished(exchange_id, "", "error", describe_error(exc), None))
            return
        self._handle = handle
        if self._stop_requested:
            handle.cancel()
        relay_answer(handle, exchange_id, self.post_message)

    async def on_exchange_opened(self, message: ExchangeOpened) -> None:
        exchange_id, request, turn, files = message.exchange_id, message.request, message.turn, message.files
        self._active = exchange_id
        self._pending_turn = turn
        files = files or {}
        # Every file the prompt was built from, with its digest: an insert checks the file
        # on disk still holds that text.
        exchange = Exchange(exchange_id, request.instruction, tuple(path for path, _ in turn.files),
                            file_digests={path: text_digest(text) for path, text in files.items()},
                            file_texts=files)
        self.query_one(Conversation).clear_block_selection()  # a new answer: alt+i means its blocks from now on
        if files:
            self.context.clear_changed(files)  # sent as they are now: no "changed" badge
            self._context_changed()
        await self.query_one(Conversation).add_exchange(exchange)
        self._begin_saved_turn(exchange, request, turn)
        editor = self.query_one(InstructionEditor)
        if request.clear_editor:
            editor.clear()
            self._editor_text = ""
            self._save_draft_now()  # sent: the draft is gone at once, not after the delay
        editor.remember(request.instruction)

    def on_send_refused(self, message: SendRefused) -> None:
        self.generating = False
        self.refresh_bindings()
        self.notify(message.reason, title="Not sent", severity="error", timeout=10)

    async def on_generation_progress(self, message: GenerationProgress) -> None:
        exchange = self.query_one(Conversation).get_exchange(message.exchange_id)
        if exchange is None:
            return
        if exchange.state == "generating":
            exchange.set_state("generating", "answering…" if message.text or exchange.answer else "processing the prompt…")
        await exchange.append(message.text)
        self.query_one(StatusBar).show_timings(message.timings, generating=True)
        self.session.answer_shown(message.exchange_id, exchange.answer)

    async def on_generation_finished(self, message: GenerationFinished) -> None:
        self.generating = False
        self._handle = None
        self._active = None
        self.refresh_bindings()
        exchange = self.query_one(Conversation).get_exchange(message.exchange_id)
        turn, self._pending_turn = self._pending_turn, None
        if exchange is not None:
            # The answer on screen is what the model wrote, every piece of it.
            if message.text.startswith(exchange.answer) and len(message.text) > len(exchange.answer):
                await exchange.append(message.text[len(exchange.answer):])
            await exchange.flush()
            exchange.set_state(*final_state(message))
        if self.session.saving_exchange == message.exchange_id:
            state, note = final_state(message)
            self.session.finish_turn(exchange.answer if exchange is not None else message.text, state, note,
                                     message.timings)
        if turn is not None and message.stop_reason != "error":
            self.session.answered(turn, message.text)
        elif message.error:
            self.notify(message.error, title="Generation failed", severity="error", timeout=10)
        if message.timings is not None:
            status = self.query_one(StatusBar)
            status.show_timings(message.timings, generating=False)
            status.show_context(message.timings.prompt_tokens + message.timings.generated_tokens)
        self._context_changed()

    def action_stop(self) -> None:
        """Stop at once: the exchange says so now; the engine ends within one token."""
        if not self.generating:
            return
        self._stop_requested = True
        handle = self._handle
        if handle is not None:
            handle.cancel()
        if self._active is not None:
            exchange = self.query_one(Conversation).get_exchange(self._active)
            if exchange is not None and exchange.state == "generating":
                exchange.set_state("stopped", "stopped")

    async def action_new_conversation(self) -> None:
        if self.generating:
            self.notify("Still answering: escape stops it first.", severity="warning")
            return
        self.session.new_conversation()
        await self.query_one(Conversation).clear_exchanges()
        self.query_one(StatusBar).show_context(0)
        self._context_changed()
        self.notify("New conversation.")

    # -- the prompt view -------------------------------------------------------------------

    def action_show_prompt(self) -> None:
        self.build_prompt_view(self.query_one(InstructionEditor).text.strip(), tuple(self.context.present_paths),
                               tuple(self.history))

    @work(thread=True, exclusive=True, group="prompt-view", exit_on_error=False)
    def build_prompt_view(self, instruction: str, paths: tuple[str, ...], history: tuple[PastTurn, ...]) -> None:
        try:
            files = [(rel, read_text_file(self.project.resolve(rel), rel)) for rel in paths]
            if self.model_ready:
                prepared = self.measure(instruction, files, history)
                prompt, budget = prepared.prompt, prepared.budget
                assert budget is not None
                summary = (f"{budget.prompt_tokens:,} tokens of {budget.n_ctx:,}; {budget.reserve:,} kept for "
                           f"the answer" + ("" if budget.fits else f"; {budget.overflow:,} too many"))
            else:
                prompt = self.session.prepare(self.codeup.template, instruction, files, history).prompt
                summary = "token count: the model is not loaded yet"
        except Exception as exc:
            self.post_message(Notice(describe_error(exc), title="Cannot build the prompt", severity="error"))
            return
        template = self.codeup.template_label
        self.post_message(PromptBuilt(prompt, f"{template} · {summary}"))

    def on_prompt_built(self, message: PromptBuilt) -> None:
        self.app.push_screen(PromptView(message.prompt, message.title))

    def on_notice(self, message: Notice) -> None:
        self.notify(message.text, title=message.title, severity=message.severity,  # type: ignore[arg-type]
                    timeout=message.timeout)

    # -- code blocks: select, copy, insert, undo (tui/edits) ----------------------------------

    def _block_keys_hint(self) -> str:
        ids = {b.id: b for b in self.BINDINGS if isinstance(b, Binding)}
        keys = self.codeup.keys_text
        return (f"{keys(ids['insert-block'])}: insert · {keys(ids['copy-block'])}: copy · "
                f"{keys(ids['next-block'])}/{keys(ids['previous-block'])}: next/previous")

    def select_block(self, step: int) -> SelectedBlock | None:
        """Move the selection ``step`` blocks on (0: keep it, or take the last block)."""
        selected = self.query_one(Conversation).select_block(step, self._block_keys_hint())
        if selected is None:
            self.notify("No code block in the answers yet.", severity="warning")
        return selected

    def action_next_block(self) -> None:
        self.select_block(1)

    def action_previous_block(self) -> None:
        self.select_block(-1)

    def _selected_or_last(self) -> SelectedBlock | None:
        return self.query_one(Conversation).selected_block() or self.select_block(0)

    def action_copy_block(self) -> None:
        selected = self._selected_or_last()
        if selected is not None:
            self.app.copy_to_clipboard(selected.block.text)

    def action_insert_block(self) -> None:
        selected = self._selected_or_last()
        if selected is None:
            return
        exchange = selected.exchange
        node = self.query_one(FilePanel).cursor_node
        cursor_file = (self.project.relative(node.data.path)
                       if node is not None and node.data is not None and not node.allow_expand else None)
        request = InsertRequest(
            block=selected.block,
            position=f"{selected.index + 1}/{selected.count}",
            project_dir=self.project_dir,
            targets=self.edits.targets(selected.block.path_hint, exchange.file_digests,
                                       self.context.present_paths, cursor_file),
            prompt_digests=dict(exchange.file_digests),
            prompt_texts=dict(exchange.file_texts),
            own_digests=self.edits.own_digests(),
        )
        exchange_id = exchange.exchange_id

        def answered(outcome: InsertOutcome | None) -> None:
            if outcome is None:
                return
            if outcome.rerun:
                self._rerun(exchange_id)
            elif outcome.plan is not None:
                self.write_insert(outcome.plan)

        self.app.push_screen(InsertDialog(request), answered)

    def _rerun(self, exchange_id: int) -> None:
        """Ask an exchange's instruction again (a new turn) on the files as they are now."""
        exchange = self.query_one(Conversation).get_exchange(exchange_id)
        if exchange is None:
            return
        self._send(self.session.send_request(exchange.instruction, clear_editor=False))

    def _expect_write(self, path: Path, data: bytes | None) -> None:
        watcher = getattr(self.codeup, "watcher", None)
        if watcher is not None:
            watcher.expect_write(path, data)

    @work(thread=True, group="edits", exit_on_error=False)
    def write_insert(self, plan: InsertPlan) -> None:
        """Write a confirmed insert (snapshot first); a refusal is told, the file untouched."""
        try:
            warnings = self.edits.write(plan)
        except InsertError as exc:
            self.post_message(Notice(str(exc), title="Not inserted", severity="error", timeout=10))
            return
        for warning in warnings:  # written (and undoable): only its durability is in doubt
            self.post_message(Notice(warning, title="Inserted, with a warning", severity="warning", timeout=10))
        self.post_message(FileWritten(plan.rel, plan.new_text, f"Wrote {plan.rel} ({plan.summary})."))

    def on_file_written(self, message: FileWritten) -> None:
        if message.path in self.context:
            self.count_file(message.path)  # the next prompt has the new text; no "changed" badge: it is ours
        undo = next(b for b in self.BINDINGS if isinstance(b, Binding) and b.id == "undo-insert")
        self.notify(f"{message.note} {self.codeup.keys_text(undo)}: undo.", title="Inserted")
        self.refresh_git()

    @work(thread=True, group="edits", exit_on_error=False)
    def action_undo_insert(self) -> None:
        try:
            undone = self.edits.undo_last()
        except (UndoError, OSError) as exc:
            self.post_message(Notice(str(exc), title="Not undone", severity="error", timeout=10))
            return
        if undone is None:
            self.post_message(Notice("Nothing to undo.", severity="warning"))
        else:
            self.post_message(InsertUndone(*undone))

    def on_insert_undone(self, message: InsertUndone) -> None:
        rel, text = message.path, message.text
        if rel in self.context:
            if text is None:
                self.context.mark_missing(rel)
                self._context_changed()
            else:
                self.count_file(rel)
        self.notify(f"{rel} is back as it was." if text is not None else f"{rel} removed (the insert created it).",
                    title="Undone")
        self.refresh_git()

    # -- the project on disk: watch events and git state ----------------------------------------

    def on_files_changed_on_disk(self, message: FilesChangedOnDisk) -> None:
        """A batch from the project watcher (``tui.watch.ChangeBatch``): context files changed
        on disk are re-read and recounted (badge "changed"), deleted ones marked missing,
        renamed ones followed; the tree and the git marks refresh. An answer streaming now is
        not touched: the next prompt reads the files again."""
        batch = message.batch
        changes = self.session.disk_changed(batch.moved, batch.deleted, batch.changed)
        for rel in changes.recount:
            self.count_file(rel)
        if changes.renamed:
            self.notify(f"Renamed on disk: {', '.join(changes.renamed)}; the context follows.", title="Context")
        if changes.gone:
            self.notify(f"Deleted on disk: {', '.join(changes.gone)}; left out of the next prompt.", title="Context",
                        severity="warning")
        if batch.ignore_changed:
            self.project.ignore.clear()
        # Entries that .gitignore hides (build output, caches) never show: no reload for them.
        if batch.ignore_changed or (batch.tree_changed and any(not self.project.is_ignored(path)
                                                               for path in batch.entries)):
            for panel in self.query(FilePanel):  # none while the app tears the screen down at exit
                panel.reload_for_changes(batch.ignore_changed)
        if changes.touched:
            self._context_changed()
        self.refresh_git()

    @work(thread=True, exclusive=True, group="git", exit_on_error=False)
    def refresh_git(self) -> None:
        """``git status`` (read-only) for the tree's M/U marks."""
        self.post_message(GitStatesRead(git_states(self.project_dir)))

    def on_git_states_read(self, message: GitStatesRead) -> None:
        self.query_one(FilePanel).show_git(message.states)

    # -- saved history: turns, the draft, the selection (tui/history.py) ---------------------

    def _history_failed(self, reason: str) -> None:
        # Called on the history thread: post, never wait on the UI (it may be waiting on us).
        self.post_message(HistoryFailed(reason))

    def on_history_failed(self, message: HistoryFailed) -> None:
        self.notify(f"History is off for this session: {message.reason}", title="History not saved",
                    severity="warning", timeout=10)

    def _begin_saved_turn(self, exchange: Exchange, request: SendRequest, turn: PastTurn) -> None:
        summary = self.codeup.model_status.summary
        self.session.begin_turn(exchange.exchange_id, request, turn,
                                model=summary.name if summary is not None else None,
                                template=getattr(self.codeup.template, "name", None))

    def _request_draft_save(self) -> None:
        if self._draft_timer is not None:
            self._draft_timer.stop()
        self._draft_timer = self.set_timer(DRAFT_DELAY, self._save_draft_now)

    def _save_draft_now(self) -> None:
        if self._draft_timer is not None:
            self._draft_timer.stop()
            self._draft_timer = None
        self.session.save_draft(self._editor_text)

    def _save_selection(self) -> None:
        self.session.save_selection()

    @work(thread=True, exclusive=True, group="history-start", exit_on_error=False)
    def load_saved_state(self) -> None:
        """At start: this project's draft, context selection and instructions to recall."""
        self.post_message(SavedStateLoaded(*self.session.load_saved_state()))

    def on_saved_state_loaded(self, message: SavedStateLoaded) -> None:
        self._restore_saved_state(message.draft, message.kept, message.dropped, message.instructions)

    def _restore_saved_state(self, draft: str, kept: list[SavedFile], dropped: list[tuple[str, str]],
                             instructions: list[str]) -> None:
        editor = self.query_one(InstructionEditor)
        editor.add_recall_entries(instructions)
        if draft and not editor.text:  # never over what was typed meanwhile
            editor.load_text(draft)
            editor.move_cursor(editor.document.end)
            self._editor_text = draft
        self.session.draft_restored(draft)
        self._save_draft_now()  # whatever was typed before the saved state came in
        self._select_saved_files(kept, dropped, replace=False)

    def _select_saved_files(self, kept: list[SavedFile], dropped: list[tuple[str, str]], *, replace: bool) -> None:
        for path in self.session.select_saved(kept, replace=replace):
            self.count_file(path)
        if dropped:
            names = ", ".join(f"{path} ({reason})" for path, reason in dropped)
            self.notify(f"Left out of the context: {names}.", title="Context", severity="warning", timeout=10)
        self._context_changed()

    def action_show_history(self) -> None:
        busy = self.conversation_id if self.generating else None
        history = HistoryScreen(self.session.history, self.session.project_key, self.conversation_id, busy)
        self.app.push_screen(history, self._history_closed)

    async def _history_closed(self, outcome: HistoryOutcome | None) -> None:
        if outcome is None:
            return
        if outcome.resume is not None:
            if self.generating:
                self.notify("Still answering: escape stops it first.", severity="warning")
                return
            self.resume_conversation(outcome.resume)
        elif self.conversation_id is not None and self.conversation_id in outcome.deleted:
            # Its turns are gone: going on with it would save a conversation with a hole.
            await self.action_new_conversation()

    @work(thread=True, exclusive=True, group="history-resume", exit_on_error=False)
    def resume_conversation(self, conversation_id: str) -> None:
        """Read a saved conversation and check its files (in a thread), then show it."""
        loaded = self.session.load_conversation(conversation_id)
        if loaded is None:
            self.post_message(Notice("That conversation is not saved any more.", severity="warning"))
            return
        self.post_message(ConversationLoaded(conversation_id, *loaded))

    async def on_conversation_loaded(self, message: ConversationLoaded) -> None:
        await self._show_resumed(message.conversation_id, message.turns, message.kept, message.dropped)

    async def _show_resumed(self, conversation_id: str, turns: list[StoredTurn], kept: list[SavedFile],
                            dropped: list[tuple[str, str]]) -> None:
        if self.generating:
            self.notify("Still answering: escape stops it first.", severity="warning")
            return
        await self.query_one(Conversation).show_exchanges([Exchange.resumed(next(self._ids), turn) for turn in turns])
        # An answer that failed is shown but not part of what the model is told next.
        self.session.resume(conversation_id, turns)
        self.query_one(StatusBar).show_context(0)
        self._select_saved_files(kept, dropped, replace=True)
        self.refresh_bindings()
        n = len(turns)
        self.notify(f"Resumed: {n} turn{'' if n == 1 else 's'}; the next instruction follows on.")

