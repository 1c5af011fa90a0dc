"""tui/session: the conversation as plain data (no Textual, no Pilot): the budget, prompts
rendered once, regenerate and resume, context digests, saved selections checked on disk."""

from __future__ import annotations

import sys
from pathlib import Path

from codeup_tui.engine.generation import PromptTokens
from codeup_tui.engine.templates import load_template

from codeup_tui.tui.history import SavedFile, StoredTurn
from codeup_tui.tui.project import ProjectFiles
from codeup_tui.tui.prompt import PastTurn, file_block, render_prompt, text_digest
from codeup_tui.tui.session import DiskChanges, Session, prepare_prompt, resumed_state

ALPACA = load_template("alpaca")


class WordCounter:
    """Counts whitespace-separated words; remembers every text it was asked to count."""

    def __init__(self, n_ctx: int = 1000) -> None:
        self.n_ctx = n_ctx
        self.counted: list[str] = []

    def tokenize_prompt(self, text: str, *, add_bos: bool | None = None, parse_special: bool = False) -> PromptTokens:
        self.counted.append(text)
        return PromptTokens.of_ids(text, range(len(text.split()) + (1 if add_bos else 0)))


def session_with(tmp_path: Path, files: dict[str, str]) -> Session:
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    session = Session(ProjectFiles(tmp_path))
    for rel, text in files.items():
        session.context.add(rel)
        session.context.set_counted(rel, text, len(file_block(rel, text).split()))
    return session


def test_the_budget_measures_the_prompt_that_is_sent(tmp_path: Path):
    counter = WordCounter(n_ctx=200)
    prepared = prepare_prompt(ALPACA, [], "Explain it.", [("a.py", "x = 1\n")], counter=counter, max_tokens=50)
    expected_prompt, expected_input = render_prompt(ALPACA, [], "Explain it.", [("a.py", "x = 1\n")])
    assert prepared.prompt == expected_prompt and prepared.input_text == expected_input
    assert counter.counted[0] == prepared.prompt  # the budget counted the very text the send uses
    budget = prepared.budget
    assert budget is not None
    assert budget.prompt_tokens == len(expected_prompt.split()) + (1 if ALPACA.add_bos else 0)
    assert budget.n_ctx == 200 and budget.reserve == 50
    assert budget.file_tokens == {"a.py": len(file_block("a.py", "x = 1\n").split())}
    assert budget.fits and not budget.has_history


def test_a_prompt_too_long_for_the_context_does_not_fit():
    counter = WordCounter(n_ctx=30)
    text = "word " * 40
    budget = prepare_prompt(ALPACA, [], "Explain.", [("big.txt", text)], counter=counter).budget
    assert budget is not None and not budget.fits
    assert budget.reserve == 30 // 4  # no max_tokens: a quarter of the context is kept for the answer
    assert [path for path, _ in budget.files_to_drop()] == ["big.txt"]


def test_without_a_counter_only_the_prompt_is_rendered():
    prepared = prepare_prompt(ALPACA, [], "Write fib.", [])
    assert prepared.budget is None
    assert prepared.prompt.endswith("### Instruction:\nWrite fib.\n\n### Response:\n")


def test_context_files_already_counted_are_not_counted_again(tmp_path: Path):
    session = session_with(tmp_path, {"a.py": "x = 1\n", "b.py": "y = 2\n"})
    counter = WordCounter()
    files = session.budget_files()
    assert files == [("a.py", "x = 1\n"), ("b.py", "y = 2\n")]
    prepared = session.prepare(ALPACA, "Explain.", files, counter=counter)
    assert counter.counted == [prepared.prompt]  # the files' counts came from the context
    # A file whose text differs from the counted one is counted afresh.
    counter.counted.clear()
    prepared = session.prepare(ALPACA, "Explain.", [("a.py", "x = 3 + 4\n")], counter=counter)
    assert counter.counted == [prepared.prompt, file_block("a.py", "x = 3 + 4\n")]


def test_the_budget_waits_for_every_file_to_be_read(tmp_path: Path):
    session = session_with(tmp_path, {"a.py": "x = 1\n"})
    session.context.add("new.py")
    assert session.budget_files() is None


