"""Snapshots: what each screen shows, character by character, at 80x24 and 120x36.

Each scenario drives the app with keys on a copy of demo/, with a FAKE backend (scripted
answers, a fixed generation speed), and compares the screen with
``tests/snapshots/<scenario>_<width>x<height>.txt``. The snapshots are plain text, not SVG:
a diff in review shows the layout change itself, and colours and themes do not move them.
Their first line names the focused widget, which plain text cannot show.

A changed layout fails here with a diff. When the change is meant, regenerate them all and
review the diff of tests/snapshots/:

    CODEUP_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest -q tests/tui/test_tui_snapshots.py

Textual is pinned to one minor version in pyproject.toml because its widgets' drawing (the
footer, Markdown, borders) is what these compare.
"""

from __future__ import annotations

from functools import partial

import difflib
import io
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Markdown
from textual.worker import WorkerState
from tests.helpers.tui_pilot import wait_until as pilot_wait_until
from tests.helpers.tui_fakes import FakeBackend, FakeHandle

from codeup_tui.tui.app import CodeupApp
from codeup_tui.tui.config import Config
from codeup_tui.tui.history import HistoryStore, TurnStart, default_history_path, project_key
from codeup_tui.tui.screens import FileFinder, HelpScreen, MainScreen, PromptView, SettingsScreen
from codeup_tui.tui.screens.history import HistoryScreen
from codeup_tui.tui.widgets import Conversation, FilePanel, InstructionEditor, WelcomePanel

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo"
SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots"
UPDATE = os.environ.get("CODEUP_UPDATE_SNAPSHOTS") == "1"
SIZES = [(80, 24), (120, 36)]
SETTLED_SECONDS = 0.5
"""The screen counts as drawn once it has not changed for this long (longer than the
budget's recount delay, so a late recount cannot land after the snapshot)."""

GENERATION_SPEED = 20.0
"""Tokens per second the fake reports: the status line and the state line show it."""

ANSWER = [
    "`average_word_length` divides by the number of words, so a text without words "
    "raises `ZeroDivisionError`. Return 0.0 when there are none:\n\n"
    "```python\n"
    "def average_word_length(text: str) -> float:\n"
    '    """The mean number of letters per word (0.0 without words)."""\n'
    "    found = words(text)\n"
    "    if not found:\n"
    "        return 0.0\n"
    "    return sum(len(word) for word in found) / len(found)\n"
    "```\n\n"
    "`format_report(\"\")` then prints `average word length: 0.00`.",
]
"""The fake's answer, as ONE piece: Textual's MarkdownStream lays the end of an answer out
slightly differently (a blank line more or less) depending on how the pieces were
coalesced, which is timing; streaming piece by piece is tested in test_tui_chat.py."""


# -- the screen as text -----------------------------------------------------------------

MASK = "codeup-snap-XXXXXXXX"
"""Stands for the demo copy's temporary folder (its name has the same length)."""


