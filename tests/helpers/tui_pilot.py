"""Driving the TUI with Textual's Pilot at 80x24 against a FAKE backend (tui_fakes.py): the
steps the TUI tests share (waiting for a condition, a project on disk, the app made ready,
picking a file in the tree, asking and inserting)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual.widgets import OptionList

from codeup_tui.tui.app import CodeupApp
from codeup_tui.tui.screens import MainScreen
from codeup_tui.tui.screens.insert_dialog import InsertDialog
from codeup_tui.tui.widgets import Conversation, Exchange, FilePanel
from tests.helpers.tui_fakes import FakeBackend

SIZE = (80, 24)


async def wait_until(pilot, predicate: Callable[[], object], timeout: float = 5.0, step: float = 0.02) -> None:
    """Let the app run until `predicate()` holds (checked every `step` seconds); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(step)
    assert predicate(), "condition not reached in time"


def chat_project(tmp_path: Path) -> Path:
    """A project with ignored, generated, binary and large files beside a.py."""
    files = {
        ".gitignore": "gen/\n*.log\n",
        "a.py": "def a():\n    return 1\n",
        "big.py": "x = 1  # padding\n" * 200,  # 3,400 characters: ~850 fake tokens
        "blob.bin": b"\x00\x01\x02binary",
        "notes.log": "ignored\n",
        "gen/out.py": "generated = True\n",
    }
    for rel, content in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return tmp_path


def make_app(root: Path, backend: FakeBackend | None = None, **options) -> CodeupApp:
    return CodeupApp(root, backend=backend or FakeBackend(), **options)


async def ready(pilot) -> MainScreen:
    app = pilot.app
    await wait_until(pilot, lambda: app.model_status.state == "ready")
    panel = app.screen.query_one(FilePanel)
    await wait_until(pilot, lambda: len(panel.root.children) > 0)
    return app.screen


async def select_in_tree(pilot, name: str) -> None:
    """Move the tree's cursor to `name` (top level) with the keys, then press space."""
    panel = pilot.app.screen.query_one(FilePanel)
    await pilot.press("ctrl+f")
    labels = [str(node.label) for node in panel.root.children]
    await pilot.press("home", *["down"] * labels.index(name), "space")


def exchanges(app) -> list[Exchange]:
    return app.screen.query_one(Conversation).exchanges


# -- asking and inserting ----------------------------------------------------------------------
FUNCTION = "def double(x):\n    return 2 * x\n"
ANSWER = ["Here is the function:\n\n", "```python\n", FUNCTION, "```\n\n", "Run it with:\n\n",
          "```bash\npython -c 'import a'\n```\n"]


def insert_project(tmp_path: Path) -> Path:
    """Two small Python files, a.py and b.py."""
    (tmp_path / "a.py").write_bytes(b"def a():\n    return 1\n")
    (tmp_path / "b.py").write_bytes(b"b = 1\n")
    return tmp_path


async def ask(pilot, screen, instruction: str = "Write double.") -> None:
    """Send an instruction from the editor and wait for the whole answer."""
    count = len(exchanges(pilot.app))
    await pilot.press("ctrl+e", *instruction, "ctrl+j")
    await wait_until(pilot, lambda: len(exchanges(pilot.app)) == count + 1 and not screen.generating
                     and exchanges(pilot.app)[-1].state != "generating")  # rendered to the end


async def with_a_py(pilot):
    screen = await ready(pilot)
    await select_in_tree(pilot, "a.py")
    await wait_until(pilot, lambda: screen.context.get("a.py") and screen.context.get("a.py").tokens)
    return screen


async def open_insert(pilot) -> InsertDialog:
    await pilot.press("alt+i")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, InsertDialog))
    return pilot.app.screen


async def choose(pilot, dialog: InsertDialog, step: str, option_id: str | None = None) -> None:
    """In the target or mode list, move to ``option_id`` with the arrow keys, then Enter."""
    await wait_until(pilot, lambda: dialog.step == step)
    if option_id is not None:
        options = dialog.query_one("#insert-targets" if step == "target" else "#insert-modes", OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        await pilot.press("home", *["down"] * ids.index(option_id))
    await pilot.press("enter")


async def preview(pilot, dialog: InsertDialog) -> str:
    await wait_until(pilot, lambda: dialog.step == "preview")
    return str(dialog.query_one("#insert-diff").render())
