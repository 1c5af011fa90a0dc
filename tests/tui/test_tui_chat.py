"""The conversation with a FAKE backend (tests/helpers/tui_fakes.py), at 80x24: files as context,
the budget, sending, streaming, stopping, follow-ups, keys. Never the real model."""

from __future__ import annotations

import time
from pathlib import Path

from tests.helpers.tui_fakes import FakeBackend
from tests.helpers.tui_pilot import SIZE, exchanges, make_app, ready, select_in_tree, wait_until
from tests.helpers.tui_pilot import chat_project as project

from codeup_tui.tui.screens import FileFinder, HelpScreen, PromptView
from codeup_tui.tui.widgets import ContextList, Conversation, FilePanel, InstructionEditor, StatusBar

# -- files as context ---------------------------------------------------------------------


async def test_tree_hides_ignored_and_marks_binary_files(tmp_path: Path):
    app = make_app(project(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        panel = screen.query_one(FilePanel)
        assert {str(n.label) for n in panel.root.children} == {".gitignore", "a.py", "big.py", "blob.bin"}
        assert panel.refusals == {tmp_path / "blob.bin": "binary file"}
        await select_in_tree(pilot, "blob.bin")
        await pilot.pause(0.1)
        assert len(screen.context) == 0
        assert any("binary file" in n.message for n in app._notifications)


async def test_space_and_enter_toggle_a_file_and_show_its_token_cost(tmp_path: Path):
    app = make_app(project(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await select_in_tree(pilot, "a.py")
        entry_tokens = (len("a.py\n```python\ndef a():\n    return 1\n```") + 3) // 4
        await wait_until(pilot, lambda: screen.context.get("a.py") and screen.context.get("a.py").tokens)
        assert screen.context.get("a.py").tokens == entry_tokens
        listing = screen.query_one(ContextList)
        assert listing.text == f"{entry_tokens:>4} a.py"
        assert listing.border_title == f"Context: 1 · {entry_tokens} tok"
        assert screen.query_one(FilePanel).selected == {tmp_path / "a.py": entry_tokens}
        await pilot.press("space")  # again: dropped
        assert len(screen.context) == 0 and listing.text == ContextList.EMPTY
        await pilot.press("enter")  # Enter adds too
        await wait_until(pilot, lambda: "a.py" in screen.context)


async def test_file_finder_adds_without_the_mouse_and_warns_for_ignored(tmp_path: Path):
    app = make_app(project(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, FileFinder)
        finder = app.screen
        await wait_until(pilot, lambda: finder.loaded)
        assert "gen/out.py" not in finder.candidates and "notes.log" not in finder.candidates
        await pilot.press(*"bgpy")
        await pilot.press("enter")
        assert app.screen is screen
        await wait_until(pilot, lambda: "big.py" in screen.context)
        # An ignored file, named exactly, is offered and added with a warning.
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: app.screen.loaded)
        await pilot.press(*"gen/out.py", "enter")
        await wait_until(pilot, lambda: "gen/out.py" in screen.context)
        assert screen.context.get("gen/out.py").ignored
        assert any("ignored by .gitignore" in n.message for n in app._notifications)
        await wait_until(pilot, lambda: "gen/out.py (ignored)" in screen.query_one(ContextList).text)


# -- budget and prompt ---------------------------------------------------------------------


async def test_prompt_that_does_not_fit_is_refused_naming_the_largest_file(tmp_path: Path):
    backend = FakeBackend(n_ctx_value=1024)  # reserve 256 for the answer
    app = make_app(project(tmp_path), backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await select_in_tree(pilot, "a.py")
        await select_in_tree(pilot, "big.py")
        await wait_until(pilot, lambda: screen.context.all_counted and len(screen.context) == 2)
        await pilot.press("ctrl+e", *"review")
        await wait_until(pilot, lambda: "too long" in (screen.query_one(InstructionEditor).border_subtitle or ""))
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: not screen.generating)
        messages = [n.message for n in app._notifications]
        refusal = next(m for m in messages if m.startswith("Not sent"))
        assert "Drop big.py (" in refusal and "a.py" not in refusal.split("Drop")[1]
        assert backend.prompts == [] and exchanges(app) == []
        assert screen.query_one(InstructionEditor).text == "review"  # nothing lost


async def test_show_prompt_is_exactly_what_is_sent(tmp_path: Path):
    backend = FakeBackend()
    app = make_app(project(tmp_path), backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await select_in_tree(pilot, "a.py")
        await wait_until(pilot, lambda: screen.context.all_counted and len(screen.context) == 1)
        await pilot.press("ctrl+e", *"Explain")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, PromptView))
        shown = app.screen.prompt
        assert "### Input:\na.py\n```python\ndef a():\n    return 1\n```\n\n### Response:\n" in shown
        assert app.screen.summary.startswith("alpaca · ")
        await pilot.press("escape")
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: backend.prompts)
        assert backend.prompts == [shown]


# -- sending and streaming ------------------------------------------------------------------


async def test_enter_is_newline_and_ctrl_j_sends_and_the_answer_streams(tmp_path: Path):
    backend = FakeBackend(answers=[["Use `", "sum`", ":\n\n", "```python\n", "sum(xs)\n", "```\n"]], piece_delay=0.02)
    app = make_app(project(tmp_path), backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        editor = screen.query_one(InstructionEditor)
        await pilot.press(*"add", "enter", *"them")
        assert editor.text == "add\nthem" and backend.prompts == []
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: exchanges(app) and exchanges(app)[0].state == "done")
        assert "### Instruction:\nadd\nthem\n\n### Response:\n" in backend.prompts[0]
        exchange = exchanges(app)[0]
        assert exchange.answer == "Use `sum`:\n\n```python\nsum(xs)\n```\n"
        assert exchange.markdown.source == exchange.answer  # rendered as Markdown
        assert exchange.state_text.startswith("done · 6 tokens")
        assert editor.text == ""  # sent: the editor is cleared
        status = screen.query_one(StatusBar).text
        assert status.startswith("fake-model · Q4_1 · ctx ") and "4 thr" in status and "gen " in status


async def test_alt_enter_sends_too(tmp_path: Path):
    backend = FakeBackend()
    app = make_app(project(tmp_path), backend)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press(*"hi", "alt+enter")
        await wait_until(pilot, lambda: backend.prompts)


async def test_streaming_posts_are_coalesced_and_typing_stays_live(tmp_path: Path):
    pieces = [f"w{i} " for i in range(400)]
    backend = FakeBackend(answers=[pieces], piece_delay=0.001)
    app = make_app(project(tmp_path), backend)
    posts: list[int] = []
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        original = screen.on_generation_progress

        async def counting(message):
            posts.append(len(message.text))
            await original(message)

        screen.on_generation_progress = counting  # type: ignore[method-assign]
        await pilot.press(*"go", "ctrl+j")
        await pilot.press(*"next")  # typing while it streams
        await wait_until(pilot, lambda: exchanges(app) and exchanges(app)[0].state == "done", timeout=10)
        assert exchanges(app)[0].answer == "".join(pieces)
        assert screen.query_one(InstructionEditor).text == "next"
    assert len(posts) < len(pieces) / 2  # far fewer messages than tokens


async def test_escape_stops_mid_stream_and_keeps_the_partial_answer(tmp_path: Path):
    # 2000 pieces at 30 ms: a missed Esc would stream for a minute.
    backend = FakeBackend(answers=[[f"t{i} " for i in range(2000)]], piece_delay=0.03)
    app = make_app(project(tmp_path), backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press(*"long", "ctrl+j")
        await wait_until(pilot, lambda: exchanges(app) and len(exchanges(app)[0].answer) > 6)
        await pilot.press("escape")
        exchange = exchanges(app)[0]
        assert exchange.state == "stopped"  # at once
        started = time.monotonic()
        await wait_until(pilot, lambda: not screen.generating, timeout=2)
        assert time.monotonic() - started < 2
        assert backend.handles[0].result.stop_reason == "cancelled"
        assert exchange.state == "stopped" and exchange.state_text.startswith("stopped")
        assert 0 < len(exchange.answer) < len("".join(f"t{i} " for i in range(2000))) // 10
        assert screen.history[-1].response == exchange.answer


async def test_escape_stops_during_prompt_processing(tmp_path: Path):
    # The prompt phase would last 30 s; Esc must end it at once. The bound leaves room for a
    # loaded CI machine while staying far below what a missed cancel would take.
    backend = FakeBackend(prompt_delay=30.0)
    app = make_app(project(tmp_path), backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press(*"slow", "ctrl+j")
        await wait_until(pilot, lambda: backend.handles)
        await pilot.pause(0.1)
        started = time.monotonic()
        await pilot.press("escape")
        await wait_until(pilot, lambda: not screen.generating, timeout=2)
        assert time.monotonic() - started < 2
        assert exchanges(app)[0].state == "stopped" and exchanges(app)[0].answer == ""


async def test_follow_up_renders_both_turns_and_regenerate_repeats(tmp_path: Path):
    backend = FakeBackend(answers=[["First answer."], ["Second answer."], ["Again."]])
    app = make_app(project(tmp_path), backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await select_in_tree(pilot, "a.py")
        await wait_until(pilot, lambda: screen.context.all_counted and len(screen.context) == 1)
        await pilot.press("ctrl+e", *"What is a?", "ctrl+j")
        await wait_until(pilot, lambda: len(screen.history) == 1)
        await pilot.press(*"And b?", "ctrl+j")
        await wait_until(pilot, lambda: len(screen.history) == 2)
        first, second = backend.prompts
        # The follow-up begins with the first prompt and its answer (the prompt cache reuses it)
        assert second.startswith(first + "First answer.")
        assert second.count("### Instruction:") == 2 and "And b?" in second
        assert second.count("def a():") == 1  # a.py unchanged: not sent twice
        assert "a.py (sent)" in screen.query_one(ContextList).text
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: len(backend.prompts) == 3 and not screen.generating)
        assert backend.prompts[2] == second
        assert [e.answer for e in exchanges(app)] == ["First answer.", "Again."]
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: exchanges(app) == [] and screen.history == [])


async def test_send_before_the_model_is_ready_is_refused(tmp_path: Path):
    import threading

    gate = threading.Event()
    backend = FakeBackend(load_gate=gate)
    app = make_app(project(tmp_path), backend)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"hi", "ctrl+j")
        await pilot.pause(0.05)
        assert backend.prompts == []
        assert any("still loading" in n.message for n in app._notifications)
        assert app.screen.query_one(StatusBar).text == "loading fake-model.Q4_1.gguf…"
        gate.set()


# -- keys -------------------------------------------------------------------------------------


async def test_f1_help_lists_every_binding_and_the_palette_has_the_actions(tmp_path: Path):
    app = make_app(project(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        groups = app.binding_groups()
        ids = [b.id for _title, items in groups for b in items]
        assert all(ids), "every binding has an id"
        assert {"send", "stop", "regenerate", "show-prompt", "find-file", "toggle-file", "help"} <= set(ids)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.query_one("#help-text").source
        for binding_id in ids:
            assert f"`{binding_id}`" in text
        assert "ctrl+j" in text.lower() or "^j" in text
        await pilot.press("escape")
        assert app.screen is screen
        titles = [command.title for command in app.get_system_commands(screen)]
        assert any(t.startswith("Send") for t in titles) and any(t.startswith("Find file") for t in titles)


async def test_layout_at_80x24_with_the_context_list(tmp_path: Path):
    app = make_app(project(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        tree = screen.query_one(FilePanel).region
        listing = screen.query_one(ContextList).region
        conversation = screen.query_one(Conversation).region
        editor = screen.query_one(InstructionEditor).region
        assert tree.height >= 8 and listing.y >= tree.bottom and listing.bottom <= editor.y
        assert conversation.width >= 48 and editor.width == 80


def test_status_bar_speed_text_from_fixed_timings():
    from tests.helpers.tui_fakes import FakeTimings

    from codeup_tui.tui.widgets.status_bar import speed_text

    evaluating = FakeTimings(prompt_tokens=385, prompt_evaluated=10, prompt_seconds=1.0)
    assert speed_text(evaluating, generating=True) == "prompt: 10 new of 385"
    streaming = FakeTimings(385, 18, 0.5, 50, 2.0)
    assert speed_text(streaming, generating=True) == "prompt 36 t/s · gen 25.0 t/s"
    cached = FakeTimings(385, 0, 0.0, 10, 0.5)
    assert speed_text(cached, generating=False) == "prompt cached · gen 20.0 t/s"


# -- the model's own chat template -----------------------------------------------------------

CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\\nDefault<|im_end|>\\n' }}{% endif %}"
          "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


async def test_a_model_with_a_chat_template_is_prompted_in_it(tmp_path: Path):
    from codeup_tui.engine.chat_template import ChatTemplate
    from codeup_tui.tui.prompt import CODING_SYSTEM

    template = ChatTemplate(CHATML, "<|im_start|>", "<|im_end|>", owner="fake-model.Q4_1.gguf")
    backend = FakeBackend(answers=[["First answer."], ["Second answer."]], chat_template=template)
    app = make_app(project(tmp_path), backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_until(pilot, lambda: "model: ChatML" in screen.query_one(StatusBar).text)
        await select_in_tree(pilot, "a.py")
        await wait_until(pilot, lambda: screen.context.all_counted and len(screen.context) == 1)
        await pilot.press("ctrl+e", *"Explain")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, PromptView))
        shown = app.screen.prompt
        assert app.screen.summary.startswith("model: ChatML · ")
        # the attached file sits inside the user's message, as Alpaca's ### Input: holds it
        assert shown == (f"<|im_start|>system\n{CODING_SYSTEM}<|im_end|>\n<|im_start|>user\nExplain\n\n"
                         "a.py\n```python\ndef a():\n    return 1\n```<|im_end|>\n<|im_start|>assistant\n")
        await pilot.press("escape", "ctrl+j")
        await wait_until(pilot, lambda: len(screen.history) == 1)
        await pilot.press(*"And b?", "ctrl+j")
        await wait_until(pilot, lambda: len(screen.history) == 2)
        first, second = backend.prompts
        assert first == shown
        assert second.startswith(first + "First answer.<|im_end|>\n")  # the prompt cache reuses turn 1
        assert backend.stops[0] == ("<|im_end|>",)  # the answer ends at the end-of-turn token


async def test_a_template_that_raises_is_said_instead_of_sending(tmp_path: Path):
    from codeup_tui.engine.chat_template import ChatTemplate

    template = ChatTemplate("{{ raise_exception('Conversation roles must alternate') }}", owner="fake-model.gguf")
    backend = FakeBackend(chat_template=template)
    app = make_app(project(tmp_path), backend)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+e", *"Hi", "ctrl+j")
        message = "Not sent: fake-model.gguf: the chat template says: Conversation roles must alternate"
        await wait_until(pilot, lambda: any(n.message == message for n in app._notifications))
        assert backend.prompts == []


# -- speculative decoding ----------------------------------------------------------------------


async def test_the_draft_setting_reaches_the_engine_and_the_status_shows_acceptance(tmp_path: Path):
    from codeup_tui.engine.generate import Timings
    from codeup_tui.tui.config import Settings
    from codeup_tui.tui.widgets.status_bar import speed_text

    (tmp_path / "a.py").write_text("x = 1\n")
    backend = FakeBackend(answers=[["ok"]])
    app = make_app(tmp_path, backend, settings=Settings(draft_max=5))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+e", *"hello", "ctrl+j")
        await wait_until(pilot, lambda: backend.prompts)
        assert backend.drafts[-1].draft_max == 5 and backend.drafts[-1].enabled
    drafted = Timings(prompt_tokens=10, prompt_evaluated=10, prompt_seconds=0.1, generated_tokens=40,
                      generation_seconds=1.0, drafted_tokens=50, accepted_tokens=39)
    assert speed_text(drafted, generating=False) == "prompt 100 t/s · gen 40.0 t/s · draft 78%"
    assert "draft" not in speed_text(Timings(prompt_tokens=10, prompt_evaluated=10, prompt_seconds=0.1,
                                             generated_tokens=4, generation_seconds=1.0), generating=False)
