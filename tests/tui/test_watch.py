"""The project watcher (tui/watch.py) on real temporary folders: changes arrive as debounced
batches, deletes and renames are told apart, the app's own writes are left out, polling
takes over when the native observer cannot start, and stop leaves no thread behind."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import pytest

from codeup_tui.tui.edits.file_write import atomic_write
from codeup_tui.tui.watch import ChangeBatch, ProjectWatcher

# Generous bounds: a loaded CI machine must not fail these. They bound how long to wait for
# a batch, not how fast the watcher is.
WAIT = 5.0


class Collector:
    def __init__(self) -> None:
        self.batches: queue.Queue[ChangeBatch] = queue.Queue()

    def __call__(self, batch: ChangeBatch) -> None:
        self.batches.put(batch)

    def next(self, timeout: float = WAIT) -> ChangeBatch:
        return self.batches.get(timeout=timeout)

    def until(self, predicate, timeout: float = WAIT) -> ChangeBatch:
        """The first batch ``predicate`` accepts (earlier ones, e.g. setup noise, skipped)."""
        import time

        end = time.monotonic() + timeout
        while True:
            batch = self.batches.get(timeout=max(0.01, end - time.monotonic()))
            if predicate(batch):
                return batch

    def drain(self, seconds: float) -> list[ChangeBatch]:
        """Every batch that comes within ``seconds``."""
        import time

        end = time.monotonic() + seconds
        found = []
        while (left := end - time.monotonic()) > 0:
            try:
                found.append(self.batches.get(timeout=left))
            except queue.Empty:
                break
        return found

    def quiet(self, seconds: float) -> bool:
        try:
            self.batches.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


@pytest.fixture(params=["native", "polling"])
def watched(request, tmp_path: Path):
    (tmp_path / "a.py").write_text("a = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("b = 1\n")
    collector = Collector()
    watcher = ProjectWatcher(tmp_path, collector, debounce=0.1, polling=request.param == "polling",
                             poll_interval=0.1)
    assert watcher.start() == request.param
    yield tmp_path.resolve(), watcher, collector
    watcher.stop()


def test_a_change_is_reported_once(watched):
    root, _watcher, collector = watched
    (root / "a.py").write_text("a = 2\n")
    batch = collector.next()
    assert batch.changed == {root / "a.py"}
    assert not batch.deleted and not batch.moved
    assert collector.quiet(0.4)


def test_delete_and_create_and_rename(watched):
    root, _watcher, collector = watched
    (root / "sub" / "b.py").unlink()
    batch = collector.next()
    assert batch.deleted == {root / "sub" / "b.py"} and batch.tree_changed
    assert batch.entries == {root / "sub" / "b.py"}
    (root / "new.py").write_text("n\n")
    batch = collector.until(lambda b: b.changed)
    assert batch.changed == {root / "new.py"} and batch.tree_changed
    (root / "a.py").rename(root / "renamed.py")
    deleted, changed = set(), set()

    def rename_seen(b) -> bool:
        deleted.update(b.deleted)
        changed.update(b.changed)
        return bool(b.moved) or (root / "a.py" in deleted and root / "renamed.py" in changed)

    batch = collector.until(rename_seen)
    if batch.moved:  # native observers see a rename
        assert batch.moved == ((root / "a.py", root / "renamed.py"),)
    else:  # polling may see it as a delete and a create (under load, in two polls)
        assert root / "a.py" in deleted and root / "renamed.py" in changed


def test_a_thousand_rapid_writes_are_one_batch(watched):
    root, watcher, collector = watched
    before = watcher.batches_delivered
    with open(root / "a.py", "w") as handle:
        for n in range(1000):
            handle.write(f"line {n}\n")
            handle.flush()
    batch = collector.next()
    assert batch.changed == {root / "a.py"}
    assert collector.quiet(0.5)
    assert watcher.batches_delivered == before + 1


def test_own_writes_are_left_out_but_a_later_edit_is_not(watched):
    root, watcher, collector = watched
    data = b"written by the app\n"
    watcher.expect_write(root / "a.py", data)
    atomic_write(root / "a.py", data)
    # A batch may come for the tree (the temporary file), never one saying a.py changed.
    assert all(root / "a.py" not in batch.changed for batch in collector.drain(0.8))
    (root / "a.py").write_bytes(b"then the user\n")
    assert collector.until(lambda b: b.changed).changed == {root / "a.py"}


def test_gitignore_and_git_changes_are_flagged_and_internals_are_not_reported(watched):
    root, _watcher, collector = watched
    (root / ".codeup").mkdir()
    (root / ".codeup" / "x").write_text("snapshot")
    (root / "t.py.abc.codeup-tmp").write_text("temp")
    for batch in collector.drain(0.6):
        assert not batch.changed and not batch.deleted and not batch.moved
    (root / ".gitignore").write_text("*.log\n")
    batch = collector.until(lambda b: b.ignore_changed)
    assert batch.tree_changed


def test_polling_takes_over_when_the_native_observer_cannot_start(tmp_path: Path, monkeypatch):
    import errno

    from watchdog.observers import Observer

    def no_inotify(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(Observer, "start", no_inotify)
    collector = Collector()
    watcher = ProjectWatcher(tmp_path, collector, debounce=0.05, poll_interval=0.1)
    assert watcher.start() == "polling"
    assert "limit" in watcher.fallback_reason
    try:
        (tmp_path / "x.txt").write_text("x")
        assert collector.next().changed == {tmp_path.resolve() / "x.txt"}
    finally:
        watcher.stop()


@pytest.mark.parametrize("polling", [False, True])
def test_stop_leaves_no_thread_behind(tmp_path: Path, polling: bool):
    before = set(threading.enumerate())
    watcher = ProjectWatcher(tmp_path, lambda batch: None, polling=polling, poll_interval=0.1)
    watcher.start()
    started = watcher.threads()
    assert len(started) >= 2  # the observer (and its emitter) and the debouncer
    watcher.stop()
    watcher.stop()  # twice is fine
    assert watcher.threads() == []
    assert not any(t.is_alive() for t in started)
    assert set(threading.enumerate()) <= before