def test_files_the_conversation_holds_are_not_sent_again_until_they_change(tmp_path: Path):
    session = session_with(tmp_path, {"a.py": "x = 1\n"})
    first = session.prepare(ALPACA, "Explain.", session.budget_files())
    assert first.sending == (("a.py", "x = 1\n"),)
    turn = first.turn()
    assert turn.files == (("a.py", text_digest("x = 1\n")),)
    session.answered(turn, "It sets x.")
    assert session.sent_paths() == {"a.py"}  # its digest matches: the list marks it as sent
    again = session.prepare(ALPACA, "And now?", session.budget_files())
    assert again.sending == () and again.input_text is None
    assert "It sets x." in again.prompt
    session.context.set_counted("a.py", "x = 2\n", 5)  # changed on disk: sent again
    assert session.sent_paths() == set()
    assert session.prepare(ALPACA, "And now?", session.budget_files()).sending == (("a.py", "x = 2\n"),)


def test_regenerate_takes_the_last_turn_back_and_restores_it_on_refusal(tmp_path: Path):
    session = session_with(tmp_path, {})
    first = PastTurn("one", None, "answer one", ())
    second = PastTurn("two", "a.py\n```python\nx\n```", "answer two", (("a.py", "d"),))
    session.turns += [first, second]
    taken = session.regenerate()
    assert taken is not None
    request, last = taken
    assert last == second and session.turns == [first]
    assert (request.instruction, request.paths, request.history, request.clear_editor) == (
        "two", ("a.py",), (first,), False)
    session.restore_turn(last)
    assert session.turns == [first, second]
    session.new_conversation()
    assert session.regenerate() is None and session.conversation_id is None


def test_send_request_snapshots_the_present_context(tmp_path: Path):
    session = session_with(tmp_path, {"a.py": "x\n", "b.py": "y\n"})
    session.context.mark_missing("b.py")
    session.turns.append(PastTurn("one", None, "answer", ()))
    request = session.send_request("two")
    assert request.paths == ("a.py",) and request.history == tuple(session.turns) and request.clear_editor
    session.turns.clear()
    assert request.history != ()  # a snapshot: later changes do not reach a running send


def test_resume_keeps_failed_answers_out_of_what_the_model_is_told(tmp_path: Path):
    session = Session(ProjectFiles(tmp_path))
    turns = [
        StoredTurn(0, "one", None, (), (), "first answer", "done", "done"),
        StoredTurn(1, "two", None, (), (), "", "error", "error: boom"),
        StoredTurn(2, "three", None, ("a.py",), (("a.py", "d"),), "half", "streaming"),
    ]
    session.resume("abc", turns)
    assert session.conversation_id == "abc"
    assert [turn.instruction for turn in session.turns] == ["one", "three"]
    assert session.turns[1].files == (("a.py", "d"),)
    assert resumed_state(turns[2]) == ("stopped", "interrupted: the app ended while it was answering")
    assert resumed_state(turns[1]) == ("error", "error: boom")
    assert resumed_state(StoredTurn(3, "x", None, (), (), "y", "done")) == ("done", "done")