def screen_text(app: CodeupApp) -> str:
    """Every cell of the screen as drawn (modals over the screens below them, notifications
    included), and the focused widget. Trailing blanks are dropped; the temporary folder's random part is
    masked (it is as long as the mask, so no line moves)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    # What App.export_screenshot draws, kept as text instead of SVG.
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    lines = [line.rstrip() for line in console.export_text(styles=False).split("\n")[:height]]
    focused = app.focused
    focus = "nothing" if focused is None else type(focused).__name__ + (f"#{focused.id}" if focused.id else "")
    text = "\n".join([f"focused: {focus}", *lines]) + "\n"
    root = app.project_dir.parent
    return text.replace(str(root), str(root.with_name(MASK)))


def check_snapshot(app: CodeupApp, name: str) -> None:
    width, height = app.size
    path = SNAPSHOTS / f"{name}_{width}x{height}.txt"
    actual = screen_text(app)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"no snapshot {path.name}; make it with CODEUP_UPDATE_SNAPSHOTS=1 and review it:\n{actual}")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            f"{path.name} (stored)", f"{path.name} (now)"))
        pytest.fail(f"the screen differs from {path.name} (CODEUP_UPDATE_SNAPSHOTS=1 regenerates it "
                    f"if the change is meant):\n{diff}")


# -- a deterministic app ------------------------------------------------------------------


class SteadyHandle:
    """A FakeHandle whose timings do not depend on the wall clock or on the pieces: one
    token per 4 characters written (the fake's count), at a fixed speed."""

    def __init__(self, handle: FakeHandle) -> None:
        self._handle = handle

    def __getattr__(self, name: str):
        return getattr(self._handle, name)

    def timings(self):
        timings = self._handle.timings()
        generated = (len(self._handle.result.text) + 3) // 4
        return replace(timings, generated_tokens=generated, generation_seconds=generated / GENERATION_SPEED)


class SteadyBackend(FakeBackend):
    def start(self, prompt: str, **options) -> SteadyHandle:  # type: ignore[override]
        return SteadyHandle(super().start(prompt, **options))


@pytest.fixture(autouse=True)
def colour_settings_of_the_user_ignored(monkeypatch):
    """NO_COLOR switches Textual's widgets to their ANSI styles, which lay out differently."""
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def demo_copy():
    """demo/ copied to /tmp/codeup-snap-<8 random characters>/demo: the path on screen has
    the same length on every machine (the random part is masked in the snapshots)."""
    base = "/tmp" if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="codeup-snap-", dir=base))
    assert len(root.name) == len(MASK), root
    project = root / "demo"
    shutil.copytree(DEMO, project, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.egg-info"))
    yield project
    shutil.rmtree(root, ignore_errors=True)


def make_app(project: Path, backend: FakeBackend | None = None) -> CodeupApp:
    config = Config(project.parent / "config.toml")  # shown by the settings screen
    return CodeupApp(project, backend=backend or SteadyBackend(answers=[ANSWER]), config=config)


wait_until = partial(pilot_wait_until, timeout=10.0)


def busy(app: CodeupApp) -> bool:
    """A worker still running (but the file tree's loader, which waits for work for as long
    as the tree lives), or a Markdown widget still parsing (in a thread) or mounting."""
    if any(worker.state in (WorkerState.PENDING, WorkerState.RUNNING) and worker.name != "_loader"
           for worker in app.workers):
        return True
    screens = [*app._background_screens, app.screen]
    return any(markdown.lock.is_locked for screen in screens for markdown in screen.query(Markdown))


async def settle(pilot) -> None:
    """Wait until nothing is at work and the screen has stopped changing (timers too)."""
    app = pilot.app
    last, since = screen_text(app), time.monotonic()
    deadline = since + 20.0
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        now = screen_text(app)
        if now != last or busy(app):
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= SETTLED_SECONDS:
            return
    pytest.fail("the screen never settled")


async def started(pilot) -> MainScreen:
    """The main screen with the model ready, the tree listed and the saved state restored."""
    app = pilot.app
    screen = app.screen
    assert isinstance(screen, MainScreen)
    await wait_until(pilot, lambda: app.model_status.state == "ready")
    panel = screen.query_one(FilePanel)
    await wait_until(pilot, lambda: len(panel.root.children) > 0)
    await wait_until(pilot, lambda: screen._restored)
    await wait_until(pilot, lambda: "fake-model" in screen.query_one(WelcomePanel).source)
    editor = screen.query_one(InstructionEditor)
    await wait_until(pilot, lambda: "prompt " in str(editor.border_subtitle))  # the budget is counted
    return screen


async def select_in_tree(pilot, rel: str) -> None:
    """Walk the file tree with the keys to `rel`, opening its folders, and add it (space)."""
    panel = pilot.app.screen.query_one(FilePanel)
    await pilot.press("ctrl+f", "home")
    parts = rel.split("/")
    for depth, part in enumerate(parts):
        for _ in range(50):
            node = panel.cursor_node
            if node is not None and node.data is not None and node.data.path.name == part \
                    and len(node.data.path.relative_to(panel.project_dir).parts) == depth + 1:
                break
            await pilot.press("down")
        else:
            pytest.fail(f"{rel} not found in the file tree")
        if depth < len(parts) - 1 and not node.is_expanded:
            await pilot.press("space")  # a folder opens
            await wait_until(pilot, lambda: node.is_expanded and len(node.children) > 0)
    await pilot.press("space")


async def type_text(pilot, text: str) -> None:
    await pilot.press(*["enter" if char == "\n" else char for char in text])


def exchanges(app: CodeupApp):
    return app.screen.query_one(Conversation).exchanges


# -- the scenarios ---------------------------------------------------------------------------

sizes = pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])


@sizes
async def test_welcome(demo_copy: Path, size: tuple[int, int]):
    """Just started: the tree, the welcome panel with the model, the empty context."""
    app = make_app(demo_copy)
    async with app.run_test(size=size, notifications=True) as pilot:
        await started(pilot)
        await settle(pilot)
        check_snapshot(app, "welcome")


@sizes
async def test_files_and_a_streamed_answer_with_code(demo_copy: Path, size: tuple[int, int]):
    """Two files (two languages) picked in the tree; an answer with a code block, done."""
    app = make_app(demo_copy)
    async with app.run_test(size=size, notifications=True) as pilot:
        screen = await started(pilot)
        await select_in_tree(pilot, "textstats/counter.py")
        await select_in_tree(pilot, "scripts/wordfreq.sh")
        await wait_until(pilot, lambda: screen.context.all_counted and len(screen.context) == 2)
        await pilot.press("ctrl+e")
        await type_text(pilot, "Why does an empty text crash?\nFix it.")
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: exchanges(app) and exchanges(app)[-1].state == "done")
        assert exchanges(app)[-1].answer == ANSWER[0]
        await settle(pilot)
        check_snapshot(app, "answer")


