"""Saved history in the TUI, with a FAKE backend at 80x24: answers saved as they stream,
the history list after a restart, resuming a conversation and following up on it, the draft,
up-arrow recall, and the remembered context selection. Each test has its own data folder
(conftest's autouse ``isolated_data``); "a restart" is a second app on the same folder."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.helpers.tui_pilot import SIZE, exchanges, make_app, ready, select_in_tree, wait_until
from tests.helpers.tui_pilot import chat_project as project
from tests.helpers.tui_fakes import FakeBackend

from codeup_tui.tui.history import HistoryStore, SavedFile, TurnStart, default_history_path, project_key
from codeup_tui.tui.screens.history import ConfirmScreen, HistoryScreen
from codeup_tui.tui.widgets import ContextList, Conversation, InstructionEditor


def saved(fn):
    """Read the history file as another program would, while or after the app runs."""
    store = HistoryStore(default_history_path())
    try:
        return fn(store)
    finally:
        store.close()


async def send(pilot, text: str) -> None:
    screen = pilot.app.screen
    turns = len(screen.history)
    keys = ["enter" if char == "\n" else char for char in text]
    await pilot.press("ctrl+e", *keys, "ctrl+j")
    await wait_until(pilot, lambda: len(screen.history) == turns + 1 and not screen.generating)


async def restored(pilot):
    screen = await ready(pilot)
    await wait_until(pilot, lambda: screen._restored)
    return screen


async def test_an_answer_is_saved_as_it_streams_and_resumed_after_a_restart(tmp_path: Path):
    root = project(tmp_path)
    pieces = [f"w{i} " for i in range(60)]
    halfway = threading.Event()
    backend = FakeBackend(answers=[pieces], piece_delay=0.01, midway_gate=halfway)
    app = make_app(root, backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await restored(pilot)
        await select_in_tree(pilot, "a.py")
        await wait_until(pilot, lambda: screen.context.all_counted and len(screen.context) == 1)
        await pilot.press("ctrl+e", *"Explain a", "ctrl+j")
        await wait_until(pilot, lambda: screen.conversation_id is not None)
        conversation = screen.conversation_id

        def partly_saved() -> bool:
            turns = saved(lambda store: store.load_turns(conversation))
            return bool(turns) and turns[0].state == "streaming" and len(turns[0].answer) > 0

        await wait_until(pilot, partly_saved)  # saved while it streams, seen from outside
        assert not backend.handles[0].done
        halfway.set()
        await wait_until(pilot, lambda: not screen.generating, timeout=10)
    [stored] = saved(lambda store: store.load_turns(conversation))
    assert (stored.answer, stored.state) == ("".join(pieces), "done")
    assert stored.paths == ("a.py",) and stored.note.startswith("done · 60 tokens")

    backend = FakeBackend(answers=[["It returns 1."]])
    app = make_app(root, backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await restored(pilot)
        await pilot.press("ctrl+n")  # the restored selection is dropped below, on resume
        await pilot.press("ctrl+l")
        assert isinstance(app.screen, HistoryScreen)
        history = app.screen
        await wait_until(pilot, lambda: history.conversations is not None)
        assert [c.title for c in history.conversations] == ["Explain a"]
        assert history.conversations[0].turns == 1
        await pilot.press("enter")
        assert app.screen is screen
        await wait_until(pilot, lambda: len(exchanges(app)) == 1)
        [exchange] = exchanges(app)
        assert (exchange.instruction, exchange.answer, exchange.state) == ("Explain a", "".join(pieces), "done")
        assert exchange.markdown.source == exchange.answer
        assert screen.conversation_id == conversation
        assert [t.response for t in screen.history] == ["".join(pieces)]
        await wait_until(pilot, lambda: screen.context.paths == ["a.py"] and screen.context.all_counted)
        await send(pilot, "And what does it return?")
        # The follow-up carries the resumed turn, its file and answer, as if never closed.
        [prompt] = backend.prompts
        assert prompt.count("### Instruction:") == 2 and prompt.count("def a():") == 1
        assert "Explain a" in prompt and "".join(pieces) in prompt and "And what does it return?" in prompt
    turns = saved(lambda store: store.load_turns(conversation))
    assert [(t.instruction, t.answer) for t in turns] == [
        ("Explain a", "".join(pieces)), ("And what does it return?", "It returns 1.")
    ]


async def test_an_answer_cut_off_by_a_crash_is_shown_as_interrupted_and_followed_on(tmp_path: Path):
    root = project(tmp_path)
    key = project_key(root)

    def crashed(store: HistoryStore) -> None:  # what a killed app leaves behind
        store.begin_turn(TurnStart("dead", key, 0, "Write a poem", None, (), ()))
        store.update_answer("dead", 0, "Roses are red,")

    saved(crashed)
    backend = FakeBackend(answers=[["Violets are blue."]])
    app = make_app(root, backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await restored(pilot)
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: app.screen.conversations)
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(exchanges(app)) == 1)
        [exchange] = exchanges(app)
        assert exchange.answer == "Roses are red," and exchange.state == "stopped"
        assert "interrupted" in exchange.state_text
        await send(pilot, "Finish it")
        assert "Roses are red," in backend.prompts[0]


async def test_the_draft_survives_a_restart_and_is_cleared_when_sent(tmp_path: Path):
    root = project(tmp_path)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await restored(pilot)
        await pilot.press("ctrl+e", *"refactor the", "enter", *"parser")
    # Closed at once, before the save delay: the draft is written on the way out.
    assert saved(lambda store: store.load_draft(project_key(root))) == "refactor the\nparser"
    backend = FakeBackend()
    app = make_app(root, backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await restored(pilot)
        editor = screen.query_one(InstructionEditor)
        assert editor.text == "refactor the\nparser"
        assert editor.cursor_location == (1, len("parser"))  # typing goes on at the end
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: len(screen.history) == 1)
        assert saved(lambda store: store.load_draft(project_key(root))) == ""
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await restored(pilot)
        assert screen.query_one(InstructionEditor).text == ""


async def test_up_recalls_earlier_instructions_after_a_restart_and_keeps_the_draft(tmp_path: Path):
    root = project(tmp_path)
    app = make_app(root, FakeBackend(answers=[["ok"]]))
    async with app.run_test(size=SIZE) as pilot:
        await restored(pilot)
        await send(pilot, "first")
        await send(pilot, "second\nline two")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await restored(pilot)
        editor = screen.query_one(InstructionEditor)
        await pilot.press("ctrl+e", *"my draft")
        await pilot.press("up")
        assert editor.text == "second\nline two" and editor.cursor_location == (1, len("line two"))
        await pilot.press("up")  # the cursor moves up through the entry's lines first
        assert editor.text == "second\nline two" and editor.cursor_location[0] == 0
        await pilot.press("up")
        assert editor.text == "first"
        await pilot.press("up")  # the oldest: it stays
        assert editor.text == "first"
        await pilot.press(*" edited")
        await pilot.press("down")
        assert editor.text == "second\nline two" and editor.cursor_location[0] == 0
        await pilot.press("down", "down")  # down through its lines, then past the newest
        assert editor.text == "my draft"
        await pilot.press("up", "up", "up")
        assert editor.text == "first edited"  # the edit stays with the entry while walking...
        assert editor.recall_entries == ["second\nline two", "first"]  # ...never in the history
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: len(screen.history) == 1)
        assert editor.recall_entries[0] == "first edited" and editor.text == ""
        await pilot.press("up")
        assert editor.text == "first edited"


async def test_up_on_a_later_line_moves_the_cursor_not_the_history(tmp_path: Path):
    root = project(tmp_path)
    app = make_app(root, FakeBackend(answers=[["ok"]]))
    async with app.run_test(size=SIZE) as pilot:
        screen = await restored(pilot)
        await send(pilot, "earlier")
        editor = screen.query_one(InstructionEditor)
        await pilot.press(*"a", "enter", *"b")
        await pilot.press("up")
        assert editor.text == "a\nb" and editor.cursor_location[0] == 0
        await pilot.press("down")  # the draft is newest: down moves the cursor
        assert editor.text == "a\nb" and editor.cursor_location[0] == 1


async def test_the_context_selection_is_remembered_and_unusable_files_are_left_out(tmp_path: Path):
    root = project(tmp_path)
    (root / "c.txt").write_text("text for now\n")
    (root / "d.md").write_text("# notes\n")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await restored(pilot)
        for name in ["a.py", "big.py", "c.txt", "d.md"]:
            await select_in_tree(pilot, name)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: app.screen.loaded)
        await pilot.press(*"gen/out.py", "enter")  # ignored, added on purpose
        await wait_until(pilot, lambda: len(screen.context) == 5 and screen.context.all_counted)
    assert saved(lambda store: store.load_selection(project_key(root))) == [
        SavedFile("a.py"), SavedFile("big.py"), SavedFile("c.txt"), SavedFile("d.md"),
        SavedFile("gen/out.py", ignored=True),
    ]
    (root / "big.py").unlink()
    (root / "c.txt").write_bytes(b"now \x00 binary")
    (root / ".gitignore").write_text("gen/\n*.log\n*.md\n")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await restored(pilot)
        await wait_until(pilot, lambda: screen.context.all_counted)
        assert screen.context.paths == ["a.py", "gen/out.py"]
        assert screen.context.get("gen/out.py").ignored
        assert "gen/out.py (ignored)" in screen.query_one(ContextList).text
        [notice] = [n.message for n in app._notifications if n.message.startswith("Left out")]
        assert "big.py (no longer exists)" in notice and "c.txt (binary file)" in notice
        assert "d.md (now ignored by .gitignore)" in notice
    assert [f.path for f in saved(lambda store: store.load_selection(project_key(root)))] == ["a.py", "gen/out.py"]


async def test_history_deletes_after_a_yes_and_deleting_the_open_one_starts_afresh(tmp_path: Path):
    root = project(tmp_path)
    app = make_app(root, FakeBackend(answers=[["ok"]]))
    async with app.run_test(size=SIZE) as pilot:
        screen = await restored(pilot)
        await send(pilot, "the older conversation")
        older = screen.conversation_id
        await pilot.press("ctrl+n")
        await send(pilot, "the newer conversation")
        newer = screen.conversation_id
        await pilot.press("ctrl+l")
        history = app.screen
        await wait_until(pilot, lambda: history.conversations is not None)
        assert [c.id for c in history.conversations] == [newer, older]
        region = history.query_one("#history").region
        assert region.width <= 80 and region.height <= 24 and region.x >= 0 and region.y >= 0
        await pilot.press("down", "d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.screen is history and len(history.conversations) == 2
        await pilot.press("d", "y")
        await wait_until(pilot, lambda: [c.id for c in history.conversations] == [newer])
        assert saved(lambda store: [c.id for c in store.list_conversations(project_key(root))]) == [newer]
        assert len(screen.query_one(Conversation).exchanges) == 1  # another one went: the open one stays
        await pilot.press("d", "enter")  # the open conversation itself
        await wait_until(pilot, lambda: history.conversations == [])
        await pilot.press("escape")
        assert app.screen is screen
        await wait_until(pilot, lambda: exchanges(app) == [] and screen.conversation_id is None)
        assert screen.history == []


async def test_a_damaged_history_file_is_reported_once_and_the_chat_goes_on(tmp_path: Path):
    path = default_history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    junk = b"definitely not a database " * 64
    path.write_bytes(junk)
    backend = FakeBackend(answers=[["still works"]])
    app = make_app(project(tmp_path), backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await restored(pilot)
        await send(pilot, "hello")
        await pilot.press(*"more typing")
        await pilot.pause(0.7)  # a draft save is attempted (and skipped)
        assert exchanges(app)[0].answer == "still works"
        notices = [n.message for n in app._notifications if n.message.startswith("History is off")]
        assert len(notices) == 1 and str(path) in notices[0]
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: "History is off" in str(app.screen.query_one("#history-hint").render()))
        await pilot.press("escape")
    assert path.read_bytes() == junk
