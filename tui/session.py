"""The conversation as plain data: what the main screen shows, without Textual.

A ``Session`` holds the files chosen as context (with their texts, token counts and
digests), the finished turns, the conversation's id in the saved history, and the last
budget. It prepares prompts: a prompt is rendered and tokenized once, and the budget and
the send use those same token ids (``PreparedPrompt``; a send that follows the budget of the
same instruction, files and turns reuses the budget's prompt and tokenizes nothing). The
screen (``tui.screens.main``) is a view over it: it runs the slow calls in workers and
shows what they report.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from codeup_tui.engine.generation import PromptTokens
from .backend import Backend
from .context import ContextFiles
from .history import BackgroundHistory, SavedFile, StoredTurn, TurnStart, project_key
from .project import ProjectFiles, check_file
from .prompt import (
    Budget,
    PastTurn,
    already_sent,
    answer_reserve,
    conversation_messages,
    file_block,
    files_to_send,
    render_prompt,
    text_digest,
)


class TokenCounter(Protocol):
    """What the session needs of a generator (``engine.generation.TextGenerator``) to
    measure a prompt."""

    @property
    def n_ctx(self) -> int: ...

    def tokenize_prompt(self, text: str, *, add_bos: bool | None = ..., parse_special: bool = ...
                        ) -> PromptTokens: ...


class Services(Protocol):
    """What the main screen uses of the app: the backend, the prompt template, the sampling
    settings and limits, the model's status, the key names and the project watcher. The app
    provides them; the screen reads them through this, never through the app's class."""

    backend: Backend
    template: Any
    sampling: Any
    max_tokens: int
    settings: Any
    model_status: Any
    watcher: Any

    @property
    def template_label(self) -> str: ...

    def keys_text(self, binding: Any) -> str: ...


@dataclass(frozen=True)
class SendRequest:
    """What a send takes from the screen (a snapshot: the worker never reads widgets)."""

    instruction: str
    paths: tuple[str, ...]
    history: tuple[PastTurn, ...]
    clear_editor: bool = True


@dataclass(frozen=True)
class PreparedPrompt:
    """A prompt rendered once: the text the model gets, and its budget measured on that text."""

    instruction: str
    history: tuple[PastTurn, ...]
    prompt: str
    input_text: str
    """The user's message of this turn as rendered (instruction and new file blocks)."""
    sending: tuple[tuple[str, str], ...]
    """(path, text) of the files whose block is in this turn's input."""
    budget: Budget | None
    """None when no tokenizer was given (the model is not loaded yet)."""
    tokens: PromptTokens | None = None
    """``prompt`` tokenized (what the budget counted, and what the send gives the model)."""

    def turn(self, answer: str = "") -> PastTurn:
        """This turn as the conversation keeps it once answered."""
        return PastTurn(self.instruction, self.input_text, answer,
                        tuple((path, text_digest(text)) for path, text in self.sending))

    def messages(self, template: Any) -> list[dict[str, str]]:
        """The conversation as chat messages (a server's chat fallback takes these, not the prompt)."""
        return conversation_messages(template, list(self.history), self.instruction, self.input_text)

    def start(self, services: Services) -> Any:
        """Start the answer with the app's settings (template, sampling, limit, drafting) and
        return its ``engine.generation.GenerationHandle``. The model gets the ids the budget
        counted, not the text tokenized again; a server's chat fallback gets the conversation
        as messages instead. Needs a measured prompt and a loaded model."""
        generator = services.backend.generator
        if self.tokens is None or generator is None:
            raise RuntimeError("the prompt is not measured or the model is not loaded")
        template = services.template
        return generator.start(
            self.tokens,
            params=services.sampling,
            max_tokens=services.max_tokens,
            draft=services.settings.draft_params(),
            stop=template.stop,
            add_bos=template.add_bos,
            parse_special=template.parse_special,
            messages=self.messages(template),
        )


def prepare_prompt(
    template: Any,
    history: Sequence[PastTurn],
    instruction: str,
    files: Sequence[tuple[str, str]],
    *,
    counter: TokenCounter | None = None,
    max_tokens: int = -1,
    known_tokens: dict[str, tuple[str, int]] | None = None,
) -> PreparedPrompt:
    """Render the prompt for ``instruction`` after ``history`` with ``files`` (path, text) as
    context, and, given a ``counter``, measure it (it tokenizes: call it in a worker).

    Files the conversation already holds unchanged are not sent again. ``known_tokens``
    maps a path to (text, tokens) already counted for that text: those are not recounted.
    """
    history = tuple(history)
    sending = tuple(files_to_send(list(history), list(files)))
    prompt, input_text = render_prompt(template, list(history), instruction, list(sending))
    budget = tokens = None
    if counter is not None:
        tokens = counter.tokenize_prompt(prompt, add_bos=template.add_bos, parse_special=template.parse_special)
        known = known_tokens or {}
        file_tokens = {}
        for path, text in sending:
            cached = known.get(path)
            if cached is not None and cached[0] == text:
                file_tokens[path] = cached[1]
            else:
                file_tokens[path] = len(counter.tokenize_prompt(file_block(path, text), add_bos=False))
        n_ctx = counter.n_ctx
        budget = Budget(len(tokens), n_ctx, answer_reserve(n_ctx, max_tokens), file_tokens, bool(history))
    return PreparedPrompt(instruction, history, prompt, input_text, sending, budget, tokens)


