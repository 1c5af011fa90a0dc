"""The history store (tui/history.py), headless: conversations and turns as they stream,
recall, drafts, selections, crash safety, and a damaged file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tests.helpers.paths import REPO
from codeup_tui.tui.history import (
    BackgroundHistory,
    HistoryStore,
    HistoryUnavailable,
    SavedFile,
    TurnStart,
    data_dir,
    default_history_path,
    project_key,
)

PROJECT = "/home/user/project"


class Clock:
    """Time that moves one second per reading (orders rows without sleeping)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def turn(conversation: str, index: int, instruction: str, project: str = PROJECT, **fields) -> TurnStart:
    values = dict(input_text=None, paths=(), files=(), model="fake-model", template="alpaca")
    values.update(fields)
    return TurnStart(conversation, project, index, instruction, **values)


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    store = HistoryStore(tmp_path / "history.sqlite3", clock=Clock())
    yield store
    store.close()


def test_a_turn_is_saved_when_it_starts_updated_as_it_streams_and_finished(store: HistoryStore):
    files = (("a.py", "d1g35t"),)
    store.begin_turn(turn("c1", 0, "Explain a.py\nin detail", input_text="a.py\n```\nx\n```", paths=("a.py", "b.py"),
                          files=files))
    [started] = store.load_turns("c1")
    assert (started.state, started.answer, started.finished) == ("streaming", "", None)
    store.update_answer("c1", 0, "It defines")
    assert store.load_turns("c1")[0].answer == "It defines"
    store.finish_turn("c1", 0, "It defines x.", "done", "done · 3 tokens", prompt_tokens=40, generated_tokens=3)
    [saved] = store.load_turns("c1")
    assert saved.instruction == "Explain a.py\nin detail"
    assert saved.input_text == "a.py\n```\nx\n```"
    assert saved.paths == ("a.py", "b.py") and saved.files == files
    assert (saved.answer, saved.state, saved.note) == ("It defines x.", "done", "done · 3 tokens")
    assert (saved.prompt_tokens, saved.generated_tokens) == (40, 3)
    assert saved.finished is not None and saved.finished > saved.started
    [summary] = store.list_conversations(PROJECT)
    assert (summary.id, summary.title, summary.turns) == ("c1", "Explain a.py", 1)
    assert (summary.model, summary.template) == ("fake-model", "alpaca")
    with pytest.raises(ValueError):
        store.finish_turn("c1", 0, "", "finished")


def test_conversations_are_per_project_and_the_most_recent_first(store: HistoryStore):
    store.begin_turn(turn("old", 0, "first conversation"))
    store.begin_turn(turn("new", 0, "second conversation"))
    store.begin_turn(turn("other", 0, "elsewhere", project="/another/project"))
    assert [c.id for c in store.list_conversations(PROJECT)] == ["new", "old"]
    store.begin_turn(turn("old", 1, "a follow-up"))  # used again: it comes first
    listed = store.list_conversations(PROJECT)
    assert [(c.id, c.turns) for c in listed] == [("old", 2), ("new", 1)]
    assert listed[0].title == "first conversation"  # the title stays the first instruction's
    assert [c.id for c in store.list_conversations("/another/project")] == ["other"]


def test_a_turn_at_a_taken_index_replaces_it_and_what_follows(store: HistoryStore):
    for index, text in enumerate(["one", "two", "three"]):
        store.begin_turn(turn("c", index, text))
        store.finish_turn("c", index, f"answer {text}", "done")
    store.begin_turn(turn("c", 1, "two"))  # regenerated
    store.finish_turn("c", 1, "another answer", "done")
    assert [(t.instruction, t.answer) for t in store.load_turns("c")] == [
        ("one", "answer one"), ("two", "another answer")
    ]


def test_delete_removes_the_conversation_and_its_turns(store: HistoryStore):
    store.begin_turn(turn("keep", 0, "kept"))
    store.begin_turn(turn("drop", 0, "dropped"))
    store.begin_turn(turn("drop", 1, "dropped too"))
    assert store.delete_conversation("drop") is True
    assert store.delete_conversation("drop") is False
    assert [c.id for c in store.list_conversations(PROJECT)] == ["keep"]
    assert store.load_turns("drop") == []
    assert store.instructions(PROJECT) == ["kept"]


def test_instructions_for_recall_are_newest_first_each_once_per_project(store: HistoryStore):
    store.begin_turn(turn("a", 0, "list files"))
    store.begin_turn(turn("a", 1, "explain main"))
    store.begin_turn(turn("b", 0, "list files"))  # asked again later
    store.begin_turn(turn("c", 0, "not here", project="/elsewhere"))
    assert store.instructions(PROJECT) == ["list files", "explain main"]
    assert store.instructions(PROJECT, limit=1) == ["list files"]


def test_drafts_and_selections_are_kept_per_project(store: HistoryStore):
    assert store.load_draft(PROJECT) == "" and store.load_selection(PROJECT) == []
    store.save_draft(PROJECT, "half an\nidea")
    store.save_draft("/other", "something else")
    assert store.load_draft(PROJECT) == "half an\nidea"
    store.save_draft(PROJECT, "")  # sent: cleared
    assert store.load_draft(PROJECT) == "" and store.load_draft("/other") == "something else"
    chosen = [SavedFile("a.py"), SavedFile("gen/out.py", ignored=True)]
    store.save_selection(PROJECT, chosen)
    assert store.load_selection(PROJECT) == chosen
    store.save_selection(PROJECT, [])
    assert store.load_selection(PROJECT) == []


