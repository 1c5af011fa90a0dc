"""The main screen's edit bookkeeping without a terminal (tui/edits/project_edits.py): where a
block may go, writes and undos in order, and which contents are our own doing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from codeup_tui.tui.edits import InsertError, InsertMode, plan_insert
from codeup_tui.tui.edits.project_edits import RECENT_TARGETS, ProjectEdits
from codeup_tui.tui.prompt import text_digest


def test_targets_are_offered_best_guess_first_without_repeats(tmp_path: Path):
    (tmp_path / "named.py").write_text("x = 1\n")
    edits = ProjectEdits(tmp_path)
    targets = edits.targets("named.py", ["prompt.py", "named.py"], ["ctx.py", "prompt.py"], "cursor.py")
    assert targets == ("named.py", "prompt.py", "ctx.py", "cursor.py")
    # A hint that leaves the project is no target; the other guesses stand.
    assert edits.targets("../outside.py", ["prompt.py"], [], None) == ("prompt.py",)


def test_a_write_is_remembered_as_ours_and_offered_again(tmp_path: Path):
    (tmp_path / "m.py").write_text("a = 1\n")
    seen: list[tuple[Path, bytes | None]] = []
    edits = ProjectEdits(tmp_path, lambda path, data: seen.append((path, data)))
    plan = plan_insert(tmp_path, "m.py", "b = 2\n", InsertMode.append)
    assert edits.write(plan) == []
    assert (tmp_path / "m.py").read_text() == "a = 1\nb = 2\n"
    assert seen == [(tmp_path / "m.py", b"a = 1\nb = 2\n")]  # the watcher is told first
    assert edits.own_digests() == {"m.py": frozenset({text_digest("a = 1\nb = 2\n")})}
    assert edits.targets(None, [], [], None) == ("m.py",)


def test_recent_targets_are_latest_first_and_bounded(tmp_path: Path):
    edits = ProjectEdits(tmp_path)
    for n in range(RECENT_TARGETS + 2):
        edits.write(plan_insert(tmp_path, f"f{n}.py", "x\n", InsertMode.replace))
    edits.write(plan_insert(tmp_path, "f5.py", "y\n", InsertMode.replace))
    recent = edits.targets(None, [], [], None)
    assert recent[0] == "f5.py" and len(recent) == RECENT_TARGETS
    assert recent[1:3] == ("f11.py", "f10.py")


def test_undo_puts_the_file_back_and_then_there_is_nothing_left(tmp_path: Path):
    (tmp_path / "m.py").write_text("a = 1\n")
    edits = ProjectEdits(tmp_path)
    edits.write(plan_insert(tmp_path, "m.py", "b = 2\n", InsertMode.append))
    edits.write(plan_insert(tmp_path, "new.py", "c = 3\n", InsertMode.replace))
    assert edits.undo_last() == ("new.py", None)  # created by the insert: removed
    assert not (tmp_path / "new.py").exists()
    assert edits.undo_last() == ("m.py", "a = 1\n")
    assert (tmp_path / "m.py").read_text() == "a = 1\n"
    assert text_digest("a = 1\n") in edits.own_digests()["m.py"]  # the undo wrote it: ours too
    assert edits.undo_last() is None


def test_a_refused_write_leaves_the_file_and_the_bookkeeping_alone(tmp_path: Path):
    (tmp_path / "m.py").write_text("a = 1\n")
    edits = ProjectEdits(tmp_path)
    plan = plan_insert(tmp_path, "m.py", "b = 2\n", InsertMode.append)
    (tmp_path / "m.py").write_text("changed meanwhile\n")
    with pytest.raises(InsertError):
        edits.write(plan)
    assert (tmp_path / "m.py").read_text() == "changed meanwhile\n"
    assert edits.own_digests() == {} and edits.targets(None, [], [], None) == ()
    assert edits.undo_last() is None


def test_writes_from_several_threads_each_land_and_undo_in_reverse(tmp_path: Path):
    edits = ProjectEdits(tmp_path)
    plans = [plan_insert(tmp_path, f"t{n}.py", f"n = {n}\n", InsertMode.replace) for n in range(8)]
    threads = [threading.Thread(target=edits.write, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(p.name for p in tmp_path.glob("t*.py")) == [f"t{n}.py" for n in range(8)]
    undone = [edits.undo_last() for _ in range(8)]
    assert sorted(path for path, text in undone) == [f"t{n}.py" for n in range(8)]
    assert all(text is None for _, text in undone) and not list(tmp_path.glob("t*.py"))