def _same_inputs(a: tuple, b: tuple) -> bool:
    """The same template and tokenizer (the objects themselves) and equal texts and settings."""
    return a[0] is b[0] and a[1] is b[1] and a[2:] == b[2:]


ANSWER_SAVE_SECONDS = 0.25
"""A streaming answer is saved to history at most this often (and when it ends): a crash
loses at most this much of what was shown."""


@dataclass(frozen=True)
class DiskChanges:
    """What a batch of changes on disk did to the context."""

    renamed: tuple[str, ...] = ()
    """"old → new" of each context file renamed (the context follows it)."""
    gone: tuple[str, ...] = ()
    """Context files deleted (left out of the next prompt)."""
    recount: tuple[str, ...] = ()
    """Context files to read and count again."""
    touched: bool = False
    """The context changed."""


class Session:
    """One project's conversation: context files, turns, the saved conversation's id, the
    budget, and what of them is saved (``tui.history``; its calls run on its own thread)."""

    def __init__(self, project: ProjectFiles, history_path: Path | str | None = None) -> None:
        """``history_path``: the history database (None: nothing is saved or read)."""
        self.project = project
        self.project_key = project_key(project.root)
        self.on_history_failed: Callable[[str], None] = lambda reason: None
        """Called (on the history thread) when saving fails; history is then off."""
        self.history: BackgroundHistory | None = (
            None if history_path is None else BackgroundHistory(history_path, self._history_failed))
        self._saving: tuple[int, str, int] | None = None  # (exchange id, conversation id, turn index)
        self._answer = ""  # the streaming answer as far as it was shown
        self._answer_saved_at = 0.0
        self._saved_draft = ""
        self._saved_selection: tuple[SavedFile, ...] = ()
        self.restored = False
        """The saved draft and selection are in: only from then on are they saved (before,
        saving would overwrite them)."""
        self.context = ContextFiles()
        self.turns: list[PastTurn] = []
        """The finished turns the model is told next time (failed answers are not)."""
        self.conversation_id: str | None = None
        """The saved conversation the next turn goes to; None: a new one starts with it."""
        self.budget: Budget | None = None
        """The last budget counted for the instruction being written."""
        self._last_prepared: tuple[tuple, PreparedPrompt] | None = None
        """(what it was made of, the prompt) of the last ``prepare``: the same asked again
        (the send after the budget) is not rendered nor tokenized again."""

    # -- context files ----------------------------------------------------------------

    def sent_paths(self) -> set[str]:
        """Context files the conversation already holds as they are now (their digests match):
        the next prompt does not send them again."""
        return {path for path, digest in already_sent(self.turns)
                if (entry := self.context.get(path)) is not None and entry.text is not None
                and text_digest(entry.text) == digest}

    def budget_files(self) -> list[tuple[str, str]] | None:
        """(path, text) of the context files present on disk, or None while one is not yet read."""
        if not self.context.all_counted:
            return None
        return [(entry.path, entry.text or "") for entry in self.context if not entry.missing]

    def known_tokens(self) -> dict[str, tuple[str, int]]:
        """(text, tokens) of each counted context file: a prompt does not count them again."""
        return {entry.path: (entry.text, entry.tokens) for entry in self.context
                if entry.text is not None and entry.tokens is not None}

    def relative(self, path: Path) -> str:
        """A watcher's path as the context names it."""
        try:
            return path.relative_to(self.project.root.resolve()).as_posix()
        except ValueError:
            return self.project.relative(path)

    def disk_changed(self, moved: Iterable[tuple[Path, Path]], deleted: Iterable[Path],
                     changed: Iterable[Path]) -> DiskChanges:
        """Follow changes on disk: renamed context files are renamed, deleted ones marked
        missing, changed ones marked changed (badge "changed"); the renamed and changed need
        recounting."""
        renamed, gone, recount = [], [], []
        for old, new in moved:
            old_rel, new_rel = self.relative(old), self.relative(new)
            if old_rel in self.context and self.context.rename(old_rel, new_rel):
                renamed.append(f"{old_rel} → {new_rel}")
                recount.append(new_rel)
        for path in deleted:
            rel = self.relative(path)
            entry = self.context.get(rel)
            if entry is not None and not entry.missing:
                self.context.mark_missing(rel)
                gone.append(rel)
        touched = bool(renamed or gone)
        for path in changed:
            rel = self.relative(path)
            if rel in self.context:
                self.context.mark_changed(rel)
                recount.append(rel)
                touched = True
        return DiskChanges(tuple(renamed), tuple(gone), tuple(recount), touched)

    def check_files(self, files: Iterable[SavedFile], *, allow_ignored: bool = False
                    ) -> tuple[list[SavedFile], list[tuple[str, str]]]:
        """(the files that can still be context, (path, why not) for the others); it reads the disk.

        A file hidden by .gitignore is kept only when it was added explicitly (or, with
        ``allow_ignored``, when a resumed conversation was sent with it), marked ignored.
        """
        kept: list[SavedFile] = []
        dropped: list[tuple[str, str]] = []
        for saved in files:
            path = self.project.resolve(saved.path)
            if not path.exists():
                dropped.append((saved.path, "no longer exists"))
                continue
            reason = check_file(path)
            ignored = saved.ignored
            if reason is None and not ignored and self.project.is_ignored(path):
                if allow_ignored:
                    ignored = True
                else:
                    reason = "now ignored by .gitignore"
            if reason is not None:
                dropped.append((saved.path, reason))
            else:
                kept.append(SavedFile(saved.path, ignored))
        return kept, dropped

    def selection(self) -> tuple[SavedFile, ...]:
        """The context selection as history saves it."""
        return tuple(SavedFile(entry.path, entry.ignored) for entry in self.context)

    def select_saved(self, kept: Iterable[SavedFile], *, replace: bool) -> list[str]:
        """Put saved files in the context (``replace``: instead of the current ones); returns
        the paths added, which still need reading and counting."""
        if replace:
            self.context.clear()
        added = []
        for saved in kept:
            if saved.path not in self.context:
                self.context.add(saved.path, ignored=saved.ignored)
                added.append(saved.path)
        return added

    # -- prompts ------------------------------------------------------------------------

    def prepare(self, template: Any, instruction: str, files: Sequence[tuple[str, str]],
                history: Sequence[PastTurn] | None = None, *, counter: TokenCounter | None = None,
                max_tokens: int = -1) -> PreparedPrompt:
        """The prompt for ``instruction`` (after ``history``, default: this conversation) and,
        given a ``counter``, its budget; counts already made for the context files are reused,
        and so is the whole prompt when the last one was made of the same (the budget's, at
        the send: its token ids are the ones sent). Called from workers: the last prompt is
        one attribute, read and replaced whole."""
        history = tuple(self.turns if history is None else history)
        key = (template, counter, instruction, tuple(files), history, max_tokens,
               counter.n_ctx if counter is not None else 0)
        last = self._last_prepared
        if last is not None and _same_inputs(last[0], key):
            return last[1]
        prepared = prepare_prompt(template, history, instruction, files, counter=counter, max_tokens=max_tokens,
                                  known_tokens=self.known_tokens())
        self._last_prepared = (key, prepared)
        return prepared

    def send_request(self, instruction: str, *, clear_editor: bool = True) -> SendRequest:
        """A new turn for ``instruction`` with the context files present on disk."""
        return SendRequest(instruction, tuple(self.context.present_paths), tuple(self.turns), clear_editor)

    # -- turns --------------------------------------------------------------------------

    def regenerate(self) -> tuple[SendRequest, PastTurn] | None:
        """Take the last turn back to ask it again: (its request, the turn, to put back with
        ``restore_turn`` if the send is refused); None when there is no turn."""
        if not self.turns:
            return None
        last = self.turns.pop()
        paths = tuple(path for path, _digest in last.files)
        return SendRequest(last.instruction, paths, tuple(self.turns), clear_editor=False), last

    def restore_turn(self, turn: PastTurn) -> None:
        self.turns.append(turn)

    def answered(self, turn: PastTurn, answer: str) -> None:
        """A turn's answer is complete (or stopped): the model is told it next time."""
        self.turns.append(PastTurn(turn.instruction, turn.input_text, answer, turn.files))

    def new_conversation(self) -> None:
        self.turns.clear()
        self.conversation_id = None

    def resume(self, conversation_id: str, turns: Sequence[StoredTurn]) -> None:
        """Go on with a saved conversation; an answer that failed is not part of what the
        model is told next."""
        self.turns = [PastTurn(turn.instruction, turn.input_text, turn.answer, turn.files)
                      for turn in turns if turn.state != "error"]
        self.conversation_id = conversation_id


    # -- saved history ------------------------------------------------------------------

    def _history_failed(self, reason: str) -> None:
        self.on_history_failed(reason)

    def _submit(self, call: Callable[[Any], Any]) -> Any:
        """Run ``call(store)`` on the history thread; its future, or None with no history."""
        return None if self.history is None else self.history.submit(call)

    def _wait(self, call: Callable[[Any], Any]) -> Any:
        """``call(store)``'s result (None with no history or when it failed): blocks, in a worker."""
        future = self._submit(call)
        return None if future is None else future.result()

    def close(self) -> None:
        """Save the answer still streaming as far as it got, then wait (briefly) for the writes."""
        self.finish_turn(self._answer, "stopped", "stopped: the app was closed", None)
        if self.history is not None:
            self.history.close()

    @property
    def saving_exchange(self) -> int | None:
        """The exchange whose answer is being saved as it streams."""
        return None if self._saving is None else self._saving[0]

    def begin_turn(self, exchange_id: int, request: SendRequest, turn: PastTurn, *, model: str | None,
                   template: str | None) -> None:
        """Save a turn being sent (a new conversation starts with its first turn)."""
        if self.conversation_id is None:
            self.conversation_id = uuid.uuid4().hex
        start = TurnStart(
            conversation_id=self.conversation_id,
            project=self.project_key,
            index=len(request.history),  # a regenerated turn replaces the one it redoes
            instruction=request.instruction,
            input_text=turn.input_text,
            paths=request.paths,
            files=turn.files,
            model=model,
            template=template,
        )
        self._saving = (exchange_id, start.conversation_id, start.index)
        self._answer = ""
        self._answer_saved_at = time.monotonic()
        self._submit(lambda store: store.begin_turn(start))

    def answer_shown(self, exchange_id: int, answer: str) -> None:
        """The streaming answer as shown now: saved at most every ANSWER_SAVE_SECONDS."""
        if self._saving is None or self._saving[0] != exchange_id:
            return
        self._answer = answer
        now = time.monotonic()
        if now - self._answer_saved_at >= ANSWER_SAVE_SECONDS:
            self._answer_saved_at = now
            _exchange, conversation_id, index = self._saving
            self._submit(lambda store: store.update_answer(conversation_id, index, answer))

    def finish_turn(self, answer: str, state: str, note: str, timings: Any) -> None:
        """Save the turn's final answer, state and counts."""
        if self._saving is None:
            return
        _exchange, conversation_id, index = self._saving
        self._saving = None
        prompt_tokens = timings.prompt_tokens if timings is not None else None
        generated = timings.generated_tokens if timings is not None else None
        self._submit(
            lambda store: store.finish_turn(conversation_id, index, answer, state, note, prompt_tokens, generated)
        )

    def save_draft(self, text: str) -> None:
        """Save the instruction being written (once the saved one is in; only when it changed)."""
        if not self.restored or text == self._saved_draft:
            return
        self._saved_draft = text
        key = self.project_key
        self._submit(lambda store: store.save_draft(key, text))

    def save_selection(self) -> None:
        """Save the context selection (once the saved one is in; only when it changed)."""
        if not self.restored:
            return
        files = self.selection()
        if files == self._saved_selection:
            return
        self._saved_selection = files
        key = self.project_key
        self._submit(lambda store: store.save_selection(key, files))

    def load_saved_state(self) -> tuple[str, list[SavedFile], list[tuple[str, str]], list[str]]:
        """(draft, selection still usable, (path, why not) for the rest, instructions to
        recall): this project's saved state, at start. Blocks: call it in a worker."""
        key = self.project_key
        saved = self._wait(lambda store: (store.load_draft(key), store.load_selection(key), store.instructions(key)))
        draft, selection, instructions = saved if saved is not None else ("", [], [])
        kept, dropped = self.check_files(selection)
        return draft, kept, dropped, instructions

    def draft_restored(self, draft: str) -> None:
        """The saved draft is in the editor (or was not needed): saving may start."""
        self._saved_draft = draft
        self.restored = True

    def load_conversation(self, conversation_id: str
                          ) -> tuple[list[StoredTurn], list[SavedFile], list[tuple[str, str]]] | None:
        """(its turns, its last files still usable, (path, why not) for the rest) of a saved
        conversation, or None when it is not saved any more. Blocks: call it in a worker."""
        turns = self._wait(lambda store: store.load_turns(conversation_id))
        if not turns:
            return None
        kept, dropped = self.check_files([SavedFile(path) for path in turns[-1].paths], allow_ignored=True)
        return turns, kept, dropped


def resumed_state(turn: StoredTurn) -> tuple[str, str]:
    """The exchange state and state line of a saved turn."""
    if turn.state == "streaming":  # the app was killed or crashed while it streamed
        return "stopped", "interrupted: the app ended while it was answering"
    return turn.state, turn.note or turn.state
