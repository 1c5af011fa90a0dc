"""Copying the answer: OSC 52, wrapped for tmux, a file when too long."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from tests.helpers.tui_pilot import SIZE, exchanges, make_app, ready, wait_until
from tests.helpers.tui_pilot import chat_project as project
from tests.helpers.tui_fakes import FakeBackend

from codeup_tui.tui.clipboard import OSC52_MAX_BASE64, osc52_sequence, save_to_file


def payload(sequence: str) -> str:
    m = re.search(r"\]52;c;([A-Za-z0-9+/=]*)\x07", sequence)
    return base64.b64decode(m.group(1)).decode()


def test_plain_osc52():
    seq = osc52_sequence("déjà vu\n", in_tmux=False)
    assert seq.startswith("\x1b]52;c;") and seq.endswith("\x07") and payload(seq) == "déjà vu\n"


def test_tmux_passthrough_wraps_and_doubles_escapes():
    seq = osc52_sequence("x", in_tmux=True)
    assert seq.startswith("\x1bPtmux;\x1b\x1b]52;c;") and seq.endswith("\x07\x1b\\")
    assert payload(seq.replace("\x1b\x1b", "\x1b")) == "x"


def test_too_long_for_a_terminal_is_refused():
    assert osc52_sequence("a" * (OSC52_MAX_BASE64 // 4 * 3 + 3), in_tmux=False) is None


def test_fallback_file_is_written_whole(tmp_path: Path):
    path = save_to_file("line\n" * 10, tmp_path / "cache")
    assert path.read_text() == "line\n" * 10 and [p.name for p in path.parent.iterdir()] == ["clipboard.txt"]


async def test_ctrl_t_copies_the_last_answer(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TMUX", "/tmp/tmux-0/default,1,0")
    backend = FakeBackend(answers=[["def f():", "\n    return 1\n"]])
    app = make_app(project(tmp_path), backend)
    written = []
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        monkeypatch.setattr(app._driver, "write", written.append)
        await pilot.press(*"hi", "ctrl+j")
        await wait_until(pilot, lambda: exchanges(app) and exchanges(app)[0].state == "done")
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: any("]52;c;" in w for w in written))
    seq = next(w for w in written if "]52;c;" in w)
    assert seq.startswith("\x1bPtmux;")  # inside tmux: wrapped
    assert payload(seq.replace("\x1b\x1b", "\x1b")) == "def f():\n    return 1\n"


async def test_huge_answer_goes_to_a_file(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TMUX", raising=False)
    big = "x" * (OSC52_MAX_BASE64 + 10)
    backend = FakeBackend(answers=[[big]])
    app = make_app(project(tmp_path / "p"), backend)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press(*"hi", "ctrl+j")
        await wait_until(pilot, lambda: exchanges(app) and exchanges(app)[0].state == "done")
        await pilot.press("ctrl+t")
        target = tmp_path / "xdg" / "codeup-tui" / "clipboard.txt"
        await wait_until(pilot, target.exists)
    assert target.read_text() == big
