"""Watching the project on disk: watchdog events, debounced and coalesced into batches.

A watchdog observer (inotify on Linux) watches the project folder; where it cannot start
(inotify's watch limit is used up, a file system without events) a polling observer takes
over. Events are coalesced per path and delivered as one ``ChangeBatch`` once the project
has been quiet for ``debounce`` seconds (or ``max_delay`` after the first event, so a file
written without pause is still reported): a thousand rapid writes to a file are one change.

The app's own writes are announced first (``expect_write``: the path and the bytes); an
event whose file then holds exactly those bytes is the app's own and is left out. Our
temporary files (``*.codeup-tmp``) and ``.codeup/`` are never reported; inside ``.git``
only what changes git's view is (the index, HEAD, refs: ``git_changed``; the exclude file).

Plain Python, no Textual: ``deliver`` is called on the watcher's own thread (the app posts a
message from it). ``stop`` joins every thread it started.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)

from .edits.file_write import TEMP_SUFFIX
from .edits.undo import STATE_FOLDER

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.2
MAX_DELAY_SECONDS = 2.0
POLL_SECONDS = 1.0
"""The polling fallback rescans the tree this often (it is used on big trees: inotify's
limits ran out), so it stays cheap."""
EXPECT_SECONDS = 10.0
"""How long an announced write is remembered (its events may come in several batches)."""
IGNORE_FILES = frozenset({".gitignore"})


@dataclass(frozen=True)
class ChangeBatch:
    """What changed on disk since the last batch (absolute paths)."""

    changed: frozenset[Path] = frozenset()
    """Files created or written."""
    deleted: frozenset[Path] = frozenset()
    moved: tuple[tuple[Path, Path], ...] = ()
    """(old path, new path) of files renamed (chains a -> b -> c come as a -> c)."""
    tree_changed: bool = False
    """Entries appeared, went or were renamed: the file tree needs a reload."""
    entries: frozenset[Path] = frozenset()
    """The paths (files or folders) that appeared, went or were renamed (both names)."""
    ignore_changed: bool = False
    """A ``.gitignore`` (or git's exclude file) changed: what the tree hides may differ."""
    git_changed: bool = False
    """Git's state changed (a commit, a checkout, staging): the tree's git marks need a refresh."""

    def __bool__(self) -> bool:
        return bool(self.changed or self.deleted or self.moved or self.tree_changed or self.ignore_changed
                    or self.git_changed)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: ProjectWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.watcher._on_event(event)


class ProjectWatcher:
    """Watches ``root`` and calls ``deliver(batch)`` (on its own thread) with each batch."""

    def __init__(self, root: Path, deliver: Callable[[ChangeBatch], None], *, debounce: float = DEBOUNCE_SECONDS,
                 max_delay: float = MAX_DELAY_SECONDS, polling: bool = False,
                 poll_interval: float = POLL_SECONDS) -> None:
        self.root = Path(root).resolve()
        self.deliver = deliver
        self.debounce = debounce
        self.max_delay = max_delay
        self.force_polling = polling
        self.poll_interval = poll_interval
        self.kind: str | None = None
        """"native" or "polling" once started."""
        self.fallback_reason: str | None = None
        """Why the native observer could not be used (when polling took over)."""
        self.batches_delivered = 0
        self._observer = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self._pending: dict[Path, str] = {}
        self._moves: dict[Path, Path] = {}
        self._flags = {"tree": False, "ignore": False, "git": False}
        self._entries: set[Path] = set()
        self._first_event = 0.0
        self._last_event = 0.0
        self._expected: dict[Path, tuple[str, float]] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Start watching; returns the kind ("native" or "polling")."""
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        handler = _Handler(self)
        observer = None
        if not self.force_polling:
            observer = Observer()
            try:
                observer.schedule(handler, str(self.root), recursive=True)
                observer.start()
                self.kind = "native"
            except OSError as exc:  # inotify's limits used up (ENOSPC, EMFILE), no inotify at all
                self.fallback_reason = exc.strerror or str(exc)
                self._stop_observer(observer)
                observer = None
        if observer is None:
            observer = PollingObserver(timeout=self.poll_interval)
            observer.schedule(handler, str(self.root), recursive=True)
            observer.start()
            self.kind = "polling"
        self._observer = observer
        self._thread = threading.Thread(target=self._run, name="codeup-watch-debounce", daemon=True)
        self._thread.start()
        return self.kind

    @staticmethod
    def _stop_observer(observer, timeout: float = 5.0) -> None:
        try:
            observer.stop()
        except Exception:  # an observer that never started
            pass
        if observer.is_alive():
            observer.join(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the observer and the debouncer and join their threads (safe to call twice)."""
        observer, self._observer = self._observer, None
        if observer is not None:
            self._stop_observer(observer, timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def threads(self) -> list[threading.Thread]:
        """The threads this watcher runs now (for tests: none after ``stop``)."""
        found = []
        if self._thread is not None and self._thread.is_alive():
            found.append(self._thread)
        observer = self._observer
        if observer is not None:
            if observer.is_alive():
                found.append(observer)
            found.extend(e for e in list(getattr(observer, "emitters", ())) if e.is_alive())
        return found

    # -- our own writes ----------------------------------------------------------------------

    def expect_write(self, path: Path, data: bytes | None) -> None:
        """The app is about to write ``data`` to ``path`` (None: remove it): events that leave
        the file so are the app's own, not a change to report."""
        key = Path(path).resolve()
        with self._cond:
            self._expected[key] = (_digest(data) if data is not None else "", time.monotonic() + EXPECT_SECONDS)

    def _is_own(self, path: Path, now: float) -> bool:
        expected = self._expected.get(path)
        if expected is None:
            return False
        digest, deadline = expected
        if now > deadline:
            self._expected.pop(path, None)
            return False
        try:
            return digest != "" and _digest(path.read_bytes()) == digest
        except OSError:
            return digest == ""  # we removed it

    # -- events ---------------------------------------------------------------------------------

    def _classify(self, raw: str | bytes) -> tuple[Path, str] | None:
        """(path, what) for a path we report: "file", "git", "ignore"; None to drop it."""
        path = Path(raw if isinstance(raw, str) else raw.decode("utf-8", "surrogateescape"))
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return None
        parts = rel.parts
        if not parts or parts[0] == STATE_FOLDER or path.name.endswith(TEMP_SUFFIX):
            return None
        if parts[0] == ".git":
            if rel.as_posix() == ".git/info/exclude":
                return path, "ignore"
            if len(parts) >= 2 and (parts[1] in ("index", "HEAD") or parts[1] == "refs"):
                return path, "git"
            return None
        if path.name in IGNORE_FILES:
            return path, "ignore"
        return path, "file"

    def _on_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        if kind not in (EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED):
            return  # opened, closed, attributes: the modified events tell the story
        if event.is_directory and kind == EVENT_TYPE_MODIFIED:
            return  # a folder's own mtime: its entries' events say what happened
        src = self._classify(event.src_path)
        dest = self._classify(event.dest_path) if kind == EVENT_TYPE_MOVED and event.dest_path else None
        with self._cond:
            touched = False
            for item in (src, dest):
                if item is not None and item[1] != "file":
                    self._flags["git" if item[1] == "git" else "ignore"] = True
                    if item[1] == "ignore":
                        self._flags["tree"] = True
                    touched = True
            if event.is_directory:
                if kind != EVENT_TYPE_MODIFIED and (src is not None or dest is not None):
                    self._flags["tree"] = True
                    self._entries.update(item[0] for item in (src, dest) if item is not None)
                    touched = True
            elif kind == EVENT_TYPE_MOVED:
                if src is not None and src[1] == "file" and dest is not None and dest[1] == "file":
                    origin = next((old for old, new in self._moves.items() if new == src[0]), src[0])
                    self._moves.pop(origin, None)
                    self._moves[origin] = dest[0]
                    if self._pending.pop(src[0], None) == "changed":
                        self._pending[dest[0]] = "changed"
                    self._flags["tree"] = True
                    self._entries.update((src[0], dest[0]))
                    touched = True
                elif dest is not None and dest[1] == "file":  # a temporary file renamed over it
                    self._pending[dest[0]] = "changed"
                    self._flags["tree"] = True  # it may be a new file (saved through a temporary)
                    self._entries.add(dest[0])
                    touched = True
                elif src is not None and src[1] == "file":  # moved out of the project
                    self._pending[src[0]] = "deleted"
                    self._flags["tree"] = True
                    self._entries.add(src[0])
                    touched = True
            elif src is not None and src[1] == "file":
                if kind == EVENT_TYPE_DELETED:
                    self._pending[src[0]] = "deleted"
                    self._flags["tree"] = True
                    self._entries.add(src[0])
                else:
                    self._pending[src[0]] = "changed"
                    if kind == EVENT_TYPE_CREATED:
                        self._flags["tree"] = True
                        self._entries.add(src[0])
                touched = True
            if touched:
                now = time.monotonic()
                if not self._first_event:
                    self._first_event = now
                self._last_event = now
                self._cond.notify_all()

    # -- the debouncer ----------------------------------------------------------------------------

    def _due(self, now: float) -> float | None:
        """Seconds until the pending batch is due (<= 0: now); None when nothing is pending."""
        if not self._first_event:
            return None
        return min(self._last_event + self.debounce, self._first_event + self.max_delay) - now

    def _take(self) -> tuple[dict[Path, str], dict[Path, Path], dict[str, bool], set[Path]]:
        pending, moves, flags, entries = self._pending, self._moves, self._flags, self._entries
        self._pending, self._moves, self._entries = {}, {}, set()
        self._flags = {"tree": False, "ignore": False, "git": False}
        self._first_event = self._last_event = 0.0
        return pending, moves, flags, entries

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    wait = self._due(time.monotonic())
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stopping:
                    return
                pending, moves, flags, entries = self._take()
                expected_now = dict(self._expected)
            batch = self._build(pending, moves, flags, entries, expected_now)
            if batch:
                self.batches_delivered += 1
                try:
                    self.deliver(batch)
                except Exception:  # the app is going away; the watcher must not die noisily
                    log.exception("delivering a change batch failed")

    def _build(self, pending: dict[Path, str], moves: dict[Path, Path], flags: dict[str, bool],
               entries: set[Path], expected: dict[Path, tuple[str, float]]) -> ChangeBatch:
        now = time.monotonic()
        changed = set()
        deleted = set()
        for path, state in pending.items():
            if path in expected and self._is_own(path, now):
                continue
            if state == "deleted" and path.exists():
                state = "changed"  # deleted, then written again (an editor's save)
            (deleted if state == "deleted" else changed).add(path)
        moved = tuple((old, new) for old, new in moves.items() if old != new)
        return ChangeBatch(frozenset(changed), frozenset(deleted), moved, flags["tree"], frozenset(entries),
                           flags["ignore"], flags["git"])
