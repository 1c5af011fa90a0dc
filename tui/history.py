"""Saved conversations, drafts and context selections, per project, in one SQLite file.

Plain Python (stdlib ``sqlite3``), no Textual. The database lives in the user's data folder
(``$XDG_DATA_HOME/codeup-tui/history.sqlite3``, else ``~/.local/share/codeup-tui/``);
``$CODEUP_TUI_DATA`` names another folder (the tests point it at a temporary one). Every
row is keyed by the project's resolved path.

A turn is written when its answer starts, its text is rewritten as it streams and once more
at the end, and every write is committed at once (WAL journal), so a crash loses at most
the text shown since the last save. ``HistoryStore`` is the synchronous store;
``BackgroundHistory`` runs its calls, in order, on one thread of its own so the UI never
waits on the disk, and turns any failure (a corrupt file, a full disk) into one report,
after which history is simply off.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

DATA_ENV = "CODEUP_TUI_DATA"
"""Environment variable: the folder to keep history in, instead of the user data folder."""
DB_NAME = "history.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 2.0
"""Another codeup-tui on the same file holds the write lock at most this long per write."""

TURN_STATES = ("streaming", "done", "stopped", "error")
"""``streaming``: the answer was still coming when last saved (a crash or a kill leaves it)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    model TEXT,
    template TEXT
);
CREATE INDEX IF NOT EXISTS conversations_by_project ON conversations (project, updated);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    instruction TEXT NOT NULL,
    input_text TEXT,
    paths TEXT NOT NULL,
    files TEXT NOT NULL,
    answer TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    prompt_tokens INTEGER,
    generated_tokens INTEGER,
    started REAL NOT NULL,
    finished REAL,
    PRIMARY KEY (conversation_id, idx)
);
CREATE TABLE IF NOT EXISTS drafts (
    project TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS selections (
    project TEXT PRIMARY KEY,
    files TEXT NOT NULL,
    updated REAL NOT NULL
);
"""


def data_dir() -> Path:
    """The folder codeup-tui keeps its data in ($CODEUP_TUI_DATA, else the XDG data home)."""
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_DATA_HOME")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "codeup-tui"


def default_history_path() -> Path:
    return data_dir() / DB_NAME


def project_key(project_dir: Path | str) -> str:
    """The key of a project's rows: its resolved path (the same folder, however it is named)."""
    return str(Path(project_dir).expanduser().resolve())


class HistoryUnavailable(Exception):
    """The history file cannot be used; the message is one line."""


@dataclass(frozen=True)
class ConversationSummary:
    """One line of the history list."""

    id: str
    title: str
    created: float
    updated: float
    turns: int
    model: str | None = None
    template: str | None = None


@dataclass(frozen=True)
class StoredTurn:
    """One saved turn: what was asked, with which files, and the answer as far as it got.

    ``paths`` are the files selected as context when it was sent; ``files`` the (path,
    digest) of those actually sent in its input (``input_text``).
    """

    index: int
    instruction: str
    input_text: str | None
    paths: tuple[str, ...]
    files: tuple[tuple[str, str], ...]
    answer: str
    state: str
    note: str = ""
    prompt_tokens: int | None = None
    generated_tokens: int | None = None
    started: float = 0.0
    finished: float | None = None


@dataclass(frozen=True)
class TurnStart:
    """What is known of a turn when its answer starts."""

    conversation_id: str
    project: str
    index: int
    instruction: str
    input_text: str | None
    paths: tuple[str, ...]
    files: tuple[tuple[str, str], ...]
    model: str | None = None
    template: str | None = None


@dataclass(frozen=True)
class SavedFile:
    """A file of a saved context selection; ``ignored``: added although .gitignore hides it."""

    path: str
    ignored: bool = False


def title_of(instruction: str) -> str:
    """The conversation's title: the first non-blank line of its first instruction."""
    for line in instruction.splitlines():
        if line.strip():
            return line.strip()
    return "(empty)"


class HistoryStore:
    """The SQLite file, opened once; every method commits before it returns.

    Thread-safe (one lock around the connection). Raises ``HistoryUnavailable`` when the
    file cannot be opened as a history database, and ``sqlite3.Error`` when a later
    statement fails.
    """

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryUnavailable(f"cannot create {self.path.parent}: {exc.strerror or exc}") from None
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False,
                                       isolation_level=None)  # autocommit; transactions are explicit
        except sqlite3.Error as exc:
            raise HistoryUnavailable(f"cannot open {self.path}: {exc}") from None
        try:
            self._setup()
        except sqlite3.Error as exc:
            self._db.close()
            raise HistoryUnavailable(f"cannot use {self.path}: {exc}") from None

    def _setup(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the app crashing or being killed; only a power
        # cut can lose the last few, and no fsync per streamed update.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"written by a newer codeup-tui (schema {version} > {SCHEMA_VERSION})")
        with self._transaction():
            # Statement by statement: executescript() would commit on its own.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction; IMMEDIATE takes the write lock at once (no upgrade
        deadlock with another codeup-tui on the same file)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[object] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- conversations and turns ---------------------------------------------------------

    def begin_turn(self, turn: TurnStart) -> None:
        """Save a turn whose answer is starting (state ``streaming``, no text yet).

        The conversation is created with its first turn. A turn at an index already taken
        replaces it and everything after it (a regenerated answer, or a turn after one that
        failed).
        """
        now = self.clock()
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO conversations (id, project, title, created, updated, model, template)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (turn.conversation_id, turn.project, title_of(turn.instruction), now, now, turn.model, turn.template),
            )
            if turn.index == 0:
                db.execute("UPDATE conversations SET title = ? WHERE id = ?",
                           (title_of(turn.instruction), turn.conversation_id))
            db.execute("UPDATE conversations SET updated = ?, model = coalesce(?, model),"
                       " template = coalesce(?, template) WHERE id = ?",
                       (now, turn.model, turn.template, turn.conversation_id))
            db.execute("DELETE FROM turns WHERE conversation_id = ? AND idx >= ?", (turn.conversation_id, turn.index))
            db.execute(
                "INSERT INTO turns (conversation_id, idx, instruction, input_text, paths, files, state, started)"
                " VALUES (?, ?, ?, ?, ?, ?, 'streaming', ?)",
                (turn.conversation_id, turn.index, turn.instruction, turn.input_text, json.dumps(list(turn.paths)),
                 json.dumps([list(item) for item in turn.files]), now),
            )

    def update_answer(self, conversation_id: str, index: int, answer: str) -> None:
        """The answer so far, while it streams."""
        with self._transaction() as db:
            db.execute("UPDATE turns SET answer = ? WHERE conversation_id = ? AND idx = ?",
                       (answer, conversation_id, index))

    def finish_turn(self, conversation_id: str, index: int, answer: str, state: str, note: str = "",
                    prompt_tokens: int | None = None, generated_tokens: int | None = None) -> None:
        """The final answer and how it ended (``done``, ``stopped`` or ``error``)."""
        if state not in TURN_STATES:
            raise ValueError(f"unknown turn state {state!r}")
        now = self.clock()
        with self._transaction() as db:
            db.execute(
                "UPDATE turns SET answer = ?, state = ?, note = ?, prompt_tokens = ?, generated_tokens = ?,"
                " finished = ? WHERE conversation_id = ? AND idx = ?",
                (answer, state, note, prompt_tokens, generated_tokens, now, conversation_id, index),
            )
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id))

    def list_conversations(self, project: str) -> list[ConversationSummary]:
        """The project's conversations, the most recently used first."""
        rows = self._query(
            "SELECT c.id, c.title, c.created, c.updated, c.model, c.template,"
            " (SELECT count(*) FROM turns t WHERE t.conversation_id = c.id)"
            " FROM conversations c WHERE c.project = ? ORDER BY c.updated DESC, c.rowid DESC",
            (project,),
        )
        return [ConversationSummary(id=r[0], title=r[1], created=r[2], updated=r[3], model=r[4], template=r[5],
                                    turns=r[6]) for r in rows]

    def load_turns(self, conversation_id: str) -> list[StoredTurn]:
        """A conversation's turns in order (empty when it does not exist)."""
        rows = self._query(
            "SELECT idx, instruction, input_text, paths, files, answer, state, note, prompt_tokens,"
            " generated_tokens, started, finished FROM turns WHERE conversation_id = ? ORDER BY idx",
            (conversation_id,),
        )
        return [
            StoredTurn(
                index=r[0], instruction=r[1], input_text=r[2], paths=tuple(_json_list(r[3], str)),
                files=tuple((str(item[0]), str(item[1])) for item in _json_list(r[4], list) if len(item) == 2),
                answer=r[5], state=r[6], note=r[7], prompt_tokens=r[8], generated_tokens=r[9],
                started=r[10], finished=r[11],
            )
            for r in rows
        ]

    def delete_conversation(self, conversation_id: str) -> bool:
        """Remove a conversation and its turns; False when it was not there."""
        with self._transaction() as db:
            db.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,))
            return db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount > 0

    def instructions(self, project: str, limit: int = 500) -> list[str]:
        """The project's instructions, newest first, each once (for up-arrow recall)."""
        rows = self._query(
            "SELECT t.instruction FROM turns t JOIN conversations c ON c.id = t.conversation_id"
            " WHERE c.project = ? ORDER BY t.started DESC, c.rowid DESC, t.idx DESC LIMIT ?",
            (project, limit * 4),
        )
        return unique_newest_first(r[0] for r in rows)[:limit]

    # -- drafts and selections --------------------------------------------------------------

    def save_draft(self, project: str, text: str) -> None:
        with self._transaction() as db:
            if text:
                db.execute("INSERT INTO drafts (project, text, updated) VALUES (?, ?, ?)"
                           " ON CONFLICT (project) DO UPDATE SET text = excluded.text, updated = excluded.updated",
                           (project, text, self.clock()))
            else:
                db.execute("DELETE FROM drafts WHERE project = ?", (project,))

    def load_draft(self, project: str) -> str:
        rows = self._query("SELECT text FROM drafts WHERE project = ?", (project,))
        return rows[0][0] if rows else ""

    def save_selection(self, project: str, files: Iterable[SavedFile]) -> None:
        data = json.dumps([{"path": f.path, "ignored": f.ignored} for f in files])
        with self._transaction() as db:
            db.execute("INSERT INTO selections (project, files, updated) VALUES (?, ?, ?)"
                       " ON CONFLICT (project) DO UPDATE SET files = excluded.files, updated = excluded.updated",
                       (project, data, self.clock()))

    def load_selection(self, project: str) -> list[SavedFile]:
        rows = self._query("SELECT files FROM selections WHERE project = ?", (project,))
        if not rows:
            return []
        saved = []
        for item in _json_list(rows[0][0], object):
            if isinstance(item, str):
                saved.append(SavedFile(item))
            elif isinstance(item, dict) and isinstance(item.get("path"), str):
                saved.append(SavedFile(item["path"], bool(item.get("ignored", False))))
        return saved


