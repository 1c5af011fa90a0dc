"""Undo trusts nothing a repository can commit (tui/edits/undo.py): planted or edited
snapshot records are refused with one line and left as they are, and nothing outside the
project is read into it, written or removed; snapshots are never written through a symlink."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from codeup_tui.tui.edits import InsertError, InsertMode, UndoError, UndoStore, apply_plan, plan_insert
from codeup_tui.tui.edits.undo import record_mac, undo_key
from codeup_tui.tui.history import data_dir

VICTIM = b"the user's own file, outside the project\n"


@pytest.fixture
def layout(tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "a.py").write_bytes(b"a = 1\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_bytes(VICTIM)
    return project, victim


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plant(project: Path, record: dict, before: bytes | None = b"pwned\n", number: int = 1) -> Path:
    folder = project / ".codeup" / "undo"
    folder.mkdir(parents=True, exist_ok=True)
    if before is not None:
        (folder / f"{number:06d}.before").write_bytes(before)
    meta = folder / f"{number:06d}.json"
    meta.write_text(json.dumps(record))
    return meta


def refused(project: Path, match: str) -> str:
    store = UndoStore(project)
    entry = store.last()
    assert entry is not None
    with pytest.raises(UndoError, match=match) as caught:
        store.undo(entry)
    message = str(caught.value)
    assert "\n" not in message
    assert entry.files[1].exists()  # left as it is
    return message


def record(path: str, existed: bool = True, after: bytes = VICTIM) -> dict:
    return {"path": path, "existed": existed, "mode": 0o644, "after_sha256": sha(after), "created": 1.0}


@pytest.mark.parametrize("case", ["relative path out", "absolute path", "symlink out", "existed false outside"])
def test_a_planted_record_is_refused(layout, case):
    project, victim = layout
    if case == "relative path out":
        plant(project, record("../outside/victim.txt"))
    elif case == "absolute path":
        plant(project, record(str(victim)))
    elif case == "symlink out":
        (project / "docs").symlink_to(victim.parent)
        plant(project, record("docs/victim.txt"))
    else:
        plant(project, record("../outside/victim.txt", existed=False), before=None)
    refused(project, "not made here by codeup-tui")
    assert victim.read_bytes() == VICTIM


@pytest.mark.parametrize("case", ["relative path out", "absolute path", "symlink out", "existed false outside"])
def test_even_a_record_with_a_valid_mac_cannot_leave_the_project(layout, case):
    """The path check stands on its own: a record signed with this user's key (a project
    moved, a key stolen) still never writes or removes a file outside the project."""
    project, victim = layout
    store = UndoStore(project)
    path = {"relative path out": "../outside/victim.txt", "absolute path": str(victim),
            "symlink out": "docs/victim.txt", "existed false outside": "../outside/victim.txt"}[case]
    if case == "symlink out":
        (project / "docs").symlink_to(victim.parent)
    existed = case != "existed false outside"
    before = b"pwned\n" if existed else None
    meta = plant(project, record(path, existed=existed), before=before)
    entry = store.last()
    meta.write_text(json.dumps(dict(record(path, existed=existed), mac=record_mac(undo_key(), project, entry, before))))
    refused(project, "outside the project")
    assert victim.read_bytes() == VICTIM


def test_an_edited_record_or_before_file_is_refused(layout):
    project, victim = layout
    store = UndoStore(project)
    entry = apply_plan(plan_insert(project, "a.py", "b = 2\n", InsertMode.append), store)
    before_file, meta_file = entry.files
    genuine = json.loads(meta_file.read_text())
    # The record pointed at the victim, its MAC kept.
    meta_file.write_text(json.dumps(dict(genuine, path="../outside/victim.txt", after_sha256=sha(VICTIM))))
    refused(project, "not made here by codeup-tui")
    assert victim.read_bytes() == VICTIM
    # The record as it was, but other bytes to restore.
    meta_file.write_text(json.dumps(genuine))
    before_file.write_bytes(b"import os; os.system('echo pwned')\n")
    refused(project, "not made here by codeup-tui")
    assert (project / "a.py").read_bytes() == b"a = 1\nb = 2\n"
    # A MAC made with another key (the repository's own) is no better.
    meta_file.write_text(json.dumps(dict(genuine, mac="0" * 64)))
    refused(project, "not made here by codeup-tui")


def test_the_key_lives_outside_the_project(layout):
    project, _victim = layout
    entry = apply_plan(plan_insert(project, "a.py", "b = 2\n", InsertMode.append), UndoStore(project))
    key = (data_dir() / "undo.key").read_bytes()
    assert len(key) == 32
    for path in project.rglob("*"):
        if path.is_file():
            assert key not in path.read_bytes() and key.hex() not in path.read_text(errors="replace")
    assert UndoStore(project).undo(entry) == b"a = 1\n"  # a genuine snapshot still undoes


def test_snapshots_are_never_written_through_a_planted_symlink(layout):
    project, victim = layout
    folder = project / ".codeup" / "undo"
    folder.mkdir(parents=True)
    (folder / "000001.before").symlink_to(victim)  # where the first snapshot would go
    (project / ".codeup" / ".gitignore").symlink_to(victim.parent / "created-by-codeup")  # dangling
    entry = apply_plan(plan_insert(project, "a.py", "b = 2\n", InsertMode.append), UndoStore(project))
    assert victim.read_bytes() == VICTIM
    assert not (victim.parent / "created-by-codeup").exists()
    assert entry.number == 2 and (folder / "000001.before").is_symlink()
    assert UndoStore(project).undo(entry) == b"a = 1\n"


@pytest.mark.parametrize("which", [".codeup", ".codeup/undo"])
def test_a_state_folder_that_is_a_symlink_stops_snapshots_and_undo(layout, which):
    project, victim = layout
    elsewhere = victim.parent / "state"
    elsewhere.mkdir()
    if which == ".codeup/undo":
        (project / ".codeup").mkdir()
    (project / which).symlink_to(elsewhere)
    plan = plan_insert(project, "a.py", "b = 2\n", InsertMode.append)
    with pytest.raises(InsertError, match="not a folder") as caught:
        apply_plan(plan, UndoStore(project))
    assert "nothing written" in str(caught.value)
    assert (project / "a.py").read_bytes() == b"a = 1\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == []
    # Records placed there are refused too.
    (elsewhere / "undo" if which == ".codeup" else elsewhere).mkdir(exist_ok=True)
    meta_folder = elsewhere / "undo" if which == ".codeup" else elsewhere
    (meta_folder / "000001.before").write_bytes(b"pwned\n")
    (meta_folder / "000001.json").write_text(json.dumps(record("a.py", after=b"a = 1\n")))
    refused(project, "not a folder")
    assert (project / "a.py").read_bytes() == b"a = 1\n"


def test_a_before_file_that_is_a_symlink_is_not_read(layout):
    project, victim = layout
    folder = project / ".codeup" / "undo"
    plant(project, record("a.py", after=b"a = 1\n"), before=None)
    (folder / "000001.before").symlink_to("/dev/zero")  # would never end
    refused(project, "cannot be read")
    assert os.path.islink(folder / "000001.before")


def test_a_planted_git_exclude_symlink_is_not_written_through(layout):
    project, victim = layout
    (project / ".git" / "info").mkdir(parents=True)  # an unpacked archive can hold any .git/
    (project / ".git" / "info" / "exclude").symlink_to(victim)
    apply_plan(plan_insert(project, "a.py", "b = 2\n", InsertMode.append), UndoStore(project))
    assert victim.read_bytes() == VICTIM
    assert (project / ".codeup" / ".gitignore").read_text().splitlines()[-1] == "*"  # still out of git