@sizes
async def test_file_finder(demo_copy: Path, size: tuple[int, int]):
    app = make_app(demo_copy)
    async with app.run_test(size=size, notifications=True) as pilot:
        await started(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, FileFinder) and app.screen.loaded)
        await type_text(pilot, "count")
        await settle(pilot)
        check_snapshot(app, "finder")


@sizes
async def test_file_finder_offers_an_ignored_file_by_its_exact_name(demo_copy: Path, size: tuple[int, int]):
    """demo/debug.log is hidden by demo/.gitignore: not in the tree, and in the finder only
    when named exactly, marked; Enter adds it with a warning."""
    app = make_app(demo_copy)
    async with app.run_test(size=size, notifications=True) as pilot:
        screen = await started(pilot)
        assert (demo_copy / "debug.log").is_file()
        assert "debug.log" not in {str(node.label) for node in screen.query_one(FilePanel).root.children}
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, FileFinder) and app.screen.loaded)
        await type_text(pilot, "debug.log")
        await settle(pilot)
        check_snapshot(app, "finder_ignored")
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.context.paths == ["debug.log"])
        assert screen.context.get("debug.log").ignored
        assert any("ignored by .gitignore" in str(n.message) for n in app._notifications)


@sizes
async def test_help(demo_copy: Path, size: tuple[int, int]):
    app = make_app(demo_copy)
    async with app.run_test(size=size, notifications=True) as pilot:
        await started(pilot)
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await settle(pilot)
        check_snapshot(app, "help")


@sizes
async def test_settings(demo_copy: Path, size: tuple[int, int]):
    app = make_app(demo_copy)
    async with app.run_test(size=size, notifications=True) as pilot:
        await started(pilot)
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        await settle(pilot)
        check_snapshot(app, "settings")


def seed_history(project: Path, conversations: Sequence[tuple[str, str, float]]) -> None:
    """Saved conversations (id, first instruction, when), at fixed times: the list shows
    dates, never today's clock."""
    for conversation_id, instruction, when in conversations:
        store = HistoryStore(default_history_path(), clock=lambda when=when: when)
        try:
            start = TurnStart(conversation_id, project_key(project), 0, instruction, None, (), (),
                              model="fake-model", template="alpaca")
            store.begin_turn(start)
            store.finish_turn(conversation_id, 0, "An answer.", "done", "done · 3 tokens", 10, 3)
        finally:
            store.close()


@sizes
async def test_history(demo_copy: Path, size: tuple[int, int]):
    # Noon UTC: the same date in every time zone from UTC-11 to UTC+11.
    seed_history(demo_copy, [
        ("older", "Explain what sentences() returns for 'e.g.'", 1683028800.0),  # 2023-05-02
        ("newer", "Break ties in format_report alphabetically\nwith a test", 1700222400.0),  # 2023-11-17
    ])
    app = make_app(demo_copy)
    async with app.run_test(size=size, notifications=True) as pilot:
        await started(pilot)
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.conversations)
        await settle(pilot)
        check_snapshot(app, "history")


@sizes
async def test_prompt_view(demo_copy: Path, size: tuple[int, int]):
    """ctrl+r: the exact prompt, with a file picked in the finder and an instruction typed."""
    app = make_app(demo_copy)
    async with app.run_test(size=size, notifications=True) as pilot:
        screen = await started(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, FileFinder) and app.screen.loaded)
        await type_text(pilot, "scripts/wordfreq")
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.context.all_counted and len(screen.context) == 1)
        await type_text(pilot, "Add a -r option that lists the least frequent words.")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, PromptView))
        await settle(pilot)
        check_snapshot(app, "prompt")


@sizes
async def test_send_refused_when_the_prompt_does_not_fit(demo_copy: Path, size: tuple[int, int]):
    """A small context and a large file: the budget says "too long", and ctrl+j is refused
    with the file to drop."""
    app = make_app(demo_copy, SteadyBackend(answers=[ANSWER], n_ctx_value=512))
    async with app.run_test(size=size, notifications=True) as pilot:
        screen = await started(pilot)
        await select_in_tree(pilot, "README.md")
        await wait_until(pilot, lambda: screen.context.all_counted and len(screen.context) == 1)
        await pilot.press("ctrl+e")
        await type_text(pilot, "Summarise the README.")
        editor = screen.query_one(InstructionEditor)
        await wait_until(pilot, lambda: "too long" in str(editor.border_subtitle))
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: any("Not sent" in str(n.message) for n in app._notifications))
        assert not exchanges(app) and screen.context.paths == ["README.md"]
        await settle(pilot)
        check_snapshot(app, "refused")