def test_saved_files_are_checked_on_disk(tmp_path: Path):
    (tmp_path / ".gitignore").write_text("build/\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "out.txt").write_text("built\n")
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    session = Session(ProjectFiles(tmp_path))
    saved = [SavedFile("a.py"), SavedFile("gone.py"), SavedFile("build/out.txt"), SavedFile("blob.bin")]
    kept, dropped = session.check_files(saved)
    assert kept == [SavedFile("a.py")]
    assert dict(dropped)["gone.py"] == "no longer exists"
    assert dict(dropped)["build/out.txt"] == "now ignored by .gitignore"
    assert "blob.bin" in dict(dropped)
    kept, _ = session.check_files(saved, allow_ignored=True)  # a resumed conversation sent it
    assert SavedFile("build/out.txt", ignored=True) in kept
    assert session.select_saved(kept, replace=True) == ["a.py", "build/out.txt"]
    assert session.selection() == (SavedFile("a.py"), SavedFile("build/out.txt", ignored=True))


def test_the_session_does_not_import_textual():
    import subprocess

    code = "import sys, codeup_tui.tui.session; assert 'textual' not in sys.modules, 'textual imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


class Timings:
    prompt_tokens = 12
    generated_tokens = 3


def test_a_turn_is_saved_as_it_streams_and_resumed_from_the_history(tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "a.py").write_text("x = 1\n")
    db = tmp_path / "history.sqlite3"
    session = Session(ProjectFiles(project), db)
    session.context.add("a.py")
    session.context.set_counted("a.py", "x = 1\n", 7)
    request = session.send_request("Explain a.py.")
    prepared = session.prepare(ALPACA, request.instruction, [("a.py", "x = 1\n")], request.history)
    session.begin_turn(1, request, prepared.turn(), model="m", template="alpaca")
    conversation = session.conversation_id
    assert conversation is not None and session.saving_exchange == 1
    session.answer_shown(2, "not this exchange")  # another exchange's text is not saved
    session.answer_shown(1, "It sets")
    session.finish_turn("It sets x.", "done", "done · 3 tokens", Timings())
    assert session.saving_exchange is None
    session.close()

    again = Session(ProjectFiles(project), db)
    loaded = again.load_conversation(conversation)
    assert loaded is not None
    turns, kept, dropped = loaded
    assert [(t.instruction, t.answer, t.state, t.paths) for t in turns] == [
        ("Explain a.py.", "It sets x.", "done", ("a.py",))]
    assert turns[0].files == (("a.py", text_digest("x = 1\n")),) and turns[0].input_text == prepared.input_text
    assert kept == [SavedFile("a.py")] and dropped == []
    again.resume(conversation, turns)
    assert again.turns == [prepared.turn("It sets x.")]
    assert again.load_conversation("no-such-conversation") is None
    again.close()


def test_an_answer_still_streaming_at_close_is_saved_as_stopped(tmp_path: Path):
    db = tmp_path / "history.sqlite3"
    session = Session(ProjectFiles(tmp_path), db)
    request = session.send_request("Write fib.")
    session.begin_turn(1, request, session.prepare(ALPACA, "Write fib.", []).turn(), model=None, template=None)
    session.answer_shown(1, "def fib")
    conversation = session.conversation_id
    session.close()
    loaded = Session(ProjectFiles(tmp_path), db).load_conversation(conversation)
    assert loaded is not None
    (turn,), _kept, _dropped = loaded
    assert (turn.answer, turn.state, turn.note) == ("def fib", "stopped", "stopped: the app was closed")


def test_the_draft_and_selection_are_saved_only_once_the_saved_ones_are_in(tmp_path: Path):
    db = tmp_path / "history.sqlite3"
    (tmp_path / "a.py").write_text("x\n")
    first = Session(ProjectFiles(tmp_path), db)
    assert first.load_saved_state() == ("", [], [], [])
    first.save_draft("typed before the saved draft came in")  # would overwrite it: not saved
    first.draft_restored("")
    first.save_draft("half an instruction")
    first.context.add("a.py")
    first.save_selection()
    first.close()
    second = Session(ProjectFiles(tmp_path), db)
    draft, kept, dropped, _instructions = second.load_saved_state()
    assert (draft, kept, dropped) == ("half an instruction", [SavedFile("a.py")], [])
    second.close()


def test_the_app_derives_template_sampling_and_limits_from_the_settings(tmp_path: Path):
    from tests.helpers.tui_fakes import FakeBackend

    from codeup_tui.tui.app import CodeupApp
    from codeup_tui.tui.config import Config, Settings

    settings = Settings(template="alpaca", temperature=0.3, top_k=7, max_tokens=77)
    app = CodeupApp(tmp_path, backend=FakeBackend(), settings=settings, seed=5,
                    config=Config(tmp_path / "config.toml"))
    assert app.template.name == "alpaca" and app.template_name == "alpaca"
    assert (app.sampling.temperature, app.sampling.top_k, app.sampling.seed) == (0.3, 7, 5)
    assert app.max_tokens == 77 and app.settings is settings
    # An argument given explicitly still wins over the settings.
    app = CodeupApp(tmp_path, backend=FakeBackend(), settings=settings, max_tokens=12,
                    config=Config(tmp_path / "config.toml"))
    assert app.max_tokens == 12 and app.sampling.seed is None


def test_changes_on_disk_rename_mark_and_recount_context_files(tmp_path: Path):
    session = session_with(tmp_path, {"a.py": "a\n", "b.py": "b\n", "c.py": "c\n"})
    root = tmp_path.resolve()
    changes = session.disk_changed(moved=[(root / "a.py", root / "src_a.py"), (root / "other", root / "x")],
                                   deleted=[root / "b.py", root / "not_in_context.py"],
                                   changed=[root / "c.py", root / "elsewhere.py"])
    assert changes.renamed == ("a.py → src_a.py",)
    assert changes.gone == ("b.py",) and changes.recount == ("src_a.py", "c.py") and changes.touched
    assert set(session.context.paths) == {"src_a.py", "b.py", "c.py"}
    assert session.context.get("b.py").missing and session.context.get("c.py").changed
    assert "b.py" not in session.context.present_paths
    # Nothing in the context touched: nothing to do.
    assert session.disk_changed([], [root / "b.py"], [root / "zzz.py"]) == DiskChanges()
