"""`atomic_write` once the rename is done (engine/atomic_file.py): a failure of the folder's
fsync or close after it is a warning, the write is reported as done, and its undo snapshot
is kept; in the app, the insert is "Inserted" (with the warning), never "unchanged"."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from tests.helpers.tui_pilot import ANSWER, FUNCTION, SIZE, ask, choose, make_app, open_insert, preview, ready, wait_until
from tests.helpers.tui_pilot import insert_project as project
from tests.helpers.tui_fakes import FakeBackend

from codeup_tui.engine.atomic_file import atomic_write_bytes
from codeup_tui.tui.edits import InsertMode, UndoStore, apply_plan, plan_insert


def fail_on_folder(monkeypatch, folder: Path, call: str, err: int = errno.EIO) -> list[int]:
    """Make os.<call> fail (after doing its work) for a descriptor of ``folder``."""
    real = getattr(os, call)
    failed: list[int] = []

    def faulty(fd, *args):
        result = real(fd, *args) if call == "fsync" else None
        is_folder = False
        try:
            is_folder = stat.S_ISDIR(os.fstat(fd).st_mode) and os.readlink(f"/proc/self/fd/{fd}") == str(folder)
        except OSError:
            pass
        if call == "close":
            real(fd)
        if is_folder:
            failed.append(fd)
            raise OSError(err, os.strerror(err))
        return result

    monkeypatch.setattr(os, call, faulty)
    return failed


@pytest.mark.parametrize("call", ["close", "fsync"])
def test_a_folder_failure_after_the_rename_is_a_warning(tmp_path: Path, monkeypatch, call):
    target = tmp_path / "f.txt"
    target.write_bytes(b"old\n")
    with monkeypatch.context() as patched:  # (undo() would also drop the test's own data folder)
        failed = fail_on_folder(patched, tmp_path.resolve(), call)
        warning = atomic_write_bytes(target, b"new\n", 0o644)
    assert failed, "the fault was not injected"
    assert warning is not None and "folder failed" in warning and "\n" not in warning
    assert target.read_bytes() == b"new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]  # no temporary file left


@pytest.mark.parametrize("call", ["close", "fsync"])
def test_an_insert_then_keeps_its_snapshot_and_undoes(tmp_path: Path, monkeypatch, call):
    (tmp_path / "a.py").write_bytes(b"a = 1\n")
    store = UndoStore(tmp_path)
    plan = plan_insert(tmp_path, "a.py", "b = 2\n", InsertMode.append)
    warnings: list[str] = []
    with monkeypatch.context() as patched:
        fail_on_folder(patched, tmp_path.resolve(), call)
        entry = apply_plan(plan, store, warn=warnings.append)
    assert (tmp_path / "a.py").read_bytes() == b"a = 1\nb = 2\n"
    assert len(warnings) == 1 and warnings[0].startswith("a.py was written, but ")
    assert store.last() == entry
    assert store.undo(entry) == b"a = 1\n"


async def test_the_app_says_inserted_not_unchanged(tmp_path: Path, monkeypatch):
    original = (project(tmp_path) / "b.py").read_bytes()
    app = make_app(tmp_path, FakeBackend(answers=[ANSWER]))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await ask(pilot, screen)
        await pilot.press("alt+p", "alt+p")  # the python block
        dialog = await open_insert(pilot)
        await choose(pilot, dialog, "target", "\0other")
        await pilot.press(*"b.py", "enter")
        await choose(pilot, dialog, "mode", "append")
        await preview(pilot, dialog)
        with monkeypatch.context() as patched:
            fail_on_folder(patched, tmp_path.resolve(), "close")
            await pilot.press("y")
            await wait_until(pilot, lambda: any(n.title.startswith("Inserted") for n in app._notifications)
                             or any(n.title == "Not inserted" for n in app._notifications))
        titles = [n.title for n in app._notifications]
        assert "Not inserted" not in titles and not any("unchanged" in n.message for n in app._notifications)
        assert "Inserted, with a warning" in titles
        assert (tmp_path / "b.py").read_bytes() == original + FUNCTION.encode()
        await wait_until(pilot, lambda: any(n.title == "Inserted" for n in app._notifications))
        await pilot.press("alt+u")  # the snapshot was kept
        await wait_until(pilot, lambda: (tmp_path / "b.py").read_bytes() == original)
        await wait_until(pilot, lambda: any(n.title == "Undone" for n in app._notifications))
        await pilot.pause(0.6)  # the watcher's events of the undo, before the app closes
