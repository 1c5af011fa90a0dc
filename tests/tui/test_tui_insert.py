"""Inserting an answer's code blocks into files, and the project watcher, in the app (Pilot,
80x24, a FAKE backend streaming scripted answers, real files in a temporary project)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from textual.widgets import Input, OptionList
from textual.widgets.markdown import MarkdownFence
from tests.helpers.tui_fakes import FakeBackend

from tests.helpers.tui_pilot import (
    ANSWER, FUNCTION, SIZE, ask, choose, exchanges, make_app, open_insert, preview, ready, select_in_tree, wait_until, with_a_py,
)
from tests.helpers.tui_pilot import insert_project as project
from codeup_tui.tui.widgets import ContextList, FilePanel

# -- selecting, copying -------------------------------------------------------------------------


async def test_blocks_are_selected_with_the_keys_and_copied(tmp_path: Path):
    app = make_app(project(tmp_path), FakeBackend(answers=[ANSWER]))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await ask(pilot, screen)
        exchange = exchanges(app)[0]
        await pilot.press("alt+n")  # no selection yet: the last block
        assert exchange.selected_block == 1
        bar = exchange.query_one(".block-bar")
        assert "block 2/2 · bash, 1 line" in str(bar.render())
        fences = list(exchange.markdown.query(MarkdownFence))
        assert [f.has_class("-selected-block") for f in fences] == [False, True]
        await pilot.press("alt+p")
        assert exchange.selected_block == 0 and "block 1/2 · python, 2 lines" in str(bar.render())
        assert [f.has_class("-selected-block") for f in fences] == [True, False]
        await pilot.press("alt+y")
        assert app._clipboard == FUNCTION
        # With the focus on the conversation, plain keys do it too.
        screen.query_one("#conversation").focus()
        await pilot.press("right_square_bracket")
        assert exchange.selected_block == 1
        await pilot.press("y")
        assert app._clipboard == "python -c 'import a'\n"


# -- inserting ------------------------------------------------------------------------------------


async def test_append_into_a_context_file_writes_the_preview_and_undo_restores(tmp_path: Path):
    original = (project(tmp_path) / "a.py").read_bytes()
    app = make_app(tmp_path, FakeBackend(answers=[ANSWER]))
    async with app.run_test(size=SIZE) as pilot:
        screen = await with_a_py(pilot)
        await ask(pilot, screen)
        await pilot.press("alt+p")  # from the last block to the python one
        await pilot.press("alt+p")
        dialog = await open_insert(pilot)
        await choose(pilot, dialog, "target", "a.py")  # the prompt's file is offered first
        await choose(pilot, dialog, "mode", "append")
        diff = await preview(pilot, dialog)
        assert "+def double(x):" in diff and "+++ b/a.py" in diff
        plan = dialog.plan
        await pilot.press("y")
        await wait_until(pilot, lambda: (tmp_path / "a.py").read_bytes() == plan.new_bytes)
        assert plan.new_bytes == original + FUNCTION.encode()
        await wait_until(pilot, lambda: any(n.title == "Inserted" for n in app._notifications))
        # Our own write: recounted, but no "changed" badge.
        await wait_until(pilot, lambda: screen.context.get("a.py").tokens > 10)
        await pilot.pause(0.6)
        assert not screen.context.get("a.py").changed
        assert "(changed)" not in screen.query_one(ContextList).text
        await pilot.press("alt+u")
        await wait_until(pilot, lambda: (tmp_path / "a.py").read_bytes() == original)
        await wait_until(pilot, lambda: any(n.title == "Undone" for n in app._notifications))


async def test_insert_at_a_line_and_replace_a_range_in_a_crlf_file(tmp_path: Path):
    target = tmp_path / "w.py"
    target.write_bytes(b"one = 1\r\ntwo = 2\r\nthree = 3\r\n")
    app = make_app(tmp_path, FakeBackend(answers=[ANSWER]))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await ask(pilot, screen)
        await pilot.press("alt+p", "alt+p")
        dialog = await open_insert(pilot)
        await choose(pilot, dialog, "target", "\0find")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "FileFinder" and app.screen.loaded)
        await pilot.press(*"w.py", "enter")
        await choose(pilot, dialog, "mode", "at_line")
        await wait_until(pilot, lambda: dialog.step == "lines")
        await pilot.press("9", "enter")  # not a line of the file: said, and the dialog stays
        await wait_until(pilot, lambda: "line 9 is not in w.py" in str(dialog.query_one("#insert-error").render()))
        dialog.query_one("#insert-lines", Input).value = ""
        await pilot.press("2", "enter")
        await preview(pilot, dialog)
        assert "CRLF kept" in str(dialog.query_one("#insert-question").render())
        await pilot.press("y")
        expected = b"one = 1\r\ndef double(x):\r\n    return 2 * x\r\ntwo = 2\r\nthree = 3\r\n"
        await wait_until(pilot, lambda: target.read_bytes() == expected)
        dialog = await open_insert(pilot)
        await choose(pilot, dialog, "target", "w.py")
        await choose(pilot, dialog, "mode", "replace_lines")
        await wait_until(pilot, lambda: dialog.step == "lines")
        await pilot.press(*"4-5", "enter")
        await preview(pilot, dialog)
        await pilot.press("y")
        expected = b"one = 1\r\ndef double(x):\r\n    return 2 * x\r\ndef double(x):\r\n    return 2 * x\r\n"
        await wait_until(pilot, lambda: target.read_bytes() == expected)


async def test_new_file_typed_as_a_path_and_escape_goes_back(tmp_path: Path):
    app = make_app(project(tmp_path), FakeBackend(answers=[ANSWER]))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await ask(pilot, screen)
        dialog = await open_insert(pilot)  # no selection: the last block (bash)
        assert dialog.request.block.language == "bash"
        await choose(pilot, dialog, "target", "\0other")
        await wait_until(pilot, lambda: dialog.step == "path")
        await pilot.press(*"scripts/run.sh", "enter")
        await wait_until(pilot, lambda: dialog.step == "mode")
        modes = dialog.query_one("#insert-modes", OptionList)
        assert modes.option_count == 1 and "create the file" in str(modes.get_option_at_index(0).prompt)
        await pilot.press("enter")
        await preview(pilot, dialog)
        await pilot.press("escape")  # back to the mode
        assert dialog.step == "mode"
        await pilot.press("enter")
        await preview(pilot, dialog)
        await pilot.press("n")  # cancel: nothing written
        await wait_until(pilot, lambda: app.screen is screen)
        assert not (tmp_path / "scripts").exists()


async def test_a_file_edited_after_the_prompt_blocks_the_insert_and_offers_a_rerun(tmp_path: Path):
    backend = FakeBackend(answers=[ANSWER, ["Again."]])
    app = make_app(project(tmp_path), backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await with_a_py(pilot)
        await ask(pilot, screen)
        (tmp_path / "a.py").write_bytes(b"def a():\n    return 42\n")  # someone edits it
        dialog = await open_insert(pilot)
        await choose(pilot, dialog, "target", "a.py")
        await wait_until(pilot, lambda: dialog.step == "stale")
        shown = str(dialog.query_one("#insert-diff").render())
        assert "-    return 1" in shown and "+    return 42" in shown
        assert "changed on disk since the prompt" in str(dialog.query_one("#insert-question").render())
        await pilot.press("y")  # not offered here
        assert dialog.step == "stale"
        await pilot.press("r")
        await wait_until(pilot, lambda: len(backend.prompts) == 2 and not screen.generating)
        assert "return 42" in backend.prompts[1] and "Write double." in backend.prompts[1]
        assert (tmp_path / "a.py").read_bytes() == b"def a():\n    return 42\n"


async def test_a_diff_that_does_not_apply_is_rejected_and_one_that_does_is_applied(tmp_path: Path):
    bad = "```diff\n--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n def a():\n-    return 7\n+    return 8\n```\n"
    good = "```diff\n--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n def a():\n-    return 1\n+    return 8\n```\n"
    app = make_app(project(tmp_path), FakeBackend(answers=[[bad], [good]]))
    async with app.run_test(size=SIZE) as pilot:
        screen = await with_a_py(pilot)
        await ask(pilot, screen, "Change it.")
        dialog = await open_insert(pilot)
        await choose(pilot, dialog, "target", "a.py")
        await wait_until(pilot, lambda: dialog.step == "mode")
        assert dialog.query_one("#insert-modes", OptionList).highlighted_option.id == "patch"
        await pilot.press("enter")
        await wait_until(pilot, lambda: "does not apply" in str(dialog.query_one("#insert-error").render()))
        assert dialog.step == "mode" and (tmp_path / "a.py").read_bytes() == b"def a():\n    return 1\n"
        await pilot.press("escape", "escape")
        await wait_until(pilot, lambda: app.screen is screen)
        await ask(pilot, screen, "Again.")
        dialog = await open_insert(pilot)
        await choose(pilot, dialog, "target", "a.py")
        await choose(pilot, dialog, "mode")
        await preview(pilot, dialog)
        await pilot.press("y")
        await wait_until(pilot, lambda: (tmp_path / "a.py").read_bytes() == b"def a():\n    return 8\n")


async def test_a_read_only_file_is_not_written_and_the_user_is_told_why(tmp_path: Path):
    target = project(tmp_path) / "b.py"
    os.chmod(target, 0o444)
    app = make_app(tmp_path, FakeBackend(answers=[ANSWER]))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await ask(pilot, screen)
        dialog = await open_insert(pilot)
        await choose(pilot, dialog, "target", "\0other")
        await pilot.press(*"b.py", "enter")
        await choose(pilot, dialog, "mode", "append")
        await preview(pilot, dialog)
        await pilot.press("y")
        await wait_until(pilot, lambda: any(n.title == "Not inserted" for n in app._notifications))
        message = next(n.message for n in app._notifications if n.title == "Not inserted")
        assert "read-only" in message and "b.py is unchanged" in message
        assert target.read_bytes() == b"b = 1\n" and stat.S_IMODE(target.stat().st_mode) == 0o444


async def test_editor_changes_are_previewed_again_then_written(tmp_path: Path, monkeypatch):
    editor = tmp_path.parent / f"{tmp_path.name}-editor.py"
    editor.write_text("import sys\nopen(sys.argv[1], 'a').write('# edited\\n')\n")
    monkeypatch.setenv("VISUAL", f"{sys.executable} {editor}")
    app = make_app(project(tmp_path), FakeBackend(answers=[ANSWER]))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await ask(pilot, screen)
        await pilot.press("alt+p", "alt+p")
        dialog = await open_insert(pilot)
        await choose(pilot, dialog, "target", "\0other")
        await pilot.press(*"b.py", "enter")
        await choose(pilot, dialog, "mode", "append")
        await preview(pilot, dialog)
        await pilot.press("e")
        await wait_until(pilot, lambda: dialog.plan is not None and dialog.plan.edited)
        assert "+# edited" in await preview(pilot, dialog)
        await pilot.press("y")
        await wait_until(pilot, lambda: (tmp_path / "b.py").read_bytes() == b"b = 1\n" + FUNCTION.encode()
                         + b"# edited\n")


# -- watching the project --------------------------------------------------------------------------


async def test_external_write_updates_tokens_and_badge_within_a_second(tmp_path: Path):
    app = make_app(project(tmp_path), FakeBackend())
    async with app.run_test(size=SIZE) as pilot:
        screen = await with_a_py(pilot)
        await wait_until(pilot, lambda: app.watcher is not None)
        before = screen.context.get("a.py").tokens
        (tmp_path / "a.py").write_text("def a():\n    return 1\n" + "# more\n" * 40)
        start = time.monotonic()
        await wait_until(pilot, lambda: screen.context.get("a.py").tokens != before, timeout=5)
        assert time.monotonic() - start < 1.0
        assert screen.context.get("a.py").changed
        await wait_until(pilot, lambda: "a.py (changed)" in screen.query_one(ContextList).text, timeout=1)
        await ask(pilot, screen, "Look.")  # sent as it is now: the badge goes
        assert not screen.context.get("a.py").changed and "# more" in app.backend.prompts[0]


async def test_a_change_during_a_streaming_answer_leaves_it_alone_and_the_next_prompt_reads_it(tmp_path: Path):
    # a long answer (4 s): on a busy machine the watcher's event can take a second or two
    pieces = [f"word{n} " for n in range(80)]
    backend = FakeBackend(answers=[pieces, ["ok"]], piece_delay=0.05)
    app = make_app(project(tmp_path), backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await with_a_py(pilot)
        await wait_until(pilot, lambda: app.watcher is not None)
        await pilot.press("ctrl+e", *"Stream.", "ctrl+j")
        await wait_until(pilot, lambda: exchanges(app) and "word3" in exchanges(app)[0].answer)
        (tmp_path / "a.py").write_text("def a():\n    return 'new'\n")
        await wait_until(pilot, lambda: screen.context.get("a.py").changed)
        assert screen.generating  # the change came while it streamed
        await wait_until(pilot, lambda: exchanges(app)[0].state != "generating", timeout=10)
        assert exchanges(app)[0].answer == "".join(pieces) and exchanges(app)[0].state == "done"
        assert len(backend.prompts) == 1 and "return 1" in backend.prompts[0]
        await ask(pilot, screen, "Again.")
        assert "return 'new'" in backend.prompts[1]


async def test_delete_and_rename_of_context_files(tmp_path: Path):
    backend = FakeBackend()
    app = make_app(project(tmp_path), backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await with_a_py(pilot)
        await select_in_tree(pilot, "b.py")
        await wait_until(pilot, lambda: screen.context.all_counted and len(screen.context) == 2)
        await wait_until(pilot, lambda: app.watcher is not None)
        (tmp_path / "a.py").rename(tmp_path / "renamed.py")
        await wait_until(pilot, lambda: screen.context.paths == ["renamed.py", "b.py"])
        (tmp_path / "b.py").unlink()
        await wait_until(pilot, lambda: screen.context.get("b.py").missing)
        assert "b.py (missing)" in screen.query_one(ContextList).text
        await ask(pilot, screen, "Go.")
        assert "renamed.py" in backend.prompts[0] and "b = 1" not in backend.prompts[0]
        assert any("Left out (deleted on disk): b.py" in n.message for n in app._notifications)
        # New files show up in the tree.
        (tmp_path / "fresh.py").write_text("x = 1\n")
        panel = screen.query_one(FilePanel)
        await wait_until(pilot, lambda: "fresh.py" in {str(n.label) for n in panel.root.children}, timeout=15)


async def test_a_gitignore_change_refilters_the_tree(tmp_path: Path):
    app = make_app(project(tmp_path), FakeBackend())
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_until(pilot, lambda: app.watcher is not None)
        panel = screen.query_one(FilePanel)
        assert {"a.py", "b.py"} <= {str(n.label) for n in panel.root.children}
        (tmp_path / ".gitignore").write_text("b.py\n")
        # Reloaded (not just emptied while it reloads): b.py is gone, the others are there.
        await wait_until(pilot, lambda: {str(n.label) for n in panel.root.children} == {".gitignore", "a.py"}, timeout=15)


async def test_many_rapid_writes_cause_one_refresh(tmp_path: Path):
    app = make_app(project(tmp_path), FakeBackend())
    async with app.run_test(size=SIZE) as pilot:
        screen = await with_a_py(pilot)
        await wait_until(pilot, lambda: app.watcher is not None)
        counts = []
        original = screen.count_file

        def counting(rel: str):
            counts.append(rel)
            return original(rel)

        screen.count_file = counting
        with open(tmp_path / "a.py", "w") as handle:
            for n in range(1000):
                handle.write(f"x{n} = {n}\n")
                handle.flush()
        await wait_until(pilot, lambda: counts == ["a.py"])
        await pilot.pause(0.8)
        assert counts == ["a.py"]


async def test_the_observer_stops_when_the_app_exits(tmp_path: Path):
    before = set(threading.enumerate())
    app = make_app(project(tmp_path), FakeBackend())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_until(pilot, lambda: app.watcher is not None)
        watcher = app.watcher
        assert watcher.running and watcher.threads()
        started = watcher.threads()
    assert app.watcher is None and watcher.threads() == []
    assert not any(thread.is_alive() for thread in started)
    leftover = {t for t in set(threading.enumerate()) - before if t.is_alive()}
    assert not [t for t in leftover if "watch" in t.name.lower() or "emitter" in type(t).__name__.lower()]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
async def test_tree_marks_modified_and_untracked_files(tmp_path: Path):
    project(tmp_path)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q"], ["add", "a.py"], ["commit", "-qm", "a"]):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, env=env)
    app = make_app(tmp_path, FakeBackend())
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        panel = screen.query_one(FilePanel)
        await wait_until(pilot, lambda: panel.git_states.get(tmp_path / "b.py") == "U")
        assert tmp_path / "a.py" not in panel.git_states
        await wait_until(pilot, lambda: app.watcher is not None)
        (tmp_path / "a.py").write_text("changed\n")
        await wait_until(pilot, lambda: panel.git_states.get(tmp_path / "a.py") == "M")
        labels = {n.data.path.name: panel.render_label(n, panel.rich_style, panel.rich_style).plain
                  for n in panel.root.children}
        assert labels["a.py"].strip().endswith("M") and labels["b.py"].strip().endswith("U")
    log = subprocess.run(["git", "-C", str(tmp_path), "log", "--oneline"], capture_output=True, text=True).stdout
    assert len(log.splitlines()) == 1  # nothing committed by the app