def _json_list(text: str, kind: type) -> list:
    """A JSON list from the database, keeping only items of ``kind`` (a hand-edited row
    cannot break a resume)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return []
    return [item for item in value if isinstance(item, kind)] if isinstance(value, list) else []


def unique_newest_first(items: Iterable[str]) -> list[str]:
    """Each item once, where it first appears (the list is newest first)."""
    seen: set[str] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


T = TypeVar("T")


class BackgroundHistory:
    """A ``HistoryStore`` whose calls run one at a time, in order, on a thread of its own.

    ``submit(lambda store: ...)`` returns at once with a ``Future``; a thread worker may wait
    on it. The file is opened by the first call. The first failure (the file cannot be
    opened, a statement fails) is passed to ``on_failure`` once, from the history thread;
    from then on nothing is written and every call gives its ``default``.
    """

    def __init__(self, path: Path | str, on_failure: Callable[[str], None] = lambda reason: None) -> None:
        self.path = Path(path)
        self.on_failure = on_failure
        self.failure: str | None = None
        self._store: HistoryStore | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codeup-history")
        self._closed = False

    def submit(self, call: Callable[[HistoryStore], T], default: T | None = None) -> Future:
        if self._closed:
            done: Future = Future()
            done.set_result(default)
            return done
        return self._executor.submit(self._run, call, default)

    def _run(self, call: Callable[[HistoryStore], T], default: T | None) -> T | None:
        if self.failure is not None:
            return default
        try:
            if self._store is None:
                self._store = HistoryStore(self.path)
            return call(self._store)
        except Exception as exc:  # never let history break the app: report once, go on without
            self.failure = str(exc) if isinstance(exc, HistoryUnavailable) else f"{self.path}: {exc}"
            self._close_store()
            self.on_failure(" ".join(self.failure.split()))
            return default

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except sqlite3.Error:
                pass

    def close(self, timeout: float = 5.0) -> None:
        """Finish the writes already submitted (waiting at most ``timeout``), then close."""
        if self._closed:
            return
        self._closed = True
        last = self._executor.submit(self._close_store)
        try:
            last.result(timeout=timeout)
        except Exception:  # a write stuck on a lock held elsewhere: give up on it at exit
            pass
        self._executor.shutdown(wait=False)