def test_the_history_survives_closing_and_reopening(tmp_path: Path):
    path = tmp_path / "history.sqlite3"
    first = HistoryStore(path)
    first.begin_turn(turn("c", 0, "remember me"))
    first.finish_turn("c", 0, "I will.", "done")
    first.close()
    again = HistoryStore(path)
    assert [t.answer for t in again.load_turns("c")] == ["I will."]
    again.close()


def test_a_second_connection_sees_the_partial_answer_while_it_streams(tmp_path: Path):
    path = tmp_path / "history.sqlite3"
    writer = HistoryStore(path)
    reader = HistoryStore(path)
    writer.begin_turn(turn("c", 0, "stream"))
    writer.update_answer("c", 0, "The first half")
    [seen] = reader.load_turns("c")
    assert (seen.answer, seen.state) == ("The first half", "streaming")
    raw = sqlite3.connect(path)  # any SQLite client, not only this module
    assert raw.execute("SELECT answer FROM turns").fetchone() == ("The first half",)
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()
    writer.close()
    reader.close()


@pytest.mark.skipif(not hasattr(os, "kill") or sys.platform == "win32", reason="needs SIGKILL (POSIX)")
def test_a_process_killed_mid_answer_loses_nothing_it_had_saved(tmp_path: Path):
    path = tmp_path / "history.sqlite3"
    script = textwrap.dedent(f"""
        import os, signal
        from codeup_tui.tui.history import HistoryStore, TurnStart
        store = HistoryStore({str(path)!r})
        store.begin_turn(TurnStart("c", "/p", 0, "crash", None, (), ()))
        store.update_answer("c", 0, "shown before the crash")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == -9, result.stderr
    store = HistoryStore(path)
    [saved] = store.load_turns("c")
    assert (saved.answer, saved.state) == ("shown before the crash", "streaming")
    store.close()


def test_a_file_that_is_not_a_database_is_refused_in_one_line_and_left_alone(tmp_path: Path):
    path = tmp_path / "history.sqlite3"
    junk = b"this is not SQLite\n" * 100
    path.write_bytes(junk)
    with pytest.raises(HistoryUnavailable) as caught:
        HistoryStore(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    assert path.read_bytes() == junk  # the user's file is never replaced


def test_a_file_from_a_newer_version_is_refused(tmp_path: Path):
    path = tmp_path / "history.sqlite3"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version=99")
    raw.close()
    with pytest.raises(HistoryUnavailable, match="newer codeup-tui"):
        HistoryStore(path)


def test_a_data_folder_that_cannot_be_made_is_refused(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with pytest.raises(HistoryUnavailable, match="cannot create"):
        HistoryStore(blocker / "codeup-tui" / "history.sqlite3")


def test_background_history_runs_calls_in_order_and_writes_them_all_before_close(tmp_path: Path):
    path = tmp_path / "history.sqlite3"
    history = BackgroundHistory(path)
    caller = threading.get_ident()
    threads = history.submit(lambda store: threading.get_ident()).result()
    assert threads != caller  # the disk is never touched on the calling thread
    history.submit(lambda store: store.begin_turn(turn("c", 0, "go")))
    for n in range(1, 51):
        history.submit(lambda store, n=n: store.update_answer("c", 0, "word " * n))
    history.submit(lambda store: store.finish_turn("c", 0, "word " * 50 + "end", "done"))
    history.close()  # without waiting on any future first
    store = HistoryStore(path)
    assert store.load_turns("c")[0].answer == "word " * 50 + "end"
    store.close()
    assert history.submit(lambda store: "after close", default="default").result() == "default"


def test_background_history_reports_a_damaged_file_once_then_carries_on_without(tmp_path: Path):
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"\x00garbage" * 512)
    reports: list[str] = []
    history = BackgroundHistory(path, reports.append)
    assert history.submit(lambda store: store.load_draft(PROJECT), default="").result() == ""
    assert history.submit(lambda store: store.list_conversations(PROJECT)).result() is None
    history.submit(lambda store: store.begin_turn(turn("c", 0, "lost"))).result()
    history.close()
    assert len(reports) == 1 and str(path) in reports[0] and "\n" not in reports[0]
    assert history.failure == reports[0]
    assert path.read_bytes() == b"\x00garbage" * 512


def test_the_data_folder_comes_from_the_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("CODEUP_TUI_DATA", str(tmp_path / "mine"))
    assert default_history_path() == tmp_path / "mine" / "history.sqlite3"
    monkeypatch.delenv("CODEUP_TUI_DATA")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "codeup-tui"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".local" / "share" / "codeup-tui"


def test_the_tests_never_write_to_the_real_user_data_folder():
    # conftest's autouse fixture: history goes to a temporary folder in every test.
    assert Path(os.environ["CODEUP_TUI_DATA"]).resolve() != (Path.home() / ".local" / "share" / "codeup-tui")
    assert "codeup-data" in os.environ["CODEUP_TUI_DATA"]


def test_a_project_is_known_by_its_resolved_path(tmp_path: Path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert project_key(link) == project_key(real) == str(real.resolve())
    assert project_key(real / "sub" / "..") == str(real.resolve())


def test_the_store_never_imports_textual():
    code = ("import sys, codeup_tui.tui.history; "
            "bad = [m for m in sys.modules if m.split('.')[0] == 'textual']; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
